// End-to-end: the admin UI's "Sign in with <provider>" in a real browser
// (Debian's Chromium driven by playwright-core, never a downloaded browser)
// against the real gateway and a real identity provider (`mcpbus dev-idp`).
//
// The browser opens /ui/, clicks "Sign in with 127.0.0.1:<port>", signs in
// on the provider's login page and comes back through /ui/oauth/callback
// (a small page whose meta refresh opens the UI) signed in as the user, with
// the team the token's groups name: alice (eng) sees only eng-tools, bob
// (ops), in a fresh browser context, only ops-tools. Sign-out ends the
// session. A callback carried to another browser is refused (the flow is
// bound to the browser that started it), and a callback is answered once.
//
// Every page of the gateway's that the browser visits must log no console
// error, throw no page error and report no CSP violation (the callback page
// and its meta refresh included: violations are kept in sessionStorage
// across the navigation); axe-core must find no serious or critical
// violation on the sign-in page with the provider's button. On a failure the
// page is saved to e2e/artifacts/.
//
//   MCPBUS_BIN=path/to/mcpbus   binary under test (default ../bin/mcpbus from e2e/)
//   CHROMIUM=path               the browser (default /usr/bin/chromium)
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { freeLoopbackPort } from './lib/netcheck.mjs';
import { makeTempDir, mcpbusBin, removeTempDir, startProcess, stopProcess } from './lib/procs.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'artifacts');
const require = createRequire(import.meta.url);
const WAIT = 10000; // generous: the machine may be loaded

const MASTER_KEY = `sk-e2e-ui-oauth-master-${randomUUID()}`;
const UI_SECRET = `ui-secret-${randomUUID()}`;
const USERS = {
  alice: { password: `alice-${randomUUID()}`, groups: ['eng'] },
  bob: { password: `bob-${randomUUID()}`, groups: ['ops'] },
};

// playwright-core and axe-core come with the UI tests' devDependencies.
let chromium = null;
let axePath = null;
let missing = '';
try {
  ({ chromium } = await import('playwright-core'));
  axePath = require.resolve('axe-core/axe.min.js');
} catch (err) {
  missing = `playwright-core or axe-core is not installed (${err.code || err.message})`;
}
if (!missing && !existsSync(CHROMIUM)) missing = `no browser at ${CHROMIUM} (set CHROMIUM)`;
// In CI (.ci/run installs Chromium) a missing browser is a failure, not a skip.
if (missing && process.env.CI) throw new Error(`the UI OAuth test cannot run: ${missing}`);

describe('admin UI: sign in with the identity provider, in Chromium', { timeout: 120000, skip: missing || false }, () => {
  let tmp;
  let idp; // mcpbus dev-idp
  let eng; // mcpbus demo-upstream --name eng-tools
  let ops; // mcpbus demo-upstream --name ops-tools
  let gateway; // mcpbus serve
  let issuer; // the provider's issuer URL
  let provider; // its host:port, as the button names it
  let G; // the gateway's URL (mcp_oauth.resource)
  let browser;
  let axeSource;

  before(async () => {
    const bin = mcpbusBin();
    axeSource = await readFile(axePath, 'utf8');
    tmp = await makeTempDir('mcpbus-e2e-ui-oauth-');

    // The gateway's URL is the redirect URI's base, so its port is chosen first.
    const port = await freeLoopbackPort();
    G = `http://127.0.0.1:${port}`;
    const idpConfig = path.join(tmp, 'idp.yaml');
    const q = JSON.stringify;
    await writeFile(idpConfig, [
      'users:',
      ...Object.entries(USERS).map(([id, u]) => `  - {id: ${id}, email: ${id}@example.test, password: ${q(u.password)}, groups: ${q(u.groups)}}`),
      'clients:',
      `  - {id: mcpbus-ui, secret: ${q(UI_SECRET)}, redirect_uris: [${q(`${G}/ui/oauth/callback`)}]}`,
      '',
    ].join('\n'));
    [idp, eng, ops] = await Promise.all([
      startProcess(bin, ['dev-idp', '--addr', '127.0.0.1:0', '--config', idpConfig], {
        env: process.env,
        re: /^test identity provider listening on (http:\/\/127\.0\.0\.1:\d+) /,
        name: 'dev-idp',
      }),
      ...['eng-tools', 'ops-tools'].map((name) => startProcess(bin, ['demo-upstream', '--listen', '127.0.0.1:0', '--name', name], {
        env: process.env,
        re: new RegExp(`^demo upstream "${name}" listening on (http://127\\.0\\.0\\.1:\\d+/mcp)$`),
        name,
      })),
    ]);
    issuer = idp.match[1];
    provider = new URL(issuer).host;

    const config = path.join(tmp, 'config.yaml');
    await writeFile(config, [
      'general_settings:',
      '  master_key: os.environ/E2E_MASTER_KEY',
      '  enable_jwt_auth: true',
      '  litellm_jwtauth:',
      '    team_ids_jwt_field: groups',
      '    issuers:',
      `      - issuer: ${issuer}`,
      '  mcp_oauth:',
      `    resource: ${G}`,
      '    ui_sign_in: {client_id: mcpbus-ui, client_secret: os.environ/E2E_UI_SECRET}',
      'mcp_servers:',
      '  eng-tools:',
      `    url: ${eng.match[1]}`,
      '    transport: http',
      '  ops-tools:',
      `    url: ${ops.match[1]}`,
      '    transport: http',
      '',
    ].join('\n'));
    gateway = await startProcess(
      bin,
      ['serve', '--config', config, '--listen', `127.0.0.1:${port}`, '--data', path.join(tmp, 'data'), '--nats-listen', 'off'],
      {
        env: { ...process.env, E2E_MASTER_KEY: MASTER_KEY, E2E_UI_SECRET: UI_SECRET },
        re: /mcpbus listening on (http:\/\/127\.0\.0\.1:\d+)/,
        timeoutMs: 20000,
        name: 'mcpbus serve',
      },
    );
    assert.equal(gateway.match[1], G);
    for (const team of [{ team_id: 'eng', mcp_servers: ['eng-tools'] }, { team_id: 'ops', mcp_servers: ['ops-tools'] }]) {
      const res = await fetch(`${G}/team/new`, {
        method: 'POST',
        headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(team),
      });
      assert.equal(res.status, 200, `POST /team/new ${team.team_id}: ${await res.text()}`);
    }

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    // Pages first: an open event stream must not outlive the gateway.
    if (browser) await browser.close().catch(() => {});
    await Promise.allSettled([stopProcess(gateway), stopProcess(idp), stopProcess(eng), stopProcess(ops)]);
    await removeTempDir(tmp);
  });

  /**
   * A fresh browser context and page that record console errors, page
   * errors and CSP violations. A securitypolicyviolation listener goes into
   * every document; what it sees on the gateway's origin is appended to
   * sessionStorage, so a violation on the callback page survives its meta
   * refresh (the callback page's text is kept there too). allow: console
   * errors the test expects, matched against the message and its URL.
   */
  async function openContext(label, { allow = [] } = {}) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await context.newPage();
    const here = () => page.url().replace(/\?.*$/, ''); // no authorization code in messages
    const problems = [];
    const navigations = [];
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) navigations.push(f.url());
    });
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const where = m.location()?.url || '';
      // Signed out, the sign-in probe (GET /ui/api/session) answers 401 and
      // Chromium logs it as a failed load; the browser asks for a favicon by itself.
      if (/status of 401/.test(m.text()) && where && new URL(where).pathname === '/ui/api/session') return;
      if ([/\/favicon\.ico$/, ...allow].some((re) => re.test(m.text()) || re.test(where))) return;
      problems.push(`${label} ${here()}: console error: ${m.text()} (${where || 'no location'})`);
    });
    page.on('pageerror', (err) => problems.push(`${label} ${here()}: page error: ${err.message}`));
    await page.addInitScript(() => {
      // The callback page opens the UI at once (meta refresh): keep what it showed.
      if (location.pathname === '/ui/oauth/callback') {
        document.addEventListener('DOMContentLoaded', () => {
          const refresh = document.querySelector('meta[http-equiv="refresh"]')?.getAttribute('content') ?? null;
          sessionStorage.setItem('__callback', JSON.stringify({ text: document.body.innerText.trim(), refresh }));
        });
      }
      document.addEventListener('securitypolicyviolation', (e) => {
        const v = `${location.pathname}: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`;
        try {
          const seen = JSON.parse(sessionStorage.getItem('__csp') || '[]');
          seen.push(v);
          sessionStorage.setItem('__csp', JSON.stringify(seen));
        } catch {
          // no storage on this page: the console still reports the violation
        }
      });
    });
    /** Fails on any problem recorded so far (the CSP log is read on the gateway's origin). */
    const check = async () => {
      let csp = [];
      if (new URL(page.url()).origin === G) csp = await page.evaluate(() => {
        const seen = JSON.parse(sessionStorage.getItem('__csp') || '[]');
        sessionStorage.removeItem('__csp');
        return seen;
      });
      const found = [...problems.splice(0), ...csp.map((v) => `${label} CSP violation: ${v}`)];
      assert.deepEqual(found, [], `the browser reported problems:\n${found.join('\n')}`);
    };
    return { context, page, problems, navigations, check };
  }

  /** Runs body(p) in a fresh context; on failure saves a screenshot to e2e/artifacts/. */
  async function inContext(label, opts, body) {
    const p = await openContext(label, opts);
    try {
      await body(p);
      await p.check();
    } catch (err) {
      await mkdir(ARTIFACTS, { recursive: true });
      const file = path.join(ARTIFACTS, `ui-oauth-${label}.png`);
      await p.page.screenshot({ path: file, fullPage: true }).catch(() => {});
      err.message += `\n(screenshot: ${file}; pages visited: ${p.navigations.map((u) => u.replace(/\?.*$/, '')).join(' → ')})`;
      throw err;
    } finally {
      await p.context.close();
    }
  }

  /**
   * axe-core over what page shows now. Its source is evaluated through the
   * DevTools protocol, which the page's CSP does not govern, so the page
   * keeps its real CSP while it is checked.
   */
  async function checkA11y(page, what) {
    if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(axeSource);
    const result = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ['violations'] });
      if (r.passes.length === 0) return [{ id: 'axe checked nothing' }];
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
    });
    const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical' || v.id === 'axe checked nothing');
    assert.deepEqual(bad, [], `axe-core: serious or critical violations on ${what}:\n${JSON.stringify(bad, null, 2)}`);
  }

  /** The sign-in page at /ui/ with the provider's button; returns the button. */
  async function signInPage(page) {
    await page.goto(`${G}/ui/`);
    await page.getByLabel('Key').waitFor({ timeout: WAIT });
    const button = page.getByRole('link', { name: `Sign in with ${provider}`, exact: true });
    await button.waitFor({ timeout: WAIT });
    return button;
  }

  /**
   * Clicks the provider's button and signs in as user on the provider's
   * login page. Returns the authorization request the gateway sent the
   * browser with.
   */
  async function signInWithProvider(page, user, password = USERS[user].password) {
    const button = await signInPage(page);
    assert.equal(await button.getAttribute('href'), '/ui/oauth/login');
    const authorize = page.waitForRequest((r) => r.url().startsWith(`${issuer}/`) && new URL(r.url()).searchParams.has('code_challenge'), { timeout: WAIT });
    await button.click();
    const request = new URL((await authorize).url());
    await page.waitForURL((u) => u.origin === issuer && u.pathname === '/login', { timeout: WAIT });
    await page.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: WAIT });
    await page.getByLabel('Username or email').fill(user);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    return request;
  }

  /** The names of the servers the servers page lists. */
  async function listedServers(page) {
    await page.getByRole('heading', { level: 1, name: 'MCP servers' }).waitFor({ timeout: WAIT });
    const table = page.getByRole('table');
    await table.getByRole('row').nth(1).waitFor({ timeout: WAIT });
    return (await table.getByRole('row').getByRole('link').allTextContents()).map((s) => s.trim()).sort();
  }

  /** Signs in as user, ends on the servers page; checks the way there. */
  async function signsIn(p, user, team, servers) {
    const { page, context, navigations } = p;
    const callback = page.waitForResponse((r) => r.url().startsWith(`${G}/ui/oauth/callback?`), { timeout: WAIT * 2 });
    const request = await signInWithProvider(page, user);
    // The authorization request: code with PKCE (S256), for this gateway (RFC 8707), back to the UI's callback.
    assert.equal(request.searchParams.get('response_type'), 'code');
    assert.equal(request.searchParams.get('client_id'), 'mcpbus-ui');
    assert.equal(request.searchParams.get('redirect_uri'), `${G}/ui/oauth/callback`);
    assert.equal(request.searchParams.get('resource'), G);
    assert.equal(request.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(request.searchParams.get('state'), 'the request carries a state');

    // The callback answers a page (not a redirect) under the UI's CSP.
    const res = await callback;
    assert.equal(res.status(), 200, `the callback: ${res.status()}`);
    assert.equal(new URL(res.url()).searchParams.get('state'), request.searchParams.get('state'), 'state came back unchanged');
    const headers = await res.allHeaders();
    assert.match(headers['content-security-policy'] || '', /default-src 'none'/, 'the callback page has the UI\'s CSP');

    // Its meta refresh opens the UI, signed in, on the servers page.
    await page.waitForURL(`${G}/ui/#/servers`, { timeout: WAIT });
    // What the callback page said, kept by the init script before its refresh.
    const shown = await page.evaluate(() => JSON.parse(sessionStorage.getItem('__callback') || 'null'));
    assert.deepEqual(shown, { text: `Signed in as ${user}@example.test. Open mcpbus.`, refresh: '0;url=../../ui/' }, 'the callback page');
    const who = page.locator('#who');
    await who.filter({ hasText: `(team ${team})` }).waitFor({ timeout: WAIT });
    assert.equal((await who.textContent()).trim(), `Signed in as ${user}@example.test (team ${team})`);
    // The documents loaded (a change of the hash alone is no new one).
    const docs = navigations.map((u) => new URL(u)).map((u) => `${u.origin === G ? 'gw' : u.origin === issuer ? 'idp' : u.origin}${u.pathname}`)
      .filter((x, i, all) => x !== all[i - 1]);
    assert.deepEqual(docs.slice(-3), ['idp/login', 'gw/ui/oauth/callback', 'gw/ui/'], `the way back: ${docs.join(' → ')}`);

    assert.deepEqual(await listedServers(page), servers, `${user} (team ${team}) sees only the team's servers`);
    assert.equal(await page.getByRole('link', { name: 'Keys' }).count(), 0, 'admin pages are not offered to a team member');
    assert.equal(await page.getByRole('button', { name: 'Add server' }).count(), 0);

    const cookies = await context.cookies(G);
    const session = cookies.find((c) => c.name === 'mcpbus_ui');
    assert.ok(session && session.httpOnly && session.sameSite === 'Strict', `the session cookie: ${JSON.stringify(session)}`);
    assert.equal((await context.cookies(`${G}/ui/oauth/callback`)).find((c) => c.name === 'mcpbus_ui_flow'), undefined, 'the flow cookie is gone after the callback');
    const api = await context.request.get(`${G}/ui/api/session`);
    assert.equal(api.status(), 200);
    const s = await api.json();
    assert.equal(s.caller, `${user}@example.test`);
    assert.equal(s.team_id, team);
    assert.equal(s.admin, false);
  }

  test('the sign-in page offers the provider; axe finds no serious problem; the keyboard reaches the button', { timeout: 30000 }, async () => {
    await inContext('sign-in-page', {}, async ({ page }) => {
      const button = await signInPage(page);
      assert.equal(await button.getAttribute('class'), 'button');
      await checkA11y(page, 'the sign-in page with "Sign in with the provider"');
      // Tab from the key field: the provider's button takes the focus, with a visible ring.
      await page.getByLabel('Key').focus();
      let focused = null;
      for (let i = 0; i < 5 && !focused; i++) {
        await page.keyboard.press('Tab');
        focused = await page.evaluate((name) => {
          const el = document.activeElement;
          if (!el || el.textContent.trim() !== name) return null;
          const st = getComputedStyle(el);
          return { outline: st.outlineStyle !== 'none' && parseFloat(st.outlineWidth) >= 2 };
        }, `Sign in with ${provider}`);
      }
      assert.ok(focused, 'Tab reaches "Sign in with the provider"');
      assert.ok(focused.outline, 'the button shows a focus ring');
    });
  });

  test('alice (group eng) signs in with the provider, sees only eng-tools, and signs out', { timeout: 45000 }, async () => {
    // Asked for ops-tools, the gateway refuses its tools and its health (403s Chromium logs).
    const refused = /\/(mcp-rest\/tools\/list\?server_id|v1\/mcp\/server\/health\?server_ids)=ops-tools$/;
    await inContext('alice', { allow: [refused] }, async (p) => {
      await signsIn(p, 'alice', 'eng', ['eng-tools']);
      await checkA11y(p.page, 'the servers page of a team member signed in with the provider');
      await p.check();

      // The server's own page: eng-tools' tools, callable.
      await p.page.getByRole('link', { name: 'eng-tools', exact: true }).click();
      await p.page.getByRole('heading', { level: 1, name: 'eng-tools' }).waitFor({ timeout: WAIT });
      await p.page.getByRole('heading', { name: /^Tools \(\d+\)$/ }).waitFor({ timeout: WAIT });
      await p.page.getByLabel('Tool', { exact: true }).selectOption('echo');
      await p.page.getByLabel('text (required)').fill('alice in the browser');
      await p.page.getByRole('button', { name: 'Call tool' }).click();
      await p.page.getByTestId('tool-result').filter({ hasText: 'alice in the browser' }).waitFor({ timeout: WAIT });
      // ops-tools is not hers, even asked for by name.
      await p.page.goto(`${G}/ui/#/servers/ops-tools`);
      // Its tools and its health are both refused; the alert shows whichever came last.
      await p.page.getByRole('alert').filter({ hasText: /^(Tools of|Test connection to) ops-tools: user 'alice@example\.test' may not use MCP server 'ops-tools'/ })
        .waitFor({ timeout: WAIT });
      await p.page.getByText('No tools.').waitFor({ timeout: WAIT });

      await p.page.getByRole('button', { name: 'Sign out' }).click();
      await p.page.getByLabel('Key').waitFor({ timeout: WAIT });
      await p.page.getByText('Signed out.').waitFor({ timeout: WAIT });
      await p.page.getByRole('link', { name: `Sign in with ${provider}` }).waitFor({ timeout: WAIT });
      const after = await p.context.request.get(`${G}/ui/api/session`);
      assert.equal(after.status(), 401, 'signed out: the session is gone');
      assert.equal((await p.context.cookies(G)).find((c) => c.name === 'mcpbus_ui' && c.value), undefined, 'the session cookie is cleared');
      // A reload stays signed out.
      await p.page.reload();
      await p.page.getByLabel('Key').waitFor({ timeout: WAIT });
      assert.equal(await p.page.locator('#top').isHidden(), true);
    });
  });

  test('bob (group ops) signs in in a fresh browser context and sees only ops-tools', { timeout: 45000 }, async () => {
    await inContext('bob', {}, async (p) => {
      await signsIn(p, 'bob', 'ops', ['ops-tools']);
    });
  });

  test('a wrong password stays on the provider\'s page, which says so', { timeout: 30000 }, async () => {
    // The provider answers the refused sign-in with 401, which Chromium logs.
    await inContext('wrong-password', { allow: [new RegExp(`^${issuer.replace(/[.]/g, '\\.')}/login`)] }, async ({ page, context }) => {
      await signInWithProvider(page, 'alice', 'not-her-password');
      await page.getByRole('alert').waitFor({ timeout: WAIT });
      assert.equal(new URL(page.url()).origin, issuer, 'still at the provider');
      assert.equal((await context.request.get(`${G}/ui/api/session`)).status(), 401, 'no UI session');
      await page.goto(`${G}/ui/`);
      await page.getByLabel('Key').waitFor({ timeout: WAIT });
    });
  });

  test('a callback carried to another browser is refused, and a callback is answered once', { timeout: 45000 }, async () => {
    await inContext('held', { allow: [/status of 400/] }, async (a) => {
      // Browser A starts a sign-in and reaches the provider's login page; the
      // test signs in there on A's behalf (the form needs only its request
      // id) and keeps the redirect to the callback instead of following it.
      await signInPage(a.page);
      await a.page.getByRole('link', { name: `Sign in with ${provider}` }).click();
      await a.page.waitForURL((u) => u.origin === issuer && u.pathname === '/login', { timeout: WAIT });
      assert.ok((await a.context.cookies(`${G}/ui/oauth/callback`)).find((c) => c.name === 'mcpbus_ui_flow'), 'A holds the flow cookie');
      const id = await a.page.locator('input[name="id"]').inputValue();
      let res = await fetch(`${issuer}/login`, { method: 'POST', body: new URLSearchParams({ id, username: 'alice', password: USERS.alice.password }), redirect: 'manual' });
      let held;
      for (let hop = 0; hop < 5 && !held; hop++) {
        assert.ok([302, 303].includes(res.status), `the provider: want a redirect, got ${res.status}: ${await res.text()}`);
        const next = new URL(res.headers.get('location'), res.url || issuer);
        if (next.origin === G) held = next;
        else res = await fetch(next, { redirect: 'manual' });
      }
      assert.equal(held?.pathname, '/ui/oauth/callback', `the provider sends the browser to the UI's callback: ${held}`);
      assert.ok(held.searchParams.get('code'));

      // Browser B (no flow cookie) brings the callback: refused, no session.
      await inContext('other-browser', { allow: [/status of 400/] }, async (b) => {
        const r = await b.page.goto(held.href);
        assert.equal(r.status(), 400);
        await b.page.getByText('This sign-in was started in another browser: start again from the sign-in page.').waitFor({ timeout: WAIT });
        assert.equal((await b.context.request.get(`${G}/ui/api/session`)).status(), 401, 'no session in the other browser');
        // The page's way back leads to the sign-in page.
        await b.page.getByRole('link', { name: 'Back to the sign-in page' }).click();
        await b.page.getByRole('link', { name: `Sign in with ${provider}` }).waitFor({ timeout: WAIT });
      });

      // The flow was spent by B's attempt: A's own callback is now unknown too.
      const r = await a.page.goto(held.href);
      assert.equal(r.status(), 400);
      await a.page.getByText('This sign-in is unknown, finished or expired').waitFor({ timeout: WAIT });
      assert.equal((await a.context.request.get(`${G}/ui/api/session`)).status(), 401, 'no session from a spent callback');
    });
  });
});
