// The demo bank's single-page app: OpenID Connect login (code + PKCE), the bank API, and the
// RFC 9470 step-up loop for transfers. Tokens live in sessionStorage only: never in the URL,
// never in logs.

import {
  bearerChallenge,
  buildAuthorizeUrl,
  decodeJwtPayload,
  isStepUp,
  pkceChallenge,
  randomString,
  savePending,
  takePending,
  tokenRequestBody,
} from './stepup.mjs';

const SESSION_KEY = 'bank-demo.session'; // {accessToken, sub, expiresAt}
const AUTH_KEY = 'bank-demo.auth'; // {state, nonce, verifier, createdAt, stepUp}
const FORCE_LOGIN_KEY = 'bank-demo.force-login'; // set by "Log out": the next login asks again
const AUTH_REQUEST_MAX_AGE_MS = 10 * 60 * 1000;

const $ = (id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing element #${id}`);
  return el;
};

const ui = {
  message: $('message'),
  userBox: $('user-box'),
  user: $('user'),
  login: $('login-button'),
  logout: $('logout-button'),
  welcome: $('welcome'),
  accountPanel: $('account-panel'),
  transferPanel: $('transfer-panel'),
  historyPanel: $('history-panel'),
  account: $('account'),
  balance: $('balance'),
  currency: $('currency'),
  history: $('history'),
  form: $('transfer-form'),
  to: $('to'),
  amount: $('amount'),
  send: $('send'),
};

const FIELD_LABELS = { to: 'Recipient IBAN', amount: 'Amount', 'Idempotency-Key': 'request key' };

/** A fetch that never reached the server (offline, DNS, refused, CORS). */
class NetworkError extends Error {}

let config = null;
let discovery = null;
// The last transfer whose outcome is unknown (network failure): sending the same one again
// reuses its Idempotency-Key, so the bank executes it at most once.
let uncertain = null;

// ---------------------------------------------------------------------------------------------
// Messages and rendering

function say(text, kind = 'info') {
  ui.message.textContent = text;
  ui.message.className = kind;
  ui.message.setAttribute('role', kind === 'error' ? 'alert' : 'status');
}

function readSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null');
    if (s && typeof s.accessToken === 'string' && typeof s.expiresAt === 'number') return s;
  } catch {
    /* unreadable: treated as logged out */
  }
  return null;
}

function clearSession() {
  sessionStorage.removeItem(SESSION_KEY);
}

function renderSignedIn(session) {
  const signedIn = Boolean(session);
  ui.userBox.hidden = !signedIn;
  ui.user.textContent = signedIn ? session.sub ?? '(unknown)' : '';
  ui.login.hidden = signedIn;
  ui.logout.hidden = !signedIn;
  ui.welcome.hidden = signedIn;
  ui.accountPanel.hidden = !signedIn;
  ui.transferPanel.hidden = !signedIn;
  ui.historyPanel.hidden = !signedIn;
  if (!signedIn) {
    ui.account.textContent = '';
    ui.balance.textContent = '';
    ui.history.replaceChildren();
  }
}

function renderHistory(transfers) {
  const items = [...transfers].sort((a, b) => (b.created_at ?? 0) - (a.created_at ?? 0) || (b.id ?? 0) - (a.id ?? 0));
  if (items.length === 0) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = 'No transfers yet.';
    ui.history.replaceChildren(li);
    return;
  }
  ui.history.replaceChildren(
    ...items.map((t) => {
      const incoming = t.direction === 'in';
      const li = document.createElement('li');
      li.dataset.id = String(t.id ?? '');
      const amount = document.createElement('span');
      amount.className = incoming ? 'amount in' : 'amount out';
      amount.textContent = `${incoming ? '+' : '−'}${t.amount} EUR`;
      const who = document.createElement('span');
      who.className = 'party';
      who.append(incoming ? 'from ' : 'to ');
      const iban = document.createElement('code');
      iban.textContent = incoming ? t.from ?? '' : t.to ?? '';
      who.append(iban);
      const when = document.createElement('time');
      if (typeof t.created_at === 'number') {
        const d = new Date(t.created_at * 1000);
        when.dateTime = d.toISOString();
        when.textContent = d.toLocaleString();
      }
      li.append(amount, ' ', who, ' ', when);
      return li;
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Configuration and discovery

async function getJson(url, what) {
  let res;
  try {
    res = await fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  } catch {
    throw new NetworkError(`could not reach ${what}`);
  }
  if (!res.ok) throw new Error(`${what} answered HTTP ${res.status}`);
  try {
    return await res.json();
  } catch {
    throw new Error(`${what} did not answer JSON`);
  }
}

async function loadConfig() {
  if (!config) config = await getJson('/config.json', 'the bank (configuration)');
  return config;
}

async function loadDiscovery() {
  if (discovery) return discovery;
  const issuer = config.issuer.replace(/\/+$/, '');
  const d = await getJson(`${issuer}/.well-known/openid-configuration`, 'the login provider');
  // OpenID Connect Discovery §4.3: the issuer in the document must be the one asked for.
  if (d.issuer !== config.issuer) throw new Error('the login provider names another issuer');
  if (typeof d.authorization_endpoint !== 'string' || typeof d.token_endpoint !== 'string') {
    throw new Error('the login provider document lacks its endpoints');
  }
  discovery = d;
  return d;
}

// ---------------------------------------------------------------------------------------------
// Login: authorization code + PKCE

async function startLogin({ acrValues = null, maxAge = null, stepUp = false } = {}) {
  await loadConfig();
  await loadDiscovery();
  const state = randomString();
  const nonce = randomString();
  const verifier = randomString();
  const codeChallenge = await pkceChallenge(verifier);
  // The provider's single sign-on outlives "Log out" here (it has no logout endpoint), so the
  // first login after it asks for the password again (OIDC Core prompt=login).
  const prompt = !stepUp && sessionStorage.getItem(FORCE_LOGIN_KEY) ? 'login' : null;
  sessionStorage.setItem(AUTH_KEY, JSON.stringify({ state, nonce, verifier, stepUp, createdAt: Date.now() }));
  window.location.assign(buildAuthorizeUrl(discovery, config, { state, nonce, codeChallenge, acrValues, maxAge, prompt }));
}

function describeLoginError(error, description) {
  switch (error) {
    case 'access_denied':
      return 'Login was cancelled or refused.';
    case 'login_required':
    case 'interaction_required':
      return 'You need to log in again.';
    default:
      return `Login did not complete: ${description || error}.`;
  }
}

/**
 * Completes a login if the URL is the provider's answer. Returns
 * `{done: false}` when it is not, `{done: true, ok, stepUp}` otherwise.
 */
async function handleCallback() {
  const params = new URLSearchParams(window.location.search);
  if (!params.has('code') && !params.has('error')) return { done: false };
  // Out of the address bar and the history at once: the code is single-use anyway.
  window.history.replaceState(null, '', window.location.pathname + window.location.hash);

  let started = null;
  try {
    started = JSON.parse(sessionStorage.getItem(AUTH_KEY) ?? 'null');
  } catch {
    started = null;
  }
  sessionStorage.removeItem(AUTH_KEY);
  const stepUp = Boolean(started?.stepUp);
  if (!started || typeof started.state !== 'string' || params.get('state') !== started.state) {
    say('This login answer does not belong to a login started here (state mismatch), so it was ignored. Please log in again.', 'error');
    return { done: true, ok: false, stepUp };
  }
  if (Date.now() - started.createdAt > AUTH_REQUEST_MAX_AGE_MS) {
    say('This login took too long and has expired. Please log in again.', 'error');
    return { done: true, ok: false, stepUp };
  }
  if (params.has('error')) {
    say(describeLoginError(params.get('error'), params.get('error_description')), 'error');
    return { done: true, ok: false, stepUp };
  }

  await loadDiscovery();
  let res;
  try {
    res = await fetch(discovery.token_endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body: tokenRequestBody(config, { code: params.get('code'), codeVerifier: started.verifier }),
      cache: 'no-store',
    });
  } catch {
    throw new NetworkError('could not reach the login provider to finish the login');
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok || !body) {
    const why = body?.error_description || body?.error || `HTTP ${res.status}`;
    say(`Login failed: the provider refused the code (${why}). Please log in again.`, 'error');
    return { done: true, ok: false, stepUp };
  }
  if (typeof body.access_token !== 'string' || String(body.token_type).toLowerCase() !== 'bearer') {
    say('Login failed: the provider sent no usable access token.', 'error');
    return { done: true, ok: false, stepUp };
  }
  // The ID token comes straight from the token endpoint (OIDC Core §3.1.3.7, TLS-validated in
  // production); its nonce binds it to this login.
  const idClaims = decodeJwtPayload(body.id_token);
  if (!idClaims || idClaims.nonce !== started.nonce) {
    say('Login failed: the ID token does not match this login (nonce). Please log in again.', 'error');
    return { done: true, ok: false, stepUp };
  }
  const expiresIn = Number.isFinite(body.expires_in) && body.expires_in > 0 ? body.expires_in : 300;
  const session = {
    accessToken: body.access_token,
    sub: idClaims.sub ?? decodeJwtPayload(body.access_token)?.sub ?? null,
    expiresAt: Date.now() + expiresIn * 1000,
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  sessionStorage.removeItem(FORCE_LOGIN_KEY);
  return { done: true, ok: true, stepUp };
}

// ---------------------------------------------------------------------------------------------
// The bank API

async function api(path, { method = 'GET', body = undefined, headers = {} } = {}) {
  const session = readSession();
  if (!session) return { res: null, body: null, expired: true };
  if (Date.now() >= session.expiresAt) return { res: null, body: null, expired: true };
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: { Accept: 'application/json', Authorization: `Bearer ${session.accessToken}`, ...headers },
      body,
      cache: 'no-store',
    });
  } catch {
    throw new NetworkError(`could not reach the bank`);
  }
  let json = null;
  if ((res.headers.get('content-type') ?? '').includes('json')) {
    try {
      json = await res.json();
    } catch {
      json = null;
    }
  }
  return { res, body: json, expired: false };
}

function challengeOf(res) {
  try {
    return bearerChallenge(res.headers.get('www-authenticate'));
  } catch {
    return null; // a malformed challenge is handled like none
  }
}

function sessionEnded(text) {
  clearSession();
  renderSignedIn(null);
  say(text, 'error');
  ui.login.focus();
}

function describeRefusal(res, body, action) {
  const c = challengeOf(res);
  if (res.status === 403) {
    const scopes = c?.scope?.length ? ` (missing permission: ${c.scope.join(', ')})` : '';
    const detail = body?.error_description || c?.errorDescription;
    return `You are not allowed to ${action}${scopes}.${detail ? ` The bank says: ${detail}.` : ''}`;
  }
  const detail = body?.error_description || c?.errorDescription || `HTTP ${res.status}`;
  return `The bank could not ${action}: ${detail}.`;
}

/** Loads balance and history. Returns false when the session turned out to be over. */
async function refresh() {
  let balance;
  let history;
  try {
    [balance, history] = await Promise.all([api('/api/balance'), api('/api/transfers')]);
  } catch (e) {
    if (e instanceof NetworkError) {
      say('Network problem: the bank could not be reached, so your balance may be out of date. Reload to try again.', 'error');
      return true;
    }
    throw e;
  }
  for (const r of [balance, history]) {
    if (r.expired) {
      sessionEnded('Your session has expired. Please log in again.');
      return false;
    }
    if (r.res.status === 401) {
      const c = challengeOf(r.res);
      const why = c?.errorDescription ? ` (${c.errorDescription})` : '';
      sessionEnded(`Your session is no longer valid${why}. Please log in again.`);
      return false;
    }
  }
  if (balance.res.ok && balance.body) {
    ui.account.textContent = balance.body.account ?? '';
    ui.balance.textContent = balance.body.balance ?? '';
    ui.currency.textContent = balance.body.currency ?? 'EUR';
  } else {
    say(describeRefusal(balance.res, balance.body, 'show your balance'), 'error');
  }
  if (history.res.ok && Array.isArray(history.body?.transfers)) {
    renderHistory(history.body.transfers);
  } else if (!history.res.ok) {
    say(describeRefusal(history.res, history.body, 'show your transfers'), 'error');
  }
  return true;
}

function markField(field) {
  for (const el of [ui.to, ui.amount]) el.removeAttribute('aria-invalid');
  const el = field === 'to' ? ui.to : field === 'amount' ? ui.amount : null;
  if (el) {
    el.setAttribute('aria-invalid', 'true');
    el.focus();
  }
}

function describeTransferError(status, body) {
  const desc = body?.error_description || body?.error || `HTTP ${status}`;
  const label = body?.field ? FIELD_LABELS[body.field] ?? body.field : null;
  if (status === 409 && body?.error === 'idempotency_key_reused') {
    return 'This transfer request clashed with an earlier, different one. Nothing was sent; press Send again.';
  }
  const where = label ? ` Please check the field “${label}”.` : '';
  return `The transfer was refused: ${desc}.${where}`;
}

/**
 * Sends a transfer. `retry` marks the one retry after a step-up: it never starts another
 * login, so a refused step-up cannot loop.
 */
async function sendTransfer(transfer, { retry = false } = {}) {
  ui.send.disabled = true;
  markField(null);
  if (retry) {
    // Back from the step-up on a fresh page: show what is being sent (and keep it on a refusal).
    ui.to.value = transfer.to;
    ui.amount.value = transfer.amount;
  }
  say(retry ? `Sending your transfer of ${transfer.amount} EUR to ${transfer.to} now that you confirmed it…` : 'Sending…');
  try {
    let r;
    try {
      r = await api('/api/transfers', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Idempotency-Key': transfer.idempotencyKey },
        body: JSON.stringify({ to: transfer.to, amount: transfer.amount }),
      });
    } catch (e) {
      if (!(e instanceof NetworkError)) throw e;
      uncertain = transfer;
      ui.to.value = transfer.to;
      ui.amount.value = transfer.amount;
      say('Network problem: the bank could not be reached, so we do not know whether the transfer went through. Press Send again to retry safely: it will not be executed twice.', 'error');
      return;
    }
    if (r.expired) {
      ui.to.value = transfer.to;
      ui.amount.value = transfer.amount;
      sessionEnded('Your session has expired, so the transfer was not sent. Log in again, then send it again.');
      return;
    }
    const { res, body } = r;
    uncertain = null;
    if (res.status === 201 || res.status === 200) {
      const t = body?.transfer ?? {};
      const replayed = res.headers.get('idempotent-replayed') === 'true';
      say(`Transfer done: ${t.amount ?? transfer.amount} EUR to ${t.to ?? transfer.to}.${replayed ? ' (It had already gone through; it was not sent twice.)' : ''}`, 'ok');
      ui.form.reset();
      if (typeof body?.balance === 'string') ui.balance.textContent = body.balance;
      await refresh();
      return;
    }
    if (res.status === 401) {
      const c = challengeOf(res);
      if (isStepUp(c)) {
        if (retry) {
          ui.to.value = transfer.to;
          ui.amount.value = transfer.amount;
          say('The bank still asks for a stronger authentication, so the transfer was not sent. Press Send to try again.', 'error');
          return;
        }
        savePending(sessionStorage, transfer);
        say('Stronger authentication needed: this transfer asks for your second factor. Taking you to the login provider…');
        try {
          await startLogin({ acrValues: c.acrValues, maxAge: c.maxAge, stepUp: true });
        } catch (e) {
          takePending(sessionStorage);
          say(e instanceof NetworkError
            ? 'Network problem: the login provider could not be reached, so the transfer was not sent.'
            : `The stronger authentication could not start (${e.message}); the transfer was not sent.`, 'error');
        }
        return;
      }
      ui.to.value = transfer.to;
      ui.amount.value = transfer.amount;
      const why = c?.errorDescription ? ` (${c.errorDescription})` : '';
      sessionEnded(c?.error === 'invalid_token'
        ? `Your session has expired or is no longer valid${why}, so the transfer was not sent. Log in again, then send it again.`
        : `The bank needs you to log in again${why}; the transfer was not sent.`);
      return;
    }
    if (res.status === 403) {
      say(`${describeRefusal(res, body, 'make transfers')} The transfer was not sent.`, 'error');
      return;
    }
    if ([400, 409, 413, 415, 422].includes(res.status)) {
      say(describeTransferError(res.status, body), 'error');
      markField(body?.field);
      return;
    }
    say(`The bank could not process the transfer (HTTP ${res.status}${body?.error_description ? `: ${body.error_description}` : ''}). It was not confirmed; check your history before trying again.`, 'error');
  } finally {
    ui.send.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function onSubmit(event) {
  event.preventDefault();
  const to = ui.to.value.trim();
  const amount = ui.amount.value.trim();
  if (!to) {
    say('Enter the IBAN of the recipient.', 'error');
    markField('to');
    return;
  }
  if (!amount) {
    say('Enter the amount to send, such as 25.00.', 'error');
    markField('amount');
    return;
  }
  const idempotencyKey = uncertain && uncertain.to === to && uncertain.amount === amount ? uncertain.idempotencyKey : crypto.randomUUID();
  sendTransfer({ to, amount, idempotencyKey }).catch(fail);
}

function onLogin() {
  ui.login.disabled = true;
  say('Taking you to the login provider…');
  startLogin().catch((e) => {
    ui.login.disabled = false;
    fail(e);
  });
}

function onLogout() {
  clearSession();
  sessionStorage.removeItem(AUTH_KEY);
  takePending(sessionStorage);
  sessionStorage.setItem(FORCE_LOGIN_KEY, '1');
  uncertain = null;
  renderSignedIn(null);
  say('You are logged out of the bank.');
}

function fail(e) {
  if (e instanceof NetworkError) {
    say(`Network problem: ${e.message}. Check your connection and try again.`, 'error');
  } else {
    say(`Something went wrong: ${e?.message ?? e}.`, 'error');
  }
}

async function main() {
  ui.form.addEventListener('submit', onSubmit);
  ui.login.addEventListener('click', onLogin);
  ui.logout.addEventListener('click', onLogout);
  renderSignedIn(readSession());

  await loadConfig();
  const callback = await handleCallback();
  // A transfer that waited for the step-up is taken (and so forgotten) in every case; it is
  // sent again only right after a successful login.
  const pending = takePending(sessionStorage);
  const session = readSession();
  renderSignedIn(session);
  if (pending && !(callback.done && callback.ok)) {
    // Back without a successful step-up (refused, cancelled, back button): not sent.
    ui.to.value = pending.to;
    ui.amount.value = pending.amount;
    if (callback.done) ui.message.textContent += ' The transfer was not sent.';
    else say('The transfer that waited for a stronger authentication was not sent.', 'error');
  }
  if (!session) return;
  const alive = await refresh();
  if (!alive) return;
  if (pending && callback.done && callback.ok) {
    await sendTransfer(pending, { retry: true });
  } else if (callback.done && callback.ok) {
    say(`Welcome, ${session.sub ?? 'you are logged in'}.`, 'ok');
  }
}

main().catch((e) => {
  renderSignedIn(readSession());
  fail(e);
});
