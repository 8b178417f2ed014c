// The bank SPA's login, over the stepup-fetch package's OpenID Connect client
// (clients/stepup-fetch/src/oidc.js, served at /stepup-fetch/oidc.js): authorization code +
// PKCE, the step-up login, RP-Initiated Logout.
//
// This module is the seam between app.mjs and a login library. tests/interop/spa/login.mjs is
// the same interface over oidc-client-ts, which the second browser scenario serves in its place.
//
// The session (access token, ID token, subject, expiry) lives in sessionStorage under
// SESSION_KEY, as the demo always kept it; the only token that ever goes in a URL is the ID
// token, as the logout's id_token_hint (RP-Initiated Logout 1.0 §2).
//
// The access token is DPoP-bound (RFC 9449): the token request carries a proof signed by an
// ECDSA P-256 key pair whose private key cannot be exported (stepup-fetch/dpop), and the bank's
// API gets `Authorization: DPoP` with a proof per request. The key pair is kept in IndexedDB
// (a CryptoKeyPair is structured-cloneable, and stays non-extractable there), so that the
// bound token stays usable across the login redirect and reloads; "Log out" deletes it.

import { createDpop, generateDpopKeyPair } from './stepup-fetch/dpop.js';
import { createOidcClient, oidcAdapter } from './stepup-fetch/oidc.js';

const SESSION_KEY = 'bank-demo.session'; // {accessToken, idToken, sub, expiresAt}
// Set by "Log out" when the provider has no end_session_endpoint (or could not be reached):
// its single sign-on outlives the bank's logout, so the next login asks for the password.
const FORCE_LOGIN_KEY = 'bank-demo.force-login';

function readSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null');
    if (s && typeof s.accessToken === 'string' && typeof s.expiresAt === 'number') return s;
  } catch {
    /* unreadable: logged out */
  }
  return null;
}

/**
 * The DPoP key pair of this browser, in IndexedDB (database DPOP_DB, one entry): `get` reads it
 * or makes and keeps a new one (in memory only when IndexedDB cannot be used), `forget`
 * deletes it.
 */
function dpopKeyStore() {
  const DPOP_DB = 'bank-demo.dpop';
  /** @type {Promise<IDBDatabase>|null} */
  let db = null;
  const request = (mode, op) => {
    db ??= new Promise((resolve, reject) => {
      const open = indexedDB.open(DPOP_DB, 1);
      open.onupgradeneeded = () => open.result.createObjectStore('keys');
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
    return db.then((d) => new Promise((resolve, reject) => {
      const req = op(d.transaction('keys', mode).objectStore('keys'));
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    }));
  };
  /** @type {Promise<CryptoKeyPair>|null} */
  let pair = null;
  return {
    get() {
      pair ??= (async () => {
        const kept = await request('readonly', (s) => s.get('pair')).catch(() => null);
        if (kept?.privateKey && kept?.publicKey) return kept;
        const made = await generateDpopKeyPair();
        await request('readwrite', (s) => s.put(made, 'pair')).catch(() => {});
        return made;
      })();
      return pair;
    },
    async forget() {
      pair = null;
      await request('readwrite', (s) => s.delete('pair')).catch(() => {});
    },
  };
}

/** Drops the code, state or error of an answer from the address bar and the history. */
function cleanUrl() {
  window.history.replaceState(null, '', window.location.pathname + window.location.hash);
}

/**
 * @param {{issuer: string, client_id: string, redirect_uri: string, scope: string, resource?: string|null}} config
 *   The bank's /config.json.
 */
export async function createLogin(config) {
  const keys = dpopKeyStore();
  const dpop = createDpop({ keyPair: () => keys.get() });
  const client = createOidcClient({
    issuer: config.issuer,
    clientId: config.client_id,
    redirectUri: config.redirect_uri,
    scope: config.scope,
    resource: config.resource ?? null,
    storage: sessionStorage,
    storageKey: 'bank-demo.oidc',
    // The token request carries a proof; only a DPoP-bound access token is accepted.
    dpop,
  });
  const adapter = oidcAdapter(client);

  return {
    /** The DPoP signer of the bank's API requests (stepup-fetch's `dpop` option). */
    dpop,

    /** The signed-in session ({sub, idToken, expiresAt}), or null. */
    session: readSession,

    /** The access token while it is valid, else null. */
    getAccessToken() {
      const s = readSession();
      return s && Date.now() < s.expiresAt ? s.accessToken : null;
    },

    /** Leaves for the provider's login page. */
    login() {
      // After a "Log out" that could not end the provider's session, ask for the password
      // again (OpenID Connect Core 1.0 §3.1.2.1 prompt=login).
      return client.signinRedirect({ prompt: sessionStorage.getItem(FORCE_LOGIN_KEY) ? 'login' : null, data: { stepUp: false } });
    },

    /**
     * Leaves for the provider with what the bank's challenge asks (a stepup-fetch
     * StepUpRequest): the adapter's `reauthenticate`.
     */
    stepUp: adapter.reauthenticate,

    /**
     * The provider's answer in the URL, if any: `{kind: 'none'}`, `{kind: 'logout', ok}`, or
     * `{kind: 'login', ok, stepUp, idTokenClaims}` / `{kind: 'login', ok: false, stepUp, error,
     * description}`. A successful login becomes the session.
     */
    async handleReturn() {
      const logout = client.handleSignoutCallback();
      if (logout) {
        cleanUrl();
        return { kind: 'logout', ok: logout.ok };
      }
      const params = new URLSearchParams(window.location.search);
      if (!params.has('code') && !params.has('error')) return { kind: 'none' };
      const url = window.location.href;
      // Out of the address bar at once: the code is single-use anyway.
      cleanUrl();
      const r = await client.handleCallback(url);
      if (!r) return { kind: 'none' };
      const stepUp = Boolean(/** @type {any} */ (r.data)?.stepUp);
      if (!r.ok) return { kind: 'login', ok: false, stepUp, error: r.error, description: r.errorDescription };
      const expiresIn = r.expiresIn && r.expiresIn > 0 ? r.expiresIn : 300;
      sessionStorage.setItem(SESSION_KEY, JSON.stringify({
        accessToken: r.accessToken,
        // The ID token of the last token response: the id_token_hint of "Log out".
        idToken: r.idToken,
        sub: r.idTokenClaims?.sub ?? null,
        expiresAt: Date.now() + expiresIn * 1000,
      }));
      sessionStorage.removeItem(FORCE_LOGIN_KEY);
      return { kind: 'login', ok: true, stepUp, idTokenClaims: r.idTokenClaims };
    },

    /** Ends the bank's session only. */
    clear() {
      sessionStorage.removeItem(SESSION_KEY);
    },

    /**
     * Ends the session, then the provider's (RP-Initiated Logout): leaves the page (never
     * resolves), or resolves to 'no-endpoint' / 'unreachable' when the provider's session
     * outlives the bank's; the next login then asks for the password.
     */
    async logout() {
      const idToken = readSession()?.idToken ?? null;
      sessionStorage.removeItem(SESSION_KEY);
      sessionStorage.removeItem(FORCE_LOGIN_KEY);
      // The next session gets a new key pair.
      await keys.forget();
      let outcome = 'no-endpoint';
      try {
        // Resolves (to false) only when the provider has no end_session_endpoint.
        await client.signoutRedirect({ idToken });
      } catch {
        outcome = 'unreachable';
      }
      sessionStorage.setItem(FORCE_LOGIN_KEY, '1');
      return outcome;
    },
  };
}
