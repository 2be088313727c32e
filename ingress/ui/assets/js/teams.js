// Teams: list, create, edit (organization, servers, tools, models, limits,
// budget), block, delete.
import { get, post } from './api.js';
import { badge, h, replace, textInput } from './dom.js';
import { announce, attempt, confirmDialog, formDialog, showError } from './ui.js';
import { diff, knownServers, listText, numberField, permissionsFieldset, selectField } from './admin.js';

async function teamForm(ctx, record, done) {
  const [servers, orgs] = await Promise.all([knownServers(ctx), get('/organization/list').catch(() => [])]);
  const rec = record || {};
  const id = textInput('Team id', { value: rec.team_id || '', readonly: Boolean(record), hint: record ? undefined : 'A-Z a-z 0-9 _ -, up to 128; empty: a UUID' });
  const alias = textInput('Team alias', { value: rec.team_alias || '' });
  const orgOpts = [['', '(no organization)'], ...orgs.map((o) => [o.organization_id, o.organization_alias ? `${o.organization_alias} (${o.organization_id})` : o.organization_id])];
  const org = selectField('Organization', orgOpts, rec.organization_id || (ctx.session.org_admin || ''), 'The organization bounds the team\'s permissions');
  const perms = permissionsFieldset(record, servers, 'team');
  const rpm = numberField('Requests per minute', rec.rpm_limit || null, 'rpm_limit for all its keys together; empty: none');
  const budget = numberField('Max budget', rec.max_budget ?? null, 'LLM spend limit in USD per period; empty: none', 'any');
  const period = textInput('Budget period', { value: rec.budget_duration || '', placeholder: '30d', hint: 'budget_duration: 30d, 1w, …' });
  const blocked = textInput('Blocked', { type: 'checkbox', checked: Boolean(rec.blocked), hint: 'Every key of the team is refused' });
  formDialog(record ? `Edit team ${rec.team_alias || rec.team_id}` : 'Create a team', {
    wide: true,
    submitLabel: record ? 'Save changes' : 'Create team',
    fields: [id.el, alias.el, org.el, perms.el, rpm.el, budget.el, period.el, blocked.el],
    onSubmit: async () => {
      const next = { team_alias: alias.input.value.trim(), organization_id: org.input.value, ...perms.read(),
        rpm_limit: rpm.read(), max_budget: budget.read(), budget_duration: period.input.value.trim(), blocked: blocked.input.checked };
      const body = diff(record, next);
      if (record && 'rpm_limit' in body && body.rpm_limit === null) body.rpm_limit = 0;
      if (record) {
        await post('/team/update', { team_id: rec.team_id, ...body });
        announce('Team saved.');
      } else {
        const tid = id.input.value.trim();
        const made = await post('/team/new', tid ? { team_id: tid, ...body } : body);
        announce(`Team ${made.team_id} created.`);
      }
      if (done) done();
    },
  });
}

export function teamsPage(root, ctx) {
  const box = h('div', { class: 'table-box' }, h('p', {}, 'Loading…'));
  replace(root,
    h('div', { class: 'page-head' }, h('h1', {}, 'Teams'),
      h('button', { type: 'button', onclick: () => teamForm(ctx, null, refresh).catch((e) => showError(e, 'Create a team')) }, 'Create team')),
    box);
  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    const teams = await attempt(() => get('/team/list'), 'Teams');
    if (!teams || mine !== seq) return;
    if (teams.length === 0) {
      replace(box, h('p', {}, 'No teams.'));
      return;
    }
    replace(box, h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Teams'),
      h('thead', {}, h('tr', {}, ['Team', 'Alias', 'Organization', 'Servers', 'Models', 'RPM', 'Budget', 'Status', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, teams.map((t) => {
        const name = t.team_alias || t.team_id;
        return h('tr', { 'data-team': t.team_id },
          h('th', { scope: 'row' }, h('code', {}, t.team_id)),
          h('td', {}, t.team_alias || '—'),
          h('td', {}, t.organization_id || '—'),
          h('td', {}, listText(t.mcp_servers)),
          h('td', {}, listText(t.models)),
          h('td', { class: 'num' }, t.rpm_limit ? String(t.rpm_limit) : '—'),
          h('td', {}, t.max_budget != null ? `${t.max_budget}${t.budget_duration ? ` / ${t.budget_duration}` : ''}` : '—'),
          h('td', {}, t.blocked ? badge('blocked', 'bad') : badge('active', 'ok')),
          h('td', { class: 'actions' },
            h('button', { type: 'button', class: 'secondary small', 'aria-label': `Edit team ${name}`, onclick: () => teamForm(ctx, t, refresh).catch((e) => showError(e, 'Edit team')) }, 'Edit'),
            h('button', { type: 'button', class: 'secondary small', 'aria-label': `${t.blocked ? 'Unblock' : 'Block'} team ${name}`,
              onclick: () => attempt(async () => { await post('/team/update', { team_id: t.team_id, blocked: !t.blocked }); refresh(); }, `Block ${name}`) },
            t.blocked ? 'Unblock' : 'Block'),
            h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete team ${name}`,
              onclick: async () => {
                if (!(await confirmDialog(`Delete team ${name}?`, 'Deleting a team deletes all its keys.'))) return;
                await attempt(async () => { await post('/team/delete', { team_ids: [t.team_id] }); announce(`Team ${name} deleted.`); refresh(); }, `Delete ${name}`);
              } }, 'Delete')));
      }))));
  }
  refresh();
  return { refresh };
}
