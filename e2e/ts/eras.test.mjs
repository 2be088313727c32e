// End-to-end: MCP 2025-11-25 and 2026-07-28 on one running gateway, each
// client calling an upstream of the other era (issue 17, "real clients of
// both eras"). The TypeScript SDK client (1.32.2, which speaks 2025-11-25 at
// most) holds a session and calls a server of the new era alone, which asks
// for input by an input_required result: the gateway asks the client on its
// call's stream (elicitation/create) and retries. The official Go SDK client
// (go-sdk v1.8.0, 2026-07-28, no session; bin/e2eclient) calls a server that
// asks on a session (elicitation/create): the gateway parks the upstream call
// and answers input_required; the client retries with its answer.
//
//   MCPBUS_BIN=path/to/mcpbus           binary under test (default ../bin/mcpbus from e2e/)
//   MCPBUS_E2E_GOCLIENT=path/to/client  the Go client (default ../bin/e2eclient from e2e/)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

import { makeTempDir, mcpbusBin, removeTempDir, startProcess, stopProcess } from './lib/procs.mjs';
import { text } from './lib/mcp.mjs';

const MASTER_KEY = 'sk-e2e-eras-master';

function goClientBin() {
  const bin = process.env.MCPBUS_E2E_GOCLIENT
    ? path.resolve(process.env.MCPBUS_E2E_GOCLIENT)
    : path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'e2eclient');
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(`the Go e2e client is not at ${bin} (make e2e builds it, or set MCPBUS_E2E_GOCLIENT)`);
  }
  return bin;
}

/** Runs the Go SDK client once: its one JSON line. */
async function goCall(endpoint, tool, { args = {}, answer = '' } = {}) {
  const { stdout } = await promisify(execFile)(
    goClientBin(),
    ['-endpoint', endpoint, '-tool', tool, '-args', JSON.stringify(args), '-answer', answer],
    { env: { ...process.env, MCPBUS_KEY: MASTER_KEY }, timeout: 40000 },
  );
  return JSON.parse(stdout);
}

describe('MCP 2025-11-25 and 2026-07-28 clients on one gateway, each across eras', { timeout: 110000 }, () => {
  let old; // demo upstream on sessions (2025-11-25)
  let fresh; // demo upstream of 2026-07-28 alone
  let gateway;
  let tmp;
  let gw;
  const clients = [];
  const asked = [];

  /** A TypeScript SDK client that answers elicitations with name. */
  async function tsClient(url, name) {
    const client = new Client({ name: 'mcpbus-e2e-ts', version: '0.0.0' }, { capabilities: { elicitation: {} } });
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked.push(req.params.message);
      return { action: 'accept', content: { name } };
    });
    const transport = new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { Authorization: `Bearer ${MASTER_KEY}` } },
    });
    await client.connect(transport);
    clients.push(client);
    return { client, transport };
  }

  before(async () => {
    const bin = mcpbusBin();
    goClientBin(); // fail early, naming what is missing
    tmp = await makeTempDir();
    const demo = (name, extra) =>
      startProcess(bin, ['demo-upstream', '--listen', '127.0.0.1:0', '--name', name, ...extra], {
        env: process.env,
        re: new RegExp(`^demo upstream "${name}" listening on (http://127\\.0\\.0\\.1:\\d+/mcp)$`),
        name: `demo-upstream ${name}`,
      });
    [old, fresh] = await Promise.all([demo('old', []), demo('fresh', ['--era', '2026-07-28'])]);
    const config = path.join(tmp, 'config.yaml');
    await writeFile(
      config,
      [
        'general_settings:',
        '  master_key: os.environ/E2E_MASTER_KEY',
        'mcp_servers:',
        `  old: {url: ${old.match[1]}}`,
        `  fresh: {url: ${fresh.match[1]}}`,
        '',
      ].join('\n'),
    );
    gateway = await startProcess(
      bin,
      ['serve', '--config', config, '--listen', '127.0.0.1:0', '--data', path.join(tmp, 'data'), '--nats-listen', 'off'],
      {
        env: { ...process.env, E2E_MASTER_KEY: MASTER_KEY },
        re: /mcpbus listening on (http:\/\/127\.0\.0\.1:\d+)/,
        timeoutMs: 20000,
        name: 'mcpbus serve',
      },
    );
    gw = gateway.match[1];
  });

  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.allSettled([stopProcess(gateway), stopProcess(old), stopProcess(fresh)]);
    await removeTempDir(tmp);
  });

  test('the 2025-11-25 TypeScript client calls the 2026-07-28 server, answering its input_required', { timeout: 30000 }, async () => {
    const { client, transport } = await tsClient(`${gw}/mcp/fresh`, 'Grace');
    assert.ok(transport.sessionId, 'the TypeScript client should hold a 2025-11-25 session with the gateway');
    assert.equal(transport.protocolVersion, '2025-11-25', 'the TypeScript client should speak 2025-11-25');
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { text: 'across eras' } })), 'across eras');
    asked.length = 0;
    assert.equal(text(await client.callTool({ name: 'ask', arguments: {} })), 'hello, Grace');
    assert.deepEqual(asked, ['What is your name?'], 'the upstream\'s input request should reach the client as elicitation/create');

    const { client: all } = await tsClient(`${gw}/mcp`, 'Linus');
    assert.equal(text(await all.callTool({ name: 'fresh__ask', arguments: {} })), 'hello, Linus', 'and on aggregated /mcp');
  });

  test('the 2026-07-28 Go client calls the 2025-11-25 server, with no session, answering by input_required', { timeout: 60000 }, async () => {
    const got = await goCall(`${gw}/mcp/old`, 'ask', { answer: 'Ada' });
    assert.equal(got.protocolVersion, '2026-07-28', `the Go client should speak 2026-07-28: ${JSON.stringify(got)}`);
    assert.equal(got.session, '', 'the Go client should hold no session');
    assert.equal(got.elicited, 'What is your name?', 'the upstream\'s elicitation should reach the Go client');
    assert.equal(got.text, 'hello, Ada');
    assert.equal(got.isError, false);

    const echo = await goCall(`${gw}/mcp`, 'old__echo', { args: { text: 'from the new era' } });
    assert.equal(echo.text, 'from the new era', 'and on aggregated /mcp');
    const same = await goCall(`${gw}/mcp/fresh`, 'ask', { answer: 'Edsger' });
    assert.equal(same.text, 'hello, Edsger', 'a 2026-07-28 server passes input_required straight through');
  });
});
