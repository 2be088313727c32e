// The Usage page: figures over time (GET /ui/api/usage) as uPlot charts and
// a table grouped by server, tool, key, team or organization, and the calls
// as they happen (the /ui/api/usage/tail event stream). The API scopes both
// to the caller: the master key sees all, an organization's admin its
// organization, any other key its own calls.
//
// Contract (the shell calls it): mount(root, ctx) renders into the empty
// root and resolves to unmount(), which stops every timer and stream.
// ctx: {api(path, {method, body}) -> Promise, live(event, fn) -> unsubscribe,
// session: {caller, admin, org_admin, team_id}}.
// Optional ctx.filter: {key, team, org, server, label} narrows the page
// (the keys, teams or organizations pages may mount it so): key is a key's
// token (64 hex digits, as /key/list answers), team and org ids; the API
// narrows the figures (key=, team=, org=), the page the live tail. label
// names what it is narrowed to ("key ci"); server only fills the field.
//
// DOM is built with createElement and textContent only (the /ui CSP allows
// no inline script or style attribute).
import { el, stylesheet, fmtInt } from './common.js';
import uPlot from '../vendor/uplot/uPlot.esm.js';

const RANGES = [
  // [since, step, label]: about 60 points each.
  ['15m', '15s', 'Last 15 minutes'],
  ['1h', '1m', 'Last hour'],
  ['6h', '5m', 'Last 6 hours'],
  ['24h', '20m', 'Last 24 hours'],
  ['7d', '3h', 'Last 7 days'],
];
const GROUPS = [
  ['server', 'Server'],
  ['tool', 'Tool'],
  ['key', 'Key'],
  ['team', 'Team'],
  ['org', 'Organization'],
];
const REFRESH_MS = 10000;
const TAIL_DEBOUNCE_MS = 1000;
const TAIL_MAX = 200;
const TAIL_URL = '/ui/api/usage/tail';

let uid = 0;

/**
 * Adds a stylesheet link once per document (style-src 'self' allows it);
 * resolves once it is loaded (or failed), so charts measure a styled page.
 */

const fmtMS = (n) => (n == null ? '–' : `${n > 0 && n < 10 ? n.toFixed(1) : Math.round(n)} ms`);
const fmtCost = (n) => (n ? `$${n < 0.01 ? n.toPrecision(2) : n.toFixed(2)}` : '$0');
const fmtTime = (iso) => {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso || '') : d.toLocaleTimeString();
};
const titleCase = (s) => (s ? s.charAt(0) + s.slice(1).toLowerCase() : s);

/** Chart palette: distinguishable on white, also by dash for colour-blind readers. */
const COLORS = { calls: '#0969da', errors: '#bf3989', failed: '#cf222e', p50: '#1a7f37', p99: '#9a6700', cost: '#8250df' };

const CHARTS = [
  {
    key: 'calls',
    caption: 'Calls and errors',
    series: [
      { label: 'Calls', field: 'calls', stroke: COLORS.calls },
      { label: 'Errors', field: 'errors', stroke: COLORS.errors, dash: [6, 3] },
      { label: 'Failed', field: 'failed', stroke: COLORS.failed, dash: [2, 3] },
    ],
    fmt: (v) => (v == null ? '–' : fmtInt(v)),
  },
  {
    key: 'latency',
    caption: 'Latency (p50, p99)',
    gaps: true,
    series: [
      { label: 'p50', field: 'p50_ms', stroke: COLORS.p50 },
      { label: 'p99', field: 'p99_ms', stroke: COLORS.p99, dash: [6, 3] },
    ],
    fmt: (v) => (v == null ? '–' : fmtMS(v)),
  },
  {
    key: 'cost',
    caption: 'Cost',
    series: [{ label: 'Cost', field: 'cost', stroke: COLORS.cost }],
    fmt: (v) => (v == null ? '–' : fmtCost(v)),
  },
];

export async function mount(root, ctx) {
  const styled = Promise.all([stylesheet('../vendor/uplot/uPlot.min.css'), stylesheet('./pages.css')]);
  const id = `u-usage-${++uid}`;
  const only = ctx.filter || {};
  const state = { since: '1h', step: '1m', by: 'server', server: only.server || '' };
  let alive = true;
  let timer = null;
  let debounce = null;
  let inflight = null;
  let again = false;
  let tail = null;
  const charts = new Map(); // key -> {plot, box, def}

  // Layout.
  const page = el('section', { class: 'u-usage', 'aria-labelledby': `${id}-h` });
  const heading = el('h2', { id: `${id}-h`, text: 'Usage' });
  const scope = el('span', { class: 'u-usage-scope' });
  const updated = el('span', { class: 'u-usage-updated' });
  const truncated = el('span', { class: 'u-usage-truncated', hidden: true,
    text: 'Truncated: too many calls in this range; the figures cover only part of it.' });
  const narrowed = only.key || only.team || only.org
    ? [' · narrowed to ', el('strong', { class: 'u-usage-narrowed', text: only.label
      || [only.key && `key ${only.key.slice(0, 8)}…`, only.team && `team ${only.team}`, only.org && `organization ${only.org}`].filter(Boolean).join(', ') })]
    : [];
  const meta = el('p', { class: 'u-usage-meta' }, 'Scope: ', scope, ...narrowed, ' · ', updated, ' ', truncated);
  const alert = el('div', { class: 'u-usage-alert', role: 'alert' });

  const rangeSel = el('select', { id: `${id}-range`, name: 'since' });
  for (const [since, , label] of RANGES) rangeSel.append(el('option', { value: since, text: label }));
  rangeSel.value = state.since;
  const bySel = el('select', { id: `${id}-by`, name: 'by' });
  for (const [by, label] of GROUPS) bySel.append(el('option', { value: by, text: label }));
  bySel.value = state.by;
  const serverIn = el('input', { id: `${id}-server`, name: 'server', type: 'text', autocomplete: 'off', value: state.server,
    spellcheck: 'false', placeholder: 'all servers', list: `${id}-servers` });
  const serverList = el('datalist', { id: `${id}-servers` });
  const apply = el('button', { type: 'submit', text: 'Apply' });
  const controls = el('form', { class: 'u-usage-controls', 'aria-label': 'Usage filters' },
    el('div', { class: 'u-usage-field' }, el('label', { for: rangeSel.id, text: 'Range' }), rangeSel),
    el('div', { class: 'u-usage-field' }, el('label', { for: bySel.id, text: 'Group by' }), bySel),
    el('div', { class: 'u-usage-field' }, el('label', { for: serverIn.id, text: 'Server (optional)' }), serverIn, serverList),
    apply,
  );

  const chartsBox = el('div', { class: 'u-usage-charts' });
  for (const def of CHARTS) {
    const box = el('div', { class: 'u-usage-plot', role: 'img', 'aria-label': def.caption });
    chartsBox.append(el('figure', { class: 'u-usage-chart' }, el('figcaption', { text: def.caption }), box));
    charts.set(def.key, { plot: null, box, def });
  }

  const rowsTable = el('table', { class: 'u-usage-table u-usage-rows' });
  const rowsCaption = el('caption', { text: 'Usage by server' });
  const rowsHead = el('thead');
  const rowsBody = el('tbody');
  const rowsFoot = el('tfoot');
  rowsTable.append(rowsCaption, rowsHead, rowsBody, rowsFoot);

  const liveState = el('span', { class: 'u-usage-live', role: 'status' });
  const tailTable = el('table', { class: 'u-usage-table u-usage-tail' });
  const tailBody = el('tbody');
  const tailHead = el('tr');
  for (const [h, num] of [['Time'], ['Status'], ['Key'], ['Server'], ['Tool or method'], ['Duration', true]]) {
    tailHead.append(el('th', { scope: 'col', class: num ? 'u-usage-num' : undefined, text: h }));
  }
  tailTable.append(el('caption', { text: `Live calls (newest first, the last ${TAIL_MAX})` }), el('thead', {}, tailHead), tailBody);
  const tailEmpty = el('p', { class: 'u-usage-meta', text: 'No calls since this page opened.' });

  page.append(
    heading, meta, alert, controls,
    el('h3', { text: 'Over time' }), chartsBox,
    el('h3', { text: 'Totals' }), el('div', { class: 'u-usage-scroll', role: 'region', 'aria-label': 'Totals table', tabindex: '0' }, rowsTable),
    el('h3', {}, 'Live tail ', liveState), el('div', { class: 'u-usage-scroll u-usage-tail-wrap', role: 'region', 'aria-label': 'Live calls table', tabindex: '0' }, tailTable), tailEmpty,
  );
  root.append(page);

  // Charts: sized to their box; redrawn when it resizes.
  const plotWidth = (box) => Math.max(280, Math.floor(box.clientWidth || 600));
  const resize = new ResizeObserver(() => {
    for (const c of charts.values()) if (c.plot) c.plot.setSize({ width: plotWidth(c.box), height: 180 });
  });
  resize.observe(chartsBox);

  function drawCharts(ans) {
    const xs = ans.series.map((p) => Math.floor(new Date(p.start).getTime() / 1000));
    for (const c of charts.values()) {
      // Latency has no value where there were no calls: a gap, not 0 ms.
      const data = [xs, ...c.def.series.map((s) => ans.series.map((p) => (c.def.gaps && !p.calls ? null : p[s.field] ?? 0)))];
      const totals = c.def.series.map((s) => `${s.label} ${c.def.fmt(ans.total?.[s.field] ?? 0)}`).join(', ');
      c.box.setAttribute('aria-label', `${c.def.caption}, ${rangeLabel(state.since).toLowerCase()}: ${totals}`);
      if (c.plot) {
        c.plot.setData(data);
        continue;
      }
      c.plot = new uPlot({
        width: plotWidth(c.box),
        height: 180,
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
        axes: [{}, { values: (u, vals) => vals.map((v) => c.def.fmt(v)), size: 70 }],
        series: [{}, ...c.def.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, dash: s.dash, value: (u, v) => c.def.fmt(v) }))],
        cursor: { drag: { x: false, y: false } },
      }, data, c.box);
    }
  }

  function rangeLabel(since) {
    return (RANGES.find((r) => r[0] === since) || [since, '', since])[2];
  }

  function drawRows(ans) {
    const titles = (ans.titles || []).filter(Boolean);
    const group = GROUPS.find((g) => g[0] === ans.by);
    rowsCaption.textContent = `Usage by ${group ? group[1].toLowerCase() : ans.by}, ${rangeLabel(state.since).toLowerCase()}`;
    const cols = [['calls', 'Calls', fmtInt], ['errors', 'Errors', fmtInt], ['failed', 'Failed', fmtInt],
      ['p50_ms', 'p50', fmtMS], ['p95_ms', 'p95', fmtMS], ['p99_ms', 'p99', fmtMS], ['tokens', 'Tokens', fmtInt], ['cost', 'Cost', fmtCost]];
    const head = el('tr');
    for (const t of titles) head.append(el('th', { scope: 'col', text: titleCase(t) }));
    for (const [, label] of cols) head.append(el('th', { scope: 'col', class: 'u-usage-num', text: label }));
    rowsHead.replaceChildren(head);
    const cells = (r) => cols.map(([f, , fmt]) => el('td', { class: 'u-usage-num', 'data-field': f, text: fmt(r[f]) }));
    const body = [];
    for (const r of ans.rows || []) {
      const tr = el('tr');
      titles.forEach((t, i) => tr.append(i === 0
        ? el('th', { scope: 'row', text: r.name[i] || '–' })
        : el('td', { text: r.name[i] || '–' })));
      tr.append(...cells(r));
      body.push(tr);
    }
    if (body.length === 0) {
      body.push(el('tr', {}, el('td', { colspan: String(titles.length + cols.length), text: 'No calls in this range.' })));
    }
    rowsBody.replaceChildren(...body);
    const foot = el('tr', { class: 'u-usage-total' }, el('th', { scope: 'row', colspan: titles.length > 1 ? String(titles.length) : undefined, text: 'Total' }));
    foot.append(...cells(ans.total || {}));
    rowsFoot.replaceChildren(foot);
    if (ans.by === 'server') {
      serverList.replaceChildren(...(ans.rows || []).map((r) => el('option', { value: r.name[0] })));
    }
  }

  async function load() {
    if (inflight) {
      again = true;
      return inflight;
    }
    const q = new URLSearchParams({ since: state.since, step: state.step, by: state.by });
    if (state.server) q.set('server', state.server);
    for (const f of ['key', 'team', 'org']) if (only[f]) q.set(f, only[f]);
    inflight = (async () => {
      try {
        const ans = await ctx.api(`/ui/api/usage?${q}`);
        if (!alive) return;
        alert.textContent = '';
        scope.textContent = ans.scope || 'unknown';
        truncated.hidden = !ans.truncated;
        updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
        drawRows(ans);
        drawCharts(ans);
      } catch (err) {
        if (alive) alert.textContent = `Cannot load usage: ${err.message}`;
      } finally {
        inflight = null;
      }
    })();
    await inflight;
    if (again && alive) {
      again = false;
      await load();
    }
  }

  function schedule() {
    clearInterval(timer);
    timer = setInterval(() => { load(); }, REFRESH_MS);
  }

  controls.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const r = RANGES.find((x) => x[0] === rangeSel.value) || RANGES[1];
    state.since = r[0];
    state.step = r[1];
    state.by = bySel.value;
    state.server = serverIn.value.trim();
    schedule();
    load();
  });
  // The pickers apply at once; the server field on Apply or Enter.
  rangeSel.addEventListener('change', () => controls.requestSubmit());
  bySel.addEventListener('change', () => controls.requestSubmit());

  // Live tail.
  function tailRow(ev) {
    const status = String(ev.status || '');
    const key = ev.key_alias || (ev.key_id ? `${String(ev.key_id).slice(0, 8)}…` : '–');
    const what = ev.tool ? ev.tool : ev.method || '–';
    return el('tr', {},
      el('td', {}, el('time', { datetime: ev.time || '', text: fmtTime(ev.time) })),
      el('td', { class: `u-usage-status-${status}`, text: ev.error_code ? `${status} (${ev.error_code})` : status }),
      el('td', { text: key }),
      el('td', { text: ev.kind === 'agent' ? `a2a/${ev.server}` : ev.server || '–' }),
      el('td', { text: what }),
      el('td', { class: 'u-usage-num', text: fmtMS(ev.duration_ms) }),
    );
  }
  function setLive(text, on) {
    liveState.textContent = text;
    liveState.className = `u-usage-live ${on ? 'u-usage-live-on' : 'u-usage-live-off'}`;
  }
  function openTail() {
    setLive('(connecting…)', false);
    tail = new EventSource(TAIL_URL);
    tail.addEventListener('open', () => setLive('(live)', true));
    tail.addEventListener('error', () => {
      if (!alive) return;
      // CLOSED: refused (signed out, or the server cannot stream); else reconnecting.
      setLive(tail.readyState === EventSource.CLOSED ? '(stopped: sign in again or reload)' : '(reconnecting…)', false);
    });
    tail.addEventListener('call', (m) => {
      let ev;
      try {
        ev = JSON.parse(m.data);
      } catch {
        return;
      }
      // The tail has no filters: the page narrows it as the API narrows the figures.
      if ((only.key && ev.key_id !== only.key) || (only.team && ev.team_id !== only.team)
        || (only.org && ev.organization_id !== only.org) || (state.server && ev.server !== state.server)) return;
      tailEmpty.hidden = true;
      tailBody.prepend(tailRow(ev));
      while (tailBody.rows.length > TAIL_MAX) tailBody.deleteRow(-1);
      clearTimeout(debounce);
      debounce = setTimeout(() => { if (alive) load(); }, TAIL_DEBOUNCE_MS);
    });
  }

  await styled;
  openTail();
  schedule();
  await load();

  return function unmount() {
    alive = false;
    clearInterval(timer);
    clearTimeout(debounce);
    if (tail) tail.close();
    resize.disconnect();
    for (const c of charts.values()) if (c.plot) c.plot.destroy();
    charts.clear();
    root.replaceChildren();
  };
}
