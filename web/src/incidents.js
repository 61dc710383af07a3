// web/src/incidents.js — the incident list (`#/incidents?state=open&q=api`)
// and one incident (`#/incident/ID`): its timeline (pending → firing →
// resolved), reason, the notifications sent (GET /api/notifications?incident=ID
// when the server has it) and a button to silence its rule (POST
// /api/silences with the admin key).
import { api, esc, fmtDur, fmtTime, getKey, parseTime, setHashParams, stateBadge } from './util.js';

const stateWord = (i) => (i.state === 'firing' ? (i.severity === 'critical' ? 'DOWN' : 'DEGRADED') : i.state === 'pending' ? 'DEGRADED' : 'UP');

export async function showIncidents(main, params) {
  const state = params.get('state') || '';
  const text = params.get('q') || '';
  main.innerHTML = `<h1>Incidents</h1>
    <form class="controls" id="ifilter" role="search">
      <label>State <select id="istate">
        ${['', 'open', 'firing', 'pending', 'resolved'].map((s) => `<option value="${s}" ${s === state ? 'selected' : ''}>${s || 'any'}</option>`).join('')}
      </select></label>
      <label>Filter <input id="itext" type="search" value="${esc(text)}" placeholder="rule, label or reason"></label>
    </form>
    <div id="ilist" aria-live="polite"><p class="muted">Loading…</p></div>`;
  const upd = () => setHashParams('incidents', Object.fromEntries(Object.entries({
    state: main.querySelector('#istate').value, q: main.querySelector('#itext').value }).filter(([, v]) => v)), true);
  let list = [];
  const draw = () => {
    const t = main.querySelector('#itext').value.toLowerCase();
    const shown = list.filter((i) => !t || JSON.stringify([i.rule, i.labels, i.reason]).toLowerCase().includes(t));
    main.querySelector('#ilist').innerHTML = shown.length ? `<table class="itable"><caption class="sr">Incidents, newest first</caption>
      <thead><tr><th scope="col">Incident</th><th scope="col">State</th><th scope="col">Started</th><th scope="col">Duration</th><th scope="col">Reason</th></tr></thead>
      <tbody>${shown.map((i) => {
        const s = parseTime(i.started_at), e = parseTime(i.ended_at);
        return `<tr><td><a href="#/incident/${i.id}">#${i.id} ${esc(i.rule)}</a><div class="muted small">${esc(Object.entries(i.labels || {}).map(([k, v]) => k + '=' + v).join(', '))}</div></td>
          <td>${stateBadge(stateWord(i))} <span class="small">${esc(i.state)}</span></td><td>${fmtTime(s)}</td><td>${fmtDur((e || Date.now()) - s)}</td><td>${esc(i.reason || '')}</td></tr>`;
      }).join('')}</tbody></table>` : '<p class="muted">No incidents match.</p>';
  };
  const load = async () => {
    const st = main.querySelector('#istate').value;
    try {
      list = (await api('/api/incidents?limit=500' + (st ? '&state=' + st : ''))).incidents;
      draw();
    } catch (e) {
      main.querySelector('#ilist').innerHTML = `<p class="error" role="alert">${esc(e.message)}${e.status === 401 ? ' — set an API key (top right).' : ''}</p>`;
    }
  };
  main.querySelector('#istate').addEventListener('change', () => { upd(); load(); });
  main.querySelector('#itext').addEventListener('input', () => { upd(); draw(); });
  main.querySelector('#ifilter').addEventListener('submit', (e) => e.preventDefault());
  await load();
}

export async function showIncident(main, id) {
  let i;
  try {
    i = await api('/api/incidents/' + encodeURIComponent(id));
  } catch (e) {
    main.innerHTML = `<h1>Incident #${esc(id)}</h1><p class="error" role="alert">${esc(e.message)}</p>`;
    return;
  }
  const steps = [
    ['pending', 'Pending', i.started_at],
    ['firing', 'Firing', i.fired_at],
    ['resolved', 'Resolved', i.ended_at],
  ];
  const start = parseTime(i.started_at), end = parseTime(i.ended_at);
  main.innerHTML = `<h1>Incident #${i.id}: ${esc(i.rule)}</h1>
    <p>${stateBadge(stateWord(i))} ${esc(i.state)} · ${esc(i.severity)}${i.silenced ? ' · silenced' : ''}${i.flapping ? ' · flapping' : ''} · lasted ${fmtDur((end || Date.now()) - start)}</p>
    <h2>Reason</h2><p class="reason">${esc(i.reason || '—')}</p>
    <h2>Timeline</h2>
    <ol class="timeline">${steps.map(([k, label, t]) => `<li class="${t ? 'done' : 'todo'}"><strong>${label}</strong> ${t ? fmtTime(parseTime(t)) : '<span class="muted">not reached</span>'}</li>`).join('')}</ol>
    <h2>Labels</h2><p>${Object.entries(i.labels || {}).map(([k, v]) => `<code>${esc(k)}=${esc(v)}</code>`).join(' ') || '—'}</p>
    <p class="muted small">value ${esc(i.value ?? '—')} · threshold ${esc(i.threshold ?? '—')} · peak ${esc(i.peak ?? '—')}</p>
    <h2>Notifications</h2><div id="notes"><p class="muted">Loading…</p></div>
    <h2>Silence</h2>
    <form id="silence" class="controls">
      <label>For <select id="sdur"><option value="3600">1 hour</option><option value="14400">4 hours</option><option value="86400">1 day</option><option value="604800">1 week</option></select></label>
      <label>Comment <input id="scomment" value="silenced from the incident page"></label>
      <button type="submit">Silence rule ${esc(i.rule)}</button>
    </form>
    <div id="smsg" role="status"></div>`;
  loadNotes(main.querySelector('#notes'), i.id);
  main.querySelector('#silence').addEventListener('submit', async (e) => {
    e.preventDefault();
    const msg = main.querySelector('#smsg');
    let key = getKey();
    if (!key) key = prompt('Admin API key (needed to silence; leave empty when the server has no keys)') || '';
    const now = Math.floor(Date.now() / 1000);
    const matchers = ['rule=' + i.rule].concat(Object.entries(i.labels || {}).map(([k, v]) => `${k}=${v}`));
    try {
      const r = await api('/api/silences', {
        method: 'POST', key, headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ matchers, starts_at: now, ends_at: now + +main.querySelector('#sdur').value,
          comment: main.querySelector('#scomment').value, created_by: 'status page' }),
      });
      msg.innerHTML = `<p>Silence #${esc(r.id)} created.</p>`;
    } catch (err) {
      msg.innerHTML = `<p class="error">Could not silence: ${esc(err.message)}</p>`;
    }
  });
}

async function loadNotes(box, id) {
  try {
    const r = await api('/api/notifications?incident=' + encodeURIComponent(id));
    const list = Array.isArray(r) ? r : r.notifications || [];
    box.innerHTML = list.length ? `<table><caption class="sr">Notifications sent for this incident</caption>
      <thead><tr><th scope="col">Time</th><th scope="col">Channel</th><th scope="col">Delivery</th><th scope="col">Why</th></tr></thead><tbody>
      ${list.map((n) => `<tr><td>${esc(n.time || n.created_at || '')}</td><td>${esc(n.channel || '')}</td>
        <td>${stateBadge(/^(sent|ok|delivered)$/i.test(n.status || '') ? 'UP' : /fail|error|gave/i.test(n.status || '') ? 'DOWN' : 'NO DATA', n.status || '?')}
          ${n.code ? ' HTTP ' + esc(n.code) : ''}${n.attempt != null ? ` · attempt ${esc(n.attempt)}` : ''}${n.error ? ': ' + esc(n.error) : ''}</td>
        <td>${esc(n.why || n.event || '')}</td></tr>`).join('')}</tbody></table>`
      : '<p class="muted">No notifications for this incident.</p>';
  } catch (e) {
    box.innerHTML = e.status === 404 ? '<p class="muted">No notification log on this server.</p>' : `<p class="error">${esc(e.message)}</p>`;
  }
}
