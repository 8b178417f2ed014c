// Second browser scenario: the demo bank's SPA (examples/bank-demo/web/app.mjs, unchanged) on
// oidc-client-ts through stepup-fetch's oidc-client-ts adapter (tests/interop/spa/login.mjs),
// against the npm oidc-provider of tests/interop/provider.mjs and the bank demo pointed at it
// (STEPUP_ISSUER). Served by tests/interop/spa/server.mjs; started by tests/browser/run.sh.
//
// Log in (the provider's test login: no form, acr loa1); see the balance; send a transfer, see
// the step-up offer and what waits in sessionStorage; continue: oidc-client-ts's signinRedirect
// carries the challenge's acr_values and max_age, the provider answers with the multi-factor
// acr, and the transfer lands once (one Idempotency-Key). Log out through the provider's
// end_session_endpoint; log in again; two transfers started together: one step-up, both land
// once.
//
//   node tests/browser/oidc-client-ts.mjs http://127.0.0.1:SPA_PORT
//
// Prints one line per check and ends with "N passed, M failed"; exits non-zero on any failure.
// Screenshots go to target/browser-screenshots/oidc-client-ts-NN-step.png.

import {
  NAV_MS,
  check,
  isClean,
  must,
  readPending,
  waitPending,
  run,
  screenshotter,
  show,
  submitTransfer,
  textOf,
  waitText,
  waitVisible,
} from './harness.mjs';

const BASE = (process.argv[2] ?? '').replace(/\/+$/, '');
const MFA_ACR = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';
const USER = 'interop-user';
const PAYEE = 'DE89370400440532013000';
const PAYEE_2 = 'GB82WEST12345698765432';

/** The access token oidc-client-ts keeps (its user in sessionStorage). */
async function storedAccessToken(page) {
  return page.evaluate(() => {
    for (let i = 0; i < sessionStorage.length; i++) {
      const k = sessionStorage.key(i);
      if (k?.startsWith('oidc.user:')) return JSON.parse(sessionStorage.getItem(k) ?? 'null')?.access_token ?? null;
    }
    return null;
  });
}

async function login(page, seen) {
  const before = seen.authorize.length;
  await page.click('#login-button');
  const [ok, user] = await waitText(page, '#user', USER, NAV_MS);
  return { ok, user, authorize: seen.authorize[before] ?? null };
}

async function scenario(page, seen) {
  const first = await page.goto(`${BASE}/`, { waitUntil: 'load', timeout: NAV_MS });
  check('GET / answers 200', first?.status() === 200);
  must(check('the SPA offers #login-button', await waitVisible(page, '#login-button')));
  check('the SPA runs on oidc-client-ts and the stepup-fetch adapter', seen.urls.some((u) => u.endsWith('/vendor/oidc-client-ts.js')) && seen.urls.some((u) => u.endsWith('/stepup-fetch/oidc-client-ts.js')));

  // 1. Login.
  const l1 = await login(page, seen);
  must(check('login through oidc-provider: back on the SPA, #user shows interop-user', l1.ok, `#user ${show(l1.user)} at ${page.url()}`));
  const q1 = new URL(l1.authorize ?? BASE).searchParams;
  check(
    'the authorization request is oidc-client-ts\'s: client interop-spa, PKCE S256, resource urn:bank-api, no acr_values',
    q1.get('client_id') === 'interop-spa' && q1.get('code_challenge_method') === 'S256' && q1.get('resource') === 'urn:bank-api' && !q1.has('acr_values'),
    l1.authorize,
  );
  check('the browser exchanged the code at the provider\'s token endpoint itself (CORS)', seen.tokenRequests >= 1);
  const [balOk, bal] = await waitText(page, '#balance', '1000.00');
  check('#balance shows 1000.00', balOk, show(bal));
  check('the URL is clean after the login', isClean(page.url()), page.url());
  await screenshot(page, 'signed-in');

  // 2. A transfer → the step-up offer; what waits, without a token.
  const firstPost = seen.transfers.length;
  await submitTransfer(page, PAYEE, '25.00');
  must(check('a transfer gets the step-up offer', await waitVisible(page, '#stepup-continue'), show(await textOf(page, '#message'))));
  const ask = (await textOf(page, '#stepup-ask')) ?? '';
  check('the offer says what the bank asks: multi-factor, at most 300 s old', ask.includes(MFA_ACR) && ask.includes('at most 300 s old'), show(ask));
  check('the first attempt was refused with 401 insufficient_user_authentication', seen.transfers[firstPost]?.status === 401 && /insufficient_user_authentication/.test(seen.transfers[firstPost]?.challenge ?? ''), show(seen.transfers[firstPost]));
  const pending = await readPending(page);
  const token = await storedAccessToken(page);
  check(
    'the transfer waits in sessionStorage with its Idempotency-Key and no token',
    pending.entries?.length === 1 && pending.entries[0].idempotencyKey === seen.transfers[firstPost]?.key &&
      typeof token === 'string' && !pending.raw.includes(token) && !/authorization/i.test(pending.raw),
    pending.raw,
  );
  await screenshot(page, 'step-up-offer');

  // 3. Continue: oidc-client-ts's signinRedirect with the challenge; back, the transfer lands once.
  const authBefore = seen.authorize.length;
  await page.click('#stepup-continue');
  const [doneOk, done] = await waitText(page, '#message', 'Transfer done', NAV_MS);
  check('after the step-up, #message says "Transfer done" with the amount and the payee', doneOk && (done ?? '').includes('25.00') && (done ?? '').includes(PAYEE), `${show(done)} at ${page.url()}`);
  const q2 = new URL(seen.authorize[authBefore] ?? BASE).searchParams;
  check('one step-up authorization request, with the challenge\'s acr_values and max_age=300 (and the resource)', seen.authorize.length === authBefore + 1 && q2.get('acr_values') === MFA_ACR && q2.get('max_age') === '300' && q2.get('resource') === 'urn:bank-api', show(seen.authorize.slice(authBefore)));
  const round = seen.transfers.slice(firstPost);
  check('the transfer was retried once with the same Idempotency-Key: 401, then 201', round.length === 2 && round[0].status === 401 && round[1].status === 201 && round[0].key && round[0].key === round[1].key, show(round));
  const [bal2Ok, bal2] = await waitText(page, '#balance', '975.00');
  check('#balance shows 975.00', bal2Ok, show(bal2));
  check('nothing waits in sessionStorage, and the URL is clean', (await readPending(page)).raw === 'null' && isClean(page.url()), page.url());
  const acr = await page.evaluate(() => {
    for (let i = 0; i < sessionStorage.length; i++) {
      const k = sessionStorage.key(i);
      if (k?.startsWith('oidc.user:')) {
        const idToken = JSON.parse(sessionStorage.getItem(k) ?? 'null')?.id_token ?? '';
        return JSON.parse(atob(idToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')))?.acr ?? null;
      }
    }
    return null;
  });
  check('the new ID token has the multi-factor acr', acr === MFA_ACR, show(acr));
  await screenshot(page, 'transfer-done');

  // 4. Log out through the provider, back logged out.
  await page.click('#logout-button');
  const confirm = await waitVisible(page, '#logout-yes', NAV_MS);
  const lq = new URL(seen.logout[0] ?? BASE).searchParams;
  check('"Log out" reaches the provider\'s end_session_endpoint with id_token_hint and post_logout_redirect_uri', confirm && lq.has('id_token_hint') && lq.get('post_logout_redirect_uri') === `${BASE}/` && lq.has('state'), show(seen.logout[0] ?? null));
  if (confirm) await page.click('#logout-yes');
  const [outOk, out] = await waitText(page, '#message', 'You are logged out.', NAV_MS);
  check('back on the bank: "You are logged out.", #login-button shown', outOk && (await page.isVisible('#login-button')), `${show(out)} at ${page.url()}`);
  await screenshot(page, 'logged-out');

  // 5. Log in again (loa1), two transfers together: one step-up, both land once.
  const l2 = await login(page, seen);
  must(check('logged in again', l2.ok, page.url()));
  const [b3ok] = await waitText(page, '#balance', '975.00');
  check('#balance shows 975.00', b3ok);
  const before = seen.transfers.length;
  const authBefore2 = seen.authorize.length;
  await submitTransfer(page, PAYEE, '10.00');
  await submitTransfer(page, PAYEE_2, '5.00');
  const [bothOk, both] = await waitText(page, '#stepup-transfer', '2 transfers wait');
  must(check('two transfers started together get one step-up offer naming both', bothOk, show(both)));
  check('both wait in sessionStorage', (await waitPending(page, 2)).entries?.length === 2);
  await screenshot(page, 'two-transfers-one-offer');
  await page.click('#stepup-continue');
  const [allOk, all] = await waitText(page, '#message', 'Transfers done', NAV_MS);
  check('after one step-up, both transfers are done', allOk && (all ?? '').includes(PAYEE_2) && (all ?? '').includes('10.00'), show(all));
  const [b4ok, b4] = await waitText(page, '#balance', '960.00');
  check('#balance shows 960.00', b4ok, show(b4));
  await page.waitForTimeout(300);
  const round2 = seen.transfers.slice(before);
  const keys = [...new Set(round2.map((t) => t.key))];
  check(
    'the bank saw each transfer twice with one Idempotency-Key (401, then 201), never more',
    round2.length === 4 && keys.length === 2 && keys.every((k) => round2.filter((t) => t.key === k).map((t) => t.status).join() === '401,201'),
    show(round2),
  );
  check('one step-up authorization request for both, with acr_values', seen.authorize.length === authBefore2 + 1 && new URL(seen.authorize[authBefore2] ?? BASE).searchParams.get('acr_values') === MFA_ACR, show(seen.authorize.slice(authBefore2)));
  await screenshot(page, 'two-transfers-done');

  // 6. Hygiene.
  const token2 = await storedAccessToken(page);
  const leaks = [...seen.urls, ...seen.console].filter((s) => /access_token/.test(s) || (token && s.includes(token)) || (token2 && s.includes(token2)));
  check('no access token in any URL or console line', leaks.length === 0, show(leaks.slice(0, 3)));
  check('no script error on any page', seen.pageErrors.length === 0, show(seen.pageErrors.slice(0, 3)));
}

if (!BASE) {
  console.error('usage: node tests/browser/oidc-client-ts.mjs http://127.0.0.1:PORT');
  process.exit(2);
}
const screenshot = screenshotter('oidc-client-ts-');

run({
  label: `oidc-client-ts scenario against ${BASE}`,
  seen: { authorize: [], logout: [], tokenRequests: 0 },
  onRequest: (r, seen) => {
    const u = new URL(r.url());
    if (u.origin === new URL(BASE).origin) return;
    if (u.pathname === '/auth') seen.authorize.push(r.url());
    if (u.pathname === '/session/end' && r.method() === 'GET') seen.logout.push(r.url());
    if (u.pathname === '/token' && r.method() === 'POST') seen.tokenRequests++;
  },
  scenario,
  screenshot,
  wholeRunMs: 180_000,
});
