// What both browser scenarios share (browser.mjs: the demo with its embedded provider;
// oidc-client-ts.mjs: the same SPA on oidc-client-ts against npm oidc-provider): checks and
// their summary line, waits, screenshots, and one run of a scenario in headless Chromium.

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const WAIT_MS = 15_000; // any single wait
export const NAV_MS = 20_000; // any navigation
export const PENDING_KEY = 'stepup-fetch.pending';
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHOTS = path.join(ROOT, 'target', 'browser-screenshots');

const results = [];

export function check(name, ok, detail = '') {
  results.push({ name, ok: Boolean(ok) });
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${!ok && detail ? ` — ${detail}` : ''}`);
  return Boolean(ok);
}

/** Prints `N passed, M failed`; returns the number failed. */
export function summary() {
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  console.log(`${passed} passed, ${failed} failed`);
  return failed;
}

/** Stops the run: the steps after a broken one cannot mean anything. */
export class Abort extends Error {}
export function must(ok) {
  if (!ok) throw new Abort('stopping: the steps after this one depend on it');
}

export const show = (v) => JSON.stringify(v);

/** Numbered full-page screenshots under target/browser-screenshots, names starting with `prefix`. */
export function screenshotter(prefix = '') {
  let shotNo = 0;
  return async (page, step) => {
    shotNo += 1;
    const file = path.join(SHOTS, `${prefix}${String(shotNo).padStart(2, '0')}-${step}.png`);
    try {
      await page.screenshot({ path: file, fullPage: true, timeout: WAIT_MS });
      console.log(`     screenshot ${path.relative(ROOT, file)}`);
    } catch (e) {
      console.log(`     (screenshot ${step} failed: ${e.message.split('\n')[0]})`);
    }
  };
}

export async function textOf(page, selector) {
  return page.evaluate((sel) => document.querySelector(sel)?.textContent ?? null, selector).catch(() => null);
}

/** Waits until `selector`'s text contains `text`; returns [ok, actualText]. */
export async function waitText(page, selector, text, timeout = WAIT_MS) {
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

export async function waitVisible(page, selector, timeout = WAIT_MS) {
  try {
    await page.locator(selector).first().waitFor({ state: 'visible', timeout });
    return true;
  } catch {
    return false;
  }
}

/** Waits until the page is at `pred(url)`; returns whether it got there. */
export async function waitUrl(page, pred, timeout = NAV_MS) {
  try {
    await page.waitForURL(pred, { timeout });
    return true;
  } catch {
    return false;
  }
}

export const isClean = (href) => {
  const u = new URL(href);
  return u.pathname === '/' && u.search === '';
};

/** Fills the transfer form and presses Send. */
export async function submitTransfer(page, to, amount) {
  await page.fill('#to', to, { timeout: WAIT_MS });
  await page.fill('#amount', amount, { timeout: WAIT_MS });
  await page.click('#send', { timeout: WAIT_MS });
}

/** What stepup-fetch keeps in sessionStorage: `{raw, entries}` (raw 'null' when nothing waits). */
/** Waits (up to `timeout`) until `n` requests wait in sessionStorage: the page saves them as the
 * challenges arrive, which may be just after it shows the offer. */
export async function waitPending(page, n, timeout = WAIT_MS) {
  try {
    await page.waitForFunction(
      ([k, count]) => {
        try {
          return (JSON.parse(sessionStorage.getItem(k) ?? 'null') ?? []).length >= count;
        } catch {
          return false;
        }
      },
      [PENDING_KEY, n],
      { timeout, polling: 100 },
    );
  } catch {
    // Reported by the caller's check on what is there.
  }
  return readPending(page);
}

export async function readPending(page) {
  const raw = String(await page.evaluate((k) => sessionStorage.getItem(k), PENDING_KEY));
  try {
    return { raw, entries: JSON.parse(raw) };
  } catch {
    return { raw, entries: null };
  }
}

/**
 * Runs `scenario(page, seen)` in a fresh headless Chromium, recording into `seen` every URL,
 * console line, page error and `POST /api/transfers` (status, Idempotency-Key, challenge);
 * `onRequest(request, seen)` records what else a scenario needs. Sets the exit code from the
 * checks; a watchdog fails the run after `wholeRunMs`.
 */
export async function run({ label, seen, onRequest = () => {}, scenario, screenshot, wholeRunMs }) {
  mkdirSync(SHOTS, { recursive: true });
  console.log(`${label} with ${CHROMIUM}`);
  setTimeout(() => {
    check(`the whole run finishes within ${wholeRunMs / 1000} s`, false);
    summary();
    process.exit(1);
  }, wholeRunMs).unref();
  try {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 60_000,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    Object.assign(seen, { urls: [], console: [], pageErrors: [], transfers: [] }, seen);
    try {
      const page = await (await browser.newContext({ viewport: { width: 1000, height: 800 } })).newPage();
      page.setDefaultTimeout(WAIT_MS);
      page.setDefaultNavigationTimeout(NAV_MS);
      page.on('dialog', (d) => d.dismiss().catch(() => {}));
      page.on('console', (m) => seen.console.push(m.text()));
      page.on('pageerror', (e) => seen.pageErrors.push(String(e?.message ?? e)));
      page.on('request', (r) => {
        seen.urls.push(r.url());
        onRequest(r, seen);
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
  } catch (e) {
    check('the browser starts', false, e?.stack ?? String(e));
  }
  process.exitCode = summary() > 0 || results.length === 0 ? 1 : 0;
}
