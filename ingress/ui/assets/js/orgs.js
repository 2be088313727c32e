// Organizations: list, create, edit (servers, tools, models, limits,
// budget), delete, members (member_add with user_id and role,
// member_delete).
import { del, get, patch, post, qs } from './api.js';
import { badge, h, replace, textInput } from './dom.js';
import { announce, attempt, confirmDialog, formDialog, openDialog, showError } from './ui.js';
import { diff, knownServers, listText, numberField, permissionsFieldset, selectField } from './admin.js';

async function orgForm(ctx, record, done) {
  const servers = await knownServers(ctx);
  const rec = record || {};
  const id = textInput('Organization id', { value: rec.organization_id || '', readonly: Boolean(record), hint: record ? undefined : 'Empty: a UUID' });
  const alias = textInput('Organization alias', { value: rec.organization_alias || '' });
  const perms = permissionsFieldset(record, servers, 'organization');
  const rpm = numberField('Requests per minute', rec.rpm_limit || null, 'For every key of all its teams together; empty: none');
  const budget = numberField('Max budget', rec.max_budget ?? null, 'LLM spend limit in USD per period; empty: none', 'any');
  const period = textInput('Budget period', { value: rec.budget_duration || '', placeholder: '30d', hint: 'budget_duration: 30d, 1w, …' });
  const blocked = textInput('Blocked', { type: 'checkbox', checked: Boolean(rec.blocked), hint: 'Every key of its teams is refused' });
  formDialog(record ? `Edit organization ${rec.organization_alias || rec.organization_id}` : 'Create an organization', {
    wide: true,
    submitLabel: record ? 'Save changes' : 'Create organization',
    fields: [id.el, alias.el, perms.el, rpm.el, budget.el, period.el, blocked.el],
    onSubmit: async () => {
      const next = { organization_alias: alias.input.value.trim(), ...perms.read(), rpm_limit: rpm.read(),
        max_budget: budget.read(), budget_duration: period.input.value.trim(), blocked: blocked.input.checked };
      const body = diff(record, next);
      if (record && 'rpm_limit' in body && body.rpm_limit === null) body.rpm_limit = 0;
      if (record) {
        await patch('/organization/update', { organization_id: rec.organization_id, ...body });
        announce('Organization saved.');
      } else {
        const oid = id.input.value.trim();
        const made = await post('/organization/new', oid ? { organization_id: oid, ...body } : body);
        announce(`Organization ${made.organization_id} created.`);
      }
      if (done) done();
    },
  });
}

function membersDialog(ctx, org, done) {
  openDialog(`Members of ${org.organization_alias || org.organization_id}`, (close) => {
    const list = h('div', {});
    const render = (o) => {
      const members = o.members || [];
      replace(list, members.length === 0 ? h('p', {}, 'No members.') : h('table', {},
        h('thead', {}, h('tr', {}, ['User id', 'Role', ''].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, members.map((m) => h('tr', {},
          h('th', { scope: 'row' }, m.user_id || m.user_email || '—'),
          h('td', {}, m.user_role || '—'),
          h('td', {}, ctx.admin ? h('button', { type: 'button', class: 'danger small', 'aria-label': `Remove member ${m.user_id}`,
            onclick: () => attempt(async () => {
              await del('/organization/member_delete', { organization_id: o.organization_id, user_id: m.user_id });
              await reload();
            }, `Remove ${m.user_id}`) }, 'Remove') : null))))));
    };
    const reload = async () => {
      const o = await get(`/organization/info${qs({ organization_id: org.organization_id })}`);
      render(o);
      if (done) done();
    };
    render(org);
    if (!ctx.admin) return h('div', {}, list, h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => close() }, 'Close')));
    const user = textInput('User id', { required: true, hint: 'The user_id that keys carry' });
    const role = selectField('Role', [['internal_user', 'internal_user'], ['org_admin', 'org_admin']], 'internal_user', 'org_admin: keys of its teams with this user_id administer the organization');
    const msg = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const form = h('form', {}, h('h3', {}, 'Add a member'), user.el, role.el, msg,
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Add member'), h('button', { type: 'button', class: 'secondary', onclick: () => close() }, 'Close')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      msg.hidden = true;
      try {
        await post('/organization/member_add', { organization_id: org.organization_id, member: { user_id: user.input.value.trim(), role: role.input.value } });
        user.input.value = '';
        await reload();
        announce('Member added.');
      } catch (err) {
        msg.textContent = err.message;
        msg.hidden = false;
      }
    });
    return h('div', {}, list, form);
  });
}

export function orgsPage(root, ctx) {
  const box = h('div', { class: 'table-box' }, h('p', {}, 'Loading…'));
  replace(root,
    h('div', { class: 'page-head' }, h('h1', {}, 'Organizations'),
      ctx.admin ? h('button', { type: 'button', onclick: () => orgForm(ctx, null, refresh).catch((e) => showError(e, 'Create an organization')) }, 'Create organization') : null),
    box);
  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    const orgs = await attempt(() => get('/organization/list'), 'Organizations');
    if (!orgs || mine !== seq) return;
    if (orgs.length === 0) {
      replace(box, h('p', {}, 'No organizations.'));
      return;
    }
    replace(box, h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Organizations'),
      h('thead', {}, h('tr', {}, ['Organization', 'Alias', 'Servers', 'Models', 'Budget', 'Teams', 'Members', 'Status', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, orgs.map((o) => {
        const name = o.organization_alias || o.organization_id;
        return h('tr', { 'data-org': o.organization_id },
          h('th', { scope: 'row' }, h('code', {}, o.organization_id)),
          h('td', {}, o.organization_alias || '—'),
          h('td', {}, listText(o.mcp_servers)),
          h('td', {}, listText(o.models)),
          h('td', {}, o.max_budget != null ? `${o.spend ?? 0} of ${o.max_budget}${o.budget_duration ? ` / ${o.budget_duration}` : ''}` : '—'),
          h('td', {}, listText((o.teams || []).map((t) => t.team_alias || t.team_id))),
          h('td', { class: 'num' }, String((o.members || []).length)),
          h('td', {}, o.blocked ? badge('blocked', 'bad') : badge('active', 'ok')),
          h('td', { class: 'actions' },
            ctx.admin ? h('button', { type: 'button', class: 'secondary small', 'aria-label': `Edit organization ${name}`, onclick: () => orgForm(ctx, o, refresh).catch((e) => showError(e, 'Edit organization')) }, 'Edit') : null,
            h('button', { type: 'button', class: 'secondary small', 'aria-label': `Members of ${name}`, onclick: () => membersDialog(ctx, o, refresh) }, 'Members'),
            ctx.admin ? h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete organization ${name}`,
              onclick: async () => {
                if (!(await confirmDialog(`Delete organization ${name}?`, 'An organization that still has teams cannot be deleted: move or delete them first.'))) return;
                await attempt(async () => { await del('/organization/delete', { organization_ids: [o.organization_id] }); announce(`Organization ${name} deleted.`); refresh(); }, `Delete ${name}`);
              } }, 'Delete') : null));
      }))));
  }
  refresh();
  return { refresh };
}
