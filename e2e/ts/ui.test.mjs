// The admin UI in a real browser: Debian's Chromium driven by
// playwright-core (never a downloaded browser) against the real binary and
// the demo upstream. Steps share one signed-in page, in order:
//
//   sign in with the master key; add the demo upstream through the form and
//   call a tool in the playground; make it public and see an external
//   caller's tool list change; create a key limited to one tool, read it
//   from the show-once dialog and see the other tool refused; see changes
//   made through the API appear without a reload (the live feed); a key's
//   own view, ended by revoking the key.
//
// Every page visited must log no console error and throw no page error, and
// axe-core must find no serious or critical violation on it. On a failure
// the page is saved to e2e/artifacts/. With UPDATE_UI_SCREENSHOTS=1 the
// screenshots docs/UI.md shows are written to docs/ui/.
//
//   CHROMIUM=/path/to/chromium   browser (default /usr/bin/chromium)
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';

import { makeTempDir, mcpbusBin, removeTempDir, startProcess, stopProcess } from './lib/procs.mjs';

const require = createRequire(import.meta.url);
const e2eDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const artifacts = path.join(e2eDir, 'artifacts');
const shotsDir = path.resolve(e2eDir, '..', 'docs', 'ui');
const UPDATE_SHOTS = process.env.UPDATE_UI_SCREENSHOTS === '1';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const MASTER_KEY = 'sk-e2e-ui-master-0123456789';
const UPSTREAM_KEY = 'ui-upstream-secret';
const INTERNAL = '10.1.2.3'; // inside mcp_internal_ip_ranges
const EXTERNAL = '203.0.113.9'; // outside it
const WAIT = 10000; // generous: the machine may be loaded

let upstream;
let gateway;
let tmp;
let G; // the gateway's base URL
let browser;
let context;
let page;
let axeSource;
const problems = []; // console errors and page errors, with the page they came from

/** A REST call to the gateway as an internal or external caller. */
async function rest(method, urlPath, { key = MASTER_KEY, from = INTERNAL, body } = {}) {
  const headers = { Authorization: `Bearer ${key}`, 'X-Forwarded-For': from };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${G}${urlPath}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  return { status: res.status, data };
}

/**
 * Retries check (an async assertion) until it passes or WAIT ms have gone
 * by: a registry write reaches each service's server cache a moment after
 * the API answers it.
 */
async function eventually(check) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Collects console errors and page errors of p. */
function watch(p, label) {
  p.on('console', (m) => {
    if (m.type() !== 'error') return;
    const where = m.location() && m.location().url;
    // The sign-in probe (GET /ui/api/session) answers 401 when signed out,
    // and a refused sign-in is a 401 too: Chromium logs both as failed
    // loads. Anything else is a problem.
    if (/status of 401/.test(m.text()) && where && new URL(where).pathname === '/ui/api/session') return;
    problems.push(`${label} ${p.url()}: console error: ${m.text()} (${where || 'no location'})`);
  });
  p.on('pageerror', (e) => problems.push(`${label} ${p.url()}: page error: ${e.message}`));
}

function assertNoProblems() {
  const found = problems.splice(0);
  assert.deepEqual(found, [], `console or page errors:\n${found.join('\n')}`);
}

/**
 * axe-core over what p shows now (dialogs included). Its source is
 * evaluated through the DevTools protocol, which the page's CSP does not
 * govern, so the page keeps its real CSP while it is checked.
 */
async function checkA11y(p, what) {
  const has = await p.evaluate(() => typeof window.axe !== 'undefined');
  if (!has) await p.evaluate(axeSource);
  const result = await p.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `axe-core: serious or critical violations on ${what}:\n${JSON.stringify(bad, null, 2)}`);
}

/**
 * Tabs through p from the top: every control named in want must take the
 * focus, each with a visible focus ring (an outline).
 */
async function keyboardReaches(p, want) {
  await p.evaluate(() => document.activeElement && document.activeElement.blur());
  await p.evaluate(() => window.scrollTo(0, 0));
  await p.mouse.click(1, 300); // focus starts from the document, as after a load
  const seen = new Map();
  for (let i = 0; i < 40 && seen.size < want.length; i++) {
    await p.keyboard.press('Tab');
    const f = await p.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return null;
      const label = el.labels && el.labels[0] ? el.labels[0].textContent : '';
      const name = el.getAttribute('aria-label') || label || el.textContent.trim();
      const st = getComputedStyle(el);
      return { name, outline: st.outlineStyle !== 'none' && parseFloat(st.outlineWidth) >= 2 };
    });
    if (f && want.includes(f.name)) seen.set(f.name, f.outline);
  }
  assert.deepEqual([...seen.keys()].sort(), [...want].sort(), 'every control is reachable with Tab');
  for (const [name, visible] of seen) assert.ok(visible, `${name} shows a focus ring`);
}

/** Presses Tab until the control named name has the focus (at most 80 times). */
async function tabTo(p, name) {
  for (let i = 0; i < 80; i++) {
    await p.keyboard.press('Tab');
    const got = await p.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return '';
      const label = el.labels && el.labels[0] ? el.labels[0].textContent : '';
      return el.getAttribute('aria-label') || label || el.textContent.trim();
    });
    if (got === name) return;
  }
  assert.fail(`${name} never took the focus from the keyboard`);
}

async function shot(name) {
  if (!UPDATE_SHOTS) return;
  await mkdir(shotsDir, { recursive: true });
  await page.screenshot({ path: path.join(shotsDir, `${name}.png`), fullPage: true });
}

/** Runs a step; on failure saves a screenshot of the page to e2e/artifacts/. */
async function step(name, fn) {
  try {
    await fn();
    assertNoProblems();
  } catch (err) {
    await mkdir(artifacts, { recursive: true });
    const file = path.join(artifacts, `ui-${name.replace(/[^a-z0-9]+/gi, '-')}.png`);
    if (page && !page.isClosed()) await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    const seen = problems.splice(0);
    err.message += `\n(screenshot: ${file})${seen.length ? `\nconsole or page errors meanwhile:\n${seen.join('\n')}` : ''}`;
    throw err;
  }
}

async function go(hash, heading) {
  await page.goto(`${G}/ui${hash}`);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor({ timeout: WAIT });
}

describe('admin UI in Chromium', { timeout: 170000 }, () => {
  before(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM)`);
    axeSource = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
    const bin = mcpbusBin();
    tmp = await makeTempDir('mcpbus-e2e-ui-');
    upstream = await startProcess(
      bin,
      ['demo-upstream', '--listen', '127.0.0.1:0', '--name', 'demo', '--require-header', `x-api-key: ${UPSTREAM_KEY}`],
      { env: process.env, re: /^demo upstream "demo" listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)$/, name: 'demo-upstream' },
    );
    const config = path.join(tmp, 'config.yaml');
    // Loopback stands in for a proxy: X-Forwarded-For from 127.0.0.1 is
    // believed, so the browser (10.1.2.3) is internal and a client sending
    // 203.0.113.9 is external.
    await writeFile(config, [
      'general_settings:',
      '  master_key: os.environ/E2E_MASTER_KEY',
      '  use_x_forwarded_for: true',
      '  mcp_trusted_proxy_ranges: [127.0.0.1/32]',
      '  mcp_internal_ip_ranges: [10.0.0.0/8]',
      '',
    ].join('\n'));
    gateway = await startProcess(
      bin,
      ['serve', '--config', config, '--listen', '127.0.0.1:0', '--data', path.join(tmp, 'data'), '--nats-listen', 'off'],
      { env: { ...process.env, E2E_MASTER_KEY: MASTER_KEY }, re: /mcpbus listening on (http:\/\/127\.0\.0\.1:\d+)/, timeoutMs: 20000, name: 'mcpbus serve' },
    );
    G = gateway.match[1];
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    context = await browser.newContext({ extraHTTPHeaders: { 'X-Forwarded-For': INTERNAL }, viewport: { width: 1280, height: 860 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: G });
    page = await context.newPage();
    watch(page, 'admin');
  });

  after(async () => {
    // Pages first: an open event stream must not outlive the gateway.
    if (browser) await browser.close().catch(() => {});
    await Promise.allSettled([stopProcess(gateway), stopProcess(upstream)]);
    await removeTempDir(tmp);
  });

  test('sign in with the master key', { timeout: 40000 }, () => step('sign-in', async () => {
    await page.goto(`${G}/ui`);
    const key = page.getByLabel('Key');
    await key.waitFor({ timeout: WAIT });
    assert.equal(await key.getAttribute('type'), 'password', 'the key field is a password field');
    await checkA11y(page, 'the sign-in page');
    await shot('sign-in');
    // A wrong key: the API's message in the alert region.
    await key.fill('sk-not-a-real-key-000000000');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'invalid API key' }).waitFor({ timeout: WAIT });
    await key.fill(MASTER_KEY);
    await key.press('Enter'); // keyboard only
    await page.getByRole('heading', { level: 1, name: 'MCP servers' }).waitFor({ timeout: WAIT });
    await page.getByText('Signed in as').filter({ hasText: 'master' }).waitFor({ timeout: WAIT });
    const cookies = await context.cookies(G);
    const c = cookies.find((x) => x.name === 'mcpbus_ui');
    assert.ok(c && c.httpOnly && c.sameSite === 'Strict', `the session cookie is HttpOnly and SameSite=Strict: ${JSON.stringify(c)}`);
    assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read the session cookie');
    await checkA11y(page, 'the empty servers page');
  }));

  test('add the demo upstream through the form and call a tool in the playground', { timeout: 60000 }, () => step('add-server', async () => {
    await page.getByRole('button', { name: 'Add server' }).click();
    const dlg = page.getByRole('dialog', { name: 'Add an MCP server' });
    await dlg.waitFor({ timeout: WAIT });
    await dlg.getByLabel('Name', { exact: true }).fill('demo');
    await dlg.getByLabel('Description', { exact: true }).fill('The demo upstream <b>not bold</b>');
    await dlg.getByLabel('URL', { exact: true }).fill(upstream.match[1]);
    await dlg.getByLabel('Transport').selectOption('http');
    await dlg.getByLabel('Auth type').selectOption('api_key');
    await dlg.getByLabel('Auth value').fill(UPSTREAM_KEY);
    assert.equal(await dlg.getByLabel('OAuth2 client secret').isVisible(), false, 'fields of other auth types are hidden');
    await dlg.getByRole('button', { name: 'Add static header' }).click();
    await dlg.getByLabel('Static headers: name').fill('X-Demo-Tag');
    await dlg.getByLabel('Static headers: value of the new entry').fill('tag-secret');
    await checkA11y(page, 'the add-server dialog');
    await shot('server-form');
    await dlg.getByRole('button', { name: 'Add server' }).click();
    await dlg.waitFor({ state: 'detached', timeout: WAIT });

    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'demo', exact: true }) });
    await row.waitFor({ timeout: WAIT });
    await row.getByText('Internal').waitFor({ timeout: WAIT });
    await row.getByText(/healthy/).waitFor({ timeout: WAIT });
    await row.getByRole('cell', { name: '4', exact: true }).waitFor({ timeout: WAIT });
    await checkA11y(page, 'the servers page');
    await shot('servers');

    // The secret went to the registry and never comes back.
    const rec = await rest('GET', '/v1/mcp/server/demo');
    assert.equal(rec.status, 200);
    assert.equal(rec.data.auth_type, 'api_key');
    assert.equal(rec.data.auth_value, '[redacted]');
    assert.deepEqual(rec.data.static_headers, { 'X-Demo-Tag': '[redacted]' });
    await row.getByRole('button', { name: 'Edit demo' }).click();
    const edit = page.getByRole('dialog', { name: 'Edit MCP server demo' });
    await edit.waitFor({ timeout: WAIT });
    assert.equal(await edit.getByLabel('Auth value').inputValue(), '', 'a stored secret is shown empty on edit');
    assert.equal(await edit.getByLabel('Static headers: name').inputValue(), 'X-Demo-Tag');
    assert.equal(await edit.getByLabel('Static headers: value of X-Demo-Tag').inputValue(), '', 'a stored header value is shown empty on edit');
    assert.equal(await page.getByText('tag-secret').count(), 0);
    assert.equal(await edit.getByLabel('Description', { exact: true }).inputValue(), 'The demo upstream <b>not bold</b>');
    await edit.getByRole('button', { name: 'Cancel' }).click();
    await edit.waitFor({ state: 'detached', timeout: WAIT });

    // Test connection, then the server's own page.
    await row.getByRole('button', { name: 'Test connection to demo' }).click();
    await row.getByText(/healthy/).waitFor({ timeout: WAIT });
    await row.getByRole('link', { name: 'demo', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'demo' }).waitFor({ timeout: WAIT });
    // Upstream text is text: the description's markup is not parsed.
    await page.getByText('The demo upstream <b>not bold</b>').waitFor({ timeout: WAIT });
    await page.getByRole('heading', { name: 'Tools (4)' }).waitFor({ timeout: WAIT });
    await page.getByRole('group', { name: 'Arguments' }).waitFor({ timeout: WAIT });
    await page.getByLabel('Tool', { exact: true }).selectOption('add');
    await page.getByLabel('a (required)').fill('2');
    await page.getByLabel('b (required)').fill('40');
    await page.getByRole('button', { name: 'Call tool' }).click();
    const result = page.getByTestId('tool-result');
    await result.filter({ hasText: '"sum": 42' }).waitFor({ timeout: WAIT });
    await page.getByLabel('Tool', { exact: true }).selectOption('echo');
    await page.getByLabel('text (required)').fill('hello from the playground');
    await page.getByRole('button', { name: 'Call tool' }).click();
    await result.filter({ hasText: 'hello from the playground' }).waitFor({ timeout: WAIT });
    const raw = JSON.parse(await result.textContent());
    assert.deepEqual(raw.content, [{ type: 'text', text: 'hello from the playground' }], 'the raw CallToolResult is shown');
    // The same from the keyboard alone: choose the tool, fill its form, call it.
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    await tabTo(page, 'Tool');
    await page.keyboard.type('add');
    await tabTo(page, 'a (required)');
    await page.keyboard.type('5');
    await tabTo(page, 'b (required)');
    await page.keyboard.type('6');
    await tabTo(page, 'Call tool');
    await page.keyboard.press('Enter');
    await result.filter({ hasText: '"sum": 11' }).waitFor({ timeout: WAIT });
    await page.getByText('echo', { exact: true }).first().click(); // open the tool's details
    await checkA11y(page, 'the server page');
    await shot('server-playground');
  }));

  test('making the server public changes what an external caller sees', { timeout: 40000 }, () => step('public', async () => {
    const before = await rest('GET', '/mcp-rest/tools/list', { from: EXTERNAL });
    assert.equal(before.status, 404, `internal-only: an external caller sees no server: ${JSON.stringify(before.data)}`);
    const inside = await rest('GET', '/mcp-rest/tools/list');
    assert.equal(inside.status, 200);

    await page.getByRole('button', { name: 'Edit', exact: true }).click();
    const edit = page.getByRole('dialog', { name: 'Edit MCP server demo' });
    await edit.waitFor({ timeout: WAIT });
    const pub = edit.getByLabel('Available on public internet');
    assert.equal(await pub.isChecked(), false);
    await pub.check();
    await edit.getByRole('button', { name: 'Save changes' }).click();
    await edit.waitFor({ state: 'detached', timeout: WAIT });
    await page.getByText('Public', { exact: true }).waitFor({ timeout: WAIT });

    await eventually(async () => {
      const afterward = await rest('GET', '/mcp-rest/tools/list', { from: EXTERNAL });
      assert.equal(afterward.status, 200, JSON.stringify(afterward.data));
      const names = afterward.data.tools.map((t) => t.name).sort();
      assert.deepEqual(names, ['add', 'ask', 'echo', 'slow'], 'an external caller now lists the public server\'s tools');
    });
    // Editing kept the upstream secret: the tools still answer.
    const rec = await rest('GET', '/v1/mcp/server/demo');
    assert.equal(rec.data.auth_value, '[redacted]');
    assert.deepEqual(rec.data.static_headers, { 'X-Demo-Tag': '[redacted]' }, 'the edit kept the stored header');
    assert.equal(rec.data.available_on_public_internet, true);
    // And back, with the page's own toggle.
    await page.getByRole('button', { name: 'Make internal' }).click();
    await page.getByText('Internal', { exact: true }).waitFor({ timeout: WAIT });
    await eventually(async () => {
      assert.equal((await rest('GET', '/mcp-rest/tools/list', { from: EXTERNAL })).status, 404, 'internal again: hidden from outside');
    });
    await page.getByRole('button', { name: 'Make public' }).click();
    await page.getByText('Public', { exact: true }).waitFor({ timeout: WAIT });
  }));

  let limitedKey;
  test('a key limited to one tool, made through the form and shown once', { timeout: 40000 }, () => step('key', async () => {
    await page.getByRole('link', { name: 'Keys' }).click();
    await page.getByRole('heading', { level: 1, name: 'Keys' }).waitFor({ timeout: WAIT });
    await page.getByText('No keys.').waitFor({ timeout: WAIT });
    await page.getByRole('button', { name: 'Create key' }).click();
    const dlg = page.getByRole('dialog', { name: 'Create a key' });
    await dlg.waitFor({ timeout: WAIT });
    await dlg.getByLabel('Alias', { exact: true }).fill('echo-only');
    await dlg.getByRole('checkbox', { name: 'demo' }).check();
    await dlg.getByLabel('Tools allowed on demo').fill('echo');
    await dlg.getByLabel('Requests per minute').fill('600');
    await dlg.getByLabel('Duration').fill('1d');
    await checkA11y(page, 'the create-key dialog');
    await dlg.getByRole('button', { name: 'Create key' }).click();

    const once = page.getByRole('dialog', { name: 'Your new key' });
    await once.waitFor({ timeout: WAIT });
    limitedKey = await once.getByLabel('New key').inputValue();
    assert.match(limitedKey, /^sk-[A-Za-z0-9]{43}$/);
    await once.getByRole('button', { name: 'Copy' }).click();
    await once.getByText('Copied to the clipboard.').waitFor({ timeout: WAIT });
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), limitedKey, 'Copy puts the key on the clipboard');
    await checkA11y(page, 'the show-once dialog');
    await once.getByRole('button', { name: 'Done' }).click();
    await once.waitFor({ state: 'detached', timeout: WAIT });
    const row = page.getByRole('row').filter({ hasText: 'echo-only' });
    await row.getByText('demo: echo').waitFor({ timeout: WAIT });
    assert.equal(await page.getByText(limitedKey).count(), 0, 'the key is not shown again');
    // The edit form shows the key's permissions as stored.
    await row.getByRole('button', { name: 'Edit key echo-only' }).click();
    const edit = page.getByRole('dialog', { name: 'Edit key echo-only' });
    await edit.waitFor({ timeout: WAIT });
    assert.equal(await edit.getByRole('checkbox', { name: 'demo' }).isChecked(), true);
    assert.equal(await edit.getByLabel('Tools allowed on demo').inputValue(), 'echo');
    assert.equal(await edit.getByLabel('Requests per minute').inputValue(), '600');
    await edit.press('Escape'); // a modal dialog closes from the keyboard
    await edit.waitFor({ state: 'detached', timeout: WAIT });
    await checkA11y(page, 'the keys page');
    await shot('keys');
    await keyboardReaches(page, ['Skip to content', 'MCP servers', 'Keys', 'Sign out', 'Create key', 'Team filter', 'Edit key echo-only', 'Block key echo-only', 'Revoke key echo-only']);

    // The key at work, from outside the browser.
    const echo = await rest('POST', '/mcp-rest/tools/call', { key: limitedKey, body: { server_id: 'demo', name: 'echo', arguments: { text: 'allowed' } } });
    assert.equal(echo.status, 200, JSON.stringify(echo.data));
    assert.deepEqual(echo.data.content, [{ type: 'text', text: 'allowed' }]);
    const add = await rest('POST', '/mcp-rest/tools/call', { key: limitedKey, body: { server_id: 'demo', name: 'add', arguments: { a: 1, b: 2 } } });
    assert.equal(add.status, 403, JSON.stringify(add.data));
    assert.match(add.data.error.message, /may not call tool 'add' on server 'demo'/);
    const list = await rest('GET', '/mcp-rest/tools/list?server_id=demo', { key: limitedKey });
    assert.deepEqual(list.data.tools.map((t) => t.name), ['echo']);
  }));

  test('changes made through the API appear on the open page (live feed)', { timeout: 40000 }, () => step('live', async () => {
    // Keys page open: block the key through the API.
    const row = page.getByRole('row').filter({ hasText: 'echo-only' });
    await row.getByText('active').waitFor({ timeout: WAIT });
    const keys = await rest('GET', '/key/list?return_full_object=true');
    const token = keys.data.keys.find((k) => k.key_alias === 'echo-only').token;
    assert.equal((await rest('POST', '/key/update', { body: { key: token, blocked: true } })).status, 200);
    await row.getByText('blocked').waitFor({ timeout: WAIT });
    assert.equal((await rest('POST', '/key/update', { body: { key: token, blocked: false } })).status, 200);
    await row.getByText('active').waitFor({ timeout: WAIT });

    // Servers page open: a server added and removed through the API.
    await page.getByRole('link', { name: 'MCP servers' }).click();
    await page.getByRole('heading', { level: 1, name: 'MCP servers' }).waitFor({ timeout: WAIT });
    const made = await rest('POST', '/v1/mcp/server', { body: { server_name: 'second', url: upstream.match[1], transport: 'http', auth_type: 'api_key', auth_value: UPSTREAM_KEY } });
    assert.equal(made.status, 200, JSON.stringify(made.data));
    const second = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'second', exact: true }) });
    await second.waitFor({ timeout: WAIT });
    assert.equal((await rest('DELETE', '/v1/mcp/server/second')).status, 200);
    await second.waitFor({ state: 'detached', timeout: WAIT });
  }));

  test('the other pages: teams, organizations, client snippets', { timeout: 40000 }, () => step('pages', async () => {
    await page.getByRole('link', { name: 'Teams' }).click();
    await page.getByRole('heading', { level: 1, name: 'Teams' }).waitFor({ timeout: WAIT });
    await page.getByRole('button', { name: 'Create team' }).click();
    const dlg = page.getByRole('dialog', { name: 'Create a team' });
    await dlg.getByLabel('Team id').fill('platform');
    await dlg.getByLabel('Team alias').fill('Platform');
    await dlg.getByRole('checkbox', { name: 'demo' }).check();
    await checkA11y(page, 'the create-team dialog');
    await dlg.getByRole('button', { name: 'Create team' }).click();
    await dlg.waitFor({ state: 'detached', timeout: WAIT });
    await page.getByRole('row').filter({ hasText: 'Platform' }).waitFor({ timeout: WAIT });
    await checkA11y(page, 'the teams page');

    await page.getByRole('link', { name: 'Organizations' }).click();
    await page.getByRole('heading', { level: 1, name: 'Organizations' }).waitFor({ timeout: WAIT });
    await page.getByRole('button', { name: 'Create organization' }).click();
    const org = page.getByRole('dialog', { name: 'Create an organization' });
    await org.getByLabel('Organization id').fill('acme');
    await org.getByLabel('Organization alias').fill('Acme');
    await org.getByLabel('Max budget').fill('500');
    await org.getByRole('button', { name: 'Create organization' }).click();
    await org.waitFor({ state: 'detached', timeout: WAIT });
    const orgRow = page.getByRole('row').filter({ hasText: 'Acme' });
    await orgRow.getByRole('button', { name: 'Members of Acme' }).click();
    const members = page.getByRole('dialog', { name: 'Members of Acme' });
    await members.getByLabel('User id').fill('alice@acme.example');
    await members.getByLabel('Role').selectOption('org_admin');
    await members.getByRole('button', { name: 'Add member' }).click();
    await members.getByRole('row').filter({ hasText: 'alice@acme.example' }).getByText('org_admin').waitFor({ timeout: WAIT });
    await checkA11y(page, 'the members dialog');
    await members.getByRole('button', { name: 'Close' }).click();
    const info = await rest('GET', '/organization/info?organization_id=acme');
    assert.deepEqual(info.data.members.map((m) => [m.user_id, m.user_role]), [['alice@acme.example', 'org_admin']]);
    await orgRow.getByRole('cell', { name: '1', exact: true }).waitFor({ timeout: WAIT });
    await checkA11y(page, 'the organizations page');
    await shot('organizations');

    await page.getByRole('link', { name: 'Connect a client' }).click();
    await page.getByRole('heading', { level: 1, name: 'Connect a client' }).waitFor({ timeout: WAIT });
    const openai = page.getByLabel('OpenAI Responses API configuration', { exact: true });
    const cfg = JSON.parse(await openai.textContent());
    assert.deepEqual(cfg.tools[0].type, 'mcp');
    assert.equal(cfg.tools[0].server_url, `${G}/mcp`);
    assert.match(cfg.tools[0].headers.Authorization, /^Bearer /);
    const cursor = JSON.parse(await page.getByLabel('Cursor configuration', { exact: true }).textContent());
    assert.equal(cursor.mcpServers.mcpbus.url, `${G}/mcp`);
    await checkA11y(page, 'the connect page');
    await shot('connect');
  }));

  test('usage, network and cluster from the navigation; each key\'s usage from the keys page', { timeout: 60000 }, () => step('usage', async () => {
    await page.getByRole('link', { name: 'Usage' }).click();
    await page.getByRole('heading', { level: 1, name: 'Usage' }).waitFor({ timeout: WAIT });
    await page.locator('.u-usage-live').filter({ hasText: '(live)' }).waitFor({ timeout: WAIT });
    // A call made now appears in the live tail, and then in the figures.
    const call = await rest('POST', '/mcp-rest/tools/call', { body: { server_id: 'demo', name: 'echo', arguments: { text: 'seen in the tail' } } });
    assert.equal(call.status, 200, JSON.stringify(call.data));
    await page.locator('.u-usage-tail tbody tr').filter({ hasText: 'echo' }).first().waitFor({ timeout: WAIT });
    await eventually(async () => {
      const label = await page.getByRole('img', { name: /^Calls and errors/ }).getAttribute('aria-label');
      assert.match(label, /Calls [1-9]/, `the calls chart: ${label}`);
    });
    await checkA11y(page, 'the usage page');
    await shot('usage');

    await page.getByRole('link', { name: 'Network' }).click();
    await page.getByRole('heading', { level: 1, name: 'Network' }).waitFor({ timeout: WAIT });
    await page.getByLabel('How would this address be classified?').fill('203.0.113.9');
    await page.getByLabel('How would this address be classified?').press('Enter');
    await page.locator('.n-result').filter({ hasText: '203.0.113.9 is external' }).waitFor({ timeout: WAIT });
    await checkA11y(page, 'the network page');

    await page.getByRole('link', { name: 'Cluster' }).click();
    await page.getByRole('heading', { level: 1, name: 'Cluster' }).waitFor({ timeout: WAIT });
    await page.getByText('mcpbus-worker').first().waitFor({ timeout: WAIT });
    await checkA11y(page, 'the cluster page');
    await shot('cluster');

    // Each key's usage: the keys page links to the usage page narrowed to it.
    await page.getByRole('link', { name: 'Keys' }).click();
    await page.getByRole('heading', { level: 1, name: 'Keys' }).waitFor({ timeout: WAIT });
    await page.getByRole('link', { name: 'Usage of key echo-only' }).click();
    await page.getByRole('heading', { level: 1, name: 'Usage' }).waitFor({ timeout: WAIT });
    await page.locator('.u-usage-narrowed').filter({ hasText: 'echo-only' }).waitFor({ timeout: WAIT });

    // The servers table counts each server's calls and errors of the last hour.
    await page.getByRole('link', { name: 'MCP servers' }).click();
    await page.getByRole('heading', { level: 1, name: 'MCP servers' }).waitFor({ timeout: WAIT });
    const demoRow = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'demo', exact: true }) });
    await eventually(async () => {
      const calls = await demoRow.locator('td').nth(3).textContent();
      assert.match(calls, /^[1-9]\d*$/, `demo's calls in the last hour: ${calls}`);
    });
  }));

  test('changes need the CSRF header; sign-out ends the session', { timeout: 30000 }, () => step('csrf', async () => {
    // The page's own cookie, without the header its scripts add: refused.
    const bare = await context.request.post(`${G}/key/generate`, { data: { key_alias: 'csrf-probe' } });
    assert.equal(bare.status(), 403, await bare.text());
    assert.match((await bare.json()).error.message, /CSRF/);
    const read = await context.request.get(`${G}/key/list`);
    assert.equal(read.status(), 200, 'reads need no CSRF header');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Key').waitFor({ timeout: WAIT });
    const after = await context.request.get(`${G}/key/list`);
    assert.equal(after.status(), 401, 'signed out: the cookie is gone');
  }));

  test('a virtual key sees its own servers and is signed out when revoked', { timeout: 40000 }, () => step('key-view', async () => {
    const own = await browser.newContext({ extraHTTPHeaders: { 'X-Forwarded-For': INTERNAL } });
    const kp = await own.newPage();
    watch(kp, 'key');
    try {
      await kp.goto(`${G}/ui`);
      await kp.getByLabel('Key').fill(limitedKey);
      await kp.getByRole('button', { name: 'Sign in' }).click();
      await kp.getByRole('heading', { level: 1, name: 'MCP servers' }).waitFor({ timeout: WAIT });
      assert.equal(await kp.getByRole('link', { name: 'Keys' }).count(), 0, 'admin pages are not offered to a plain key');
      assert.equal(await kp.getByRole('button', { name: 'Add server' }).count(), 0);
      const row = kp.getByRole('row').filter({ has: kp.getByRole('link', { name: 'demo', exact: true }) });
      await row.getByRole('cell', { name: '1', exact: true }).waitFor({ timeout: WAIT }); // echo only
      await row.getByRole('link', { name: 'demo', exact: true }).click();
      await kp.getByRole('heading', { name: 'Tools (1)' }).waitFor({ timeout: WAIT });
      await kp.getByLabel('text (required)').fill('as the key');
      await kp.getByRole('button', { name: 'Call tool' }).click();
      await kp.getByTestId('tool-result').filter({ hasText: 'as the key' }).waitFor({ timeout: WAIT });
      await checkA11y(kp, 'a key\'s server page');

      // Revoked through the API: the open page returns to sign-in by itself.
      assert.equal((await rest('POST', '/key/delete', { body: { key_aliases: ['echo-only'] } })).status, 200);
      await kp.getByText('no longer valid').waitFor({ timeout: WAIT });
      await kp.getByLabel('Key').waitFor({ timeout: WAIT });
    } finally {
      await own.close();
    }
  }));
});
