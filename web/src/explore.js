// web/src/explore.js — the explorer (`#/explore?q=...&view=chart|table`):
// a query box for InfluxQL; the answer as a chart (series with a time
// column) or a table; a parse error is marked at its line and column (the
// server says "error at L:C: ..."). The URL holds the query, so a link
// reproduces the view.
import { api, database, esc, HttpError, setHashParams } from './util.js';
import { timeChart } from './chart.js';

const EXAMPLE = 'SELECT mean(p95_ms) FROM svc WHERE time >= now() - 6h GROUP BY time(5m) fill(null)';

export function showExplore(main, params) {
  const text = params.get('q') || EXAMPLE;
  const view = params.get('view') === 'table' ? 'table' : 'chart';
  main.innerHTML = `<h1>Explorer</h1>
    <form id="qform" class="explore">
      <label for="qtext">InfluxQL query</label>
      <textarea id="qtext" rows="4" spellcheck="false" autocapitalize="off">${esc(text)}</textarea>
      <div class="controls">
        <button type="submit">Run <span class="muted small">(Ctrl+Enter)</span></button>
        <fieldset class="ranges"><legend>Show as</legend>
          <label><input type="radio" name="view" value="chart" ${view === 'chart' ? 'checked' : ''}> chart</label>
          <label><input type="radio" name="view" value="table" ${view === 'table' ? 'checked' : ''}> table</label>
        </fieldset>
        <a id="permalink" href="#">Link to this view</a>
      </div>
    </form>
    <div id="qerr" role="alert"></div>
    <div id="qout" aria-live="polite"></div>`;
  const ta = main.querySelector('#qtext');
  const run = () => {
    const v = main.querySelector('input[name=view]:checked').value;
    setHashParams('explore', { q: ta.value, view: v }, true);
    main.querySelector('#permalink').href = location.hash;
    runQuery(main, ta.value, v);
  };
  main.querySelector('#qform').addEventListener('submit', (e) => { e.preventDefault(); run(); });
  ta.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); } });
  main.querySelectorAll('input[name=view]').forEach((i) => i.addEventListener('change', run));
  main.querySelector('#permalink').href = location.hash || '#/explore';
  if (params.get('q')) run();
}

// "error at 2:15: expected ..." -> {line: 2, col: 15, msg}
export function parseErrorPos(msg) {
  const m = /error at (\d+):(\d+):\s*(.*)$/s.exec(msg || '');
  return m ? { line: +m[1], col: +m[2], msg: m[3] } : null;
}

function showError(main, text, msg) {
  const box = main.querySelector('#qerr');
  const pos = parseErrorPos(msg);
  if (!pos) {
    box.innerHTML = `<p class="error">${esc(msg)}</p>`;
    return;
  }
  const lines = text.split('\n');
  const line = lines[pos.line - 1] ?? '';
  const i = Math.max(0, Math.min(line.length, pos.col - 1));
  const tok = line.slice(i).match(/^\S{0,1}/)[0] || ' ';
  box.innerHTML = `<div class="error qerror">
      <p>Syntax error at line ${pos.line}, column ${pos.col}: ${esc(pos.msg)}</p>
      <pre class="qline" aria-hidden="true">${esc(line.slice(0, i))}<mark class="errpos" data-line="${pos.line}" data-col="${pos.col}">${esc(tok)}</mark>${esc(line.slice(i + tok.length))}
${' '.repeat(i)}^</pre></div>`;
  // put the caret there too, so the fix is one keystroke away
  const ta = main.querySelector('#qtext');
  let off = 0;
  for (let k = 0; k < pos.line - 1 && k < lines.length; k++) off += lines[k].length + 1;
  ta.focus();
  ta.setSelectionRange(off + i, off + i + (tok.trim() ? 1 : 0));
}

async function runQuery(main, text, view) {
  const out = main.querySelector('#qout'), errBox = main.querySelector('#qerr');
  errBox.innerHTML = '';
  out.innerHTML = '<p class="muted">Running…</p>';
  let r;
  try {
    const db = await database();
    r = await api('/query?' + new URLSearchParams({ q: text, db, epoch: 'ms' }).toString());
  } catch (e) {
    out.innerHTML = '';
    showError(main, text, e instanceof HttpError ? e.message + (e.status === 401 || e.status === 403 ? ' — queries need an API key (button at the top).' : '') : String(e));
    return;
  }
  out.innerHTML = '';
  for (const st of r.results || []) {
    if (st.error) {
      showError(main, text, st.error);
      continue;
    }
    for (const s of st.series || []) {
      const head = `${esc(s.name || '')}${s.tags ? ' ' + esc(Object.entries(s.tags).map(([k, v]) => k + '=' + v).join(',')) : ''}`;
      const isTime = s.columns[0] === 'time';
      const numCols = s.columns.map((c, i) => i).filter((i) => i > 0 && s.values.some((r) => typeof r[i] === 'number'));
      if (view === 'chart' && isTime && numCols.length) {
        const fig = document.createElement('figure');
        fig.className = 'chart';
        out.appendChild(fig);
        timeChart(fig, {
          title: head, width: Math.max(280, Math.min(1100, out.clientWidth || 800)),
          times: s.values.map((r) => r[0]),
          series: numCols.map((i) => ({ label: s.columns[i], values: s.values.map((r) => (typeof r[i] === 'number' ? r[i] : null)) })),
        });
      } else {
        const rows = s.values.slice(0, 1000).map((r) => '<tr>' + r.map((v, i) =>
          `<td>${esc(i === 0 && isTime ? new Date(v).toISOString() : v)}</td>`).join('') + '</tr>').join('');
        out.insertAdjacentHTML('beforeend', `<div class="table-wrap" tabindex="0" role="region" aria-label="Result ${head}"><table>
          <caption>${head} (${s.values.length} row${s.values.length === 1 ? '' : 's'}${s.values.length > 1000 ? ', first 1000 shown' : ''})</caption>
          <thead><tr>${s.columns.map((c) => `<th scope="col">${esc(c)}</th>`).join('')}</tr></thead><tbody>${rows}</tbody></table></div>`);
      }
    }
    if (!(st.series || []).length) out.insertAdjacentHTML('beforeend', '<p class="muted">No rows.</p>');
  }
}
