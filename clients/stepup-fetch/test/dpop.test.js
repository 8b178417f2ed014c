// stepup-fetch/dpop: DPoP proofs (RFC 9449 §4.2) checked with WebCrypto against the proof's own
// jwk, the fetch's `Authorization: DPoP` + proof per request (§7.1), the server nonce retried
// once (§8, §9), the DPoP step-up challenge, and the oidc client's bound token request (§5).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import { PENDING_KEY, createStepUpFetch, resumePending, stepUpRequest } from '../src/index.js';
import { createDpop, generateDpopKeyPair } from '../src/dpop.js';
import { createOidcClient, oidcAdapter, randomString } from '../src/oidc.js';
import { oidcClientTsAdapter } from '../src/oidc-client-ts.js';
import { MFA, MemoryStorage, startApi } from './helpers.js';

const sha256b64u = (s) => createHash('sha256').update(s).digest('base64url');
const part = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
const ALGS = 'algs="ES256 ES384 EdDSA RS256 PS256"';
const dpopStepUp = (acr = MFA, maxAge = 300) =>
  `DPoP error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="${acr}", max_age=${maxAge}, ${ALGS}`;

/**
 * Checks a proof as a server would (RFC 9449 §4.3): the signature with the header's jwk, the
 * header, and the claims; returns {header, claims}.
 */
async function verifyProof(proof, { method, url, token = null, nonce = undefined }) {
  assert.equal(typeof proof, 'string', 'a DPoP header');
  const [h, c, s] = proof.split('.');
  const header = part(h);
  const claims = part(c);
  assert.equal(header.typ, 'dpop+jwt');
  assert.equal(header.alg, 'ES256');
  assert.deepEqual(Object.keys(header.jwk).sort(), ['crv', 'kty', 'x', 'y'], 'a public jwk only: no d');
  assert.equal(header.jwk.kty, 'EC');
  assert.equal(header.jwk.crv, 'P-256');
  const key = await crypto.subtle.importKey('jwk', header.jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  const ok = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, Buffer.from(s, 'base64url'), new TextEncoder().encode(`${h}.${c}`));
  assert.ok(ok, 'the signature verifies with the header jwk');
  assert.match(claims.jti, /^[0-9a-f-]{36}$/);
  assert.equal(claims.htm, method);
  const u = new URL(url);
  assert.equal(claims.htu, `${u.origin}${u.pathname}`);
  assert.ok(Number.isInteger(claims.iat) && Math.abs(claims.iat - Date.now() / 1000) < 5);
  if (token === null) assert.equal(claims.ath, undefined);
  else assert.equal(claims.ath, sha256b64u(token));
  assert.equal(claims.nonce, nonce);
  return { header, claims };
}

const jkt = (jwk) => sha256b64u(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }));

test('a proof verifies with its jwk and carries jti, htm, htu (no query, no fragment), iat and ath', async () => {
  const dpop = createDpop();
  const url = 'https://API.example:8443/api/transfers?page=2#top';
  const proof = await dpop.proof('post', url, 'the-token');
  const { header, claims } = await verifyProof(proof, { method: 'POST', url, token: 'the-token' });
  assert.equal(claims.htu, 'https://api.example:8443/api/transfers');
  // ath is BASE64URL(SHA-256(ASCII(token))) (RFC 9449 §4.2): known value for "the-token".
  assert.equal(claims.ath, createHash('sha256').update('the-token', 'ascii').digest('base64url'));
  assert.equal(await dpop.thumbprint(), jkt(header.jwk));
  // A fresh jti per proof, the same key.
  const other = part((await dpop.proof('GET', url)).split('.')[0]);
  assert.deepEqual(other.jwk, header.jwk);
  const jtis = new Set(await Promise.all([1, 2, 3].map(async () => part((await dpop.proof('GET', url)).split('.')[1]).jti)));
  assert.equal(jtis.size, 3);
});

test('the private key is not extractable; a key pair given by the app (or a function giving it) is used', async () => {
  const pair = await generateDpopKeyPair();
  assert.equal(pair.privateKey.extractable, false);
  await assert.rejects(crypto.subtle.exportKey('jwk', pair.privateKey));
  const given = createDpop({ keyPair: pair });
  assert.equal(await given.keyPair(), pair);
  const fromFn = createDpop({ keyPair: async () => pair });
  assert.equal(await fromFn.thumbprint(), await given.thumbprint());
  const mine = createDpop();
  assert.equal(await mine.keyPair(), await mine.keyPair(), 'made once, lazily');
  assert.notEqual(await mine.thumbprint(), await given.thumbprint());
  // iat from the clock given.
  const clocked = createDpop({ keyPair: pair, now: () => 1_700_000_000_900 });
  assert.equal(part((await clocked.proof('GET', 'http://x/')).split('.')[1]).iat, 1_700_000_000);
});

test('the fetch sends Authorization: DPoP and a fresh proof bound to the request and the token', async (t) => {
  const api = await startApi(() => undefined);
  t.after(api.close);
  const dpop = createDpop();
  const apiFetch = createStepUpFetch({ getAccessToken: () => 'tok-1', reauthenticate: async () => {}, dpop });
  assert.equal((await apiFetch(`${api.url}/api/balance?x=1`, { headers: { Authorization: 'Bearer other' } })).status, 200);
  assert.equal((await apiFetch(`${api.url}/api/transfers`, { method: 'POST', body: '{}' })).status, 200);
  const [get, post] = api.requests;
  assert.equal(get.headers.authorization, 'DPoP tok-1');
  assert.equal(post.headers.authorization, 'DPoP tok-1');
  await verifyProof(get.headers.dpop, { method: 'GET', url: `${api.url}/api/balance`, token: 'tok-1' });
  await verifyProof(post.headers.dpop, { method: 'POST', url: `${api.url}/api/transfers`, token: 'tok-1' });
  assert.notEqual(get.headers.dpop, post.headers.dpop);
  // No token: neither Authorization nor a proof.
  const anonymous = createStepUpFetch({ getAccessToken: () => null, reauthenticate: async () => {}, dpop });
  await anonymous(`${api.url}/api/balance`);
  assert.equal(api.requests[2].headers.authorization, undefined);
  assert.equal(api.requests[2].headers.dpop, undefined);
});

test('use_dpop_nonce: one retry with a proof carrying the nonce; the nonce is kept for the origin', async (t) => {
  const api = await startApi((r) => {
    const { claims } = { claims: part(r.headers.dpop.split('.')[1]) };
    if (claims.nonce === 'n-1') return { headers: { 'DPoP-Nonce': 'n-1' } };
    return { status: 401, headers: { 'WWW-Authenticate': `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof", ${ALGS}`, 'DPoP-Nonce': 'n-1' } };
  });
  t.after(api.close);
  let reauth = 0;
  const apiFetch = createStepUpFetch({ getAccessToken: () => 'tok', reauthenticate: async () => void reauth++, dpop: createDpop() });
  const res = await apiFetch(`${api.url}/api/transfers`, { method: 'POST', body: '{"a":1}' });
  assert.equal(res.status, 200);
  assert.equal(api.requests.length, 2);
  await verifyProof(api.requests[1].headers.dpop, { method: 'POST', url: `${api.url}/api/transfers`, token: 'tok', nonce: 'n-1' });
  assert.equal(api.requests[1].body.toString(), '{"a":1}', 'the body is sent again');
  assert.equal(api.requests[1].headers['idempotency-key'], api.requests[0].headers['idempotency-key']);
  // The next request carries the nonce at once.
  assert.equal((await apiFetch(`${api.url}/api/balance`)).status, 200);
  assert.equal(api.requests.length, 3);
  assert.equal(reauth, 0);
});

test('use_dpop_nonce again after the nonce retry: the 401 is returned, never a loop', async (t) => {
  let n = 0;
  const api = await startApi(() => ({
    status: 401,
    headers: { 'WWW-Authenticate': `DPoP error="use_dpop_nonce", ${ALGS}`, 'DPoP-Nonce': `n-${++n}` },
  }));
  t.after(api.close);
  let reauth = 0;
  const apiFetch = createStepUpFetch({ getAccessToken: () => 'tok', reauthenticate: async () => void reauth++, dpop: createDpop() });
  const res = await apiFetch(`${api.url}/api/balance`);
  assert.equal(res.status, 401);
  assert.equal(api.requests.length, 2);
  assert.equal(part(api.requests[1].headers.dpop.split('.')[1]).nonce, 'n-1');
  assert.equal(reauth, 0);
  // A Bearer fetch does not retry for a DPoP nonce.
  const bearer = createStepUpFetch({ getAccessToken: () => 'tok', reauthenticate: async () => void reauth++ });
  assert.equal((await bearer(`${api.url}/api/balance`)).status, 401);
  assert.equal(api.requests.length, 3);
});

test('a nonce in any response (200 included) is used by the next proof to that origin only', async (t) => {
  const api = await startApi(() => ({ headers: { 'DPoP-Nonce': 'from-200' } }));
  t.after(api.close);
  const other = await startApi(() => undefined);
  t.after(other.close);
  const apiFetch = createStepUpFetch({ getAccessToken: () => 'tok', reauthenticate: async () => {}, dpop: createDpop() });
  await apiFetch(`${api.url}/a`);
  await apiFetch(`${api.url}/b`);
  await apiFetch(`${other.url}/c`);
  assert.equal(part(api.requests[0].headers.dpop.split('.')[1]).nonce, undefined);
  assert.equal(part(api.requests[1].headers.dpop.split('.')[1]).nonce, 'from-200');
  assert.equal(part(other.requests[0].headers.dpop.split('.')[1]).nonce, undefined);
});

test('the DPoP step-up challenge drives the re-authentication, then one retry with the new token and a new proof', async (t) => {
  let token = 'tok-weak';
  const api = await startApi((r) => (r.headers.authorization === 'DPoP tok-strong' ? { status: 201 } : { status: 401, headers: { 'WWW-Authenticate': dpopStepUp() } }));
  t.after(api.close);
  const asked = [];
  const apiFetch = createStepUpFetch({
    getAccessToken: () => token,
    reauthenticate: async (s) => {
      asked.push(s);
      token = 'tok-strong';
    },
    dpop: createDpop(),
  });
  const res = await apiFetch(`${api.url}/api/transfers`, { method: 'POST', body: '{}' });
  assert.equal(res.status, 201);
  assert.equal(asked.length, 1);
  assert.equal(asked[0].reason, 'insufficient_user_authentication');
  assert.deepEqual(asked[0].acrValues, [MFA]);
  assert.equal(asked[0].maxAge, 300);
  assert.equal(asked[0].challenge.scheme, 'DPoP');
  assert.equal(api.requests.length, 2);
  await verifyProof(api.requests[1].headers.dpop, { method: 'POST', url: `${api.url}/api/transfers`, token: 'tok-strong' });
});

test('several challenges: the one of the request\'s scheme is chosen', () => {
  const both = new Response(null, {
    status: 401,
    headers: { 'WWW-Authenticate': `Bearer error="insufficient_user_authentication", acr_values="bearer-acr", max_age=60, ${dpopStepUp('dpop-acr', 300)}` },
  });
  assert.deepEqual(stepUpRequest(both, {}, 'DPoP')?.acrValues, ['dpop-acr']);
  assert.equal(stepUpRequest(both, {}, 'dpop')?.maxAge, 300);
  assert.deepEqual(stepUpRequest(both)?.acrValues, ['bearer-acr']);
  // The answer to a request without a token (RFC 9449 §7.1): two challenges, no step-up.
  const anonymous = new Response(null, { status: 401, headers: { 'WWW-Authenticate': `Bearer realm="bank", DPoP realm="bank", ${ALGS}` } });
  assert.equal(stepUpRequest(anonymous, {}, 'DPoP'), null);
  assert.equal(stepUpRequest(anonymous), null);
  // A DPoP-only step-up is not one for a Bearer request, and the other way round.
  const dpopOnly = new Response(null, { status: 401, headers: { 'WWW-Authenticate': dpopStepUp() } });
  assert.equal(stepUpRequest(dpopOnly), null);
  assert.equal(stepUpRequest(dpopOnly, {}, 'DPoP')?.challenge.scheme, 'DPoP');
  // Two header fields, as fetch joins them.
  const joined = new Headers();
  joined.append('WWW-Authenticate', 'Bearer realm="bank"');
  joined.append('WWW-Authenticate', dpopStepUp('x'));
  assert.deepEqual(stepUpRequest(new Response(null, { status: 401, headers: joined }), {}, 'DPoP')?.acrValues, ['x']);
});

test('resumePending replays with Authorization: DPoP and a proof for the new token', async (t) => {
  let token = 'tok-weak';
  const api = await startApi((r) => (r.headers.authorization === 'DPoP tok-strong' ? { status: 201 } : { status: 401, headers: { 'WWW-Authenticate': dpopStepUp() } }));
  t.after(api.close);
  const storage = new MemoryStorage();
  const dpop = createDpop();
  const apiFetch = createStepUpFetch({ getAccessToken: () => token, reauthenticate: () => new Promise(() => {}), storage, dpop });
  apiFetch(`${api.url}/api/transfers`, { method: 'POST', body: '{"amount":"1.00"}' }).catch(() => {});
  for (let i = 0; i < 100 && !storage.getItem(PENDING_KEY); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(!storage.dump().includes('tok-weak') && !/dpop\+jwt|"dpop"/i.test(storage.dump()), 'neither token nor proof stored');
  token = 'tok-strong';
  const res = await resumePending({ getAccessToken: () => token, storage, dpop });
  assert.equal(res?.status, 201);
  const replay = api.requests[1];
  assert.equal(replay.headers.authorization, 'DPoP tok-strong');
  await verifyProof(replay.headers.dpop, { method: 'POST', url: `${api.url}/api/transfers`, token: 'tok-strong' });
  assert.equal(replay.body.toString(), '{"amount":"1.00"}');
});

/** A provider whose token endpoint records its DPoP header and answers `tokenType`. */
async function provider(tokenType, { nonce = null } = {}) {
  const codes = new Map();
  const p = await startApi((r) => {
    if (r.path === '/.well-known/openid-configuration') {
      return { body: JSON.stringify({ issuer: p.url, authorization_endpoint: `${p.url}/authorize`, token_endpoint: `${p.url}/token` }) };
    }
    if (r.path === '/token') {
      const proof = r.headers.dpop ? part(r.headers.dpop.split('.')[1]) : null;
      if (nonce && proof && proof.nonce !== nonce) {
        return { status: 400, headers: { 'DPoP-Nonce': nonce }, body: '{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}' };
      }
      const q = codes.get(new URLSearchParams(r.body.toString()).get('code'));
      const now = Math.floor(Date.now() / 1000);
      const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const id = `${b64({ alg: 'ES256' })}.${b64({ iss: p.url, aud: 'spa', sub: 'alice', nonce: q?.nonce, exp: now + 300 })}.c2ln`;
      return { body: JSON.stringify({ access_token: 'at-bound', token_type: tokenType, expires_in: 300, id_token: id }) };
    }
    return { status: 404 };
  });
  p.approve = (url) => {
    const q = Object.fromEntries(new URL(url).searchParams);
    const code = randomString();
    codes.set(code, q);
    return `${q.redirect_uri}?code=${code}&state=${q.state}`;
  };
  return p;
}

async function signIn(p, dpop) {
  const navigated = [];
  const c = createOidcClient({ issuer: p.url, clientId: 'spa', redirectUri: 'http://127.0.0.1:9/app/', scope: 'openid', storage: new MemoryStorage(), navigate: (u) => navigated.push(u), dpop });
  c.signinRedirect().catch(() => {});
  for (let i = 0; i < 100 && navigated.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  return { c, result: await c.handleCallback(p.approve(navigated[0])) };
}

test('oidc: the token request carries a proof (POST, the token endpoint, no ath) and needs token_type DPoP', async (t) => {
  const p = await provider('DPoP');
  t.after(p.close);
  const dpop = createDpop();
  const { c, result } = await signIn(p, dpop);
  assert.ok(result?.ok, JSON.stringify(result));
  assert.equal(result.tokenType, 'DPoP');
  const tokenRequest = p.requests.find((r) => r.path === '/token');
  await verifyProof(tokenRequest.headers.dpop, { method: 'POST', url: `${p.url}/token` });
  assert.equal(tokenRequest.headers.authorization, undefined);
  // The adapter hands the same signer to the fetch.
  assert.equal(oidcAdapter(c).dpop, dpop);
  // token_type is compared case-insensitively.
  const lower = await provider('dpop');
  t.after(lower.close);
  assert.equal((await signIn(lower, createDpop())).result?.ok, true);
});

test('oidc: a Bearer token where a DPoP one was asked for is refused; without dpop nothing changes', async (t) => {
  const p = await provider('Bearer');
  t.after(p.close);
  const { result } = await signIn(p, createDpop());
  assert.equal(result?.ok, false);
  assert.equal(result?.ok === false && result.error, 'invalid_token_response');
  const { c, result: plain } = await signIn(p, null);
  assert.equal(plain?.ok && plain.tokenType, 'Bearer');
  assert.equal(p.requests.filter((r) => r.path === '/token').at(-1).headers.dpop, undefined);
  assert.equal(oidcAdapter(c).dpop, null);
});

test('oidc: the provider\'s use_dpop_nonce answer is retried once with the nonce', async (t) => {
  const p = await provider('DPoP', { nonce: 'as-nonce' });
  t.after(p.close);
  const { result } = await signIn(p, createDpop());
  assert.ok(result?.ok, JSON.stringify(result));
  const tokenRequests = p.requests.filter((r) => r.path === '/token');
  assert.equal(tokenRequests.length, 2);
  await verifyProof(tokenRequests[1].headers.dpop, { method: 'POST', url: `${p.url}/token`, nonce: 'as-nonce' });
});

test('oidc-client-ts: with its dpop setting, the adapter signs with the key pair in its store', async () => {
  const pair = await generateDpopKeyPair();
  const gets = [];
  const um = {
    settings: { client_id: 'spa', dpop: { store: { get: async (k) => (gets.push(k), { keys: pair }) } } },
    getUser: async () => ({ access_token: 'at' }),
    signinRedirect: async () => {},
    signinPopup: async () => ({ access_token: 'at' }),
  };
  const adapter = oidcClientTsAdapter(um);
  assert.ok(adapter.dpop);
  assert.equal(await adapter.dpop.thumbprint(), await createDpop({ keyPair: pair }).thumbprint());
  await verifyProof(await adapter.dpop.proof('GET', 'http://127.0.0.1:9/api', 'at'), { method: 'GET', url: 'http://127.0.0.1:9/api', token: 'at' });
  assert.deepEqual(gets.slice(0, 1), ['spa']);
  assert.equal(oidcClientTsAdapter({ ...um, settings: {} }).dpop, null);
  const empty = oidcClientTsAdapter({ ...um, settings: { client_id: 'spa', dpop: { store: { get: async () => undefined } } } });
  await assert.rejects(empty.dpop.proof('GET', 'http://x/'), /no DPoP key pair/);
});
