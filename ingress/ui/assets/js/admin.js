// What the key, team and organization pages share: the permissions
// fieldset (servers, tools per server, access groups, models), limit
// fields, the diff an update sends, and the known server names.
import { get } from './api.js';
import { field, h, splitList, textInput, uid } from './dom.js';

/** Names of the servers the caller can name: the registry (admin) or health. */
export async function knownServers(ctx) {
  try {
    if (ctx.admin) return (await get('/v1/mcp/server')).map((s) => s.server_id);
    return (await get('/v1/mcp/server/health')).map((s) => s.server_id);
  } catch {
    return [];
  }
}

/**
 * Servers (checkboxes), tools per server, access groups and models of a
 * key, team or organization. read() answers the four fields.
 */
export function permissionsFieldset(record, serverNames, scope) {
  const rec = record || {};
  const names = [...new Set([...serverNames, ...(rec.mcp_servers || []), ...Object.keys(rec.mcp_tool_permissions || {})])].sort();
  const chosen = new Set(rec.mcp_servers || []);
  const rows = names.map((n) => {
    const box = h('input', { type: 'checkbox', id: uid('srv'), name: 'mcp_servers', value: n, checked: chosen.has(n) });
    const tools = h('input', { type: 'text', id: uid('tools'), autocomplete: 'off', value: ((rec.mcp_tool_permissions || {})[n] || []).join(', ') });
    return {
      n, box, tools,
      el: h('tr', {},
        h('td', {}, box, ' ', h('label', { for: box.id }, h('code', {}, n))),
        h('td', {}, h('label', { for: tools.id, class: 'visually-hidden' }, `Tools allowed on ${n}`), tools)),
    };
  });
  const other = textInput('Other servers', { value: '', hint: 'Comma-separated names not listed above' });
  const groups = textInput('Access groups', { value: (rec.mcp_access_groups || []).join(', '), hint: 'Comma-separated; grants every server in each group' });
  const models = textInput('Models', { value: (rec.models || []).join(', '), hint: 'Comma-separated model groups for the LLM routes; empty: no limit of its own' });
  const el = h('fieldset', { class: 'perms' },
    h('legend', {}, 'Permissions'),
    h('p', { class: 'hint' }, `Servers: tick the ones this ${scope} may use (none ticked: no limit of its own). Tools: comma-separated per server (empty: every tool).`),
    names.length ? h('table', { class: 'perm-table' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Server'), h('th', { scope: 'col' }, 'Allowed tools'))),
      h('tbody', {}, rows.map((r) => r.el))) : null,
    other.el, groups.el, models.el);
  return {
    el,
    read() {
      const servers = [...rows.filter((r) => r.box.checked).map((r) => r.n), ...splitList(other.input.value)];
      const tools = {};
      for (const r of rows) {
        const t = splitList(r.tools.value);
        if (t.length) tools[r.n] = t;
      }
      return {
        mcp_servers: [...new Set(servers)],
        mcp_tool_permissions: tools,
        mcp_access_groups: splitList(groups.input.value),
        models: splitList(models.input.value),
      };
    },
  };
}

/** A number input; read() answers a number or null. */
export function numberField(label, value, hint, step = '1') {
  const t = textInput(label, { type: 'number', value: value ?? '', hint, min: '0', step });
  return { el: t.el, input: t.input, read: () => (t.input.value === '' ? null : Number(t.input.value)) };
}

/** A labelled select whose options come from [value, text] pairs. */
export function selectField(label, options, value, hint) {
  const sel = h('select', { id: uid('sel') }, options.map(([v, t]) => h('option', { value: v }, t)));
  sel.value = value || '';
  return { el: field(label, sel, hint), input: sel };
}

function empty(v) {
  return v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0) ||
    (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0);
}

/**
 * The fields of next that differ from record: on create every non-empty
 * one, on update the changed ones (an emptied list as [] or {}, which the
 * API reads as "clear"; an emptied number as null).
 */
export function diff(record, next) {
  const out = {};
  for (const [k, v] of Object.entries(next)) {
    if (v === undefined) continue;
    if (!record) {
      if (!empty(v) && v !== false) out[k] = v;
      continue;
    }
    const before = record[k];
    if (empty(v) && empty(before)) continue;
    if (typeof v === 'boolean' && Boolean(before) === v) continue;
    if (JSON.stringify(v) === JSON.stringify(before)) continue;
    // An emptied text goes as "" (the API reads it as "clear": team_id,
    // user_id, organization_id; null would be ignored).
    out[k] = v;
  }
  return out;
}

/** "2026-12-03 13:32" from an RFC 3339 time, or "never". */
export function when(t) {
  if (!t) return 'never';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().slice(0, 16).replace('T', ' ');
}

export function listText(v) {
  return Array.isArray(v) && v.length ? v.join(', ') : '—';
}
