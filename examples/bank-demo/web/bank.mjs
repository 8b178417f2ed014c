// The bank SPA's own rules and words: what a step-up asks (for people and for the console), the
// bank's input rules (examples/bank-demo/src/ledger.rs) checked before a transfer is sent, and
// the SPA's messages. The generic step-up client (challenge parsing, the retry, the request
// kept across the login redirect, PKCE and OpenID Connect) is the stepup-fetch package
// (clients/stepup-fetch), which the demo serves under /stepup-fetch/.
//
// No DOM, no globals.

/** The acr of the OpenID PAPE multi-factor policy. */
export const MFA_ACR = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';
/** The acr of the OpenID PAPE phishing-resistant policy. */
export const PHISHING_RESISTANT_ACR = 'http://schemas.openid.net/pape/policies/2007/06/phishing-resistant';

/**
 * What a step-up asks (a stepup-fetch `StepUpRequest`), with the names of RFC 9470 §3 and
 * RFC 6750 §3: for the console. It holds the challenge's own fields only, never a token.
 *
 * @param {{reason?: string, acrValues?: string[], maxAge?: number|null, scope?: string[],
 *   challenge?: {scheme: string}}} stepUp
 */
export function challengeSummary(stepUp) {
  const out = {
    scheme: stepUp?.challenge?.scheme ?? 'Bearer',
    error: stepUp?.reason ?? null,
    acr_values: stepUp?.acrValues ?? [],
    max_age: stepUp?.maxAge ?? null,
  };
  return stepUp?.scope?.length ? { ...out, scope: stepUp.scope } : out;
}

const ACR_NAMES = new Map([
  [MFA_ACR, 'multi-factor'],
  [PHISHING_RESISTANT_ACR, 'phishing-resistant'],
]);

/**
 * What a step-up asks, for people: `multi-factor (acr http://…/multi-factor), at most 300 s
 * old`. Without acr_values it asks for a fresh sign-in; without max_age it sets no age; an
 * `insufficient_scope` asks for permissions, an `insufficient_claims` for the bank's conditions.
 */
export function describeStepUp(stepUp) {
  if (stepUp?.reason === 'insufficient_scope') {
    return stepUp.scope?.length ? `more permissions (${stepUp.scope.join(', ')})` : 'more permissions';
  }
  if (stepUp?.reason === 'insufficient_claims') return "a sign-in that meets the bank's conditions";
  const acrs = stepUp?.acrValues ?? [];
  const named = acrs.map((a) => (ACR_NAMES.has(a) ? `${ACR_NAMES.get(a)} (acr ${a})` : `acr ${a}`));
  let what;
  if (named.length === 0) what = 'a new sign-in';
  else if (named.length === 1) what = named[0];
  else what = `one of ${named.join(', ')}`;
  const maxAge = stepUp?.maxAge;
  if (maxAge === null || maxAge === undefined) return what;
  if (maxAge === 0) return `${what}, made just now`;
  return `${what}, at most ${maxAge} s old`;
}

// ---------------------------------------------------------------------------------------------
// The bank's input rules (examples/bank-demo/src/ledger.rs), checked before sending

/** Largest amount the bank takes: 1,000,000,000.00 (in cents). */
export const MAX_AMOUNT_CENTS = 100_000_000_000;

/**
 * The bank's amount rule (`ledger::parse_amount`): 1 to 10 digits, optionally a point and 1 or
 * 2 decimals, above zero, at most 1,000,000,000.00. Returns `{cents}` or `{error}`, the error
 * phrased to sit next to the amount field (it does not name the field).
 *
 * @param {string} s
 * @returns {{cents: number, error?: undefined} | {error: string, cents?: undefined}}
 */
export function parseAmount(s) {
  if (typeof s !== 'string') return { error: 'Enter a number such as 25.00.' };
  const dot = s.indexOf('.');
  const int = dot < 0 ? s : s.slice(0, dot);
  const frac = dot < 0 ? '' : s.slice(dot + 1);
  if (int.length === 0 || int.length > 10 || !/^[0-9]+$/.test(int)) {
    return { error: 'Enter a positive number such as 25.00.' };
  }
  if (frac.length > 2 || (dot >= 0 && frac.length === 0) || !/^[0-9]*$/.test(frac)) {
    return { error: 'Use at most 2 decimals, such as 25.00.' };
  }
  const cents = Number(int) * 100 + Number(frac.padEnd(2, '0'));
  if (cents <= 0) return { error: 'Enter an amount above zero.' };
  if (cents > MAX_AMOUNT_CENTS) return { error: 'This is more than the bank takes in one transfer (1000000000.00).' };
  return { cents };
}

/** A balance as the bank writes it (`"1000.00"`, `"-5.00"`) in cents, or null. */
export function parseBalance(s) {
  if (typeof s !== 'string') return null;
  const m = /^(-?)([0-9]{1,13})\.([0-9]{2})$/.exec(s.trim());
  if (!m) return null;
  const cents = Number(m[2]) * 100 + Number(m[3]);
  return m[1] === '-' ? -cents : cents;
}

/** Cents as the bank writes them: 2500 → "25.00". */
export function formatCents(cents) {
  const sign = cents < 0 ? '-' : '';
  const c = Math.abs(cents);
  return `${sign}${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')}`;
}

/**
 * The bank's IBAN rule (`ledger::normalize_iban`): spaces dropped, ASCII letters upper-cased,
 * two letters, two digits, 11 to 30 letters or digits, and the ISO 13616 mod-97 check. Returns
 * `{iban}` or `{error}` (phrased to sit next to the recipient field).
 */
export function normalizeIban(s) {
  const iban = String(s ?? '')
    .replace(/ /g, '')
    .replace(/[a-z]/g, (c) => c.toUpperCase());
  if (!/^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$/.test(iban)) {
    return { error: 'Enter an IBAN such as DE89370400440532013000.' };
  }
  let rem = 0;
  for (const c of iban.slice(4) + iban.slice(0, 4)) {
    const v = parseInt(c, 36);
    rem = v >= 10 ? (rem * 100 + v) % 97 : (rem * 10 + v) % 97;
  }
  if (rem !== 1) return { error: 'This IBAN has a wrong check digit: check it for a typo.' };
  return { iban };
}

/**
 * Checks a transfer against what the SPA already knows before it is sent: the bank's IBAN and
 * amount rules, the own account (no transfer to oneself) and the last known balance (skipped
 * when `balance` is null). Returns null when it may be sent, else `{field, message}` with
 * `field` "to" or "amount" and a message that does not name the field.
 *
 * @param {{to: string, amount: string}} transfer
 * @param {{balance?: string|null, account?: string|null}} known
 */
export function checkTransfer({ to, amount }, { balance = null, account = null } = {}) {
  const t = normalizeIban(to);
  if (t.error) return { field: 'to', message: t.error };
  if (typeof account === 'string' && account.length > 0 && normalizeIban(account).iban === t.iban) {
    return { field: 'to', message: 'This is your own account.' };
  }
  const a = parseAmount(amount);
  if (a.error) return { field: 'amount', message: a.error };
  const have = parseBalance(balance);
  if (have !== null && a.cents > have) {
    return { field: 'amount', message: `This is more than your balance of ${formatCents(have)} EUR.` };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Messages

const FIELD_NOUNS = { to: 'the recipient IBAN', amount: 'the amount' };

const sentence = (s) => {
  const t = String(s).trim().replace(/[.\s]+$/, '');
  return t.length === 0 ? t : `${t[0].toUpperCase()}${t.slice(1)}.`;
};

/**
 * A field error of the bank (`{"field": "amount", "error_description": "amount must have at
 * most two decimals"}`) as one sentence that names the field once: a description that starts
 * with the field's name gets the field's noun instead ("The amount must have at most two
 * decimals."); any other is shown as it is.
 */
export function fieldErrorText(field, description) {
  const desc = String(description ?? '').trim();
  const noun = Object.prototype.hasOwnProperty.call(FIELD_NOUNS, field) ? FIELD_NOUNS[field] : null;
  if (noun && desc.toLowerCase().startsWith(`${field} `)) return sentence(`${noun}${desc.slice(field.length)}`);
  return sentence(desc);
}

/** "the transfer of 25.00 EUR to DE89…" for a transfer `{to, amount}`. */
export function describeTransfer({ to, amount }) {
  const a = parseAmount(amount);
  return `the transfer of ${a.cents !== undefined ? formatCents(a.cents) : amount} EUR to ${to}`;
}

/**
 * The message for an authorization error response (RFC 6749 §4.1.2.1) that came back to the
 * SPA. `stepUp` tells that the login was a step-up; `transfer` is the transfer that waited for
 * it (then dropped: the message says it was not sent), or null.
 */
export function loginErrorMessage(error, description, { stepUp = false, transfer = null } = {}) {
  const notSent = transfer ? `${describeTransfer(transfer)} was not sent` : null;
  if (error === 'access_denied') {
    if (stepUp) return notSent ? `Second factor cancelled: ${notSent}.` : 'Second factor cancelled.';
    return 'Login cancelled: you are not logged in.';
  }
  let text;
  if (error === 'login_required' || error === 'interaction_required') {
    text = 'You need to log in again';
  } else {
    const why = String(description || error || 'unknown error').replace(/[.\s]+$/, '');
    text = stepUp ? `The stronger sign-in did not complete (${why})` : `Login did not complete (${why})`;
  }
  return notSent ? `${text}: ${notSent}.` : `${text}.`;
}
