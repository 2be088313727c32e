// Preload for third-party servers started by e2e tests:
//
//   node --require /abs/path/to/loopback-preload.cjs server.js ...
//
// Rewrites every net.Server#listen (http.Server and https.Server inherit it)
// so a TCP listener only ever binds 127.0.0.1: a listen() without a host, or
// with any host that is not a loopback address (0.0.0.0, ::, a LAN address,
// ...), binds 127.0.0.1 instead. Unix sockets / named pipes are left alone.
// Listening on an inherited handle or fd is refused, since its address cannot
// be controlled. Each rewrite is reported on stderr.
'use strict';

const net = require('node:net');

const LOOPBACK = '127.0.0.1';
const TAG = '[loopback-preload]';

function isLoopback(host) {
  if (typeof host !== 'string') return false;
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  const mapped = h.match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/);
  return mapped !== null && mapped[1].startsWith('127.');
}

// Node treats a string port that converts to a number >= 0 as a port, any
// other string as a pipe path (lib/net.js: isPipeName / toNumber).
const isPort = (v) => typeof v === 'number' || (typeof v === 'string' && Number(v) >= 0);
const isPipe = (v) => typeof v === 'string' && !(Number(v) >= 0);

const origListen = net.Server.prototype.listen;

function forceLoopback(host) {
  if (isLoopback(host)) return host;
  process.stderr.write(`${TAG} listen host ${host === undefined ? '(none)' : JSON.stringify(host)} -> ${LOOPBACK}\n`);
  return LOOPBACK;
}

net.Server.prototype.listen = function patchedListen(...args) {
  const cb = typeof args.at(-1) === 'function' ? args.pop() : undefined;
  const first = args[0];
  let options;

  if (first !== null && typeof first === 'object') {
    if (first._handle !== undefined || first.fd !== undefined || first.handle !== undefined) {
      throw new Error(`${TAG} refusing listen() on a handle or fd: its address cannot be forced to loopback`);
    }
    if (first.path !== undefined) return origListen.apply(this, cb ? [...args, cb] : args);
    options = { ...first, host: forceLoopback(first.host) };
    if (options.ipv6Only) options.ipv6Only = false;
  } else if (isPipe(first)) {
    return origListen.apply(this, cb ? [...args, cb] : args);
  } else {
    // listen(), listen(port), listen(port, host), listen(port, backlog),
    // listen(port, host, backlog): port may be missing/undefined/null (= 0).
    const port = first === undefined || first === null ? 0 : first;
    if (!isPort(port)) return origListen.apply(this, cb ? [...args, cb] : args); // let Node throw
    let host;
    let backlog;
    if (typeof args[1] === 'string') {
      host = args[1];
      backlog = args[2];
    } else {
      backlog = args[1];
    }
    options = { port, host: forceLoopback(host) };
    if (typeof backlog === 'number') options.backlog = backlog;
  }
  return origListen.apply(this, cb ? [options, cb] : [options]);
};

process.stderr.write(`${TAG} active in pid ${process.pid}\n`);
