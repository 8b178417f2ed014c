// node --test examples/bank-demo/web/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

import {
  MFA_ACR,
  MAX_AMOUNT_CENTS,
  ChallengeParseError,
  PENDING_KEY,
  bearerChallenge,
  buildAuthorizeUrl,
  buildLogoutUrl,
  challengeSummary,
  checkTransfer,
  decodeJwtPayload,
  describeStepUp,
  describeTransfer,
  fieldErrorText,
  formatCents,
  isStepUp,
  loginErrorMessage,
  normalizeIban,
  parseAmount,
  parseBalance,
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

// ---------------------------------------------------------------------------------------------
// RP-Initiated Logout

test('logout URL: every parameter of RP-Initiated Logout §2', () => {
  const d = { ...discovery, end_session_endpoint: 'http://127.0.0.1:8080/idp/logout' };
  const url = new URL(buildLogoutUrl(d, config, { idToken: 'h.p.s', state: 'st' }));
  assert.equal(url.origin + url.pathname, 'http://127.0.0.1:8080/idp/logout');
  assert.deepEqual(Object.fromEntries(url.searchParams), {
    id_token_hint: 'h.p.s',
    post_logout_redirect_uri: 'http://127.0.0.1:8080/',
    client_id: 'bank-spa',
    state: 'st',
  });
});

test('logout URL keeps the endpoint query, encodes values, and goes without a hint when there is none', () => {
  const d = { ...discovery, end_session_endpoint: 'https://id.example.com/logout?tenant=a' };
  const href = buildLogoutUrl(d, { ...config, redirect_uri: 'https://bank.example.com/?x=1&y=2' }, { idToken: null, state: 's t&=' });
  const url = new URL(href);
  assert.equal(url.searchParams.get('tenant'), 'a');
  assert.equal(url.searchParams.has('id_token_hint'), false);
  assert.equal(url.searchParams.get('post_logout_redirect_uri'), 'https://bank.example.com/?x=1&y=2');
  assert.equal(url.searchParams.get('state'), 's t&=');
  assert.equal(href.includes('s t&='), false);
  assert.equal(new URL(buildLogoutUrl(d, config, { idToken: '', state: 's' })).searchParams.has('id_token_hint'), false);
});

test('logout URL: null without end_session_endpoint; a state is required', () => {
  assert.equal(buildLogoutUrl(discovery, config, { idToken: 'h.p.s', state: 's' }), null);
  assert.equal(buildLogoutUrl({ ...discovery, end_session_endpoint: '' }, config, { state: 's' }), null);
  assert.equal(buildLogoutUrl({ ...discovery, end_session_endpoint: 42 }, config, { state: 's' }), null);
  assert.equal(buildLogoutUrl(null, config, { state: 's' }), null);
  const d = { ...discovery, end_session_endpoint: 'http://127.0.0.1:8080/idp/logout' };
  assert.throws(() => buildLogoutUrl(d, config, { idToken: 'h.p.s', state: '' }));
  assert.throws(() => buildLogoutUrl(d, config, { idToken: 'h.p.s' }));
  assert.throws(() => buildLogoutUrl({ end_session_endpoint: 'not a url' }, config, { state: 's' }));
});

// ---------------------------------------------------------------------------------------------
// What a step-up asks

const demoChallenge = bearerChallenge(
  `Bearer realm="bank", error="insufficient_user_authentication", error_description="authentication too weak or too old", ` +
    `acr_values="${MFA_ACR}", max_age=300, resource_metadata="http://127.0.0.1:8080/.well-known/oauth-protected-resource"`,
);

test('challenge summary: scheme, error, acr_values, max_age and nothing else', () => {
  assert.deepEqual(challengeSummary(demoChallenge), {
    scheme: 'Bearer',
    error: 'insufficient_user_authentication',
    acr_values: [MFA_ACR],
    max_age: 300,
  });
  assert.deepEqual(challengeSummary(bearerChallenge('Bearer error="insufficient_user_authentication"')), {
    scheme: 'Bearer',
    error: 'insufficient_user_authentication',
    acr_values: [],
    max_age: null,
  });
});

test('step-up described for people', () => {
  assert.equal(describeStepUp(demoChallenge), `multi-factor (acr ${MFA_ACR}), at most 300 s old`);
  assert.equal(describeStepUp({ acrValues: [MFA_ACR, 'loa3'], maxAge: null }), `one of multi-factor (acr ${MFA_ACR}), acr loa3`);
  assert.equal(describeStepUp({ acrValues: [], maxAge: 60 }), 'a new sign-in, at most 60 s old');
  assert.equal(describeStepUp({ acrValues: ['gold'], maxAge: 0 }), 'acr gold, made just now');
});

// ---------------------------------------------------------------------------------------------
// The bank's input rules

test('amounts: the bank\'s rule (ledger::parse_amount and its test vectors)', () => {
  assert.deepEqual(parseAmount('25.00'), { cents: 2500 });
  assert.deepEqual(parseAmount('25'), { cents: 2500 });
  assert.deepEqual(parseAmount('0.5'), { cents: 50 });
  assert.deepEqual(parseAmount('0.01'), { cents: 1 });
  assert.deepEqual(parseAmount('1000000000.00'), { cents: MAX_AMOUNT_CENTS });
  assert.deepEqual(parseAmount('0012.30'), { cents: 1230 });
  for (const bad of ['0', '0.00', '-1', '1.234', 'abc', '', '.5', '5.', '1e3', ' 5', '99999999999', '1000000000.01', '9999999999', '1,5', '+5', '5.0.0', '٣']) {
    assert.equal(typeof parseAmount(bad).error, 'string', JSON.stringify(bad));
    assert.equal(parseAmount(bad).cents, undefined, JSON.stringify(bad));
  }
  assert.match(parseAmount('1.234').error, /2 decimals/);
  assert.match(parseAmount('0').error, /above zero/);
  assert.equal(typeof parseAmount(undefined).error, 'string');
});

test('balances and cents as the bank writes them', () => {
  assert.equal(parseBalance('1000.00'), 100000);
  assert.equal(parseBalance('0.00'), 0);
  assert.equal(parseBalance('-5.10'), -510);
  assert.equal(parseBalance(' 975.00 '), 97500);
  for (const bad of ['', '1000', '1.5', 'abc', null, undefined]) assert.equal(parseBalance(bad), null, String(bad));
  assert.equal(formatCents(2500), '25.00');
  assert.equal(formatCents(5), '0.05');
  assert.equal(formatCents(-510), '-5.10');
  assert.equal(formatCents(MAX_AMOUNT_CENTS), '1000000000.00');
});

test('IBANs: the bank\'s rule (ledger::normalize_iban)', () => {
  assert.deepEqual(normalizeIban('DE89 3704 0044 0532 0130 00'), { iban: 'DE89370400440532013000' });
  assert.deepEqual(normalizeIban('de89370400440532013000'), { iban: 'DE89370400440532013000' });
  assert.deepEqual(normalizeIban('GB82 WEST 1234 5698 7654 32'), { iban: 'GB82WEST12345698765432' });
  assert.match(normalizeIban('DE88370400440532013000').error, /check digit/);
  for (const bad of ['12345', '', 'DE89-3704-0044-0532-0130-00', 'DE8937040044053201300ß', 'DE89\t370400440532013000']) {
    assert.equal(typeof normalizeIban(bad).error, 'string', JSON.stringify(bad));
  }
});

test('a transfer is checked before it is sent', () => {
  const known = { balance: '1000.00', account: 'DE75512108001245126199' };
  assert.equal(checkTransfer({ to: 'DE89370400440532013000', amount: '25.00' }, known), null);
  assert.equal(checkTransfer({ to: 'DE89370400440532013000', amount: '1000' }, known), null, 'the whole balance may go');
  assert.deepEqual(checkTransfer({ to: 'DE89370400440532013000', amount: '1000.01' }, known), {
    field: 'amount',
    message: 'This is more than your balance of 1000.00 EUR.',
  });
  assert.equal(checkTransfer({ to: 'DE89370400440532013000', amount: '1.234' }, known).field, 'amount');
  assert.equal(checkTransfer({ to: 'DE88370400440532013000', amount: '25.00' }, known).field, 'to');
  assert.deepEqual(checkTransfer({ to: 'de75 5121 0800 1245 1261 99', amount: '1' }, known), { field: 'to', message: 'This is your own account.' });
  // Nothing known about the balance: only the rules.
  assert.equal(checkTransfer({ to: 'DE89370400440532013000', amount: '5000' }, { balance: '' }), null);
  assert.equal(checkTransfer({ to: 'DE89370400440532013000', amount: '5000' }), null);
  assert.equal(checkTransfer({ to: 'DE89370400440532013000', amount: '0.01' }, { balance: '0.00' }).field, 'amount');
});

// ---------------------------------------------------------------------------------------------
// Messages

test('field errors name the field once', () => {
  // The bank's own descriptions (examples/bank-demo/src/lib.rs and ledger.rs).
  assert.equal(fieldErrorText('amount', 'amount must have at most two decimals'), 'The amount must have at most two decimals.');
  assert.equal(fieldErrorText('amount', 'amount must be a positive decimal number such as "25.00"'), 'The amount must be a positive decimal number such as "25.00".');
  assert.equal(fieldErrorText('amount', 'amount is above the balance'), 'The amount is above the balance.');
  assert.equal(fieldErrorText('to', 'to is your own account'), 'The recipient IBAN is your own account.');
  assert.equal(fieldErrorText('to', 'to must be an IBAN such as DE89370400440532013000'), 'The recipient IBAN must be an IBAN such as DE89370400440532013000.');
  // A description that does not start with the field's name is kept as it is.
  assert.equal(fieldErrorText('amount', 'too many requests.'), 'Too many requests.');
  assert.equal(fieldErrorText('today', 'today is not a field'), 'Today is not a field.');
  assert.equal(fieldErrorText(undefined, 'the body is not a JSON object'), 'The body is not a JSON object.');
  assert.equal(fieldErrorText('amount', 'amounts differ'), 'Amounts differ.');
});

const pendingTransfer = { to: 'DE89370400440532013000', amount: '25', idempotencyKey: 'k' };

test('a cancelled step-up says the transfer was not sent', () => {
  assert.equal(describeTransfer(pendingTransfer), 'the transfer of 25.00 EUR to DE89370400440532013000');
  assert.equal(
    loginErrorMessage('access_denied', 'the user cancelled', { stepUp: true, transfer: pendingTransfer }),
    'Second factor cancelled: the transfer of 25.00 EUR to DE89370400440532013000 was not sent.',
  );
  assert.equal(loginErrorMessage('access_denied', null, { stepUp: true }), 'Second factor cancelled.');
  assert.equal(loginErrorMessage('access_denied', 'the user cancelled'), 'Login cancelled: you are not logged in.');
  assert.equal(loginErrorMessage('login_required', 'x'), 'You need to log in again.');
  assert.equal(
    loginErrorMessage('server_error', 'the provider broke.', { stepUp: true, transfer: pendingTransfer }),
    'The stronger sign-in did not complete (the provider broke): the transfer of 25.00 EUR to DE89370400440532013000 was not sent.',
  );
  assert.equal(loginErrorMessage('temporarily_unavailable', ''), 'Login did not complete (temporarily_unavailable).');
});

test('the SPA writes one quote style: straight ASCII quotes or none', () => {
  for (const file of ['app.mjs', 'stepup.mjs', 'index.html']) {
    const text = readFileSync(new URL(file, import.meta.url), 'utf8');
    assert.doesNotMatch(text, /[\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u00ab\u00bb]/, `${file} has typographic quotes`);
  }
});
