// End-to-end: the official MCP TypeScript SDK talks to the real mcpbus
// gateway, which proxies to the real demo upstream (`mcpbus demo-upstream`).
//
//   MCPBUS_BIN=path/to/mcpbus   binary under test (default ../bin/mcpbus from e2e/)
//   MCPBUS_E2E_DIRECT=1         skip the gateway; talk to the demo upstream directly
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';

import { makeTempDir, mcpbusBin, removeTempDir, startProcess, stopProcess } from './lib/procs.mjs';
import { text } from './lib/mcp.mjs';

const DIRECT = process.env.MCPBUS_E2E_DIRECT === '1';
const MASTER_KEY = 'sk-e2e-master';
const UPSTREAM_KEY = 'upstream-secret';

let upstream; // demo upstream process
let gateway; // mcpbus serve process (not in direct mode)
let tmp; // temp dir with config and data
let base; // where the tests connect: { url, headers } per case

async function connect(url, headers) {
  const client = new Client({ name: 'mcpbus-e2e', version: '0.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  await client.connect(transport);
  return client;
}

/** Case a/b body: list tools, call echo and add. */
async function checkTools(client) {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  for (const want of ['echo', 'add', 'slow']) {
    assert.ok(names.includes(want), `tools/list should include "${want}", got ${JSON.stringify(names)}`);
  }
  const echo = await client.callTool({ name: 'echo', arguments: { text: 'hello through mcpbus' } });
  assert.equal(text(echo), 'hello through mcpbus', 'echo should return its text');
  const add = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
  assert.equal(text(add), '5', 'add should return the sum as text');
  assert.deepEqual(add.structuredContent, { sum: 5 }, 'add should return structuredContent {sum: 5}');
}

describe(DIRECT ? 'demo upstream (direct, no gateway)' : 'mcpbus gateway', { timeout: 55000 }, () => {
  const clients = [];
  const open = async (url, headers) => {
    const c = await connect(url, headers);
    clients.push(c);
    return c;
  };

  before(async () => {
    const bin = mcpbusBin();
    tmp = await makeTempDir();
    upstream = await startProcess(
      bin,
      ['demo-upstream', '--listen', '127.0.0.1:0', '--name', 'demo', '--require-header', `x-api-key: ${UPSTREAM_KEY}`],
      { env: process.env, re: /^demo upstream "demo" listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)$/, name: 'demo-upstream' },
    );
    const upstreamURL = upstream.match[1];

    if (DIRECT) {
      base = {
        url: upstreamURL,
        headers: { 'x-api-key': UPSTREAM_KEY },
        badHeaders: { 'x-api-key': 'wrong-key' },
      };
      return;
    }

    const config = path.join(tmp, 'config.yaml');
    await writeFile(
      config,
      [
        'general_settings:',
        '  master_key: os.environ/E2E_MASTER_KEY',
        'mcp_servers:',
        '  demo:',
        `    url: ${upstreamURL}`,
        '    auth_type: api_key',
        '    auth_value: os.environ/E2E_UPSTREAM_KEY',
        '',
      ].join('\n'),
    );
    gateway = await startProcess(
      bin,
      ['serve', '--config', config, '--listen', '127.0.0.1:0', '--data', path.join(tmp, 'data'), '--nats-listen', 'off'],
      {
        env: { ...process.env, E2E_MASTER_KEY: MASTER_KEY, E2E_UPSTREAM_KEY: UPSTREAM_KEY },
        re: /mcpbus listening on (http:\/\/127\.0\.0\.1:\d+)/,
        timeoutMs: 20000,
        name: 'mcpbus serve',
      },
    );
    const gw = gateway.match[1];
    base = {
      url: `${gw}/mcp/demo`,
      headers: { 'x-litellm-api-key': `Bearer ${MASTER_KEY}` },
      badHeaders: { 'x-litellm-api-key': 'Bearer sk-wrong' },
      gatewayURL: gw,
    };
  });

  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.allSettled([stopProcess(gateway), stopProcess(upstream)]);
    await removeTempDir(tmp);
  });

  test('a) per-server URL: list tools, call echo and add', { timeout: 15000 }, async () => {
    const client = await open(base.url, base.headers);
    await checkTools(client);
  });

  test('b) /mcp with x-litellm-mcp-server header', { timeout: 15000, skip: DIRECT && 'gateway only' }, async () => {
    const client = await open(`${base.gatewayURL}/mcp`, {
      'x-litellm-mcp-server': 'demo',
      Authorization: `Bearer ${MASTER_KEY}`,
    });
    await checkTools(client);
  });

  test('c) wrong key is rejected with HTTP 401', { timeout: 15000 }, async () => {
    await assert.rejects(
      () => open(base.url, base.badHeaders),
      (err) => {
        assert.equal(err.code, 401, `connect with a wrong key should fail with HTTP 401, got: ${err}`);
        return true;
      },
      'connect with a wrong key should fail',
    );
  });

  test(
    'd) progress notifications of the slow tool reach the client',
    { timeout: 15000 },
    async () => {
      const client = await open(base.url, base.headers);
      const progress = [];
      const result = await client.callTool({ name: 'slow', arguments: { seconds: 1, steps: 3 } }, CallToolResultSchema, {
        onprogress: (p) => progress.push(p),
        timeout: 10000,
      });
      assert.equal(text(result), 'done after 1s', 'slow should finish');
      assert.ok(progress.length >= 1, `expected at least one progress notification, got ${progress.length}`);
      const last = progress.at(-1);
      assert.equal(last.total, 3, `progress total should be 3: ${JSON.stringify(last)}`);
      assert.ok(last.progress > 0 && last.progress <= 3, `progress should be in (0, 3]: ${JSON.stringify(last)}`);
    },
  );
});
