// The shell: hash routing between pages, the sign-in dialog, the live stream shared by pages.
import { api, auth, stream } from './api.js';
import { toast } from './dom.js';
import * as live from './pages/live.js';
import * as review from './pages/review.js';
import * as people from './pages/people.js';
import * as importPage from './pages/import.js';
import * as audit from './pages/audit.js';
import * as health from './pages/health.js';

const pages = { live, review, people, import: importPage, audit, health };
const view = document.getElementById('view');
const listeners = new Set();
let cleanup = null;
let stopStream = null;

// pages subscribe to pushed `decision` and `review` events while they are shown
export function onPush(callback) { listeners.add(callback); return () => listeners.delete(callback); }

async function updatePending() {
  try {
    const page = await api('api/decisions', { query: { status: 'pending_review', limit: 1 } });
    const badge = document.getElementById('pending');
    badge.textContent = page.total;
    badge.hidden = page.total === 0;
    badge.setAttribute('aria-label', `${page.total} pending`);
  } catch { /* the badge is a hint only */ }
}

function startStream() {
  stopStream?.();
  stopStream = stream((kind, data) => {
    if (kind === 'hello') return;
    for (const callback of listeners) callback(kind, data);
    updatePending();
  });
}

async function show() {
  const name = (location.hash.replace(/^#\/?/, '').split('?')[0]) || 'review';
  const page = pages[name] || pages.review;
  for (const link of document.querySelectorAll('nav a')) {
    if (link.getAttribute('href') === `#/${name}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  cleanup?.();
  view.replaceChildren();
  try {
    cleanup = (await page.render(view, { onPush })) || null;
  } catch (err) {
    if (err.status !== 401) toast(err.message, true);
  }
  view.focus();
}

function signIn() {
  const dialog = document.getElementById('login');
  if (!dialog.open) dialog.showModal();
}

document.getElementById('login-form').addEventListener('submit', () => {
  auth.set(document.getElementById('login-token').value.trim());
  startStream();
  updatePending();
  show();
});
window.addEventListener('fw-unauthorized', () => { auth.clear(); signIn(); });
window.addEventListener('hashchange', show);
startStream();
updatePending();
show();
