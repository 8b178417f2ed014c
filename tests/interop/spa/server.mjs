// Serves the demo bank's SPA on oidc-client-ts, for the second browser scenario
// (tests/browser/oidc-client-ts.mjs), on 127.0.0.1:
//
// - the SPA's own files, unchanged, from examples/bank-demo/web/ (index.html, app.mjs, bank.mjs,
//   style.css), and the stepup-fetch package from clients/stepup-fetch/src/ (as the demo does);
// - /login.mjs: this folder's login.mjs, the same seam as examples/bank-demo/web/login.mjs but
//   over oidc-client-ts and stepup-fetch's oidc-client-ts adapter;
// - /vendor/oidc-client-ts.js and /vendor/jwt-decode.js: the npm packages' ESM builds
//   (tests/interop/package-lock.json), the one bare import rewritten to a path;
// - /config.json: the oidc-provider of tests/interop/provider.mjs (client interop-spa,
//   resource urn:bank-api);
// - /api/*: passed to the bank demo (method, headers, body; status, headers, body), so that the
//   SPA talks to one origin as it does on the demo.
//
// Usage: node server.mjs --port N --bank http://127.0.0.1:B --issuer http://127.0.0.1:P

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..', '..');
const WEB = path.join(ROOT, 'examples', 'bank-demo', 'web');
const PKG = path.join(ROOT, 'clients', 'stepup-fetch', 'src');

const { values: args } = parseArgs({
  options: { port: { type: 'string' }, bank: { type: 'string' }, issuer: { type: 'string' } },
});
const port = Number.parseInt(args.port ?? '', 10);
if (!Number.isInteger(port) || !args.bank || !args.issuer) {
  console.error('spa server: give --port N --bank URL --issuer URL');
  process.exit(2);
}
const origin = `http://127.0.0.1:${port}`;

// The ESM builds of oidc-client-ts and its one dependency, as `npm ci` in tests/interop laid them.
const octsDir = path.join(HERE, '..', 'node_modules', 'oidc-client-ts');
const jwtDir = path.join(HERE, '..', 'node_modules', 'jwt-decode');
const octs = readFileSync(path.join(octsDir, 'dist', 'esm', 'oidc-client-ts.js'), 'utf8');
const BARE = 'from "jwt-decode"';
if (!octs.includes(BARE)) {
  console.error(`spa server: oidc-client-ts's ESM build no longer imports ${BARE}; update server.mjs`);
  process.exit(1);
}

const JS = 'text/javascript; charset=utf-8';
const files = {
  '/': ['text/html; charset=utf-8', () => readFileSync(path.join(WEB, 'index.html'))],
  '/app.mjs': [JS, () => readFileSync(path.join(WEB, 'app.mjs'))],
  '/bank.mjs': [JS, () => readFileSync(path.join(WEB, 'bank.mjs'))],
  '/style.css': ['text/css; charset=utf-8', () => readFileSync(path.join(WEB, 'style.css'))],
  '/login.mjs': [JS, () => readFileSync(path.join(HERE, 'login.mjs'))],
  '/stepup-fetch/index.js': [JS, () => readFileSync(path.join(PKG, 'index.js'))],
  '/stepup-fetch/oidc-client-ts.js': [JS, () => readFileSync(path.join(PKG, 'oidc-client-ts.js'))],
  '/stepup-fetch/dpop.js': [JS, () => readFileSync(path.join(PKG, 'dpop.js'))],
  '/vendor/oidc-client-ts.js': [JS, () => octs.replaceAll(BARE, 'from "./jwt-decode.js"')],
  '/vendor/jwt-decode.js': [JS, () => readFileSync(path.join(jwtDir, 'build', 'esm', 'index.js'))],
  '/config.json': ['application/json', () => JSON.stringify({
    issuer: args.issuer,
    client_id: 'interop-spa',
    redirect_uri: `${origin}/`,
    scope: 'openid accounts',
    resource: 'urn:bank-api',
  })],
};

// Request headers passed to the bank, and response headers passed back.
const TO_BANK = ['accept', 'authorization', 'content-type', 'idempotency-key'];
const FROM_BANK = ['content-type', 'www-authenticate', 'idempotent-replayed', 'cache-control'];

async function toBank(req, res) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const headers = {};
  for (const h of TO_BANK) if (req.headers[h] !== undefined) headers[h] = String(req.headers[h]);
  let answer;
  try {
    answer = await fetch(new URL(req.url, args.bank), {
      method: req.method,
      headers,
      body: ['GET', 'HEAD'].includes(req.method) ? undefined : Buffer.concat(chunks),
      redirect: 'manual',
    });
  } catch (e) {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`the bank could not be reached: ${e.cause?.code ?? e.message}`);
    return;
  }
  const out = {};
  for (const h of FROM_BANK) if (answer.headers.has(h)) out[h] = answer.headers.get(h);
  res.writeHead(answer.status, out);
  res.end(Buffer.from(await answer.arrayBuffer()));
}

const server = createServer((req, res) => {
  const { pathname } = new URL(req.url, origin);
  if (pathname.startsWith('/api/')) {
    toBank(req, res).catch((e) => {
      res.writeHead(500);
      res.end(String(e));
    });
    return;
  }
  const file = files[pathname];
  if (!file || req.method !== 'GET') {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
    return;
  }
  res.writeHead(200, { 'content-type': file[0], 'cache-control': 'no-cache' });
  res.end(file[1]());
});
server.listen(port, '127.0.0.1', () => console.log(`spa server: ${origin} (bank ${args.bank}, issuer ${args.issuer})`));
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
