// Traces: recent traces (filter by service), and one trace as a span waterfall across services.
import { api, ApiError, items, query } from '../api.js';
import { badge, empty, h, serviceHue, serviceTag, swap, table, td } from '../dom.js';
import { clock, dateTime, duration } from '../format.js';

/** A `<select>` of services (first option: all). */
export function serviceSelect(id, selected, onChange) {
  const sel = h('select', { id, name: 'service', onchange: onChange },
    h('option', { value: '' }, 'All services'));
  sel.dataset.selected = selected || '';
  return sel;
}

/** Fills a service `<select>` from the API, keeping its selection. */
export async function fillServices(sel) {
  const names = items(await api('services?limit=1000')).map((s) => s.name).sort();
  const want = sel.value || sel.dataset.selected || '';
  const have = [...sel.options].map((o) => o.value).slice(1);
  if (want && !names.includes(want)) names.push(want);
  if (JSON.stringify(have) === JSON.stringify(names)) return;
  sel.replaceChildren(h('option', { value: '' }, 'All services'), ...names.map((n) => h('option', { value: n }, n)));
  sel.value = want;
}

export function list(root, { params, navigate }) {
  const sel = serviceSelect('trace-service', params.get('service'), () => {
    navigate('/traces', { service: sel.value }, true);
    last = '';
    refresh();
  });
  const idInput = h('input', { id: 'trace-id', name: 'trace_id', placeholder: '32 hex digits', pattern: '[0-9a-fA-F]{32}', size: 34, spellcheck: 'false', autocomplete: 'off' });
  const form = h('form', { class: 'filters', onsubmit: (e) => {
    e.preventDefault();
    const v = idInput.value.trim().toLowerCase();
    if (/^[0-9a-f]{32}$/.test(v)) {
      navigate(`/traces/${v}`);
    } else {
      idInput.setCustomValidity('A trace id is 32 hexadecimal digits.');
      idInput.reportValidity();
      idInput.setCustomValidity('');
    }
  } },
  h('div', { class: 'field' }, h('label', { for: 'trace-service' }, 'Service'), sel),
  h('div', { class: 'field' }, h('label', { for: 'trace-id' }, 'Open a trace id'), idInput),
  h('button', { type: 'submit' }, 'Open'));
  const box = h('div');
  swap(root, h('h1', {}, 'Traces'), form, box);
  let last = '';

  async function refresh() {
    await fillServices(sel);
    const answer = await api(`traces${query({ service: sel.value, limit: 100 })}`);
    const data = JSON.stringify(answer);
    if (data === last) return;
    last = data;
    const all = items(answer);
    swap(box, all.length
      ? table({
        caption: 'Latest traces, newest first', hideCaption: true,
        columns: [{ label: 'Started' }, { label: 'Root span' }, { label: 'Services' }, { label: 'Spans', className: 'num' }, { label: 'Errors', className: 'num' }, { label: 'Duration', className: 'num' }],
        rows: all.map((t) => h('tr', {},
          td('Started', h('time', { datetime: t.start_time, title: dateTime(t.start_time) }, clock(t.start_time))),
          h('th', { scope: 'row', 'data-label': 'Root span' }, h('a', { href: `#/traces/${t.trace_id}` }, t.root_name || t.trace_id), ' ', h('span', { class: 'muted' }, `(${t.root_service})`)),
          td('Services', h('span', { class: 'svcs' }, (t.services || []).map((n) => serviceTag(n)))),
          td('Spans', t.span_count, 'num'),
          td('Errors', t.error_count ? badge(String(t.error_count), 'bad') : '0', 'num'),
          td('Duration', duration(t.duration_ms), 'num'))),
        className: 'stack',
      })
      : empty(sel.value ? `No traces from ${sel.value} yet.` : 'No traces yet: services send them to /v1/traces (OTLP/HTTP).'));
  }
  return { title: 'Traces', refresh };
}

function flatten(nodes, depth, out) {
  for (const n of nodes) {
    out.push({ span: n, depth });
    flatten(n.children || [], depth + 1, out);
  }
  return out;
}

function attrRows(obj) {
  return Object.entries(obj || {}).map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, typeof v === 'object' ? JSON.stringify(v) : String(v))));
}

export function detail(root, { args }) {
  const id = args[0].toLowerCase();
  const box = h('div');
  swap(root, h('p', { class: 'crumbs' }, h('a', { href: '#/traces' }, 'Traces'), ' / ', h('code', {}, id)),
    h('h1', {}, 'Trace ', h('code', { class: 'id' }, id)), box);
  const open = new Set();
  let last = '';
  let lastTrace = null;

  function render(trace) {
    const rows = flatten(trace.spans || [], 0, []);
    let start = Infinity;
    let end = 0;
    for (const { span } of rows) {
      start = Math.min(start, span.start_unix_nano);
      end = Math.max(end, span.end_unix_nano);
    }
    const total = Math.max(1, end - start);
    const errors = rows.filter((r) => r.span.status && r.span.status.code === 'error').length;
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => h('span', { class: 'tick', style: { left: `${f * 100}%` } }, duration((total * f) / 1e6)));
    const body = [];
    for (const { span, depth } of rows) {
      const left = ((span.start_unix_nano - start) / total) * 100;
      const width = Math.max(0.4, ((span.end_unix_nano - span.start_unix_nano) / total) * 100);
      const isErr = span.status && span.status.code === 'error';
      const expanded = open.has(span.span_id);
      const toggle = h('button', {
        type: 'button', class: 'span-toggle', 'aria-expanded': expanded ? 'true' : 'false',
        'aria-controls': `span-${span.span_id}`, 'data-key': `span-${span.span_id}`,
        style: { 'padding-left': `${0.4 + depth * 1.1}rem` },
        onclick: () => {
          if (open.has(span.span_id)) open.delete(span.span_id); else open.add(span.span_id);
          render(lastTrace);
        },
      }, h('span', { class: 'caret', 'aria-hidden': 'true' }, expanded ? '▾' : '▸'), ' ', span.name);
      body.push(h('tr', { class: `span-row${isErr ? ' span-error' : ''}`, dataset: { spanId: span.span_id, service: span.service } },
        h('th', { scope: 'row', class: 'span-name' }, toggle),
        h('td', { class: 'span-svc' }, serviceTag(span.service)),
        h('td', { class: 'span-track' },
          h('div', { class: 'bar', style: { left: `${left}%`, width: `${width}%`, '--hue': String(serviceHue(span.service)) }, title: `${span.name}: starts +${duration((span.start_unix_nano - start) / 1e6)}, lasts ${duration(span.duration_ms)}` })),
        h('td', { class: 'num span-dur' }, duration(span.duration_ms), isErr ? [' ', badge('error', 'bad')] : null)));
      if (expanded) {
        body.push(h('tr', { id: `span-${span.span_id}`, class: 'span-detail' },
          h('td', { colspan: 4 },
            h('dl', { class: 'attrs' },
              h('div', {}, h('dt', {}, 'span id'), h('dd', {}, span.span_id)),
              h('div', {}, h('dt', {}, 'kind'), h('dd', {}, span.kind)),
              h('div', {}, h('dt', {}, 'start'), h('dd', {}, `${dateTime(span.start_time)} (${clock(span.start_unix_nano)})`)),
              h('div', {}, h('dt', {}, 'status'), h('dd', {}, `${span.status?.code || 'unset'}${span.status?.message ? `: ${span.status.message}` : ''}`)),
              attrRows(span.attributes)),
            (span.events || []).length ? h('div', {}, h('h3', {}, 'Events'), h('ul', { class: 'plain' }, span.events.map((e) => h('li', {},
              h('strong', {}, e.name), ' at ', clock(e.time_unix_nano), h('dl', { class: 'attrs' }, attrRows(e.attributes)))))) : null)));
      }
    }
    swap(box,
      h('dl', { class: 'kpis' },
        h('div', { class: 'kpi' }, h('dt', {}, 'Started'), h('dd', {}, dateTime(start / 1e6))),
        h('div', { class: 'kpi' }, h('dt', {}, 'Duration'), h('dd', {}, duration(total / 1e6))),
        h('div', { class: 'kpi' }, h('dt', {}, 'Spans'), h('dd', {}, String(trace.span_count ?? rows.length))),
        h('div', { class: 'kpi' }, h('dt', {}, 'Errors'), h('dd', {}, String(errors)))),
      h('p', {}, 'Services: ', h('span', { class: 'svcs' }, (trace.services || []).map((n) => serviceTag(n))), ' · ',
        h('a', { href: `#/logs?trace_id=${id}` }, 'Logs of this trace')),
      h('div', { class: 'waterfall-wrap' },
        h('table', { class: 'waterfall' },
          h('caption', { class: 'sr-only' }, 'Span waterfall: each span with its service, its position in time and its duration. Expand a span for its attributes.'),
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col' }, 'Span'), h('th', { scope: 'col' }, 'Service'),
            h('th', { scope: 'col', class: 'span-track' }, h('span', { class: 'sr-only' }, 'Timeline'), h('div', { class: 'ticks', 'aria-hidden': 'true' }, ticks)),
            h('th', { scope: 'col', class: 'num' }, 'Duration'))),
          h('tbody', {}, body))));
  }

  async function refresh() {
    let trace;
    try {
      trace = await api(`traces/${id}`);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 400)) {
        last = '';
        swap(box, h('p', {}, e.status === 404 ? 'This trace is not (or no longer) stored: it may not have arrived yet, or it is past retention.' : e.message, ' ', h('a', { href: '#/traces' }, 'Latest traces')));
        return;
      }
      throw e;
    }
    const data = JSON.stringify(trace);
    if (data === last) return;
    last = data;
    lastTrace = trace;
    render(trace);
  }
  return { title: `Trace ${id.slice(0, 8)}`, refresh };
}
