// Review queue: the probe face, the snapshot and the enrolled photo side by side; one click to
// confirm or reject. A rejection teaches the gallery not to raise this pairing again.
import { api, image } from '../api.js';
import { h, pct, toast, when } from '../dom.js';

async function enrolledFace(personId) {
  try {
    const person = await api(`api/people/${personId}`);
    return person.enrolment.length ? person.enrolment[0].face_url : null;
  } catch { return null; }
}

function card(d, enrolled, reload) {
  const addTemplate = h('input', { type: 'checkbox', id: `add-${d.id}` });
  async function act(action, button) {
    button.disabled = true;
    try {
      await api(`api/decisions/${d.id}/review`, { method: 'POST', json: { action, add_template: action === 'confirm' && addTemplate.checked } });
      toast(action === 'confirm' ? `Confirmed: ${d.person}` : `Rejected: not ${d.person}; this pairing will not alert again`);
      await reload();
    } catch (err) { toast(err.message, true); button.disabled = false; }
  }
  const confirm = h('button', { class: 'confirm', onclick: (e) => act('confirm', e.currentTarget) }, `Confirm: this is ${d.person}`);
  const reject = h('button', { class: 'reject', onclick: (e) => act('reject', e.currentTarget) }, 'Reject: not this person');
  return h('article', { class: 'card', 'data-decision': d.id, 'aria-label': `possible match: ${d.person}` },
    h('h3', {}, `${d.person} `, h('span', { class: 'badge match' }, d.list)),
    h('p', { class: 'muted' }, `${d.camera} · ${when(d.time ?? d.timestamp)} · score ${pct(d.score)} · margin ${pct(d.margin)} · `
      + `false-match rate ${d.false_match_rate ?? '–'}`),
    h('div', { class: 'evidence' },
      h('figure', {}, image(d.evidence?.face, 'face seen by the camera'), h('figcaption', {}, 'Seen')),
      h('figure', {}, image(d.evidence?.snapshot, 'camera snapshot with the face boxed', 'snapshot'), h('figcaption', {}, 'Snapshot')),
      h('figure', {}, enrolled ? image(enrolled, `enrolled photo of ${d.person}`) : h('p', { class: 'muted' }, 'no photo'),
        h('figcaption', {}, 'Enrolled'))),
    h('div', { class: 'row' }, confirm, reject,
      h('label', { class: 'inline', for: `add-${d.id}` }, addTemplate, 'on confirm, add this face to their photos')));
}

export async function render(view, { onPush }) {
  const queue = h('div', { class: 'grid cards' });
  const done = h('ol', { class: 'grid' });
  view.append(h('h2', {}, 'Review queue'), queue, h('h3', {}, 'Recently reviewed'), done);
  async function reload() {
    const [pending, confirmed, rejected] = await Promise.all([
      api('api/decisions', { query: { status: 'pending_review', limit: 20 } }),
      api('api/decisions', { query: { status: 'confirmed', limit: 5 } }),
      api('api/decisions', { query: { status: 'rejected', limit: 5 } }),
    ]);
    const faces = await Promise.all(pending.items.map((d) => enrolledFace(d.person_id)));
    queue.replaceChildren(...pending.items.map((d, i) => card(d, faces[i], reload)));
    if (!pending.items.length) queue.append(h('p', { class: 'muted' }, 'Nothing to review.'));
    const recent = [...confirmed.items, ...rejected.items]
      .sort((a, b) => (b.reviewed_at ?? 0) - (a.reviewed_at ?? 0));
    done.replaceChildren(...recent.map((d) => h('li', { class: 'card' },
      h('span', { class: `badge ${d.review_state}` }, d.review_state), ` ${d.person} on ${d.camera}`,
      h('span', { class: 'muted' }, ` by ${d.reviewer ?? '?'}, ${when(d.reviewed_at)}`))));
  }
  await reload();
  return onPush(() => reload());
}
