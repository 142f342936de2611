// A tiny DOM builder: text always goes through text nodes, never innerHTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el, child) {
  if (child === null || child === undefined || child === false || child === true) return;
  if (Array.isArray(child)) {
    for (const c of child) append(el, c);
  } else if (child instanceof Node) {
    el.appendChild(child);
  } else {
    el.appendChild(document.createTextNode(String(child)));
  }
}

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'style' && typeof v === 'object') {
      for (const [p, val] of Object.entries(v)) el.style.setProperty(p, val);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'value' && 'value' in el) {
      el.value = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

/** `h('a', {href: '#/'}, 'home')`. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/**
 * Replaces the children of `container`, keeping focus on the element with the same
 * `data-key` when the focused element was inside it (live refreshes must not steal focus).
 */
export function swap(container, ...children) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.key : undefined;
  container.replaceChildren();
  append(container, children);
  if (key) {
    const again = container.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

/** A table with a caption (visually hidden when `hideCaption`), header cells and rows. */
export function table({ caption, hideCaption = false, columns, rows, className = '' }) {
  return h('table', { class: `data ${className}`.trim() },
    caption ? h('caption', { class: hideCaption ? 'sr-only' : null }, caption) : null,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.className || null }, c.label)))),
    h('tbody', {}, rows));
}

/** A data cell labelled for the stacked narrow layout. */
export function td(label, content, className) {
  return h('td', { 'data-label': label, class: className || null }, content);
}

/** A badge: `<span class="badge badge-{tone}">text</span>`. */
export function badge(text, tone = 'neutral', title) {
  return h('span', { class: `badge badge-${tone}`, title: title || null }, text);
}

/** An empty-state paragraph. */
export function empty(text) {
  return h('p', { class: 'empty' }, text);
}

/** A stable colour for a service name (hue from a string hash). */
export function serviceHue(name) {
  let x = 0;
  for (const c of name || '') x = (x * 31 + c.charCodeAt(0)) >>> 0;
  return x % 360;
}

/** A service name with its colour dot. */
export function serviceTag(name) {
  return h('span', { class: 'svc', style: { '--hue': String(serviceHue(name)) } }, name || '—');
}
