// Network helpers for e2e tests: pick a free loopback port, and list the TCP
// addresses a process listens on (Linux /proc, cross-checked with `ss`), so a
// test can assert that a third-party server stays on loopback. Nothing here
// sends traffic anywhere.
import { execFile } from 'node:child_process';
import { readFile, readdir, readlink } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/** Absolute path of the preload that forces listen() onto 127.0.0.1. */
export const LOOPBACK_PRELOAD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'loopback-preload.cjs');

/** A TCP port that was free on 127.0.0.1 a moment ago (listen on :0, close). */
export function freeLoopbackPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ port: 0, host: '127.0.0.1' }, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Is addr (as printed by formatAddr or ss) a loopback address? */
export function isLoopbackAddr(addr) {
  const a = addr.replace(/^\[|\]$/g, '').toLowerCase();
  if (net.isIPv4(a)) return a.startsWith('127.');
  if (a === '::1') return true;
  const mapped = a.match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/);
  if (mapped !== null) return mapped[1].startsWith('127.');
  return /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(a); // the same, as URL prints it
}

// /proc/net/tcp{,6} addresses: hex, each 32-bit word in host (little-endian) order.
function decodeAddr(hex) {
  const words = hex.match(/.{8}/g).map((w) => w.match(/../g).reverse().join(''));
  if (words.length === 1) return words[0].match(/../g).map((b) => parseInt(b, 16)).join('.');
  const bytes = words.join('');
  const groups = bytes.match(/.{4}/g).map((g) => parseInt(g, 16).toString(16));
  const v6 = groups.join(':');
  // Let node normalise (compress zeros) through a URL round trip.
  return new URL(`http://[${v6}]/`).hostname.replace(/^\[|\]$/g, '');
}

/**
 * TCP sockets in LISTEN state owned by pid (its open fds), read from /proc:
 * [{ addr, port }]. Linux only.
 */
export async function listeningSocketsProc(pid) {
  const inodes = new Set();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    try {
      const m = (await readlink(`/proc/${pid}/fd/${fd}`)).match(/^socket:\[(\d+)\]$/);
      if (m) inodes.add(m[1]);
    } catch {
      // fd closed meanwhile
    }
  }
  const out = [];
  for (const table of ['tcp', 'tcp6']) {
    let text;
    try {
      text = await readFile(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue; // e.g. no IPv6
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A' || !inodes.has(f[9])) continue; // 0A = LISTEN
      const [hexAddr, hexPort] = f[1].split(':');
      out.push({ addr: decodeAddr(hexAddr), port: parseInt(hexPort, 16) });
    }
  }
  return out;
}

/**
 * The same from `ss -Hltnp` (lines carrying pid=<pid>), or null when ss is
 * not available.
 */
export async function listeningSocketsSS(pid) {
  let stdout;
  try {
    ({ stdout } = await promisify(execFile)('ss', ['-Hltnp']));
  } catch {
    return null;
  }
  const out = [];
  for (const line of stdout.split('\n')) {
    if (!new RegExp(`\\bpid=${pid}\\b`).test(line)) continue;
    const local = line.trim().split(/\s+/)[3]; // State Recv-Q Send-Q Local Peer Process
    const m = local.match(/^(.*):(\d+|\*)$/);
    if (m) out.push({ addr: m[1].replace(/%.*$/, ''), port: Number(m[2]) });
  }
  return out;
}
