// Request rate, error rate and p95 latency per service from the scraped Prometheus histogram
// `http_server_request_duration_seconds_bucket` (telemetry contract v1): counters are turned
// into per-interval increases (a drop means a restart: the new value is the increase), summed
// into fixed time buckets, and the p95 interpolated inside the histogram bucket like
// Prometheus' histogram_quantile.

export const HISTOGRAM = 'http_server_request_duration_seconds_bucket';

function statusOf(labels) {
  return Number(labels.http_response_status_code ?? labels.status_code ?? labels.code ?? labels.status ?? 0);
}

function bound(le) {
  return le === '+Inf' ? Infinity : Number(le);
}

/** The q-quantile (seconds) from cumulative `[le, count]` pairs sorted by le. */
export function quantile(q, cumulative) {
  if (cumulative.length === 0) return null;
  const total = cumulative[cumulative.length - 1][1];
  if (!(total > 0)) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, c] of cumulative) {
    if (c >= rank) {
      if (le === Infinity) return prevLe;
      const inBucket = c - prevCount;
      return inBucket > 0 ? prevLe + (le - prevLe) * ((rank - prevCount) / inBucket) : le;
    }
    prevLe = le;
    prevCount = c;
  }
  return prevLe;
}

/**
 * Per service: `{ rate: [req/s], errorRate: [share], p95: [ms], total }` over `buckets`
 * buckets of `bucketSecs` seconds ending at the newest point seen.
 */
export function requestSeries(series, { bucketSecs = 15, buckets = 20 } = {}) {
  let end = 0;
  for (const s of series) {
    for (const p of s.points || []) end = Math.max(end, p.time_unix_nano);
  }
  const out = new Map();
  if (!end) return out;
  const width = bucketSecs * 1e9;
  const start = end - buckets * width;
  const acc = new Map();
  for (const s of series) {
    const labels = s.labels || {};
    if (labels.le === undefined) continue;
    const le = bound(labels.le);
    const err = statusOf(labels) >= 500;
    let a = acc.get(s.service);
    if (!a) {
      a = { total: new Array(buckets).fill(0), errors: new Array(buckets).fill(0), les: new Map(), seen: new Array(buckets).fill(false) };
      acc.set(s.service, a);
    }
    const pts = s.points || [];
    for (let i = 1; i < pts.length; i++) {
      const t = pts[i].time_unix_nano;
      if (t <= start) continue;
      const b = Math.min(buckets - 1, Math.floor((t - start) / width));
      const prev = pts[i - 1].value;
      const cur = pts[i].value;
      const inc = cur >= prev ? cur - prev : cur;
      a.seen[b] = true;
      if (!a.les.has(le)) a.les.set(le, new Array(buckets).fill(0));
      a.les.get(le)[b] += inc;
      if (le === Infinity) {
        a.total[b] += inc;
        if (err) a.errors[b] += inc;
      }
    }
  }
  for (const [service, a] of acc) {
    const les = [...a.les.keys()].sort((x, y) => x - y);
    const rate = [];
    const errorRate = [];
    const p95 = [];
    for (let b = 0; b < buckets; b++) {
      if (!a.seen[b]) {
        rate.push(null);
        errorRate.push(null);
        p95.push(null);
        continue;
      }
      rate.push(a.total[b] / bucketSecs);
      errorRate.push(a.total[b] > 0 ? a.errors[b] / a.total[b] : 0);
      const q = quantile(0.95, les.map((le) => [le, a.les.get(le)[b]]));
      p95.push(q === null ? null : q * 1000);
    }
    out.set(service, { rate, errorRate, p95, total: a.total.reduce((x, y) => x + y, 0) });
  }
  return out;
}
