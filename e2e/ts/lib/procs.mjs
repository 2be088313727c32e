// Helpers for e2e tests: start the real mcpbus binary, wait for its
// "listening" line, and stop it again (SIGTERM, then SIGKILL after 5 s).
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const e2eDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Path of the mcpbus binary: $MCPBUS_BIN, or ../bin/mcpbus relative to e2e/. */
export function mcpbusBin() {
  const bin = process.env.MCPBUS_BIN
    ? path.resolve(process.env.MCPBUS_BIN)
    : path.resolve(e2eDir, '..', 'bin', 'mcpbus');
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(`mcpbus binary not found or not executable at ${bin} (build it, or set MCPBUS_BIN)`);
  }
  return bin;
}

const running = new Set();
// Last resort if the runner exits without the after() hooks having run.
process.on('exit', () => {
  for (const p of running) p.child.kill('SIGKILL');
});

/**
 * Spawns bin with args and resolves once a line of stdout or stderr matches
 * re, with { child, pid, match, logs(), stop() }. Rejects (after killing the
 * process) if it exits first or nothing matches within timeoutMs.
 */
export function startProcess(bin, args, { env, re, timeoutMs = 15000, name = path.basename(bin) }) {
  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const proc = {
    child,
    pid: child.pid,
    name,
    match: null,
    logs: () => output,
    stop: () => stopProcess(proc),
  };
  running.add(proc);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  proc.exited = exited;
  exited.then(() => running.delete(proc));

  return new Promise((resolve, reject) => {
    const fail = async (why) => {
      clearTimeout(timer);
      await stopProcess(proc);
      reject(new Error(`${name} (${args.join(' ')}): ${why}\n--- output ---\n${output}`));
    };
    const timer = setTimeout(() => fail(`no line matching ${re} within ${timeoutMs} ms`), timeoutMs);
    const scan = (stream) => {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        output += chunk;
        partial += chunk;
        const lines = partial.split('\n');
        partial = lines.pop();
        for (const line of lines) {
          const m = proc.match === null && line.match(re);
          if (m) {
            proc.match = m;
            clearTimeout(timer);
            resolve(proc);
          }
        }
      });
    };
    scan(child.stdout);
    scan(child.stderr);
    child.once('error', (err) => fail(`spawn failed: ${err.message}`));
    exited.then(({ code, signal }) => {
      if (proc.match === null) fail(`exited early (code ${code}, signal ${signal})`);
    });
  });
}

/** Sends SIGTERM, then SIGKILL if the process has not exited after 5 s. */
export async function stopProcess(proc) {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  const killer = setTimeout(() => proc.child.kill('SIGKILL'), 5000);
  await proc.exited;
  clearTimeout(killer);
}

/** Creates a fresh temporary directory; remove it with removeTempDir. */
export function makeTempDir(prefix = 'mcpbus-e2e-') {
  return mkdtemp(path.join(tmpdir(), prefix));
}

export async function removeTempDir(dir) {
  if (dir) await rm(dir, { recursive: true, force: true });
}
