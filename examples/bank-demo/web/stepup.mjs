// Client half of the RFC 9470 step-up loop, for browsers and Node 20 alike.
//
// - `parseChallenges` / `bearerChallenge`: read `WWW-Authenticate` (RFC 9110 §11, RFC 6750 §3,
//   RFC 9470 §3).
// - `randomString` / `pkceChallenge`: PKCE S256 (RFC 7636) with WebCrypto.
// - `buildAuthorizeUrl` / `tokenRequestBody`: the authorization code flow (OIDC Core, RFC 8707).
// - `buildLogoutUrl`: OpenID Connect RP-Initiated Logout 1.0 (end_session_endpoint).
// - `challengeSummary` / `describeStepUp`: what a step-up challenge asks, for logs and people.
// - `parseAmount` / `parseBalance` / `formatCents` / `normalizeIban` / `checkTransfer`: the
//   bank's own input rules, checked before a transfer is sent.
// - `fieldErrorText` / `loginErrorMessage` / `describeTransfer`: the SPA's messages.
// - `savePending` / `takePending`: a transfer waiting for the step-up, in a Storage-like object.
//
// No DOM, no globals besides `crypto`, `URL`, `URLSearchParams`, `TextEncoder`, `btoa`, `atob`.

/** The acr of the OpenID PAPE multi-factor policy. */
export const MFA_ACR = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';
/** The acr of the OpenID PAPE phishing-resistant policy. */
export const PHISHING_RESISTANT_ACR = 'http://schemas.openid.net/pape/policies/2007/06/phishing-resistant';

/** A `WWW-Authenticate` value that does not follow RFC 9110 §11. */
export class ChallengeParseError extends Error {
  constructor(reason, at) {
    super(`malformed WWW-Authenticate at character ${at}: ${reason}`);
    this.name = 'ChallengeParseError';
    this.reason = reason;
    this.at = at;
  }
}

// RFC 9110 §5.6.2 tchar.
const TCHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/;
// RFC 9110 §11.2 token68 characters, without the trailing "=".
const TOKEN68 = /^[-._~+/0-9A-Za-z]$/;

const isTchar = (c) => c !== undefined && TCHAR.test(c);
const isToken68Char = (c) => c !== undefined && TOKEN68.test(c);
// qdtext / quoted-pair octets: HTAB, SP, VCHAR, obs-text (anything above 0x7F).
const isQuotedChar = (c) => {
  if (c === undefined) return false;
  const code = c.charCodeAt(0);
  return code === 0x09 || (code >= 0x20 && code !== 0x7f);
};

/**
 * Parses every challenge of a `WWW-Authenticate` value (RFC 9110 §11.6.1):
 *
 *     WWW-Authenticate = [ challenge *( OWS "," OWS challenge ) ]
 *     challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *     auth-param       = token BWS "=" BWS ( token / quoted-string )
 *
 * Returns `[{scheme, token68, params}]`: `scheme` as sent (compare it case-insensitively),
 * `token68` a string or null, `params` an object whose names are lower-cased and whose quoted
 * values are unescaped. Throws a `ChallengeParseError` on malformed input, including a
 * parameter repeated within one challenge.
 *
 * @param {string|null|undefined} header
 * @returns {{scheme: string, token68: string|null, params: Record<string, string>}[]}
 */
export function parseChallenges(header) {
  if (header === null || header === undefined) return [];
  if (typeof header !== 'string') throw new TypeError('WWW-Authenticate must be a string');
  const s = header;
  let pos = 0;
  const peek = () => s[pos];
  const fail = (reason) => {
    throw new ChallengeParseError(reason, pos);
  };
  const skipOws = () => {
    while (peek() === ' ' || peek() === '\t') pos++;
  };
  const skipOwsAndCommas = () => {
    while (peek() === ' ' || peek() === '\t' || peek() === ',') pos++;
  };
  const takeWhile = (pred) => {
    const start = pos;
    while (pos < s.length && pred(s[pos])) pos++;
    return s.slice(start, pos);
  };
  const quotedString = () => {
    pos++; // opening quote
    let out = '';
    for (;;) {
      const c = peek();
      if (c === undefined) fail('unterminated quoted-string');
      if (c === '"') {
        pos++;
        return out;
      }
      if (c === '\\') {
        pos++;
        if (!isQuotedChar(peek())) fail('bad quoted-pair');
        out += peek();
        pos++;
        continue;
      }
      if (!isQuotedChar(c)) fail('control character in quoted-string');
      out += c;
      pos++;
    }
  };

  const out = [];
  for (;;) {
    skipOwsAndCommas();
    if (pos >= s.length) return out;
    const scheme = takeWhile(isTchar);
    if (!scheme) fail('expected an auth-scheme');
    const challenge = { scheme, token68: null, params: {} };
    const hadSpace = peek() === ' ';
    while (peek() === ' ') pos++;
    if (pos >= s.length) {
      out.push(challenge);
      return out;
    }
    if (peek() === ',') {
      out.push(challenge);
      continue;
    }
    if (!hadSpace) fail('expected a space after the auth-scheme');

    // token68?
    const start = pos;
    const body = takeWhile(isToken68Char);
    while (peek() === '=') pos++;
    const end = pos;
    skipOws();
    if (body.length > 0 && (pos >= s.length || peek() === ',')) {
      challenge.token68 = s.slice(start, end);
      out.push(challenge);
      continue;
    }
    pos = start;

    // #auth-param
    let more = true;
    while (more) {
      const name = takeWhile(isTchar).toLowerCase();
      if (!name) fail('expected an auth-param name');
      skipOws();
      if (peek() !== '=') fail("expected '=' after an auth-param name");
      pos++;
      skipOws();
      let value;
      if (peek() === '"') {
        value = quotedString();
      } else {
        value = takeWhile(isTchar);
        if (!value) fail('expected a token or quoted-string value');
      }
      if (Object.prototype.hasOwnProperty.call(challenge.params, name)) fail('duplicate auth-param');
      // defineProperty: a parameter called "__proto__" stays a plain own property.
      Object.defineProperty(challenge.params, name, { value, enumerable: true, writable: true, configurable: true });
      skipOws();
      if (pos >= s.length) {
        out.push(challenge);
        return out;
      }
      if (peek() !== ',') fail("expected ',' between auth-params");
      skipOwsAndCommas();
      if (pos >= s.length) {
        out.push(challenge);
        return out;
      }
      // Another parameter of this challenge (token "="), or the scheme of the next one?
      const save = pos;
      takeWhile(isTchar);
      skipOws();
      more = peek() === '=';
      pos = save;
    }
    out.push(challenge);
  }
}

const splitList = (v) => (v ?? '').split(' ').filter((x) => x.length > 0);

/**
 * The first `Bearer` challenge of a `WWW-Authenticate` value, or null when there is none.
 *
 * `max_age` is accepted as a token (`max_age=300`) or a quoted string (`max_age="300"`); a value
 * that is not a non-negative integer throws, like any malformed header.
 *
 * @param {string|null|undefined} headerValue
 * @returns {{error: string|null, errorDescription: string|null, errorUri: string|null,
 *   acrValues: string[], maxAge: number|null, scope: string[], realm: string|null,
 *   resourceMetadata: string|null} | null}
 */
export function bearerChallenge(headerValue) {
  const challenge = parseChallenges(headerValue).find((c) => c.scheme.toLowerCase() === 'bearer');
  if (!challenge) return null;
  const p = challenge.params;
  const get = (name) => (Object.prototype.hasOwnProperty.call(p, name) ? p[name] : null);
  let maxAge = null;
  const rawMaxAge = get('max_age');
  if (rawMaxAge !== null) {
    if (!/^[0-9]+$/.test(rawMaxAge) || !Number.isSafeInteger(Number(rawMaxAge))) {
      throw new ChallengeParseError('max_age is not a non-negative integer', 0);
    }
    maxAge = Number(rawMaxAge);
  }
  return {
    error: get('error'),
    errorDescription: get('error_description'),
    errorUri: get('error_uri'),
    acrValues: splitList(get('acr_values')),
    maxAge,
    scope: splitList(get('scope')),
    realm: get('realm'),
    resourceMetadata: get('resource_metadata'),
  };
}

/** Whether a challenge (from `bearerChallenge`) asks to authenticate again (RFC 9470). */
export function isStepUp(challenge) {
  return Boolean(challenge) && challenge.error === 'insufficient_user_authentication';
}

// ---------------------------------------------------------------------------------------------
// PKCE

function base64url(bytes) {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * A random string of base64url characters (a subset of RFC 3986 unreserved) from `bytes`
 * random octets: 32 octets give 43 characters, a valid PKCE verifier, state or nonce.
 */
export function randomString(bytes = 32) {
  if (!Number.isInteger(bytes) || bytes < 16 || bytes > 96) throw new RangeError('randomString: 16 to 96 bytes');
  const buf = new Uint8Array(bytes);
  crypto.getRandomValues(buf);
  return base64url(buf);
}

const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;

/** RFC 7636 §4.2 S256: BASE64URL(SHA256(ASCII(code_verifier))). */
export async function pkceChallenge(verifier) {
  if (typeof verifier !== 'string' || !VERIFIER.test(verifier)) {
    throw new Error('a PKCE code_verifier is 43 to 128 unreserved characters');
  }
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

// ---------------------------------------------------------------------------------------------
// Authorization and token requests

/**
 * The authorization request URL (OIDC Core §3.1.2.1 + PKCE + RFC 9470 + RFC 8707).
 *
 * @param {{authorization_endpoint: string}} discovery
 * @param {{client_id: string, redirect_uri: string, scope: string, resource?: string|null}} config
 * @param {{state: string, nonce: string, codeChallenge: string, acrValues?: string[]|null,
 *   maxAge?: number|null, prompt?: string|null}} request
 * @returns {string}
 */
export function buildAuthorizeUrl(discovery, config, { state, nonce, codeChallenge, acrValues = null, maxAge = null, prompt = null }) {
  if (!discovery || typeof discovery.authorization_endpoint !== 'string') {
    throw new Error('discovery has no authorization_endpoint');
  }
  for (const [name, v] of [['state', state], ['nonce', nonce], ['codeChallenge', codeChallenge]]) {
    if (typeof v !== 'string' || v.length === 0) throw new Error(`${name} is required`);
  }
  const url = new URL(discovery.authorization_endpoint);
  const q = url.searchParams;
  q.set('response_type', 'code');
  q.set('client_id', config.client_id);
  q.set('redirect_uri', config.redirect_uri);
  q.set('scope', config.scope);
  q.set('state', state);
  q.set('nonce', nonce);
  q.set('code_challenge', codeChallenge);
  q.set('code_challenge_method', 'S256');
  if (Array.isArray(acrValues) && acrValues.length > 0) q.set('acr_values', acrValues.join(' '));
  if (maxAge !== null && maxAge !== undefined) {
    if (!Number.isSafeInteger(maxAge) || maxAge < 0) throw new Error('maxAge must be a non-negative integer');
    q.set('max_age', String(maxAge));
  }
  if (prompt) q.set('prompt', prompt);
  if (typeof config.resource === 'string' && config.resource.length > 0) q.set('resource', config.resource);
  return url.toString();
}

/** The form body of the authorization code token request (RFC 6749 §4.1.3, RFC 7636 §4.5). */
export function tokenRequestBody(config, { code, codeVerifier }) {
  const body = new URLSearchParams();
  body.set('grant_type', 'authorization_code');
  body.set('code', code);
  body.set('redirect_uri', config.redirect_uri);
  body.set('client_id', config.client_id);
  body.set('code_verifier', codeVerifier);
  if (typeof config.resource === 'string' && config.resource.length > 0) body.set('resource', config.resource);
  return body;
}

/**
 * The RP-Initiated Logout request URL (OpenID Connect RP-Initiated Logout 1.0 §2), or null when
 * the provider's discovery document has no `end_session_endpoint` (then only the SPA's own
 * session can be ended).
 *
 * `idToken` (the ID token of the last token response) goes in `id_token_hint` when there is
 * one; `post_logout_redirect_uri` is the config's `redirect_uri` (registered exactly at the
 * provider); `state` comes back with the redirection and must be checked there.
 *
 * @param {{end_session_endpoint?: string}} discovery
 * @param {{client_id: string, redirect_uri: string}} config
 * @param {{idToken?: string|null, state: string}} request
 * @returns {string|null}
 */
export function buildLogoutUrl(discovery, config, { idToken = null, state } = {}) {
  const endpoint = discovery?.end_session_endpoint;
  if (typeof endpoint !== 'string' || endpoint.length === 0) return null;
  if (typeof state !== 'string' || state.length === 0) throw new Error('state is required');
  const url = new URL(endpoint);
  const q = url.searchParams;
  if (typeof idToken === 'string' && idToken.length > 0) q.set('id_token_hint', idToken);
  q.set('post_logout_redirect_uri', config.redirect_uri);
  q.set('client_id', config.client_id);
  q.set('state', state);
  return url.toString();
}

/**
 * What a step-up challenge (from `bearerChallenge`) asks, with the names of RFC 9470: for the
 * console. It holds the challenge's own fields only, never a token.
 */
export function challengeSummary(challenge) {
  return {
    scheme: 'Bearer',
    error: challenge?.error ?? null,
    acr_values: challenge?.acrValues ?? [],
    max_age: challenge?.maxAge ?? null,
  };
}

const ACR_NAMES = new Map([
  [MFA_ACR, 'multi-factor'],
  [PHISHING_RESISTANT_ACR, 'phishing-resistant'],
]);

/**
 * What a step-up challenge asks, for people: `multi-factor (acr http://…/multi-factor), at most
 * 300 s old`. Without acr_values it asks for a fresh sign-in; without max_age it sets no age.
 */
export function describeStepUp(challenge) {
  const acrs = challenge?.acrValues ?? [];
  const named = acrs.map((a) => (ACR_NAMES.has(a) ? `${ACR_NAMES.get(a)} (acr ${a})` : `acr ${a}`));
  let what;
  if (named.length === 0) what = 'a new sign-in';
  else if (named.length === 1) what = named[0];
  else what = `one of ${named.join(', ')}`;
  const maxAge = challenge?.maxAge;
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

/**
 * The payload of a JWT, decoded without any verification: only for display and for the
 * `nonce` check of an ID token received directly from the token endpoint (OIDC Core §3.1.3.7).
 * Returns null when it is not a JWT.
 */
export function decodeJwtPayload(jwt) {
  if (typeof jwt !== 'string') return null;
  const parts = jwt.split('.');
  if (parts.length !== 3 || !/^[A-Za-z0-9_-]+$/.test(parts[1])) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const payload = JSON.parse(new TextDecoder().decode(bytes));
    return payload && typeof payload === 'object' && !Array.isArray(payload) ? payload : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// The transfer that waits for a step-up

export const PENDING_KEY = 'bank-demo.pending-transfer';
/** A pending transfer older than this is dropped rather than sent (ms). */
export const PENDING_MAX_AGE_MS = 10 * 60 * 1000;

/**
 * Keeps `transfer` ({to, amount, idempotencyKey}) in `storage` (a Storage-like object with
 * getItem/setItem/removeItem) until the step-up comes back.
 */
export function savePending(storage, transfer, now = Date.now()) {
  const { to, amount, idempotencyKey } = transfer ?? {};
  if (typeof to !== 'string' || typeof amount !== 'string' || typeof idempotencyKey !== 'string' || !idempotencyKey) {
    throw new Error('a pending transfer needs to, amount and idempotencyKey strings');
  }
  storage.setItem(PENDING_KEY, JSON.stringify({ to, amount, idempotencyKey, savedAt: now }));
}

/**
 * The pending transfer, once: it is removed from `storage` whatever happens next, so a retry
 * is attempted at most once. Null when there is none, it is unreadable, or it is older than
 * `maxAgeMs`.
 */
export function takePending(storage, { now = Date.now(), maxAgeMs = PENDING_MAX_AGE_MS } = {}) {
  const raw = storage.getItem(PENDING_KEY);
  storage.removeItem(PENDING_KEY);
  if (raw === null || raw === undefined) return null;
  let v;
  try {
    v = JSON.parse(raw);
  } catch {
    return null;
  }
  if (!v || typeof v.to !== 'string' || typeof v.amount !== 'string' || typeof v.idempotencyKey !== 'string') return null;
  if (typeof v.savedAt !== 'number' || now - v.savedAt > maxAgeMs || v.savedAt - now > 60_000) return null;
  return { to: v.to, amount: v.amount, idempotencyKey: v.idempotencyKey };
}
