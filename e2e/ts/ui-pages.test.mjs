// End-to-end: the admin UI's Usage, Network and Cluster page modules
// (ingress/ui/assets/pages/*.js) in a real browser against the real
// gateway. Each test opens /ui/ (whatever page the shell serves), signs in
// with the master key, imports one module and mounts it into a fresh
// <div>, with a ctx built as the shell's contract says. It fails on any
// console error, page error or CSP violation, and on serious or critical
// axe-core findings inside the mounted root.
//
//   MCPBUS_BIN=path/to/mcpbus   binary under test (default ../bin/mcpbus from e2e/)
//   CHROMIUM=path               the browser (default /usr/bin/chromium; never downloaded)
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { makeTempDir, mcpbusBin, removeTempDir, startProcess, stopProcess } from './lib/procs.mjs';

const MASTER_KEY = 'sk-e2e-ui-pages-master';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'artifacts');
const require = createRequire(import.meta.url);

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
if (missing && process.env.CI) throw new Error(`the UI pages test cannot run: ${missing}`);

/** Polls fn until it returns a truthy value; throws the last error or message after timeout. */
async function until(fn, { timeout = 15000, interval = 200, message = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${message}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

describe('admin UI pages: usage, network, cluster', { timeout: 120000, skip: missing || false }, () => {
  let tmp;
  let upstream;
  let gateway;
  let gw;
  let browser;
  let userKey;
  let userToken;

  before(async () => {
    const bin = mcpbusBin();
    tmp = await makeTempDir();
    upstream = await startProcess(bin, ['demo-upstream', '--listen', '127.0.0.1:0', '--name', 'demo'], {
      env: process.env,
      re: /^demo upstream "demo" listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)$/,
      name: 'demo-upstream',
    });
    const config = path.join(tmp, 'config.yaml');
    await writeFile(config, ['general_settings:', '  master_key: os.environ/E2E_MASTER_KEY', 'mcp_servers:', '  demo:',
      `    url: ${upstream.match[1]}`, ''].join('\n'));
    gateway = await startProcess(
      bin,
      ['serve', '--config', config, '--listen', '127.0.0.1:0', '--data', path.join(tmp, 'data'), '--nats-listen', 'off'],
      { env: { ...process.env, E2E_MASTER_KEY: MASTER_KEY }, re: /mcpbus listening on (http:\/\/127\.0\.0\.1:\d+)/, timeoutMs: 20000, name: 'mcpbus serve' },
    );
    gw = gateway.match[1];
    const res = await fetch(`${gw}/key/generate`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ key_alias: 'ui-pages-user' }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    ({ key: userKey, token: userToken } = await res.json());
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    await Promise.allSettled([stopProcess(gateway), stopProcess(upstream)]);
    await removeTempDir(tmp);
  });

  /**
   * A signed-in page at /ui/ that records console errors, page errors and
   * CSP violations. allow: console errors expected by the test (a refused
   * request the page asked for on purpose), matched against text and URL.
   */
  async function openPage(key, { bypassCSP = false, allow = [] } = {}) {
    const context = await browser.newContext({ baseURL: gw, bypassCSP });
    const page = await context.newPage();
    const problems = [];
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const where = m.location()?.url || '';
      // The browser asks for /favicon.ico by itself; the placeholder page has none.
      if ([/\/favicon\.ico$/, ...allow].some((re) => re.test(m.text()) || re.test(where))) return;
      problems.push(`console error: ${m.text()} (${where})`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    await page.addInitScript(() => {
      window.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`);
      });
    });
    // Sign in before the page loads, so a shell that asks who is signed in finds a session.
    const res = await context.request.post(`${gw}/ui/api/session`, { data: { key } });
    assert.equal(res.status(), 200, await res.text());
    await page.goto(`${gw}/ui/`);
    const check = async () => {
      const csp = await page.evaluate(() => window.__csp).catch(() => []);
      assert.deepEqual([...problems, ...csp.map((v) => `CSP violation: ${v}`)], [], 'the page reported problems');
    };
    return { context, page, problems, check };
  }

  /** Imports /ui/pages/<name>.js and mounts it into a new div#mount-<name>; returns its locator. */
  async function mountPage(page, name, extra = {}) {
    await page.evaluate(async ([name, extra]) => {
      const s = await (await fetch('/ui/api/session', { credentials: 'same-origin' })).json();
      const ctx = {
        async api(p, { method = 'GET', body } = {}) {
          const headers = {};
          if (method !== 'GET') headers['X-CSRF-Token'] = s.csrf;
          if (body !== undefined) headers['Content-Type'] = 'application/json';
          const res = await fetch(p, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
          const text = await res.text();
          let data = null;
          try {
            data = text ? JSON.parse(text) : null;
          } catch {
            data = null;
          }
          if (!res.ok) throw new Error(data?.error?.message || `HTTP ${res.status}`);
          return data;
        },
        live(event, fn) {
          window.__events ||= new EventSource('/ui/api/events');
          window.__events.addEventListener(event, fn);
          return () => window.__events.removeEventListener(event, fn);
        },
        session: { caller: s.caller, admin: s.admin, org_admin: s.org_admin, team_id: s.team_id },
        ...extra,
      };
      // canned: {path: answer} stands in for the API (for states a test gateway cannot reach).
      if (extra.canned) {
        ctx.api = async (p) => {
          const a = extra.canned[p.split('?')[0]];
          if (a === undefined) throw new Error(`no canned answer for ${p}`);
          return structuredClone(a);
        };
      }
      const root = document.createElement('div');
      root.id = `mount-${name}`;
      document.body.append(root);
      const mod = await import(`/ui/pages/${name}.js`);
      window.__unmount ||= {};
      window.__unmount[name] = await mod.mount(root, ctx);
    }, [name, extra]);
    return page.locator(`#mount-${name}`);
  }

  async function unmount(page, name) {
    await page.evaluate((name) => {
      window.__unmount[name]();
      const root = document.getElementById(`mount-${name}`);
      if (root.childElementCount !== 0) throw new Error(`unmount left ${root.childElementCount} elements`);
      root.remove();
    }, name);
  }

  /** Runs axe-core on the mounted root in a context without CSP; fails on serious or critical findings. */
  async function axeCheck(name, prepare) {
    const { context, page } = await openPage(MASTER_KEY, { bypassCSP: true });
    try {
      await mountPage(page, name);
      if (prepare) await prepare(page, page.locator(`#mount-${name}`));
      await page.addScriptTag({ content: await readFile(axePath, 'utf8') });
      const found = await page.evaluate(async (sel) => {
        const r = await window.axe.run(sel, { resultTypes: ['violations'] });
        if (r.passes.length === 0) return ['axe checked nothing'];
        return r.violations
          .filter((v) => v.impact === 'serious' || v.impact === 'critical')
          .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join('; ')}`);
      }, `#mount-${name}`);
      assert.deepEqual(found, [], `axe found serious or critical problems in the ${name} page`);
    } finally {
      await context.close();
    }
  }

  /** Runs body(page); on failure saves a screenshot to e2e/artifacts/. */
  async function withPage(label, opts, body) {
    const p = await openPage(opts.key || MASTER_KEY, opts);
    try {
      await body(p.page);
      await p.check();
    } catch (err) {
      await mkdir(ARTIFACTS, { recursive: true });
      await p.page.screenshot({ path: path.join(ARTIFACTS, `ui-pages-${label}.png`), fullPage: true }).catch(() => {});
      throw err;
    } finally {
      await p.context.close();
    }
  }

  const callTool = async (text, key = userKey) => {
    const res = await fetch(`${gw}/mcp-rest/tools/call`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ server_id: 'demo', name: 'echo', arguments: { text } }),
    });
    assert.equal(res.status, 200, await res.text());
  };

  test('usage: live tail, totals and charts follow tool calls', { timeout: 60000 }, async () => {
    await withPage('usage', { allow: [/server=not\+a\+server/] }, async (page) => {
      const root = await mountPage(page, 'usage');
      await until(async () => (await root.locator('.u-usage-scope').textContent()) === 'all', { message: 'the scope "all"' });
      await until(async () => (await root.locator('.u-usage-live').textContent()) === '(live)', { message: 'the live tail to open' });
      // Three charts, drawn by uPlot into canvases.
      assert.equal(await root.locator('.u-usage-chart canvas').count(), 3, 'three uPlot charts');

      // Calls through the REST tools API with a virtual key; the tail
      // subscribes just after it opens, so keep calling until one shows.
      let made = 0;
      await until(async () => {
        if (made < 10) {
          await callTool(`ui-pages ${made}`);
          made++;
        }
        return (await root.locator('.u-usage-tail tbody tr').count()) >= 3;
      }, { interval: 400, message: 'three calls in the live tail' });
      const first = root.locator('.u-usage-tail tbody tr').first();
      const cells = await first.locator('td').allTextContents();
      assert.equal(cells[1], 'ok', `the newest call's status: ${cells}`);
      assert.equal(cells[2], 'ui-pages-user', `the newest call's key: ${cells}`);
      assert.equal(cells[3], 'demo', `the newest call's server: ${cells}`);
      assert.equal(cells[4], 'echo', `the newest call's tool: ${cells}`);

      // The figures refresh after the tail sees calls: the demo row and the total count them.
      await until(async () => {
        const total = await root.locator('.u-usage-rows tfoot td[data-field="calls"]').textContent();
        return Number(total.replace(/\D/g, '')) >= 3;
      }, { message: 'the total to count the calls' });
      const demo = root.locator('.u-usage-rows tbody tr', { has: page.locator('th', { hasText: /^demo$/ }) });
      assert.ok(Number((await demo.locator('td[data-field="calls"]').textContent()).replace(/\D/g, '')) >= 3, 'the demo row counts the calls');
      const label = await root.locator('.u-usage-plot').first().getAttribute('aria-label');
      assert.match(label, /Calls [1-9]/, `the calls chart's summary: ${label}`);

      // Group by tool: the columns follow the API's titles.
      await root.getByLabel('Group by').selectOption('tool');
      await until(async () => (await root.locator('.u-usage-rows thead th').first().textContent()) === 'Server'
        && (await root.locator('.u-usage-rows thead th').nth(1).textContent()) === 'Tool', { message: 'the tool columns' });
      await until(async () => (await root.locator('.u-usage-rows tbody td', { hasText: /^echo$/ }).count()) === 1, { message: 'an echo row' });

      // A server filter the API refuses shows its message in the alert.
      await root.getByLabel('Server (optional)').fill('not a server');
      await root.getByRole('button', { name: 'Apply' }).click();
      await until(async () => /server name/.test(await root.getByRole('alert').textContent()), { message: 'the refusal in the alert' });
      assert.equal(await root.getByRole('alert').getAttribute('class'), 'u-usage-alert');
      await root.getByLabel('Server (optional)').fill('demo');
      await root.getByLabel('Server (optional)').press('Enter');
      await until(async () => (await root.locator('.u-usage-alert').textContent()) === '', { message: 'the alert to clear' });

      await unmount(page, 'usage');
    });
  });

  test('usage: a virtual key sees its own scope', { timeout: 30000 }, async () => {
    await withPage('usage-key', { key: userKey }, async (page) => {
      const root = await mountPage(page, 'usage');
      await until(async () => (await root.locator('.u-usage-scope').textContent()) === 'key ui-pages-user', { message: 'the key scope' });
      await unmount(page, 'usage');
    });
  });

  test('usage: narrowed to one key by ctx.filter', { timeout: 45000 }, async () => {
    await withPage('usage-filter', {}, async (page) => {
      const root = await mountPage(page, 'usage', { filter: { key: userToken, label: 'key ui-pages-user' } });
      await until(async () => (await root.locator('.u-usage-narrowed').textContent()) === 'key ui-pages-user', { message: 'the narrowing' });
      await until(async () => (await root.locator('.u-usage-live').textContent()) === '(live)', { message: 'the live tail to open' });
      await root.getByLabel('Group by').selectOption('key');
      // The master key's calls are left out of the tail and the figures; the user key's are in.
      let made = 0;
      await until(async () => {
        if (made++ < 10) {
          await callTool('master', MASTER_KEY);
          await callTool('user');
        }
        return (await root.locator('.u-usage-tail tbody tr').count()) >= 2;
      }, { interval: 400, message: "the user key's calls in the tail" });
      const keys = await root.locator('.u-usage-tail tbody tr td:nth-child(3)').allTextContents();
      assert.ok(keys.every((k) => k === 'ui-pages-user'), `the tail shows other keys' calls: ${keys}`);
      await until(async () => (await root.locator('.u-usage-rows tbody th', { hasText: 'ui-pages-user' }).count()) === 1, { message: "the user key's row" });
      const rows = await root.locator('.u-usage-rows tbody th').allTextContents();
      assert.deepEqual(rows, ['ui-pages-user'], `the figures hold other keys: ${rows}`);
      await unmount(page, 'usage');
    });
  });

  test('network: classifies addresses; others are refused', { timeout: 45000 }, async () => {
    await withPage('network', { allow: [/ip=not-an-ip/] }, async (page) => {
      const root = await mountPage(page, 'network');
      await until(async () => /You are classified as internal/.test(await root.locator('.n-you').textContent()), { message: 'your classification' });
      const input = root.getByLabel('How would this address be classified?');
      await input.fill('10.1.2.3');
      await input.press('Enter');
      await until(async () => /^10\.1\.2\.3 is internal \(in 10\.0\.0\.0\/8\)$/.test(await root.getByRole('status').textContent()), { message: '10.1.2.3 internal' });
      await input.fill('203.0.113.9');
      await root.getByRole('button', { name: 'Classify' }).click();
      await until(async () => /^203\.0\.113\.9 is external/.test(await root.getByRole('status').textContent()), { message: '203.0.113.9 external' });
      await input.fill('not-an-ip');
      await input.press('Enter');
      await until(async () => /not an IPv4 or IPv6 address/.test(await root.locator('.n-alert').last().textContent()), { message: 'the bad address in the alert' });
      const families = await root.locator('.n-table tbody th').allTextContents();
      assert.ok(families.includes('mcp') && families.includes('ui'), `route families: ${families}`);
      await unmount(page, 'network');
    });
    // A virtual key gets the API's refusal, in the alert.
    await withPage('network-user', { key: userKey, allow: [/\/ui\/api\/network$/] }, async (page) => {
      const root = await mountPage(page, 'network');
      await until(async () => /only the master key/.test(await root.getByRole('alert').textContent()), { message: 'the 403 message' });
      await unmount(page, 'network');
    });
  });

  test('cluster: the worker and the demo server have replicas', { timeout: 45000 }, async () => {
    await withPage('cluster', {}, async (page) => {
      const root = await mountPage(page, 'cluster');
      await until(async () => (await root.locator('.c-service h4', { hasText: 'mcpbus-worker' }).count()) === 1, { message: 'the mcpbus-worker service' });
      const demo = root.locator('.c-servers tbody tr', { has: page.locator('th', { hasText: /^demo$/ }) });
      await until(async () => Number(await demo.locator('td').first().textContent()) >= 1, { message: 'the demo server with a replica' });
      assert.match(await root.locator('.c-bus').textContent(), /connected to/);
      // Many endpoints fold under their sum; the keyboard unfolds them, and they stay so across refreshes.
      const key = await root.locator('summary[data-key^="mcpbus-auth/"]').getAttribute('data-key');
      const isOpen = () => root.locator(`summary[data-key="${key}"]`).evaluate((s) => s.parentElement.open);
      await root.locator(`summary[data-key="${key}"]`).focus();
      await page.keyboard.press('Enter');
      await until(isOpen, { message: 'the endpoints to unfold' });
      // It refreshes on its own: the "Updated" time changes.
      const before = await root.locator('.c-controls .c-meta').textContent();
      await until(async () => (await root.locator('.c-controls .c-meta').textContent()) !== before, { timeout: 12000, message: 'a refresh' });
      assert.ok(await isOpen(), 'the unfolded endpoints stay open after a refresh');
      await unmount(page, 'cluster');
    });
  });

  test('cluster: flags a server without workers and replicas of different versions', { timeout: 30000 }, async () => {
    const started = new Date(Date.now() - 3600e3).toISOString();
    const ep = (name, requests) => ({ name, subject: `mcpbus.v1.${name}`, requests, errors: 0, average_ms: 1.5, queue_group: 'q' });
    const canned = {
      '/ui/api/cluster': {
        services: [{ name: 'mcpbus-router', versions: ['0.1.0', '0.2.0'], instances: [
          { id: 'AAA', version: '0.1.0', started, endpoints: [ep('rpc', 3)] },
          { id: 'BBB', version: '0.2.0', started, endpoints: [ep('rpc', 4)] },
        ] }],
        servers: { idle: { replicas: 0, in_flight: 0, requests: 0, errors: 0 }, busy: { replicas: 2, in_flight: 3, requests: 9, errors: 1 } },
        bus: { connected: 'nats://10.0.0.1:4222', known: ['nats://10.0.0.2:4222'] },
      },
    };
    await withPage('cluster-canned', {}, async (page) => {
      const root = await mountPage(page, 'cluster', { canned });
      await until(async () => (await root.locator('.c-service').count()) === 1, { message: 'the service' });
      assert.match(await root.locator('.c-service h4').textContent(), /2 replicas · mixed versions: 0\.1\.0, 0\.2\.0/);
      assert.equal(await root.locator('.c-service tbody .c-warn').count(), 2, 'each replica\'s version is highlighted');
      const idle = root.locator('.c-servers tbody tr', { has: page.locator('th', { hasText: /^idle$/ }) });
      assert.equal(await idle.getAttribute('class'), 'c-row-flagged');
      assert.equal(await idle.locator('.c-flag').textContent(), '0: no worker');
      const busy = await root.locator('.c-servers tbody tr', { has: page.locator('th', { hasText: /^busy$/ }) }).locator('td').allTextContents();
      assert.deepEqual(busy, ['2', '3', '9', '1']);
      assert.match(await root.locator('.c-bus').textContent(), /nats:\/\/10\.0\.0\.1:4222; other servers in the cluster: nats:\/\/10\.0\.0\.2:4222\./);
      await unmount(page, 'cluster');
    });
  });

  test('accessibility: axe finds no serious problem in the pages', { timeout: 60000 }, async () => {
    await axeCheck('usage', async (page, root) => {
      await until(async () => (await root.locator('.u-usage-live').textContent()) === '(live)', { message: 'the live tail to open' });
      let made = 0;
      await until(async () => {
        if (made++ < 10) await callTool('axe');
        return (await root.locator('.u-usage-tail tbody tr').count()) >= 1;
      }, { interval: 400, message: 'a call in the live tail' });
      await until(async () => (await root.locator('.u-usage-rows tbody th').count()) >= 1, { message: 'a row in the usage table' });
    });
    await axeCheck('network', async (page, root) => {
      const input = root.getByLabel('How would this address be classified?');
      await input.fill('10.1.2.3');
      await input.press('Enter');
      await until(async () => /internal/.test(await root.getByRole('status').textContent()), { message: 'a classification' });
    });
    await axeCheck('cluster', async (page, root) => {
      await until(async () => (await root.locator('.c-service').count()) >= 1, { message: 'the services' });
    });
  });
});
