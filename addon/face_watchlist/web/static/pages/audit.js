// Audit: who changed or reviewed what, newest first.
import { api } from '../api.js';
import { h, when } from '../dom.js';

export async function render(view) {
  view.append(h('h2', {}, 'Audit'));
  let page;
  try { page = await api('api/audit', { query: { limit: 200 } }); } catch (err) {
    if (err.status === 401) throw err;
    view.append(h('p', { class: 'error' }, err.message));
    return null;
  }
  const detail = (d) => (d && typeof d === 'object' ? Object.entries(d).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(', ') : String(d ?? ''));
  view.append(h('div', { class: 'scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, ['Time', 'Who', 'Action', 'Subject', 'Details'].map((t) => h('th', {}, t)))),
    h('tbody', {}, page.items.map((e) => h('tr', { 'data-action': e.action },
      h('td', {}, when(e.time ?? e.timestamp ?? e.created_at)), h('td', {}, e.actor), h('td', {}, e.action),
      h('td', {}, e.subject), h('td', {}, detail(e.details))))))));
  if (!page.items.length) view.append(h('p', { class: 'muted' }, 'No entries yet.'));
  return null;
}
