// End-to-end: the official MCP TypeScript SDK on mcpbus's aggregated
// endpoint /mcp (no server selected), with two upstreams behind it
// (testdata/aggregate.yaml): the conformance fixture as `conformance`
// (`mcpbus conformance-fixture`) and the demo upstream as `demo`
// (`mcpbus demo-upstream`, which wants an x-api-key the gateway injects).
// Tools appear as <server>__<tool>; calls, progress and an elicitation
// travel through the gateway to the right server and back.
//
//   MCPBUS_BIN=path/to/mcpbus   binary under test (default ../bin/mcpbus from e2e/)
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

import { makeTempDir, mcpbusBin, removeTempDir, startProcess, stopProcess } from './lib/procs.mjs';
import { text, toolNames } from './lib/mcp.mjs';

const MASTER_KEY = `sk-e2e-master-${randomUUID()}`;
const UPSTREAM_KEY = `upstream-${randomUUID()}`;
const SEP = '__';
const CONFIG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'testdata', 'aggregate.yaml');

let tmp;
let fixture; // mcpbus conformance-fixture
let demo; // mcpbus demo-upstream
let gateway; // mcpbus serve
let fixtureURL;
let demoURL;
let gatewayURL;
const clients = [];

async function connect(url, headers, capabilities = {}) {
  const client = new Client({ name: 'mcpbus-e2e-aggregate', version: '0.0.0' }, { capabilities });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  clients.push(client);
  return client;
}

const gatewayClient = (capabilities) =>
  connect(`${gatewayURL}/mcp`, { 'x-litellm-api-key': `Bearer ${MASTER_KEY}` }, capabilities);

describe('mcpbus /mcp aggregating the conformance fixture and the demo upstream', { timeout: 55000 }, () => {
  before(async () => {
    const bin = mcpbusBin();
    tmp = await makeTempDir();
    [fixture, demo] = await Promise.all([
      startProcess(bin, ['conformance-fixture', '--listen', '127.0.0.1:0'], {
        env: process.env,
        re: /^conformance fixture listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)$/,
        name: 'conformance-fixture',
      }),
      startProcess(
        bin,
        ['demo-upstream', '--listen', '127.0.0.1:0', '--name', 'demo', '--require-header', `x-api-key: ${UPSTREAM_KEY}`],
        { env: process.env, re: /^demo upstream "demo" listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)$/, name: 'demo-upstream' },
      ),
    ]);
    fixtureURL = fixture.match[1];
    demoURL = demo.match[1];
    gateway = await startProcess(
      bin,
      ['serve', '--config', CONFIG, '--listen', '127.0.0.1:0', '--data', path.join(tmp, 'data'), '--nats-listen', 'off'],
      {
        env: {
          ...process.env,
          E2E_MASTER_KEY: MASTER_KEY,
          E2E_UPSTREAM_KEY: UPSTREAM_KEY,
          MCPBUS_CONFORMANCE_URL: fixtureURL,
          MCPBUS_DEMO_URL: demoURL,
        },
        re: /mcpbus listening on (http:\/\/127\.0\.0\.1:\d+)/,
        timeoutMs: 20000,
        name: 'mcpbus serve',
      },
    );
    gatewayURL = gateway.match[1];
  });

  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.allSettled([stopProcess(gateway), stopProcess(fixture), stopProcess(demo)]);
    await removeTempDir(tmp);
  });

  test('tools/list on /mcp is both servers\' tools, named <server>__<tool>', { timeout: 15000 }, async () => {
    const [fixtureTools, demoTools] = await Promise.all([
      connect(fixtureURL, {}).then(toolNames),
      connect(demoURL, { 'x-api-key': UPSTREAM_KEY }).then(toolNames),
    ]);
    assert.ok(fixtureTools.includes('test_simple_text') && demoTools.length > 0, 'upstreams should list their tools');
    const want = [...fixtureTools.map((n) => `conformance${SEP}${n}`), ...demoTools.map((n) => `demo${SEP}${n}`)].sort();

    const got = await toolNames(await gatewayClient());
    assert.ok(got.includes(`conformance${SEP}test_simple_text`), `missing conformance${SEP}test_simple_text in ${JSON.stringify(got)}`);
    assert.deepEqual([...got].sort(), want, 'the aggregated list should be exactly both servers\' tools, prefixed');
  });

  test('calls are routed by prefixed name to the right server', { timeout: 15000 }, async () => {
    const direct = await connect(fixtureURL, {});
    const want = text(await direct.callTool({ name: 'test_simple_text', arguments: {} }));

    const client = await gatewayClient();
    assert.equal(text(await client.callTool({ name: `conformance${SEP}test_simple_text`, arguments: {} })), want);
    const echo = await client.callTool({ name: `demo${SEP}echo`, arguments: { text: 'routed to demo' } });
    assert.equal(text(echo), 'routed to demo', 'demo__echo should reach the demo upstream');
  });

  test('progress of conformance__test_tool_with_progress reaches onprogress', { timeout: 15000 }, async () => {
    const client = await gatewayClient();
    const progress = [];
    const result = await client.callTool(
      { name: `conformance${SEP}test_tool_with_progress`, arguments: {} },
      CallToolResultSchema,
      { onprogress: (p) => progress.push(p), timeout: 10000 },
    );
    text(result);
    assert.deepEqual(
      progress.map((p) => [p.progress, p.total]),
      [
        [0, 100],
        [50, 100],
        [100, 100],
      ],
      `expected progress 0, 50, 100 of 100 before the result, got ${JSON.stringify(progress)}`,
    );
  });

  test('an elicitation from conformance__test_elicitation is answered by the client', { timeout: 15000 }, async () => {
    const client = await gatewayClient({ elicitation: {} });
    const asked = [];
    const answer = { username: `e2e-${randomUUID().slice(0, 8)}`, email: 'e2e@example.com' };
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked.push(req.params);
      return { action: 'accept', content: answer };
    });
    const result = await client.callTool(
      { name: `conformance${SEP}test_elicitation`, arguments: { message: 'Who is calling through mcpbus?' } },
      CallToolResultSchema,
      { timeout: 10000 },
    );
    assert.equal(asked.length, 1, `the client should be asked once, was asked ${asked.length} times`);
    assert.equal(asked[0].message, 'Who is calling through mcpbus?', 'the elicitation should carry the tool\'s message');
    assert.deepEqual(
      Object.keys(asked[0].requestedSchema?.properties ?? {}).sort(),
      ['email', 'username'],
      'the requested schema should arrive intact',
    );
    assert.equal(
      text(result),
      `User response: action=accept, content=${JSON.stringify({ email: answer.email, username: answer.username })}`,
      'the tool result should carry the client\'s answer',
    );
  });
});
