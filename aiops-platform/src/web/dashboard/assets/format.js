// Number, time and duration formatting.

/** Nanoseconds since the epoch, or an RFC 3339 string, as milliseconds since the epoch. */
export function toMs(t) {
  if (t === null || t === undefined || t === '') return NaN;
  if (typeof t === 'number') return t > 1e14 ? t / 1e6 : t;
  return Date.parse(t);
}

/** `14:03:22.512` (local time). */
export function clock(t) {
  const ms = toMs(t);
  if (!Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** `2026-11-27 14:03:22` (local time). */
export function dateTime(t) {
  const ms = toMs(t);
  if (!Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A duration in milliseconds: `0.42 ms`, `85 ms`, `1.52 s`, `3 min 4 s`. */
export function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60000);
  if (m < 60) return `${m} min ${Math.round((ms % 60000) / 1000)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** `12 s ago`, `3 min ago`. */
export function ago(t, now = Date.now()) {
  const ms = toMs(t);
  if (!Number.isFinite(ms)) return '—';
  const d = Math.max(0, now - ms);
  if (d < 1500) return 'just now';
  if (d < 60000) return `${Math.round(d / 1000)} s ago`;
  if (d < 3600000) return `${Math.round(d / 60000)} min ago`;
  if (d < 86400000) return `${Math.round(d / 3600000)} h ago`;
  return `${Math.round(d / 86400000)} d ago`;
}

/** `1.2`, `34`, `1.2k`. */
export function count(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  if (Math.abs(n) >= 10000) return `${(n / 1000).toFixed(1)}k`;
  if (Number.isInteger(n)) return String(n);
  return n < 10 ? n.toFixed(2) : n.toFixed(1);
}

/** `2.5 %`. */
export function percent(share) {
  if (share === null || share === undefined || !Number.isFinite(share)) return '—';
  const p = share * 100;
  return `${p === 0 ? '0' : p < 1 ? p.toFixed(2) : p.toFixed(1)} %`;
}

/** A shortened id for display: first 8 hex digits. */
export function shortId(id) {
  return id ? String(id).slice(0, 8) : '—';
}
