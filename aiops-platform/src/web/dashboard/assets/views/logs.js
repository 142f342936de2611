// Recent logs, filtered by service, minimum level and trace id; newest first.
import { api, items, query } from '../api.js';
import { badge, empty, h, serviceTag, swap, table, td } from '../dom.js';
import { clock, dateTime } from '../format.js';
import { fillServices, serviceSelect } from './traces.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

function levelTone(level) {
  return { error: 'bad', fatal: 'bad', warn: 'warn', info: 'accent' }[level] || 'neutral';
}

export function list(root, { params, navigate }) {
  const apply = () => {
    const tid = traceInput.value.trim().toLowerCase();
    if (tid && !/^[0-9a-f]{32}$/.test(tid)) {
      traceInput.setAttribute('aria-invalid', 'true');
      hint.textContent = 'A trace id is 32 hexadecimal digits.';
      return;
    }
    traceInput.removeAttribute('aria-invalid');
    hint.textContent = '';
    navigate('/logs', { service: sel.value, level: levelSel.value, trace_id: tid }, true);
    last = '';
    refresh();
  };
  const sel = serviceSelect('log-service', params.get('service'), apply);
  const levelSel = h('select', { id: 'log-level', name: 'level', onchange: apply },
    h('option', { value: '' }, 'Any level'),
    LEVELS.map((l) => h('option', { value: l }, `${l} and above`)));
  levelSel.value = LEVELS.includes(params.get('level')) ? params.get('level') : '';
  const traceInput = h('input', {
    id: 'log-trace', name: 'trace_id', value: params.get('trace_id') || '', placeholder: '32 hex digits',
    size: 34, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'log-trace-hint',
  });
  const hint = h('span', { id: 'log-trace-hint', class: 'error', 'aria-live': 'polite' });
  const form = h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); apply(); } },
    h('div', { class: 'field' }, h('label', { for: 'log-service' }, 'Service'), sel),
    h('div', { class: 'field' }, h('label', { for: 'log-level' }, 'Level'), levelSel),
    h('div', { class: 'field' }, h('label', { for: 'log-trace' }, 'Trace id'), traceInput, hint),
    h('button', { type: 'submit' }, 'Filter'),
    h('button', { type: 'button', class: 'link', onclick: () => { sel.value = ''; levelSel.value = ''; traceInput.value = ''; apply(); } }, 'Clear'));
  const box = h('div');
  swap(root, h('h1', {}, 'Logs'), form, box);
  let last = '';

  async function refresh() {
    await fillServices(sel);
    const tid = traceInput.value.trim().toLowerCase();
    const answer = await api(`logs${query({ service: sel.value, level: levelSel.value, trace_id: /^[0-9a-f]{32}$/.test(tid) ? tid : '', limit: 200 })}`);
    const data = JSON.stringify(answer);
    if (data === last) return;
    last = data;
    const records = items(answer);
    swap(box, records.length
      ? table({
        caption: 'Latest log records, newest first (up to 200)', hideCaption: true,
        columns: [{ label: 'Time' }, { label: 'Level' }, { label: 'Service' }, { label: 'Message' }, { label: 'Trace' }],
        rows: records.map((r) => h('tr', { class: `log-${r.level}` },
          td('Time', h('time', { datetime: r.timestamp, title: dateTime(r.timestamp) }, clock(r.timestamp))),
          td('Level', badge(r.level, levelTone(r.level))),
          td('Service', serviceTag(r.service)),
          td('Message', h('span', { class: 'log-msg' }, r.message, r.target ? h('span', { class: 'muted' }, ` ${r.target}`) : null)),
          td('Trace', r.trace_id ? h('a', { href: `#/traces/${r.trace_id}`, title: r.trace_id }, h('code', {}, r.trace_id.slice(0, 8))) : '—'))),
        className: 'stack logs',
      })
      : empty('No log records match.'));
  }
  return { title: 'Logs', refresh };
}
