// Virtual keys: list, create (shown once, with a copy button), edit,
// block / unblock, revoke.
import { get, post, qs } from './api.js';
import { badge, h, replace, textInput } from './dom.js';
import { announce, attempt, confirmDialog, formDialog, openDialog, showError } from './ui.js';
import { diff, knownServers, listText, numberField, permissionsFieldset, selectField, when } from './admin.js';

function status(k) {
  if (k.blocked) return badge('blocked', 'bad');
  if (k.expires && new Date(k.expires) < new Date()) return badge('expired', 'bad');
  return badge('active', 'ok');
}

/** Shows a new key once: a read-only field, a copy button, a warning. */
export function showKeyOnce(created) {
  openDialog('Your new key', (close) => {
    const k = textInput('New key', { value: created.key, readonly: true, hint: 'Shown once: copy it now. mcpbus keeps only its hash.', 'data-testid': 'new-key' });
    k.input.classList.add('mono');
    const copied = h('span', { role: 'status', class: 'small' });
    return h('div', {},
      h('p', {}, 'Key ', h('strong', {}, created.key_alias || created.token.slice(0, 12)), created.expires ? ` (expires ${when(created.expires)})` : ' (no expiry)'),
      k.el,
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: async () => {
          try {
            await navigator.clipboard.writeText(created.key);
            copied.textContent = 'Copied to the clipboard.';
          } catch {
            k.input.select();
            copied.textContent = 'Copy was refused by the browser: the key is selected, press Ctrl+C.';
          }
        } }, 'Copy'),
        h('button', { type: 'button', class: 'secondary', onclick: () => close() }, 'Done'), copied));
  });
}

async function keyForm(ctx, record, done) {
  const [servers, teams] = await Promise.all([knownServers(ctx), get('/team/list').catch(() => [])]);
  const rec = record || {};
  const alias = textInput('Alias', { value: rec.key_alias || '', hint: 'Unique; names the key in errors and logs' });
  const user = textInput('User id', { value: rec.user_id || '', hint: 'Optional; an org_admin member\'s user id makes the key that organization\'s admin' });
  const teamOpts = [['', ctx.admin ? '(no team)' : '(choose a team)'], ...teams.map((t) => [t.team_id, t.team_alias ? `${t.team_alias} (${t.team_id})` : t.team_id])];
  const team = selectField('Team', teamOpts, rec.team_id || '', 'The key can narrow its team\'s permissions, never widen them');
  const perms = permissionsFieldset(record, servers, 'key');
  const rpm = numberField('Requests per minute', rec.rpm_limit || null, 'rpm_limit; empty or 0: no limit of its own');
  const duration = textInput(record ? 'New duration' : 'Duration', { value: '', placeholder: '30d', hint: record ? `Expires ${when(rec.expires)}; a duration (30s, 15m, 24h, 30d, 2w) sets a new expiry from now` : 'Expiry from now: 30s, 15m, 24h, 30d, 2w; empty: never' });
  const budget = numberField('Max budget', rec.max_budget ?? null, 'LLM spend limit in USD; empty: none', 'any');
  formDialog(record ? `Edit key ${rec.key_alias || rec.token.slice(0, 12)}` : 'Create a key', {
    wide: true,
    submitLabel: record ? 'Save changes' : 'Create key',
    fields: [alias.el, user.el, team.el, perms.el, rpm.el, duration.el, budget.el],
    onSubmit: async () => {
      const next = { key_alias: alias.input.value.trim(), user_id: user.input.value.trim(), team_id: team.input.value,
        ...perms.read(), rpm_limit: rpm.read(), max_budget: budget.read() };
      const body = diff(record, next);
      if (record && 'rpm_limit' in body && body.rpm_limit === null) body.rpm_limit = 0;
      const dur = duration.input.value.trim();
      if (dur) body.duration = dur;
      if (record) {
        await post('/key/update', { key: rec.token, ...body });
        announce('Key saved.');
      } else {
        const created = await post('/key/generate', body);
        showKeyOnce(created);
      }
      if (done) done();
    },
  });
}

export function keysPage(root, ctx) {
  const box = h('div', { class: 'table-box' }, h('p', {}, 'Loading…'));
  const teamFilter = textInput('Team filter', { value: '', hint: 'Only the keys of this team id', name: 'team' });
  teamFilter.input.addEventListener('change', () => refresh());
  replace(root,
    h('div', { class: 'page-head' }, h('h1', {}, 'Keys'),
      h('button', { type: 'button', onclick: () => keyForm(ctx, null, refresh).catch((e) => showError(e, 'Create a key')) }, 'Create key')),
    h('div', { class: 'filters' }, teamFilter.el),
    box);
  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    const out = await attempt(() => get(`/key/list${qs({ return_full_object: 'true', team_id: teamFilter.input.value.trim() })}`), 'Keys');
    if (!out || mine !== seq) return;
    const keys = out.keys || [];
    if (keys.length === 0) {
      replace(box, h('p', {}, 'No keys.'));
      return;
    }
    replace(box, h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Keys'),
      h('thead', {}, h('tr', {}, ['Alias', 'Token', 'Team', 'Servers', 'Tools', 'RPM', 'Expires', 'Status', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, keys.map((k) => {
        const name = k.key_alias || k.token.slice(0, 12);
        const tools = Object.entries(k.mcp_tool_permissions || {}).map(([s, t]) => `${s}: ${t.join(', ')}`).join('; ');
        return h('tr', { 'data-key': k.key_alias || k.token },
          h('th', { scope: 'row' }, k.key_alias || '—'),
          h('td', {}, h('code', { title: k.token }, `${k.token.slice(0, 12)}…`)),
          h('td', {}, k.team_id || '—'),
          h('td', {}, listText(k.mcp_servers)),
          h('td', {}, tools || '—'),
          h('td', { class: 'num' }, k.rpm_limit ? String(k.rpm_limit) : '—'),
          h('td', {}, when(k.expires)),
          h('td', {}, status(k)),
          h('td', { class: 'actions' },
            h('a', { class: 'button secondary small', href: `#/usage/key/${k.token}/${encodeURIComponent(name)}`, 'aria-label': `Usage of key ${name}` }, 'Usage'),
            h('button', { type: 'button', class: 'secondary small', 'aria-label': `Edit key ${name}`, onclick: () => keyForm(ctx, k, refresh).catch((e) => showError(e, 'Edit key')) }, 'Edit'),
            h('button', { type: 'button', class: 'secondary small', 'aria-label': `${k.blocked ? 'Unblock' : 'Block'} key ${name}`,
              onclick: () => attempt(async () => { await post('/key/update', { key: k.token, blocked: !k.blocked }); announce(`Key ${name} ${k.blocked ? 'unblocked' : 'blocked'}.`); refresh(); }, `Block ${name}`) },
            k.blocked ? 'Unblock' : 'Block'),
            h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke key ${name}`,
              onclick: async () => {
                if (!(await confirmDialog(`Revoke key ${name}?`, 'The key stops working at once and its calls in flight are cancelled. This cannot be undone.', 'Revoke'))) return;
                await attempt(async () => { await post('/key/delete', { keys: [k.token] }); announce(`Key ${name} revoked.`); refresh(); }, `Revoke ${name}`);
              } }, 'Revoke')));
      }))));
  }
  refresh();
  return { refresh };
}
