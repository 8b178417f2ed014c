// End-to-end browser test of the bank demo, as a person would use it:
// log in with a password; see a transfer above the balance refused by the SPA itself; try a
// transfer, see what the step-up asks and cancel it in the SPA; continue to the provider and
// cancel there; then continue, get asked for the second factor only, type a wrong code, then
// the right one, and see the transfer done; see it on the operations page (/ops: one step-up
// completion, three challenges, charted from /metrics, nothing from another origin); log out
// at the provider and come back logged out; log in again with the password (no silent single
// sign-on), start two transfers together and see one step-up send both, once each. The SPA's step-up client is the stepup-fetch package
// (clients/stepup-fetch), served by the demo.
//
// The access tokens are DPoP-bound (RFC 9449; the demo accepts DPoP by default): the SPA's
// token request carries a proof, the token names its key (`cnf.jkt`), every API request carries
// `Authorization: DPoP` and a proof, and the step-up answers the DPoP challenge.
//
//   node tests/browser/browser.mjs http://127.0.0.1:8080
//
// Prints one line per check and ends with "N passed, M failed"; exits non-zero on any failure.
// Screenshots go to target/browser-screenshots/NN-step.png.

import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { parseChallenges } from '../../clients/stepup-fetch/src/index.js';
import {
  NAV_MS,
  ROOT,
  WAIT_MS,
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
  waitUrl,
  waitVisible,
} from './harness.mjs';

const BASE = (process.argv[2] ?? process.env.BANK_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
const ALICE = { username: 'alice', password: 'alice-demo-pw', totpSecret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP' };
const MFA_ACR = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';
const PAYEE = 'DE89370400440532013000';
const AMOUNT = '25.00';
// The two transfers started together.
const PAYEE_2 = 'GB82WEST12345698765432';
const PAIR = [[PAYEE, '10.00'], [PAYEE_2, '5.00']];

// ---------------------------------------------------------------------------------------------
// TOTP (RFC 6238 over RFC 4226), SHA-1, 6 digits, 30 s

function base32Decode(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const clean = s.toUpperCase().replace(/[\s=]/g, '');
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of clean) {
    const v = alphabet.indexOf(c);
    if (v < 0) throw new Error(`not base32: ${c}`);
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

function hotp(key, counter, digits = 6) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', key).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const bin = ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16) | (mac[offset + 2] << 8) | mac[offset + 3];
  return String(bin % 10 ** digits).padStart(digits, '0');
}

const totpStep = (unixSeconds) => Math.floor(unixSeconds / 30);
const totp = (secretBase32, unixSeconds = Date.now() / 1000) => hotp(base32Decode(secretBase32), totpStep(unixSeconds));

// The provider takes each time step's code once (RFC 6238 §5.2) and one step of skew: a second
// code within the same 30 s is the next step's.
let lastTotpStep = -1;
async function freshTotp(secretBase32) {
  let step = Math.max(totpStep(Date.now() / 1000), lastTotpStep + 1);
  while (step > totpStep(Date.now() / 1000) + 1) await new Promise((r) => setTimeout(r, 500));
  lastTotpStep = step;
  return hotp(base32Decode(secretBase32), step);
}

/** A 6-digit code that is none of the codes of the steps around now. */
function wrongCode(secretBase32) {
  const now = Date.now() / 1000;
  const near = new Set([-2, -1, 0, 1, 2].map((d) => totp(secretBase32, now + d * 30)));
  for (let n = 0; ; n++) {
    const c = String((123456 + n * 111111) % 1_000_000).padStart(6, '0');
    if (!near.has(c)) return c;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

const atBank = (u) => u.origin === new URL(BASE).origin && u.pathname === '/';

function jwtPayload(jwt) {
  try {
    return JSON.parse(Buffer.from(String(jwt).split('.')[1], 'base64url').toString('utf8'));
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// DPoP (RFC 9449)

const sha256 = (s) => createHash('sha256').update(s).digest('base64url');
/** RFC 7638 thumbprint of an EC public JWK. */
const thumbprint = (jwk) => sha256(JSON.stringify({ crv: jwk?.crv, kty: jwk?.kty, x: jwk?.x, y: jwk?.y }));

/** A DPoP proof, decoded and its signature checked with its own jwk: {header, claims, ok}. */
async function readProof(proof) {
  try {
    const [h, c, sig] = String(proof).split('.');
    const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    const claims = JSON.parse(Buffer.from(c, 'base64url').toString('utf8'));
    const key = await crypto.subtle.importKey('jwk', header.jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    const signed = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, Buffer.from(sig, 'base64url'), new TextEncoder().encode(`${h}.${c}`));
    const ok = signed && header.typ === 'dpop+jwt' && header.alg === 'ES256' && !('d' in header.jwk) && typeof claims.jti === 'string' && Number.isInteger(claims.iat);
    return { header, claims, ok };
  } catch {
    return { header: null, claims: null, ok: false };
  }
}

/** What the page sent with a request: method, path, Authorization and the decoded DPoP proof. */
async function sent(request) {
  const headers = await request.allHeaders().catch(() => ({}));
  return {
    method: request.method(),
    url: request.url(),
    path: new URL(request.url()).pathname,
    authorization: headers.authorization ?? null,
    proof: headers.dpop ? await readProof(headers.dpop) : null,
  };
}

/** Whether `r` (from `sent`) is a DPoP request with `token` and a valid proof for it. */
const dpopRequest = (r, token) =>
  r.authorization === `DPoP ${token}` && r.proof?.ok === true && r.proof.claims.htm === r.method &&
  r.proof.claims.htu === `${new URL(r.url).origin}${r.path}` && r.proof.claims.ath === sha256(token);

const sessionAccessToken = (page) =>
  page.evaluate(() => {
    try {
      return JSON.parse(sessionStorage.getItem('bank-demo.session') ?? 'null')?.accessToken ?? null;
    } catch {
      return null;
    }
  });

/** Sends AMOUNT to PAYEE and waits for the SPA's step-up offer. */
async function sendUntilStepUpOffer(page) {
  await submitTransfer(page, PAYEE, AMOUNT);
  return waitVisible(page, '#stepup-continue');
}

/** Presses "Continue" on the step-up offer and waits for the provider's second-factor page. */
async function continueToMfa(page) {
  await page.click('#stepup-continue', { timeout: WAIT_MS });
  try {
    await page.waitForURL((u) => u.pathname.endsWith('/idp/mfa'), { timeout: NAV_MS });
    await page.locator('#mfa-form').waitFor({ state: 'visible', timeout: WAIT_MS });
    return true;
  } catch {
    return false;
  }
}

/** Two transfers started together → one step-up offer, one authorization request, both sent once. */
async function twoTransfersOneStepUp(page, seen) {
  const firstPost = seen.transfers.length;
  const authorizeBefore = seen.authorize.length;
  const offersBefore = seen.console.filter((l) => l.includes('step-up challenge')).length;
  for (const [to, amount] of PAIR) await submitTransfer(page, to, amount);
  const offered = await waitVisible(page, '#stepup-continue');
  const [bothOk, both] = await waitText(page, '#stepup-transfer', '2 transfers wait');
  must(check('two transfers started together get one step-up offer naming both', offered && bothOk && PAIR.every(([to, a]) => (both ?? '').includes(to) && (both ?? '').includes(a)), `#stepup-transfer is ${show(both)}`));
  const pending = await waitPending(page, 2);
  check('both wait in sessionStorage, each with its own Idempotency-Key', pending.entries?.length === 2 && new Set(pending.entries.map((e) => e.idempotencyKey)).size === 2, show(pending.raw));
  check('both were refused with 401 before the step-up', seen.transfers.slice(firstPost).length === 2 && seen.transfers.slice(firstPost).every((t) => t.status === 401), show(seen.transfers.slice(firstPost)));
  await screenshot(page, 'two-transfers-one-offer');
  must(check('"Continue" leads to the second-factor page once for both', await continueToMfa(page), `at ${page.url()}`));
  await page.fill('#code', await freshTotp(ALICE.totpSecret), { timeout: WAIT_MS });
  await page.click('#mfa-submit', { timeout: WAIT_MS });
  const [doneOk, done] = await waitText(page, '#message', 'Transfers done', NAV_MS);
  check('after the second factor, #message says both transfers are done', doneOk && PAIR.every(([to, a]) => (done ?? '').includes(to) && (done ?? '').includes(a)), `#message is ${show(done)} at ${page.url()}`);
  const [balOk, bal] = await waitText(page, '#balance', '960.00');
  check('#balance shows 960.00 (975.00 - 10.00 - 5.00)', balOk, `#balance is ${show(bal)}`);
  const [histOk, hist] = await waitText(page, '#history', PAYEE_2);
  check('#history lists both', histOk && (hist ?? '').includes('10.00 EUR') && (hist ?? '').includes('5.00 EUR'), show(hist));
  await page.waitForTimeout(300);
  const round = seen.transfers.slice(firstPost);
  const keys = [...new Set(round.map((t) => t.key))];
  check(
    'the bank saw each transfer twice with one Idempotency-Key: refused (401), then done (201), never more',
    round.length === 4 && keys.length === 2 && keys.every((k) => round.filter((t) => t.key === k).map((t) => t.status).join() === '401,201'),
    show(round),
  );
  check('one step-up: one authorization request and one challenge handled', seen.authorize.length === authorizeBefore + 1 && seen.console.filter((l) => l.includes('step-up challenge')).length === offersBefore + 1, show(seen.authorize.slice(authorizeBefore)));
  check('nothing waits in sessionStorage afterwards', (await readPending(page)).raw === 'null');
  await screenshot(page, 'two-transfers-done');
}

/**
 * /ops after the step-up of step 7: it polls /metrics and charts what the layer counted so far.
 * Three tries of the transfer were challenged (cancelled in the SPA, cancelled at the provider,
 * then done), so: 3 challenges and 3 step_up refusals on /api/transfers, and exactly 1
 * completion (only the last step-up was completed). Nothing else is refused before this point.
 */
async function opsPage(context) {
  const ops = await context.newPage();
  const requests = [];
  const problems = [];
  ops.on('request', (r) => requests.push(r.url()));
  ops.on('pageerror', (e) => problems.push(String(e?.message ?? e)));
  // CSP violations are console errors.
  ops.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  try {
    const res = await ops.goto(`${BASE}/ops`, { waitUntil: 'load', timeout: NAV_MS });
    const csp = res?.headers()['content-security-policy'] ?? '';
    check('GET /ops answers 200 under a CSP without unsafe-inline (script-src and connect-src \'self\')', res?.status() === 200 && csp.includes("script-src 'self'") && csp.includes("connect-src 'self'") && !csp.includes('unsafe-inline'), `status ${res?.status()}, CSP ${show(csp)}`);
    // Two samples: the first poll at once, the second 2 s later.
    try {
      await ops.waitForFunction(() => Number(document.querySelector('#ops-data')?.dataset.samples ?? 0) >= 2, null, { timeout: WAIT_MS, polling: 100 });
    } catch {
      // Reported by the checks below.
    }
    const data = await ops.evaluate(() => {
      let json = null;
      try {
        json = JSON.parse(document.querySelector('#ops-json')?.textContent ?? 'null');
      } catch {
        json = null;
      }
      return {
        dataset: { ...(document.querySelector('#ops-data')?.dataset ?? {}) },
        json,
        series: [...document.querySelectorAll('#chart svg path[data-series]')].map((p) => ({ name: p.dataset.series, d: p.getAttribute('d') })),
        legend: document.querySelector('#legend')?.textContent ?? '',
      };
    });
    const served = await (await fetch(`${BASE}/metrics`)).text();
    const completionsLine = served.split('\n').find((l) => l.startsWith('stepup_completions_total{route="/api/transfers"}')) ?? null;
    const j = data.json;
    check(
      '/ops shows exactly one step-up completion: stepup_completions_total{route="/api/transfers"} = 1',
      j?.completions?.byRoute?.['/api/transfers'] === 1 && j.completions.total === 1 && data.dataset.completions === '1' && completionsLine === 'stepup_completions_total{route="/api/transfers"} 1',
      `page ${show(j?.completions ?? null)}, #ops-data ${show(data.dataset)}, /metrics ${show(completionsLine)}`,
    );
    check(
      '... three challenges on /api/transfers for the multi-factor acr and three step_up refusals, nothing else refused',
      j?.challenges?.byRouteAcr?.[`/api/transfers ${MFA_ACR}`] === 3 && j.challenges.total === 3 && show(j.refusals) === show({ step_up: 3 }) && data.dataset.challenges === '3',
      show({ challenges: j?.challenges ?? null, refusals: j?.refusals ?? null }),
    );
    check('... and each completion\'s duration (stepup_completion_seconds: _count = the completions, _sum > 0)', j?.completionSeconds?.count === j?.completions?.total && j.completionSeconds.sum > 0, show(j?.completionSeconds ?? null));
    const completions = data.series.find((s) => s.name === 'completions');
    check(
      'the page drew an SVG chart with data: a line per series (refused: step_up, challenges, completions)',
      data.dataset.drawn === 'true' && Number(data.dataset.samples) >= 2 && ['refused: step_up', 'challenges', 'completions'].every((n) => data.series.some((s) => s.name === n && /^M[\d.]+,[\d.]+H/.test(s.d))) && Boolean(completions) && data.legend.includes(`completions: ${j?.completions?.total}`),
      show({ dataset: data.dataset, series: data.series, legend: data.legend }),
    );
    const origin = new URL(BASE).origin;
    const foreign = requests.filter((u) => new URL(u).origin !== origin);
    check('/ops made no request to another origin (and polled /metrics)', foreign.length === 0 && requests.filter((u) => new URL(u).pathname === '/metrics').length >= 2, show(foreign.length > 0 ? foreign : requests));
    check('no script error or CSP violation on /ops', problems.length === 0, show(problems.slice(0, 3)));
    await screenshot(ops, 'ops');
  } finally {
    await ops.close().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// The scenario

async function scenario(page, seen) {
  // 0. The test's own TOTP against RFC 6238 Appendix B (SHA-1, T = 59 s → 94287082).
  const rfcKey = Buffer.from('12345678901234567890', 'ascii');
  check('TOTP implementation matches the RFC 6238 test vector', hotp(rfcKey, totpStep(59), 8) === '94287082' && hotp(rfcKey, totpStep(1111111109), 8) === '07081804');

  // 1. The SPA.
  const first = await page.goto(`${BASE}/`, { waitUntil: 'load', timeout: NAV_MS });
  check('GET / answers 200', first?.status() === 200, `status ${first?.status()}`);
  must(check('the SPA offers #login-button', await waitVisible(page, '#login-button')));
  await screenshot(page, 'spa-logged-out');

  // 2. Login page of the provider.
  await page.click('#login-button', { timeout: WAIT_MS });
  let onLogin = true;
  try {
    await page.waitForURL((u) => u.pathname.endsWith('/idp/login'), { timeout: NAV_MS });
  } catch {
    onLogin = false;
  }
  must(check('#login-button leads to the provider login page', onLogin && (await waitVisible(page, '#login-form')), `at ${page.url()}`));
  await screenshot(page, 'login-page');

  // 3. Password → back on the SPA, signed in.
  await page.fill('#username', ALICE.username, { timeout: WAIT_MS });
  await page.fill('#password', ALICE.password, { timeout: WAIT_MS });
  await page.click('#login-submit', { timeout: WAIT_MS });
  const [userOk, user] = await waitText(page, '#user', ALICE.username, NAV_MS);
  must(check('back on the SPA, #user shows alice', userOk && user.trim() === ALICE.username, `#user is ${show(user)} at ${page.url()}`));
  const [balOk, bal] = await waitText(page, '#balance', '1000.00');
  check('#balance shows 1000.00', balOk, `#balance is ${show(bal)}`);
  const account = await textOf(page, '#account');
  check('#account shows an IBAN', /^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$/.test((account ?? '').trim()), `#account is ${show(account)}`);
  const served = await page.evaluate(async () => (await fetch('/stepup-fetch/index.js', { cache: 'no-store' })).text());
  check(
    'the SPA runs the stepup-fetch package as published: /stepup-fetch/index.js is clients/stepup-fetch/src/index.js byte for byte',
    served === readFileSync(path.join(ROOT, 'clients', 'stepup-fetch', 'src', 'index.js'), 'utf8'),
  );
  const cleaned = new URL(page.url());
  check('the code and state are removed from the address bar', cleaned.pathname === '/' && cleaned.search === '', `URL is ${page.url()}`);
  check('#login-button is hidden and #logout-button shown once signed in', !(await page.isVisible('#login-button')) && (await page.isVisible('#logout-button')));
  await screenshot(page, 'signed-in');

  // 3b. DPoP: the token request's proof, the bound token, the API requests' proofs, the key.
  const servedDpop = await page.evaluate(async () => (await fetch('/stepup-fetch/dpop.js', { cache: 'no-store' })).text());
  check('/stepup-fetch/dpop.js is clients/stepup-fetch/src/dpop.js byte for byte', servedDpop === readFileSync(path.join(ROOT, 'clients', 'stepup-fetch', 'src', 'dpop.js'), 'utf8'));
  const firstToken = await sessionAccessToken(page);
  const jkt = jwtPayload(firstToken)?.cnf?.jkt;
  check('the access token is DPoP-bound: it carries cnf.jkt (RFC 9449 §6.1)', typeof jkt === 'string' && /^[A-Za-z0-9_-]{43}$/.test(jkt), show(jwtPayload(firstToken)?.cnf ?? null));
  const tokenRequest = (await Promise.all(seen.tokenRequests))[0];
  const tp = tokenRequest?.proof;
  check(
    'the SPA\'s token request carries a DPoP proof: POST, htu the token endpoint, no ath, signed with its jwk',
    tp?.ok && tp.claims.htm === 'POST' && tp.claims.htu === `${BASE}/idp/token` && tp.claims.ath === undefined && tokenRequest.authorization === null,
    show(tp?.claims ?? null),
  );
  check('... and the token is bound to that proof\'s key (RFC 7638 thumbprint = cnf.jkt)', Boolean(jkt) && thumbprint(tp?.header?.jwk) === jkt);
  const apiSoFar = await Promise.all(seen.api);
  check(
    'the API requests carry Authorization: DPoP <token> and a DPoP proof (htm, htu, ath of the token) signed by the bound key',
    apiSoFar.length >= 2 && apiSoFar.every((r) => dpopRequest(r, firstToken) && thumbprint(r.proof.header.jwk) === jkt),
    show(apiSoFar.map((r) => ({ path: r.path, authorization: r.authorization?.split(' ')[0] ?? null, proof: r.proof?.claims ?? null }))),
  );
  check('each proof has its own jti', new Set(apiSoFar.map((r) => r.proof?.claims?.jti)).size === apiSoFar.length);
  const keyInfo = await page.evaluate(() => new Promise((resolve) => {
    const open = indexedDB.open('bank-demo.dpop');
    open.onerror = () => resolve(null);
    open.onsuccess = () => {
      try {
        const req = open.result.transaction('keys', 'readonly').objectStore('keys').get('pair');
        req.onsuccess = () => resolve(req.result ? { privateExtractable: req.result.privateKey.extractable, alg: req.result.privateKey.algorithm } : null);
        req.onerror = () => resolve(null);
      } catch {
        resolve(null);
      }
    };
  }));
  check('the DPoP key pair is kept in IndexedDB, ECDSA P-256, its private key not extractable', keyInfo?.privateExtractable === false && keyInfo?.alg?.name === 'ECDSA' && keyInfo?.alg?.namedCurve === 'P-256', show(keyInfo));

  // 4. A transfer the bank would refuse anyway: the SPA says so next to the field, sends nothing
  //    and stays on the page (no second factor asked for it).
  await submitTransfer(page, PAYEE, '5000.00');
  const [overOk, overText] = await waitText(page, '#amount-error', 'more than your balance');
  check('a transfer above the balance is refused by the SPA next to the amount', overOk && (overText ?? '').includes('1000.00'), `#amount-error is ${show(overText)}`);
  check('the refused amount field is marked invalid', (await page.getAttribute('#amount', 'aria-invalid')) === 'true');
  await submitTransfer(page, PAYEE, '1.234');
  const [decOk, decText] = await waitText(page, '#amount-error', '2 decimals');
  check('an amount with 3 decimals is refused by the SPA', decOk, `#amount-error is ${show(decText)}`);
  await page.waitForTimeout(300);
  check('nothing was sent and the page was not left', seen.transfers.length === 0 && isClean(page.url()) && seen.authorize.length === 1, `transfers ${show(seen.transfers)}, URL ${page.url()}`);
  await screenshot(page, 'refused-by-the-spa');

  // 5. A transfer → the SPA shows what the step-up asks and waits; "Cancel" there sends nothing.
  must(check('a transfer gets the step-up offer with #stepup-continue', await sendUntilStepUpOffer(page), `#message ${show(await textOf(page, '#message'))}`));
  const ask = (await textOf(page, '#stepup-ask')) ?? '';
  check(
    'the SPA shows what is asked: multi-factor, its acr, at most 300 s old',
    ask.includes('The bank asks for a stronger sign-in: multi-factor') && ask.includes(MFA_ACR) && ask.includes('at most 300 s old'),
    show(ask),
  );
  check('the first transfer attempt was refused with 401 insufficient_user_authentication', seen.transfers[0]?.status === 401 && /insufficient_user_authentication/.test(seen.transfers[0]?.challenge ?? ''), show(seen.transfers[0] ?? null));
  let dpopStepUp = null;
  try {
    dpopStepUp = parseChallenges(seen.transfers[0]?.challenge ?? '').find((c) => c.scheme === 'DPoP') ?? null;
  } catch {
    dpopStepUp = null;
  }
  check(
    '... in a DPoP challenge (RFC 9449 §7.1): DPoP error="insufficient_user_authentication" with acr_values, max_age=300 and algs',
    dpopStepUp?.params.error === 'insufficient_user_authentication' && dpopStepUp.params.acr_values === MFA_ACR && dpopStepUp.params.max_age === '300' && (dpopStepUp.params.algs ?? '').split(' ').includes('ES256'),
    show(seen.transfers[0]?.challenge ?? null),
  );
  const logged = seen.console.find((line) => line.includes('step-up challenge'));
  let summary = null;
  try {
    summary = JSON.parse(logged.slice(logged.indexOf('{')));
  } catch {
    summary = null;
  }
  check(
    'the console shows the parsed challenge (scheme DPoP, error, acr_values, max_age)',
    summary?.scheme === 'DPoP' && summary?.error === 'insufficient_user_authentication' && summary?.acr_values?.includes(MFA_ACR) && summary?.max_age === 300,
    show(logged ?? null),
  );
  const pending = await readPending(page);
  const sessionToken = await page.evaluate(() => JSON.parse(sessionStorage.getItem('bank-demo.session') ?? 'null')?.accessToken ?? null);
  const entry = pending.entries?.[0];
  check(
    'the waiting transfer is in sessionStorage before any step-up: POST /api/transfers, its body and the Idempotency-Key of the 401',
    pending.entries?.length === 1 && entry.method === 'POST' && new URL(entry.url).pathname === '/api/transfers' &&
      JSON.parse(entry.body ?? '{}').to === PAYEE && JSON.parse(entry.body ?? '{}').amount === AMOUNT &&
      entry.idempotencyKey === seen.transfers[0]?.key && entry.stepUp?.maxAge === 300,
    show(pending.raw),
  );
  check(
    '... without any token or Authorization header',
    typeof sessionToken === 'string' && !pending.raw.includes(sessionToken) && !/authorization/i.test(pending.raw),
  );
  await page.waitForTimeout(1000);
  check('the SPA does not leave for the provider by itself', isClean(page.url()) && seen.authorize.length === 1, page.url());
  await screenshot(page, 'step-up-offer');
  await page.click('#stepup-cancel', { timeout: WAIT_MS });
  const [spaCancelOk, spaCancelMsg] = await waitText(page, '#message', 'was not sent');
  check('"Cancel" in the SPA says the transfer was not sent', spaCancelOk && (spaCancelMsg ?? '').includes(PAYEE), `#message is ${show(spaCancelMsg)}`);
  check('after "Cancel" the offer is gone and nothing more was sent', !(await page.isVisible('#stepup-panel')) && seen.transfers.length === 1 && isClean(page.url()), show(seen.transfers));
  check('after "Cancel" nothing waits in sessionStorage', (await readPending(page)).raw === 'null');

  // 6. Continue to the provider, and cancel the second factor there.
  must(check('a second try gets the step-up offer again', await sendUntilStepUpOffer(page)));
  must(check('"Continue" leads to the provider\'s second-factor page', await continueToMfa(page), `at ${page.url()}; #message ${show(await textOf(page, '#message'))}`));
  check('the step-up asks only for the second factor (no #password)', (await page.locator('#password').count()) === 0);
  const stepUpAuthorize = seen.authorize.at(-1);
  const q = stepUpAuthorize ? new URL(stepUpAuthorize).searchParams : new URLSearchParams();
  check('the step-up authorization request carries the challenge acr_values and max_age=300', (q.get('acr_values') ?? '').split(' ').includes(MFA_ACR) && q.get('max_age') === '300', `authorize URL ${stepUpAuthorize}`);
  check('the second-factor page offers #mfa-cancel', await waitVisible(page, '#mfa-cancel'));
  await screenshot(page, 'second-factor-page');
  const beforeCancel = seen.transfers.length;
  await page.click('#mfa-cancel', { timeout: WAIT_MS });
  const backFromCancel = await waitUrl(page, atBank);
  const [mfaCancelOk, mfaCancelMsg] = await waitText(page, '#message', 'was not sent', NAV_MS);
  check(
    'cancelling the second factor brings the browser back to the bank saying the transfer was not sent',
    backFromCancel && mfaCancelOk && /cancelled/i.test(mfaCancelMsg ?? '') && (mfaCancelMsg ?? '').includes(AMOUNT) && (mfaCancelMsg ?? '').includes(PAYEE),
    `#message is ${show(mfaCancelMsg)} at ${page.url()}`,
  );
  const cancelNav = seen.urls.find((u) => u.startsWith(`${BASE}/?`) && new URL(u).searchParams.get('error') === 'access_denied');
  check('the provider answered the cancel with error=access_denied and the state', Boolean(cancelNav) && new URL(cancelNav).searchParams.has('state'), show(cancelNav ?? null));
  await page.waitForTimeout(500);
  check('the cancelled transfer was not retried, and the URL is clean', seen.transfers.length === beforeCancel && isClean(page.url()), `${show(seen.transfers)} at ${page.url()}`);
  const [stillOk, still] = await waitText(page, '#balance', '1000.00');
  check('#balance still shows 1000.00', stillOk, `#balance is ${show(still)}`);
  await screenshot(page, 'second-factor-cancelled');

  // 7. Continue again: a wrong code, then the right one → the transfer is done.
  must(check('a third try gets the step-up offer', await sendUntilStepUpOffer(page)));
  const firstOfRound = seen.transfers.length - 1;
  must(check('"Continue" leads to the second-factor page again', await continueToMfa(page), `at ${page.url()}`));
  const bad = wrongCode(ALICE.totpSecret);
  await page.fill('#code', bad, { timeout: WAIT_MS });
  const [wrongResponse] = await Promise.all([
    page.waitForNavigation({ timeout: NAV_MS }).catch(() => null),
    page.click('#mfa-submit', { timeout: WAIT_MS }),
  ]);
  const [errOk, err] = await waitText(page, '.error', 'Wrong code');
  check('a wrong code is refused with "Wrong code"', errOk, `.error is ${show(err)}`);
  check('the wrong code answer is HTTP 401 and the form is shown again', wrongResponse?.status() === 401 && (await page.locator('#mfa-form').count()) === 1, `status ${wrongResponse?.status()}`);
  await screenshot(page, 'wrong-code');

  await page.fill('#code', await freshTotp(ALICE.totpSecret), { timeout: WAIT_MS });
  await page.click('#mfa-submit', { timeout: WAIT_MS });
  const [doneOk, message] = await waitText(page, '#message', 'Transfer done', NAV_MS);
  check('after the second factor, #message says "Transfer done"', doneOk, `#message is ${show(message)} at ${page.url()}`);
  check('the message names the amount and the payee', (message ?? '').includes(AMOUNT) && (message ?? '').includes(PAYEE), show(message));
  const [bal2Ok, bal2] = await waitText(page, '#balance', '975.00');
  check('#balance shows 975.00', bal2Ok, `#balance is ${show(bal2)}`);
  const [histOk, hist] = await waitText(page, '#history', PAYEE);
  check('#history lists the transfer', histOk && (hist ?? '').includes(AMOUNT), `#history is ${show(hist)}`);
  const round = seen.transfers.slice(firstOfRound);
  check(
    'the pending transfer was retried once, with the same Idempotency-Key, and succeeded',
    round.length === 2 && round[0].status === 401 && round[1].status === 201 && round[1].key && round[1].key === round[0].key,
    show(round),
  );
  check('the SPA URL is clean after the step-up', isClean(page.url()), page.url());
  check('nothing waits in sessionStorage once the transfer was replayed', (await readPending(page)).raw === 'null');
  const stepUpToken = await sessionAccessToken(page);
  const replayed = (await Promise.all(seen.api)).filter((r) => r.method === 'POST' && r.path === '/api/transfers').at(-1);
  check(
    'the step-up with DPoP completed: the replayed transfer (201) carried Authorization: DPoP with the new token and its proof',
    round[1]?.status === 201 && stepUpToken !== firstToken && Boolean(replayed) && dpopRequest(replayed, stepUpToken),
    show({ authorization: replayed?.authorization?.split(' ')[0] ?? null, proof: replayed?.proof?.claims ?? null }),
  );
  check(
    'the key survived the redirect: the step-up token is bound to the same key (cnf.jkt), and says multi-factor',
    jwtPayload(stepUpToken)?.cnf?.jkt === jkt && jwtPayload(stepUpToken)?.acr === MFA_ACR && thumbprint(replayed?.proof?.header?.jwk) === jkt,
    show(jwtPayload(stepUpToken)?.cnf ?? null),
  );
  await screenshot(page, 'transfer-done');

  // 7b. The operations page, in a tab of its own (the SPA stays as it is).
  await opsPage(page.context());

  const token = await page.evaluate(() => {
    try {
      return JSON.parse(sessionStorage.getItem('bank-demo.session') ?? 'null')?.accessToken ?? null;
    } catch {
      return null;
    }
  });
  check('the access token is kept in sessionStorage', typeof token === 'string' && token.split('.').length === 3);
  const idToken = await page.evaluate(() => {
    try {
      return JSON.parse(sessionStorage.getItem('bank-demo.session') ?? 'null')?.idToken ?? null;
    } catch {
      return null;
    }
  });
  check('the ID token of the last token response is kept for the logout', jwtPayload(idToken)?.sub === ALICE.username && jwtPayload(idToken)?.acr === MFA_ACR, show(jwtPayload(idToken)));

  // 8. Log out: through the provider's end_session_endpoint and back, logged out.
  await page.click('#logout-button', { timeout: WAIT_MS });
  const reachedLogout = await waitUrl(page, (u) => u.pathname.endsWith('/idp/logout') || seen.logout.length > 0, NAV_MS);
  const back = await waitUrl(page, atBank);
  const [outOk, outMsg] = await waitText(page, '#message', 'You are logged out.', NAV_MS);
  check('"Log out" goes to the provider\'s logout and back to the bank, which says "You are logged out."', reachedLogout && seen.logout.length === 1 && back && outOk, `#message is ${show(outMsg)} at ${page.url()}; logout requests ${seen.logout.length}`);
  const lq = seen.logout[0] ? new URL(seen.logout[0]).searchParams : new URLSearchParams();
  check(
    'the logout request carries id_token_hint (the last ID token), post_logout_redirect_uri, client_id and state',
    lq.get('id_token_hint') === idToken && lq.get('post_logout_redirect_uri') === `${BASE}/` && Boolean(lq.get('client_id')) && (lq.get('state') ?? '').length >= 22,
    show([...lq.keys()]),
  );
  const returned = seen.urls.find((u) => u.startsWith(`${BASE}/?`) && new URL(u).searchParams.get('state') === lq.get('state') && !new URL(u).searchParams.has('code'));
  check('the provider sent the browser back with the same state', Boolean(returned), show(seen.urls.filter((u) => u.startsWith(`${BASE}/?`))));
  check('after the logout the URL is clean, #login-button is shown and the session is gone', isClean(page.url()) && (await page.isVisible('#login-button')) && !(await page.isVisible('#logout-button')) && (await page.evaluate(() => sessionStorage.getItem('bank-demo.session'))) === null, page.url());
  await screenshot(page, 'logged-out');

  // 9. Log in again: the provider's session is over, so it asks for the password.
  const authorizeBefore = seen.authorize.length;
  await page.click('#login-button', { timeout: WAIT_MS });
  const onLoginAgain = await waitUrl(page, (u) => u.pathname.endsWith('/idp/login'));
  must(check('"Log in" after the logout shows the provider\'s password page (no silent single sign-on)', onLoginAgain && new URL(page.url()).pathname.endsWith('/idp/login') && (await waitVisible(page, '#password')), `at ${page.url()}; #message ${show(await textOf(page, '#message'))}`));
  const again = seen.authorize[authorizeBefore] ? new URL(seen.authorize[authorizeBefore]).searchParams : new URLSearchParams();
  check('that login needs no prompt=login (the provider session really ended)', seen.authorize.length === authorizeBefore + 1 && !again.has('prompt'), show(seen.authorize.slice(authorizeBefore)));
  check('the login page offers #login-cancel', await waitVisible(page, '#login-cancel'));
  await screenshot(page, 'login-page-after-logout');
  await page.fill('#username', ALICE.username, { timeout: WAIT_MS });
  await page.fill('#password', ALICE.password, { timeout: WAIT_MS });
  await page.click('#login-submit', { timeout: WAIT_MS });
  const [user2Ok, user2] = await waitText(page, '#user', ALICE.username, NAV_MS);
  check('logged in again, #user shows alice', user2Ok, `#user is ${show(user2)} at ${page.url()}`);
  const [bal3Ok, bal3] = await waitText(page, '#balance', '975.00');
  check('#balance shows 975.00 again', bal3Ok, `#balance is ${show(bal3)}`);
  await screenshot(page, 'signed-in-again');

  // 9b. Two transfers started together (the second while the first waits): one step-up for
  //     both, then each lands once.
  await twoTransfersOneStepUp(page, seen);

  // 10. A logout answer that was not started here is ignored, with a note.
  await page.goto(`${BASE}/?state=forged`, { waitUntil: 'load', timeout: NAV_MS });
  const [forgedOk, forged] = await waitText(page, '#message', 'state mismatch');
  check('a logout answer with an unknown state is ignored with a note', forgedOk && isClean(page.url()), `#message is ${show(forged)} at ${page.url()}`);
  const [stillInOk] = await waitText(page, '#user', ALICE.username);
  check('... and the session stays', stillInOk && (await page.isVisible('#logout-button')));

  // 11. A provider without end_session_endpoint: "Log out" stays on the bank, and the next
  //     login asks for the password with prompt=login.
  const discoveryRoute = '**/idp/.well-known/openid-configuration';
  await page.route(discoveryRoute, async (route) => {
    const res = await route.fetch();
    const doc = await res.json();
    delete doc.end_session_endpoint;
    await route.fulfill({ response: res, json: doc });
  });
  const logoutsBefore = seen.logout.length;
  await page.click('#logout-button', { timeout: WAIT_MS });
  const [fallbackOk, fallback] = await waitText(page, '#message', 'offers no logout');
  await page.waitForTimeout(500);
  check('without end_session_endpoint, "Log out" stays on the bank and says the next login asks for the password', fallbackOk && isClean(page.url()) && seen.logout.length === logoutsBefore && (await page.isVisible('#login-button')), `#message is ${show(fallback)} at ${page.url()}`);
  const authorizeBeforeFallback = seen.authorize.length;
  await page.click('#login-button', { timeout: WAIT_MS });
  const onFallbackLogin = await waitUrl(page, (u) => u.pathname.endsWith('/idp/login'));
  const fq = seen.authorize[authorizeBeforeFallback] ? new URL(seen.authorize[authorizeBeforeFallback]).searchParams : new URLSearchParams();
  check('... and the next login carries prompt=login and shows the password page', onFallbackLogin && fq.get('prompt') === 'login' && (await waitVisible(page, '#password')), `at ${page.url()}; authorize ${show(seen.authorize[authorizeBeforeFallback] ?? null)}`);
  await page.unroute(discoveryRoute);
  await page.fill('#username', ALICE.username, { timeout: WAIT_MS });
  await page.fill('#password', ALICE.password, { timeout: WAIT_MS });
  await page.click('#login-submit', { timeout: WAIT_MS });
  const [user3Ok] = await waitText(page, '#user', ALICE.username, NAV_MS);
  const [bal4Ok, bal4] = await waitText(page, '#balance', '960.00');
  check('logged in after it, #balance shows 960.00', user3Ok && bal4Ok, `#balance is ${show(bal4)}`);
  await screenshot(page, 'signed-in-after-fallback');

  // 12. Hygiene: no access token in any URL or console line, the ID token only as the logout's
  //     id_token_hint, no script error.
  const token2 = await page.evaluate(() => {
    try {
      return JSON.parse(sessionStorage.getItem('bank-demo.session') ?? 'null')?.accessToken ?? null;
    } catch {
      return null;
    }
  });
  const isLogout = (s) => {
    try {
      return new URL(s).pathname.endsWith('/idp/logout');
    } catch {
      return false;
    }
  };
  const leaks = [...seen.urls, ...seen.console].filter(
    (s) =>
      /access_token/.test(s) ||
      (token && s.includes(token)) ||
      (token2 && s.includes(token2)) ||
      (!isLogout(s) && (/id_token/.test(s) || (idToken && s.includes(idToken)))),
  );
  check('no access token appears in a URL or in the console; the ID token only in the logout request', leaks.length === 0, show(leaks.slice(0, 3)));
  check('no script error on any page', seen.pageErrors.length === 0, show(seen.pageErrors.slice(0, 3)));
}

const screenshot = screenshotter();

run({
  label: `browser test against ${BASE}`,
  seen: { authorize: [], logout: [], api: [], tokenRequests: [] },
  onRequest: (r, seen) => {
    const p = new URL(r.url()).pathname;
    if (p.startsWith('/api/')) seen.api.push(sent(r));
    if (p.endsWith('/idp/token') && r.method() === 'POST') seen.tokenRequests.push(sent(r));
    if (p.endsWith('/idp/authorize')) seen.authorize.push(r.url());
    if (p.endsWith('/idp/logout') && r.method() === 'GET') seen.logout.push(r.url());
  },
  scenario,
  screenshot,
  wholeRunMs: 240_000,
});
