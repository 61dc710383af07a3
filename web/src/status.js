// web/src/status.js — the status page (`#/`): every monitor and service
// with its state, a 90-day bar (one cell per UTC day, worst state), open
// incidents first, maintenance windows, recent resolved incidents. It polls
// /api/status-page every few seconds and redraws only when the answer
// changed, keeping the keyboard focus where it was.
import { api, esc, getKey, fmtDay, fmtDur, fmtTime, parseTime, stateBadge, stateOfCode } from './util.js';

const POLL_MS = 3000;
let timer = null;
let lastText = '';
let doc = null;
let firstRender = true;

export function stopStatus() {
  clearInterval(timer);
  timer = null;
}

export async function showStatus(main) {
  stopStatus();
  lastText = '';
  await refresh(main);
  timer = setInterval(() => refresh(main).catch(() => {}), POLL_MS);
}

async function refresh(main) {
  let d;
  try {
    // with a key, another URL than index.html's preload (made without
    // one): Chrome would hand the preloaded public view to this request
    d = await api(getKey() ? '/api/status-page?with-key=1' : '/api/status-page');
  } catch (e) {
    if (!doc) main.innerHTML = `<p class="error" role="alert">Cannot load the status: ${esc(e.message)}</p>`;
    return;
  }
  const { now_ms, ...rest } = d;
  const text = JSON.stringify(rest);
  if (text === lastText || !main.isConnected) return;
  lastText = text;
  doc = d;
  render(main, d);
}

function incidentLine(inc, now) {
  const start = parseTime(inc.fired_at) || parseTime(inc.started_at);
  const end = parseTime(inc.ended_at);
  const dur = (end || now) - start;
  const sev = inc.severity === 'critical' ? 'DOWN' : 'DEGRADED';
  return `<li class="inc">
    <a href="#/incident/${inc.id}">${esc(inc.subject)} — ${esc(inc.rule)}</a>
    ${end ? '<span class="state s-up"><span aria-hidden="true">✔</span> resolved</span>' : stateBadge(inc.state === 'pending' ? 'DEGRADED' : sev)}
    <span class="muted">${inc.state === 'pending' ? 'pending since' : end ? '' : 'since'} ${fmtTime(start)}${end ? ', lasted ' + fmtDur(dur) : ' (' + fmtDur(dur) + ')'}</span>
    <div class="reason">${esc(inc.reason || '')}</div>
  </li>`;
}

// The 90 cells are painted as CSS gradients on one element per bar (200
// monitors would be 18,000 elements as DOM nodes, and 200 canvases cost
// more still): a base layer of colour runs, a layer per DOWN day (hatched)
// and per DEGRADED day (darker lower part), so the worst days differ in
// shape as well as colour, and a layer of 1 px gaps between days. The days
// are also in data-days; a summary is in the aria-label.
function barStyle(days) {
  const n = days.length, w = 100 / n;
  const runs = [];
  for (let k = 0; k < n;) {
    let e = k;
    while (e < n && days[e] === days[k]) e++;
    runs.push(`var(--cell-${days[k]}) ${(k * w).toFixed(3)}% ${(e * w).toFixed(3)}%`);
    k = e;
  }
  const layers = [], pos = [], size = [];
  for (let k = 0; k < n; k++) {
    const c = days[k];
    if (c !== 'D' && c !== 'G') continue;
    layers.push(c === 'D' ? 'repeating-linear-gradient(135deg,rgba(0,0,0,.35) 0 1.5px,transparent 1.5px 5px)'
      : 'linear-gradient(rgba(0,0,0,.28),rgba(0,0,0,.28))');
    pos.push(`${n > 1 ? ((k / (n - 1)) * 100).toFixed(3) : 0}% ${c === 'D' ? '0' : '100%'}`);
    size.push(`${w.toFixed(3)}% ${c === 'D' ? '100%' : '40%'}`);
  }
  layers.push(`repeating-linear-gradient(to right,transparent 0 calc(${w}% - 1px),var(--bg) calc(${w}% - 1px) ${w}%)`);
  pos.push('0 0');
  size.push('100% 100%');
  layers.push(`linear-gradient(to right,${runs.join(',')})`);
  pos.push('0 0');
  size.push('100% 100%');
  return `background-image:${layers.join(',')};background-position:${pos.join(',')};background-size:${size.join(',')}`;
}

function bar(entry, kind) {
  const u = entry.uptime_90d == null ? 'no data' : entry.uptime_90d.toFixed(2) + '%';
  const down = [...entry.days].filter((c) => c === 'D').length;
  return `<div class="bar" tabindex="-1" role="group" data-kind="${kind}" data-name="${esc(entry.name)}" data-days="${entry.days}"
      style="${barStyle(entry.days)}"
      aria-label="${esc(entry.name)}: 90-day uptime ${u}, ${down} day${down === 1 ? '' : 's'} with an outage. Left and right arrows move between days, up and down between monitors."
      ><span class="selbox" hidden></span></div>`;
}

function markSel(b, k) {
  const box = b.firstElementChild, n = b.dataset.days.length;
  b.dataset.sel = k;
  box.hidden = false;
  box.style.left = (k * 100) / n + '%';
  box.style.width = 100 / n + '%';
}

function row(entry, kind, maintenance) {
  const inMaint = entry.in_maintenance;
  const link = kind === 'service' ? `#/service?name=${encodeURIComponent(entry.name)}` : `#/incidents?q=${encodeURIComponent(entry.name)}`;
  const u = entry.uptime_90d == null ? '' : `<span class="uptime">${entry.uptime_90d.toFixed(2)}% <span class="muted">90 d</span></span>`;
  return `<li class="row" data-kind="${kind}" data-name="${esc(entry.name)}" data-state="${esc(entry.state)}">
    <div class="row-head">
      <a class="name" href="${link}">${esc(entry.name)}</a>
      ${kind === 'service' ? '<span class="tag">service</span>' : ''}
      ${stateBadge(entry.state)}${inMaint ? ' ' + stateBadge('MAINTENANCE') : ''}
      ${u}
    </div>
    ${entry.reason && entry.state !== 'UP' ? `<div class="reason">${esc(entry.reason)}</div>` : ''}
    ${bar(entry, kind)}
    <div class="bar-legend muted" aria-hidden="true"><span>90 days ago</span><span>today</span></div>
  </li>`;
}

function render(main, d) {
  const t0 = performance.now();
  const focusKey = document.activeElement?.classList?.contains('bar')
    ? document.activeElement.dataset.kind + ':' + document.activeElement.dataset.name : null;
  // the selected day of each bar survives the redraw
  const sels = new Map([...main.querySelectorAll('.bar[data-sel]')].map((b) => [b.dataset.kind + ':' + b.dataset.name, +b.dataset.sel]));
  document.title = d.title;
  document.getElementById('brand').textContent = d.title;
  const mons = new Map(d.monitors.map((m) => [m.name, m]));
  const svcs = new Map(d.services.map((s) => [s.name, s]));
  const seen = new Set();
  const groups = d.groups.map((g) => {
    const items = [];
    for (const n of g.monitors) if (mons.has(n)) { items.push(row(mons.get(n), 'monitor')); seen.add('m:' + n); }
    for (const n of g.services) if (svcs.has(n)) { items.push(row(svcs.get(n), 'service')); seen.add('s:' + n); }
    return { name: g.name, items };
  });
  const rest = [];
  for (const m of d.monitors) if (!seen.has('m:' + m.name)) rest.push(row(m, 'monitor'));
  for (const s of d.services) if (!seen.has('s:' + s.name)) rest.push(row(s, 'service'));
  if (rest.length) groups.push({ name: groups.length ? 'Other' : 'Monitors', items: rest });

  const all = [...d.monitors, ...d.services];
  const bad = all.filter((e) => e.state === 'DOWN').length, deg = all.filter((e) => e.state === 'DEGRADED').length;
  const summary = !all.length ? 'Nothing to show yet.'
    : bad ? `${bad} of ${all.length} down` + (deg ? `, ${deg} degraded` : '')
    : deg ? `${deg} of ${all.length} degraded` : 'All systems operational';
  const sumState = bad ? 'DOWN' : deg ? 'DEGRADED' : all.length ? 'UP' : 'NO DATA';
  const maint = d.maintenance.map((w) => `<li class="maint">${stateBadge('MAINTENANCE')} <strong>${esc(w.name)}</strong>
      <span class="muted">${w.active ? 'now, until' : fmtTime(parseTime(w.start)) + ' →'} ${fmtTime(parseTime(w.end))}</span>
      ${w.monitors.length ? '<span class="muted">· ' + w.monitors.map(esc).join(', ') + '</span>' : ''}
      ${w.description ? `<div class="reason">${esc(w.description)}</div>` : ''}</li>`).join('');

  main.innerHTML = `
    <h1>${esc(d.title)}</h1>
    ${d.description ? `<p>${esc(d.description)}</p>` : ''}
    <p class="summary sum-${sumState.toLowerCase().replace(' ', '')}" role="status">${stateBadge(sumState)} ${esc(summary)}</p>
    ${d.is_public_view ? '<p class="muted">Public view: only public monitors are shown. Set an API key to see everything.</p>' : ''}
    <section aria-labelledby="h-open" id="open-incidents"><h2 id="h-open">Open incidents</h2>
      ${d.open_incidents.length ? `<ul class="incs">${d.open_incidents.map((i) => incidentLine(i, d.now_ms)).join('')}</ul>` : '<p class="muted">No open incidents.</p>'}
    </section>
    ${maint ? `<section aria-labelledby="h-maint"><h2 id="h-maint">Maintenance</h2><ul class="incs">${maint}</ul></section>` : ''}
    ${groups.map((g, i) => `<section aria-labelledby="h-g${i}"><h2 id="h-g${i}">${esc(g.name)}</h2><ul class="rows">${g.items.join('')}</ul></section>`).join('')}
    <section aria-labelledby="h-recent"><h2 id="h-recent">Recent incidents</h2>
      ${d.recent_incidents.length ? `<ul class="incs">${d.recent_incidents.slice(0, 20).map((i) => incidentLine(i, d.now_ms)).join('')}</ul>` : '<p class="muted">None in the last 90 days.</p>'}
    </section>
    <p class="muted small">Updated ${fmtTime(d.now_ms)} · refreshes every ${POLL_MS / 1000} s · days are UTC</p>`;
  // one tab stop for all the bars (roving tabindex): the focused one, else the first
  const bars = main.querySelectorAll('.bar');
  for (const b of bars) {
    const k = sels.get(b.dataset.kind + ':' + b.dataset.name);
    if (k != null && k < b.dataset.days.length) markSel(b, k);
  }
  if (bars.length) bars[0].tabIndex = 0;
  if (focusKey) {
    const [k, n] = focusKey.split(/:(.*)/s);
    const b = [...main.querySelectorAll('.bar')].find((x) => x.dataset.kind === k && x.dataset.name === n);
    if (b) {
      bars[0].tabIndex = -1;
      b.tabIndex = 0;
      b.focus();
    }
  }
  window.__mkStatusRenderMs = performance.now() - t0;
  if (firstRender) {
    firstRender = false;
    // "interactive": the first frame with the page drawn has been painted
    requestAnimationFrame(() => setTimeout(() => performance.mark('mk-status-rendered'), 0));
  }
  main.dispatchEvent(new CustomEvent('mk-rendered'));
}

// ---- day cells: hover, tap and keyboard --------------------------------

function cellInfo(barEl, k) {
  if (!doc) return null;
  const list = barEl.dataset.kind === 'service' ? doc.services : doc.monitors;
  const e = list.find((x) => x.name === barEl.dataset.name);
  if (!e) return null;
  const dayStart = doc.first_day_ms + k * 86400000;
  const dayEnd = dayStart + 86400000;
  const incs = [...doc.open_incidents, ...doc.recent_incidents].filter((i) => {
    if (i.subject !== e.name) return false;
    const s = parseTime(i.fired_at) || parseTime(i.started_at), en = parseTime(i.ended_at) || doc.now_ms;
    return s < dayEnd && en >= dayStart;
  });
  const u = e.uptime[k];
  return `<strong>${fmtDay(dayStart)}</strong> ${stateBadge(stateOfCode[e.days[k]])}<br>
    ${u == null ? 'no data' : 'uptime ' + u.toFixed(2) + '%'} · ${e.day_incidents[k]} incident${e.day_incidents[k] === 1 ? '' : 's'}
    ${incs.length ? '<ul>' + incs.slice(0, 5).map((i) => `<li>${esc(i.rule)}: ${esc(i.reason || i.state)}</li>`).join('') + '</ul>' : ''}`;
}

function cellRect(barEl, k) {
  const r = barEl.getBoundingClientRect();
  const cw = r.width / barEl.dataset.days.length;
  return { left: r.left + k * cw, width: cw, bottom: r.bottom };
}

function showTip(barEl, k) {
  const tip = document.getElementById('tip');
  const html = cellInfo(barEl, k);
  if (!html) return;
  markSel(barEl, k);
  tip.innerHTML = html;
  tip.hidden = false;
  const r = cellRect(barEl, k);
  const tw = tip.offsetWidth;
  tip.style.left = Math.max(4, Math.min(window.innerWidth - tw - 4, r.left + r.width / 2 - tw / 2)) + window.scrollX + 'px';
  tip.style.top = r.bottom + 6 + window.scrollY + 'px';
  const live = document.getElementById('tip-live');
  if (live) live.textContent = tip.textContent.replace(/\s+/g, ' ');
}
export function hideTip() {
  const tip = document.getElementById('tip');
  if (tip) tip.hidden = true;
}

function cellAt(ev) {
  const b = ev.target.closest?.('.bar');
  if (!b) return null;
  const r = b.getBoundingClientRect();
  const n = b.dataset.days.length;
  const k = Math.max(0, Math.min(n - 1, Math.floor(((ev.clientX - r.left) / r.width) * n)));
  return [b, k];
}

export function installBarEvents(main) {
  main.addEventListener('mousemove', (ev) => {
    const hit = cellAt(ev);
    if (hit) showTip(hit[0], hit[1]);
  });
  main.addEventListener('mouseout', (ev) => {
    const b = ev.target.closest?.('.bar');
    if (b && document.activeElement !== b && !b.contains(ev.relatedTarget)) hideTip();
  });
  main.addEventListener('click', (ev) => {
    const hit = cellAt(ev);
    if (hit) showTip(hit[0], hit[1]);
  });
  main.addEventListener('focusin', (ev) => {
    const b = ev.target.closest?.('.bar');
    if (b) showTip(b, b.dataset.sel ? +b.dataset.sel : b.dataset.days.length - 1);
  });
  main.addEventListener('focusout', hideTip);
  main.addEventListener('keydown', (ev) => {
    const b = ev.target.closest?.('.bar');
    if (!b) return;
    const n = b.dataset.days.length;
    let k = b.dataset.sel ? +b.dataset.sel : n - 1;
    if (ev.key === 'ArrowLeft') k--;
    else if (ev.key === 'ArrowRight') k++;
    else if (ev.key === 'Home') k = 0;
    else if (ev.key === 'End') k = n - 1;
    else if (ev.key === 'Escape') return hideTip();
    else if (ev.key === 'ArrowUp' || ev.key === 'ArrowDown') {
      const all = [...main.querySelectorAll('.bar')];
      const next = all[all.indexOf(b) + (ev.key === 'ArrowUp' ? -1 : 1)];
      if (next) {
        ev.preventDefault();
        b.tabIndex = -1;
        next.tabIndex = 0;
        next.dataset.sel = k;
        next.focus();
        next.scrollIntoView({ block: 'nearest' });
      }
      return;
    } else return;
    ev.preventDefault();
    showTip(b, Math.max(0, Math.min(n - 1, k)));
  });
}
