// stepup-fetch/oidc: a small OpenID Connect client for browsers (authorization code flow with
// PKCE, RP-Initiated Logout) and the adapter that answers step-ups with it.
//
// - OpenID Connect Core 1.0 §3.1 (code flow), §3.1.2.1 (acr_values, max_age, prompt, claims),
//   §3.1.3.7 (ID token checks), §5.5 (claims request).
// - RFC 7636 §4 (PKCE S256), RFC 6749 §4.1 (the code grant), RFC 8707 §2 (resource).
// - OpenID Connect Discovery 1.0 §4, RP-Initiated Logout 1.0 §2-3.
// - RFC 9449 §5: with `dpop`, the token request carries a DPoP proof and the access token must
//   come back bound (`token_type` DPoP); §8: a `use_dpop_nonce` answer is retried once.
//
// It keeps only the login's state, nonce and PKCE verifier in `storage`; the tokens are handed
// to the caller (`handleCallback`) and never stored here.

import { StepUpError, decodeJwtPayload } from './index.js';

export { decodeJwtPayload };

/** A login or logout answer that is not usable; `error` is an RFC 6749 §4.1.2.1 code or one of
 * `invalid_state`, `expired_request`, `invalid_token_response`, `invalid_id_token`. */
export class OidcError extends Error {
  /**
   * @param {string} error
   * @param {string|null} [description]
   * @param {unknown} [cause]
   */
  constructor(error, description = null, cause = undefined) {
    super(description ? `${error}: ${description}` : error, cause === undefined ? undefined : { cause });
    this.name = 'OidcError';
    /** @type {string} */
    this.error = error;
    /** @type {string|null} */
    this.description = description;
  }
}

/** @param {Uint8Array} bytes */
const base64url = (bytes) =>
  btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

/**
 * `bytes` random octets as base64url (RFC 4648 §5): 32 octets give 43 characters, a PKCE
 * code_verifier (RFC 7636 §4.1), a state or a nonce.
 *
 * @param {number} [bytes]
 */
export function randomString(bytes = 32) {
  if (!Number.isInteger(bytes) || bytes < 16 || bytes > 96) throw new RangeError('randomString: 16 to 96 bytes');
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

/**
 * RFC 7636 §4.2 S256: BASE64URL(SHA256(ASCII(code_verifier))).
 *
 * @param {string} verifier
 */
export async function pkceChallenge(verifier) {
  if (typeof verifier !== 'string' || !/^[A-Za-z0-9\-._~]{43,128}$/.test(verifier)) {
    throw new Error('a PKCE code_verifier is 43 to 128 unreserved characters');
  }
  return base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
}

/**
 * The union of two space-separated scope lists, in order, without repeats (RFC 6749 §3.3).
 *
 * @param {string|null|undefined} scope
 * @param {string[]} more
 */
export function mergeScope(scope, more) {
  return [...new Set([...(scope ?? '').split(' '), ...more].filter(Boolean))].join(' ');
}

/**
 * @typedef {object} OidcClientOptions
 * @property {string} issuer The provider's issuer identifier (discovery at
 *   `<issuer>/.well-known/openid-configuration`).
 * @property {string} clientId A public client registered for PKCE.
 * @property {string} redirectUri
 * @property {string} [scope] Defaults to `openid`.
 * @property {string|null} [resource] RFC 8707 resource for the access token.
 * @property {string} [postLogoutRedirectUri] Defaults to `redirectUri`.
 * @property {import('./index.js').StorageLike} storage Keeps the state, nonce and verifier of
 *   the login under way (`sessionStorage`).
 * @property {string} [storageKey] Defaults to `stepup-fetch.oidc`.
 * @property {typeof fetch} [fetch] Defaults to `globalThis.fetch`.
 * @property {(url: string) => void} [navigate] Defaults to `location.assign`.
 * @property {number} [requestMaxAgeMs] How long a login may take (default 10 minutes).
 * @property {import('./index.js').DpopSigner|null} [dpop] A DPoP signer (`createDpop` of
 *   stepup-fetch/dpop): the token request carries its proof and only a DPoP-bound access token
 *   is accepted (RFC 9449 §5). Give the same signer to `createStepUpFetch`.
 */

/**
 * @typedef {object} SigninOptions
 * @property {string[]|null} [acrValues]
 * @property {number|null} [maxAge]
 * @property {string|null} [prompt]
 * @property {string|null} [scope] Defaults to the client's.
 * @property {string|null} [claims] A claims request (JSON text).
 * @property {unknown} [data] Returned by `handleCallback` (keep it free of secrets).
 */

/**
 * @typedef {{ok: true, accessToken: string, tokenType: 'Bearer'|'DPoP', idToken: string|null,
 *   expiresIn: number|null, scope: string|null, idTokenClaims: Record<string, any>|null,
 *   data: unknown}} SigninSuccess
 * @typedef {{ok: false, error: string, errorDescription: string|null, data: unknown}} SigninFailure
 */

/**
 * A small OpenID Connect client for a browser app.
 *
 * @param {OidcClientOptions} options
 */
export function createOidcClient(options) {
  const {
    issuer,
    clientId,
    redirectUri,
    scope = 'openid',
    resource = null,
    postLogoutRedirectUri = redirectUri,
    storage,
    storageKey = 'stepup-fetch.oidc',
    requestMaxAgeMs = 10 * 60 * 1000,
    dpop = null,
  } = options;
  const doFetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const navigate = options.navigate ?? ((url) => globalThis.location.assign(url));
  const AUTH = `${storageKey}.auth`;
  const LOGOUT = `${storageKey}.logout`;
  /** @type {Record<string, any>|null} */
  let discovery = null;

  /** @param {string} key */
  const take = (key) => {
    const raw = storage.getItem(key);
    storage.removeItem(key);
    try {
      return raw === null ? null : JSON.parse(raw);
    } catch {
      return null;
    }
  };
  /** @param {string} url @param {RequestInit} [init] */
  const request = async (url, init) => {
    try {
      return await doFetch(url, { ...init, cache: 'no-store' });
    } catch (cause) {
      throw new OidcError('network_error', `could not reach the login provider (${new URL(url).origin})`, cause);
    }
  };
  /**
   * @param {string} to
   * @returns {Promise<never>}
   */
  const leave = (to) => {
    navigate(to);
    // The page is leaving. If it comes back from the back/forward cache instead, the sign-in
    // did not happen: reject, so that nothing waits for it forever.
    return new Promise((_, reject) => {
      globalThis.addEventListener?.('pageshow', (e) => {
        if (/** @type {PageTransitionEvent} */ (e).persisted) {
          reject(new StepUpError('the browser came back without signing in', { reason: 'redirect_returned' }));
        }
      }, { once: true });
    });
  };

  const client = {
    issuer,
    scope,
    /** The DPoP signer given (null: Bearer tokens). */
    dpop,
    /** The discovery document (OpenID Connect Discovery 1.0 §4), fetched once. */
    async discover() {
      if (discovery) return discovery;
      const res = await request(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, { headers: { Accept: 'application/json' } });
      const d = res.ok ? await res.json().catch(() => null) : null;
      if (!d) throw new OidcError('invalid_discovery', `the discovery document answered HTTP ${res.status}`);
      // Discovery §4.3: the document must name the issuer that was asked for.
      if (d.issuer !== issuer) throw new OidcError('invalid_discovery', 'the discovery document names another issuer');
      if (typeof d.authorization_endpoint !== 'string' || typeof d.token_endpoint !== 'string') {
        throw new OidcError('invalid_discovery', 'the discovery document lacks its endpoints');
      }
      discovery = d;
      return d;
    },

    /**
     * Starts a login (OpenID Connect Core 1.0 §3.1.2.1) and leaves the page: never resolves;
     * rejects with a `StepUpError` (`redirect_returned`) if the page is shown again from the
     * back/forward cache.
     *
     * @param {SigninOptions} [o]
     * @returns {Promise<never>}
     */
    async signinRedirect({ acrValues = null, maxAge = null, prompt = null, scope: s = null, claims = null, data = null } = {}) {
      const d = await client.discover();
      const state = randomString();
      const nonce = randomString();
      const verifier = randomString();
      const url = new URL(d.authorization_endpoint);
      const q = url.searchParams;
      q.set('response_type', 'code');
      q.set('client_id', clientId);
      q.set('redirect_uri', redirectUri);
      q.set('scope', s ?? scope);
      q.set('state', state);
      q.set('nonce', nonce);
      q.set('code_challenge', await pkceChallenge(verifier));
      q.set('code_challenge_method', 'S256');
      if (acrValues?.length) q.set('acr_values', acrValues.join(' '));
      if (maxAge !== null && maxAge !== undefined) {
        if (!Number.isSafeInteger(maxAge) || maxAge < 0) throw new RangeError('maxAge must be a non-negative integer');
        q.set('max_age', String(maxAge));
      }
      if (prompt) q.set('prompt', prompt);
      if (claims) q.set('claims', claims);
      if (resource) q.set('resource', resource);
      storage.setItem(AUTH, JSON.stringify({ state, nonce, verifier, data, createdAt: Date.now() }));
      return leave(url.toString());
    },

    /**
     * Completes the login if `url` is the provider's answer (it has `code` or `error`): checks
     * `state`, exchanges the code (RFC 6749 §4.1.3, RFC 7636 §4.5) and checks the ID token
     * (issuer, audience, nonce, expiry). Null when `url` is no login answer. Throws an
     * `OidcError` (`network_error`) when the provider cannot be reached.
     *
     * @param {string} [url]
     * @returns {Promise<SigninSuccess|SigninFailure|null>}
     */
    async handleCallback(url = globalThis.location.href) {
      const params = new URL(url).searchParams;
      if (!params.has('code') && !params.has('error')) return null;
      const started = take(AUTH);
      const data = started?.data ?? null;
      /** @returns {SigninFailure} */
      const failed = (/** @type {string} */ error, /** @type {string|null} */ errorDescription) => ({ ok: false, error, errorDescription, data });
      if (!started || typeof started.state !== 'string' || params.get('state') !== started.state) {
        return { ...failed('invalid_state', 'this answer does not belong to a login started here'), data: null };
      }
      if (typeof started.createdAt !== 'number' || Date.now() - started.createdAt > requestMaxAgeMs) {
        return failed('expired_request', 'the login took too long');
      }
      if (params.has('error')) return failed(/** @type {string} */ (params.get('error')), params.get('error_description'));
      const d = await client.discover();
      const body = new URLSearchParams({
        grant_type: 'authorization_code',
        code: /** @type {string} */ (params.get('code')),
        redirect_uri: redirectUri,
        client_id: clientId,
        code_verifier: started.verifier,
      });
      if (resource) body.set('resource', resource);
      let res;
      let t;
      // RFC 9449 §8: a provider that asks for a nonce answers 400 use_dpop_nonce; once only.
      for (let again = Boolean(dpop); ; again = false) {
        /** @type {Record<string, string>} */
        const headers = { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' };
        if (dpop) headers.DPoP = await dpop.proof('POST', d.token_endpoint);
        res = await request(d.token_endpoint, { method: 'POST', headers, body });
        dpop?.observe(d.token_endpoint, res);
        t = await res.json().catch(() => null);
        if (!again || res.status !== 400 || t?.error !== 'use_dpop_nonce' || !res.headers.has('dpop-nonce')) break;
      }
      if (!res.ok || !t) {
        return failed(t?.error ?? 'invalid_token_response', t?.error_description ?? `the token endpoint answered HTTP ${res.status}`);
      }
      const tokenType = dpop ? 'DPoP' : 'Bearer';
      if (typeof t.access_token !== 'string' || String(t.token_type).toLowerCase() !== tokenType.toLowerCase()) {
        return failed('invalid_token_response', `no ${tokenType} access token (token_type ${JSON.stringify(t.token_type ?? null)})`);
      }
      const claims = decodeJwtPayload(t.id_token);
      if (t.id_token !== undefined || (t.scope ?? scope).split(' ').includes('openid')) {
        // OpenID Connect Core 1.0 §3.1.3.7: received from the token endpoint directly, so TLS
        // stands for the signature; issuer, audience, nonce and expiry are checked here.
        const aud = claims && (Array.isArray(claims.aud) ? claims.aud : [claims.aud]);
        const why = !claims ? 'no ID token'
          : claims.iss !== d.issuer ? 'another issuer'
          : !aud?.includes(clientId) ? 'another audience'
          : claims.nonce !== started.nonce ? 'another nonce'
          : typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now() - 60_000 ? 'expired'
          : null;
        if (why) return failed('invalid_id_token', `the ID token does not belong to this login (${why})`);
      }
      return {
        ok: true,
        accessToken: t.access_token,
        tokenType,
        idToken: typeof t.id_token === 'string' ? t.id_token : null,
        expiresIn: Number.isFinite(t.expires_in) ? t.expires_in : null,
        scope: typeof t.scope === 'string' ? t.scope : null,
        idTokenClaims: claims,
        data,
      };
    },

    /**
     * RP-Initiated Logout 1.0 §2: leaves for the provider's `end_session_endpoint` with
     * `id_token_hint`, `post_logout_redirect_uri`, `client_id` and `state`. Resolves to false
     * (and does not leave) when the provider has none.
     *
     * @param {{idToken?: string|null, data?: unknown}} [o]
     * @returns {Promise<false>}
     */
    async signoutRedirect({ idToken = null, data = null } = {}) {
      const d = await client.discover();
      if (typeof d.end_session_endpoint !== 'string' || !d.end_session_endpoint) return false;
      const state = randomString();
      const url = new URL(d.end_session_endpoint);
      if (idToken) url.searchParams.set('id_token_hint', idToken);
      url.searchParams.set('post_logout_redirect_uri', postLogoutRedirectUri);
      url.searchParams.set('client_id', clientId);
      url.searchParams.set('state', state);
      storage.setItem(LOGOUT, JSON.stringify({ state, data, createdAt: Date.now() }));
      return leave(url.toString());
    },

    /**
     * The provider's answer to a logout (RP-Initiated Logout 1.0 §3): `url` with `state` and
     * neither `code` nor `error`. Null when it is none; `ok` tells whether the state is the
     * one sent.
     *
     * @param {string} [url]
     * @returns {{ok: boolean, data: unknown}|null}
     */
    handleSignoutCallback(url = globalThis.location.href) {
      const params = new URL(url).searchParams;
      if (!params.has('state') || params.has('code') || params.has('error')) return null;
      const started = take(LOGOUT);
      const ok = Boolean(started) && params.get('state') === started.state && Date.now() - started.createdAt <= requestMaxAgeMs;
      return { ok, data: ok ? started.data ?? null : null };
    },
  };
  return client;
}

/**
 * The `reauthenticate` of `createStepUpFetch` for a client of `createOidcClient`: a login
 * with the challenge's `acr_values`, `max_age` (`prompt=login` for `max_age=0`), the added
 * `scope` and `claims`, by redirect. `data` (default `{stepUp: true}`) comes back from
 * `handleCallback`; check the new ID token there with `resumePending({idTokenClaims})`. With a
 * client made with `dpop`, its `dpop` too, for `createStepUpFetch` and `resumePending`.
 *
 * @param {ReturnType<typeof createOidcClient>} client
 * @param {{data?: unknown}} [options]
 */
export function oidcAdapter(client, { data = { stepUp: true } } = {}) {
  return {
    dpop: client.dpop,
    /** @param {import('./index.js').StepUpRequest} stepUp */
    reauthenticate: (stepUp) =>
      client.signinRedirect({
        acrValues: stepUp.acrValues,
        maxAge: stepUp.maxAge,
        prompt: stepUp.maxAge === 0 ? 'login' : null,
        scope: stepUp.scope.length ? mergeScope(client.scope, stepUp.scope) : null,
        claims: stepUp.claims,
        data,
      }),
  };
}

