// Live: the latest decisions, newest first, updated by the pushed stream (no reload, no polling).
import { api, image } from '../api.js';
import { h, pct, when } from '../dom.js';

export function decisionRow(d, isNew = false) {
  const match = d.result === 'match';
  return h('li', { class: `card live-item${isNew ? ' new' : ''}`, 'data-decision': d.id ?? '' },
    match && d.evidence ? image(d.evidence.face, `face seen on ${d.camera}`, 'thumb') : h('span', { class: 'badge' }, '—'),
    h('div', {},
      h('div', { class: 'row' },
        h('strong', {}, match ? d.person : d.result === 'unknown' ? 'Unknown person' : 'No face'),
        h('span', { class: `badge ${d.review_state || d.result}` }, (d.review_state || d.result).replace('_', ' '))),
      h('div', { class: 'muted' },
        `${d.camera} · ${when(d.time ?? d.timestamp)}`,
        match ? ` · ${d.list} · score ${pct(d.score)} · margin ${pct(d.margin)}` : ''),
      d.reviewer ? h('div', { class: 'muted' }, `reviewed by ${d.reviewer}`) : null));
}

export async function render(view, { onPush }) {
  const list = h('ol', { class: 'grid', 'aria-live': 'polite', 'aria-label': 'recent decisions' });
  const filter = h('select', { 'aria-label': 'show', onchange: () => load() },
    h('option', { value: '' }, 'All decisions'), h('option', { value: 'match' }, 'Matches only'));
  view.append(h('h2', {}, 'Live'), h('div', { class: 'row' }, filter), list);
  let shown = new Set();
  async function load() {
    const page = await api('api/decisions', { query: { limit: 30, result: filter.value } });
    const rows = page.items.map((d) => decisionRow(d, shown.size > 0 && !shown.has(d.id)));
    shown = new Set(page.items.map((d) => d.id));
    list.replaceChildren(...rows);
    if (!rows.length) list.append(h('li', { class: 'muted' }, 'No decisions yet.'));
  }
  await load();
  return onPush(() => load());
}
