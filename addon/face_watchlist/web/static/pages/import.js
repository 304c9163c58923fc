// Import: a registry CSV (id, name, photo) with a zip of photos, or a zip holding both; the job
// runs in the service, this page shows its progress and a report per row.
import { api } from '../api.js';
import { h, toast } from '../dom.js';

function jobView(job) {
  const problems = (job.rows || []).filter((r) => r.status === 'skipped');
  return h('section', { class: 'card', 'aria-label': 'import progress' },
    h('h3', {}, `Import into ${job.list}: ${job.state}`),
    h('progress', { max: job.total || 1, value: job.done }),
    h('p', {}, `${job.done} of ${job.total} rows · ${Object.entries(job.counts).map(([k, v]) => `${k.replace('_', ' ')} ${v}`).join(' · ')}`),
    job.message ? h('p', { class: job.state === 'failed' ? 'error' : 'warn' }, job.message) : null,
    job.errors.length ? h('details', {}, h('summary', {}, `${job.errors.length} malformed CSV row(s)`), h('ul', {}, job.errors.map((e) => h('li', {}, e)))) : null,
    job.removed_people.length ? h('p', {}, `Taken off the list: ${job.removed_people.join(', ')}`) : null,
    problems.length ? h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Row'), h('th', {}, 'Person'), h('th', {}, 'Reason'))),
      h('tbody', {}, problems.map((r) => h('tr', {}, h('td', {}, r.source), h('td', {}, r.person), h('td', {}, r.reason)))))) : null);
}

export async function render(view) {
  const lists = await api('api/lists');
  const list = h('select', { required: true, id: 'import-list' }, lists.map((l) => h('option', { value: l.name }, l.name)));
  const csv = h('input', { type: 'file', accept: '.csv,text/csv', id: 'import-csv' });
  const zip = h('input', { type: 'file', accept: '.zip,application/zip', id: 'import-zip' });
  const replace = h('input', { type: 'checkbox', id: 'import-replace' });
  const progress = h('div', { 'aria-live': 'polite' });
  let timer = null;
  async function follow(id) {
    const job = await api(`api/imports/${id}`);
    progress.replaceChildren(jobView(job));
    if (job.state === 'queued' || job.state === 'running') timer = setTimeout(() => follow(id), 1000);
  }
  view.append(h('h2', {}, 'Import a registry'),
    h('form', { class: 'stack card', onsubmit: async (e) => {
      e.preventDefault();
      const form = new FormData();
      form.append('list', list.value);
      if (csv.files.length) form.append('csv', csv.files[0]);
      if (zip.files.length) form.append('photos', zip.files[0]);
      if (replace.checked) form.append('replace', 'true');
      try { const job = await api('api/imports', { method: 'POST', form }); await follow(job.id); } catch (err) { toast(err.message, true); }
    } },
    h('p', { class: 'muted' }, 'CSV columns: id, name, photo (a path inside the zip). A zip may also carry the CSV itself.'),
    h('label', {}, 'List', list), h('label', {}, 'Registry CSV', csv), h('label', {}, 'Photos (zip)', zip),
    h('label', { class: 'inline' }, replace, 'take people who are not in this export off the list'),
    h('button', { class: 'primary' }, 'Start import')),
    progress);
  const jobs = await api('api/imports');
  if (jobs.length) await follow(jobs[0].id);
  return () => clearTimeout(timer);
}
