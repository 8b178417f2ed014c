// stepup-fetch: a `fetch` that answers an API's step-up challenges.
//
// - RFC 9470 §3: `401` + `WWW-Authenticate: Bearer error="insufficient_user_authentication",
//   acr_values="…", max_age=…`.
// - RFC 6750 §3.1: `403` + `Bearer error="insufficient_scope", scope="…"`.
// - Microsoft Entra's claims challenge: `401` + `Bearer error="insufficient_claims",
//   claims="<base64 JSON>"` (a claims request, OpenID Connect Core 1.0 §5.5).
// - RFC 9110 §11.6.1: the `WWW-Authenticate` grammar (`parseChallenges`).
// - RFC 9449 §7.1: with a `dpop` signer (stepup-fetch/dpop), `Authorization: DPoP` and a proof
//   per request; the DPoP challenge answers the same way, and `use_dpop_nonce` is retried once.
//
// No DOM and no dependency: `fetch`, `Request`, `Headers`, `crypto.getRandomValues`, `atob`
// and `TextDecoder` are all it uses, as found in browsers and in Node >= 20.

/** Where the redirect flow keeps its pending requests (in the `storage` given). */
export const PENDING_KEY = 'stepup-fetch.pending';
/** A pending request older than this (ms) is refused rather than replayed. */
export const PENDING_MAX_AGE_MS = 10 * 60 * 1000;

// Methods that are not idempotent (RFC 9110 §9.2.2) get an Idempotency-Key
// (draft-ietf-httpapi-idempotency-key-header); DELETE too, as some APIs treat it so.
const KEYED_METHODS = ['POST', 'PATCH', 'DELETE'];
// Headers that carry credentials: never written to storage.
const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'cookie'];

/** @type {(o: Record<string, string>, k: string) => string|null} */
const own = (o, k) => (Object.prototype.hasOwnProperty.call(o, k) ? o[k] : null);
/** @type {(v: string|null) => string[]} */
const words = (v) => (v ?? '').split(' ').filter(Boolean);

/**
 * A step-up that could not be answered. `reason` says why:
 *
 * - `still_challenged`: the one retry was challenged again (`status`, `challenge`, `stepUp`
 *   and `response` are those of the retry); no second re-authentication is started.
 * - `weaker_authentication`: the new ID token's `acr` or `auth_time` does not meet the
 *   challenge (`verifyStepUp`); nothing was retried.
 * - `token_unchanged`: `reauthenticate` resolved but `getAccessToken` still gives the token
 *   that was refused; nothing was retried.
 * - `body_not_text`: with `storage`, a request whose body is not text (FormData, Blob,
 *   ArrayBuffer, stream) cannot wait across a redirect; `reauthenticate` was not called.
 * - `storage_failed`: the pending request could not be written to `storage`.
 * - `pending_expired`, `pending_unreadable`: a pending request that `resumePending` refused.
 */
export class StepUpError extends Error {
  /**
   * @param {string} message
   * @param {{reason: string, status?: number|null, challenge?: Challenge|null,
   *   stepUp?: StepUpRequest|null, response?: Response|null, cause?: unknown}} details
   */
  constructor(message, { reason, status = null, challenge = null, stepUp = null, response = null, cause }) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'StepUpError';
    /** @type {string} */
    this.reason = reason;
    /** @type {number|null} HTTP status of the response that was challenged, if any. */
    this.status = status;
    /** @type {Challenge|null} The parsed `WWW-Authenticate` challenge, if any. */
    this.challenge = challenge;
    /** @type {StepUpRequest|null} */
    this.stepUp = stepUp;
    /** @type {Response|null} */
    this.response = response;
  }
}

/** A `WWW-Authenticate` value that does not follow RFC 9110 §11. */
export class ChallengeParseError extends SyntaxError {
  /**
   * @param {string} reason
   * @param {number} at
   */
  constructor(reason, at) {
    super(`malformed WWW-Authenticate at character ${at}: ${reason}`);
    this.name = 'ChallengeParseError';
    this.at = at;
  }
}

// ---------------------------------------------------------------------------------------------
// RFC 9110 §11: WWW-Authenticate

/**
 * @typedef {object} Challenge
 * @property {string} scheme As sent; compare it case-insensitively (RFC 9110 §11.1).
 * @property {string|null} token68 The token68 form (RFC 9110 §11.2), or null.
 * @property {Record<string, string>} params Lower-cased names; quoted values unescaped.
 */

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/; // RFC 9110 §5.6.2
const T68 = /[-._~+/0-9A-Za-z]/; // RFC 9110 §11.2, without the trailing "="

/**
 * Parses every challenge of a `WWW-Authenticate` value (RFC 9110 §11.6.1):
 *
 *     WWW-Authenticate = [ challenge *( OWS "," OWS challenge ) ]
 *     challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *     auth-param       = token BWS "=" BWS ( token / quoted-string )
 *
 * Schemes keep their spelling; parameter names are lower-cased; quoted-strings are unescaped
 * (RFC 9110 §5.6.4). Several header fields joined with ", " parse as one list. Throws a
 * `ChallengeParseError` on malformed input, including a parameter repeated in one challenge.
 *
 * @param {string|null|undefined} header
 * @returns {Challenge[]}
 */
export function parseChallenges(header) {
  if (header === null || header === undefined) return [];
  if (typeof header !== 'string') throw new TypeError('WWW-Authenticate must be a string');
  const s = header;
  let pos = 0;
  const fail = (/** @type {string} */ why) => {
    throw new ChallengeParseError(why, pos);
  };
  const is = (/** @type {RegExp} */ re) => pos < s.length && re.test(s[pos]);
  const take = (/** @type {RegExp} */ re) => {
    const start = pos;
    while (is(re)) pos++;
    return s.slice(start, pos);
  };
  const ows = () => take(/[ \t]/);
  const quoted = () => {
    let out = '';
    for (pos++; ; pos++) {
      let c = s[pos];
      if (c === '"') {
        pos++;
        return out;
      }
      if (c === '\\') c = s[++pos];
      if (c === undefined) fail('unterminated quoted-string');
      // qdtext and quoted-pair: HTAB, SP, VCHAR, obs-text.
      const code = c.charCodeAt(0);
      if (!(code === 9 || (code >= 0x20 && code !== 0x7f))) fail('control character in quoted-string');
      out += c;
    }
  };

  /** @type {Challenge[]} */
  const out = [];
  for (;;) {
    take(/[ \t,]/);
    if (pos >= s.length) return out;
    const scheme = take(TCHAR);
    if (!scheme) fail('expected an auth-scheme');
    /** @type {Challenge} */
    const challenge = { scheme, token68: null, params: {} };
    out.push(challenge);
    const spaced = take(/ /).length > 0;
    if (pos >= s.length || s[pos] === ',') continue;
    if (!spaced) fail('expected a space after the auth-scheme');

    // token68: its characters, any "=", then the end or a comma.
    const start = pos;
    if (take(T68)) {
      take(/=/);
      const end = pos;
      ows();
      if (pos >= s.length || s[pos] === ',') {
        challenge.token68 = s.slice(start, end);
        continue;
      }
    }
    pos = start;

    // #auth-param, until the next challenge's scheme.
    for (;;) {
      const name = take(TCHAR).toLowerCase();
      if (!name) fail('expected an auth-param name');
      ows();
      if (s[pos] !== '=') fail("expected '=' after an auth-param name");
      pos++;
      ows();
      let value;
      if (s[pos] === '"') value = quoted();
      else if (!(value = take(TCHAR))) fail('expected a token or quoted-string value');
      if (own(challenge.params, name) !== null) fail(`auth-param ${name} repeated`);
      // defineProperty: a parameter called "__proto__" stays a plain own property.
      Object.defineProperty(challenge.params, name, { value, enumerable: true, writable: true, configurable: true });
      ows();
      if (pos >= s.length) return out;
      if (s[pos] !== ',') fail("expected ',' between auth-params");
      take(/[ \t,]/);
      if (pos >= s.length) return out;
      // Another auth-param (token BWS "=") or the next challenge's scheme?
      const save = pos;
      take(TCHAR);
      ows();
      const param = s[pos] === '=';
      pos = save;
      if (!param) break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Which responses ask for a step-up

/**
 * What a challenged response asks for; `reauthenticate` gets it.
 *
 * @typedef {object} StepUpRequest
 * @property {'insufficient_user_authentication'|'insufficient_scope'|'insufficient_claims'} reason
 *   The challenge's `error`.
 * @property {string[]} acrValues RFC 9470 `acr_values`, in the server's order (may be empty).
 * @property {number|null} maxAge RFC 9470 `max_age` in seconds, or null.
 * @property {string[]} scope RFC 6750 §3 `scope` of an `insufficient_scope` challenge.
 * @property {string|null} claims The decoded JSON text of an `insufficient_claims` challenge's
 *   `claims` (an OpenID Connect Core 1.0 §5.5 claims request), or null.
 * @property {Challenge} challenge The challenge as parsed (Bearer, or DPoP for a DPoP request).
 * @property {number} status The response status (401 or 403).
 * @property {string} method The challenged request's method.
 * @property {string} url The challenged request's URL.
 */

/** @param {string|null} v */
function decodeClaims(v) {
  if (!v) return null;
  try {
    const b64 = v.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
    if (!/^[A-Za-z0-9+/]+$/.test(b64)) return null;
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const text = new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
    const json = JSON.parse(text);
    return json && typeof json === 'object' && !Array.isArray(json) ? text : null;
  } catch {
    return null;
  }
}

/**
 * The step-up a response asks for, or null: a `401` Bearer challenge with
 * `error="insufficient_user_authentication"` (RFC 9470 §3) or `error="insufficient_claims"`
 * with a base64 JSON `claims`, or a `403` with `error="insufficient_scope"` (RFC 6750 §3.1).
 * The challenge of `scheme` (the request's: `Bearer`, or `DPoP` for a DPoP request, RFC 9449
 * §7.1) is chosen among several. A malformed header, a `max_age` that is not a non-negative
 * integer or `claims` that are not base64 JSON: null.
 *
 * @param {Response} response
 * @param {{method?: string, url?: string}} [request]
 * @param {string} [scheme] Defaults to `Bearer`.
 * @returns {StepUpRequest|null}
 */
export function stepUpRequest(response, request = {}, scheme = 'Bearer') {
  const status = response.status;
  if (status !== 401 && status !== 403) return null;
  let all;
  try {
    all = parseChallenges(response.headers.get('www-authenticate'));
  } catch {
    return null;
  }
  for (const challenge of all) {
    if (challenge.scheme.toLowerCase() !== scheme.toLowerCase()) continue;
    const p = challenge.params;
    const error = own(p, 'error');
    const base = {
      acrValues: words(own(p, 'acr_values')),
      maxAge: null,
      scope: [],
      claims: null,
      challenge,
      status,
      method: request.method ?? 'GET',
      url: request.url ?? response.url,
    };
    if (status === 401 && error === 'insufficient_user_authentication') {
      const m = own(p, 'max_age');
      if (m !== null && !/^[0-9]{1,15}$/.test(m)) return null;
      return { ...base, reason: error, maxAge: m === null ? null : Number(m) };
    }
    if (status === 403 && error === 'insufficient_scope') return { ...base, reason: error, scope: words(own(p, 'scope')) };
    if (status === 401 && error === 'insufficient_claims') {
      const claims = decodeClaims(own(p, 'claims'));
      return claims === null ? null : { ...base, reason: error, claims };
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Checking what the provider returned

/**
 * Throws `StepUpError` with reason `weaker_authentication` when the claims of the new ID
 * token (OpenID Connect Core 1.0 §2) show a sign-in that cannot meet `stepUp`: an `acr` that
 * is none of the challenge's `acr_values` (nor of `acceptAcr`), or an `auth_time` older than
 * its `max_age` (plus `leeway` seconds for clocks). A claim the provider did not return is
 * not checked.
 *
 * @param {{acr?: unknown, auth_time?: unknown}|null|undefined} claims
 * @param {Pick<StepUpRequest, 'acrValues'|'maxAge'> & Partial<StepUpRequest>} stepUp
 * @param {{now?: number, leeway?: number, acceptAcr?: string[]}} [options] `now` in ms.
 */
export function verifyStepUp(claims, stepUp, { now = Date.now(), leeway = 30, acceptAcr = [] } = {}) {
  if (!claims || !stepUp) return;
  const weaker = (/** @type {string} */ why) => {
    throw new StepUpError(`the provider returned a weaker sign-in than the API asked for: ${why}`, {
      reason: 'weaker_authentication',
      status: stepUp.status ?? null,
      challenge: stepUp.challenge ?? null,
      stepUp: /** @type {StepUpRequest} */ (stepUp),
    });
  };
  const acrs = stepUp.acrValues ?? [];
  const { acr, auth_time: authTime } = claims;
  if (acrs.length > 0 && typeof acr === 'string' && !acrs.includes(acr) && !acceptAcr.includes(acr)) {
    weaker(`acr ${acr} is none of ${acrs.join(' ')}`);
  }
  const maxAge = stepUp.maxAge;
  if (typeof maxAge === 'number' && typeof authTime === 'number') {
    const age = Math.floor(now / 1000) - authTime;
    if (age > maxAge + leeway) weaker(`auth_time is ${age} s old, max_age is ${maxAge} s`);
  }
}

/**
 * The payload of a JWT, decoded without verifying anything: for an ID token received directly
 * from the token endpoint (OpenID Connect Core 1.0 §3.1.3.7) and for display. Null when it is
 * not a JWT.
 *
 * @param {unknown} jwt
 * @returns {Record<string, any>|null}
 */
export function decodeJwtPayload(jwt) {
  if (typeof jwt !== 'string') return null;
  const parts = jwt.split('.');
  if (parts.length !== 3 || !/^[A-Za-z0-9_-]+$/.test(parts[1])) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const payload = JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
    return payload && typeof payload === 'object' && !Array.isArray(payload) ? payload : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Pending requests (the redirect flow)

/**
 * A request waiting in `storage` for a re-authentication that leaves the page. It never
 * holds a token: no Authorization, Proxy-Authorization or Cookie header.
 *
 * @typedef {object} PendingRequest
 * @property {string} id
 * @property {string} method
 * @property {string} url
 * @property {[string, string][]} headers
 * @property {string|null} body
 * @property {string|null} idempotencyKey
 * @property {Omit<StepUpRequest, 'method'|'url'>} stepUp The challenge it got.
 * @property {number} createdAt ms since the epoch.
 */

/**
 * What `storage` must offer: Web Storage's `getItem`, `setItem` and `removeItem` (e.g.
 * `sessionStorage`).
 *
 * @typedef {{getItem(key: string): string|null, setItem(key: string, value: string): void,
 *   removeItem(key: string): void}} StorageLike
 */

/** 16 random octets (128 bits), base64url: an Idempotency-Key, or an id. */
export function randomKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * @param {StorageLike} storage
 * @param {string} key
 * @returns {unknown[]}
 */
function readList(storage, key) {
  try {
    const v = JSON.parse(storage.getItem(key) ?? '[]');
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

/**
 * @param {StorageLike} storage
 * @param {string} key
 * @param {string} id
 */
function removeEntry(storage, key, id) {
  const rest = readList(storage, key).filter((e) => /** @type {any} */ (e)?.id !== id);
  if (rest.length > 0) storage.setItem(key, JSON.stringify(rest));
  else storage.removeItem(key);
}

/** @param {unknown} e @returns {PendingRequest|null} */
function asPending(e) {
  const v = /** @type {any} */ (e);
  const ok =
    v && typeof v === 'object' && typeof v.id === 'string' && typeof v.method === 'string' &&
    typeof v.url === 'string' && Array.isArray(v.headers) &&
    v.headers.every((/** @type {unknown} */ h) => Array.isArray(h) && h.length === 2 && h.every((x) => typeof x === 'string')) &&
    (v.body === null || typeof v.body === 'string') && (v.idempotencyKey === null || typeof v.idempotencyKey === 'string') &&
    v.stepUp && typeof v.stepUp === 'object' && Array.isArray(v.stepUp.acrValues) && Number.isFinite(v.createdAt);
  return ok ? v : null;
}

/**
 * Removes the pending requests from `storage` and returns the readable ones, without replaying
 * anything: for a re-authentication that failed (cancelled, refused), to tell what was not
 * sent.
 *
 * @param {StorageLike} storage
 * @param {{storageKey?: string}} [options]
 * @returns {PendingRequest[]}
 */
export function discardPending(storage, { storageKey = PENDING_KEY } = {}) {
  const list = readList(storage, storageKey);
  storage.removeItem(storageKey);
  return /** @type {PendingRequest[]} */ (list.map(asPending).filter(Boolean));
}

// ---------------------------------------------------------------------------------------------
// The fetch

/**
 * A DPoP signer (`createDpop` of stepup-fetch/dpop), as the fetch uses it.
 *
 * @typedef {object} DpopSigner
 * @property {(method: string, url: string, accessToken?: string|null) => Promise<string>} proof
 * @property {(url: string, response: Response) => boolean} observe
 */

/**
 * Sends `request` with `headers` and the token: `Authorization: Bearer` (RFC 6750 §2.1), or
 * with `dpop` `Authorization: DPoP` and a new proof (RFC 9449 §7.1), sent once more with a
 * new proof when the server asks for a nonce (RFC 9449 §9).
 *
 * @param {typeof fetch} doFetch
 * @param {DpopSigner|null} dpop
 * @param {Request} request
 * @param {Headers} headers
 * @param {string|null|undefined} token
 */
async function authorized(doFetch, dpop, request, headers, token) {
  for (let again = Boolean(dpop && token); ; again = false) {
    const h = new Headers(headers);
    if (token) h.set('authorization', `${dpop ? 'DPoP' : 'Bearer'} ${token}`);
    if (dpop && token) h.set('dpop', await dpop.proof(request.method, request.url, token));
    const res = await doFetch(new Request(request.clone(), { headers: h }));
    if (!dpop?.observe(request.url, res) || !again) return res;
    res.body?.cancel().catch(() => {});
  }
}

/**
 * @typedef {object} StepUpFetchOptions
 * @property {typeof fetch} [fetch] Defaults to `globalThis.fetch`.
 * @property {() => (string|null|undefined|Promise<string|null|undefined>)} getAccessToken
 *   The current access token; sent as `Authorization: Bearer` (RFC 6750 §2.1).
 * @property {(stepUp: StepUpRequest) => Promise<unknown>} reauthenticate Resolves once a new
 *   token is available (popup, in-page); for a redirect it never resolves (the page leaves).
 *   A rejection rejects every request waiting for it, with that error.
 * @property {StorageLike|null} [storage] Enables the redirect flow: each challenged request is
 *   written here before `reauthenticate` is called, for `resumePending` after the redirect.
 * @property {string} [storageKey] Defaults to `PENDING_KEY`.
 * @property {DpopSigner|null} [dpop] Sends DPoP-bound tokens (`createDpop` of
 *   stepup-fetch/dpop): `Authorization: DPoP` and a proof per request, the DPoP challenge.
 */

/**
 * Whether a body can be written to storage as text.
 *
 * @param {RequestInfo|URL} input
 * @param {RequestInit|undefined} init
 */
function textBody(input, init) {
  const b = init?.body;
  if (b !== undefined && b !== null) return typeof b === 'string' || b instanceof URLSearchParams;
  // The body of a Request given as input: text if its media type is.
  const type = (input instanceof Request && input.headers.get('content-type')) || '';
  return /^\s*(text\/|application\/([\w.-]+\+)?(json|xml|x-www-form-urlencoded)\s*(;|$))/i.test(type);
}

/**
 * A `fetch` that sends `Authorization: Bearer <getAccessToken()>` and answers step-up
 * challenges (see `stepUpRequest`): it calls `reauthenticate` once for all the requests
 * challenged while it runs, then retries each of them once with the new token. A retry that
 * is challenged again rejects with `StepUpError` (`still_challenged`); any other response is
 * returned untouched.
 *
 * @param {StepUpFetchOptions} options
 * @returns {(input: RequestInfo|URL, init?: RequestInit) => Promise<Response>}
 */
export function createStepUpFetch(options) {
  const { getAccessToken, reauthenticate, storage = null, storageKey = PENDING_KEY, dpop = null } = options ?? {};
  const doFetch = options?.fetch ?? ((input, init) => globalThis.fetch(input, init));
  if (typeof getAccessToken !== 'function') throw new TypeError('createStepUpFetch: getAccessToken must be a function');
  if (typeof reauthenticate !== 'function') throw new TypeError('createStepUpFetch: reauthenticate must be a function');
  /** @type {Promise<void>|null} */
  let running = null;
  let generation = 0; // re-authentications completed

  const scheme = dpop ? 'DPoP' : 'Bearer';
  /**
   * @param {Request} request
   * @param {Headers} headers
   * @param {string|null|undefined} token
   */
  const send = (request, headers, token) => authorized(doFetch, dpop, request, headers, token);

  return async function apiFetch(input, init) {
    const request = new Request(input, init);
    const headers = new Headers(request.headers);
    headers.delete('authorization');
    let key = headers.get('idempotency-key');
    if (key === null && KEYED_METHODS.includes(request.method)) headers.set('idempotency-key', (key = randomKey()));

    const sentIn = generation;
    const token = await getAccessToken();
    const first = await send(request, headers, token);
    const stepUp = stepUpRequest(first, request, scheme);
    if (!stepUp) return first;
    first.body?.cancel().catch(() => {});

    let id = null;
    if (storage) {
      if (request.body !== null && !textBody(input, init)) {
        throw new StepUpError(
          'this request needs a re-authentication, but its body is not text (FormData, Blob, ArrayBuffer or stream) and cannot wait in storage across a redirect: send it as a string, or use a stepUp fetch without storage (popup)',
          { reason: 'body_not_text', status: stepUp.status, challenge: stepUp.challenge, stepUp },
        );
      }
      const { method, url, challenge, ...rest } = stepUp;
      /** @type {PendingRequest} */
      const entry = {
        id: randomKey(),
        method: request.method,
        url: request.url,
        headers: [...headers].filter(([name]) => !CREDENTIAL_HEADERS.includes(name)),
        body: request.body === null ? null : await request.clone().text(),
        idempotencyKey: key,
        stepUp: { ...rest, challenge },
        createdAt: Date.now(),
      };
      try {
        storage.setItem(storageKey, JSON.stringify([...readList(storage, storageKey), entry]));
      } catch (cause) {
        throw new StepUpError('the pending request could not be written to storage', {
          reason: 'storage_failed', status: stepUp.status, challenge, stepUp, cause,
        });
      }
      id = entry.id;
    }

    try {
      // Only when no re-authentication ended since this request was sent: a request that was
      // sent with the old token while one ran retries with the new token directly.
      if (generation === sentIn) {
        running ??= Promise.resolve()
          .then(() => reauthenticate(stepUp))
          .then(() => {
            generation++;
          })
          .finally(() => {
            running = null;
          });
        await running;
      }
    } finally {
      // Resolved in the page, or failed: this request can never be replayed later.
      if (id !== null && storage) removeEntry(storage, storageKey, id);
    }

    const newToken = await getAccessToken();
    if (token && newToken === token) {
      throw new StepUpError('the re-authentication gave no new access token, so the request was not retried', {
        reason: 'token_unchanged', status: stepUp.status, challenge: stepUp.challenge, stepUp,
      });
    }
    const retry = await send(request, headers, newToken);
    const again = stepUpRequest(retry, request, scheme);
    if (again) {
      retry.body?.cancel().catch(() => {});
      throw new StepUpError(`the retried request was challenged again (${again.reason}); it is not retried twice`, {
        reason: 'still_challenged', status: again.status, challenge: again.challenge, stepUp: again, response: retry,
      });
    }
    return retry;
  };
}

// ---------------------------------------------------------------------------------------------
// After the redirect

/**
 * @typedef {object} ResumeOptions
 * @property {typeof fetch} [fetch] Defaults to `globalThis.fetch`.
 * @property {() => (string|null|undefined|Promise<string|null|undefined>)} getAccessToken
 * @property {StorageLike} storage
 * @property {string} [storageKey] Defaults to `PENDING_KEY`.
 * @property {{acr?: unknown, auth_time?: unknown}|null} [idTokenClaims] The new ID token's
 *   claims: each pending request is checked against them with `verifyStepUp` first.
 * @property {number} [maxAgeMs] Defaults to `PENDING_MAX_AGE_MS` (10 minutes).
 * @property {DpopSigner|null} [dpop] As for `createStepUpFetch`.
 */

/**
 * @typedef {object} ResumeResult
 * @property {PendingRequest|null} pending What was replayed (null when unreadable).
 * @property {Response|null} response The answer, or null when it was refused or failed.
 * @property {unknown} error A `StepUpError` (`pending_expired`, `pending_unreadable`,
 *   `weaker_authentication`, `still_challenged`), a network error, or null.
 */

/**
 * Replays every pending request once, in the order they were challenged, after the
 * re-authentication's redirect came back. The entries are removed from `storage` before
 * anything is sent, so none can be replayed twice; entries older than `maxAgeMs` or unreadable
 * are refused.
 *
 * @param {ResumeOptions} options
 * @returns {Promise<ResumeResult[]>}
 */
export async function resumeAllPending({ fetch: f, getAccessToken, storage, storageKey = PENDING_KEY, idTokenClaims = null, maxAgeMs = PENDING_MAX_AGE_MS, dpop = null }) {
  const doFetch = f ?? ((input, init) => globalThis.fetch(input, init));
  const raw = storage.getItem(storageKey);
  if (raw === null || raw === undefined) return [];
  storage.removeItem(storageKey);
  let list;
  try {
    list = JSON.parse(raw);
  } catch {
    list = null;
  }
  const unreadable = () => ({
    pending: null,
    response: null,
    error: new StepUpError('a pending request in storage is unreadable; it was dropped', { reason: 'pending_unreadable' }),
  });
  if (!Array.isArray(list)) return [unreadable()];
  /** @type {ResumeResult[]} */
  const out = [];
  for (const item of list) {
    const pending = asPending(item);
    if (!pending) {
      out.push(unreadable());
      continue;
    }
    const result = { pending, response: /** @type {Response|null} */ (null), error: /** @type {unknown} */ (null) };
    out.push(result);
    const now = Date.now();
    const stepUp = /** @type {StepUpRequest} */ ({ ...pending.stepUp, method: pending.method, url: pending.url });
    try {
      if (now - pending.createdAt > maxAgeMs || pending.createdAt - now > 60_000) {
        throw new StepUpError(`a pending ${pending.method} ${pending.url} waited more than ${Math.round(maxAgeMs / 1000)} s; it was dropped`, {
          reason: 'pending_expired', stepUp,
        });
      }
      if (idTokenClaims) verifyStepUp(idTokenClaims, stepUp, { now });
      const request = new Request(pending.url, { method: pending.method, headers: pending.headers, body: pending.body });
      const response = await authorized(doFetch, dpop, request, new Headers(pending.headers), await getAccessToken());
      const again = stepUpRequest(response, pending, dpop ? 'DPoP' : 'Bearer');
      if (again) {
        throw new StepUpError(`the replayed request was challenged again (${again.reason})`, {
          reason: 'still_challenged', status: again.status, challenge: again.challenge, stepUp: again, response,
        });
      }
      result.response = response;
    } catch (e) {
      result.error = e;
    }
  }
  return out;
}

/**
 * `resumeAllPending` for the usual single request: resolves to the `Response` of the (first)
 * pending request, or null when nothing is pending; rejects with its error (see
 * `ResumeResult`). Any other pending request is replayed too; use `resumeAllPending` to see
 * their answers.
 *
 * @param {ResumeOptions} options
 * @returns {Promise<Response|null>}
 */
export async function resumePending(options) {
  const [first] = await resumeAllPending(options);
  if (!first) return null;
  if (first.error) throw first.error;
  return first.response;
}
