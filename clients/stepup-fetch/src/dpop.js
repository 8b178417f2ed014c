// stepup-fetch/dpop: DPoP proofs (RFC 9449) for createStepUpFetch and stepup-fetch/oidc.
//
// - RFC 9449 §4.2: the proof (`typ` dpop+jwt, `alg` ES256, the public `jwk`; `jti`, `htm`,
//   `htu`, `iat`, `ath`, `nonce`), signed by a WebCrypto ECDSA P-256 key whose private half is
//   not extractable.
// - RFC 9449 §7.1: `Authorization: DPoP <token>` with a fresh proof per request (the fetch of
//   stepup-fetch does that when given `dpop`).
// - RFC 9449 §8, §9: the server's `DPoP-Nonce`, remembered per origin; a `401` `use_dpop_nonce`
//   challenge is answered once with a proof carrying it.
// - RFC 7638: the key's JWK thumbprint (`jkt`), what a bound token's `cnf.jkt` names.

import { parseChallenges } from './index.js';

/** @param {Uint8Array} bytes */
const b64u = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
/** @param {string} text */
const utf8 = (text) => new TextEncoder().encode(text);
/** @param {string} text */
const sha256 = async (text) => b64u(new Uint8Array(await crypto.subtle.digest('SHA-256', utf8(text))));

/**
 * A new ECDSA P-256 key pair for DPoP whose private key cannot be exported (WebCrypto
 * `extractable: false`); the public key can always be exported. A `CryptoKeyPair` can be kept
 * in IndexedDB as it is (it is structured-cloneable), so that tokens bound to it stay usable
 * after a reload.
 *
 * @returns {Promise<CryptoKeyPair>}
 */
export function generateDpopKeyPair() {
  return /** @type {Promise<CryptoKeyPair>} */ (crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']));
}

/**
 * What `createStepUpFetch` (option `dpop`) and `createOidcClient` (option `dpop`) use.
 *
 * @typedef {object} Dpop
 * @property {(method: string, url: string, accessToken?: string|null) => Promise<string>} proof
 *   A new proof for a request (RFC 9449 §4.2); with `accessToken`, its `ath`.
 * @property {(url: string, response: Response) => boolean} observe Remembers the response's
 *   `DPoP-Nonce` for the URL's origin; true when the response is a `401` DPoP challenge
 *   `error="use_dpop_nonce"` with a nonce, i.e. the request should be sent again, once.
 * @property {() => Promise<CryptoKeyPair>} keyPair The key pair (created on first use unless given).
 * @property {() => Promise<string>} thumbprint The RFC 7638 thumbprint of the public key (`jkt`).
 */

/**
 * @typedef {object} DpopOptions
 * @property {CryptoKeyPair|(() => CryptoKeyPair|Promise<CryptoKeyPair>)|null} [keyPair] An ECDSA
 *   P-256 key pair (or a function giving it, e.g. from IndexedDB); by default one is made with
 *   `generateDpopKeyPair` on first use and kept in memory.
 * @property {() => number} [now] The clock, ms since the epoch (for `iat`).
 */

/**
 * A DPoP signer: proofs with an ES256 key, and the server nonces seen (RFC 9449 §8, §9).
 *
 * @param {DpopOptions} [options]
 * @returns {Dpop}
 */
export function createDpop({ keyPair = null, now = Date.now } = {}) {
  /** @type {Promise<CryptoKeyPair>|null} */
  let made = null;
  const pair = async () => (typeof keyPair === 'function' ? keyPair() : keyPair ?? (made ??= generateDpopKeyPair()));
  /** @type {Map<string, string>} */
  const nonces = new Map();
  const jwk = async () => {
    // RFC 7638 §3.2's order of the required members: the thumbprint is over this text.
    const { crv, kty, x, y } = await crypto.subtle.exportKey('jwk', (await pair()).publicKey);
    return { crv, kty, x, y };
  };
  return {
    keyPair: pair,
    thumbprint: async () => sha256(JSON.stringify(await jwk())),
    async proof(method, url, accessToken = null) {
      const u = new URL(url);
      /** @type {Record<string, string|number>} */
      const claims = { jti: crypto.randomUUID(), htm: method.toUpperCase(), htu: u.origin + u.pathname, iat: Math.floor(now() / 1000) };
      if (accessToken) claims.ath = await sha256(accessToken);
      const nonce = nonces.get(u.origin);
      if (nonce) claims.nonce = nonce;
      const input = [{ typ: 'dpop+jwt', alg: 'ES256', jwk: await jwk() }, claims].map((v) => b64u(utf8(JSON.stringify(v)))).join('.');
      // WebCrypto's ECDSA signature is r ‖ s, as JWS wants it (RFC 7518 §3.4).
      const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, (await pair()).privateKey, utf8(input));
      return `${input}.${b64u(new Uint8Array(sig))}`;
    },
    observe(url, response) {
      const nonce = response.headers.get('dpop-nonce');
      if (!nonce) return false;
      nonces.set(new URL(url).origin, nonce);
      if (response.status !== 401) return false;
      try {
        return parseChallenges(response.headers.get('www-authenticate')).some((c) => /^dpop$/i.test(c.scheme) && c.params.error === 'use_dpop_nonce');
      } catch {
        return false;
      }
    },
  };
}
