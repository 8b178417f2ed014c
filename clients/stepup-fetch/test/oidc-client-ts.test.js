// stepup-fetch/oidc-client-ts with oidc-client-ts's own UserManager (the real package), whose
// navigators (the constructor's redirect and popup navigators) stand for the browser window:
// the redirect navigator records the authorization URL; the popup navigator lets an HTTP
// provider on 127.0.0.1 answer it, and UserManager exchanges the code at its token endpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { InMemoryWebStorage, UserManager, WebStorageStateStore } from 'oidc-client-ts';

import { StepUpError, createStepUpFetch } from '../src/index.js';
import { idTokenClaims, oidcClientTsAdapter } from '../src/oidc-client-ts.js';
import { MFA, startApi, stepUpChallenge } from './helpers.js';

const b64url = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (claims) => `${b64url({ alg: 'RS256', typ: 'JWT' })}.${b64url(claims)}.c2ln`;

/** A provider whose token endpoint signs the user in with `login()` ({acr, auth_time}). */
async function provider(login) {
  const codes = new Map();
  const p = await startApi((r) => {
    if (r.path === '/token') {
      const form = new URLSearchParams(r.body.toString());
      const q = codes.get(form.get('code'));
      if (!q) return { status: 400, body: '{"error":"invalid_grant"}' };
      const now = Math.floor(Date.now() / 1000);
      const { acr, auth_time } = login(q);
      const id = { iss: p.url, aud: 'spa', sub: 'alice', iat: now, exp: now + 300, acr, auth_time, ...(q.nonce ? { nonce: q.nonce } : {}) };
      return { body: JSON.stringify({ access_token: `at-${acr}-${codes.size}`, token_type: 'Bearer', expires_in: 300, id_token: jwt(id), scope: q.scope }) };
    }
    return { status: 404 };
  });
  let n = 0;
  p.answer = (url) => {
    const q = Object.fromEntries(new URL(url).searchParams);
    const code = `code-${++n}`;
    codes.set(code, q);
    return `${q.redirect_uri}?code=${code}&state=${q.state}`;
  };
  return p;
}

function userManager(p) {
  const redirected = [];
  const store = () => new WebStorageStateStore({ store: new InMemoryWebStorage() });
  const redirect = { prepare: async () => ({ navigate: async ({ url }) => { redirected.push(url); }, close() {} }), callback: async () => {} };
  const popup = { prepare: async () => ({ navigate: async ({ url }) => ({ url: p.answer(url) }), close() {} }), callback: async () => {} };
  const um = new UserManager(
    {
      authority: p.url,
      client_id: 'spa',
      redirect_uri: 'http://127.0.0.1:9/app/',
      popup_redirect_uri: 'http://127.0.0.1:9/popup.html',
      scope: 'openid accounts',
      loadUserInfo: false,
      automaticSilentRenew: false,
      monitorSession: false,
      userStore: store(),
      stateStore: store(),
      metadata: { issuer: p.url, authorization_endpoint: `${p.url}/authorize`, token_endpoint: `${p.url}/token` },
      extraQueryParams: { resource: 'urn:bank-api' },
    },
    /** @type {any} */ (redirect),
    /** @type {any} */ (popup),
  );
  return { um, redirected };
}

const stepUp = (over = {}) => /** @type {any} */ ({
  reason: 'insufficient_user_authentication',
  acrValues: [MFA],
  maxAge: 300,
  scope: [],
  claims: null,
  challenge: { scheme: 'Bearer', token68: null, params: {} },
  status: 401,
  method: 'POST',
  url: 'http://x/',
  ...over,
});

test('redirect: signinRedirect gets acr_values, max_age, merged scope, claims and keeps the settings\' extraQueryParams', async (t) => {
  const p = await provider(() => ({ acr: MFA, auth_time: 0 }));
  t.after(p.close);
  const { um, redirected } = userManager(p);
  const adapter = oidcClientTsAdapter(um);
  const claims = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}';
  // The navigator resolving stands for the page shown again without a sign-in (back/forward
  // cache): the adapter rejects then, so nothing waits for ever.
  const err = await adapter.reauthenticate(stepUp({ scope: ['payments', 'accounts'], claims })).then(() => null, (e) => e);
  assert.ok(err instanceof StepUpError);
  assert.equal(err.reason, 'redirect_returned');
  const q = new URL(redirected[0]).searchParams;
  assert.equal(q.get('acr_values'), MFA);
  assert.equal(q.get('max_age'), '300');
  assert.equal(q.get('scope'), 'openid accounts payments');
  assert.equal(q.get('claims'), claims);
  assert.equal(q.get('resource'), 'urn:bank-api');
  assert.equal(q.get('prompt'), null);
  assert.equal(q.get('code_challenge_method'), 'S256');

  await adapter.reauthenticate(stepUp({ maxAge: 0, acrValues: [] })).catch(() => {});
  const q0 = new URL(redirected[1]).searchParams;
  assert.equal(q0.get('max_age'), '0');
  assert.equal(q0.get('prompt'), 'login');
  assert.equal(q0.get('acr_values'), null);
  assert.equal(q0.get('scope'), 'openid accounts', 'the settings\' scope when the challenge names none');
});

test('popup: a real sign-in via the token endpoint, the new token is used for the one retry', async (t) => {
  const p = await provider(() => ({ acr: MFA, auth_time: Math.floor(Date.now() / 1000) }));
  t.after(p.close);
  const api = await startApi((r) => (r.token?.startsWith(`at-${MFA}`) ? undefined : { status: 401, headers: { 'WWW-Authenticate': stepUpChallenge(MFA, 300) } }));
  t.after(api.close);
  const { um } = userManager(p);
  // A loaded user arms oidc-client-ts's token-expiry timers: unloading it clears them.
  t.after(() => um.removeUser());
  const apiFetch = createStepUpFetch({ ...oidcClientTsAdapter(um, { popup: true }) });
  const res = await apiFetch(`${api.url}/api/transfers`, { method: 'POST', body: '{}' });
  assert.equal(res.status, 200);
  assert.equal(api.requests.length, 2);
  assert.equal(api.requests[0].headers.authorization, undefined, 'no user yet: no token');
  assert.match(api.requests[1].headers.authorization, /^Bearer at-/);
  assert.equal(idTokenClaims(await um.getUser())?.acr, MFA);
  assert.equal((await um.getUser())?.profile.acr, undefined, "oidc-client-ts keeps acr out of the profile: hence idTokenClaims");
});

test('popup: a provider that silently returns a weaker sign-in → StepUpError weaker_authentication, no retry', async (t) => {
  const cases = [
    () => ({ acr: 'urn:password', auth_time: Math.floor(Date.now() / 1000) }),
    () => ({ acr: MFA, auth_time: Math.floor(Date.now() / 1000) - 3600 }),
  ];
  for (const login of cases) {
    const p = await provider(login);
    t.after(p.close);
    const api = await startApi(() => ({ status: 401, headers: { 'WWW-Authenticate': stepUpChallenge(MFA, 300) } }));
    t.after(api.close);
    const { um } = userManager(p);
    t.after(() => um.removeUser());
    const apiFetch = createStepUpFetch({ ...oidcClientTsAdapter(um, { popup: true }) });
    const err = await apiFetch(`${api.url}/api/transfers`, { method: 'POST', body: '{}' }).then(() => null, (e) => e);
    assert.ok(err instanceof StepUpError, String(err));
    assert.equal(err.reason, 'weaker_authentication');
    assert.equal(api.requests.length, 1, 'no retry that would fail');
  }
});
