// node --test examples/bank-demo/web/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import {
  MFA_ACR,
  ChallengeParseError,
  PENDING_KEY,
  bearerChallenge,
  buildAuthorizeUrl,
  decodeJwtPayload,
  isStepUp,
  parseChallenges,
  pkceChallenge,
  randomString,
  savePending,
  takePending,
  tokenRequestBody,
} from './stepup.mjs';

const params = (c) => ({ ...c.params });

// ---------------------------------------------------------------------------------------------
// parseChallenges

test('RFC 9470 example challenge, max_age as a token', () => {
  const h =
    'Bearer error="insufficient_user_authentication", ' +
    'error_description="A different authentication level is required", ' +
    'acr_values="myACR", max_age=5';
  const [c, ...rest] = parseChallenges(h);
  assert.equal(rest.length, 0);
  assert.equal(c.scheme, 'Bearer');
  assert.equal(c.token68, null);
  assert.deepEqual(params(c), {
    error: 'insufficient_user_authentication',
    error_description: 'A different authentication level is required',
    acr_values: 'myACR',
    max_age: '5',
  });
  const b = bearerChallenge(h);
  assert.equal(b.maxAge, 5);
  assert.deepEqual(b.acrValues, ['myACR']);
});

test('max_age as a quoted string', () => {
  const b = bearerChallenge('Bearer error="insufficient_user_authentication", max_age="300"');
  assert.equal(b.maxAge, 300);
  assert.equal(typeof b.maxAge, 'number');
});

test('the demo server challenge, every field', () => {
  const h =
    `Bearer realm="bank", error="insufficient_user_authentication", ` +
    `error_description="authentication too weak or too old", acr_values="${MFA_ACR} loa3", ` +
    `max_age=300, resource_metadata="http://127.0.0.1:8080/.well-known/oauth-protected-resource"`;
  assert.deepEqual(bearerChallenge(h), {
    error: 'insufficient_user_authentication',
    errorDescription: 'authentication too weak or too old',
    errorUri: null,
    acrValues: [MFA_ACR, 'loa3'],
    maxAge: 300,
    scope: [],
    realm: 'bank',
    resourceMetadata: 'http://127.0.0.1:8080/.well-known/oauth-protected-resource',
  });
});

test('several challenges in one header; the Bearer one is found', () => {
  const h =
    'Basic realm="simple", Newauth realm="apps", type=1, title="Login to \\"apps\\"", ' +
    'DPoP algs="ES256 PS256", Bearer realm="bank", error="invalid_token", scope="accounts openid"';
  const all = parseChallenges(h);
  assert.deepEqual(
    all.map((c) => c.scheme),
    ['Basic', 'Newauth', 'DPoP', 'Bearer'],
  );
  assert.deepEqual(params(all[1]), { realm: 'apps', type: '1', title: 'Login to "apps"' });
  assert.deepEqual(params(all[2]), { algs: 'ES256 PS256' });
  const b = bearerChallenge(h);
  assert.equal(b.error, 'invalid_token');
  assert.equal(b.realm, 'bank');
  assert.deepEqual(b.scope, ['accounts', 'openid']);
  assert.equal(b.maxAge, null);
  assert.deepEqual(b.acrValues, []);
});

test('token68 challenges and bare schemes', () => {
  const all = parseChallenges('Basic dXNlcjpwYXNz==, Negotiate, Bearer');
  assert.equal(all.length, 3);
  assert.equal(all[0].token68, 'dXNlcjpwYXNz==');
  assert.deepEqual(params(all[0]), {});
  assert.equal(all[1].scheme, 'Negotiate');
  assert.equal(all[1].token68, null);
  assert.equal(all[2].scheme, 'Bearer');
  assert.deepEqual(bearerChallenge('Bearer'), {
    error: null,
    errorDescription: null,
    errorUri: null,
    acrValues: [],
    maxAge: null,
    scope: [],
    realm: null,
    resourceMetadata: null,
  });
});

test('quoted-string escapes are undone', () => {
  const [c] = parseChallenges('Bearer error_description="a \\"quoted\\" back\\\\slash \\x", realm=""');
  assert.equal(c.params.error_description, 'a "quoted" back\\slash x');
  assert.equal(c.params.realm, '');
});

test('scheme and parameter names are case-insensitive; BWS and extra commas are allowed', () => {
  const h = ' ,  bEaReR   Realm = "bank" ,, ERROR=invalid_token,Max_Age = "60" ,';
  const b = bearerChallenge(h);
  assert.equal(b.realm, 'bank');
  assert.equal(b.error, 'invalid_token');
  assert.equal(b.maxAge, 60);
  const [c] = parseChallenges(h);
  assert.equal(c.scheme, 'bEaReR');
  assert.deepEqual(Object.keys(c.params), ['realm', 'error', 'max_age']);
});

test('no header, an empty header, or no Bearer challenge → null', () => {
  assert.equal(bearerChallenge(null), null);
  assert.equal(bearerChallenge(undefined), null);
  assert.equal(bearerChallenge(''), null);
  assert.equal(bearerChallenge('Basic realm="x"'), null);
  assert.deepEqual(parseChallenges(''), []);
});

test('a parameter named __proto__ stays a plain parameter', () => {
  const [c] = parseChallenges('Bearer __proto__="x", realm="r"');
  assert.equal(Object.getPrototypeOf(c.params), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(c.params, '__proto__').value, 'x');
  assert.equal(c.params.realm, 'r');
});

test('malformed headers throw', () => {
  const bad = [
    'Bearer error="unterminated',
    'Bearer realm="x", error=',
    'Bearer realm="x", error=,',
    'Bearer error "x"',
    'Bearer ="x"',
    'Bearer error="a" realm="b"', // missing comma
    'Bearer error="a", error="b"', // duplicate
    'Bearer error="a\\', // bad quoted-pair at the end
    'Bearer error="a\u0001b"', // control character
    'Bearer error=a b',
    'Bearer=x',
    '"Bearer"',
    'Bearer realm=@bank',
  ];
  for (const h of bad) {
    assert.throws(() => parseChallenges(h), ChallengeParseError, `should reject ${JSON.stringify(h)}`);
  }
  for (const h of ['Bearer max_age=-1', 'Bearer max_age="5m"', 'Bearer max_age=""', 'Bearer max_age=1.5']) {
    assert.throws(() => bearerChallenge(h), ChallengeParseError, `should reject ${JSON.stringify(h)}`);
  }
  assert.throws(() => parseChallenges(42), TypeError);
  // By the grammar these are token68 forms, not broken parameters.
  assert.equal(parseChallenges('Bearer error=')[0].token68, 'error=');
  assert.equal(parseChallenges('Bearer error')[0].token68, 'error');
});

// ---------------------------------------------------------------------------------------------
// isStepUp

test('step-up detection', () => {
  assert.equal(isStepUp(bearerChallenge(`Bearer error="insufficient_user_authentication", acr_values="${MFA_ACR}", max_age=300`)), true);
  assert.equal(isStepUp(bearerChallenge('Bearer error="invalid_token", error_description="expired"')), false);
  assert.equal(isStepUp(bearerChallenge('Bearer error="insufficient_scope", scope="accounts"')), false);
  assert.equal(isStepUp(bearerChallenge('Bearer realm="bank"')), false);
  assert.equal(isStepUp(null), false);
  assert.equal(isStepUp(undefined), false);
});

// ---------------------------------------------------------------------------------------------
// PKCE

test('PKCE S256: RFC 7636 Appendix B', async () => {
  const verifier = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
  const expected = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';
  // The appendix's value, cross-checked with node:crypto.
  assert.equal(createHash('sha256').update(verifier).digest('base64url'), expected);
  assert.equal(await pkceChallenge(verifier), expected);
});

test('PKCE S256 of random verifiers matches node:crypto', async () => {
  for (let i = 0; i < 20; i++) {
    const v = randomString(32 + i);
    assert.equal(await pkceChallenge(v), createHash('sha256').update(v).digest('base64url'));
  }
});

test('PKCE refuses verifiers outside RFC 7636 §4.1', async () => {
  await assert.rejects(pkceChallenge('short'));
  await assert.rejects(pkceChallenge('a'.repeat(129)));
  await assert.rejects(pkceChallenge('a'.repeat(42) + ' '));
  await assert.rejects(pkceChallenge(undefined));
  assert.match(await pkceChallenge('a'.repeat(43)), /^[A-Za-z0-9_-]{43}$/);
});

test('randomString: 32 bytes → 43 unreserved characters, all different', () => {
  const seen = new Set();
  for (let i = 0; i < 100; i++) {
    const s = randomString();
    assert.match(s, /^[A-Za-z0-9_-]{43}$/);
    seen.add(s);
  }
  assert.equal(seen.size, 100);
  assert.match(randomString(16), /^[A-Za-z0-9_-]{22}$/);
  assert.throws(() => randomString(4), RangeError);
});

// ---------------------------------------------------------------------------------------------
// Authorization and token requests

const discovery = {
  issuer: 'http://127.0.0.1:8080/idp',
  authorization_endpoint: 'http://127.0.0.1:8080/idp/authorize',
  token_endpoint: 'http://127.0.0.1:8080/idp/token',
};
const config = {
  issuer: 'http://127.0.0.1:8080/idp',
  client_id: 'bank-spa',
  redirect_uri: 'http://127.0.0.1:8080/',
  scope: 'openid accounts',
  resource: null,
};

test('authorize URL for a plain login', () => {
  const url = new URL(buildAuthorizeUrl(discovery, config, { state: 'st', nonce: 'no', codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM' }));
  assert.equal(url.origin + url.pathname, 'http://127.0.0.1:8080/idp/authorize');
  assert.deepEqual(Object.fromEntries(url.searchParams), {
    response_type: 'code',
    client_id: 'bank-spa',
    redirect_uri: 'http://127.0.0.1:8080/',
    scope: 'openid accounts',
    state: 'st',
    nonce: 'no',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
  });
});

test('authorize URL for a step-up carries acr_values, max_age and resource', () => {
  const challenge = bearerChallenge(`Bearer error="insufficient_user_authentication", acr_values="${MFA_ACR} loa3", max_age="300"`);
  const href = buildAuthorizeUrl(
    { ...discovery, authorization_endpoint: 'https://id.example.com/authorize?tenant=a&b=1' },
    { ...config, resource: 'https://bank.example.com/' },
    { state: 's t&=', nonce: 'n', codeChallenge: 'c', acrValues: challenge.acrValues, maxAge: challenge.maxAge },
  );
  const url = new URL(href);
  assert.equal(url.searchParams.get('tenant'), 'a', 'existing query parameters are kept');
  assert.equal(url.searchParams.get('b'), '1');
  assert.equal(url.searchParams.get('acr_values'), `${MFA_ACR} loa3`);
  assert.equal(url.searchParams.get('max_age'), '300');
  assert.equal(url.searchParams.get('resource'), 'https://bank.example.com/');
  assert.equal(url.searchParams.get('state'), 's t&=', 'values are encoded');
  assert.equal(href.includes('s t&='), false);
  // max_age 0 is a real value (authenticate now), not "absent".
  const zero = new URL(buildAuthorizeUrl(discovery, config, { state: 's', nonce: 'n', codeChallenge: 'c', maxAge: 0, acrValues: [] }));
  assert.equal(zero.searchParams.get('max_age'), '0');
  assert.equal(zero.searchParams.has('acr_values'), false);
  assert.equal(zero.searchParams.has('resource'), false);
});

test('authorize URL refuses missing pieces', () => {
  assert.throws(() => buildAuthorizeUrl({}, config, { state: 's', nonce: 'n', codeChallenge: 'c' }));
  assert.throws(() => buildAuthorizeUrl(discovery, config, { state: '', nonce: 'n', codeChallenge: 'c' }));
  assert.throws(() => buildAuthorizeUrl(discovery, config, { state: 's', nonce: 'n', codeChallenge: 'c', maxAge: -1 }));
});

test('token request body', () => {
  const body = tokenRequestBody({ ...config, resource: 'urn:bank' }, { code: 'abc', codeVerifier: 'v'.repeat(43) });
  assert.deepEqual(Object.fromEntries(body), {
    grant_type: 'authorization_code',
    code: 'abc',
    redirect_uri: 'http://127.0.0.1:8080/',
    client_id: 'bank-spa',
    code_verifier: 'v'.repeat(43),
    resource: 'urn:bank',
  });
  assert.equal(tokenRequestBody(config, { code: 'a', codeVerifier: 'b' }).has('resource'), false);
});

test('JWT payload decoding (display only)', () => {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const jwt = `${enc({ alg: 'ES256' })}.${enc({ sub: 'alice', nonce: 'ü→x' })}.sig`;
  assert.deepEqual(decodeJwtPayload(jwt), { sub: 'alice', nonce: 'ü→x' });
  assert.equal(decodeJwtPayload('not a jwt'), null);
  assert.equal(decodeJwtPayload('a.b'), null);
  assert.equal(decodeJwtPayload(`a.${Buffer.from('[1]').toString('base64url')}.c`), null);
  assert.equal(decodeJwtPayload(undefined), null);
});

// ---------------------------------------------------------------------------------------------
// Pending transfer

class FakeStorage {
  constructor() {
    this.map = new Map();
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.map.set(k, String(v));
  }
  removeItem(k) {
    this.map.delete(k);
  }
}

test('a pending transfer is taken exactly once', () => {
  const s = new FakeStorage();
  assert.equal(takePending(s), null);
  const t = { to: 'DE89370400440532013000', amount: '25.00', idempotencyKey: 'k-1' };
  savePending(s, t);
  assert.ok(s.getItem(PENDING_KEY));
  assert.deepEqual(takePending(s), t);
  assert.equal(takePending(s), null);
  assert.equal(s.getItem(PENDING_KEY), null);
});

test('a stale, corrupt or incomplete pending transfer is dropped', () => {
  const s = new FakeStorage();
  const t = { to: 'DE89370400440532013000', amount: '25.00', idempotencyKey: 'k-1' };
  savePending(s, t, 1_000_000);
  assert.equal(takePending(s, { now: 1_000_000 + 11 * 60 * 1000 }), null);
  assert.equal(s.getItem(PENDING_KEY), null, 'removed even when stale');
  savePending(s, t, 1_000_000);
  assert.deepEqual(takePending(s, { now: 1_000_000 + 60 * 1000 }), t);
  s.setItem(PENDING_KEY, '{not json');
  assert.equal(takePending(s), null);
  assert.equal(s.getItem(PENDING_KEY), null);
  s.setItem(PENDING_KEY, JSON.stringify({ to: 'x', savedAt: Date.now() }));
  assert.equal(takePending(s), null);
  assert.throws(() => savePending(s, { to: 'x', amount: '1' }));
});
