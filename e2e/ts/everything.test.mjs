// End-to-end: the official MCP TypeScript SDK talks to the real mcpbus
// gateway, which proxies to @modelcontextprotocol/server-everything over the
// two non-HTTP upstream transports:
//
//   everything_stdio  transport stdio: mcpbus spawns `node dist/index.js stdio`
//                     with only the env from the config
//   everything_sse    transport sse: the test runs `node dist/index.js sse` on a
//                     free loopback port, with a preload that keeps it on 127.0.0.1
//
//   MCPBUS_BIN=path/to/mcpbus   binary under test (default ../bin/mcpbus from e2e/)
//
// server-everything binds every interface in its HTTP modes and has a get-env
// tool that dumps its environment. So: the SSE instance runs with the loopback
// preload and a minimal env (PORT only), and the test checks it listens on
// nothing but loopback before the gateway is started.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';

import {
  freeLoopbackPort,
  isLoopbackAddr,
  listeningSocketsProc,
  listeningSocketsSS,
  LOOPBACK_PRELOAD,
} from './lib/netcheck.mjs';
import { makeTempDir, mcpbusBin, removeTempDir, startProcess, stopProcess } from './lib/procs.mjs';
import { text } from './lib/mcp.mjs';

const MASTER_KEY = `sk-e2e-master-${randomUUID()}`;
const GATEWAY_ONLY_SECRET = `gateway-only-${randomUUID()}`;
// E2E_RUN_ID marks the stdio children of this run, so after() can find them
// (even respawned or orphaned ones) by their environment.
const RUN_ID = randomUUID();
const CONFIGURED_ENV = {
  E2E_CONFIGURED: 'configured-value',
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  E2E_RUN_ID: RUN_ID,
};

// server-everything's launcher: `node dist/index.js [stdio|sse|streamableHttp]`.
const require = createRequire(import.meta.url);
const EVERYTHING_PKG = path.dirname(require.resolve('@modelcontextprotocol/server-everything/package.json'));
const EVERYTHING_MAIN = path.join(EVERYTHING_PKG, 'dist', 'index.js');

let tmp;
let sseServer; // server-everything in SSE mode (started here, with the preload)
let ssePort;
let gateway; // mcpbus serve
let gatewayEnv;
let gatewayURL;
const headers = { 'x-litellm-api-key': `Bearer ${MASTER_KEY}` };

/** PIDs of the processes whose environment holds E2E_RUN_ID=RUN_ID (Linux /proc). */
async function runChildren() {
  const marker = `\0E2E_RUN_ID=${RUN_ID}\0`;
  const out = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (`\0${await readFile(`/proc/${entry}/environ`, 'utf8')}\0`.includes(marker)) out.push(Number(entry));
    } catch {
      // exited meanwhile, or not ours to read
    }
  }
  return out;
}

/** PID of pid's parent, or null when it is gone. */
async function parentPid(pid) {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

describe('mcpbus gateway with server-everything over stdio and SSE', { timeout: 58000 }, () => {
  const clients = [];
  const open = async (server) => {
    const client = new Client({ name: 'mcpbus-e2e-everything', version: '0.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${gatewayURL}/mcp/${server}`), {
      requestInit: { headers },
    });
    await client.connect(transport);
    clients.push(client);
    return client;
  };

  before(async () => {
    const bin = mcpbusBin();
    tmp = await makeTempDir();

    // 1. server-everything in SSE mode, forced onto loopback by the preload.
    ssePort = await freeLoopbackPort();
    sseServer = await startProcess(process.execPath, ['--require', LOOPBACK_PRELOAD, EVERYTHING_MAIN, 'sse'], {
      env: { PORT: String(ssePort) }, // nothing else: get-env must have nothing to show
      re: /Server is running on port (\d+)/,
      timeoutMs: 15000,
      name: 'server-everything sse',
    });
    assert.equal(Number(sseServer.match[1]), ssePort, 'server-everything should use the PORT it was given');
    // Refuse to go on (and expose it through the gateway) unless it is on loopback only.
    const socks = await listeningSocketsProc(sseServer.pid);
    const exposed = socks.filter((s) => !isLoopbackAddr(s.addr));
    if (socks.length === 0 || exposed.length > 0) {
      await stopProcess(sseServer);
      throw new Error(
        `server-everything (pid ${sseServer.pid}) must listen on loopback only; sockets: ${JSON.stringify(socks)}\n` +
          sseServer.logs(),
      );
    }

    // 2. The gateway, with both servers.
    const q = JSON.stringify;
    const config = path.join(tmp, 'config.yaml');
    await writeFile(
      config,
      [
        'general_settings:',
        '  master_key: os.environ/E2E_MASTER_KEY',
        'mcp_servers:',
        '  everything_stdio:',
        '    transport: stdio',
        `    command: ${q(process.execPath)}`,
        `    args: [${q(EVERYTHING_MAIN)}, "stdio"]`,
        '    env:',
        ...Object.entries(CONFIGURED_ENV).map(([k, v]) => `      ${k}: ${q(v)}`),
        '    timeout: 20s',
        '  everything_sse:',
        '    transport: sse',
        `    url: http://127.0.0.1:${ssePort}/sse`,
        '    timeout: 20s',
        '',
      ].join('\n'),
    );
    gatewayEnv = { ...process.env, E2E_MASTER_KEY: MASTER_KEY, E2E_GATEWAY_ONLY_SECRET: GATEWAY_ONLY_SECRET };
    const serveArgs = ['serve', '--config', config, '--listen', '127.0.0.1:0', '--data', path.join(tmp, 'data')];
    gateway = await startProcess(bin, [...serveArgs, '--nats-listen', 'off'], {
      env: gatewayEnv,
      re: /mcpbus listening on (http:\/\/127\.0\.0\.1:\d+)/,
      timeoutMs: 20000,
      name: 'mcpbus serve',
    });
    gatewayURL = gateway.match[1];
  });

  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.allSettled([stopProcess(gateway), stopProcess(sseServer)]);
    // mcpbus should have ended its stdio children; wait a little, then kill
    // (by PID) any process still carrying this run's marker.
    let leftover = await runChildren();
    for (const deadline = Date.now() + 5000; leftover.length > 0 && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 100));
      leftover = await runChildren();
    }
    for (const pid of leftover) process.kill(pid, 'SIGKILL');
    await removeTempDir(tmp);
    assert.deepEqual(leftover, [], `stdio children of mcpbus still running 5 s after it stopped: ${leftover}`);
  });

  test('SSE server-everything listens on loopback only (preload)', async () => {
    const proc = await listeningSocketsProc(sseServer.pid);
    assert.ok(proc.length > 0, 'server-everything should have a listening socket');
    assert.deepEqual(
      proc.filter((s) => !isLoopbackAddr(s.addr)),
      [],
      `non-loopback listeners (/proc) of pid ${sseServer.pid}: ${JSON.stringify(proc)}`,
    );
    assert.ok(
      proc.some((s) => s.addr === '127.0.0.1' && s.port === ssePort),
      `expected a listener on 127.0.0.1:${ssePort}, got ${JSON.stringify(proc)}`,
    );
    const ss = await listeningSocketsSS(sseServer.pid);
    if (ss !== null) {
      assert.deepEqual(
        ss.filter((s) => !isLoopbackAddr(s.addr)),
        [],
        `non-loopback listeners (ss) of pid ${sseServer.pid}: ${JSON.stringify(ss)}`,
      );
    }
    assert.match(sseServer.logs(), /\[loopback-preload\] active in pid \d+/, 'the preload should be loaded');
    assert.match(
      sseServer.logs(),
      /\[loopback-preload\] listen host \(none\) -> 127\.0\.0\.1/,
      'the preload should have rewritten the host-less listen()',
    );
  });

  test('stdio: tools/list and echo', { timeout: 20000 }, async () => {
    const client = await open('everything_stdio');
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const want of ['echo', 'get-env', 'trigger-long-running-operation']) {
      assert.ok(names.includes(want), `tools/list should include "${want}", got ${JSON.stringify(names)}`);
    }
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'hello over stdio' } });
    assert.equal(text(echo), 'Echo: hello over stdio');

    // The stdio upstream is a child of mcpbus, found by its env marker (this
    // also shows that after()'s leftover check can see it).
    const children = await runChildren();
    assert.ok(children.length >= 1, 'mcpbus should have spawned the stdio server');
    for (const pid of children) {
      assert.equal(await parentPid(pid), gateway.pid, `pid ${pid} should be a child of mcpbus`);
      const socks = await listeningSocketsProc(pid);
      assert.deepEqual(socks, [], `the stdio server (pid ${pid}) should not listen on TCP: ${JSON.stringify(socks)}`);
    }
  });

  test('stdio: the child gets only the configured env (get-env)', { timeout: 20000 }, async () => {
    const client = await open('everything_stdio');
    const out = text(await client.callTool({ name: 'get-env', arguments: {} }));
    let childEnv;
    assert.doesNotThrow(() => {
      childEnv = JSON.parse(out);
    }, `get-env should return JSON, got: ${out.slice(0, 200)}`);
    assert.equal(childEnv.E2E_CONFIGURED, 'configured-value', 'a value configured under env: should reach the child');
    assert.equal(childEnv.PATH, CONFIGURED_ENV.PATH, 'PATH from env: should reach the child');
    assert.ok(!('E2E_GATEWAY_ONLY_SECRET' in childEnv), 'the gateway-only variable must not reach the stdio child');
    assert.ok(!out.includes(GATEWAY_ONLY_SECRET), 'the gateway-only secret value must not appear in get-env output');
    assert.ok(!out.includes(MASTER_KEY), 'the master key must not appear in get-env output');
    const leaked = Object.keys(childEnv).filter((k) => !(k in CONFIGURED_ENV) && k in gatewayEnv);
    assert.deepEqual(leaked, [], `variables inherited from the gateway's environment: ${leaked.join(', ')}`);
  });

  test('stdio: progress notifications reach the client', { timeout: 20000 }, async () => {
    const client = await open('everything_stdio');
    const progress = [];
    const result = await client.callTool(
      { name: 'trigger-long-running-operation', arguments: { duration: 0.6, steps: 3 } },
      CallToolResultSchema,
      { onprogress: (p) => progress.push(p), timeout: 15000 },
    );
    assert.match(text(result), /Long running operation completed/);
    assert.ok(progress.length >= 1, `expected at least one progress notification, got ${progress.length}`);
    assert.equal(progress.at(-1).total, 3, `progress total should be 3: ${JSON.stringify(progress)}`);
  });

  test('sse: tools/list and echo', { timeout: 20000 }, async () => {
    const client = await open('everything_sse');
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const want of ['echo', 'trigger-long-running-operation']) {
      assert.ok(names.includes(want), `tools/list should include "${want}", got ${JSON.stringify(names)}`);
    }
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'hello over sse' } });
    assert.equal(text(echo), 'Echo: hello over sse');
  });

  test('sse: progress notifications reach the client', { timeout: 20000 }, async () => {
    const client = await open('everything_sse');
    const progress = [];
    const result = await client.callTool(
      { name: 'trigger-long-running-operation', arguments: { duration: 0.6, steps: 3 } },
      CallToolResultSchema,
      { onprogress: (p) => progress.push(p), timeout: 15000 },
    );
    assert.match(text(result), /Long running operation completed\. Duration: 0\.6 seconds, Steps: 3\./);
    assert.ok(progress.length >= 1, `expected at least one progress notification, got ${progress.length}`);
    const last = progress.at(-1);
    assert.equal(last.total, 3, `progress total should be 3: ${JSON.stringify(last)}`);
    assert.ok(last.progress > 0 && last.progress <= 3, `progress should be in (0, 3]: ${JSON.stringify(last)}`);
  });
});
