// End-to-end: `mcpbus connector` serving two servers the gateway cannot
// reach by itself, joined to the gateway as a NATS leaf node (outbound
// only). Only the connector knows them:
//   laptop_files  @modelcontextprotocol/server-everything over stdio, a
//                 program only the connector starts;
//   private_api   mcpbus's demo upstream over HTTP, whose URL and API key
//                 are in the connector's environment only.
// The gateway's config declares both with transport connector (public /
// internal and key rules are the gateway's), and holds neither URL nor key.
// A second connector, "impostor", claims private_api too; NATS must never
// give it a call. The official TypeScript SDK client drives the gateway.
//
//   MCPBUS_BIN=path/to/mcpbus   binary under test (default ../bin/mcpbus from e2e/)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';

import { freeLoopbackPort } from './lib/netcheck.mjs';
import { makeTempDir, mcpbusBin, removeTempDir, startProcess, stopProcess } from './lib/procs.mjs';
import { text, toolNames } from './lib/mcp.mjs';

const MASTER_KEY = `sk-e2e-master-${randomUUID()}`;
const PRIVATE_KEY = `private-key-${randomUUID()}`;
const LAPTOP_PASSWORD = `laptop-${randomUUID()}`;
const IMPOSTOR_PASSWORD = `impostor-${randomUUID()}`;
const USAGE_PASSWORD = `usage-${randomUUID()}`;
const SEP = '__';
const EXTERNAL = { 'x-forwarded-for': '203.0.113.9' }; // through the trusted proxy 127.0.0.1
const INTERNAL = { 'x-forwarded-for': '10.1.2.3' };

const require = createRequire(import.meta.url);
const EVERYTHING_MAIN = path.join(
  path.dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')),
  'dist',
  'index.js',
);

let tmp;
let bin;
let privateUpstream; // mcpbus demo-upstream, reachable from the connector only (by its environment)
let gateway;
let connector;
let impostor;
let gatewayURL;
let natsPort;
const clients = [];

async function connect(headers, endpoint = '/mcp') {
  const client = new Client({ name: 'mcpbus-e2e-connector', version: '0.0.0' }, { capabilities: {} });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${gatewayURL}${endpoint}`), { requestInit: { headers } }));
  clients.push(client);
  return client;
}

const master = (extra = INTERNAL) => ({ 'x-litellm-api-key': `Bearer ${MASTER_KEY}`, ...extra });

/** Starts a connector named name serving config's servers with env. */
function startConnector(name, config, env, extra = []) {
  return startProcess(
    bin,
    ['connector', '--hub', `nats-leaf://127.0.0.1:${natsPort.leaf}`, '--name', name, '--config', config, ...extra],
    { env: { PATH: process.env.PATH, ...env }, re: /^mcpbus connector \S+ joined nats-leaf:\/\/127\.0\.0\.1:\d+: serving (.+)$/, timeoutMs: 20000, name: `connector ${name}` },
  );
}

describe('mcpbus connector: servers only it reaches, through a leaf node', { timeout: 58000 }, () => {
  before(async () => {
    bin = mcpbusBin();
    tmp = await makeTempDir();
    privateUpstream = await startProcess(
      bin,
      ['demo-upstream', '--listen', '127.0.0.1:0', '--name', 'private', '--require-header', `x-api-key: ${PRIVATE_KEY}`],
      { env: process.env, re: /^demo upstream "private" listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)$/, name: 'private upstream' },
    );
    natsPort = { leaf: await freeLoopbackPort(), client: await freeLoopbackPort(), admin: await freeLoopbackPort() };

    const q = JSON.stringify;
    const gatewayConfig = path.join(tmp, 'gateway.yaml');
    await writeFile(
      gatewayConfig,
      [
        'general_settings:',
        '  master_key: os.environ/E2E_MASTER_KEY',
        '  use_x_forwarded_for: true',
        '  mcp_trusted_proxy_ranges: ["127.0.0.1/32"]',
        '  mcp_bus_users:',
        '    - {user: laptop, password: os.environ/E2E_LAPTOP_PW, roles: [connector], servers: [laptop_files, private_api]}',
        '    - {user: impostor, password: os.environ/E2E_IMPOSTOR_PW, roles: [connector], servers: [impostor_files]}',
        '    - {user: dash, password: os.environ/E2E_USAGE_PW, roles: [usage]}',
        'mcp_servers:',
        '  laptop_files: {transport: connector, available_on_public_internet: true, timeout: 20s}',
        '  private_api: {transport: connector, description: reachable from the laptop only}',
        '',
      ].join('\n'),
    );
    gateway = await startProcess(
      bin,
      ['serve', '--config', gatewayConfig, '--listen', '127.0.0.1:0', '--data', path.join(tmp, 'data'),
        '--nats-listen', `127.0.0.1:${natsPort.client}`, '--nats-leafnodes', `127.0.0.1:${natsPort.leaf}`],
      {
        env: { ...process.env, E2E_MASTER_KEY: MASTER_KEY, E2E_LAPTOP_PW: LAPTOP_PASSWORD, E2E_IMPOSTOR_PW: IMPOSTOR_PASSWORD, E2E_USAGE_PW: USAGE_PASSWORD },
        re: /mcpbus listening on (http:\/\/127\.0\.0\.1:\d+)/,
        timeoutMs: 20000,
        name: 'mcpbus serve',
      },
    );
    gatewayURL = gateway.match[1];

    const connectorConfig = path.join(tmp, 'connector.yaml');
    await writeFile(
      connectorConfig,
      [
        'mcp_servers:',
        '  laptop_files:',
        `    command: ${q(process.execPath)}`,
        `    args: [${q(EVERYTHING_MAIN)}, "stdio"]`,
        `    env: {PATH: ${q(process.env.PATH ?? '/usr/bin:/bin')}}`,
        '  private_api:',
        '    url: os.environ/PRIVATE_URL',
        '    auth_type: api_key',
        '    auth_value: os.environ/PRIVATE_KEY',
        // A built-in guard of the connector's own config runs on its
        // workers, on every server it serves (docs/GUARDS.md).
        'guardrails:',
        '  - guardrail_name: laptop-no-rm',
        "    litellm_params: {guardrail: mcpbus_block_patterns, mode: pre_mcp_call, default_on: true, patterns: ['rm\\s+-rf']}",
        '',
      ].join('\n'),
    );
    connector = await startConnector('laptop', connectorConfig, {
      MCPBUS_CONNECTOR_PASSWORD: LAPTOP_PASSWORD,
      PRIVATE_URL: privateUpstream.match[1],
      PRIVATE_KEY,
    }, ['--admin-listen', `127.0.0.1:${natsPort.admin}`]);
    assert.equal(connector.match[1], 'laptop_files,private_api');

    // The impostor claims "private_api" too, served by server-everything
    // (whose echo answers "Echo: ..." where the real one answers the text
    // alone). Its bus user may serve only impostor_files.
    const impostorConfig = path.join(tmp, 'impostor.yaml');
    await writeFile(
      impostorConfig,
      ['mcp_servers:', '  private_api:', `    command: ${q(process.execPath)}`, `    args: [${q(EVERYTHING_MAIN)}, "stdio"]`, ''].join('\n'),
    );
    impostor = promisify(execFile)(
      bin,
      ['connector', '--hub', `nats-leaf://127.0.0.1:${natsPort.leaf}`, '--name', 'impostor', '--config', impostorConfig],
      { env: { PATH: process.env.PATH, MCPBUS_CONNECTOR_PASSWORD: IMPOSTOR_PASSWORD }, timeout: 30000 },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (e) => ({ code: e.code, stderr: e.stderr }),
    );
  });

  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.allSettled([impostor, stopProcess(connector)]);
    await Promise.allSettled([stopProcess(gateway), stopProcess(privateUpstream)]);
    await removeTempDir(tmp);
  });

  test('an internal caller lists and calls both servers; progress streams back', { timeout: 20000 }, async () => {
    const client = await connect(master());
    const names = await toolNames(client);
    assert.ok(names.includes(`laptop_files${SEP}echo`), `laptop_files' tools missing: ${names}`);
    assert.ok(names.includes(`private_api${SEP}echo`), `private_api's tools missing: ${names}\n${connector.logs()}`);
    const files = await client.callTool({ name: `laptop_files${SEP}echo`, arguments: { message: 'from stdio' } });
    assert.equal(text(files), 'Echo: from stdio');
    const progress = [];
    const slow = await client.callTool(
      { name: `private_api${SEP}slow`, arguments: { steps: 3, seconds: 1 } },
      CallToolResultSchema,
      { onprogress: (p) => progress.push(p.progress), timeout: 15000 },
    );
    text(slow);
    assert.deepEqual(progress, [1, 2, 3], 'progress from a connector\'s server must reach the caller');
  });

  test('the connector\'s own guards run on its servers\' calls', { timeout: 15000 }, async () => {
    const client = await connect(master());
    const blocked = await client.callTool({ name: `private_api${SEP}echo`, arguments: { text: 'then rm -rf /' } }).then(
      (r) => r,
      (e) => e,
    );
    assert.ok(blocked instanceof Error, `a call the connector's guard blocks was answered: ${JSON.stringify(blocked)}`);
    assert.match(blocked.message, /laptop-no-rm/);
    const r = await client.callTool({ name: `private_api${SEP}echo`, arguments: { text: 'harmless' } });
    assert.equal(text(r), 'harmless');
  });

  test('a server\'s own endpoint /mcp/private_api reaches the connector directly', { timeout: 20000 }, async () => {
    // The ingress calls the worker itself here, not through the router:
    // the answer comes back on the POST's own reply subject.
    const client = await connect(master(), '/mcp/private_api');
    const r = await client.callTool({ name: 'echo', arguments: { text: 'direct' } });
    assert.equal(text(r), 'direct');
  });

  test('NATS refuses the impostor private_api: it stops, naming why; every call reaches the real one', { timeout: 30000 }, async () => {
    const { code, stderr } = await impostor;
    assert.equal(code, 1, `the impostor connector kept running: ${stderr}`);
    assert.match(stderr, /no answer for the gateway's records of private_api/);
    assert.match(stderr, /bus user impostor \(role connector\) must list them/);
    const client = await connect(master());
    for (let i = 0; i < 12; i++) {
      const r = await client.callTool({ name: `private_api${SEP}echo`, arguments: { text: `call ${i}` } });
      assert.equal(text(r), `call ${i}`, 'a call to private_api was not answered by the real upstream');
    }
  });

  test('an external caller sees only the public server', { timeout: 15000 }, async () => {
    const client = await connect(master(EXTERNAL));
    const names = await toolNames(client);
    assert.ok(names.includes(`laptop_files${SEP}echo`), `public laptop_files hidden from an external caller: ${names}`);
    assert.ok(!names.some((n) => n.startsWith(`private_api${SEP}`)), `internal-only private_api shown to an external caller: ${names}`);
  });

  test('a key limited to laptop_files cannot call private_api', { timeout: 15000 }, async () => {
    const res = await fetch(`${gatewayURL}/key/generate`, {
      method: 'POST',
      headers: { ...master(), 'content-type': 'application/json' },
      body: JSON.stringify({ key_alias: 'files-only', mcp_servers: ['laptop_files'] }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const { key } = await res.json();
    const client = await connect({ 'x-litellm-api-key': `Bearer ${key}`, ...INTERNAL });
    const names = await toolNames(client);
    assert.ok(names.includes(`laptop_files${SEP}echo`) && !names.some((n) => n.startsWith(`private_api${SEP}`)), `${names}`);
    const denied = await client.callTool({ name: `private_api${SEP}echo`, arguments: { text: 'x' } }).then(
      (r) => r,
      (e) => e,
    );
    assert.ok(denied instanceof Error || denied.isError, `the key called private_api: ${JSON.stringify(denied)}`);
  });

  test('the gateway holds neither URL nor key of the connector\'s servers', { timeout: 15000 }, async () => {
    const res = await fetch(`${gatewayURL}/v1/mcp/server`, { headers: master() });
    assert.equal(res.status, 200);
    const body = await res.text();
    assert.ok(body.includes('private_api'), body);
    const upstreamPort = new URL(privateUpstream.match[1]).port;
    for (const secret of [PRIVATE_KEY, `:${upstreamPort}`, EVERYTHING_MAIN]) {
      assert.ok(!body.includes(secret), `the gateway's server records hold ${secret}`);
      assert.ok(!gateway.logs().includes(secret), `the gateway logged ${secret}`);
    }
    assert.ok(!connector.logs().includes(LAPTOP_PASSWORD) && !connector.logs().includes(PRIVATE_KEY), 'the connector logged a secret');
  });

  test('the connector is ready while its link to the hub is up', { timeout: 10000 }, async () => {
    const res = await fetch(`http://127.0.0.1:${natsPort.admin}/health/readiness`);
    const body = await res.text();
    assert.equal(res.status, 200, body);
    assert.match(body, /"hub":"ok"/);
  });

  test('the connector\'s calls are in the usage stream', { timeout: 15000 }, async () => {
    const { stdout } = await promisify(execFile)(bin, ['usage', 'top', '--since', '5m', '--by', 'server', '--nats', `nats://127.0.0.1:${natsPort.client}`], {
      env: { PATH: process.env.PATH, MCPBUS_NATS_USER: 'dash', MCPBUS_NATS_PASSWORD: USAGE_PASSWORD },
      timeout: 10000,
    });
    assert.match(stdout, /private_api/, `no usage of private_api:\n${stdout}`);
    assert.match(stdout, /laptop_files/, `no usage of laptop_files:\n${stdout}`);
  });

  test('without its connector a server answers an error, never the impostor', { timeout: 20000 }, async () => {
    await stopProcess(connector);
    const client = await connect(master());
    const r = await client.callTool({ name: `private_api${SEP}echo`, arguments: { text: 'alone' } }).then(
      (x) => x,
      (e) => e,
    );
    const answered = !(r instanceof Error) && !r.isError;
    assert.ok(!answered, `private_api answered without its connector: ${JSON.stringify(r)}`);
    assert.ok(!JSON.stringify(r.message ?? r).includes('Echo: alone'), 'the impostor answered');
  });
});
