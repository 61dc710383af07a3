// web/src/chart.js — time-series charts on uPlot: the current series solid,
// comparison series (yesterday, last week) faint and dashed, incident spans
// shaded behind, thresholds as horizontal lines, and an optional band under
// the plot (anomaly score in [0, 1], darker = more unusual).
import uPlot from 'uplot';

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

// opts: {title, times (ms), series: [{label, values, faint, dash}], spans:
// [[fromMs, toMs, level]], thresholds: [{value, label}], band: values in
// [0,1] | null, width, height, unit}
export function timeChart(container, opts) {
  const fg = css('--fg') || '#222', grid = css('--grid') || '#ddd';
  const accent = [css('--c1') || '#1565c0', css('--c2') || '#6a1b9a', css('--c3') || '#ef6c00'];
  const data = [opts.times.map((t) => t / 1000)];
  const series = [{}];
  opts.series.forEach((s, i) => {
    data.push(s.values);
    // data sparser than the buckets (a sample a minute in 10 s buckets):
    // join the points, else every point would sit alone between nulls and
    // draw nothing; dense data keeps its gaps visible
    const n = s.values.filter((v) => v != null).length;
    const sparse = n > 0 && n < 0.5 * s.values.length;
    series.push({
      label: s.label,
      stroke: s.faint ? (css('--faint') || '#999') : accent[i % accent.length],
      width: s.faint ? 1 : 2,
      dash: s.dash || undefined,
      spanGaps: sparse,
      points: { show: n > 0 && n <= 60, size: 4 },
      value: (u, v) => (v == null ? '—' : fmtNum(v) + (opts.unit || '')),
    });
  });
  const spans = opts.spans || [], thresholds = opts.thresholds || [], band = opts.band;
  const bandH = band ? 10 : 0;
  const drawn = { points: 0 };
  const u = new uPlot({
    width: opts.width,
    height: opts.height || 220,
    title: opts.title,
    series,
    scales: { x: { time: true } },
    axes: [
      { stroke: fg, grid: { stroke: grid } },
      { stroke: fg, grid: { stroke: grid }, size: 72, values: (u, vals) => vals.map((v) => fmtNum(v) + (opts.unit || '')) },
    ],
    legend: { live: true },
    cursor: { focus: { prox: 16 } },
    hooks: {
      drawClear: [(u) => {
        const ctx = u.ctx;
        ctx.save();
        for (const [a, b, level] of spans) {
          const x0 = Math.max(u.bbox.left, u.valToPos(a / 1000, 'x', true));
          const x1 = Math.min(u.bbox.left + u.bbox.width, u.valToPos(b / 1000, 'x', true));
          if (x1 <= x0) continue;
          ctx.fillStyle = level === 2 ? 'rgba(198,40,40,0.16)' : 'rgba(178,106,0,0.14)';
          ctx.fillRect(x0, u.bbox.top, Math.max(1, x1 - x0), u.bbox.height);
        }
        ctx.restore();
      }],
      draw: [(u) => {
        const ctx = u.ctx;
        ctx.save();
        for (const t of thresholds) {
          const y = u.valToPos(t.value, 'y', true);
          if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) continue;
          ctx.strokeStyle = css('--down') || '#c62828';
          ctx.setLineDash([6, 4]);
          ctx.lineWidth = 1.5;
          ctx.beginPath();
          ctx.moveTo(u.bbox.left, y);
          ctx.lineTo(u.bbox.left + u.bbox.width, y);
          ctx.stroke();
          ctx.fillStyle = css('--down') || '#c62828';
          ctx.font = `${12 * devicePixelRatio}px sans-serif`;
          ctx.textAlign = 'right';
          ctx.textBaseline = 'bottom';
          ctx.fillText(t.label, u.bbox.left + u.bbox.width - 4, y - 3);
        }
        if (band) {
          // the anomaly band: one column per point under the plot area
          const top = u.bbox.top + u.bbox.height + 2;
          for (let i = 0; i < band.length; i++) {
            if (band[i] == null) continue;
            const x0 = u.valToPos(data[0][i], 'x', true);
            const x1 = i + 1 < band.length ? u.valToPos(data[0][i + 1], 'x', true) : x0 + 2;
            ctx.fillStyle = `rgba(198,40,40,${Math.min(1, Math.max(0.05, band[i]))})`;
            ctx.fillRect(x0, top, Math.max(1, x1 - x0), bandH * devicePixelRatio);
          }
        }
        ctx.restore();
        // drawn points: non-null values of the solid series inside the plot
        drawn.points = 0;
        for (let s = 1; s < data.length; s++) if (!opts.series[s - 1].faint) drawn.points += data[s].filter((v) => v != null).length;
        container.dataset.points = drawn.points;
        if (opts.onDraw) opts.onDraw(drawn.points);
      }],
    },
  }, data, container);
  return u;
}

export function fmtNum(v) {
  if (v == null || !isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(1) + 'k';
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return +v.toFixed(2) + '';
  if (a === 0) return '0';
  return +v.toPrecision(3) + '';
}
