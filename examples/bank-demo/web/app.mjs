// The demo bank's single-page app: login and logout (login.mjs), the bank API through the
// stepup-fetch package (clients/stepup-fetch, served at /stepup-fetch/), and the step-up offer.
//
// Every API call goes through `apiFetch`: it sends the access token (DPoP-bound with a proof
// per request when the login module gives a `dpop` signer, as login.mjs does), and when the
// bank answers a transfer with the RFC 9470 challenge (Bearer or DPoP) it calls
// `reauthenticate` below once for every transfer challenged meanwhile. That shows what the bank asks for and waits: "Cancel" rejects
// (nothing is sent), "Continue" leaves for the provider. Each waiting transfer is kept in
// sessionStorage by stepup-fetch (never with a token) and replayed once, with its
// Idempotency-Key, when the provider sends the browser back (`resumeAllPending`).
//
// Tokens live in sessionStorage only (login.mjs) and never in logs.

import { StepUpError, createStepUpFetch, discardPending, resumeAllPending } from './stepup-fetch/index.js';
import {
  challengeSummary,
  checkTransfer,
  describeStepUp,
  describeTransfer,
  fieldErrorText,
  loginErrorMessage,
} from './bank.mjs';
import { createLogin } from './login.mjs';

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
/** "Cancel" on the step-up offer. */
class StepUpCancelled extends Error {}

const STORAGE = sessionStorage;
let login = null;
let apiFetch = null;
// Transfers handed to the bank and not answered yet, by Idempotency-Key.
const inFlight = new Map();
// The last transfer whose outcome is unknown (network failure): sending the same one again
// reuses its Idempotency-Key, so the bank executes it at most once.
let uncertain = null;
// The step-up offer on screen: {stepUp, resolve, reject}.
let offer = null;

// ---------------------------------------------------------------------------------------------
// Messages and rendering

function say(text, kind = 'info') {
  ui.message.textContent = text;
  ui.message.className = kind;
  ui.message.setAttribute('role', kind === 'error' ? 'alert' : 'status');
}

const capitalize = (t) => (t ? t[0].toUpperCase() + t.slice(1) : t);

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
// Configuration

async function loadConfig() {
  let res;
  try {
    res = await fetch('/config.json', { headers: { Accept: 'application/json' }, cache: 'no-store' });
  } catch {
    throw new NetworkError('could not reach the bank (configuration)');
  }
  if (!res.ok) throw new Error(`the bank (configuration) answered HTTP ${res.status}`);
  return res.json();
}

// ---------------------------------------------------------------------------------------------
// The step-up: stepup-fetch's `reauthenticate`

function describeWaiting() {
  const waiting = [...inFlight.values()];
  if (waiting.length === 0) return 'Continue to sign in at the login provider, or cancel.';
  if (waiting.length === 1) {
    return `${capitalize(describeTransfer(waiting[0]))} waits for it and has not been sent. Continue to sign in at the login provider, or cancel the transfer.`;
  }
  return `${waiting.length} transfers wait for it and have not been sent: ${waiting.map(describeTransfer).join('; ')}. Continue to sign in at the login provider once for all of them, or cancel them.`;
}

/** Shows what the bank asks; resolves on "Continue", rejects with StepUpCancelled on "Cancel". */
function offerStepUp(stepUp) {
  return new Promise((resolve, reject) => {
    offer = { stepUp, resolve, reject };
    ui.stepUpAsk.textContent = `The bank asks for a stronger sign-in: ${describeStepUp(stepUp)}.`;
    ui.stepUpTransfer.textContent = describeWaiting();
    ui.stepUpPanel.hidden = false;
    ui.stepUpContinue.disabled = false;
    ui.stepUpCancel.disabled = false;
    say(inFlight.size > 1 ? 'These transfers need a stronger sign-in; they have not been sent yet.' : 'This transfer needs a stronger sign-in; it has not been sent yet.');
    ui.stepUpContinue.focus();
  });
}

function hideStepUp() {
  offer = null;
  ui.stepUpPanel.hidden = true;
  ui.stepUpAsk.textContent = '';
  ui.stepUpTransfer.textContent = '';
}

async function reauthenticate(stepUp) {
  // What the bank asks, for whoever looks at the console: the challenge, never a token.
  console.info(`bank-demo: step-up challenge ${JSON.stringify(challengeSummary(stepUp))}`);
  for (;;) {
    await offerStepUp(stepUp);
    ui.stepUpContinue.disabled = true;
    ui.stepUpCancel.disabled = true;
    say('Taking you to the login provider for the stronger sign-in…');
    try {
      // Leaves the page; stepup-fetch has already written the waiting transfers to storage.
      return await login.stepUp(stepUp);
    } catch (e) {
      // Back from the provider with the back button (back/forward cache): offer it again.
      if (e instanceof StepUpError && e.reason === 'redirect_returned') continue;
      hideStepUp();
      throw e;
    }
  }
}

function onStepUpContinue() {
  offer?.resolve();
}

function onStepUpCancel() {
  const o = offer;
  if (!o) return;
  hideStepUp();
  o.reject(new StepUpCancelled('cancelled'));
}

// ---------------------------------------------------------------------------------------------
// The bank API

async function api(path, { method = 'GET', body = undefined, headers = {} } = {}) {
  if (!login.getAccessToken()) return { res: null, body: null, expired: true };
  let res;
  try {
    res = await apiFetch(path, { method, headers: { Accept: 'application/json', ...headers }, body, cache: 'no-store' });
  } catch (e) {
    // fetch's own failure is a TypeError; the step-up's failures pass through.
    if (e instanceof TypeError) throw new NetworkError('could not reach the bank');
    throw e;
  }
  return { res, body: await jsonOf(res), expired: false };
}

async function jsonOf(res) {
  if (!(res.headers.get('content-type') ?? '').includes('json')) return null;
  try {
    return await res.json();
  } catch {
    return null;
  }
}

function sessionEnded(text) {
  login.clear();
  renderSignedIn(null);
  say(text, 'error');
  ui.login.focus();
}

function challengeText(res) {
  const m = /error_description="([^"]*)"/.exec(res.headers.get('www-authenticate') ?? '');
  return m ? m[1] : null;
}

function describeRefusal(res, body, action) {
  const detail = body?.error_description || challengeText(res);
  if (res.status === 403) {
    const m = /scope="([^"]*)"/.exec(res.headers.get('www-authenticate') ?? '');
    const scopes = m ? ` (missing permission: ${m[1].split(' ').join(', ')})` : '';
    return `You are not allowed to ${action}${scopes}.${detail ? ` The bank says: ${detail}.` : ''}`;
  }
  return `The bank could not ${action}: ${detail || `HTTP ${res.status}`}.`;
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
    if (e instanceof StepUpCancelled || e instanceof StepUpError) {
      say(`Your balance could not be shown: ${e instanceof StepUpCancelled ? 'the stronger sign-in was cancelled' : e.message}.`, 'error');
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
      const why = challengeText(r.res);
      sessionEnded(`Your session is no longer valid${why ? ` (${why})` : ''}. Please log in again.`);
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

/** Puts a transfer back in the form (for a correction or a retry) unless another is typed. */
function fillForm(transfer) {
  if (ui.to.value.trim() || ui.amount.value.trim()) return;
  ui.to.value = transfer.to;
  ui.amount.value = transfer.amount;
}

/** The transfer a pending request carried: its JSON body and its Idempotency-Key. */
function pendingTransfer(pending) {
  try {
    const { to, amount } = JSON.parse(pending?.body ?? 'null') ?? {};
    if (typeof to === 'string' && typeof amount === 'string') return { to, amount, idempotencyKey: pending.idempotencyKey };
  } catch {
    /* not a transfer */
  }
  return null;
}

function describeTransferError(status, body) {
  if (status === 409 && body?.error === 'idempotency_key_reused') {
    return 'This transfer request clashed with an earlier, different one. Nothing was sent; press Send again.';
  }
  const desc = body?.error_description || body?.error || `HTTP ${status}`;
  return `The transfer was refused: ${fieldErrorText(body?.field, desc)}`;
}

/**
 * What the bank answered to `transfer`; returns the message's text and kind (a success is
 * `ok`), and marks a refused field.
 */
function transferOutcome(transfer, res, body) {
  if (res.status === 201 || res.status === 200) {
    const t = body?.transfer ?? {};
    const replayed = res.headers.get('idempotent-replayed') === 'true';
    if (typeof body?.balance === 'string') ui.balance.textContent = body.balance;
    return { ok: true, text: `${t.amount ?? transfer.amount} EUR to ${t.to ?? transfer.to}${replayed ? ' (it had already gone through; it was not sent twice)' : ''}` };
  }
  fillForm(transfer);
  if (res.status === 401) {
    const why = challengeText(res);
    sessionEnded(/error="invalid_token"/.test(res.headers.get('www-authenticate') ?? '')
      ? `Your session has expired or is no longer valid${why ? ` (${why})` : ''}, so the transfer was not sent. Log in again, then send it again.`
      : `The bank needs you to log in again${why ? ` (${why})` : ''}; the transfer was not sent.`);
    return { ok: false, ended: true };
  }
  if (res.status === 403) return { ok: false, text: `${describeRefusal(res, body, 'make transfers')} The transfer was not sent.` };
  if ([400, 409, 413, 415, 422].includes(res.status)) {
    if (body?.field === 'to' || body?.field === 'amount') {
      markField(body.field, fieldErrorText(body.field, body?.error_description || body?.error || `HTTP ${res.status}`));
      return { ok: false, text: 'The bank refused the transfer; it was not sent.' };
    }
    return { ok: false, text: describeTransferError(res.status, body) };
  }
  return { ok: false, text: `The bank could not process the transfer (HTTP ${res.status}${body?.error_description ? `: ${body.error_description}` : ''}). It was not confirmed; check your history before trying again.` };
}

/** The message for a transfer that the step-up kept from being sent. */
function stepUpFailure(transfer, e) {
  const t = describeTransfer(transfer);
  if (e instanceof StepUpCancelled) return `Stronger sign-in cancelled: ${t} was not sent.`;
  if (e instanceof StepUpError && e.reason === 'still_challenged') {
    return 'The bank still asks for a stronger sign-in, so the transfer was not sent. Press Send to try again.';
  }
  if (e instanceof StepUpError && e.reason === 'weaker_authentication') {
    return `The login provider signed you in more weakly than the bank asked for, so ${t} was not sent.`;
  }
  if (e instanceof StepUpError && e.reason === 'pending_expired') return `${capitalize(t)} waited too long for the stronger sign-in and was not sent.`;
  if (e?.error === 'network_error') return `Network problem: the login provider could not be reached, so ${t} was not sent.`;
  return `The stronger sign-in could not be completed (${e?.message ?? e}), so ${t} was not sent.`;
}

async function sendTransfer(transfer) {
  inFlight.set(transfer.idempotencyKey, transfer);
  markField(null);
  if (offer) {
    // It joins the step-up on screen.
    ui.stepUpTransfer.textContent = describeWaiting();
    say('These transfers need a stronger sign-in; they have not been sent yet.');
  } else {
    say(inFlight.size > 1 ? `Sending ${inFlight.size} transfers…` : 'Sending…');
  }
  try {
    let r;
    try {
      r = await api('/api/transfers', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Idempotency-Key': transfer.idempotencyKey },
        body: JSON.stringify({ to: transfer.to, amount: transfer.amount }),
      });
    } catch (e) {
      fillForm(transfer);
      if (e instanceof NetworkError) {
        uncertain = transfer;
        say('Network problem: the bank could not be reached, so we do not know whether the transfer went through. Press Send again to retry safely: it will not be executed twice.', 'error');
        return;
      }
      say(stepUpFailure(transfer, e), 'error');
      return;
    }
    if (r.expired) {
      fillForm(transfer);
      sessionEnded('Your session has expired, so the transfer was not sent. Log in again, then send it again.');
      return;
    }
    uncertain = null;
    const out = transferOutcome(transfer, r.res, r.body);
    if (out.ended) return;
    if (!out.ok) {
      say(out.text, 'error');
      return;
    }
    say(`Transfer done: ${out.text}.`, 'ok');
    await refresh();
  } finally {
    inFlight.delete(transfer.idempotencyKey);
  }
}

/** Back from a step-up: every transfer that waited for it is sent once, with its key. */
async function resumeTransfers(idTokenClaims) {
  say('Sending what waited for your stronger sign-in…');
  const results = await resumeAllPending({ getAccessToken: () => login.getAccessToken(), storage: STORAGE, idTokenClaims, dpop: login.dpop ?? null });
  const done = [];
  const problems = [];
  for (const { pending, response, error } of results) {
    const transfer = pendingTransfer(pending) ?? { to: '(unknown)', amount: '?' };
    if (error) {
      fillForm(transfer);
      problems.push(error instanceof TypeError
        ? 'Network problem: the bank could not be reached, so we do not know whether the transfer went through. Press Send again to retry safely: it will not be executed twice.'
        : stepUpFailure(transfer, error));
      if (error instanceof TypeError) uncertain = transfer;
      continue;
    }
    const out = transferOutcome(transfer, response, await jsonOf(response));
    if (out.ended) return;
    (out.ok ? done : problems).push(out.text);
  }
  if (done.length > 0) ui.form.reset();
  const doneText = done.length === 0 ? '' : done.length === 1 ? `Transfer done: ${done[0]}.` : `Transfers done: ${done.join('; ')}.`;
  if (problems.length > 0) say([doneText, ...problems].filter(Boolean).join(' '), 'error');
  else if (doneText) say(doneText, 'ok');
  if (done.length > 0) await refresh();
}

// ---------------------------------------------------------------------------------------------
// Wiring

function onSubmit(event) {
  event.preventDefault();
  const to = ui.to.value.trim();
  const amount = ui.amount.value.trim();
  // A second press while a transfer is on its way, with nothing new typed: nothing to do.
  if (!to && !amount && inFlight.size > 0) return;
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
  // The form is free for the next transfer while this one is on its way; a transfer started
  // while the step-up is offered waits for the same step-up.
  ui.form.reset();
  sendTransfer({ to, amount, idempotencyKey }).catch(fail);
}

function onLogin() {
  ui.login.disabled = true;
  say('Taking you to the login provider…');
  login.login().catch((e) => {
    ui.login.disabled = false;
    fail(e);
  });
}

async function onLogout() {
  ui.logout.disabled = true;
  discardPending(STORAGE);
  uncertain = null;
  renderSignedIn(null);
  say('Logging you out at the login provider…');
  const outcome = await login.logout();
  ui.logout.disabled = false;
  if (outcome === 'left') return;
  say(outcome === 'unreachable'
    ? 'You are logged out of the bank. The login provider could not be reached, so your next login asks for your password again.'
    : 'You are logged out of the bank. The login provider offers no logout, so your next login asks for your password again.');
}

function fail(e) {
  if (e instanceof NetworkError || e?.error === 'network_error') {
    say(`Network problem: ${e.description ?? e.message}. Check your connection and try again.`, 'error');
  } else {
    say(`Something went wrong: ${e?.message ?? e}.`, 'error');
  }
}

/** The message for a login answer that failed; `transfer` waited for it and was dropped. */
function loginFailure(ret, transfer) {
  const notSent = transfer ? ` ${capitalize(describeTransfer(transfer))} was not sent.` : '';
  switch (ret.error) {
    case 'invalid_state':
      return `This login answer does not belong to a login started here (state mismatch), so it was ignored.${notSent} Please log in again.`;
    case 'expired_request':
      return `This login took too long and has expired.${notSent} Please log in again.`;
    case 'invalid_id_token':
      return `Login failed: the ID token does not match this login.${notSent} Please log in again.`;
    case 'invalid_token_response':
    case 'invalid_grant':
      return `Login failed: the provider refused the code (${ret.description ?? ret.error}).${notSent} Please log in again.`;
    default:
      return loginErrorMessage(ret.error, ret.description, { stepUp: ret.stepUp, transfer });
  }
}

async function main() {
  ui.form.addEventListener('submit', onSubmit);
  ui.login.addEventListener('click', onLogin);
  ui.logout.addEventListener('click', () => onLogout().catch(fail));
  ui.stepUpContinue.addEventListener('click', onStepUpContinue);
  ui.stepUpCancel.addEventListener('click', onStepUpCancel);
  window.addEventListener('pageshow', (event) => {
    if (!event.persisted) return;
    ui.login.disabled = false;
    ui.logout.disabled = false;
  });

  const config = await loadConfig();
  login = await createLogin(config);
  apiFetch = createStepUpFetch({ getAccessToken: () => login.getAccessToken(), reauthenticate, storage: STORAGE, dpop: login.dpop ?? null });
  renderSignedIn(login.session());

  const ret = await login.handleReturn();
  const resume = ret.kind === 'login' && ret.ok && ret.stepUp;
  // Whatever waited for a step-up is sent again only right after a successful step-up;
  // otherwise (cancelled, refused, a reload or the back button) it is dropped and said so.
  const dropped = resume ? [] : discardPending(STORAGE).map(pendingTransfer).filter(Boolean);
  const session = login.session();
  renderSignedIn(session);
  if (ret.kind === 'logout') {
    if (ret.ok) say('You are logged out.', 'ok');
    else say('A logout answer that was not started here (state mismatch) was ignored.', 'error');
  } else if (ret.kind === 'login' && !ret.ok) {
    say(loginFailure(ret, dropped[0] ?? null), 'error');
  } else if (dropped.length > 0) {
    say(`${capitalize(describeTransfer(dropped[0]))} waited for a stronger sign-in and was not sent.`, 'error');
  }
  if (dropped.length > 0) fillForm(dropped[0]);
  if (!session) return;
  const alive = await refresh();
  if (!alive) return;
  if (resume) {
    await resumeTransfers(ret.idTokenClaims);
  } else if (ret.kind === 'login' && ret.ok) {
    say(`Welcome, ${session.sub ?? 'you are logged in'}.`, 'ok');
  }
}

main().catch((e) => {
  if (login) renderSignedIn(login.session());
  fail(e);
});
