// stepup-fetch/oidc: the generic OpenID Connect client and its adapter, against an HTTP
// provider on 127.0.0.1 (discovery, token endpoint).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import { createStepUpFetch, PENDING_KEY, resumePending } from '../src/index.js';
import { createOidcClient, decodeJwtPayload, mergeScope, oidcAdapter, pkceChallenge, randomString } from '../src/oidc.js';
import { MFA, MemoryStorage, startApi, stepUpChallenge } from './helpers.js';

const b64url = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (claims) => `${b64url({ alg: 'ES256', typ: 'JWT' })}.${b64url(claims)}.c2ln`;

/** A provider: discovery, and a token endpoint that checks PKCE and answers `idClaims(form)`. */
async function provider({ endSession = true, idClaims = null } = {}) {
  const p = await startApi((r) => {
    if (r.path === '/.well-known/openid-configuration') {
      return {
        body: JSON.stringify({
          issuer: p.url,
          authorization_endpoint: `${p.url}/authorize`,
          token_endpoint: `${p.url}/token`,
          ...(endSession ? { end_session_endpoint: `${p.url}/logout` } : {}),
        }),
      };
    }
    if (r.path === '/token') {
      const form = new URLSearchParams(r.body.toString());
      const pending = p.codes.get(form.get('code'));
      const s256 = createHash('sha256').update(form.get('code_verifier') ?? '').digest('base64url');
      if (!pending || pending.code_challenge !== s256) return { status: 400, body: '{"error":"invalid_grant"}' };
      p.tokenForms.push(form);
      const now = Math.floor(Date.now() / 1000);
      const claims = idClaims ? idClaims(pending) : { iss: p.url, aud: 'spa', sub: 'alice', nonce: pending.nonce, exp: now + 300, acr: pending.acr_values ?? 'pwd', auth_time: now };
      return { body: JSON.stringify({ access_token: `at-${p.tokenForms.length}`, token_type: 'Bearer', expires_in: 300, id_token: jwt(claims), scope: pending.scope }) };
    }
    return { status: 404 };
  });
  p.codes = new Map();
  p.tokenForms = [];
  /** What the provider does with an authorization request: a code for it, sent back. */
  p.approve = (authorizeUrl) => {
    const q = Object.fromEntries(new URL(authorizeUrl).searchParams);
    const code = randomString();
    p.codes.set(code, q);
    return `${q.redirect_uri}?code=${code}&state=${q.state}`;
  };
  return p;
}

function client(p, storage, extra = {}) {
  const navigated = [];
  const c = createOidcClient({
    issuer: p.url,
    clientId: 'spa',
    redirectUri: 'http://127.0.0.1:9/app/',
    scope: 'openid accounts',
    resource: 'urn:bank-api',
    storage,
    navigate: (url) => navigated.push(url),
    ...extra,
  });
  return { c, navigated };
}

test('PKCE S256 matches RFC 7636 Appendix B; randomString is base64url', async () => {
  assert.equal(await pkceChallenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'), 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  assert.match(randomString(), /^[A-Za-z0-9_-]{43}$/);
  await assert.rejects(pkceChallenge('short'));
  assert.equal(mergeScope('openid accounts', ['accounts', 'payments']), 'openid accounts payments');
  assert.equal(decodeJwtPayload('a.b'), null);
  assert.deepEqual(decodeJwtPayload(jwt({ sub: 'é' })), { sub: 'é' });
});

test('the adapter leaves for the provider with the challenge: acr_values, max_age, scope, claims, resource', async (t) => {
  const p = await provider();
  t.after(p.close);
  const storage = new MemoryStorage();
  const { c, navigated } = client(p, storage);
  const { reauthenticate } = oidcAdapter(c);
  const stepUp = { reason: 'insufficient_user_authentication', acrValues: [MFA, 'loa3'], maxAge: 0, scope: ['payments'], claims: '{"id_token":{"acr":{"essential":true}}}', challenge: { scheme: 'Bearer', token68: null, params: {} }, status: 401, method: 'POST', url: 'http://x/' };
  let settled = false;
  reauthenticate(/** @type {any} */ (stepUp)).then(() => (settled = true), () => (settled = true));
  for (let i = 0; i < 100 && navigated.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(navigated.length, 1);
  const q = new URL(navigated[0]).searchParams;
  assert.equal(new URL(navigated[0]).pathname, '/authorize');
  assert.equal(q.get('acr_values'), `${MFA} loa3`);
  assert.equal(q.get('max_age'), '0');
  assert.equal(q.get('prompt'), 'login', 'max_age=0 also asks for prompt=login');
  assert.equal(q.get('scope'), 'openid accounts payments');
  assert.equal(q.get('claims'), stepUp.claims);
  assert.equal(q.get('resource'), 'urn:bank-api');
  assert.equal(q.get('code_challenge_method'), 'S256');
  assert.equal(q.get('response_type'), 'code');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(settled, false, 'a redirect never resolves in the page');
  const saved = JSON.parse(/** @type {string} */ (storage.getItem('stepup-fetch.oidc.auth')));
  assert.equal(q.get('code_challenge'), await pkceChallenge(saved.verifier));
  assert.equal(saved.state, q.get('state'));
  assert.deepEqual(saved.data, { stepUp: true });
});

test('handleCallback: code exchange with the verifier and resource, ID token checked; data comes back', async (t) => {
  const p = await provider();
  t.after(p.close);
  const storage = new MemoryStorage();
  const { c, navigated } = client(p, storage);
  c.signinRedirect({ acrValues: [MFA], data: { stepUp: true } }).catch(() => {});
  for (let i = 0; i < 100 && navigated.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(await c.handleCallback('http://127.0.0.1:9/app/'), null, 'no code, no error: not a callback');
  const back = p.approve(navigated[0]);
  const r = await c.handleCallback(back);
  assert.ok(r && r.ok, JSON.stringify(r));
  assert.equal(r.accessToken, 'at-1');
  assert.equal(r.idTokenClaims?.acr, MFA);
  assert.deepEqual(r.data, { stepUp: true });
  const form = p.tokenForms[0];
  assert.equal(form.get('grant_type'), 'authorization_code');
  assert.equal(form.get('resource'), 'urn:bank-api');
  assert.equal(form.get('client_id'), 'spa');
  // The same answer again: its state is spent.
  const again = await c.handleCallback(back);
  assert.equal(again?.ok, false);
  assert.equal(again?.ok === false && again.error, 'invalid_state');
  // Nothing but state, nonce, verifier and data was ever stored: no token.
  assert.ok(storage.writes.every((w) => !w.includes('at-1')));
});

test('handleCallback refuses an error answer (with its data), a forged state and a wrong nonce, issuer or audience', async (t) => {
  let mode = 'nonce';
  const p = await provider({
    idClaims: (pending) => {
      const now = Math.floor(Date.now() / 1000);
      const ok = { iss: p.url, aud: ['spa', 'other'], sub: 'alice', nonce: pending.nonce, exp: now + 60 };
      return { ...ok, ...(mode === 'nonce' ? { nonce: 'other' } : mode === 'iss' ? { iss: 'http://evil' } : mode === 'aud' ? { aud: 'other' } : mode === 'exp' ? { exp: now - 3600 } : {}) };
    },
  });
  t.after(p.close);
  const storage = new MemoryStorage();
  const { c, navigated } = client(p, storage);
  const start = async (data) => {
    navigated.length = 0;
    c.signinRedirect({ data }).catch(() => {});
    for (let i = 0; i < 100 && navigated.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    return new URL(navigated[0]).searchParams.get('state');
  };
  let state = await start({ stepUp: true });
  const denied = await c.handleCallback(`http://127.0.0.1:9/app/?error=access_denied&error_description=cancelled&state=${state}`);
  assert.deepEqual(denied, { ok: false, error: 'access_denied', errorDescription: 'cancelled', data: { stepUp: true } });
  await start(null);
  const forged = await c.handleCallback('http://127.0.0.1:9/app/?code=x&state=forged');
  assert.equal(forged?.ok === false && forged.error, 'invalid_state');
  for (const m of ['nonce', 'iss', 'aud', 'exp']) {
    mode = m;
    navigated.length = 0;
    c.signinRedirect().catch(() => {});
    for (let i = 0; i < 100 && navigated.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const r = await c.handleCallback(p.approve(navigated[0]));
    assert.equal(r?.ok === false && r.error, 'invalid_id_token', m);
  }
  mode = 'fine';
  state = await start(null);
  void state;
  assert.equal((await c.handleCallback(p.approve(navigated[0])))?.ok, true, 'an audience array holding the client is fine');
});

test('signoutRedirect: RP-Initiated Logout with id_token_hint, post_logout_redirect_uri, client_id, state; false without an endpoint', async (t) => {
  const p = await provider();
  t.after(p.close);
  const storage = new MemoryStorage();
  const { c, navigated } = client(p, storage);
  c.signoutRedirect({ idToken: 'the.id.token' }).catch(() => {});
  for (let i = 0; i < 100 && navigated.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  const q = new URL(navigated[0]).searchParams;
  assert.equal(q.get('id_token_hint'), 'the.id.token');
  assert.equal(q.get('post_logout_redirect_uri'), 'http://127.0.0.1:9/app/');
  assert.equal(q.get('client_id'), 'spa');
  assert.equal(c.handleSignoutCallback('http://127.0.0.1:9/app/?state=forged')?.ok, false);
  c.signoutRedirect({}).catch(() => {});
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(c.handleSignoutCallback(`http://127.0.0.1:9/app/?state=${new URL(navigated[1]).searchParams.get('state')}`), { ok: true, data: null });
  assert.equal(c.handleSignoutCallback('http://127.0.0.1:9/app/?code=a&state=b'), null);

  const p2 = await provider({ endSession: false });
  t.after(p2.close);
  const { c: c2, navigated: n2 } = client(p2, new MemoryStorage());
  assert.equal(await c2.signoutRedirect({ idToken: 'x' }), false);
  assert.equal(n2.length, 0);
});

test('discovery must name the issuer asked for', async (t) => {
  const p = await provider();
  t.after(p.close);
  const { c } = client(p, new MemoryStorage(), { issuer: `${p.url}/` });
  await assert.rejects(c.discover(), /another issuer/);
});

test('the whole redirect flow: challenge → pending → login with the challenge → callback → resumePending', async (t) => {
  const p = await provider();
  t.after(p.close);
  const storage = new MemoryStorage();
  let token = 'at-weak';
  const api = await startApi((r) => (r.token === 'at-1' ? undefined : { status: 401, headers: { 'WWW-Authenticate': stepUpChallenge(MFA, 300) } }));
  t.after(api.close);
  const { c, navigated } = client(p, storage);
  const apiFetch = createStepUpFetch({ getAccessToken: () => token, storage, ...oidcAdapter(c) });
  apiFetch(`${api.url}/api/transfers`, { method: 'POST', body: '{"amount":"9.00"}' }).catch(() => {});
  for (let i = 0; i < 100 && navigated.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(new URL(navigated[0]).searchParams.get('acr_values'), MFA);
  assert.ok(storage.getItem(PENDING_KEY));

  // The new page.
  const r = await c.handleCallback(p.approve(navigated[0]));
  assert.ok(r?.ok);
  token = r.accessToken;
  const res = await resumePending({ getAccessToken: () => token, storage, idTokenClaims: r.idTokenClaims });
  assert.equal(res?.status, 200);
  assert.equal(api.requests.length, 2);
  assert.equal(api.requests[1].headers['idempotency-key'], api.requests[0].headers['idempotency-key']);
});
