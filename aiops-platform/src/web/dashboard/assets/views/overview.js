// Overview: open incidents on top, then every service and instance with its health and
// request rate / error rate / p95 latency sparklines, then recent incidents.
import { api, items, optional, query } from '../api.js';
import { sparkline } from '../charts.js';
import { badge, empty, h, serviceTag, swap, table, td } from '../dom.js';
import { ago, count, duration, percent } from '../format.js';
import { HISTOGRAM, requestSeries } from '../rates.js';
import { incidentRows, incidentColumns, openIncidentCards } from './incidents.js';

// Instance states (supervisor) → [live, ready].
const STATE = {
  ready: [true, true],
  unready: [true, false],
  starting: [true, false],
  hung: [false, false],
  stopping: [null, false],
  exited: [false, false],
  backing_off: [false, false],
  waiting_approval: [false, false],
  given_up: [false, false],
};

function tone(state) {
  if (state === 'ready' || state === 'up') return 'ok';
  if (state === 'starting' || state === 'unready' || state === 'stopping' || state === 'external') return 'warn';
  if (!state || state === 'unknown') return 'neutral';
  return 'bad';
}

function yesNo(v, what) {
  if (v === true) return badge('yes', 'ok', `${what}: yes`);
  if (v === false) return badge('no', 'bad', `${what}: no`);
  return h('span', { class: 'muted', title: `${what}: unknown` }, '—');
}

async function allPages(path, params, maxPages = 5) {
  const out = [];
  let cursor;
  for (let i = 0; i < maxPages; i++) {
    const page = await api(path + query({ ...params, cursor }));
    out.push(...items(page));
    cursor = page && page.next_cursor;
    if (!cursor) break;
  }
  return out;
}

/** Instances per service, from the services answer or the supervisor's own list. */
function instancesOf(service, all) {
  if (Array.isArray(service.instances)) return service.instances;
  return all.filter((i) => i.service === service.name);
}

function instanceChip(inst) {
  const state = inst.status || inst.state || 'unknown';
  const detail = [
    inst.pid ? `pid ${inst.pid}` : null,
    inst.addr || inst.url || null,
    inst.last_exit ? `last exit: ${inst.last_exit}` : null,
  ].filter(Boolean).join(' · ');
  return h('li', { class: `chip chip-${tone(state)}`, title: detail || null },
    h('span', { class: 'chip-name' }, inst.id || `${inst.service}#${inst.index}`),
    ' ', h('span', { class: 'chip-state' }, state.replace(/_/g, ' ')));
}

export function overview(root) {
  const incidentsBox = h('section', { 'aria-labelledby': 'open-h' });
  const servicesBox = h('section', { 'aria-labelledby': 'svc-h' });
  const recentBox = h('section', { 'aria-labelledby': 'recent-h' });
  swap(root,
    h('h1', {}, 'Overview'),
    incidentsBox, servicesBox, recentBox);
  let last = '';

  async function refresh() {
    const [services, incidentList, instances, up, hist, gateway] = await Promise.all([
      allPages('services', { limit: 1000 }, 2),
      optional('incidents?limit=100', null),
      optional('instances', null),
      allPages('metrics', { name: 'up', limit: 1000, points: 1 }, 1),
      allPages('metrics', { name: HISTOGRAM, limit: 1000, points: 60 }, 5),
      optional('dashboard/requests?bucket_secs=15&buckets=20', null),
    ]);
    const data = JSON.stringify([services, incidentList, instances, up, hist, gateway]);
    if (data === last) return;
    last = data;
    const incs = incidentList === null ? null : items(incidentList);
    const allInstances = items(instances);
    // What clients saw through the gateway first; else the services' own scraped histograms.
    const stats = requestSeries(hist);
    for (const [name, g] of Object.entries((gateway && gateway.services) || {})) {
      if (g.rate.some((r) => r > 0) || !stats.has(name)) {
        stats.set(name, { rate: g.rate, errorRate: g.error_rate, p95: g.p95_ms, source: 'gateway' });
      }
    }
    const upBy = new Map();
    for (const s of up) {
      const list = upBy.get(s.service) || [];
      list.push(s.last_value === 1);
      upBy.set(s.service, list);
    }
    const names = new Set(services.map((s) => s.name));
    for (const i of allInstances) {
      if (i.service && !names.has(i.service)) {
        services.push({ name: i.service });
        names.add(i.service);
      }
    }
    services.sort((a, b) => a.name.localeCompare(b.name));

    // Open incidents first: what an operator must see.
    const open = incs ? incs.filter((i) => i.status === 'open') : [];
    swap(incidentsBox,
      h('h2', { id: 'open-h' }, 'Open incidents ', open.length ? badge(String(open.length), 'bad') : null),
      incs === null
        ? empty('Incident detection is not available on this platform.')
        : open.length ? openIncidentCards(open) : h('p', { class: 'allclear' }, '✓ No open incidents.'));

    const openBy = new Set(open.map((i) => i.service));
    const rows = services.map((svc) => {
      const insts = instancesOf(svc, allInstances);
      const st = stats.get(svc.name);
      const ups = upBy.get(svc.name) || [];
      let liveV = null;
      let readyV = null;
      if (insts.length) {
        const states = insts.map((i) => STATE[i.status] || [null, null]);
        const lives = states.map((x) => x[0]).filter((x) => x !== null);
        const readies = states.map((x) => x[1]).filter((x) => x !== null);
        if (lives.length) liveV = lives.every(Boolean);
        if (readies.length) readyV = readies.every(Boolean);
        if (insts.some((i) => i.live === false)) liveV = false;
        if (insts.some((i) => i.ready === false)) readyV = false;
      } else if (ups.length) {
        liveV = ups.every(Boolean);
      }
      const restarts = insts.reduce((n, i) => n + (i.restarts || 0), 0);
      const rateNow = st ? [...st.rate].reverse().find((v) => v !== null) : null;
      const errNow = st ? [...st.errorRate].reverse().find((v) => v !== null) : null;
      const p95Now = st ? [...st.p95].reverse().find((v) => v !== null) : null;
      const lastSeen = svc.last_seen;
      return h('tr', { class: openBy.has(svc.name) ? 'row-alert' : null, dataset: { service: svc.name } },
        h('th', { scope: 'row', 'data-label': 'Service' }, serviceTag(svc.name),
          openBy.has(svc.name) ? [' ', badge('incident', 'bad')] : null),
        td('Instances', insts.length
          ? h('ul', { class: 'chips', 'aria-label': `instances of ${svc.name}` }, insts.map(instanceChip))
          : h('span', { class: 'muted' }, ups.length ? `${ups.length} scrape target${ups.length > 1 ? 's' : ''}` : 'not supervised')),
        td('Live', yesNo(liveV, 'live')),
        td('Ready', yesNo(readyV, 'ready')),
        td('Restarts', insts.length ? String(restarts) : '—', 'num'),
        td('Requests/s', h('div', { class: 'metric' },
          sparkline(st ? st.rate : [], { label: `${svc.name} requests per second`, format: count }),
          h('span', { class: 'metric-now' }, count(rateNow)))),
        td('Errors', h('div', { class: 'metric' },
          sparkline(st ? st.errorRate : [], { label: `${svc.name} error rate`, format: percent, tone: 'bad' }),
          h('span', { class: 'metric-now' }, percent(errNow)))),
        td('p95 latency', h('div', { class: 'metric' },
          sparkline(st ? st.p95 : [], { label: `${svc.name} p95 latency`, format: duration, tone: 'warn' }),
          h('span', { class: 'metric-now' }, duration(p95Now)))),
        td('Last seen', lastSeen ? h('time', { datetime: lastSeen, title: lastSeen }, ago(lastSeen)) : '—'));
    });
    swap(servicesBox,
      h('h2', { id: 'svc-h' }, 'Services'),
      services.length
        ? table({
          caption: 'Every service and instance. Sparklines: the last 5 minutes in 15 s steps, from the gateway (what clients saw) or the services\' scraped request histograms.',
          columns: [
            { label: 'Service' }, { label: 'Instances' }, { label: 'Live' }, { label: 'Ready' },
            { label: 'Restarts', className: 'num' }, { label: 'Requests/s' }, { label: 'Errors' },
            { label: 'p95 latency' }, { label: 'Last seen' },
          ],
          rows,
          className: 'services stack',
        })
        : empty('No services yet: configure them in the topology file, or send telemetry to this listener.'));

    const recent = incs ? incs.filter((i) => i.status !== 'open').slice(0, 10) : [];
    swap(recentBox,
      h('h2', { id: 'recent-h' }, 'Recent incidents'),
      incs === null ? null
        : recent.length
          ? [table({ caption: 'The ten latest resolved incidents', hideCaption: true, columns: incidentColumns, rows: incidentRows(recent), className: 'stack' }),
            h('p', {}, h('a', { href: '#/incidents' }, 'All incidents'))]
          : empty('No resolved incidents yet.'));
  }

  return { title: 'Overview', refresh };
}
