// The demo bank's single-page app: OpenID Connect login (code + PKCE), RP-Initiated Logout,
// the bank API, and the RFC 9470 step-up loop for transfers. Tokens live in sessionStorage
// only and never in logs; the one token that ever goes in a URL is the ID token, as the
// id_token_hint of the logout request (OpenID Connect RP-Initiated Logout 1.0 §2).

import {
  bearerChallenge,
  buildAuthorizeUrl,
  buildLogoutUrl,
  challengeSummary,
  checkTransfer,
  decodeJwtPayload,
  describeStepUp,
  describeTransfer,
  fieldErrorText,
  isStepUp,
  loginErrorMessage,
  pkceChallenge,
  randomString,
  savePending,
  takePending,
  tokenRequestBody,
} from './stepup.mjs';

const SESSION_KEY = 'bank-demo.session'; // {accessToken, idToken, sub, expiresAt}
const AUTH_KEY = 'bank-demo.auth'; // {state, nonce, verifier, createdAt, stepUp}
const LOGOUT_KEY = 'bank-demo.logout'; // {state, createdAt}: a logout at the provider under way
// Set by "Log out" when the provider has no end_session_endpoint (or could not be reached):
// its single sign-on outlives the bank's logout, so the next login asks for the password.
const FORCE_LOGIN_KEY = 'bank-demo.force-login';
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
  toError: $('to-error'),
  amountError: $('amount-error'),
  send: $('send'),
  stepUpPanel: $('stepup-panel'),
  stepUpAsk: $('stepup-ask'),
  stepUpTransfer: $('stepup-transfer'),
  stepUpContinue: $('stepup-continue'),
  stepUpCancel: $('stepup-cancel'),
};

/** A fetch that never reached the server (offline, DNS, refused, CORS). */
class NetworkError extends Error {}

let config = null;
let discovery = null;
// The last transfer whose outcome is unknown (network failure): sending the same one again
// reuses its Idempotency-Key, so the bank executes it at most once.
let uncertain = null;
// A transfer the bank answered with a step-up challenge, waiting for "Continue" or "Cancel":
// {transfer, challenge}.
let offer = null;

// ---------------------------------------------------------------------------------------------
// Messages and rendering

function say(text, kind = 'info') {
  ui.message.textContent = text;
  ui.message.className = kind;
  ui.message.setAttribute('role', kind === 'error' ? 'alert' : 'status');
}

const capitalize = (t) => (t ? t[0].toUpperCase() + t.slice(1) : t);

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

function readJson(key) {
  try {
    return JSON.parse(sessionStorage.getItem(key) ?? 'null');
  } catch {
    return null;
  }
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
    hideStepUp();
    markField(null);
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
  // After a "Log out" that could not end the provider's session (no end_session_endpoint), the
  // first login asks for the password again (OIDC Core prompt=login).
  const prompt = !stepUp && sessionStorage.getItem(FORCE_LOGIN_KEY) ? 'login' : null;
  sessionStorage.setItem(AUTH_KEY, JSON.stringify({ state, nonce, verifier, stepUp, createdAt: Date.now() }));
  window.location.assign(buildAuthorizeUrl(discovery, config, { state, nonce, codeChallenge, acrValues, maxAge, prompt }));
}

/**
 * Completes a login if the URL is the provider's answer. Returns `{done: false}` when it is
 * not, `{done: true, ok, stepUp, message}` otherwise; `message` says why a login failed, and
 * the caller shows it (with the fate of a pending transfer).
 */
async function handleCallback(pending) {
  const params = new URLSearchParams(window.location.search);
  if (!params.has('code') && !params.has('error')) return { done: false };
  // Out of the address bar and the history at once: the code is single-use anyway.
  window.history.replaceState(null, '', window.location.pathname + window.location.hash);

  const started = readJson(AUTH_KEY);
  sessionStorage.removeItem(AUTH_KEY);
  const stepUp = Boolean(started?.stepUp);
  const notSent = pending ? ` ${capitalize(describeTransfer(pending))} was not sent.` : '';
  const failed = (message) => ({ done: true, ok: false, stepUp, message });
  if (!started || typeof started.state !== 'string' || params.get('state') !== started.state) {
    return failed(`This login answer does not belong to a login started here (state mismatch), so it was ignored.${notSent} Please log in again.`);
  }
  if (typeof started.createdAt !== 'number' || Date.now() - started.createdAt > AUTH_REQUEST_MAX_AGE_MS) {
    return failed(`This login took too long and has expired.${notSent} Please log in again.`);
  }
  if (params.has('error')) {
    return failed(loginErrorMessage(params.get('error'), params.get('error_description'), { stepUp, transfer: pending }));
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
    return failed(`Login failed: the provider refused the code (${why}).${notSent} Please log in again.`);
  }
  if (typeof body.access_token !== 'string' || String(body.token_type).toLowerCase() !== 'bearer') {
    return failed(`Login failed: the provider sent no usable access token.${notSent}`);
  }
  // The ID token comes straight from the token endpoint (OIDC Core §3.1.3.7, TLS-validated in
  // production); its nonce binds it to this login.
  const idClaims = decodeJwtPayload(body.id_token);
  if (!idClaims || idClaims.nonce !== started.nonce) {
    return failed(`Login failed: the ID token does not match this login (nonce).${notSent} Please log in again.`);
  }
  const expiresIn = Number.isFinite(body.expires_in) && body.expires_in > 0 ? body.expires_in : 300;
  const session = {
    accessToken: body.access_token,
    // The ID token of the last token response: the id_token_hint of "Log out".
    idToken: body.id_token,
    sub: idClaims.sub ?? decodeJwtPayload(body.access_token)?.sub ?? null,
    expiresAt: Date.now() + expiresIn * 1000,
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  sessionStorage.removeItem(FORCE_LOGIN_KEY);
  return { done: true, ok: true, stepUp, message: null };
}

// ---------------------------------------------------------------------------------------------
// Logout: OpenID Connect RP-Initiated Logout 1.0

/**
 * Handles the provider's answer to a logout: the redirect URI with `state` and neither `code`
 * nor `error`. Returns whether the URL was one.
 */
function handleLogoutReturn() {
  const params = new URLSearchParams(window.location.search);
  if (!params.has('state') || params.has('code') || params.has('error')) return false;
  window.history.replaceState(null, '', window.location.pathname + window.location.hash);
  const started = readJson(LOGOUT_KEY);
  sessionStorage.removeItem(LOGOUT_KEY);
  const matches =
    started &&
    typeof started.state === 'string' &&
    params.get('state') === started.state &&
    typeof started.createdAt === 'number' &&
    Date.now() - started.createdAt <= AUTH_REQUEST_MAX_AGE_MS;
  if (matches) {
    say('You are logged out.', 'ok');
  } else {
    say('A logout answer that was not started here (state mismatch) was ignored.', 'error');
  }
  return true;
}

async function onLogout() {
  ui.logout.disabled = true;
  const idToken = readSession()?.idToken ?? null;
  clearSession();
  sessionStorage.removeItem(AUTH_KEY);
  sessionStorage.removeItem(LOGOUT_KEY);
  takePending(sessionStorage);
  uncertain = null;
  renderSignedIn(null);
  let url = null;
  let reached = true;
  try {
    await loadConfig();
    await loadDiscovery();
    const state = randomString();
    url = buildLogoutUrl(discovery, config, { idToken, state });
    if (url) sessionStorage.setItem(LOGOUT_KEY, JSON.stringify({ state, createdAt: Date.now() }));
  } catch {
    reached = false;
  } finally {
    ui.logout.disabled = false;
  }
  if (url) {
    // The provider ends its session and sends the browser back with the state.
    sessionStorage.removeItem(FORCE_LOGIN_KEY);
    say('Logging you out at the login provider…');
    window.location.assign(url);
    return;
  }
  // No end_session_endpoint: the provider's session outlives this logout.
  sessionStorage.setItem(FORCE_LOGIN_KEY, '1');
  say(reached
    ? 'You are logged out of the bank. The login provider offers no logout, so your next login asks for your password again.'
    : 'You are logged out of the bank. The login provider could not be reached, so your next login asks for your password again.');
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

// ---------------------------------------------------------------------------------------------
// Transfers

const FIELDS = () => ({ to: [ui.to, ui.toError], amount: [ui.amount, ui.amountError] });

/** Marks `field` ("to" or "amount") invalid with `text` next to it; null clears every mark. */
function markField(field, text = '') {
  for (const [input, error] of Object.values(FIELDS())) {
    input.removeAttribute('aria-invalid');
    error.textContent = '';
    error.hidden = true;
  }
  const pair = FIELDS()[field];
  if (!pair) return;
  const [input, error] = pair;
  input.setAttribute('aria-invalid', 'true');
  error.textContent = text;
  error.hidden = !text;
  input.focus();
}

function fillForm(transfer) {
  ui.to.value = transfer.to;
  ui.amount.value = transfer.amount;
}

function showStepUp(transfer, challenge) {
  offer = { transfer, challenge };
  ui.stepUpAsk.textContent = `The bank asks for a stronger sign-in: ${describeStepUp(challenge)}.`;
  ui.stepUpTransfer.textContent = `${capitalize(describeTransfer(transfer))} waits for it and has not been sent. Continue to sign in at the login provider, or cancel the transfer.`;
  ui.stepUpPanel.hidden = false;
  ui.send.disabled = true;
  ui.stepUpContinue.disabled = false;
  ui.stepUpCancel.disabled = false;
  ui.stepUpContinue.focus();
}

function hideStepUp() {
  offer = null;
  ui.stepUpPanel.hidden = true;
  ui.stepUpAsk.textContent = '';
  ui.stepUpTransfer.textContent = '';
  ui.send.disabled = false;
}

async function onStepUpContinue() {
  if (!offer) return;
  const { transfer, challenge } = offer;
  ui.stepUpContinue.disabled = true;
  ui.stepUpCancel.disabled = true;
  savePending(sessionStorage, transfer);
  say('Taking you to the login provider for the stronger sign-in…');
  try {
    await startLogin({ acrValues: challenge.acrValues, maxAge: challenge.maxAge, stepUp: true });
  } catch (e) {
    takePending(sessionStorage);
    hideStepUp();
    fillForm(transfer);
    say(e instanceof NetworkError
      ? `Network problem: the login provider could not be reached, so ${describeTransfer(transfer)} was not sent.`
      : `The stronger sign-in could not start (${e.message}), so ${describeTransfer(transfer)} was not sent.`, 'error');
  }
}

function onStepUpCancel() {
  if (!offer) return;
  const { transfer } = offer;
  hideStepUp();
  fillForm(transfer);
  say(`Stronger sign-in cancelled: ${describeTransfer(transfer)} was not sent.`, 'error');
  ui.send.focus();
}

function describeTransferError(status, body) {
  if (status === 409 && body?.error === 'idempotency_key_reused') {
    return 'This transfer request clashed with an earlier, different one. Nothing was sent; press Send again.';
  }
  const desc = body?.error_description || body?.error || `HTTP ${status}`;
  return `The transfer was refused: ${fieldErrorText(body?.field, desc)}`;
}

/**
 * Sends a transfer. `retry` marks the one retry after a step-up: it never starts another
 * login, so a refused step-up cannot loop.
 */
async function sendTransfer(transfer, { retry = false } = {}) {
  ui.send.disabled = true;
  markField(null);
  // Back from the step-up on a fresh page: show what is being sent (and keep it on a refusal).
  if (retry) fillForm(transfer);
  say(retry ? `Sending ${describeTransfer(transfer)} now that you confirmed it…` : 'Sending…');
  let stepUp = false;
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
      fillForm(transfer);
      say('Network problem: the bank could not be reached, so we do not know whether the transfer went through. Press Send again to retry safely: it will not be executed twice.', 'error');
      return;
    }
    if (r.expired) {
      fillForm(transfer);
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
        // What the bank asks, for whoever looks at the console: the challenge, never a token.
        console.info(`bank-demo: step-up challenge ${JSON.stringify(challengeSummary(c))}`);
        fillForm(transfer);
        if (retry) {
          say('The bank still asks for a stronger sign-in, so the transfer was not sent. Press Send to try again.', 'error');
          return;
        }
        say('This transfer needs a stronger sign-in; it has not been sent yet.');
        showStepUp(transfer, c);
        stepUp = true;
        return;
      }
      fillForm(transfer);
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
      const onForm = body?.field === 'to' || body?.field === 'amount';
      if (onForm) {
        say('The bank refused the transfer; it was not sent.', 'error');
        markField(body.field, fieldErrorText(body.field, body?.error_description || body?.error || `HTTP ${res.status}`));
      } else {
        say(describeTransferError(res.status, body), 'error');
      }
      return;
    }
    say(`The bank could not process the transfer (HTTP ${res.status}${body?.error_description ? `: ${body.error_description}` : ''}). It was not confirmed; check your history before trying again.`, 'error');
  } finally {
    // A step-up offer keeps Send disabled until "Continue" or "Cancel".
    if (!stepUp) ui.send.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function onSubmit(event) {
  event.preventDefault();
  if (offer) return; // "Continue" or "Cancel" first
  const to = ui.to.value.trim();
  const amount = ui.amount.value.trim();
  if (!to) {
    say('');
    markField('to', 'Enter the IBAN of the recipient.');
    return;
  }
  if (!amount) {
    say('');
    markField('amount', 'Enter the amount to send, such as 25.00.');
    return;
  }
  // What the bank would refuse anyway is not sent (and asks for no second factor).
  const problem = checkTransfer({ to, amount }, { balance: ui.balance.textContent, account: ui.account.textContent });
  if (problem) {
    say('');
    markField(problem.field, problem.message);
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
  ui.logout.addEventListener('click', () => onLogout().catch(fail));
  ui.stepUpContinue.addEventListener('click', () => onStepUpContinue().catch(fail));
  ui.stepUpCancel.addEventListener('click', onStepUpCancel);
  // Back from the provider with the back button, restored from the back/forward cache: the
  // step-up did not happen, so the offer stands again (and nothing waits in storage).
  window.addEventListener('pageshow', (event) => {
    if (!event.persisted) return;
    ui.login.disabled = false;
    ui.logout.disabled = false;
    if (offer) {
      takePending(sessionStorage);
      sessionStorage.removeItem(AUTH_KEY);
      ui.stepUpContinue.disabled = false;
      ui.stepUpCancel.disabled = false;
      say('This transfer needs a stronger sign-in; it has not been sent yet.');
    }
  });
  renderSignedIn(readSession());

  await loadConfig();
  // A transfer that waited for the step-up is taken (and so forgotten) in every case; it is
  // sent again only right after a successful login.
  const pending = takePending(sessionStorage);
  const loggedOut = handleLogoutReturn();
  const callback = loggedOut ? { done: false } : await handleCallback(pending);
  const session = readSession();
  renderSignedIn(session);
  if (callback.done && !callback.ok) {
    say(callback.message, 'error');
  } else if (pending && !callback.done) {
    // Back without an answer from the provider (back button, reload): not sent.
    say(`${capitalize(describeTransfer(pending))} waited for a stronger sign-in and was not sent.`, 'error');
  }
  if (pending && !(callback.done && callback.ok)) fillForm(pending);
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
