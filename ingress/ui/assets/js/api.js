// The admin API, as the signed-in page calls it: same-origin fetch (the
// HttpOnly session cookie goes by itself) and, on every request that may
// change something, the session's CSRF token in X-CSRF-Token.

let csrf = '';

export function setCSRF(token) {
  csrf = token || '';
}

/** An API refusal: the REST error shape's message, code and HTTP status. */
export class APIError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code || '';
  }
}

/** Listeners told when any call answers 401 (the session ended). */
const unauthorized = new Set();
export function onUnauthorized(fn) {
  unauthorized.add(fn);
}

/** method, path, optional JSON body: the parsed answer, or throws APIError. */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrf;
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new APIError(0, `the gateway did not answer (${err.message})`, 'NETWORK');
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = data && data.error;
    const e = new APIError(res.status, (err && err.message) || `HTTP ${res.status} from ${method} ${path}`, err && err.code);
    if (res.status === 401 && path !== '/ui/api/session') for (const fn of unauthorized) fn(e);
    throw e;
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body ?? {});
export const put = (path, body) => api('PUT', path, body);
export const patch = (path, body) => api('PATCH', path, body);
export const del = (path, body) => api('DELETE', path, body);

/** A query string from an object, leaving out empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
