// createStepUpFetch against a real HTTP API on 127.0.0.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { PENDING_KEY, StepUpError, createStepUpFetch } from '../src/index.js';
import { MFA, MemoryStorage, sleep, startApi, stepUpChallenge, tokens } from './helpers.js';

/** An API that wants `token-new` for everything: others get `challenge`, with `status`. */
const wantsNewToken = (challenge = stepUpChallenge(), status = 401) => (r) =>
  r.token === 'token-new' ? undefined : { status, headers: { 'WWW-Authenticate': challenge } };

test('sends Authorization: Bearer from getAccessToken, replacing one given by the caller', async (t) => {
  const api = await startApi(() => undefined);
  t.after(api.close);
  const f = createStepUpFetch({ getAccessToken: async () => 'tok-1', reauthenticate: async () => assert.fail('no step-up') });
  const res = await f(`${api.url}/a`, { headers: { Authorization: 'Bearer forged', 'X-Trace': '7' } });
  assert.equal(res.status, 200);
  assert.equal(api.requests[0].headers.authorization, 'Bearer tok-1');
  assert.equal(api.requests[0].headers['x-trace'], '7');
});

test('401 insufficient_user_authentication: reauthenticate with the challenge, then one retry with the new token', async (t) => {
  const api = await startApi(wantsNewToken());
  t.after(api.close);
  const tok = tokens();
  const calls = [];
  const f = createStepUpFetch({
    getAccessToken: tok.get,
    reauthenticate: async (req) => {
      calls.push(req);
      tok.set('token-new');
    },
  });
  const res = await f(`${api.url}/api/transfers`, { method: 'POST', body: '{"amount":"1.00"}' });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ok: true, n: 2 });
  assert.equal(calls.length, 1);
  const [req] = calls;
  assert.equal(req.reason, 'insufficient_user_authentication');
  assert.deepEqual(req.acrValues, [MFA]);
  assert.equal(req.maxAge, 300);
  assert.deepEqual(req.scope, []);
  assert.equal(req.claims, null);
  assert.equal(req.challenge.scheme, 'Bearer');
  assert.equal(req.challenge.params.realm, 'api');
  assert.equal(req.method, 'POST');
  assert.equal(req.url, `${api.url}/api/transfers`);
  assert.deepEqual(api.requests.map((r) => r.token), ['token-old', 'token-new']);
});

test('403 insufficient_scope: reauthenticate with the scopes named, then one retry', async (t) => {
  const api = await startApi(wantsNewToken('Bearer realm="api", error="insufficient_scope", scope="accounts:write payments"', 403));
  t.after(api.close);
  const tok = tokens();
  const calls = [];
  const f = createStepUpFetch({ getAccessToken: tok.get, reauthenticate: async (r) => { calls.push(r); tok.set('token-new'); } });
  const res = await f(`${api.url}/x`);
  assert.equal(res.status, 200);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].reason, 'insufficient_scope');
  assert.deepEqual(calls[0].scope, ['accounts:write', 'payments']);
  assert.deepEqual(calls[0].acrValues, []);
  assert.equal(calls[0].maxAge, null);
  assert.equal(calls[0].status, 403);
  assert.equal(api.requests.length, 2);
});

test('401 insufficient_claims (Entra): reauthenticate with the decoded claims JSON, then one retry', async (t) => {
  const json = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}';
  const api = await startApi(wantsNewToken(`Bearer realm="", error="insufficient_claims", claims="${Buffer.from(json).toString('base64')}"`));
  t.after(api.close);
  const tok = tokens();
  const calls = [];
  const f = createStepUpFetch({ getAccessToken: tok.get, reauthenticate: async (r) => { calls.push(r); tok.set('token-new'); } });
  assert.equal((await f(`${api.url}/x`)).status, 200);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].reason, 'insufficient_claims');
  assert.equal(calls[0].claims, json);
});

test('every other response is returned untouched, including other 401s', async (t) => {
  const cases = [
    [401, 'Bearer realm="api", error="invalid_token", error_description="expired"'],
    [401, 'Bearer realm="api"'],
    [401, null],
    [401, 'Bearer error="insufficient_user_authentication", acr_values="unterminated'],
    [401, 'Bearer error="insufficient_claims", claims="not-json"'],
    [403, stepUpChallenge()],
    [403, 'Bearer error="invalid_token"'],
    [401, 'Bearer error="insufficient_scope", scope="a"'],
    [400, stepUpChallenge()],
    [500, null],
    [200, stepUpChallenge()],
  ];
  let i = 0;
  const api = await startApi(() => {
    const [status, h] = cases[i++];
    return { status, headers: h ? { 'WWW-Authenticate': h } : {}, body: `{"case":${i}}` };
  });
  t.after(api.close);
  const f = createStepUpFetch({ getAccessToken: () => 'tok', reauthenticate: async () => assert.fail('no step-up expected') });
  for (const [n, [status, h]] of cases.entries()) {
    const res = await f(`${api.url}/x`, { method: 'POST', body: 'b' });
    assert.equal(res.status, status);
    assert.equal(res.headers.get('www-authenticate'), h);
    assert.deepEqual(await res.json(), { case: n + 1 }, 'its body is readable');
  }
  assert.equal(api.requests.length, cases.length, 'no retries');
});

test('5 parallel challenged calls share one reauthenticate, then each retries once', async (t) => {
  const api = await startApi(wantsNewToken());
  t.after(api.close);
  const tok = tokens();
  let calls = 0;
  const f = createStepUpFetch({
    getAccessToken: tok.get,
    reauthenticate: async () => {
      calls++;
      await sleep(100);
      tok.set('token-new');
    },
  });
  const results = await Promise.all([1, 2, 3, 4, 5].map((n) => f(`${api.url}/r/${n}`, { method: 'POST', body: String(n) })));
  assert.equal(calls, 1, 'exactly one reauthenticate');
  assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200, 200]);
  assert.equal(api.requests.length, 10);
  for (const n of [1, 2, 3, 4, 5]) {
    const mine = api.requests.filter((r) => r.path === `/r/${n}`);
    assert.deepEqual(mine.map((r) => r.token), ['token-old', 'token-new'], `request ${n}: once with each token`);
  }
});

test('a request sent with the old token whose challenge arrives after the re-authentication ended retries without another', async (t) => {
  const api = await startApi(async (r) => {
    if (r.path === '/slow' && r.token === 'token-old') await sleep(300);
    return wantsNewToken()(r);
  });
  t.after(api.close);
  const tok = tokens();
  let calls = 0;
  const f = createStepUpFetch({ getAccessToken: tok.get, reauthenticate: async () => { calls++; tok.set('token-new'); } });
  const [slow, fast] = await Promise.all([f(`${api.url}/slow`), f(`${api.url}/fast`)]);
  assert.equal(calls, 1);
  assert.equal(slow.status, 200);
  assert.equal(fast.status, 200);
  assert.equal(api.requests.length, 4);
});

test('a retry that is challenged again rejects with StepUpError (status, challenge), never loops', async (t) => {
  const api = await startApi(() => ({ status: 401, headers: { 'WWW-Authenticate': stepUpChallenge(MFA, 60) } }));
  t.after(api.close);
  let n = 0;
  let calls = 0;
  const f = createStepUpFetch({ getAccessToken: () => `tok-${n}`, reauthenticate: async () => { calls++; n++; } });
  const err = await f(`${api.url}/x`, { method: 'POST', body: 'x' }).then(() => null, (e) => e);
  assert.ok(err instanceof StepUpError, String(err));
  assert.equal(err.reason, 'still_challenged');
  assert.equal(err.status, 401);
  assert.equal(err.challenge.scheme, 'Bearer');
  assert.equal(err.challenge.params.error, 'insufficient_user_authentication');
  assert.equal(err.stepUp.maxAge, 60);
  assert.equal(err.response.status, 401);
  assert.equal(calls, 1);
  assert.equal(api.requests.length, 2);
  // The next call may step up again (once), still without a loop.
  await assert.rejects(f(`${api.url}/x`), StepUpError);
  assert.equal(calls, 2);
  assert.equal(api.requests.length, 4);
});

test('max_age=0: one re-authentication asking for it, one retry, then StepUpError', async (t) => {
  const api = await startApi(() => ({ status: 401, headers: { 'WWW-Authenticate': stepUpChallenge(MFA, 0) } }));
  t.after(api.close);
  let n = 0;
  const seen = [];
  const f = createStepUpFetch({ getAccessToken: () => `tok-${n}`, reauthenticate: async (r) => { seen.push(r.maxAge); n++; } });
  const err = await f(`${api.url}/x`).then(() => null, (e) => e);
  assert.ok(err instanceof StepUpError);
  assert.equal(err.reason, 'still_challenged');
  assert.deepEqual(seen, [0]);
  assert.equal(api.requests.length, 2);
});

test('reauthenticate resolving without a new token: StepUpError token_unchanged, no retry sent', async (t) => {
  const api = await startApi(wantsNewToken());
  t.after(api.close);
  const f = createStepUpFetch({ getAccessToken: () => 'token-old', reauthenticate: async () => {} });
  await assert.rejects(f(`${api.url}/x`), (e) => e instanceof StepUpError && e.reason === 'token_unchanged');
  assert.equal(api.requests.length, 1);
});

test('a rejected re-authentication rejects every waiting request with its error; a later call starts a new one', async (t) => {
  const api = await startApi(wantsNewToken());
  t.after(api.close);
  const tok = tokens();
  const cancelled = new Error('cancelled by the user');
  let calls = 0;
  const f = createStepUpFetch({
    getAccessToken: tok.get,
    reauthenticate: async () => {
      calls++;
      await sleep(50);
      if (calls === 1) throw cancelled;
      tok.set('token-new');
    },
  });
  const outcomes = await Promise.allSettled([f(`${api.url}/a`), f(`${api.url}/b`), f(`${api.url}/c`)]);
  assert.deepEqual(outcomes.map((o) => o.status), ['rejected', 'rejected', 'rejected']);
  for (const o of outcomes) assert.equal(/** @type {PromiseRejectedResult} */ (o).reason, cancelled);
  assert.equal(calls, 1);
  assert.equal(api.requests.length, 3, 'nothing retried');
  assert.equal((await f(`${api.url}/d`)).status, 200);
  assert.equal(calls, 2);
});

test('method, URL, headers (but Authorization) and body are replayed exactly', async (t) => {
  const api = await startApi(wantsNewToken());
  t.after(api.close);
  const tok = tokens();
  const f = createStepUpFetch({ getAccessToken: tok.get, reauthenticate: async () => tok.set('token-new') });
  const bytes = new Uint8Array([0, 1, 2, 250, 255, 10, 13]);
  const bodies = [
    ['PUT', '{"to":"DE89370400440532013000","amount":"25.00","note":"é ✓"}', 'application/json; charset=utf-8'],
    ['POST', new URLSearchParams({ a: '1', b: 'two words' }), null],
    ['PATCH', bytes, 'application/octet-stream'],
  ];
  for (const [method, body, type] of bodies) {
    api.requests.length = 0;
    const headers = { 'X-Request-Id': 'r-42', Accept: 'application/json', 'X-Empty': '', ...(type ? { 'Content-Type': type } : {}) };
    const res = await f(`${api.url}/p/a%20b?x=1&y=%C3%A9#frag`, { method: /** @type {string} */ (method), headers, body: /** @type {any} */ (body) });
    assert.equal(res.status, 200);
    const [a, b] = api.requests;
    assert.equal(api.requests.length, 2);
    assert.equal(b.method, method);
    assert.equal(b.path, '/p/a%20b?x=1&y=%C3%A9');
    assert.equal(a.path, b.path);
    assert.deepEqual(b.body, a.body);
    const sent = body instanceof Uint8Array ? Buffer.from(body) : Buffer.from(String(body));
    assert.deepEqual(b.body, sent);
    const strip = (/** @type {Record<string, string>} */ h) => {
      const { authorization, ...rest } = h;
      return rest;
    };
    assert.deepEqual(strip(b.headers), strip(a.headers));
    assert.equal(b.headers['x-request-id'], 'r-42');
    assert.equal(b.headers['x-empty'], '');
    assert.equal(a.headers.authorization, 'Bearer token-old');
    assert.equal(b.headers.authorization, 'Bearer token-new');
    tok.set('token-old');
  }
});

test('a Request object with a streamed body is replayed too (without storage)', async (t) => {
  const api = await startApi(wantsNewToken());
  t.after(api.close);
  const tok = tokens();
  const f = createStepUpFetch({ getAccessToken: tok.get, reauthenticate: async () => tok.set('token-new') });
  const stream = new ReadableStream({
    start(c) {
      c.enqueue(new TextEncoder().encode('chunk-1,'));
      c.enqueue(new TextEncoder().encode('chunk-2'));
      c.close();
    },
  });
  const req = new Request(`${api.url}/s`, { method: 'POST', body: stream, duplex: 'half', headers: { 'Content-Type': 'text/csv' } });
  const res = await f(req);
  assert.equal(res.status, 200);
  assert.deepEqual(api.requests.map((r) => r.body.toString()), ['chunk-1,chunk-2', 'chunk-1,chunk-2']);
});

test('POST, PATCH and DELETE get one Idempotency-Key (128 random bits), reused by the retry; others get none', async (t) => {
  const api = await startApi(wantsNewToken());
  t.after(api.close);
  const tok = tokens();
  const f = createStepUpFetch({ getAccessToken: tok.get, reauthenticate: async () => tok.set('token-new') });
  const keys = new Set();
  for (const method of ['POST', 'PATCH', 'DELETE', 'post']) {
    api.requests.length = 0;
    tok.set('token-old');
    await f(`${api.url}/k`, { method, body: method === 'DELETE' ? undefined : 'x' });
    const [a, b] = api.requests;
    const key = a.headers['idempotency-key'];
    assert.match(key, /^[A-Za-z0-9_-]{22}$/, `${method}: ${key}`);
    assert.equal(Buffer.from(key, 'base64url').length, 16);
    assert.equal(b.headers['idempotency-key'], key, `${method}: the retry carries the same key`);
    assert.equal(a.headers['idempotency-key'].split(',').length, 1, 'added once');
    keys.add(key);
  }
  assert.equal(keys.size, 4, 'a new key per request');
  for (const method of ['GET', 'PUT', 'HEAD', 'OPTIONS']) {
    api.requests.length = 0;
    tok.set('token-old');
    await f(`${api.url}/k`, { method, body: method === 'PUT' ? 'x' : undefined });
    assert.equal(api.requests.length, 2);
    assert.ok(api.requests.every((r) => !('idempotency-key' in r.headers)), `${method} gets no key`);
  }
  // A key given by the caller is kept, not replaced.
  api.requests.length = 0;
  tok.set('token-old');
  await f(`${api.url}/k`, { method: 'POST', body: 'x', headers: { 'Idempotency-Key': 'caller-key-1' } });
  assert.deepEqual(api.requests.map((r) => r.headers['idempotency-key']), ['caller-key-1', 'caller-key-1']);
});

test('the default fetch is globalThis.fetch, called unbound', async (t) => {
  const api = await startApi(() => undefined);
  t.after(api.close);
  const f = createStepUpFetch({ getAccessToken: () => null, reauthenticate: async () => {} });
  const res = await f(`${api.url}/none`);
  assert.equal(res.status, 200);
  assert.equal(api.requests[0].headers.authorization, undefined, 'no token: no Authorization');
  assert.throws(() => createStepUpFetch(/** @type {any} */ ({ reauthenticate: async () => {} })), TypeError);
  assert.throws(() => createStepUpFetch(/** @type {any} */ ({ getAccessToken: () => 'x' })), TypeError);
});

test('a custom fetch is used for both attempts', async (t) => {
  const api = await startApi(wantsNewToken());
  t.after(api.close);
  const tok = tokens();
  const seen = [];
  const f = createStepUpFetch({
    fetch: (input, init) => {
      seen.push(input instanceof Request ? input.headers.get('authorization') : null);
      return fetch(input, init);
    },
    getAccessToken: tok.get,
    reauthenticate: async () => tok.set('token-new'),
  });
  assert.equal((await f(`${api.url}/c`)).status, 200);
  assert.deepEqual(seen, ['Bearer token-old', 'Bearer token-new']);
  assert.equal(PENDING_KEY, 'stepup-fetch.pending');
});

test('without storage nothing is written anywhere, whatever the body', async (t) => {
  const api = await startApi(wantsNewToken());
  t.after(api.close);
  const tok = tokens();
  const f = createStepUpFetch({ getAccessToken: tok.get, reauthenticate: async () => tok.set('token-new') });
  const form = new FormData();
  form.set('file', new Blob(['hello'], { type: 'text/plain' }), 'a.txt');
  form.set('field', 'v');
  assert.equal((await f(`${api.url}/upload`, { method: 'POST', body: form })).status, 200);
  const [a, b] = api.requests;
  assert.deepEqual(b.body, a.body, 'the multipart body is replayed byte for byte');
  assert.equal(b.headers['content-type'], a.headers['content-type']);
  assert.match(b.body.toString(), /hello/);
});
