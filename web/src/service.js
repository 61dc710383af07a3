// web/src/service.js — the service view (`#/service?name=api&range=24h`):
// QPS, P95 latency and error rate for one service over 1 h … 1 y. One
// InfluxQL query gives the three series and, through COMPARE 1d, 7d, the
// same buckets yesterday and last week (drawn faint). The bucket width is
// chosen for about 360 points per chart, so long ranges read few points
// (and the server answers them from chunk summaries or a rollup tier).
// Incidents of the service are shaded; threshold rules are drawn as lines.
import { api, esc, parseTime, query, setHashParams } from './util.js';
import { fmtNum, timeChart } from './chart.js';

export const RANGES = [
  ['1h', 3600e3, '10s'], ['6h', 6 * 3600e3, '1m'], ['24h', 86400e3, '5m'], ['7d', 7 * 86400e3, '30m'],
  ['30d', 30 * 86400e3, '2h'], ['90d', 90 * 86400e3, '6h'], ['1y', 365 * 86400e3, '1d'],
];
const METRICS = [
  ['qps', 'Requests per second (mean per instance)', ''],
  ['p95', 'P95 latency', ' ms'],
  ['errors', 'Error rate', ''],
];

const q = (s) => '"' + String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
const lit = (s) => "'" + String(s).replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";

export async function showService(main, params) {
  let services = [];
  try {
    services = (await api('/api/status-page')).services;
  } catch (e) {
    main.innerHTML = `<p class="error" role="alert">${esc(e.message)}</p>`;
    return;
  }
  const name = params.get('name') || (services[0] && services[0].name);
  const range = RANGES.find((r) => r[0] === params.get('range')) || RANGES[2];
  const svc = services.find((s) => s.name === name);
  main.innerHTML = `<h1>Service ${esc(name || '')}</h1>
    <form class="controls" id="svc-form">
      <label>Service <select id="svc-sel">${services.map((s) => `<option ${s.name === name ? 'selected' : ''}>${esc(s.name)}</option>`).join('')}</select></label>
      <fieldset class="ranges"><legend>Range</legend>${RANGES.map((r) => `<label><input type="radio" name="range" value="${r[0]}" ${r === range ? 'checked' : ''}> ${r[0]}</label>`).join('')}</fieldset>
    </form>
    <p class="muted small">Solid: now. Faint dashed: same time yesterday; faint dotted: last week. Shaded: incidents. Dashed red: thresholds. Band under a chart: anomaly score.</p>
    <div id="charts" aria-live="polite"><p class="muted">Loading…</p></div>`;
  const go = () => {
    const n = main.querySelector('#svc-sel').value, r = main.querySelector('input[name=range]:checked').value;
    setHashParams('service', { name: n, range: r }, false);
  };
  main.querySelector('#svc-sel').addEventListener('change', go);
  main.querySelectorAll('input[name=range]').forEach((i) => i.addEventListener('change', go));
  if (!svc) {
    main.querySelector('#charts').innerHTML = '<p class="muted">No services are configured (status_page.services).</p>';
    return;
  }
  await drawService(main.querySelector('#charts'), svc, range);
}

export async function drawService(box, svc, range) {
  const t0 = performance.now();
  const to = Date.now(), from = to - range[1];
  const where = Object.entries(svc.tags).map(([k, v]) => `${q(k)} = ${lit(v)}`).concat([`time >= ${from}ms`, `time < ${to}ms`]).join(' AND ');
  const text = `SELECT mean(${q(svc.fields.qps)}) AS qps, mean(${q(svc.fields.p95)}) AS p95, mean(${q(svc.fields.errors)}) AS errors ` +
    `FROM ${q(svc.measurement)} WHERE ${where} GROUP BY time(${range[2]}) fill(null) COMPARE 1d, 7d`;
  let res, incs = [], rules = [], scores = null;
  try {
    [res, incs, rules, scores] = await Promise.all([
      query(text),
      api(`/api/incidents?from=${Math.floor(from / 1000)}&limit=2000`).then((r) => r.incidents).catch(() => []),
      api('/api/rules').then((r) => r.rules || []).catch(() => []),
      api('/api/anomaly?' + new URLSearchParams({ service: svc.name, from, to, step: range[2] })).catch(() => null),
    ]);
  } catch (e) {
    box.innerHTML = `<p class="error" role="alert">Query failed: ${esc(e.message)}${e.status === 401 || e.status === 403
      ? ' — the charts read /query, which needs an API key (button at the top).' : ''}</p><pre>${esc(text)}</pre>`;
    return;
  }
  const ser = res.series?.[0];
  box.innerHTML = '';
  if (!ser) {
    box.innerHTML = '<p class="muted">No data in this range.</p>';
    return;
  }
  const col = (n) => ser.columns.indexOf(n);
  const times = ser.values.map((r) => r[0]);
  const pick = (n) => (col(n) < 0 ? null : ser.values.map((r) => r[col(n)]));
  const matches = (labels) => Object.entries(svc.tags).every(([k, v]) => labels && labels[k] === v);
  const spans = incs.filter((i) => matches(i.labels) && (i.fired_at || i.started_at))
    .map((i) => [parseTime(i.fired_at) || parseTime(i.started_at), parseTime(i.ended_at) || to, i.severity === 'critical' ? 2 : 1]);
  const width = Math.max(280, Math.min(1100, box.clientWidth || 800));
  let drawnPoints = 0, pending = METRICS.length;
  const allDrawn = new Promise((resolve) => {
    box.__mkResolve = resolve;
  });
  for (const [key, title, unit] of METRICS) {
    const field = svc.fields[key];
    const thresholds = rules.filter((r) => r.measurement === svc.measurement && r.expr && matches(Object.assign({}, svc.tags, r.tags || {})) &&
        Object.entries(r.tags || {}).every(([k, v]) => svc.tags[k] === v))
      .map((r) => r.expr.match(/^\s*(\S+)\s*(>=|<=|>|<)\s*(-?[\d.eE+-]+)/))
      .filter((m) => m && m[1] === field)
      .map((m) => ({ value: +m[3], label: `threshold ${m[2]} ${fmtNum(+m[3])}${unit}` }));
    const fig = document.createElement('figure');
    fig.className = 'chart';
    fig.dataset.metric = key;
    fig.setAttribute('aria-label', `${title} of ${svc.name}, last ${range[0]}`);
    fig.dataset.spans = spans.length;
    fig.dataset.thresholds = thresholds.length;
    box.appendChild(fig);
    const band = scores && scores[key] ? alignScores(scores[key], times) : null;
    let counted = false;
    timeChart(fig, {
      title, unit, width, times, spans, thresholds, band,
      onDraw: (n) => {
        if (counted) return;
        counted = true;
        drawnPoints += n;
        if (--pending === 0) box.__mkResolve();
      },
      series: [
        { label: 'now', values: pick(key) },
        { label: 'yesterday', values: pick(key + '_1d') || [], faint: true, dash: [6, 4] },
        { label: 'last week', values: pick(key + '_7d') || [], faint: true, dash: [2, 3] },
      ],
    });
  }
  await Promise.race([allDrawn, new Promise((r) => setTimeout(r, 5000))]);
  // figures for the browser test: query + three charts drawn
  window.__mkServiceDrawMs = performance.now() - t0;
  box.dataset.points = drawnPoints;
  box.dispatchEvent(new CustomEvent('mk-drawn', { bubbles: true }));
}

// scores: {times: [...ms], values: [...]} at the same step: matched by time.
function alignScores(sc, times) {
  const m = new Map(sc.times.map((t, i) => [t, sc.values[i]]));
  return times.map((t) => (m.has(t) ? m.get(t) : null));
}
