// Small inline SVG charts.
import { s } from './dom.js';

/**
 * A sparkline of `values` (nulls are gaps). `label` and `format` make its accessible name,
 * e.g. "requests per second: latest 12, max 30".
 */
export function sparkline(values, { label, format = String, width = 112, height = 28, tone = 'accent' } = {}) {
  const known = values.filter((v) => v !== null && Number.isFinite(v));
  const latest = [...values].reverse().find((v) => v !== null && Number.isFinite(v));
  const name = known.length
    ? `${label}: latest ${format(latest ?? 0)}, max ${format(Math.max(...known))}`
    : `${label}: no data`;
  const svg = s('svg', {
    class: `spark spark-${tone}`, viewBox: `0 0 ${width} ${height}`, width, height,
    role: 'img', 'aria-label': name, preserveAspectRatio: 'none',
  }, s('title', {}, name));
  if (known.length === 0) {
    svg.appendChild(s('line', { class: 'spark-none', x1: 0, x2: width, y1: height - 1.5, y2: height - 1.5 }));
    return svg;
  }
  const max = Math.max(...known) || 1;
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const y = (v) => height - 2 - (v / max) * (height - 4);
  let d = '';
  let area = '';
  let run = [];
  const flush = () => {
    if (run.length === 0) return;
    d += run.map(([x, yy], i) => `${i ? 'L' : 'M'}${x.toFixed(1)} ${yy.toFixed(1)}`).join(' ') + ' ';
    if (run.length > 1) {
      area += `M${run[0][0].toFixed(1)} ${height} ` + run.map(([x, yy]) => `L${x.toFixed(1)} ${yy.toFixed(1)}`).join(' ')
        + ` L${run[run.length - 1][0].toFixed(1)} ${height} Z `;
    }
    run = [];
  };
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) flush();
    else run.push([i * step, y(v)]);
  });
  flush();
  svg.appendChild(s('line', { class: 'spark-base', x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5 }));
  if (area) svg.appendChild(s('path', { class: 'spark-area', d: area }));
  svg.appendChild(s('path', { class: 'spark-line', d }));
  const lastIndex = values.length - 1 - [...values].reverse().findIndex((v) => v !== null && Number.isFinite(v));
  svg.appendChild(s('circle', { class: 'spark-dot', cx: lastIndex * step, cy: y(latest), r: 2.2 }));
  return svg;
}
