// A tiny element builder: h('button', {class: 'primary', onclick}, 'Save').
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function toast(message, isError = false) {
  const box = document.getElementById('toast');
  box.textContent = message;
  box.className = isError ? 'error' : '';
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.textContent = ''; }, 5000);
}

export function when(seconds) {
  if (seconds === null || seconds === undefined) return '';
  const date = typeof seconds === 'number' ? new Date(seconds * 1000) : new Date(seconds);
  return date.toLocaleString();
}

export function pct(value, digits = 2) {
  return value === null || value === undefined ? '–' : Number(value).toFixed(digits);
}
