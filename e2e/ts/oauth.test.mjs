// End-to-end: the official MCP TypeScript SDK client signs in to mcpbus with
// OAuth 2.1, as the MCP authorization spec has it, against a real identity
// provider (`mcpbus dev-idp`, zitadel/oidc). The client holds no gateway key:
// it gets 401, reads the gateway's protected resource metadata (RFC 9728),
// the provider's metadata (RFC 8414), registers itself (RFC 7591), sends the
// user through the authorization endpoint with PKCE and the gateway as the
// resource (RFC 8707), and connects with the token. The test plays the user:
// it signs in on the provider's login page with fetch and reads the code off
// the redirect to the client's loopback redirect URI (nothing listens there).
//
// Two demo upstreams, eng-tools and ops-tools, stand behind the gateway, each
// behind a recording proxy in this process that keeps the headers the gateway
// sends upstream. Teams eng and ops (the users' groups) may each use one.
//
//   MCPBUS_BIN=path/to/mcpbus   binary under test (default ../bin/mcpbus from e2e/)
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { UnauthorizedError, exchangeAuthorization, startAuthorization } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

import { freeLoopbackPort } from './lib/netcheck.mjs';
import { makeTempDir, mcpbusBin, removeTempDir, startProcess, stopProcess } from './lib/procs.mjs';
import { text, toolNames } from './lib/mcp.mjs';

const MASTER_KEY = `sk-e2e-master-${randomUUID()}`;
const ENG_UPSTREAM_KEY = `eng-upstream-${randomUUID()}`;
const SEP = '__';
const USERS = {
  alice: { password: `alice-${randomUUID()}`, groups: ['eng'] },
  bob: { password: `bob-${randomUUID()}`, groups: ['ops'] },
  carol: { password: `carol-${randomUUID()}`, groups: ['sales'] }, // no team of that id
};

let tmp;
let idp; // mcpbus dev-idp
let eng; // mcpbus demo-upstream --name eng-tools
let ops; // mcpbus demo-upstream --name ops-tools
let gateway; // mcpbus serve
let issuer; // the provider's issuer URL
let resource; // the gateway's public URL (mcp_oauth.resource)
let mcpURL; // its aggregated MCP endpoint
let demoTools; // the demo upstream's tool names
const proxies = [];
const clients = [];
// Every token and credential the test saw, to look for in the gateway's logs.
const secrets = new Set();

/**
 * The OAuthClientProvider of an MCP client that keeps everything in memory:
 * a public client (token_endpoint_auth_method none) on a loopback redirect
 * URI; redirectToAuthorization only records where the user would be sent.
 */
class MemoryProvider {
  constructor(redirectUrl) {
    this.redirectUrl = redirectUrl;
    this.clientMetadata = {
      client_name: 'mcpbus e2e (TypeScript SDK)',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      // offline_access asks the provider for a refresh token (OpenID Connect).
      scope: 'openid offline_access',
    };
    this.client = undefined;
    this.stored = undefined;
    this.saved = []; // every token set saveTokens was given, in order
    this.verifier = undefined;
    this.authorizationUrl = undefined;
  }

  clientInformation() {
    return this.client;
  }

  saveClientInformation(info) {
    this.client = info;
  }

  tokens() {
    return this.stored;
  }

  saveTokens(tokens) {
    for (const t of [tokens.access_token, tokens.refresh_token, tokens.id_token]) if (t) secrets.add(t);
    this.stored = tokens;
    this.saved.push(tokens);
  }

  redirectToAuthorization(url) {
    this.authorizationUrl = new URL(url);
  }

  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }

  codeVerifier() {
    return this.verifier;
  }
}

/** The payload of a JWT, unverified. */
function claims(jwt) {
  const parts = jwt.split('.');
  assert.equal(parts.length, 3, 'the access token should be a JWT');
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
}

/** jwt with its signature altered (the signature's first byte flipped). */
function tamper(jwt) {
  const i = jwt.lastIndexOf('.');
  const sig = Buffer.from(jwt.slice(i + 1), 'base64url');
  sig[0] ^= 0xff;
  return `${jwt.slice(0, i + 1)}${sig.toString('base64url')}`;
}

/**
 * Plays the user in a browser: opens the authorization URL, signs in on the
 * provider's login page and follows the provider's redirects (never off the
 * provider) until one goes to the client's redirect URI; returns the code.
 */
async function signIn(authorizationUrl, redirectUrl, username, password) {
  const idpOrigin = new URL(issuer).origin;
  assert.equal(authorizationUrl.origin, idpOrigin, 'the client should be sent to the provider to sign in');
  let res = await fetch(authorizationUrl, { redirect: 'manual' });
  assert.ok([302, 303].includes(res.status), `authorization endpoint: want a redirect to the login page, got ${res.status}: ${await res.text()}`);
  const loginURL = new URL(res.headers.get('location'), authorizationUrl);
  res = await fetch(loginURL);
  const page = await res.text();
  assert.equal(res.status, 200, `login page: ${page}`);
  const id = page.match(/<input type="hidden" name="id" value="([^"]+)">/)?.[1];
  assert.ok(id, `no sign-in request id on the login page: ${page}`);
  const action = new URL(page.match(/<form method="post" action="([^"]+)">/)[1], loginURL);
  res = await fetch(action, { method: 'POST', body: new URLSearchParams({ id, username, password }), redirect: 'manual' });
  for (let hop = 0; hop < 5; hop++) {
    assert.ok([302, 303].includes(res.status), `sign-in: want a redirect, got ${res.status}: ${await res.text()}`);
    const next = new URL(res.headers.get('location'), res.url || action);
    if (next.href.startsWith(`${redirectUrl}?`)) {
      assert.equal(next.searchParams.get('error'), null, `the provider refused: ${next.href}`);
      const state = authorizationUrl.searchParams.get('state');
      if (state !== null) assert.equal(next.searchParams.get('state'), state, 'state should come back unchanged');
      const code = next.searchParams.get('code');
      assert.ok(code, `no code in ${next.href}`);
      return code;
    }
    assert.equal(next.origin, idpOrigin, `sign-in left the provider for ${next.href}`);
    res = await fetch(next, { redirect: 'manual' });
  }
  throw new Error('sign-in: too many redirects');
}

async function redirectURI() {
  return `http://127.0.0.1:${await freeLoopbackPort()}/callback`;
}

function connectWith(provider, url = mcpURL) {
  const client = new Client({ name: 'mcpbus-e2e-oauth', version: '0.0.0' });
  clients.push(client);
  return client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider })).then(() => client);
}

/**
 * The whole first sign-in of a new MCP client to url: connect without a
 * credential (the SDK discovers, registers and sends the user to the
 * provider), sign in, finish with the code, connect again. Returns
 * { client, provider }.
 */
async function signInAs(user, url = mcpURL) {
  const provider = new MemoryProvider(await redirectURI());
  const first = new Client({ name: 'mcpbus-e2e-oauth', version: '0.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  await assert.rejects(first.connect(transport), UnauthorizedError, 'without a token the SDK should stop to send the user to sign in');
  assert.ok(provider.client?.client_id, 'the SDK should have registered a client dynamically');
  assert.ok(provider.authorizationUrl, 'the SDK should have asked to send the user to the authorization endpoint');
  assert.equal(provider.authorizationUrl.searchParams.get('resource'), url,
    'the authorization request should name the MCP endpoint as the resource (RFC 8707), as its metadata says');
  const code = await signIn(provider.authorizationUrl, provider.redirectUrl, user, USERS[user].password);
  await transport.finishAuth(code);
  await first.close();
  assert.ok(provider.stored?.access_token, 'finishAuth should have stored tokens');
  return { client: await connectWith(provider, url), provider };
}

/** A recording HTTP proxy on loopback in front of target: every request's headers. */
async function recordingProxy(target) {
  const to = new URL(target);
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, headers: { ...req.headers } });
    const up = http.request(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy()); // the gateway closed an SSE stream
    req.pipe(up);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy = { url: `http://127.0.0.1:${server.address().port}${to.pathname}`, seen, server };
  proxies.push(proxy);
  return proxy;
}

/** A raw MCP initialize POST to the gateway with these headers. */
function postInitialize(headers = {}) {
  return fetch(mcpURL, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
    }),
  });
}

/** The auth-params of a Bearer WWW-Authenticate challenge. */
function challengeParams(header) {
  assert.ok(header?.startsWith('Bearer '), `want a Bearer challenge, got ${header}`);
  return Object.fromEntries([...header.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
}

describe('the TypeScript SDK signs in to mcpbus with OAuth 2.1 (mcpbus dev-idp)', { timeout: 55000 }, () => {
  before(async () => {
    const bin = mcpbusBin();
    tmp = await makeTempDir();
    const idpConfig = path.join(tmp, 'idp.yaml');
    const q = JSON.stringify;
    await writeFile(
      idpConfig,
      [
        'users:',
        ...Object.entries(USERS).map(([id, u]) => `  - {id: ${id}, email: ${id}@example.test, password: ${q(u.password)}, groups: ${q(u.groups)}}`),
        'clients:',
        '  - {id: mcp-client, redirect_uris: ["http://127.0.0.1/callback"]}',
        '',
      ].join('\n'),
    );
    [idp, eng, ops] = await Promise.all([
      startProcess(bin, ['dev-idp', '--addr', '127.0.0.1:0', '--config', idpConfig], {
        env: process.env,
        re: /^test identity provider listening on (http:\/\/127\.0\.0\.1:\d+) /,
        name: 'dev-idp',
      }),
      startProcess(
        bin,
        ['demo-upstream', '--listen', '127.0.0.1:0', '--name', 'eng-tools', '--require-header', `x-api-key: ${ENG_UPSTREAM_KEY}`],
        { env: process.env, re: /^demo upstream "eng-tools" listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)$/, name: 'eng-tools' },
      ),
      startProcess(bin, ['demo-upstream', '--listen', '127.0.0.1:0', '--name', 'ops-tools'], {
        env: process.env,
        re: /^demo upstream "ops-tools" listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)$/,
        name: 'ops-tools',
      }),
    ]);
    issuer = idp.match[1];
    const [engProxy, opsProxy] = await Promise.all([recordingProxy(eng.match[1]), recordingProxy(ops.match[1])]);

    // The gateway's URL goes into its config (mcp_oauth.resource), so its
    // port is chosen here.
    const port = await freeLoopbackPort();
    resource = `http://127.0.0.1:${port}`;
    mcpURL = `${resource}/mcp`;
    const config = path.join(tmp, 'config.yaml');
    await writeFile(
      config,
      [
        'general_settings:',
        '  master_key: os.environ/E2E_MASTER_KEY',
        '  enable_jwt_auth: true',
        '  litellm_jwtauth:',
        '    team_ids_jwt_field: groups',
        '    issuers:',
        `      - issuer: ${issuer}`,
        '  mcp_oauth:',
        `    resource: ${resource}`,
        'mcp_servers:',
        '  eng-tools:',
        `    url: ${engProxy.url}`,
        '    transport: http',
        '    auth_type: api_key',
        '    auth_value: os.environ/E2E_ENG_UPSTREAM_KEY',
        '  ops-tools:',
        `    url: ${opsProxy.url}`,
        '    transport: http',
        // Even told to forward the client's Authorization, the gateway
        // must not pass its OAuth token on (no token passthrough).
        '    extra_headers: [Authorization]',
        '',
      ].join('\n'),
    );
    gateway = await startProcess(
      bin,
      ['serve', '--config', config, '--listen', `127.0.0.1:${port}`, '--data', path.join(tmp, 'data'),
        '--nats-listen', 'off', '--log-level', 'debug'],
      {
        env: { ...process.env, E2E_MASTER_KEY: MASTER_KEY, E2E_ENG_UPSTREAM_KEY: ENG_UPSTREAM_KEY },
        re: /mcpbus listening on (http:\/\/127\.0\.0\.1:\d+)/,
        timeoutMs: 20000,
        name: 'mcpbus serve',
      },
    );
    assert.equal(gateway.match[1], resource);

    for (const team of [
      { team_id: 'eng', mcp_servers: ['eng-tools'] },
      { team_id: 'ops', mcp_servers: ['ops-tools'] },
    ]) {
      const res = await fetch(`${resource}/team/new`, {
        method: 'POST',
        headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(team),
      });
      assert.equal(res.status, 200, `POST /team/new ${team.team_id}: ${await res.text()}`);
    }

    const direct = new Client({ name: 'mcpbus-e2e-oauth', version: '0.0.0' });
    await direct.connect(new StreamableHTTPClientTransport(new URL(ops.match[1])));
    demoTools = await toolNames(direct);
    await direct.close();
    assert.ok(demoTools.includes('echo'), `the demo upstream should have echo: ${demoTools}`);
  });

  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.allSettled([stopProcess(gateway), stopProcess(idp), stopProcess(eng), stopProcess(ops)]);
    for (const p of proxies) {
      p.server.close();
      p.server.closeAllConnections();
    }
    await removeTempDir(tmp);
  });

  test('no credential: 401 pointing at the protected resource metadata, which names the provider', { timeout: 10000 }, async () => {
    const res = await postInitialize();
    await res.body?.cancel();
    assert.equal(res.status, 401);
    const params = challengeParams(res.headers.get('www-authenticate'));
    assert.equal(params.resource_metadata, `${resource}/.well-known/oauth-protected-resource/mcp`);
    assert.equal(params.error, undefined, 'no token was sent, so no error should be named (RFC 6750 §3.1)');

    const meta = await (await fetch(params.resource_metadata)).json();
    assert.equal(meta.resource, `${resource}/mcp`);
    assert.deepEqual(meta.authorization_servers, [issuer]);
  });

  let alice;
  test('alice (group eng) signs in through the SDK and sees only eng-tools', { timeout: 15000 }, async () => {
    alice = await signInAs('alice');
    const { client, provider } = alice;
    const token = provider.stored.access_token;
    const c = claims(token);
    assert.equal(c.iss, issuer);
    assert.equal(c.sub, 'alice');
    assert.deepEqual([c.aud].flat(), [`${resource}/mcp`], 'the token should be for the gateway: the SDK sent resource (RFC 8707)');
    assert.ok(provider.stored.refresh_token, 'offline_access should have brought a refresh token');

    assert.deepEqual((await toolNames(client)).sort(), demoTools.map((t) => `eng-tools${SEP}${t}`).sort());
    const echo = await client.callTool({ name: `eng-tools${SEP}echo`, arguments: { text: 'alice via OAuth' } });
    assert.equal(text(echo), 'alice via OAuth');
    await assert.rejects(
      client.callTool({ name: `ops-tools${SEP}echo`, arguments: { text: 'not for alice' } }),
      /unknown tool "ops-tools__echo"/,
      'alice should not reach ops-tools',
    );
  });

  test('bob (group ops) signs in the same way and sees only ops-tools', { timeout: 15000 }, async () => {
    const { client, provider } = await signInAs('bob');
    assert.equal(claims(provider.stored.access_token).sub, 'bob');
    assert.deepEqual((await toolNames(client)).sort(), demoTools.map((t) => `ops-tools${SEP}${t}`).sort());
    const echo = await client.callTool({ name: `ops-tools${SEP}echo`, arguments: { text: 'bob via OAuth' } });
    assert.equal(text(echo), 'bob via OAuth');
  });

  test('bob signs in at the per-server URL /mcp/ops-tools (path-aware metadata), and may not use /mcp/eng-tools', { timeout: 15000 }, async () => {
    const url = `${resource}/mcp/ops-tools`;
    const { client, provider } = await signInAs('bob', url);
    assert.deepEqual([claims(provider.stored.access_token).aud].flat(), [url]);
    assert.deepEqual((await toolNames(client)).sort(), [...demoTools].sort(), 'one server: bare names');
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { text: 'bob at ops-tools' } })), 'bob at ops-tools');
    // The token is for the gateway (aud under mcp_oauth.resource); what bob
    // may use is his team's business.
    await assert.rejects(connectWith(provider, `${resource}/mcp/eng-tools`), /may not use MCP server 'eng-tools'/);
  });

  test('carol (group sales, no such team) signs in but is refused with 403 and the reason', { timeout: 15000 }, async () => {
    await assert.rejects(signInAs('carol'), (err) => {
      assert.ok(err instanceof StreamableHTTPError, `want an HTTP error, got ${err}`);
      assert.equal(err.code, 403);
      assert.match(err.message, /OAuth user 'carol' is in no team of this gateway \(the token names 'sales'\)/);
      return true;
    });
  });

  test('refused tokens: 401 with error="invalid_token" and the reason', { timeout: 15000 }, async () => {
    const good = alice.provider.stored.access_token;
    const cases = [
      ['garbage', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.garbage', /not a signed JWT/],
      ['a bad signature', tamper(good), /signature does not verify/],
    ];
    // A real token of the same provider and user, for another resource:
    // the same client signs alice in again, naming another resource.
    const metaRes = await fetch(`${issuer}/.well-known/oauth-authorization-server`);
    const metadata = await metaRes.json();
    const other = 'http://127.0.0.1:9/elsewhere';
    const { authorizationUrl, codeVerifier } = await startAuthorization(issuer, {
      metadata,
      clientInformation: alice.provider.client,
      redirectUrl: alice.provider.redirectUrl,
      scope: 'openid',
      resource: new URL(other),
    });
    const code = await signIn(authorizationUrl, alice.provider.redirectUrl, 'alice', USERS.alice.password);
    const elsewhere = await exchangeAuthorization(issuer, {
      metadata,
      clientInformation: alice.provider.client,
      authorizationCode: code,
      codeVerifier,
      redirectUri: alice.provider.redirectUrl,
      resource: new URL(other),
    });
    secrets.add(elsewhere.access_token);
    assert.deepEqual([claims(elsewhere.access_token).aud].flat(), [other]);
    cases.push(['another resource\'s', elsewhere.access_token, /not for this resource/]);

    for (const [what, token, reason] of cases) {
      secrets.add(token);
      const res = await postInitialize({ authorization: `Bearer ${token}` });
      const body = await res.text();
      assert.equal(res.status, 401, `${what} token: ${body}`);
      const params = challengeParams(res.headers.get('www-authenticate'));
      assert.equal(params.error, 'invalid_token', `${what} token`);
      assert.match(params.error_description, reason, `${what} token`);
      assert.equal(params.resource_metadata, `${resource}/.well-known/oauth-protected-resource/mcp`, `${what} token`);
    }
  });

  test('a refused access token makes the SDK refresh, and the new one is accepted', { timeout: 15000 }, async () => {
    // An expired token is refused exactly as this one is (401, invalid_token);
    // waiting out a lifetime and the gateway's 60 s leeway would take minutes.
    const { provider } = alice;
    const old = provider.stored;
    provider.stored = { ...old, access_token: tamper(old.access_token) };
    secrets.add(provider.stored.access_token);
    const saves = provider.saved.length;

    const client = await connectWith(provider);
    assert.equal(provider.saved.length, saves + 1, 'the SDK should have saved refreshed tokens once');
    const fresh = provider.stored;
    assert.notEqual(fresh.access_token, old.access_token);
    assert.notEqual(fresh.refresh_token, old.refresh_token, 'dev-idp rotates refresh tokens');
    assert.deepEqual([claims(fresh.access_token).aud].flat(), [`${resource}/mcp`], 'the refresh should name the resource too');
    assert.equal(provider.authorizationUrl.href, alice.provider.authorizationUrl.href, 'no new sign-in should have been asked for');
    const echo = await client.callTool({ name: `eng-tools${SEP}echo`, arguments: { text: 'after refresh' } });
    assert.equal(text(echo), 'after refresh');
  });

  test('no token reaches an upstream, nor the gateway\'s logs', { timeout: 10000 }, async () => {
    assert.ok(secrets.size >= 8, `the test should have seen tokens (${secrets.size})`);
    for (const p of proxies) {
      assert.ok(p.seen.some((r) => r.method === 'POST'), `the gateway should have called ${p.url}`);
      for (const r of p.seen) {
        assert.equal(r.headers.authorization, undefined, `${r.method} ${p.url} carried Authorization`);
        const all = JSON.stringify(r.headers);
        for (const s of secrets) assert.ok(!all.includes(s), `a token reached ${p.url} in ${r.method}`);
      }
    }
    const [engProxy] = proxies;
    assert.ok(engProxy.seen.every((r) => r.headers['x-api-key'] === ENG_UPSTREAM_KEY), 'eng-tools gets the gateway\'s own key');
    const logs = gateway.logs();
    assert.ok(logs.length > 0);
    for (const s of secrets) assert.ok(!logs.includes(s), 'a token is in the gateway\'s logs');
  });
});
