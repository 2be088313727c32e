// End-to-end: tool search mode (docs/AGGREGATION.md#tool-search) with the
// official MCP TypeScript SDK, on /mcp over the conformance fixture and the
// demo upstream (testdata/aggregate.yaml). A client that sends
// x-mcpbus-tool-search: on is offered three tools; it finds a tool by words,
// reads its schema, and calls it through call_tool, progress included.
//
//   MCPBUS_BIN=path/to/mcpbus   binary under test (default ../bin/mcpbus from e2e/)
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';

import { makeTempDir, mcpbusBin, removeTempDir, startProcess, stopProcess } from './lib/procs.mjs';
import { text, toolNames } from './lib/mcp.mjs';

const MASTER_KEY = `sk-e2e-master-${randomUUID()}`;
const UPSTREAM_KEY = `upstream-${randomUUID()}`;
const CONFIG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'testdata', 'aggregate.yaml');

let tmp;
let fixture;
let demo;
let gateway;
let gatewayURL;
const clients = [];

async function searchClient(mode = 'on') {
  const client = new Client({ name: 'mcpbus-e2e-toolsearch', version: '0.0.0' }, { capabilities: {} });
  const headers = { 'x-litellm-api-key': `Bearer ${MASTER_KEY}` };
  if (mode) headers['x-mcpbus-tool-search'] = mode;
  await client.connect(new StreamableHTTPClientTransport(new URL(`${gatewayURL}/mcp`), { requestInit: { headers } }));
  clients.push(client);
  return client;
}

describe('mcpbus tool search mode with the TypeScript SDK', { timeout: 55000 }, () => {
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
    gateway = await startProcess(
      bin,
      ['serve', '--config', CONFIG, '--listen', '127.0.0.1:0', '--data', path.join(tmp, 'data'), '--nats-listen', 'off'],
      {
        env: {
          ...process.env,
          E2E_MASTER_KEY: MASTER_KEY,
          E2E_UPSTREAM_KEY: UPSTREAM_KEY,
          MCPBUS_CONFORMANCE_URL: fixture.match[1],
          MCPBUS_DEMO_URL: demo.match[1],
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

  test('tools/list offers exactly search_tools, describe_tool and call_tool; "off" the plain list', { timeout: 15000 }, async () => {
    assert.deepEqual(await toolNames(await searchClient()), ['search_tools', 'describe_tool', 'call_tool']);
    const plain = await toolNames(await searchClient('off'));
    assert.ok(plain.includes('demo__echo') && plain.length > 3, `the plain list: ${JSON.stringify(plain)}`);
  });

  test('search finds a tool by words, describe gives its schema, call_tool runs it', { timeout: 15000 }, async () => {
    const client = await searchClient();
    const found = await client.callTool({ name: 'search_tools', arguments: { query: 'echo text back', limit: 5 } });
    const names = found.structuredContent.tools.map((t) => t.name);
    assert.equal(names[0], 'demo__echo', `search ranking: ${JSON.stringify(found.structuredContent)}`);
    assert.match(text(found), /1\. demo__echo \(score [0-9.]+\)/);

    const described = await client.callTool({ name: 'describe_tool', arguments: { name: 'demo__echo' } });
    assert.equal(described.structuredContent.name, 'demo__echo');
    assert.ok(described.structuredContent.inputSchema?.properties?.text, `schema: ${JSON.stringify(described.structuredContent)}`);

    const echoed = await client.callTool({ name: 'call_tool', arguments: { name: 'demo__echo', arguments: { text: 'through call_tool' } } });
    assert.equal(text(echoed), 'through call_tool');

    await assert.rejects(
      client.callTool({ name: 'call_tool', arguments: { name: 'demo__no_such_tool' } }),
      (err) => err.code === -32602 && err.message.includes('demo__no_such_tool'),
    );
  });

  test('progress of a tool called through call_tool reaches onprogress', { timeout: 15000 }, async () => {
    const client = await searchClient();
    const progress = [];
    const result = await client.callTool(
      { name: 'call_tool', arguments: { name: 'conformance__test_tool_with_progress', arguments: {} } },
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
      `expected progress 0, 50, 100 of 100, got ${JSON.stringify(progress)}`,
    );
  });
});
