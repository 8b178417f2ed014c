// The redirect flow: pending requests in storage, resumePending / resumeAllPending,
// discardPending, and verifyStepUp.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  PENDING_KEY,
  PENDING_MAX_AGE_MS,
  StepUpError,
  createStepUpFetch,
  discardPending,
  resumeAllPending,
  resumePending,
  verifyStepUp,
} from '../src/index.js';
import { MFA, MemoryStorage, sleep, startApi, stepUpChallenge, tokens } from './helpers.js';

const wantsNewToken = (r) => (r.token === 'token-new' ? undefined : { status: 401, headers: { 'WWW-Authenticate': stepUpChallenge() } });
const never = () => new Promise(() => {});

/**
 * Runs `apiFetch(url, init)` with a `reauthenticate` that leaves the page (never resolves), and
 * returns what was in storage when `reauthenticate` was called.
 */
async function challengedThenLeave(api, storage, calls, init, path = '/api/transfers') {
  let seen = null;
  const f = createStepUpFetch({
    getAccessToken: () => 'token-old',
    storage,
    reauthenticate: (req) => {
      calls.push(req);
      seen = storage.getItem(PENDING_KEY);
      return never();
    },
  });
  f(`${api.url}${path}`, init).catch(() => {});
  for (let i = 0; i < 100 && seen === null; i++) await sleep(10);
  return seen;
}

test('the pending request is written before reauthenticate, with everything to replay it and no token', async (t) => {
  const api = await startApi(wantsNewToken);
  t.after(api.close);
  const storage = new MemoryStorage();
  const calls = [];
  const body = '{"to":"DE89370400440532013000","amount":"25.00"}';
  const before = Date.now();
  const seen = await challengedThenLeave(api, storage, calls, {
    method: 'POST',
    body,
    headers: { 'Content-Type': 'application/json', 'X-Request-Id': 'r1', Authorization: 'Bearer caller-token', Cookie: 'sid=secret-cookie' },
  });
  assert.ok(seen, 'reauthenticate saw an entry already in storage');
  assert.equal(calls.length, 1);
  const [entry, ...more] = JSON.parse(seen);
  assert.equal(more.length, 0);
  assert.equal(entry.method, 'POST');
  assert.equal(entry.url, `${api.url}/api/transfers`);
  assert.equal(entry.body, body);
  const h = Object.fromEntries(entry.headers);
  assert.equal(h['content-type'], 'application/json');
  assert.equal(h['x-request-id'], 'r1');
  assert.equal(h['idempotency-key'], entry.idempotencyKey);
  assert.equal(entry.idempotencyKey, api.requests[0].headers['idempotency-key']);
  assert.equal(entry.stepUp.reason, 'insufficient_user_authentication');
  assert.deepEqual(entry.stepUp.acrValues, [MFA]);
  assert.equal(entry.stepUp.maxAge, 300);
  assert.equal(entry.stepUp.challenge.scheme, 'Bearer');
  assert.ok(entry.createdAt >= before && entry.createdAt <= Date.now());
  // No token, no credential header, in anything ever written.
  for (const written of [...storage.writes, storage.dump()]) {
    assert.ok(!written.includes('token-old'), 'no access token');
    assert.ok(!written.includes('caller-token'), 'no Authorization given by the caller');
    assert.ok(!written.includes('secret-cookie'), 'no Cookie');
    assert.ok(!/authorization|cookie/i.test(written), 'no credential header names');
  }
});

test('after the redirect, resumePending replays the request once with the new token, removed from storage first', async (t) => {
  const storage = new MemoryStorage();
  const api = await startApi((r) => {
    if (r.token === 'token-new') assert.equal(storage.getItem(PENDING_KEY), null, 'removed before the replay is sent');
    return wantsNewToken(r);
  });
  t.after(api.close);
  const body = '{"to":"DE89","amount":"1.00"}';
  await challengedThenLeave(api, storage, [], { method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
  const first = api.requests[0];

  // "The new page": a new token, and nothing but storage carried over.
  const res = await resumePending({ getAccessToken: async () => 'token-new', storage });
  assert.ok(res);
  assert.equal(res.status, 200);
  assert.equal(api.requests.length, 2);
  const replay = api.requests[1];
  assert.equal(replay.method, 'POST');
  assert.equal(replay.path, '/api/transfers');
  assert.equal(replay.body.toString(), body);
  assert.equal(replay.headers['content-type'], 'application/json');
  assert.equal(replay.headers['idempotency-key'], first.headers['idempotency-key'], 'the same Idempotency-Key');
  assert.equal(replay.headers.authorization, 'Bearer token-new');
  assert.equal(storage.getItem(PENDING_KEY), null);

  // Once only.
  assert.equal(await resumePending({ getAccessToken: async () => 'token-new', storage }), null);
  assert.equal(api.requests.length, 2);
});

test('resumePending with nothing pending resolves to null and sends nothing', async () => {
  const storage = new MemoryStorage();
  assert.equal(await resumePending({ getAccessToken: () => 't', storage, fetch: () => assert.fail('nothing to send') }), null);
  assert.deepEqual(await resumeAllPending({ getAccessToken: () => 't', storage }), []);
});

test('entries older than 10 minutes (or from the future) are refused, not sent, and removed', async (t) => {
  const api = await startApi(wantsNewToken);
  t.after(api.close);
  const storage = new MemoryStorage();
  await challengedThenLeave(api, storage, [], { method: 'POST', body: 'x' });
  const age = (/** @type {number} */ ms) => {
    const [e] = JSON.parse(/** @type {string} */ (storage.getItem(PENDING_KEY)));
    storage.setItem(PENDING_KEY, JSON.stringify([{ ...e, createdAt: Date.now() - ms }]));
  };
  const saved = /** @type {string} */ (storage.getItem(PENDING_KEY));
  for (const ms of [PENDING_MAX_AGE_MS + 1000, -5 * 60 * 1000]) {
    storage.setItem(PENDING_KEY, saved);
    age(ms);
    const err = await resumePending({ getAccessToken: () => 'token-new', storage }).then(() => null, (e) => e);
    assert.ok(err instanceof StepUpError);
    assert.equal(err.reason, 'pending_expired');
    assert.equal(storage.getItem(PENDING_KEY), null);
  }
  // Just inside the limit: replayed.
  storage.setItem(PENDING_KEY, saved);
  age(PENDING_MAX_AGE_MS - 5000);
  assert.equal((await resumePending({ getAccessToken: () => 'token-new', storage }))?.status, 200);
  assert.equal(api.requests.length, 2, 'only the fresh one was sent');
});

test('unreadable entries are refused and removed', async () => {
  for (const raw of ['{not json', '{"an":"object"}', '[{"id":"x","method":"POST"}]', '[42]']) {
    const storage = new MemoryStorage();
    storage.setItem(PENDING_KEY, raw);
    const err = await resumePending({ getAccessToken: () => 't', storage, fetch: () => assert.fail('nothing sent') }).then(() => null, (e) => e);
    assert.ok(err instanceof StepUpError, raw);
    assert.equal(err.reason, 'pending_unreadable');
    assert.equal(storage.getItem(PENDING_KEY), null);
  }
});

test('two requests challenged together: one reauthenticate, both pending, both replayed once after the redirect', async (t) => {
  const api = await startApi(wantsNewToken);
  t.after(api.close);
  const storage = new MemoryStorage();
  let calls = 0;
  const f = createStepUpFetch({
    getAccessToken: () => 'token-old',
    storage,
    reauthenticate: async () => {
      calls++;
      await sleep(100); // the user reads the offer; the other request's challenge arrives
      return never();
    },
  });
  f(`${api.url}/t/1`, { method: 'POST', body: 'one' }).catch(() => {});
  f(`${api.url}/t/2`, { method: 'POST', body: 'two' }).catch(() => {});
  await sleep(200);
  assert.equal(calls, 1);
  assert.equal(JSON.parse(/** @type {string} */ (storage.getItem(PENDING_KEY))).length, 2);
  const results = await resumeAllPending({ getAccessToken: () => 'token-new', storage });
  assert.deepEqual(results.map((r) => [r.pending?.body, r.response?.status, r.error]), [['one', 200, null], ['two', 200, null]]);
  const replays = api.requests.filter((r) => r.token === 'token-new');
  assert.deepEqual(replays.map((r) => r.body.toString()).sort(), ['one', 'two']);
  for (const rep of replays) {
    const orig = api.requests.find((r) => r.token === 'token-old' && r.path === rep.path);
    assert.equal(rep.headers['idempotency-key'], orig?.headers['idempotency-key']);
  }
  assert.deepEqual(await resumeAllPending({ getAccessToken: () => 'token-new', storage }), []);
});

test('popup flow: when reauthenticate resolves in the page, the entry is removed before the retry', async (t) => {
  const storage = new MemoryStorage();
  const tok = tokens();
  let atRetry = 'unset';
  const api = await startApi((r) => {
    if (r.token === 'token-new') atRetry = storage.getItem(PENDING_KEY);
    return wantsNewToken(r);
  });
  t.after(api.close);
  let during = null;
  const f = createStepUpFetch({
    getAccessToken: tok.get,
    storage,
    reauthenticate: async () => {
      during = storage.getItem(PENDING_KEY);
      tok.set('token-new');
    },
  });
  assert.equal((await f(`${api.url}/x`, { method: 'POST', body: 'b' })).status, 200);
  assert.ok(during, 'written before reauthenticate');
  assert.equal(atRetry, null, 'gone when the retry arrived');
  assert.equal(await resumePending({ getAccessToken: tok.get, storage }), null, 'a completed request is never replayed');
  assert.equal(api.requests.length, 2);
});

test('a cancelled re-authentication removes the entry: nothing can be replayed later', async (t) => {
  const api = await startApi(wantsNewToken);
  t.after(api.close);
  const storage = new MemoryStorage();
  const f = createStepUpFetch({ getAccessToken: () => 'token-old', storage, reauthenticate: async () => { throw new Error('Cancel'); } });
  await assert.rejects(f(`${api.url}/x`, { method: 'POST', body: 'b' }), /Cancel/);
  assert.equal(storage.getItem(PENDING_KEY), null);
});

test('a retry challenged again also leaves nothing pending', async (t) => {
  const api = await startApi(() => ({ status: 401, headers: { 'WWW-Authenticate': stepUpChallenge() } }));
  t.after(api.close);
  const storage = new MemoryStorage();
  const tok = tokens();
  const f = createStepUpFetch({ getAccessToken: tok.get, storage, reauthenticate: async () => tok.set('token-new') });
  await assert.rejects(f(`${api.url}/x`), (e) => e instanceof StepUpError && e.reason === 'still_challenged');
  assert.equal(storage.getItem(PENDING_KEY), null);
});

test('bodies that are not text are refused for the redirect flow, before reauthenticate and without writing', async (t) => {
  const api = await startApi(wantsNewToken);
  t.after(api.close);
  const form = new FormData();
  form.set('a', 'b');
  const bodies = {
    FormData: () => form,
    Blob: () => new Blob(['x'], { type: 'text/plain' }),
    ArrayBuffer: () => new ArrayBuffer(4),
    Uint8Array: () => new Uint8Array([1, 2]),
    ReadableStream: () => new ReadableStream({ start: (c) => { c.enqueue(new Uint8Array([1])); c.close(); } }),
  };
  for (const [name, make] of Object.entries(bodies)) {
    const storage = new MemoryStorage();
    let calls = 0;
    const f = createStepUpFetch({ getAccessToken: () => 'token-old', storage, reauthenticate: async () => { calls++; } });
    const err = await f(`${api.url}/x`, /** @type {any} */ ({ method: 'POST', body: make(), duplex: 'half' })).then(() => null, (e) => e);
    assert.ok(err instanceof StepUpError, `${name}: ${err}`);
    assert.equal(err.reason, 'body_not_text');
    assert.match(err.message, /not text/);
    assert.equal(err.status, 401);
    assert.equal(calls, 0, `${name}: reauthenticate not called`);
    assert.equal(storage.getItem(PENDING_KEY), null);
    assert.equal(storage.writes.length, 0);
  }
  // A Request whose body is JSON (by its media type) is text.
  const storage = new MemoryStorage();
  const seen = await challengedThenLeave(api, storage, [], undefined, '/json');
  assert.ok(seen);
  const storage2 = new MemoryStorage();
  let saw = null;
  const f = createStepUpFetch({ getAccessToken: () => 'token-old', storage: storage2, reauthenticate: () => { saw = storage2.getItem(PENDING_KEY); return never(); } });
  f(new Request(`${api.url}/r`, { method: 'POST', body: '{"a":1}', headers: { 'Content-Type': 'application/merge-patch+json' } })).catch(() => {});
  for (let i = 0; i < 100 && saw === null; i++) await sleep(10);
  assert.equal(JSON.parse(/** @type {any} */ (saw))[0].body, '{"a":1}');
});

test('a storage that cannot be written: StepUpError storage_failed, reauthenticate not called', async (t) => {
  const api = await startApi(wantsNewToken);
  t.after(api.close);
  const full = { getItem: () => null, setItem: () => { throw new Error('QuotaExceededError'); }, removeItem: () => {} };
  let calls = 0;
  const f = createStepUpFetch({ getAccessToken: () => 'token-old', storage: full, reauthenticate: async () => { calls++; } });
  await assert.rejects(f(`${api.url}/x`, { method: 'POST', body: 'x' }), (e) => e instanceof StepUpError && e.reason === 'storage_failed');
  assert.equal(calls, 0);
});

test('resumePending checks the new ID token against the challenge first (weaker_authentication: nothing sent)', async (t) => {
  const api = await startApi(wantsNewToken);
  t.after(api.close);
  const storage = new MemoryStorage();
  await challengedThenLeave(api, storage, [], { method: 'POST', body: 'x' });
  const saved = /** @type {string} */ (storage.getItem(PENDING_KEY));
  const now = Math.floor(Date.now() / 1000);
  for (const claims of [{ acr: 'urn:weak:password', auth_time: now }, { acr: MFA, auth_time: now - 3600 }]) {
    storage.setItem(PENDING_KEY, saved);
    const err = await resumePending({ getAccessToken: () => 'token-new', storage, idTokenClaims: claims }).then(() => null, (e) => e);
    assert.ok(err instanceof StepUpError, JSON.stringify(claims));
    assert.equal(err.reason, 'weaker_authentication');
    assert.equal(err.stepUp.maxAge, 300);
    assert.equal(storage.getItem(PENDING_KEY), null);
  }
  assert.equal(api.requests.length, 1, 'no retry sent');
  storage.setItem(PENDING_KEY, saved);
  const res = await resumePending({ getAccessToken: () => 'token-new', storage, idTokenClaims: { acr: MFA, auth_time: now - 10 } });
  assert.equal(res?.status, 200);
});

test('a replay that is challenged again rejects with StepUpError still_challenged', async (t) => {
  const api = await startApi(() => ({ status: 401, headers: { 'WWW-Authenticate': stepUpChallenge() } }));
  t.after(api.close);
  const storage = new MemoryStorage();
  await challengedThenLeave(api, storage, [], { method: 'POST', body: 'x' });
  const err = await resumePending({ getAccessToken: () => 'token-new', storage }).then(() => null, (e) => e);
  assert.ok(err instanceof StepUpError);
  assert.equal(err.reason, 'still_challenged');
  assert.equal(err.status, 401);
  assert.equal(api.requests.length, 2);
});

test('discardPending returns what waited, without sending it, and removes it', async (t) => {
  const api = await startApi(wantsNewToken);
  t.after(api.close);
  const storage = new MemoryStorage();
  await challengedThenLeave(api, storage, [], { method: 'POST', body: '{"amount":"3.00"}' });
  const dropped = discardPending(storage);
  assert.equal(dropped.length, 1);
  assert.equal(dropped[0].body, '{"amount":"3.00"}');
  assert.equal(storage.getItem(PENDING_KEY), null);
  assert.deepEqual(discardPending(storage), []);
  assert.equal(api.requests.length, 1);
});

test('verifyStepUp: acr and auth_time against the challenge, when the provider returns them', () => {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  const stepUp = { acrValues: [MFA, 'loa3'], maxAge: 300 };
  verifyStepUp({ acr: MFA, auth_time: s - 299 }, stepUp, { now });
  verifyStepUp({ acr: 'loa3' }, stepUp, { now });
  verifyStepUp({}, stepUp, { now });
  verifyStepUp(null, stepUp, { now });
  verifyStepUp({ acr: 'anything', auth_time: 0 }, { acrValues: [], maxAge: null }, { now });
  verifyStepUp({ acr: 'loa4' }, stepUp, { now, acceptAcr: ['loa4'] });
  const weaker = (claims, su = stepUp) => assert.throws(() => verifyStepUp(claims, su, { now }), (e) => e instanceof StepUpError && e.reason === 'weaker_authentication');
  weaker({ acr: 'loa1', auth_time: s });
  weaker({ acr: MFA, auth_time: s - 331 });
  weaker({ auth_time: s - 1000 });
  // max_age=0: only a sign-in made just now (within the leeway for clocks).
  verifyStepUp({ auth_time: s - 5 }, { acrValues: [], maxAge: 0 }, { now });
  weaker({ auth_time: s - 120 }, { acrValues: [], maxAge: 0 });
});
