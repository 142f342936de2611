// Incidents: the list, and one incident's timeline (failure start → detection → actions →
// recovery) with MTTD / MTTR / downtime, its evidence, its actions and the approve button.
import { api, ApiError, items, optional, query } from '../api.js';
import { badge, empty, h, serviceTag, swap, table, td } from '../dom.js';
import { ago, clock, dateTime, duration, toMs } from '../format.js';

function statusBadge(inc) {
  if (inc.status === 'open') {
    return pending(inc).length
      ? badge('awaiting approval', 'warn')
      : badge('open', 'bad');
  }
  return badge(inc.status || 'unknown', inc.status === 'resolved' ? 'ok' : 'neutral');
}

function pending(inc) {
  return (inc.actions || []).filter((a) => a.status === 'pending_approval');
}

function incidentLink(inc) {
  return h('a', { href: `#/incidents/${encodeURIComponent(inc.id)}` }, inc.title || inc.kind || inc.id);
}

/** Columns of an incident table. */
export const incidentColumns = [
  { label: 'Incident' }, { label: 'Service' }, { label: 'Status' }, { label: 'Failure start' },
  { label: 'MTTD', className: 'num' }, { label: 'MTTR', className: 'num' }, { label: 'Downtime', className: 'num' },
  { label: 'Restarts', className: 'num' },
];

/** Rows of an incident table. */
export function incidentRows(list) {
  return list.map((inc) => h('tr', { dataset: { incident: inc.id, status: inc.status } },
    h('th', { scope: 'row', 'data-label': 'Incident' }, incidentLink(inc)),
    td('Service', serviceTag(inc.service)),
    td('Status', statusBadge(inc)),
    td('Failure start', h('time', { datetime: inc.failure_start }, dateTime(inc.failure_start))),
    td('MTTD', duration(inc.mttd_ms), 'num'),
    td('MTTR', duration(inc.mttr_ms), 'num'),
    td('Downtime', duration(inc.downtime_ms), 'num'),
    td('Restarts', inc.restarts ?? '—', 'num')));
}

/** The cards of open incidents shown on top of the overview. */
export function openIncidentCards(open) {
  return h('ul', { class: 'incident-cards' }, open.map((inc) => h('li', {
    class: 'card incident-card', dataset: { incident: inc.id, status: inc.status },
  },
  h('h3', {}, incidentLink(inc)),
  h('p', {}, serviceTag(inc.service), ' ', statusBadge(inc),
    inc.needs_attention ? [' ', badge('needs a human', 'bad', inc.attention_reason)] : null),
  h('dl', { class: 'facts' },
    h('div', {}, h('dt', {}, 'Failing since'), h('dd', {}, h('time', { datetime: inc.failure_start }, ago(inc.failure_start)))),
    h('div', {}, h('dt', {}, 'MTTD'), h('dd', {}, duration(inc.mttd_ms))),
    inc.probable_root_cause
      ? h('div', {}, h('dt', {}, 'Probable root cause'), h('dd', {}, serviceTag(inc.probable_root_cause)))
      : null),
  pending(inc).length
    ? h('p', {}, h('a', { href: `#/incidents/${encodeURIComponent(inc.id)}`, class: 'button primary' }, `Review ${pending(inc).length} action(s) waiting for approval`))
    : null)));
}

export function list(root) {
  const box = h('div');
  swap(root, h('h1', {}, 'Incidents'), box);
  let last = '';
  async function refresh() {
    const answer = await optional(`incidents${query({ limit: 200 })}`, null);
    const data = JSON.stringify(answer);
    if (data === last) return;
    last = data;
    if (answer === null) {
      swap(box, empty('Incident detection is not available on this platform.'));
      return;
    }
    const all = items(answer);
    swap(box, all.length
      ? table({ caption: 'Incidents, newest first', hideCaption: true, columns: incidentColumns, rows: incidentRows(all), className: 'stack' })
      : empty('No incidents so far.'));
  }
  return { title: 'Incidents', refresh };
}

/** A horizontal bar from failure start to recovery (or now), with markers. */
function timelineBar(inc) {
  const t0 = toMs(inc.failure_start_unix_nano ?? inc.failure_start);
  const end = toMs(inc.recovered_unix_nano ?? inc.recovered_at) || Date.now();
  const span = Math.max(1, end - t0);
  const x = (t) => `${Math.min(100, Math.max(0, ((toMs(t) - t0) / span) * 100)).toFixed(2)}%`;
  const detected = inc.detected_unix_nano ?? inc.detected_at;
  const marks = [
    ['failure', inc.failure_start_unix_nano ?? inc.failure_start, 'failure start'],
    ['detected', detected, `detected (+${duration(inc.mttd_ms)})`],
    ...(inc.actions || []).map((a) => ['action', a.created_unix_nano ?? a.created_at, `${a.what} ${a.status || ''}`]),
  ];
  if (inc.recovered_at) marks.push(['recovered', inc.recovered_unix_nano ?? inc.recovered_at, `recovered (+${duration(inc.downtime_ms)})`]);
  return h('figure', { class: 'tl-figure' },
    h('div', { class: 'tl-track', role: 'img', 'aria-label': `From failure start to ${inc.recovered_at ? 'recovery' : 'now'}: ${duration(span)}; detection after ${duration(inc.mttd_ms)}${inc.mttr_ms != null ? `, recovery ${duration(inc.mttr_ms)} after detection` : ''}.` },
      h('div', { class: 'tl-seg tl-detect', style: { left: '0%', width: x(detected) } }),
      h('div', { class: `tl-seg ${inc.recovered_at ? 'tl-repair' : 'tl-ongoing'}`, style: { left: x(detected), width: `calc(100% - ${x(detected)})` } }),
      marks.map(([kind, t, label]) => h('span', { class: `tl-mark tl-${kind}`, style: { left: x(t) }, title: `${label} at ${clock(t)}` }))),
    h('figcaption', { class: 'tl-legend' },
      h('span', { class: 'lg lg-detect' }, 'to detection (MTTD)'),
      h('span', { class: `lg ${inc.recovered_at ? 'lg-repair' : 'lg-ongoing'}` }, inc.recovered_at ? 'to recovery (MTTR)' : 'not recovered yet'),
      h('span', { class: 'lg lg-action' }, 'action')));
}

function detailText(detail) {
  if (detail === null || detail === undefined) return '';
  if (typeof detail !== 'object') return String(detail);
  return Object.entries(detail).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' · ');
}

function traceLinks(detail) {
  const ids = new Set();
  const walk = (v) => {
    if (typeof v === 'string' && /^[0-9a-f]{32}$/.test(v)) ids.add(v);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(detail);
  return [...ids].map((id) => [' ', h('a', { href: `#/traces/${id}` }, `trace ${id.slice(0, 8)}`)]);
}

function actionTone(status) {
  return { executed: 'ok', failed: 'bad', pending_approval: 'warn', scheduled: 'neutral', skipped: 'neutral', dry_run: 'neutral' }[status] || 'neutral';
}

export function detail(root, { args }) {
  const id = decodeURIComponent(args[0]);
  const head = h('div');
  const body = h('div');
  const approveMsg = h('p', { role: 'status', class: 'approve-msg' });
  swap(root, head, body);
  let last = '';
  let approving = false;

  async function approve() {
    approving = true;
    approveMsg.textContent = 'Approving…';
    try {
      // The audit record names the dashboard as the approver (`api:dashboard`).
      await api(`incidents/${encodeURIComponent(id)}/approve`, { method: 'POST', body: {}, headers: { 'X-Aiops-User': 'dashboard' } });
      approveMsg.textContent = 'Approved: the platform is acting now.';
      last = '';
      await refresh();
    } catch (e) {
      approveMsg.textContent = `Approval failed: ${e.message}`;
    } finally {
      approving = false;
    }
  }

  async function refresh() {
    let inc;
    try {
      inc = await api(`incidents/${encodeURIComponent(id)}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        swap(head, h('h1', {}, 'Incident not found'));
        swap(body, h('p', {}, `No incident ${id}. `, h('a', { href: '#/incidents' }, 'All incidents')));
        return;
      }
      throw e;
    }
    inc = inc && inc.incident ? inc.incident : inc;
    const t0 = toMs(inc.failure_start_unix_nano ?? inc.failure_start);
    const end = toMs(inc.recovered_unix_nano ?? inc.recovered_at) || Date.now();
    const from = t0 - 30000;
    const to = end + 10000;
    const [tr, ex] = await Promise.all([
      api(`traces${query({ service: inc.service, limit: 200 })}`).then(items).catch(() => []),
      api(`exceptions${query({ service: inc.service, limit: 50 })}`).then(items).catch(() => []),
    ]);
    const inWindow = (t) => toMs(t) >= from && toMs(t) <= to;
    const traces = tr.filter((t) => inWindow(t.start_unix_nano ?? t.start_time))
      .sort((a, b) => (b.error_count - a.error_count) || (toMs(b.start_time) - toMs(a.start_time))).slice(0, 10);
    const excs = ex.filter((g) => inWindow(g.last_seen_unix_nano ?? g.last_seen));
    const data = JSON.stringify([inc, traces, excs]);
    if (data === last) return;
    last = data;

    const waiting = pending(inc);
    swap(head,
      h('p', { class: 'crumbs' }, h('a', { href: '#/incidents' }, 'Incidents'), ' / ', h('code', {}, inc.id)),
      h('h1', {}, inc.title || `Incident in ${inc.service}`),
      h('p', { class: 'lead' }, serviceTag(inc.service), ' ', statusBadge(inc),
        inc.kind ? [' ', badge(inc.kind)] : null,
        (inc.signals || []).map((sig) => [' ', badge(sig.replace(/_/g, ' '), 'neutral')]),
        inc.needs_attention ? [' ', badge('needs a human', 'bad')] : null),
      inc.attention_reason ? h('p', { class: 'error' }, inc.attention_reason) : null,
      inc.probable_root_cause
        ? h('p', {}, 'Probable root cause: ', serviceTag(inc.probable_root_cause), ' (an upstream dependency failing at the same time).')
        : null);

    const dts = [
      ['Failure start', dateTime(inc.failure_start), inc.failure_start],
      ['MTTD', duration(inc.mttd_ms), null],
      ['MTTR', inc.mttr_ms != null ? duration(inc.mttr_ms) : 'not recovered', null],
      ['Downtime', inc.downtime_ms != null ? duration(inc.downtime_ms) : `${duration(Date.now() - t0)} so far`, null],
    ];
    const timeline = (inc.timeline || []).slice().sort((a, b) => toMs(a.at_unix_nano ?? a.at) - toMs(b.at_unix_nano ?? b.at));
    swap(body,
      waiting.length ? h('section', { class: 'card approve', 'aria-labelledby': 'approve-h' },
        h('h2', { id: 'approve-h' }, 'Waiting for approval'),
        h('p', {}, `The platform runs in approval mode: ${waiting.length} action(s) wait for a human.`),
        h('ul', {}, waiting.map((a) => h('li', {}, h('strong', {}, a.what), a.instance ? ` on ${a.instance}` : '', ` — ${a.why}`))),
        h('button', { type: 'button', class: 'primary', 'data-key': 'approve', disabled: approving, onclick: approve }, 'Approve and act'),
        approveMsg) : approveMsg,
      h('section', { 'aria-labelledby': 'times-h' },
        h('h2', { id: 'times-h' }, 'Times'),
        h('dl', { class: 'kpis' }, dts.map(([k, v]) => h('div', { class: 'kpi' }, h('dt', {}, k), h('dd', {}, v)))),
        timelineBar(inc)),
      h('section', { 'aria-labelledby': 'timeline-h' },
        h('h2', { id: 'timeline-h' }, 'Timeline'),
        timeline.length
          ? h('ol', { class: 'timeline' }, timeline.map((e) => h('li', { class: `tl-${e.kind}` },
            h('time', { datetime: e.at }, clock(e.at_unix_nano ?? e.at)),
            h('span', { class: 'tl-offset' }, `+${duration(toMs(e.at_unix_nano ?? e.at) - t0)}`),
            badge((e.kind || '').replace(/_/g, ' '), { failure_start: 'bad', detected: 'warn', recovered: 'ok', resolved: 'ok', action: 'accent' }[e.kind] || 'neutral'),
            h('span', { class: 'tl-msg' }, e.message))))
          : empty('No timeline entries.')),
      h('section', { 'aria-labelledby': 'evidence-h' },
        h('h2', { id: 'evidence-h' }, 'Evidence'),
        (inc.evidence || []).length
          ? table({
            caption: 'Signals that opened or kept the incident open, oldest first', hideCaption: true,
            columns: [{ label: 'When' }, { label: 'Signal' }, { label: 'Instance' }, { label: 'Detail' }],
            rows: inc.evidence.map((e) => h('tr', {},
              td('When', h('time', { datetime: e.at }, clock(e.at_unix_nano ?? e.at))),
              td('Signal', badge((e.signal || '').replace(/_/g, ' '))),
              td('Instance', e.instance || '—'),
              td('Detail', h('span', { class: 'detail' }, detailText(e.detail), traceLinks(e.detail))))),
            className: 'stack',
          })
          : empty('No evidence recorded.'),
        inc.evidence_dropped ? h('p', { class: 'muted' }, `${inc.evidence_dropped} more evidence items not kept.`) : null),
      h('section', { 'aria-labelledby': 'actions-h' },
        h('h2', { id: 'actions-h' }, 'Actions'),
        (inc.actions || []).length
          ? table({
            caption: 'Every action, audited: who, what, why, when and the result', hideCaption: true,
            columns: [{ label: 'When' }, { label: 'What' }, { label: 'Who' }, { label: 'Why' }, { label: 'Status' }, { label: 'Result' }],
            rows: inc.actions.map((a) => h('tr', { dataset: { action: a.id || '' } },
              td('When', h('time', { datetime: a.created_at }, clock(a.created_unix_nano ?? a.created_at))),
              td('What', [h('strong', {}, a.what), a.instance ? ` ${a.instance}` : '', a.delay_ms ? h('span', { class: 'muted' }, ` after ${duration(a.delay_ms)}`) : '']),
              td('Who', [a.who, a.approved_by ? h('span', { class: 'muted' }, ` (approved by ${a.approved_by})`) : '']),
              td('Why', a.why),
              td('Status', badge((a.status || '').replace(/_/g, ' '), actionTone(a.status))),
              td('Result', [a.result || '—', a.executed_at ? h('span', { class: 'muted' }, ` at ${clock(a.executed_at)}`) : '']))),
            className: 'stack',
          })
          : empty('No actions taken.')),
      h('section', { 'aria-labelledby': 'itraces-h' },
        h('h2', { id: 'itraces-h' }, `Traces of ${inc.service} around the incident`),
        traces.length
          ? h('ul', { class: 'plain' }, traces.map((t) => h('li', {},
            h('a', { href: `#/traces/${t.trace_id}` }, h('code', {}, t.trace_id.slice(0, 8)), ' ', t.root_name),
            ' ', h('span', { class: 'muted' }, `${clock(t.start_time)} · ${duration(t.duration_ms)} · ${t.span_count} spans`),
            t.error_count ? [' ', badge(`${t.error_count} errors`, 'bad')] : null)))
          : empty('No traces from this service in the incident window.'),
        h('p', {}, h('a', { href: `#/logs?service=${encodeURIComponent(inc.service)}&level=warn` }, `Warnings and errors logged by ${inc.service}`))),
      excs.length ? h('section', { 'aria-labelledby': 'iexc-h' },
        h('h2', { id: 'iexc-h' }, 'Exceptions in the incident window'),
        h('ul', { class: 'plain' }, excs.map((g) => h('li', {},
          h('a', { href: `#/exceptions?service=${encodeURIComponent(g.service)}` }, g.title),
          ' ', badge(`×${g.count}`), g.last_trace_id ? [' ', h('a', { href: `#/traces/${g.last_trace_id}` }, 'last trace')] : null)))) : null);
  }

  return { title: `Incident ${id}`, refresh };
}
