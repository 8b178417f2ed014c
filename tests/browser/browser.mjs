// End-to-end browser test of the bank demo, as a person would use it:
// log in with a password, try a transfer, get asked for the second factor only, type a wrong
// code, then the right one, and see the transfer done.
//
//   node tests/browser/browser.mjs http://127.0.0.1:8080
//
// Prints one line per check and ends with "N passed, M failed"; exits non-zero on any failure.
// Screenshots go to target/browser-screenshots/NN-step.png.

import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const BASE = (process.argv[2] ?? process.env.BANK_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ALICE = { username: 'alice', password: 'alice-demo-pw', totpSecret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP' };
const MFA_ACR = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';
const PAYEE = 'DE89370400440532013000';
const AMOUNT = '25.00';

const WAIT_MS = 15_000; // any single wait
const NAV_MS = 20_000; // any navigation
const WHOLE_RUN_MS = 180_000; // the whole script

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHOTS = path.join(ROOT, 'target', 'browser-screenshots');

// ---------------------------------------------------------------------------------------------
// Checks

const results = [];

function check(name, ok, detail = '') {
  results.push({ name, ok: Boolean(ok) });
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${!ok && detail ? ` — ${detail}` : ''}`);
  return Boolean(ok);
}

function summary() {
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  console.log(`${passed} passed, ${failed} failed`);
  return failed;
}

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

let shotNo = 0;
async function screenshot(page, step) {
  shotNo += 1;
  const file = path.join(SHOTS, `${String(shotNo).padStart(2, '0')}-${step}.png`);
  try {
    await page.screenshot({ path: file, fullPage: true, timeout: WAIT_MS });
    console.log(`     screenshot ${path.relative(ROOT, file)}`);
  } catch (e) {
    console.log(`     (screenshot ${step} failed: ${e.message.split('\n')[0]})`);
  }
}

async function textOf(page, selector) {
  return page.evaluate((sel) => document.querySelector(sel)?.textContent ?? null, selector).catch(() => null);
}

/** Waits until `selector`'s text contains `text`; returns [ok, actualText]. */
async function waitText(page, selector, text, timeout = WAIT_MS) {
  try {
    await page.waitForFunction(
      ([sel, t]) => (document.querySelector(sel)?.textContent ?? '').includes(t),
      [selector, text],
      { timeout, polling: 100 },
    );
    return [true, await textOf(page, selector)];
  } catch {
    return [false, await textOf(page, selector)];
  }
}

async function waitVisible(page, selector, timeout = WAIT_MS) {
  try {
    await page.locator(selector).first().waitFor({ state: 'visible', timeout });
    return true;
  } catch {
    return false;
  }
}

const show = (v) => JSON.stringify(v);

/** Stops the run: the steps after a broken one cannot mean anything. */
class Abort extends Error {}
function must(ok) {
  if (!ok) throw new Abort('stopping: the steps after this one depend on it');
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
  const cleaned = new URL(page.url());
  check('the code and state are removed from the address bar', cleaned.pathname === '/' && cleaned.search === '', `URL is ${page.url()}`);
  check('#login-button is hidden and #logout-button shown once signed in', !(await page.isVisible('#login-button')) && (await page.isVisible('#logout-button')));
  await screenshot(page, 'signed-in');

  // 4. Transfer → the step-up asks for the second factor only.
  await page.fill('#to', PAYEE, { timeout: WAIT_MS });
  await page.fill('#amount', AMOUNT, { timeout: WAIT_MS });
  await screenshot(page, 'transfer-filled');
  await page.click('#send', { timeout: WAIT_MS });
  let onMfa = true;
  try {
    await page.waitForURL((u) => u.pathname.endsWith('/idp/mfa'), { timeout: NAV_MS });
    await page.locator('#mfa-form').waitFor({ state: 'visible', timeout: WAIT_MS });
  } catch {
    onMfa = false;
  }
  must(check('the transfer leads to the second-factor page', onMfa, `at ${page.url()}; #message ${show(await textOf(page, '#message'))}`));
  check('the step-up asks only for the second factor (no #password)', (await page.locator('#password').count()) === 0);
  const stepUpAuthorize = seen.authorize.at(-1);
  const q = stepUpAuthorize ? new URL(stepUpAuthorize).searchParams : new URLSearchParams();
  check('the step-up authorization request carries the challenge acr_values and max_age=300', (q.get('acr_values') ?? '').split(' ').includes(MFA_ACR) && q.get('max_age') === '300', `authorize URL ${stepUpAuthorize}`);
  check('the first transfer attempt was refused with 401 insufficient_user_authentication', seen.transfers[0]?.status === 401 && /insufficient_user_authentication/.test(seen.transfers[0]?.challenge ?? ''), show(seen.transfers[0] ?? null));
  await screenshot(page, 'second-factor-page');

  // 5. A wrong code.
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

  // 6. The right code → back on the SPA, transfer done.
  await page.fill('#code', totp(ALICE.totpSecret), { timeout: WAIT_MS });
  await page.click('#mfa-submit', { timeout: WAIT_MS });
  const [doneOk, message] = await waitText(page, '#message', 'Transfer done', NAV_MS);
  check('after the second factor, #message says "Transfer done"', doneOk, `#message is ${show(message)} at ${page.url()}`);
  check('the message names the amount and the payee', (message ?? '').includes(AMOUNT) && (message ?? '').includes(PAYEE), show(message));
  const [bal2Ok, bal2] = await waitText(page, '#balance', '975.00');
  check('#balance shows 975.00', bal2Ok, `#balance is ${show(bal2)}`);
  const [histOk, hist] = await waitText(page, '#history', PAYEE);
  check('#history lists the transfer', histOk && (hist ?? '').includes(AMOUNT), `#history is ${show(hist)}`);
  const retried = seen.transfers.slice(1);
  check(
    'the pending transfer was retried once, with the same Idempotency-Key, and succeeded',
    retried.length === 1 && retried[0].status === 201 && retried[0].key && retried[0].key === seen.transfers[0]?.key,
    show(seen.transfers),
  );
  const finalUrl = new URL(page.url());
  check('the SPA URL is clean after the step-up', finalUrl.pathname === '/' && finalUrl.search === '', page.url());
  await screenshot(page, 'transfer-done');

  // 7. Hygiene: no token in any URL or console line, no script error.
  const token = await page.evaluate(() => {
    try {
      return JSON.parse(sessionStorage.getItem('bank-demo.session') ?? 'null')?.accessToken ?? null;
    } catch {
      return null;
    }
  });
  check('the access token is kept in sessionStorage', typeof token === 'string' && token.split('.').length === 3);
  const leaks = [...seen.urls, ...seen.console].filter((s) => /access_token|id_token/.test(s) || (token && s.includes(token)));
  check('no token appears in a URL or in the console', leaks.length === 0, show(leaks.slice(0, 3)));
  check('no script error on any page', seen.pageErrors.length === 0, show(seen.pageErrors.slice(0, 3)));
}

// ---------------------------------------------------------------------------------------------

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  console.log(`browser test against ${BASE} with ${CHROMIUM}`);
  const watchdog = setTimeout(() => {
    check('the whole run finishes within 180 s', false);
    summary();
    process.exit(1);
  }, WHOLE_RUN_MS);
  watchdog.unref();

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const seen = { urls: [], console: [], pageErrors: [], authorize: [], transfers: [] };
  try {
    const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.setDefaultNavigationTimeout(NAV_MS);
    page.on('dialog', (d) => d.dismiss().catch(() => {}));
    page.on('console', (m) => seen.console.push(m.text()));
    page.on('pageerror', (e) => seen.pageErrors.push(String(e?.message ?? e)));
    page.on('request', (r) => {
      seen.urls.push(r.url());
      if (new URL(r.url()).pathname.endsWith('/idp/authorize')) seen.authorize.push(r.url());
    });
    page.on('response', (res) => {
      const req = res.request();
      if (req.method() === 'POST' && new URL(res.url()).pathname === '/api/transfers') {
        seen.transfers.push({
          status: res.status(),
          key: req.headers()['idempotency-key'] ?? null,
          challenge: res.headers()['www-authenticate'] ?? null,
        });
      }
    });
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) seen.urls.push(f.url());
    });
    try {
      await scenario(page, seen);
    } catch (e) {
      if (e instanceof Abort) console.log(`     ${e.message}`);
      else check('the scenario runs without an unexpected error', false, e?.stack ?? String(e));
      await screenshot(page, 'failure');
    }
  } finally {
    await browser.close().catch(() => {});
  }
  const failed = summary();
  process.exitCode = failed > 0 || results.length === 0 ? 1 : 0;
}

main().catch((e) => {
  check('the browser starts', false, e?.stack ?? String(e));
  summary();
  process.exit(1);
});
