// web/src/util.js — small helpers shared by the pages: the API client
// (the API key kept in localStorage is sent as a Bearer token), hash routing
// parameters, escaping and formatting.

const KEY = 'meerkat.apiKey';
export const getKey = () => localStorage.getItem(KEY) || '';
export const setKey = (k) => (k ? localStorage.setItem(KEY, k) : localStorage.removeItem(KEY));

export class HttpError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// fetch + JSON, with the key when one is set. Errors carry the server's
// {"error": "..."} text.
export async function api(path, opts = {}) {
  const key = opts.key ?? getKey();
  // no extra headers by default: a request the same as index.html's
  // <link rel=preload> reuses the response it already fetched
  const headers = Object.assign({}, opts.headers || {});
  if (key) headers.Authorization = 'Bearer ' + key;
  const r = await fetch(path, Object.assign({}, opts, { headers }));
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = { error: text }; }
  if (!r.ok) throw new HttpError(r.status, (body && body.error) || r.statusText, body);
  return body;
}

export const esc = (s) =>
  String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

// "#/service?name=api&range=24h" -> {page: "service", params}
export function parseHash() {
  const h = location.hash.replace(/^#\/?/, '');
  const [path, qs] = h.split('?');
  return { parts: path.split('/').filter(Boolean), params: new URLSearchParams(qs || '') };
}
export function setHashParams(page, params, replace = true) {
  const qs = new URLSearchParams(params).toString();
  const h = '#/' + page + (qs ? '?' + qs : '');
  if (replace) history.replaceState(null, '', h);
  else location.hash = h;
}

export function fmtTime(ms) {
  if (ms == null) return '—';
  const d = new Date(ms);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}
export function fmtDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}
export function fmtDur(ms) {
  if (ms == null || !isFinite(ms)) return '—';
  const s = Math.round(ms / 1000);
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60);
  if (m < 60) return m + 'm' + (s % 60 ? ' ' + (s % 60) + 's' : '');
  const h = Math.floor(m / 60);
  if (h < 48) return h + 'h' + (m % 60 ? ' ' + (m % 60) + 'm' : '');
  return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
}
export const parseTime = (s) => (s ? Date.parse(s) : null);

// State never shown by colour alone: an icon and the word go with it.
const ICON = { UP: '✔', DEGRADED: '▲', DOWN: '✖', 'NO DATA': '–', MAINTENANCE: '⚙' };
// text: the word shown (default: the state's name)
export function stateBadge(state, text = state) {
  const cls = state.toLowerCase().replace(' ', '');
  return `<span class="state s-${cls}"><span aria-hidden="true">${ICON[state] || '?'}</span> ${esc(text)}</span>`;
}
export const stateOfCode = { U: 'UP', G: 'DEGRADED', D: 'DOWN', N: 'NO DATA' };

export function el(html) {
  const t = document.createElement('template');
  t.innerHTML = html.trim();
  return t.content.firstElementChild;
}

// The database the charts query: the first SHOW DATABASES names (InfluxDB
// asks for one), cached for the session.
let dbName = null;
export async function database() {
  if (dbName) return dbName;
  try {
    const r = await api('/query?q=' + encodeURIComponent('SHOW DATABASES'));
    const vals = r.results?.[0]?.series?.[0]?.values || [];
    dbName = vals.length ? vals[0][0] : 'meerkat';
  } catch {
    dbName = 'meerkat';
  }
  return dbName;
}

// Runs InfluxQL; returns the first statement's result or throws its error.
export async function query(q, epoch = 'ms') {
  const db = await database();
  const r = await api('/query?' + new URLSearchParams({ q, db, epoch }).toString());
  const st = r.results?.[0];
  if (st && st.error) throw new HttpError(200, st.error, r);
  return st || {};
}
