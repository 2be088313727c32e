// The admin UI's shell: sign-in, the header and navigation, hash routing,
// and the live feed (/ui/api/events) that refreshes the open page.
import { api, onUnauthorized, setCSRF } from './js/api.js';
import { h, replace, textInput } from './js/dom.js';
import { clearError, showError } from './js/ui.js';
import { serversPage, serverPage } from './js/servers.js';
import { keysPage } from './js/keys.js';
import { teamsPage } from './js/teams.js';
import { orgsPage } from './js/orgs.js';
import { connectPage } from './js/connect.js';
import * as usage from './pages/usage.js';
import * as network from './pages/network.js';
import * as cluster from './pages/cluster.js';

const state = { session: null, events: null, page: null, refreshTimer: 0, live: new Map() };

// A page module of pages/ (mount(root, ctx) resolving to unmount) as a
// route's render: its ctx speaks the shell's API and live feed; the page
// it returns unmounts it when the route changes, even before it resolved.
function mountPage(mod) {
  return (root, ctx, rest) => {
    const page = { unmount: null, gone: false };
    const filter = rest && rest[0] === 'key' && rest[1] ? { key: rest[1], label: `key ${rest[2] || rest[1].slice(0, 12)}` } : undefined;
    const mctx = {
      session: state.session,
      filter,
      api: (path, { method = 'GET', body } = {}) => api(method, path, body),
      live: (name, fn) => {
        if (!state.live.has(name)) state.live.set(name, new Set());
        state.live.get(name).add(fn);
        return () => state.live.get(name).delete(fn);
      },
    };
    const box = h('div', { class: 'mounted' });
    // The route's h1 for the shell (focus, the document outline); the module
    // shows its own heading.
    replace(root, h('h1', { class: 'visually-hidden' }, ctx.title), box);
    mod.mount(box, mctx).then((unmount) => {
      if (page.gone) unmount();
      else page.unmount = unmount;
    }, (err) => showError(err, ctx.title || 'The page'));
    page.leave = () => {
      page.gone = true;
      if (page.unmount) page.unmount();
    };
    return page;
  };
}

// Pages: hash route -> { title, admin (master key or org admin only),
// master (master key only), render }.
const routes = [
  { path: 'servers', title: 'MCP servers', render: serversPage },
  { path: 'keys', title: 'Keys', admin: true, render: keysPage },
  { path: 'teams', title: 'Teams', admin: true, render: teamsPage },
  { path: 'orgs', title: 'Organizations', admin: true, render: orgsPage },
  { path: 'usage', title: 'Usage', render: mountPage(usage) },
  { path: 'network', title: 'Network', master: true, render: mountPage(network) },
  { path: 'cluster', title: 'Cluster', master: true, render: mountPage(cluster) },
  { path: 'connect', title: 'Connect a client', render: connectPage },
];

function mayOpen(r, s) {
  return (!r.admin || canAdmin(s)) && (!r.master || Boolean(s && s.admin));
}

const main = () => document.getElementById('main');

function canAdmin(s) {
  return Boolean(s && (s.admin || s.org_admin));
}

// --- sign-in -------------------------------------------------------------

function showSignIn(message) {
  stopEvents();
  state.session = null;
  setCSRF('');
  document.getElementById('top').hidden = true;
  document.title = 'Sign in · mcpbus';
  const key = textInput('Key', { name: 'key', type: 'password', required: true, autocomplete: 'current-password',
    hint: 'The master key or a virtual key (sk-…). It is checked once; the page then holds only a session cookie.' });
  const form = h('form', { class: 'signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to mcpbus'),
    message ? h('p', { class: 'note' }, message) : null,
    key.el,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Sign in')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearError();
    try {
      const s = await api('POST', '/ui/api/session', { key: key.input.value });
      key.input.value = '';
      signedIn(s);
    } catch (err) {
      showError(err, 'Sign-in refused');
      key.input.focus();
    }
  });
  replace(main(), form);
  key.input.focus();
  offerProviderSignIn(form);
}

// offerProviderSignIn adds "Sign in with <provider>" when the gateway has
// an identity provider for the UI (general_settings.mcp_oauth.ui_sign_in).
async function offerProviderSignIn(form) {
  let methods;
  try {
    methods = await api('GET', '/ui/api/sign-in-methods');
  } catch {
    return; // a key still signs in
  }
  if (!methods || !methods.oauth || !form.isConnected) return;
  form.append(h('p', { class: 'alt-signin' }, 'or ',
    h('a', { class: 'button', href: methods.oauth.url }, `Sign in with ${methods.oauth.provider}`)));
}

function signedIn(s) {
  state.session = s;
  setCSRF(s.csrf);
  const top = document.getElementById('top');
  top.hidden = false;
  const role = s.admin ? 'admin' : s.org_admin ? `org admin of ${s.org_admin}` : s.team_id ? `team ${s.team_id}` : 'key';
  replace(document.getElementById('who'), 'Signed in as ', h('strong', {}, s.caller), ` (${role})`);
  const nav = document.getElementById('nav');
  replace(nav, h('ul', {}, routes.filter((r) => mayOpen(r, s)).map((r) =>
    h('li', {}, h('a', { href: `#/${r.path}`, 'data-route': r.path }, r.title)))));
  startEvents();
  if (!location.hash || location.hash === '#' || location.hash === '#/') location.hash = '#/servers';
  else route();
}

async function signOut() {
  try {
    await api('DELETE', '/ui/api/session');
  } catch (err) {
    showError(err, 'Sign-out');
  }
  showSignIn('Signed out.');
}

// --- live feed -----------------------------------------------------------

function startEvents() {
  stopEvents();
  const es = new EventSource('/ui/api/events');
  state.events = es;
  const refresh = () => {
    // Several changes in a row refetch once.
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(() => {
      if (state.page && state.page.refresh) state.page.refresh();
    }, 150);
  };
  es.addEventListener('servers', refresh);
  es.addEventListener('auth', refresh);
  es.addEventListener('agents', refresh);
  es.addEventListener('pins', refresh);
  // Page modules' own listeners (mountPage's ctx.live).
  for (const name of ['servers', 'auth', 'agents', 'pins']) {
    es.addEventListener(name, (ev) => {
      for (const fn of state.live.get(name) || []) fn(ev);
    });
  }
  es.addEventListener('signed-out', () => {
    showSignIn('The key of this session is no longer valid: sign in again.');
  });
  es.addEventListener('error', async () => {
    // The browser reconnects by itself; if the session has ended, stop.
    if (es.readyState !== EventSource.CLOSED) return;
    try {
      await api('GET', '/ui/api/session');
      if (state.events === es) setTimeout(() => state.session && startEvents(), 2000);
    } catch {
      if (state.events === es) showSignIn('Your session has ended: sign in again.');
    }
  });
}

function stopEvents() {
  if (state.events) state.events.close();
  state.events = null;
}

// --- routing -------------------------------------------------------------

async function route() {
  if (!state.session) return;
  clearError();
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const [first, ...rest] = parts;
  let r = routes.find((x) => x.path === first);
  if (!r || !mayOpen(r, state.session)) r = routes[0];
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.route === r.path) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (state.page && state.page.leave) state.page.leave();
  state.page = null;
  const el = main();
  el.replaceChildren();
  const ctx = { session: state.session, admin: state.session.admin, canAdmin: canAdmin(state.session) };
  let page;
  if (r.path === 'servers' && rest.length > 0 && rest[0]) {
    document.title = `${rest[0]} · MCP servers · mcpbus`;
    page = serverPage(el, ctx, rest[0]);
  } else {
    document.title = `${r.title} · mcpbus`;
    page = r.render(el, { ...ctx, title: r.title }, rest);
  }
  state.page = page;
  const heading = el.querySelector('h1');
  if (heading) {
    heading.tabIndex = -1;
    if (document.activeElement === document.body || document.activeElement === null) heading.focus({ preventScroll: true });
  }
}

// --- start ---------------------------------------------------------------

async function start() {
  document.getElementById('signout').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  onUnauthorized(() => showSignIn('Your session has ended: sign in again.'));
  try {
    const s = await api('GET', '/ui/api/session');
    signedIn(s);
  } catch (err) {
    if (err.status === 401) showSignIn();
    else {
      showSignIn();
      showError(err, 'The gateway');
    }
  }
}

start();
