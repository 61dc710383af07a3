// tests/browser/seed.mjs — generated data for the browser tests (fixed
// seed, printed): heartbeats over 90 days for N monitors, with one outage
// day for "api"; service metrics for svc,service=api (and web) at one
// sample a minute over the last 35 days (so 1d and 7d comparisons exist),
// with one error-rate excursion. Written as line protocol (ms) for
// `meerkat import`, plus the YAML config naming everything.
import { writeFileSync, createWriteStream } from 'node:fs';

export function rng(seed) {
  // mulberry32: small, deterministic
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const DAY = 86400e3;

// monitors: [{name, token, beatEveryMs, outageDayAgo}], returns the outage
// day's start (ms) per monitor that has one.
export async function writeData(path, { now, monitors, service = true, seed = 42 }) {
  const rnd = rng(seed);
  const out = createWriteStream(path);
  const write = (s) => new Promise((res) => (out.write(s) ? res() : out.once('drain', res)));
  const firstDay = now - (now % DAY) - 89 * DAY;
  for (const m of monitors) {
    let buf = [];
    const outFrom = m.outageDayAgo != null ? now - (now % DAY) - m.outageDayAgo * DAY + 3 * 3600e3 : -1;
    const stopAt = m.stopAgoMs != null ? now - m.stopAgoMs : now;
    for (let t = firstDay + Math.floor(rnd() * m.beatEveryMs); t < stopAt; t += m.beatEveryMs) {
      let st = 1;
      if (t >= outFrom && t < outFrom + 4 * 3600e3) st = 0;
      else if (rnd() < 0.0005) st = 0.5;
      buf.push(`heartbeat,monitor=${m.name.replace(/ /g, '\\ ')} status=${st} ${Math.floor(t)}\n`);
      if (buf.length >= 5000) { await write(buf.join('')); buf = []; }
    }
    await write(buf.join(''));
  }
  if (service) {
    for (const svcName of ['api', 'web']) {
      let buf = [];
      for (let t = now - 35 * DAY - (now % 60e3); t < now; t += 60e3) {
        const hour = new Date(t).getUTCHours();
        const base = 100 + 60 * Math.sin(((hour - 6) / 24) * 2 * Math.PI);
        const qps = Math.max(1, base * (svcName === 'web' ? 2 : 1) * (0.9 + 0.2 * rnd()));
        const p95 = 40 + 10 * rnd() + (hour === 12 ? 15 : 0);
        const spike = t > now - 2 * DAY && t < now - 2 * DAY + 3600e3;
        const err = spike ? 0.08 + 0.02 * rnd() : 0.001 + 0.002 * rnd();
        buf.push(`svc,service=${svcName},instance=i-0 qps=${qps.toFixed(2)},p95_ms=${p95.toFixed(2)},error_rate=${err.toFixed(5)} ${t}\n`);
        if (buf.length >= 5000) { await write(buf.join('')); buf = []; }
      }
      await write(buf.join(''));
    }
  }
  await new Promise((res) => out.end(res));
  return firstDay;
}

export function writeConfig(path, { monitors, keys = [], publicNames = [], rules = '', extra = '' }) {
  const lines = [];
  if (keys.length) lines.push('api_keys:', ...keys.map((k) => `  - ${k}`));
  lines.push('monitors:', ...monitors.map((m) => `  - {name: "${m.name}", kind: kuma, token: ${m.token}}`));
  lines.push('status_page:', '  title: Meerkat test status', '  description: Generated data for the browser tests.');
  lines.push(`  public: [${publicNames.map((n) => `"${n}"`).join(', ')}]`);
  lines.push(extra);
  if (rules) lines.push('rules:', rules);
  writeFileSync(path, lines.join('\n') + '\n');
}
