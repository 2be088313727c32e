// MCP servers: the table (name, transport, health, tools, Public/Internal),
// add / edit / delete, test connection; and one server's page: its tools
// with their schemas and a playground that calls them.
import { del, get, post, put, qs } from './api.js';
import { badge, field, h, jsonBlock, replace, uid } from './dom.js';
import { announce, attempt, clearError, confirmDialog, formDialog, showError } from './ui.js';
import { serverForm } from './serverform.js';
import { schemaForm } from './schemaform.js';
import { pendingBadge, pinningOn, pinsSection } from './pins.js';

const enc = encodeURIComponent;

/** The servers the caller may use: records (admin) or names from health. */
async function loadServers(ctx) {
  if (ctx.admin) return get('/v1/mcp/server');
  const health = await get('/v1/mcp/server/health');
  return health.map((x) => ({ server_id: x.server_id, server_name: x.server_id, _health: x }));
}

function healthBadge(hl) {
  if (!hl) return badge('unknown', 'muted');
  if (hl.status === 'healthy') return badge(`healthy · ${hl.latency_ms} ms`, 'ok');
  return h('span', {}, badge('unhealthy', 'bad'), hl.last_error ? h('span', { class: 'small' }, ` ${hl.last_error}`) : null);
}

function visibilityBadge(s) {
  if (!('available_on_public_internet' in s)) return badge('—', 'muted');
  return s.available_on_public_internet ? badge('Public', 'public') : badge('Internal', 'internal');
}

export function openServerForm(record, done) {
  const form = serverForm(record);
  formDialog(record ? `Edit MCP server ${record.server_name}` : 'Add an MCP server', {
    fields: form.el,
    wide: true,
    submitLabel: record ? 'Save changes' : 'Add server',
    onSubmit: async () => {
      const body = form.body();
      const saved = record ? await put('/v1/mcp/server', body) : await post('/v1/mcp/server', body);
      announce(`Saved MCP server ${saved.server_name}.`);
      if (done) done(saved);
    },
  });
}

export async function deleteServer(s, done) {
  if (!(await confirmDialog(`Delete MCP server ${s.server_name}?`, `Callers lose ${s.server_name} and its tools at once. A server from the config file comes back at the next start.`))) return;
  await attempt(async () => {
    await del(`/v1/mcp/server/${enc(s.server_id)}${qs({ revision: s.revision })}`);
    announce(`Deleted MCP server ${s.server_name}.`);
    if (done) done();
  }, `Delete ${s.server_name}`);
}

export async function testConnection(name, cell) {
  if (cell) replace(cell, badge('checking…', 'muted'));
  const out = await attempt(() => get(`/v1/mcp/server/health${qs({ server_ids: name })}`), `Test connection to ${name}`);
  const hl = out && out.find((x) => x.server_id === name);
  if (cell) replace(cell, healthBadge(hl));
  if (hl) announce(`${name}: ${hl.status}${hl.last_error ? ` (${hl.last_error})` : ''}`);
  return hl;
}

export function serversPage(root, ctx) {
  const tableBox = h('div', { class: 'table-box' }, h('p', {}, 'Loading…'));
  replace(root,
    h('div', { class: 'page-head' },
      h('h1', {}, 'MCP servers'),
      ctx.admin ? h('button', { type: 'button', onclick: () => openServerForm(null, refresh) }, 'Add server') : null),
    ctx.admin ? null : h('p', { class: 'note' }, 'The servers you may use.'),
    tableBox);

  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    let servers;
    try {
      servers = await loadServers(ctx);
    } catch (err) {
      if (mine !== seq) return;
      replace(tableBox, h('p', {}, err.status === 404 || err.status === 403 ? 'No MCP server is available to this key.' : 'Could not load the servers.'));
      if (err.status !== 404 && err.status !== 403) showError(err, 'MCP servers');
      return;
    }
    if (mine !== seq) return;
    if (servers.length === 0) {
      replace(tableBox, h('p', {}, ctx.admin ? 'No MCP server yet: add one.' : 'No MCP server is available to this key.'));
      return;
    }
    const cells = new Map();
    const rows = servers.map((s) => {
      const health = h('td', {}, s._health ? healthBadge(s._health) : badge('checking…', 'muted'));
      const tools = h('td', { class: 'num' }, '…');
      const calls = h('td', { class: 'num' }, '…');
      const errors = h('td', { class: 'num' }, '…');
      cells.set(s.server_id, { health, tools, calls, errors });
      // Tool changes waiting for approval (tool_pinning; the master key's).
      const pins = h('span', { class: 'pins-count' });
      if (ctx.admin && pinningOn(s)) pendingBadge(s.server_id, pins);
      return h('tr', { 'data-server': s.server_id },
        h('th', { scope: 'row' }, h('a', { href: `#/servers/${enc(s.server_id)}` }, s.server_name), ' ', pins),
        h('td', {}, s.transport || (s.command ? 'stdio' : (ctx.admin ? 'auto' : '—'))),
        health,
        tools,
        calls,
        errors,
        h('td', {}, visibilityBadge(s)),
        ctx.admin ? h('td', { class: 'actions' },
          h('button', { type: 'button', class: 'secondary small', 'aria-label': `Edit ${s.server_name}`, onclick: () => openServerForm(s, refresh) }, 'Edit'),
          h('button', { type: 'button', class: 'secondary small', 'aria-label': `Test connection to ${s.server_name}`, onclick: () => testConnection(s.server_id, health) }, 'Test connection'),
          h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete ${s.server_name}`, onclick: () => deleteServer(s, refresh) }, 'Delete')) : null);
    });
    replace(tableBox, h('table', {},
      h('caption', { class: 'visually-hidden' }, 'MCP servers'),
      h('thead', {}, h('tr', {}, ['Name', 'Transport', 'Health', 'Tools', 'Calls (1 h)', 'Errors (1 h)', 'Visibility', ctx.admin ? 'Actions' : null].filter(Boolean).map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows)));
    // Health and tool counts come after: each asks the workers.
    if (ctx.admin) {
      get('/v1/mcp/server/health').then((list) => {
        if (mine !== seq) return;
        for (const hl of list) if (cells.has(hl.server_id)) replace(cells.get(hl.server_id).health, healthBadge(hl));
      }).catch((err) => showError(err, 'Health'));
    }
    // Calls and errors (upstream errors and gateway failures) in the last
    // hour, as the caller's usage scope counts them.
    get(`/ui/api/usage${qs({ since: '1h', step: '1h', by: 'server' })}`).then((u) => {
      if (mine !== seq) return;
      const by = new Map((u.rows || []).map((r) => [r.name[0], r]));
      for (const [id, c] of cells) {
        const r = by.get(id);
        replace(c.calls, String(r ? r.calls : 0));
        replace(c.errors, String(r ? r.errors + r.failed : 0));
      }
    }).catch((err) => {
      for (const [, c] of cells) { replace(c.calls, '?'); replace(c.errors, '?'); }
      showError(err, 'Usage');
    });
    get('/mcp-rest/tools/list').then((out) => {
      if (mine !== seq) return;
      const counts = new Map();
      for (const t of out.tools || []) counts.set(t.server_id, (counts.get(t.server_id) || 0) + 1);
      const failed = new Set((out.errors || []).map((e) => e.server_id || e.server_name));
      for (const [id, c] of cells) replace(c.tools, failed.has(id) ? '?' : String(counts.get(id) || 0));
    }).catch((err) => {
      for (const [, c] of cells) replace(c.tools, '?');
      if (err.status !== 404 && err.status !== 403) showError(err, 'Tools');
    });
  }
  refresh();
  return { refresh };
}

// --- one server ----------------------------------------------------------

function recordDetails(s) {
  const skip = new Set(['server_id', 'server_name', 'description']);
  const rows = [];
  for (const [k, v] of Object.entries(s)) {
    if (skip.has(k) || v === null || v === undefined || v === '') continue;
    let text = typeof v === 'object' ? JSON.stringify(v) : String(v);
    // Secrets are write-only: name what is stored, never a value.
    if (v === '[redacted]') text = 'set (write-only)';
    else if ((k === 'static_headers' || k === 'env') && typeof v === 'object') text = `${Object.keys(v).join(', ')} (values write-only)`;
    else if (k === 'args' && Array.isArray(v)) text = `${v.length} stored (write-only)`;
    rows.push(h('dt', {}, k), h('dd', {}, text));
  }
  return h('dl', { class: 'details' }, rows);
}

export function serverPage(root, ctx, name) {
  const head = h('div', { class: 'page-head' }, h('h1', {}, name));
  const info = h('section', { 'aria-label': 'Server' });
  const toolsBox = h('section', { 'aria-labelledby': 'tools-title' }, h('h2', { id: 'tools-title' }, 'Tools'), h('p', {}, 'Loading…'));
  const play = h('section', { 'aria-labelledby': 'play-title', class: 'playground' });
  // Tool pins (pins.js): shown once the record says tool_pinning is on.
  const pins = pinsSection(name, ctx);
  pins.el.hidden = true;
  replace(root, h('p', {}, h('a', { href: '#/servers' }, '← All MCP servers')), head, info, pins.el, toolsBox, play);

  let tools = [];
  let current = null;
  let shownSchema = '';
  const healthCell = h('span', {}, badge('not checked', 'muted'));

  async function togglePublic(s) {
    const pub = !s.available_on_public_internet;
    await attempt(async () => {
      await put('/v1/mcp/server', { server_id: s.server_id, available_on_public_internet: pub, revision: s.revision });
      announce(`${s.server_name} is now ${pub ? 'public: external callers see it' : 'internal: external callers no longer see it'}.`);
      await refresh();
    }, `Visibility of ${s.server_name}`);
  }

  let checked = false;
  async function refresh() {
    if (!checked) {
      checked = true;
      testConnection(name, healthCell);
    }
    if (ctx.admin) {
      try {
        const s = await get(`/v1/mcp/server/${enc(name)}`);
        replace(head, h('h1', {}, s.server_name), visibilityBadge(s),
          h('div', { class: 'actions' },
            h('button', { type: 'button', class: 'secondary', onclick: () => togglePublic(s) },
              s.available_on_public_internet ? 'Make internal' : 'Make public'),
            h('button', { type: 'button', class: 'secondary', onclick: () => openServerForm(s, refresh) }, 'Edit'),
            h('button', { type: 'button', class: 'secondary', onclick: () => testConnection(name, healthCell) }, 'Test connection'),
            h('button', { type: 'button', class: 'danger', onclick: () => deleteServer(s, () => { location.hash = '#/servers'; }) }, 'Delete')));
        replace(info, s.description ? h('p', {}, s.description) : null, h('p', {}, 'Health: ', healthCell), recordDetails(s));
        pins.el.hidden = !pinningOn(s);
        if (pinningOn(s)) pins.refresh();
      } catch (err) {
        showError(err, name);
      }
    } else {
      replace(info, h('p', {}, 'Health: ', healthCell), h('button', { type: 'button', class: 'secondary', onclick: () => testConnection(name, healthCell) }, 'Test connection'));
    }
    try {
      const out = await get(`/mcp-rest/tools/list${qs({ server_id: name })}`);
      tools = out.tools || [];
    } catch (err) {
      tools = [];
      showError(err, `Tools of ${name}`);
    }
    renderTools();
    // A live refresh keeps the playground (its typed arguments, its last
    // result) while the tool it shows is unchanged.
    const same = current && tools.find((t) => t.name === current);
    if (same && JSON.stringify(same.inputSchema) === shownSchema) return;
    renderPlayground(same ? current : (tools[0] && tools[0].name));
  }

  function renderTools() {
    if (tools.length === 0) {
      replace(toolsBox, h('h2', { id: 'tools-title' }, 'Tools'), h('p', {}, 'No tools.'));
      return;
    }
    replace(toolsBox, h('h2', { id: 'tools-title' }, `Tools (${tools.length})`),
      h('ul', { class: 'tools' }, tools.map((t) => h('li', {},
        h('details', {},
          h('summary', {}, h('code', {}, t.name), t.description ? h('span', { class: 'desc' }, ` — ${t.description}`) : null),
          h('h3', {}, 'Input schema'), jsonBlock(t.inputSchema || {}, { 'aria-label': `Input schema of ${t.name}` }),
          t.outputSchema ? [h('h3', {}, 'Output schema'), jsonBlock(t.outputSchema, { 'aria-label': `Output schema of ${t.name}` })] : null,
          h('button', { type: 'button', class: 'secondary small', onclick: () => { renderPlayground(t.name); play.querySelector('select').focus(); } }, `Try ${t.name}`))))));
  }

  function renderPlayground(toolName) {
    current = toolName || null;
    const title = h('h2', { id: 'play-title' }, 'Playground');
    if (!current) {
      replace(play, title, h('p', {}, 'No tool to call.'));
      return;
    }
    const tool = tools.find((t) => t.name === current);
    shownSchema = JSON.stringify(tool.inputSchema);
    const sel = h('select', { id: uid('tool'), name: 'tool' }, tools.map((t) => h('option', { value: t.name }, t.name)));
    sel.value = current;
    sel.addEventListener('change', () => {
      renderPlayground(sel.value);
      play.querySelector('select').focus();
    });
    const sf = schemaForm(tool.inputSchema || {});
    const result = h('div', { class: 'result', 'aria-live': 'polite' });
    const form = h('form', { class: 'play-form' },
      field('Tool', sel, tool.description || undefined),
      h('fieldset', {}, h('legend', {}, 'Arguments'), sf.el),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Call tool')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearError();
      let args;
      try {
        args = sf.values();
      } catch (err) {
        showError(err, 'Arguments');
        return;
      }
      const btn = form.querySelector('button[type=submit]');
      btn.disabled = true;
      replace(result, h('p', {}, 'Calling…'));
      try {
        const out = await post('/mcp-rest/tools/call', { server_id: name, name: current, arguments: args });
        replace(result, h('h3', {}, out && out.isError ? 'Result (the tool reported an error)' : 'Result'),
          jsonBlock(out, { 'aria-label': 'Result', 'data-testid': 'tool-result' }));
      } catch (err) {
        replace(result, h('h3', {}, 'Refused'), jsonBlock({ error: { message: err.message, code: err.code, status: err.status } }, { 'aria-label': 'Error', 'data-testid': 'tool-result' }));
        showError(err, `${current}`);
      } finally {
        btn.disabled = false;
      }
    });
    replace(play, title, form, result);
  }

  refresh();
  return { refresh };
}
