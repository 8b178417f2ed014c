// Test support: a real HTTP API on 127.0.0.1 (an ephemeral port) that answers like a
// step-up resource server, and a Web Storage-like object for Node (which has no
// sessionStorage).

import { createServer } from 'node:http';

export const MFA = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';

/** RFC 9470 §3's challenge, as a resource server sends it. */
export const stepUpChallenge = (acr = MFA, maxAge = 300) =>
  `Bearer realm="api", error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="${acr}"${maxAge === null ? '' : `, max_age=${maxAge}`}`;

/**
 * Starts a server whose `handler(req, body, api)` returns `{status, headers, body}` (or
 * nothing for 200 `{"ok":true}`). Every request is recorded in `api.requests` as
 * `{method, path, headers, body}` (headers lower-cased, body as a Buffer).
 *
 * @param {(req: {method: string, path: string, headers: Record<string, string>, body: Buffer, token: string|null}, api: any) => any} handler
 */
export async function startApi(handler) {
  const api = {
    requests: /** @type {any[]} */ ([]),
    url: '',
    close: () => new Promise((r) => server.close(r)),
  };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const headers = /** @type {Record<string, string>} */ ({});
      for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : String(v);
      const auth = headers.authorization ?? '';
      const r = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers,
        body: Buffer.concat(chunks),
        token: auth.startsWith('Bearer ') ? auth.slice(7) : null,
      };
      api.requests.push(r);
      try {
        const out = (await handler(r, api)) ?? {};
        res.writeHead(out.status ?? 200, { 'content-type': 'application/json', ...(out.headers ?? {}) });
        res.end(out.body ?? JSON.stringify({ ok: true, n: api.requests.length }));
      } catch (e) {
        res.writeHead(500);
        res.end(String(e));
      }
    });
  });
  server.keepAliveTimeout = 100;
  await new Promise((r) => server.listen(0, '127.0.0.1', () => r(undefined)));
  const addr = /** @type {import('node:net').AddressInfo} */ (server.address());
  api.url = `http://127.0.0.1:${addr.port}`;
  return api;
}

/** Web Storage's getItem / setItem / removeItem over a Map, with a log of what was written. */
export class MemoryStorage {
  constructor() {
    this.map = new Map();
    /** @type {string[]} */
    this.writes = [];
  }
  /** @param {string} k */
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  /** @param {string} k @param {string} v */
  setItem(k, v) {
    this.writes.push(String(v));
    this.map.set(k, String(v));
  }
  /** @param {string} k */
  removeItem(k) {
    this.map.delete(k);
  }
  /** Everything held now, as one string. */
  dump() {
    return JSON.stringify([...this.map]);
  }
}

/** A token holder: `get` is getAccessToken; `set` is what a re-authentication does. */
export function tokens(first = 'token-old') {
  let current = first;
  return {
    get: () => current,
    set: (/** @type {string} */ t) => {
      current = t;
    },
  };
}

export const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));
