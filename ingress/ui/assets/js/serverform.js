// The MCP server form: every field of the registry API (docs/CONFIG.md,
// "Server keys"), grouped. Secrets (auth_value, client_secret, the AWS
// keys, static header and env values, stdio args) are write-only: the API
// answers them as [redacted]; the form shows them empty on edit and sends
// them only when something is typed. On edit only changed fields are sent
// (PUT changes the fields its body has; null clears one).
import { field, h, splitList, uid } from './dom.js';

const REDACTED = '[redacted]';

const AUTH_TYPES = [['none', 'none'], ['api_key', 'api_key (x-api-key)'], ['bearer_token', 'bearer_token (Authorization: Bearer)'],
  ['basic', 'basic (user:password)'], ['authorization', 'authorization (Authorization: value)'], ['token', 'token (Authorization: Token)'],
  ['oauth2', 'oauth2 (client credentials)'], ['aws_sigv4', 'aws_sigv4 (AWS Signature V4)']];
const TRANSPORTS = [['', 'detect (Streamable HTTP, then SSE)'], ['http', 'http (Streamable HTTP)'], ['sse', 'sse (HTTP+SSE, legacy)'], ['stdio', 'stdio (a program)']];

// [group, [name, label, kind, hint, options]]
const GROUPS = [
  ['Server', [
    ['server_name', 'Name', 'name', 'A-Z a-z 0-9 _ -, up to 64; the URL is /mcp/<name>'],
    ['description', 'Description', 'text'],
    ['url', 'URL', 'text', 'http(s) URL of the upstream; for sse the GET endpoint'],
    ['transport', 'Transport', 'select', null, TRANSPORTS],
    ['available_on_public_internet', 'Available on public internet', 'bool', 'Off: only internal callers see this server; to external callers it does not exist'],
    ['alias', 'Alias', 'text', 'Prefix of its tool names on /mcp instead of the name'],
    ['access_groups', 'Access groups', 'list', 'Comma-separated; keys and teams granted a group may use the server'],
  ]],
  ['Upstream credentials', [
    ['auth_type', 'Auth type', 'select', null, AUTH_TYPES],
    ['auth_value', 'Auth value', 'secret', 'The credential; os.environ/NAME to read it from the environment'],
    ['token_url', 'OAuth2 token URL', 'text'],
    ['client_id', 'OAuth2 client id', 'text'],
    ['client_secret', 'OAuth2 client secret', 'secret'],
    ['scopes', 'OAuth2 scopes', 'list', 'Comma- or space-separated'],
    ['aws_access_key_id', 'AWS access key id', 'secret'],
    ['aws_secret_access_key', 'AWS secret access key', 'secret'],
    ['aws_session_token', 'AWS session token', 'secret'],
    ['aws_region_name', 'AWS region', 'text'],
    ['aws_service_name', 'AWS service', 'text', 'lambda, execute-api, …'],
    ['static_headers', 'Static headers', 'headers', 'Sent on every upstream request; values are write-only'],
    ['extra_headers', 'Forwarded client headers', 'list', 'Header names of the client request forwarded to this server (extra_headers)'],
  ]],
  ['Tools', [
    ['allowed_tools', 'Allowed tools', 'list', 'Comma-separated; empty: all tools'],
    ['disallowed_tools', 'Disallowed tools', 'list', 'Comma-separated; removed, also from the allowed tools'],
    ['unprefixed', 'Unprefixed tool names on /mcp', 'bool'],
  ]],
  ['stdio', [
    ['command', 'Command', 'text', 'stdio only; through the API only if mcp_allow_stdio_servers_from_api is set'],
    ['args', 'Arguments', 'secretlines', 'One per line; write-only'],
    ['env', 'Environment', 'headers', 'The child\'s whole environment; values are write-only'],
  ]],
  ['Limits and protocol', [
    ['timeout', 'Timeout', 'text', 'Seconds or a duration (30s, 500ms); default 60s'],
    ['spec_version', 'MCP spec version', 'text', 'YYYY-MM-DD; empty: negotiated'],
    ['max_concurrent_requests', 'Max concurrent requests', 'int', 'Per worker replica; 0: no limit'],
    ['max_queued_requests', 'Max queued requests', 'int', 'Default 100'],
    ['circuit_breaker_threshold', 'Circuit breaker threshold', 'int', 'Consecutive failures; default 5'],
    ['circuit_breaker_cooldown', 'Circuit breaker cooldown', 'text', 'Default 30s'],
  ]],
];

// Fields that apply only to some auth types or transports: hidden (and
// not sent) otherwise, so the form shows what the chosen setup reads.
const HEADER_AUTH = new Set(['api_key', 'bearer_token', 'basic', 'authorization', 'token']);
const SHOWN_WHEN = {
  auth_value: (v) => HEADER_AUTH.has(v.auth_type),
  token_url: (v) => v.auth_type === 'oauth2',
  client_id: (v) => v.auth_type === 'oauth2',
  client_secret: (v) => v.auth_type === 'oauth2',
  scopes: (v) => v.auth_type === 'oauth2',
  aws_access_key_id: (v) => v.auth_type === 'aws_sigv4',
  aws_secret_access_key: (v) => v.auth_type === 'aws_sigv4',
  aws_session_token: (v) => v.auth_type === 'aws_sigv4',
  aws_region_name: (v) => v.auth_type === 'aws_sigv4',
  aws_service_name: (v) => v.auth_type === 'aws_sigv4',
  url: (v) => v.transport !== 'stdio',
  extra_headers: (v) => v.transport !== 'stdio',
  static_headers: (v) => v.transport !== 'stdio',
  stdio: (v) => v.transport === 'stdio',
};

function isEmpty(v) {
  return v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0) ||
    (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0);
}

/** Rows of name + write-only value, for static_headers and env. */
function headerRows(label, stored, isEdit, hint) {
  const list = h('ul', { class: 'rows' });
  const rows = [];
  const add = (name = '', existing = false) => {
    const nameIn = h('input', { type: 'text', value: name, autocomplete: 'off', id: uid('hn') });
    const valIn = h('input', { type: 'password', autocomplete: 'new-password', id: uid('hv'),
      placeholder: existing ? 'unchanged (stored, write-only)' : '' });
    const row = { nameIn, valIn, existing };
    const li = h('li', { class: 'row' },
      h('label', { for: nameIn.id, class: 'visually-hidden' }, `${label}: name`), nameIn,
      h('label', { for: valIn.id, class: 'visually-hidden' }, `${label}: value of ${name || 'the new entry'}`), valIn,
      h('button', { type: 'button', class: 'secondary small', onclick: () => { li.remove(); rows.splice(rows.indexOf(row), 1); } }, 'Remove'));
    nameIn.setAttribute('aria-label', `${label}: name`);
    rows.push(row);
    list.append(li);
    return row;
  };
  for (const name of Object.keys(stored || {})) add(name, true);
  const hid = uid('hint');
  const el = h('fieldset', { class: 'subfield', 'aria-describedby': hint ? hid : null },
    h('legend', {}, label), hint ? h('span', { class: 'hint', id: hid }, hint) : null, list,
    h('button', { type: 'button', class: 'secondary small', onclick: () => add('', false).nameIn.focus() }, `Add ${label.toLowerCase().replace(/s$/, '')}`));
  const read = () => {
    const out = {};
    let typed = false;
    for (const r of rows) {
      const n = r.nameIn.value.trim();
      if (!n) continue;
      if (r.valIn.value !== '') typed = true;
      // An untouched stored value goes back as [redacted]: the API keeps it.
      out[n] = r.valIn.value !== '' ? r.valIn.value : (isEdit && r.existing ? REDACTED : '');
    }
    return { out, typed };
  };
  return {
    el,
    read() {
      const { out, typed } = read();
      const sameNames = JSON.stringify(Object.keys(out).sort()) === JSON.stringify(Object.keys(stored || {}).sort());
      if (isEdit && sameNames && !typed) return { unchanged: true };
      return { value: Object.keys(out).length ? out : (isEdit ? null : undefined) };
    },
  };
}

/**
 * The form's controls for record (null: a new server). Returns { el, body() }:
 * body() is the POST body (new) or the PUT body (changed fields, with
 * server_id and revision).
 */
export function serverForm(record) {
  const isEdit = Boolean(record);
  const rec = record || {};
  const readers = [];
  const wrappers = {}; // name (or group legend) -> element, for SHOWN_WHEN
  const shown = (name) => !wrappers[name] || !wrappers[name].hidden;
  let authSel;
  let transportSel;
  const groups = GROUPS.map(([legend, fields]) => {
    const controls = fields.map(([name, label, kind, hint, options]) => {
      const cur = rec[name];
      if (kind === 'headers') {
        const hr = headerRows(label, cur, isEdit, hint);
        readers.push([name, () => hr.read()]);
        wrappers[name] = hr.el;
        return hr.el;
      }
      let input;
      let read;
      switch (kind) {
        case 'name':
          input = h('input', { type: 'text', name, value: cur || '', required: true, autocomplete: 'off', readonly: isEdit, pattern: '[A-Za-z0-9][A-Za-z0-9_\\-]{0,63}' });
          read = () => (isEdit ? { unchanged: true } : { value: input.value.trim() });
          break;
        case 'select':
          input = h('select', { name }, options.map(([v, t]) => h('option', { value: v }, t)));
          input.value = cur || (name === 'auth_type' ? 'none' : '');
          read = () => ({ value: input.value === '' ? null : input.value });
          break;
        case 'bool':
          input = h('input', { type: 'checkbox', name, checked: Boolean(cur) });
          read = () => ({ value: input.checked });
          break;
        case 'int':
          input = h('input', { type: 'number', name, min: '0', step: '1', value: cur ?? '' });
          read = () => ({ value: input.value === '' ? null : Number(input.value) });
          break;
        case 'list':
          input = h('input', { type: 'text', name, value: Array.isArray(cur) ? cur.join(', ') : (cur || ''), autocomplete: 'off' });
          read = () => ({ value: splitList(input.value) });
          break;
        case 'secret':
          input = h('input', { type: 'password', name, autocomplete: 'new-password',
            placeholder: isEdit && cur ? 'unchanged (stored, write-only)' : '' });
          read = () => (input.value === '' ? { unchanged: true } : { value: input.value });
          break;
        case 'secretlines':
          input = h('textarea', { name, rows: 2, spellcheck: 'false',
            placeholder: isEdit && Array.isArray(cur) && cur.length ? `unchanged (${cur.length} stored, write-only)` : '' });
          read = () => (input.value.trim() === '' ? { unchanged: true } : { value: input.value.split('\n').map((s) => s.trim()).filter(Boolean) });
          break;
        default:
          input = h('input', { type: 'text', name, value: cur ?? '', autocomplete: 'off' });
          read = () => ({ value: input.value.trim() === '' ? null : input.value.trim() });
      }
      readers.push([name, read]);
      const wrap = field(label, input, hint);
      wrappers[name] = wrap;
      if (name === 'auth_type' || name === 'transport') input.addEventListener('change', () => update());
      if (name === 'auth_type') authSel = input;
      if (name === 'transport') transportSel = input;
      return wrap;
    });
    const fs = h('fieldset', {}, h('legend', {}, legend), controls);
    wrappers[legend] = fs;
    return fs;
  });
  function update() {
    const v = { auth_type: authSel.value, transport: transportSel.value || (rec.command ? 'stdio' : '') };
    for (const [name, when] of Object.entries(SHOWN_WHEN)) if (wrappers[name]) wrappers[name].hidden = !when(v);
  }
  update();
  const el = h('div', { class: 'server-form' }, groups);
  return {
    el,
    body() {
      const out = {};
      const stdioShown = shown('stdio');
      for (const [name, read] of readers) {
        if (!shown(name) || (!stdioShown && (name === 'command' || name === 'args' || name === 'env'))) continue;
        const r = read();
        if (r.unchanged) continue;
        const v = r.value;
        if (!isEdit) {
          if (!isEmpty(v) && !(v === false)) out[name] = v;
          continue;
        }
        const before = rec[name];
        if (isEmpty(v) && isEmpty(before)) continue;
        if (typeof v === 'boolean' && Boolean(before) === v) continue;
        if (JSON.stringify(v) === JSON.stringify(before)) continue;
        if (typeof before === 'number' && String(before) === String(v)) continue;
        out[name] = isEmpty(v) ? null : v;
      }
      if (isEdit) {
        out.server_id = rec.server_id || rec.server_name;
        if (rec.revision) out.revision = rec.revision;
      }
      return out;
    },
  };
}
