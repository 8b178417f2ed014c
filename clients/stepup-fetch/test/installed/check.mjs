// Run by ci.sh from a scratch folder where the `npm pack` tarball was installed: imports the
// package by its name, as a user would, and answers one step-up against an HTTP server on
// 127.0.0.1. Prints PASS/FAIL lines; exits non-zero on any failure.
import { createServer } from 'node:http';

import * as core from 'stepup-fetch';
import * as oidc from 'stepup-fetch/oidc';
import * as octs from 'stepup-fetch/oidc-client-ts';
import * as dpop from 'stepup-fetch/dpop';

let failed = 0;
const check = (name, ok) => {
  console.log(`${ok ? 'PASS' : 'FAIL'} installed: ${name}`);
  if (!ok) failed++;
};

check('stepup-fetch exports createStepUpFetch, resumePending, parseChallenges, StepUpError',
  ['createStepUpFetch', 'resumePending', 'parseChallenges'].every((n) => typeof core[n] === 'function') && new core.StepUpError('x', { reason: 'r' }) instanceof Error);
check('stepup-fetch/oidc exports createOidcClient and oidcAdapter', typeof oidc.createOidcClient === 'function' && typeof oidc.oidcAdapter === 'function');
check('stepup-fetch/oidc-client-ts exports oidcClientTsAdapter', typeof octs.oidcClientTsAdapter === 'function');
check('stepup-fetch/dpop exports createDpop and generateDpopKeyPair', typeof dpop.createDpop === 'function' && typeof dpop.generateDpopKeyPair === 'function');

const server = createServer((req, res) => {
  const ok = req.headers.authorization === 'Bearer new';
  res.writeHead(ok ? 200 : 401, ok ? {} : { 'WWW-Authenticate': 'Bearer error="insufficient_user_authentication", acr_values="mfa", max_age=60' });
  res.end(ok ? 'done' : '');
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
let token = 'old';
let asked = null;
const apiFetch = core.createStepUpFetch({ getAccessToken: () => token, reauthenticate: async (s) => { asked = s; token = 'new'; } });
const res = await apiFetch(`http://127.0.0.1:${server.address().port}/`, { method: 'POST', body: 'x' });
check('a step-up through the installed package: one reauthenticate, the retry answered 200', res.status === 200 && (await res.text()) === 'done' && asked?.maxAge === 60 && asked?.acrValues[0] === 'mfa');
server.close();

// DPoP through the installed package: Authorization: DPoP and a proof whose signature verifies.
const seen = [];
const dpopServer = createServer((req, res) => {
  seen.push(req.headers);
  res.end('ok');
});
await new Promise((r) => dpopServer.listen(0, '127.0.0.1', r));
const signer = dpop.createDpop();
const dpopFetch = core.createStepUpFetch({ getAccessToken: () => 'bound', reauthenticate: async () => {}, dpop: signer });
await (await dpopFetch(`http://127.0.0.1:${dpopServer.address().port}/x`)).text();
const [h, c, s] = String(seen[0]?.dpop).split('.');
const header = JSON.parse(Buffer.from(h ?? '', 'base64url').toString());
const key = await crypto.subtle.importKey('jwk', header.jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
const verified = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, Buffer.from(s ?? '', 'base64url'), new TextEncoder().encode(`${h}.${c}`));
check('a DPoP request through the installed package: Authorization: DPoP and a proof that verifies', seen[0]?.authorization === 'DPoP bound' && header.typ === 'dpop+jwt' && verified);
dpopServer.close();
process.exitCode = failed ? 1 : 0;
