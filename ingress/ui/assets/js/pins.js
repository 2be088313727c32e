// Pinned tool definitions (docs/PINNING.md) on the servers pages: a count
// of the changes waiting for approval on each server's row, and one
// server's "Tool pins": each tool's status, and for a changed one what
// changed (a line diff of the pinned and the pending definition), its
// history and Approve / Reject. The pin API is the master key's; every
// name, description and schema here comes from an upstream (a "rug pull"
// writes them), so all of it goes in as text (dom.js), never as HTML.
import { get, post } from './api.js';
import { badge, h, replace } from './dom.js';
import { when } from './admin.js';
import { announce, confirmDialog, showError } from './ui.js';

const enc = encodeURIComponent;

/** Whether a server record has tool_pinning on. */
export function pinningOn(s) {
  return Boolean(s && s.tool_pinning && s.tool_pinning !== 'off');
}

const pinsPath = (server) => `/v1/mcp/server/${enc(server)}/tool-pins`;
const pinPath = (server, tool) => `${pinsPath(server)}/${enc(tool)}`;

/**
 * Fills cell with a badge counting server's pending tools (nothing when
 * none); a refusal leaves a "?" with the API's reason as its title.
 */
export async function pendingBadge(server, cell) {
  let list;
  try {
    list = await get(pinsPath(server));
  } catch (err) {
    replace(cell, h('span', { class: 'badge muted', title: err.message }, 'pins ?'));
    return;
  }
  const n = (list.pins || []).filter((p) => p.status === 'pending').length;
  replace(cell, n === 0 ? null : h('a', { href: `#/servers/${enc(server)}`, class: 'badge bad', 'data-testid': 'pending-pins',
    'aria-label': `${n} tool ${n === 1 ? 'change' : 'changes'} waiting for approval` }, `${n} pending`));
}

// --- a line diff ---------------------------------------------------------

/** The lines a value shows as: a string's own lines, else pretty JSON. */
function lines(v) {
  if (v === undefined) return [];
  if (typeof v === 'string') return v.split('\n');
  return JSON.stringify(v, null, 2).split('\n');
}

const maxDiffLines = 2000;

/**
 * [op, line] pairs turning a into b: ' ' kept, '-' gone, '+' new (the
 * longest common subsequence of lines). Past maxDiffLines: all of a gone,
 * all of b new.
 */
export function lineDiff(a, b) {
  if (a.length > maxDiffLines || b.length > maxDiffLines) return [...a.map((l) => ['-', l]), ...b.map((l) => ['+', l])];
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { out.push([' ', a[i]]); i++; j++; } else if (lcs[i + 1][j] >= lcs[i][j + 1]) { out.push(['-', a[i]]); i++; } else { out.push(['+', b[j]]); j++; }
  }
  while (i < n) out.push(['-', a[i++]]);
  while (j < m) out.push(['+', b[j++]]);
  return out;
}

const opClass = { '-': 'del', '+': 'add', ' ': 'same' };

/** One changed field: its name and the line diff of its pinned and pending value. */
function fieldDiff(d, tool) {
  const rows = lineDiff(lines(d.pinned), lines(d.pending));
  return h('div', { class: 'pin-field' },
    h('h4', {}, d.field, d.pinned === undefined ? ' (added)' : d.pending === undefined ? ' (removed)' : ''),
    h('pre', { class: 'diff', tabindex: '0', 'aria-label': `What changed in the ${d.field} of ${tool}: lines marked minus were pinned, plus are new` },
      rows.map(([op, l]) => h('span', { class: opClass[op] }, `${op} ${l}\n`))));
}

function short(hash) {
  return hash ? hash.slice(0, 12) : '—';
}

function historyTable(tool, hist) {
  return h('table', { class: 'pin-history' },
    h('caption', {}, `History of ${tool} (oldest first)`),
    h('thead', {}, h('tr', {}, ['Revision', 'At', 'Status', 'Pinned hash', 'Pending hash', 'Approved by'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, hist.map((r) => h('tr', {},
      h('td', { class: 'num' }, String(r.revision)),
      h('td', {}, when(r.at)),
      h('td', {}, r.status),
      h('td', {}, h('code', {}, short(r.hash))),
      h('td', {}, h('code', {}, short(r.pending_hash))),
      h('td', {}, r.approved_by || '—')))));
}

// --- one server's pins ---------------------------------------------------

/**
 * The "Tool pins" section of a server's page (master key): returns
 * { el, refresh }. ctx.admin false: the section says the pins are the
 * master key's and offers nothing.
 */
export function pinsSection(name, ctx) {
  const el = h('section', { 'aria-labelledby': 'pins-title', class: 'pins', 'data-testid': 'tool-pins' },
    h('h2', { id: 'pins-title' }, 'Tool pins'), h('p', {}, 'Loading…'));
  const opened = new Set(); // pinned tools whose details are open

  async function decide(p, op) {
    const approve = op === 'approve';
    const ok = await confirmDialog(approve ? `Approve the change to ${p.tool}?` : `Reject the change to ${p.tool}?`,
      approve
        ? `The changed definition of ${p.tool} becomes its pin, and every client of ${name} is served it from now on. Approve it only if you have read what changed.`
        : `${p.tool} keeps its pinned definition. If ${name} still lists the changed one, it goes pending again at the next list.`,
      approve ? 'Approve' : 'Reject');
    if (!ok) return;
    try {
      const out = await post(`${pinPath(name, p.tool)}/${op}`, { hash: p.pending_hash });
      announce(approve ? `Approved the change to ${p.tool}: it is served again${out && out.approved_by ? ` (approved by ${out.approved_by})` : ''}.`
        : `Rejected the change to ${p.tool}: its pinned definition stays.`);
    } catch (err) {
      showError(err, `${approve ? 'Approve' : 'Reject'} ${p.tool}`);
    }
    await refresh();
  }

  /** The detail of one pin: for a pending one what changed and the buttons; the history. */
  function detail(p, d) {
    const pending = d.status === 'pending';
    return h('div', { class: pending ? 'pin-detail pending' : 'pin-detail', 'data-tool': p.tool },
      pending ? [
        h('h3', {}, `What changed in ${p.tool}`, h('span', { class: 'small' }, ` pinned ${short(d.hash)} → pending ${short(d.pending_hash)}, since ${when(d.pending_since)}`)),
        (d.diff || []).map((x) => fieldDiff(x, p.tool)),
        ctx.admin ? h('div', { class: 'actions' },
          h('button', { type: 'button', onclick: () => decide(d, 'approve'), 'aria-label': `Approve the change to ${p.tool}` }, 'Approve'),
          h('button', { type: 'button', class: 'danger', onclick: () => decide(d, 'reject'), 'aria-label': `Reject the change to ${p.tool}` }, 'Reject')) : null,
      ] : null,
      h('details', { open: pending ? undefined : true },
        h('summary', {}, 'Pinned definition'),
        h('pre', { class: 'json', tabindex: '0', 'aria-label': `Pinned definition of ${p.tool}` }, JSON.stringify(d.definition, null, 2))),
      historyTable(p.tool, d.history || []));
  }

  async function loadDetail(p, box) {
    try {
      replace(box, detail(p, await get(pinPath(name, p.tool))));
    } catch (err) {
      replace(box, h('p', { class: 'form-error' }, `Could not read the pin of ${p.tool}: ${err.message}`));
    }
  }

  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    let list;
    try {
      list = await get(pinsPath(name));
    } catch (err) {
      if (mine !== seq) return;
      // 403 (not the master key), 404, 503: the API's reason, in place.
      replace(el, h('h2', { id: 'pins-title' }, 'Tool pins'), h('p', { class: 'form-error', 'data-testid': 'pins-error' }, `Tool pins: ${err.message}`));
      return;
    }
    if (mine !== seq) return;
    const pins = list.pins || [];
    const pending = pins.filter((p) => p.status === 'pending');
    const mode = list.tool_pinning;
    const rows = pins.map((p) => {
      const isPending = p.status === 'pending';
      const box = h('td', { colspan: '5' });
      const detailRow = h('tr', { class: 'pin-detail-row', hidden: !isPending && !opened.has(p.tool) }, box);
      if (isPending || opened.has(p.tool)) loadDetail(p, box);
      const toggle = isPending ? null : h('button', { type: 'button', class: 'secondary small', 'aria-expanded': String(opened.has(p.tool)),
        'aria-label': `Definition and history of ${p.tool}`,
        onclick: (ev) => {
          const open = detailRow.hidden;
          detailRow.hidden = !open;
          ev.currentTarget.setAttribute('aria-expanded', String(open));
          if (open) { opened.add(p.tool); loadDetail(p, box); } else opened.delete(p.tool);
        } }, 'History');
      return [
        h('tr', { class: isPending ? 'pin pending' : 'pin', 'data-tool': p.tool },
          h('th', { scope: 'row' }, h('code', {}, p.tool)),
          h('td', {}, isPending ? badge(mode === 'flag' ? 'pending (flagged)' : 'pending (withheld)', 'bad') : badge('pinned', 'ok')),
          h('td', {}, when(p.pinned_at)),
          h('td', {}, p.approved_by || h('span', { class: 'small' }, 'first sight')),
          h('td', {}, toggle)),
        detailRow,
      ];
    });
    replace(el,
      h('h2', { id: 'pins-title' }, 'Tool pins ', badge(mode, mode === 'off' ? 'muted' : ''),
        pending.length ? [' ', badge(`${pending.length} pending`, 'bad')] : null),
      h('p', { class: 'note' }, mode === 'off'
        ? 'tool_pinning is off for this server: nothing new is pinned.'
        : `A tool whose definition changed since it was pinned is ${mode === 'flag' ? 'listed flagged' : 'withheld from lists and calls'} until its change is approved.`),
      pins.length === 0 ? h('p', {}, 'No tool is pinned yet: a tool is pinned the first time the server\'s tools are listed.')
        : h('div', { class: 'table-box' }, h('table', { class: 'pins-table' },
          h('caption', { class: 'visually-hidden' }, `Tool pins of ${name}`),
          h('thead', {}, h('tr', {}, ['Tool', 'Status', 'Pinned at', 'Approved by', 'Details'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, rows))));
  }

  return { el, refresh };
}
