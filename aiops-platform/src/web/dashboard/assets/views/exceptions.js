// Exception groups: count, first / last seen, the last trace, and a sample stack trace.
import { api, items, query } from '../api.js';
import { badge, empty, h, serviceTag, swap } from '../dom.js';
import { ago, dateTime } from '../format.js';
import { fillServices, serviceSelect } from './traces.js';

function exceptionValues(event) {
  const ex = event && event.exception;
  if (Array.isArray(ex)) return ex;
  if (ex && Array.isArray(ex.values)) return ex.values;
  return [];
}

function framesOf(value, event) {
  let frames = value?.stacktrace?.frames;
  if (!frames && event && event.threads) {
    const threads = Array.isArray(event.threads) ? event.threads : event.threads.values || [];
    frames = threads.find((t) => t.stacktrace)?.stacktrace?.frames;
  }
  // Sentry lists frames oldest first; show the most recent call first, like a panic message.
  return (frames || []).slice().reverse();
}

function stackTrace(event) {
  const values = exceptionValues(event);
  if (values.length === 0) {
    const msg = event?.message?.formatted || event?.message?.message || event?.message || event?.logentry?.message;
    return msg ? h('pre', { class: 'stack' }, typeof msg === 'string' ? msg : JSON.stringify(msg)) : empty('The sample event has no stack trace.');
  }
  return values.slice().reverse().map((v) => {
    const frames = framesOf(v, event);
    return h('div', { class: 'exc-value' },
      h('p', {}, h('strong', {}, v.type || 'Error'), v.value ? `: ${v.value}` : ''),
      frames.length
        ? h('ol', { class: 'frames' }, frames.map((f) => h('li', { class: f.in_app ? 'in-app' : null },
          h('code', {}, f.function || '<unknown>'),
          (f.filename || f.abs_path || f.module) ? h('span', { class: 'muted' }, ` ${f.filename || f.abs_path || f.module}${f.lineno ? `:${f.lineno}` : ''}${f.colno ? `:${f.colno}` : ''}`) : null,
          f.in_app ? [' ', badge('app', 'accent')] : null)))
        : h('p', { class: 'muted' }, 'No frames.'));
  });
}

export function list(root, { params, navigate }) {
  const sel = serviceSelect('exc-service', params.get('service'), () => {
    navigate('/exceptions', { service: sel.value }, true);
    last = '';
    refresh();
  });
  const box = h('div');
  swap(root, h('h1', {}, 'Exceptions'),
    h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() },
      h('div', { class: 'field' }, h('label', { for: 'exc-service' }, 'Service'), sel)),
    box);
  const open = new Set();
  let last = '';

  async function refresh() {
    await fillServices(sel);
    const answer = await api(`exceptions${query({ service: sel.value, limit: 100 })}`);
    const data = JSON.stringify(answer);
    if (data === last) return;
    last = data;
    const groups = items(answer);
    if (groups.length === 0) {
      swap(box, empty(sel.value ? `No exceptions from ${sel.value}.` : 'No exceptions: services report them to the Sentry-compatible ingest (SENTRY_DSN).'));
      return;
    }
    swap(box, h('ul', { class: 'exc-list' }, groups.map((g) => {
      const key = `${g.service}/${g.fingerprint}`;
      const details = h('details', { open: open.has(key), ontoggle: (e) => (e.target.open ? open.add(key) : open.delete(key)) },
        h('summary', { 'data-key': `exc-${key}` }, 'Sample stack trace'),
        h('div', { class: 'exc-sample' },
          stackTrace(g.sample_event),
          g.sample_event?.tags ? h('p', { class: 'muted' }, 'Tags: ', Object.entries(g.sample_event.tags).map(([k, v]) => `${k}=${v}`).join(', ')) : null));
      return h('li', { class: 'card exc', dataset: { fingerprint: g.fingerprint } },
        h('div', { class: 'exc-head' },
          h('h2', { class: 'exc-title' }, g.title),
          h('span', { class: 'exc-count', title: `${g.count} events` }, badge(`×${g.count}`, g.level === 'error' || g.level === 'fatal' ? 'bad' : 'warn'))),
        h('p', { class: 'exc-meta' }, serviceTag(g.service),
          g.exception_type ? [' · ', h('code', {}, g.exception_type)] : null,
          ' · first seen ', h('time', { datetime: g.first_seen, title: dateTime(g.first_seen) }, ago(g.first_seen)),
          ' · last seen ', h('time', { datetime: g.last_seen, title: dateTime(g.last_seen) }, ago(g.last_seen)),
          g.last_trace_id ? [' · ', h('a', { href: `#/traces/${g.last_trace_id}` }, 'last trace')] : null,
          ' · ', h('a', { href: `#/logs?service=${encodeURIComponent(g.service)}${g.last_trace_id ? `&trace_id=${g.last_trace_id}` : ''}` }, 'logs')),
        details);
    })));
  }
  return { title: 'Exceptions', refresh };
}
