// Health: connections, queue, model pack and counters, refreshed every few seconds.
import { api } from '../api.js';
import { h } from '../dom.js';

export async function render(view) {
  const box = h('div');
  view.append(h('h2', {}, 'Health'), box);
  async function load() {
    const s = await api('api/status');
    const rows = Object.entries(s).filter(([, v]) => typeof v !== 'object' || v === null);
    box.replaceChildren(
      h('section', { class: 'card' }, h('dl', {}, rows.map(([k, v]) => [h('dt', {}, k.replaceAll('_', ' ')), h('dd', { 'data-key': k }, String(v))]))),
      ...Object.entries(s).filter(([, v]) => v && typeof v === 'object').map(([k, v]) => h('section', { class: 'card' },
        h('h3', {}, k.replaceAll('_', ' ')),
        h('dl', {}, (Array.isArray(v) ? v.map((x, i) => [i + 1, x]) : Object.entries(v)).map(([a, b]) => [h('dt', {}, String(a)), h('dd', {}, String(b))])))));
  }
  await load();
  const timer = setInterval(() => load().catch(() => {}), 5000);
  return () => clearInterval(timer);
}
