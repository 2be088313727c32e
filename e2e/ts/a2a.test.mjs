// End-to-end: the official `@a2a-js/sdk` (1.3.0) as both the upstream agent
// (its DefaultRequestHandler, an AgentExecutor, express's jsonRpcHandler and
// agentCardHandler, v0.3 compat on) and the client (ClientFactory, which
// fetches the card the gateway serves and calls where it points; and the
// SDK's v0.3 JSON-RPC transport), through the real `mcpbus serve` binary
// (issue 18, A2A agents). The agent is reached in both wires, a stream's
// events arrive as the agent sends them, a task is cancelled, a key without
// the agent is refused, and neither the agent's credential nor the caller's
// key goes where it must not.
//
//   MCPBUS_BIN=path/to/mcpbus   binary under test (default ../bin/mcpbus from e2e/)
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import express from 'express';
import { AgentEvent, DefaultRequestHandler, InMemoryTaskStore } from '@a2a-js/sdk/server';
import { agentCardHandler, jsonRpcHandler, UserBuilder } from '@a2a-js/sdk/server/express';
import { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver, JsonRpcTransportFactory } from '@a2a-js/sdk/client';
import { LegacyJsonRpcTransport } from '@a2a-js/sdk/compat/v0_3/client';

import { makeTempDir, mcpbusBin, removeTempDir, startProcess, stopProcess } from './lib/procs.mjs';

const MASTER_KEY = 'sk-e2e-a2a-master';
const AGENT_KEY = 'agent-credential-e2e-never-shown';

// TaskState and Role of the SDK's 1.0 types (proto enums).
const STATE = { SUBMITTED: 1, WORKING: 2, COMPLETED: 3, CANCELED: 5 };
const ROLE_USER = 1;

const text = (value) => ({ content: { $case: 'text', value } });
const message = (value, extra = {}) => ({
  messageId: `m-${Math.random().toString(16).slice(2)}`,
  role: ROLE_USER,
  parts: [text(value)],
  contextId: '',
  taskId: '',
  extensions: [],
  referenceTaskIds: [],
  metadata: undefined,
  ...extra,
});

/** A deferred promise. */
function later() {
  let resolve;
  const promise = new Promise((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/**
 * The upstream agent: "stream" sends a task and holds the rest until
 * release(); "wait" keeps its task working until it is cancelled;
 * anything else is echoed back as an artifact of a completed task.
 */
function startAgent() {
  const held = later();
  const waiting = new Map(); // task id -> resolve (cancelled)
  const auth = [];
  const executor = {
    async execute(ctx, bus) {
      const { taskId, contextId } = ctx;
      const said = ctx.userMessage.parts[0]?.content?.value ?? '';
      bus.publish(AgentEvent.task({ id: taskId, contextId, status: { state: STATE.SUBMITTED }, history: [ctx.userMessage], artifacts: [] }));
      if (said === 'wait') {
        bus.publish(AgentEvent.statusUpdate({ taskId, contextId, status: { state: STATE.WORKING } }));
        await new Promise((resolve) => waiting.set(taskId, resolve));
        bus.publish(AgentEvent.statusUpdate({ taskId, contextId, status: { state: STATE.CANCELED } }));
        bus.finished();
        return;
      }
      if (said === 'stream') await held.promise;
      bus.publish(
        AgentEvent.artifactUpdate({ taskId, contextId, artifact: { artifactId: 'a1', parts: [text(`echo: ${said}`)] }, append: false, lastChunk: true }),
      );
      bus.publish(AgentEvent.statusUpdate({ taskId, contextId, status: { state: STATE.COMPLETED } }));
      bus.finished();
    },
    async cancelTask(taskId) {
      waiting.get(taskId)?.();
    },
  };
  let url;
  const card = () => ({
    name: 'E2E agent',
    description: 'echoes',
    version: '1.0.0',
    supportedInterfaces: [
      { url, protocolBinding: 'JSONRPC', protocolVersion: '1.0', tenant: '' },
      { url, protocolBinding: 'JSONRPC', protocolVersion: '0.3', tenant: '' },
    ],
    capabilities: { streaming: true, extensions: [] },
    defaultInputModes: ['text'],
    defaultOutputModes: ['text'],
    skills: [],
    securitySchemes: {},
    securityRequirements: [],
    signatures: [],
  });
  const handler = new DefaultRequestHandler(card(), new InMemoryTaskStore(), executor);
  const app = express();
  app.use((req, _res, next) => {
    auth.push(req.headers.authorization ?? '');
    next();
  });
  app.use('/.well-known/agent-card.json', agentCardHandler({ agentCardProvider: { getAgentCard: async () => card() } }));
  app.use('/', jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication, legacyCompat: { enabled: true } }));
  return new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => {
      url = `http://127.0.0.1:${server.address().port}/`;
      resolve({ server, url, auth, release: held.resolve, cancelled: (id) => waiting.has(id) });
    });
  });
}

describe('@a2a-js/sdk as the agent and the client, through the gateway', { timeout: 60000 }, () => {
  let agent;
  let gateway;
  let tmp;
  let gw;
  const answers = []; // every body a client read, for the credential check

  /** fetch with key, recording the bodies (a stream's as it ends). */
  function fetchWith(key) {
    return async (url, init = {}) => {
      const headers = new Headers(init.headers);
      headers.set('Authorization', `Bearer ${key}`);
      const resp = await fetch(url, { ...init, headers });
      resp
        .clone()
        .text()
        .then((b) => answers.push(b))
        .catch(() => {});
      return resp;
    };
  }

  /** The SDK's client for agent, made from the card the gateway serves. */
  function clientFor(name, key = MASTER_KEY) {
    const fetchImpl = fetchWith(key);
    const factory = new ClientFactory(
      ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
        transports: [new JsonRpcTransportFactory({ fetchImpl })],
        cardResolver: new DefaultAgentCardResolver({ fetchImpl }),
      }),
    );
    return factory.createFromUrl(`${gw}/a2a/${name}/`); // the card is at .well-known/agent-card.json under it
  }

  before(async () => {
    const bin = mcpbusBin();
    tmp = await makeTempDir();
    agent = await startAgent();
    const config = path.join(tmp, 'config.yaml');
    await writeFile(
      config,
      [
        'general_settings:',
        '  master_key: os.environ/E2E_MASTER_KEY',
        'agents:',
        '  - agent_name: echo',
        `    agent_card_params: {name: Echo, description: echoes, url: "${agent.url}", protocolVersion: "1.0", capabilities: {streaming: true}}`,
        '    litellm_params: {api_key: os.environ/AGENT_KEY}',
        '  - agent_name: echo-legacy',
        `    agent_card_params: {name: Echo 0.3, url: "${agent.url}", protocolVersion: "0.3", capabilities: {streaming: true}}`,
        '    litellm_params: {api_key: os.environ/AGENT_KEY}',
        '',
      ].join('\n'),
    );
    gateway = await startProcess(
      bin,
      ['serve', '--config', config, '--listen', '127.0.0.1:0', '--data', path.join(tmp, 'data'), '--nats-listen', 'off'],
      {
        env: { ...process.env, E2E_MASTER_KEY: MASTER_KEY, AGENT_KEY },
        re: /mcpbus listening on (http:\/\/127\.0\.0\.1:\d+)/,
        timeoutMs: 20000,
        name: 'mcpbus serve',
      },
    );
    gw = gateway.match[1];
  });

  after(async () => {
    agent?.release();
    await stopProcess(gateway);
    await new Promise((resolve) => (agent ? agent.server.close(resolve) : resolve()));
    agent?.server.closeAllConnections?.();
    await removeTempDir(tmp);
  });

  test('the 1.0 client: the card, send, get, a stream as it comes, cancel', async () => {
    const client = await clientFor('echo');
    const card = await client.getAgentCard();
    assert.ok(card.supportedInterfaces.every((i) => i.url === `${gw}/a2a/echo`), `the card points at the gateway: ${JSON.stringify(card.supportedInterfaces)}`);

    const sent = await client.sendMessage({ message: message('hi') });
    assert.equal(sent.status.state, STATE.COMPLETED, JSON.stringify(sent));
    assert.equal(sent.artifacts[0].parts[0].content.value, 'echo: hi');
    const got = await client.getTask({ id: sent.id });
    assert.equal(got.id, sent.id);
    assert.equal(got.status.state, STATE.COMPLETED);

    // The agent holds everything after the task until the client has it.
    const events = client.sendMessageStream({ message: message('stream') });
    const first = await events.next();
    assert.equal(first.value.payload.$case, 'task', JSON.stringify(first.value));
    agent.release();
    const rest = [];
    for await (const ev of events) rest.push(ev.payload.$case);
    assert.deepEqual(rest, ['artifactUpdate', 'statusUpdate']);

    const waiting = await client.sendMessage({ message: message('wait'), configuration: { returnImmediately: true, acceptedOutputModes: [] } });
    assert.ok([STATE.SUBMITTED, STATE.WORKING].includes(waiting.status.state), JSON.stringify(waiting));
    const cancelled = await client.cancelTask({ id: waiting.id });
    assert.equal(cancelled.id, waiting.id);
  });

  test('a 0.3 client to an agent pinned to 1.0, and a 1.0 client to one pinned to 0.3', async () => {
    const legacy = new LegacyJsonRpcTransport({ endpoint: `${gw}/a2a/echo`, fetchImpl: fetchWith(MASTER_KEY) });
    const sent = await legacy.sendMessage({ message: message('from 0.3') });
    assert.equal(sent.payload?.$case ?? 'task', 'task');
    const task = sent.payload?.value ?? sent;
    assert.equal(task.status.state, STATE.COMPLETED, JSON.stringify(sent));
    assert.equal(task.artifacts[0].parts[0].content.value, 'echo: from 0.3');
    const got = await legacy.getTask({ id: task.id });
    assert.equal(got.status.state, STATE.COMPLETED);

    const client = await clientFor('echo-legacy');
    const res = await client.sendMessage({ message: message('to 0.3') });
    assert.equal(res.status.state, STATE.COMPLETED, JSON.stringify(res));
    assert.equal(res.artifacts[0].parts[0].content.value, 'echo: to 0.3');
    const kinds = [];
    const stream = client.sendMessageStream({ message: message('streamed to 0.3') });
    for await (const ev of stream) kinds.push(ev.payload.$case);
    assert.deepEqual(kinds, ['task', 'artifactUpdate', 'statusUpdate']);
  });

  test('a key without the agent is refused with the reason; credentials stay where they belong', async () => {
    const resp = await fetch(`${gw}/key/generate`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${MASTER_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ key_alias: 'e2e-a2a', object_permission: { agents: ['echo-legacy'] } }),
    });
    assert.equal(resp.status, 200, await resp.clone().text());
    const key = (await resp.json()).key;

    const calls = agent.auth.length;
    const legacy = new LegacyJsonRpcTransport({ endpoint: `${gw}/a2a/echo`, fetchImpl: fetchWith(key) });
    await assert.rejects(legacy.sendMessage({ message: message('denied') }), (err) => {
      assert.match(String(err.message), /agent "echo" is not allowed for your key/);
      return true;
    });
    await assert.rejects(clientFor('echo', key), /403/);
    assert.equal(agent.auth.length, calls, 'a denied call reached the agent');
    const allowed = await (await clientFor('echo-legacy', key)).sendMessage({ message: message('allowed') });
    assert.equal(allowed.status.state, STATE.COMPLETED);

    assert.ok(agent.auth.length > 0);
    for (const a of agent.auth) assert.equal(a, `Bearer ${AGENT_KEY}`, 'the agent got something other than its own credential');
    for (const body of answers) assert.ok(!body.includes(AGENT_KEY), 'an answer carried the agent credential');
    assert.ok(!gateway.logs().includes(AGENT_KEY), 'the gateway logged the agent credential');
    assert.ok(!gateway.logs().includes(key), 'the gateway logged a caller key');
  });
});
