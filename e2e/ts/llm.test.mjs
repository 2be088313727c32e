// End-to-end: the official `openai` npm SDK against the LLM routes of a
// running gateway (issue 18), whose deployments are on `mcpbus fake-llm`, a
// local provider speaking OpenAI's wire (providers cannot be reached from
// here). The SDK lists the models its key may use, gets a chat answer as
// JSON and as a stream, embeddings, and is refused a model its key may not
// use with LiteLLM's 403; the provider key never shows in an answer or a
// log. Then the payoff: responses.create with the gateway's /mcp as an MCP
// tool, the scripted model calling the demo upstream's echo, which the
// gateway runs on the bus.
//
//   MCPBUS_BIN=path/to/mcpbus   binary under test (default ../bin/mcpbus from e2e/)
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { makeTempDir, mcpbusBin, removeTempDir, startProcess, stopProcess } from './lib/procs.mjs';

const MASTER_KEY = 'sk-e2e-llm-master';
const PROVIDER_KEY = 'sk-e2e-provider-key-never-shown';

describe('the openai SDK against the LLM routes', { timeout: 60000 }, () => {
  let provider;
  let demo;
  let gateway;
  let tmp;
  let gw;
  const answers = []; // every body the SDK read, for the key check

  /** An SDK client with key, recording the bodies it reads. */
  function sdk(key) {
    return new OpenAI({
      baseURL: `${gw}/v1`,
      apiKey: key,
      maxRetries: 0,
      fetch: async (url, init) => {
        const resp = await fetch(url, init);
        const body = await resp.clone().text();
        answers.push(body);
        return resp;
      },
    });
  }

  before(async () => {
    const bin = mcpbusBin();
    tmp = await makeTempDir();
    provider = await startProcess(bin, ['fake-llm', '--listen', '127.0.0.1:0', '--api-key-env', 'FAKE_LLM_KEY'], {
      env: { ...process.env, FAKE_LLM_KEY: PROVIDER_KEY },
      re: /fake LLM provider listening on (http:\/\/127\.0\.0\.1:\d+)/,
      name: 'mcpbus fake-llm',
    });
    const base = provider.match[1];
    demo = await startProcess(bin, ['demo-upstream', '--listen', '127.0.0.1:0', '--name', 'demo'], {
      env: process.env,
      re: /^demo upstream "demo" listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)$/,
      name: 'demo-upstream',
    });
    const config = path.join(tmp, 'config.yaml');
    await writeFile(
      config,
      [
        'general_settings:',
        '  master_key: os.environ/E2E_MASTER_KEY',
        'mcp_servers:',
        `  demo: {url: ${demo.match[1]}}`,
        'model_list:',
        `  - {model_name: gpt-4o, litellm_params: {model: openai/fake-gpt, api_base: ${base}/v1, api_key: os.environ/PROVIDER_KEY}}`,
        `  - {model_name: gpt-4o, litellm_params: {model: openai/fake-gpt-2, api_base: ${base}/v1, api_key: os.environ/PROVIDER_KEY}}`,
        `  - {model_name: private, litellm_params: {model: azure/private-deployment, api_base: ${base}, api_version: "2024-10-21", api_key: os.environ/PROVIDER_KEY}}`,
        '',
      ].join('\n'),
    );
    gateway = await startProcess(
      bin,
      ['serve', '--config', config, '--listen', '127.0.0.1:0', '--data', path.join(tmp, 'data'), '--nats-listen', 'off'],
      {
        env: { ...process.env, E2E_MASTER_KEY: MASTER_KEY, PROVIDER_KEY },
        re: /mcpbus listening on (http:\/\/127\.0\.0\.1:\d+)/,
        timeoutMs: 20000,
        name: 'mcpbus serve',
      },
    );
    gw = gateway.match[1];
  });

  after(async () => {
    await Promise.allSettled([stopProcess(gateway), stopProcess(provider), stopProcess(demo)]);
    await removeTempDir(tmp);
  });

  /** A virtual key limited to models, made through the admin API. */
  async function keyFor(models) {
    const resp = await fetch(`${gw}/key/generate`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${MASTER_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ key_alias: 'e2e-llm', models }),
    });
    assert.equal(resp.status, 200, await resp.clone().text());
    return (await resp.json()).key;
  }

  test('models, chat, a stream, and a model the key may not use', async () => {
    const master = sdk(MASTER_KEY);
    const all = [];
    for await (const m of master.models.list()) all.push(m.id);
    assert.deepEqual(all, ['gpt-4o', 'private']);

    const client = sdk(await keyFor(['gpt-4o']));
    const mine = [];
    for await (const m of client.models.list()) mine.push(m.id);
    assert.deepEqual(mine, ['gpt-4o'], 'a key sees only the models it may use');

    const res = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello from npm' }] });
    assert.equal(res.choices[0].message.content, 'echo: hello from npm');
    assert.ok(res.usage.total_tokens > 0, 'usage comes through');

    const stream = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'stream to the npm sdk' }],
      stream: true,
    });
    let text = '';
    let chunks = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      chunks++;
    }
    assert.equal(text, 'echo: stream to the npm sdk');
    assert.ok(chunks >= 5, `chunks relayed one by one (${chunks})`);

    await assert.rejects(
      client.chat.completions.create({ model: 'private', messages: [{ role: 'user', content: 'hi' }] }),
      (err) => {
        assert.ok(err instanceof OpenAI.PermissionDeniedError, `a 403 PermissionDeniedError, got ${err}`);
        assert.equal(err.status, 403);
        assert.equal(err.error?.type, 'key_model_access_denied');
        assert.equal(err.error?.code, '403');
        return true;
      },
    );
    await assert.rejects(
      client.chat.completions.create({ model: 'nowhere', messages: [{ role: 'user', content: 'hi' }] }),
      (err) => err instanceof OpenAI.NotFoundError && err.status === 404,
    );

    for (const body of answers) assert.ok(!body.includes(PROVIDER_KEY), 'an answer carried the provider key');
    assert.ok(!gateway.logs().includes(PROVIDER_KEY), 'the gateway logged the provider key');
  });

  test('responses.create runs the gateway\'s MCP tools with any model', async () => {
    const client = sdk(MASTER_KEY);
    const res = await client.responses.create({
      model: 'gpt-4o',
      input: 'please call demo__echo with {"text":"from npm through mcp"}',
      tools: [{ type: 'mcp', server_label: 'mcpbus', server_url: `${gw}/mcp`, require_approval: 'never' }],
    });
    assert.deepEqual(res.output.map((o) => o.type), ['mcp_list_tools', 'mcp_call', 'message']);
    assert.ok(res.output[0].tools.some((t) => t.name === 'demo__echo'), 'the listing has the demo server\'s echo');
    assert.equal(res.output[1].name, 'demo__echo');
    assert.equal(res.output[1].output, 'from npm through mcp');
    assert.equal(res.output_text, 'tool result: from npm through mcp');

    const emb = await client.embeddings.create({ model: 'gpt-4o', input: 'embed me' });
    assert.equal(emb.data.length, 1);
    assert.ok(emb.data[0].embedding.length > 0);
  });
});
