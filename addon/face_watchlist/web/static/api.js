// The API client: relative URLs (they work under the ingress prefix), the bearer token when the
// page is opened outside Home Assistant, images fetched with the same credentials, and the live
// stream read with fetch (EventSource cannot send an Authorization header).
const TOKEN_KEY = 'face-watchlist-token';

export const auth = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set(token) { sessionStorage.setItem(TOKEN_KEY, token); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); },
};

export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

function headers(extra = {}) {
  return auth.token ? { ...extra, Authorization: `Bearer ${auth.token}` } : extra;
}

export function url(path, query) {
  const target = new URL(path.replace(/^\//, ''), document.baseURI);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') target.searchParams.set(key, value);
  }
  return target;
}

export async function api(path, { method = 'GET', json, form, query } = {}) {
  const init = { method, headers: headers(), credentials: 'same-origin' };
  if (json !== undefined) { init.headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(json); }
  if (form) init.body = form;
  const response = await fetch(url(path, query), init);
  if (response.status === 401) window.dispatchEvent(new CustomEvent('fw-unauthorized'));
  if (!response.ok) {
    let body = {};
    try { body = await response.json(); } catch { /* not JSON: keep the status text */ }
    throw new ApiError(response.status, body.error || 'error', body.message || response.statusText);
  }
  if (response.status === 204) return null;
  return response.json();
}

const images = new Map(); // path -> object URL, the most recent 300 kept
export async function imageUrl(path) {
  if (images.has(path)) return images.get(path);
  const response = await fetch(url(path), { headers: headers(), credentials: 'same-origin' });
  if (!response.ok) throw new ApiError(response.status, 'image', path);
  const objectUrl = URL.createObjectURL(await response.blob());
  images.set(path, objectUrl);
  if (images.size > 300) {
    const [oldest, old] = images.entries().next().value;
    images.delete(oldest);
    URL.revokeObjectURL(old);
  }
  return objectUrl;
}

export function image(path, alt, className = '') {
  const el = document.createElement('img');
  el.alt = alt;
  if (className) el.className = className;
  if (path) imageUrl(path).then((src) => { el.src = src; }).catch(() => { el.alt = `${alt} (unavailable)`; });
  return el;
}

// Server-Sent Events over fetch; reconnects with backoff. Returns a function that stops it.
export function stream(onEvent) {
  let stopped = false;
  let controller;
  let delay = 1000;
  async function run() {
    while (!stopped) {
      controller = new AbortController();
      try {
        const response = await fetch(url('api/stream'), { headers: headers(), signal: controller.signal });
        if (!response.ok) throw new Error(`stream: HTTP ${response.status}`);
        delay = 1000;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const frame = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let kind = 'message';
            let data = '';
            for (const line of frame.split('\n')) {
              if (line.startsWith('event: ')) kind = line.slice(7);
              else if (line.startsWith('data: ')) data += line.slice(6);
            }
            if (data) onEvent(kind, JSON.parse(data));
          }
        }
      } catch (err) {
        if (stopped) return;
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }
  run();
  return () => { stopped = true; controller?.abort(); };
}
