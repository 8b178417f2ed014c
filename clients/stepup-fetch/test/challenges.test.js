// parseChallenges (RFC 9110 §11) and stepUpRequest (which responses ask for a step-up).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ChallengeParseError, parseChallenges, stepUpRequest } from '../src/index.js';
import { MFA } from './helpers.js';

const params = (/** @type {any} */ c) => ({ ...c.params });
const response = (status, header) =>
  new Response(null, { status, headers: header === null ? {} : { 'WWW-Authenticate': header } });

test('RFC 9470 §3 example challenge: max_age as a token', () => {
  const h = 'Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="myACR", max_age=5';
  const all = parseChallenges(h);
  assert.equal(all.length, 1);
  assert.equal(all[0].scheme, 'Bearer');
  assert.equal(all[0].token68, null);
  assert.deepEqual(params(all[0]), {
    error: 'insufficient_user_authentication',
    error_description: 'A different authentication level is required',
    acr_values: 'myACR',
    max_age: '5',
  });
  const s = stepUpRequest(response(401, h));
  assert.equal(s?.reason, 'insufficient_user_authentication');
  assert.deepEqual(s?.acrValues, ['myACR']);
  assert.equal(s?.maxAge, 5);
  assert.deepEqual(s?.scope, []);
  assert.equal(s?.claims, null);
  assert.equal(s?.status, 401);
});

test('several challenges in one header: Basic token68, Newauth with escapes, DPoP, Bearer', () => {
  const h =
    'Basic dXNlcjpwYXNz==, Newauth realm="apps", type=1, title="Login to \\"apps\\"", ' +
    'DPoP algs="ES256 PS256", error="invalid_token", Bearer realm="bank", error="insufficient_scope", scope="accounts openid"';
  const all = parseChallenges(h);
  assert.deepEqual(all.map((c) => c.scheme), ['Basic', 'Newauth', 'DPoP', 'Bearer']);
  assert.equal(all[0].token68, 'dXNlcjpwYXNz==');
  assert.deepEqual(params(all[1]), { realm: 'apps', type: '1', title: 'Login to "apps"' });
  assert.deepEqual(params(all[2]), { algs: 'ES256 PS256', error: 'invalid_token' });
  const s = stepUpRequest(response(403, h));
  assert.equal(s?.reason, 'insufficient_scope');
  assert.deepEqual(s?.scope, ['accounts', 'openid']);
  assert.equal(s?.challenge.scheme, 'Bearer');
  assert.equal(s?.challenge.params.realm, 'bank');
});

test('two header fields joined by fetch (", ") parse as one list; the Bearer one is chosen', () => {
  const headers = new Headers();
  headers.append('WWW-Authenticate', 'DPoP error="use_dpop_nonce", algs="ES256"');
  headers.append('WWW-Authenticate', `Bearer error="insufficient_user_authentication", acr_values="${MFA}", max_age="300"`);
  const s = stepUpRequest(new Response(null, { status: 401, headers }));
  assert.equal(s?.challenge.scheme, 'Bearer');
  assert.deepEqual(s?.acrValues, [MFA]);
  assert.equal(s?.maxAge, 300, 'max_age as a quoted-string too');
});

test('scheme and parameter names are case-insensitive; values keep their case', () => {
  const h = 'bEaReR ERROR="insufficient_user_authentication", Acr_Values="Loa3 MFA", MAX_AGE=0';
  const [c] = parseChallenges(h);
  assert.equal(c.scheme, 'bEaReR');
  assert.deepEqual(params(c), { error: 'insufficient_user_authentication', acr_values: 'Loa3 MFA', max_age: '0' });
  const s = stepUpRequest(response(401, h));
  assert.deepEqual(s?.acrValues, ['Loa3', 'MFA']);
  assert.equal(s?.maxAge, 0);
});

test('quoted-strings: escapes, commas, equals signs, empty values, obs-text, BWS around "="', () => {
  const [c] = parseChallenges('Bearer a="x, y=z", b="back\\\\slash \\"q\\"", c="", d="é", e = "sp"');
  assert.deepEqual(params(c), { a: 'x, y=z', b: 'back\\slash "q"', c: '', d: 'é', e: 'sp' });
});

test('token68 forms and bare schemes', () => {
  const all = parseChallenges('Negotiate, Basic abc+/._~-==, Bearer, DPoP');
  assert.deepEqual(all.map((c) => [c.scheme, c.token68]), [['Negotiate', null], ['Basic', 'abc+/._~-=='], ['Bearer', null], ['DPoP', null]]);
  assert.deepEqual(parseChallenges(''), []);
  assert.deepEqual(parseChallenges(null), []);
  assert.deepEqual(parseChallenges(' , ,'), []);
});

test('a parameter called __proto__ stays an own property', () => {
  const [c] = parseChallenges('Bearer __proto__="x", error="e"');
  assert.equal(Object.getPrototypeOf(c.params), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(c.params, '__proto__')?.value, 'x');
});

test('malformed headers throw ChallengeParseError', () => {
  for (const bad of [
    'Bearer error="unterminated',
    'Bearer realm="x", error=',
    'Bearer error= , scope="x"',
    'Bearer =x',
    'Bearer error="a", error="b"',
    'Bearer error="a" scope="b"',
    'Bearer\terror="x"',
    'Bearer error="bad\u0001char"',
    'Bearer error="trailing backslash\\',
    '"Bearer"',
    'Bearer error="x", "y"',
    'Bearer a=b c',
  ]) {
    assert.throws(() => parseChallenges(bad), ChallengeParseError, `should throw: ${bad}`);
  }
  assert.throws(() => parseChallenges(/** @type {any} */ (42)), TypeError);
  // Valid, though they look odd: a token68 that ends in "=", and a bare scheme after a comma.
  assert.deepEqual(parseChallenges('Bearer error=').map((c) => c.token68), ['error=']);
  assert.deepEqual(parseChallenges('Bearer error="a", scope').map((c) => c.scheme), ['Bearer', 'scope']);
});

test('claims challenge (Entra): base64 JSON decoded to its text, standard or URL-safe, padded or not', () => {
  const json = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}';
  const b64 = Buffer.from(json).toString('base64');
  assert.equal(b64, 'eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19');
  const entra = (claims) =>
    `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims", claims="${claims}"`;
  for (const enc of [b64, Buffer.from(json).toString('base64url'), Buffer.from(`${json} `).toString('base64')]) {
    const s = stepUpRequest(response(401, entra(enc)));
    assert.equal(s?.reason, 'insufficient_claims');
    assert.deepEqual(JSON.parse(s?.claims ?? ''), JSON.parse(json));
  }
  const accented = '{"id_token":{"name":{"value":"Zoë"}}}';
  assert.equal(stepUpRequest(response(401, entra(Buffer.from(accented).toString('base64'))))?.claims, accented, 'UTF-8');
  for (const bad of ['', 'not base64!', Buffer.from('[1,2]').toString('base64'), Buffer.from('{oops').toString('base64')]) {
    assert.equal(stepUpRequest(response(401, entra(bad))), null, `claims ${bad} cannot be answered`);
  }
});

test('only the three step-up challenges with their status ask for a step-up', () => {
  const ual = `Bearer error="insufficient_user_authentication", acr_values="${MFA}"`;
  const scope = 'Bearer error="insufficient_scope", scope="accounts"';
  assert.ok(stepUpRequest(response(401, ual)));
  assert.ok(stepUpRequest(response(403, scope)));
  for (const [status, h] of [
    [403, ual],
    [401, scope],
    [400, ual],
    [200, ual],
    [401, 'Bearer error="invalid_token"'],
    [401, 'Bearer realm="api"'],
    [401, null],
    [401, `DPoP error="insufficient_user_authentication", acr_values="${MFA}"`],
    [401, `Bearer error="insufficient_user_authentication", max_age="-1"`],
    [401, `Bearer error="insufficient_user_authentication", max_age="3e2"`],
    [401, `Bearer error="insufficient_user_authentication", acr_values="${MFA}`],
  ]) {
    assert.equal(stepUpRequest(response(/** @type {number} */ (status), /** @type {any} */ (h))), null, `${status} ${h}`);
  }
});
