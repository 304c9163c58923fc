// People and lists: create lists, find people, add a person with a photo (upload or a recent
// Frigate event), see each photo's quality, rename, move between lists, delete.
import { api, image } from '../api.js';
import { h, toast, when } from '../dom.js';

const PAGE = 50;

function qualityText(q) {
  if (!q) return 'no template for the active model pack';
  return `face ${Math.round(q.face_px)} px · sharpness ${Math.round(q.sharpness)} · frontal ${q.frontalness.toFixed(2)}`;
}

function enrolledMessage(result) {
  const tips = result.advice.length ? ` Tip: ${result.advice.join('; ')}.` : '';
  return `Photo enrolled (${qualityText(result.quality)}).${tips}`;
}

async function upload(personId, file) {
  const form = new FormData();
  form.append('photo', file, file.name);
  return api(`api/people/${personId}/photos`, { method: 'POST', form });
}

function listForm(reload) {
  const name = h('input', { required: true, maxlength: 200, id: 'list-name' });
  const kind = h('select', { id: 'list-kind' }, h('option', { value: 'watch' }, 'watch (alert when seen)'),
    h('option', { value: 'known' }, 'known (staff, cleared visitors)'));
  const policy = h('select', { id: 'list-policy' }, h('option', { value: '' }, 'default for the kind'),
    h('option', { value: 'review_first' }, 'a reviewer confirms first'), h('option', { value: 'immediate' }, 'alert immediately'));
  return h('form', { class: 'stack card', onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api('api/lists', { method: 'POST', json: { name: name.value, kind: kind.value, ...(policy.value ? { policy: policy.value } : {}) } });
      toast(`List ${name.value} created`);
      name.value = '';
      await reload();
    } catch (err) { toast(err.message, true); }
  } }, h('h3', {}, 'New list'), h('label', {}, 'Name', name), h('label', {}, 'Kind', kind), h('label', {}, 'Alerts', policy),
  h('button', { class: 'primary' }, 'Create list'));
}

function personForm(lists, onCreated) {
  const name = h('input', { required: true, maxlength: 200, id: 'person-name' });
  const external = h('input', { maxlength: 200, id: 'person-external' });
  const list = h('select', { required: true, id: 'person-list' }, lists.map((l) => h('option', { value: l.name }, l.name)));
  const photo = h('input', { type: 'file', accept: 'image/jpeg,image/png,image/webp', id: 'person-photo' });
  return h('form', { class: 'stack card', onsubmit: async (e) => {
    e.preventDefault();
    const submit = e.currentTarget.querySelector('button');
    submit.disabled = true;
    try {
      const person = await api('api/people', { method: 'POST', json: { display_name: name.value, list: list.value, external_id: external.value || null } });
      let message = `${person.display_name} added to ${list.value}.`;
      if (photo.files.length) {
        try { message += ` ${enrolledMessage(await upload(person.id, photo.files[0]))}`; } catch (err) {
          message += ` The photo was refused: ${err.message}`;
        }
      }
      toast(message);
      name.value = ''; external.value = ''; photo.value = '';
      await onCreated(person.id);
    } catch (err) { toast(err.message, true); } finally { submit.disabled = false; }
  } }, h('h3', {}, 'Add a person'), h('label', {}, 'Name', name), h('label', {}, 'External id (optional)', external),
  h('label', {}, 'List', list), h('label', {}, 'Photo', photo), h('button', { class: 'primary' }, 'Add person'));
}

async function personPanel(panel, id, lists, reload) {
  const person = await api(`api/people/${id}`);
  const status = h('p', { class: 'muted', role: 'status' });
  const file = h('input', { type: 'file', accept: 'image/jpeg,image/png,image/webp', 'aria-label': 'photo to add' });
  const events = h('select', { 'aria-label': 'recent event' }, h('option', { value: '' }, 'choose a recent event'));
  api('api/decisions', { query: { limit: 20 } }).then((page) => {
    for (const d of page.items) events.append(h('option', { value: d.event_id }, `${d.camera} · ${when(d.time ?? d.timestamp)} · ${d.result}`));
  }).catch(() => {});
  const rename = h('input', { value: person.display_name, 'aria-label': 'name' });
  const boxes = lists.map((l) => h('label', { class: 'inline' },
    h('input', { type: 'checkbox', value: l.name, checked: person.lists.includes(l.name) }), l.name));
  async function run(work) {
    try { status.textContent = await work(); await personPanel(panel, id, lists, reload); await reload(false); } catch (err) {
      status.textContent = err.message; status.className = 'error';
    }
  }
  panel.replaceChildren(h('section', { class: 'card', 'aria-label': `person ${person.display_name}` },
    h('h3', {}, person.display_name, person.external_id ? h('span', { class: 'muted' }, ` (${person.external_id})`) : ''),
    h('p', { class: 'muted' }, `Lists: ${person.lists.join(', ') || 'none'} · ${person.photos} photo(s)`),
    person.photos < 2 ? h('p', { class: 'warn' }, 'Enrol at least two photos: it cuts missed matches several times over.') : null,
    h('div', { class: 'row' }, person.enrolment.map((p) => h('figure', {},
      image(p.face_url, `enrolled photo of ${person.display_name}`, 'thumb'),
      h('figcaption', { class: 'muted' }, qualityText(p.quality))))),
    status,
    h('div', { class: 'row' }, file, h('button', { onclick: () => file.files.length && run(async () => enrolledMessage(await upload(id, file.files[0]))) }, 'Upload photo')),
    h('div', { class: 'row' }, events, h('button', { onclick: () => events.value && run(async () => enrolledMessage(
      await api(`api/people/${id}/photos/from_event`, { method: 'POST', json: { event_id: events.value } }))) }, 'Add from event')),
    h('div', { class: 'row' }, rename, h('button', { onclick: () => run(async () => {
      await api(`api/people/${id}`, { method: 'PATCH', json: { display_name: rename.value } }); return 'Renamed.';
    }) }, 'Rename')),
    h('fieldset', {}, h('legend', {}, 'On lists'), boxes, h('button', { onclick: () => run(async () => {
      const chosen = boxes.map((b) => b.firstChild).filter((b) => b.checked).map((b) => b.value);
      await api(`api/people/${id}`, { method: 'PATCH', json: { lists: chosen } }); return 'Lists saved.';
    }) }, 'Save lists')),
    h('button', { class: 'danger', onclick: async () => {
      if (!window.confirm(`Delete ${person.display_name} with their photos?`)) return;
      try { await api(`api/people/${id}`, { method: 'DELETE' }); panel.replaceChildren(); toast('Deleted'); await reload(); } catch (err) { toast(err.message, true); }
    } }, 'Delete person')));
}

export async function render(view) {
  const side = h('div');
  const main = h('div');
  const panel = h('div');
  view.append(h('h2', {}, 'People and lists'), h('div', { class: 'grid two' }, side, main));
  let offset = 0;
  const search = h('input', { type: 'search', placeholder: 'name or id', 'aria-label': 'search people' });
  const filter = h('select', { 'aria-label': 'list' });
  const table = h('tbody');
  const pager = h('div', { class: 'pager' });
  let lists = [];
  async function reload(all = true) {
    lists = await api('api/lists');
    if (all) {
      side.replaceChildren(
        h('section', { class: 'card' }, h('h3', {}, 'Lists'), h('ul', {}, lists.map((l) =>
          h('li', {}, `${l.name} `, h('span', { class: 'muted' }, `${l.kind}, ${l.policy.replace('_', ' ')}, ${l.people} people`))))),
        lists.length ? personForm(lists, async (id) => { await loadPeople(); await personPanel(panel, id, lists, reload); }) : null,
        listForm(reload));
      const current = filter.value;
      filter.replaceChildren(h('option', { value: '' }, 'all lists'), lists.map((l) => h('option', { value: l.name }, l.name)));
      filter.value = current;
    }
    await loadPeople();
  }
  async function loadPeople() {
    const page = await api('api/people', { query: { q: search.value, list: filter.value, limit: PAGE, offset } });
    table.replaceChildren(...page.items.map((p) => h('tr', {},
      h('td', {}, h('button', { class: 'link', onclick: () => personPanel(panel, p.id, lists, reload) }, p.display_name)),
      h('td', {}, p.lists.join(', ')), h('td', {}, String(p.photos)))));
    pager.replaceChildren(
      h('button', { disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); loadPeople(); } }, 'Previous'),
      h('span', { class: 'muted' }, `${page.total ? offset + 1 : 0}–${offset + page.items.length} of ${page.total}`),
      h('button', { disabled: offset + PAGE >= page.total, onclick: () => { offset += PAGE; loadPeople(); } }, 'Next'));
  }
  search.addEventListener('input', () => { offset = 0; clearTimeout(search.timer); search.timer = setTimeout(loadPeople, 250); });
  filter.addEventListener('change', () => { offset = 0; loadPeople(); });
  main.append(h('div', { class: 'row' }, search, filter), panel,
    h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Lists'), h('th', {}, 'Photos'))), table)),
    pager);
  await reload();
}
