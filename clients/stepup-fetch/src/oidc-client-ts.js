// stepup-fetch/oidc-client-ts: answers step-ups with oidc-client-ts's UserManager
// (signinRedirect / signinPopup), passing the challenge on as OpenID Connect Core 1.0
// §3.1.2.1 `acr_values`, `max_age` and `scope`, and §5.5 `claims` (extraQueryParams.claims).
// With oidc-client-ts's own DPoP (its `dpop` setting, v3.1 and later: it binds the tokens,
// RFC 9449 §5), the adapter's `dpop` signs the API's proofs with that same key pair.

import { StepUpError, decodeJwtPayload, verifyStepUp } from './index.js';
import { createDpop } from './dpop.js';

/**
 * What the adapter uses of oidc-client-ts's `UserManager` (v3).
 *
 * @typedef {object} UserManagerLike
 * @property {{scope?: string, extraQueryParams?: Record<string, string|number|boolean>, client_id?: string,
 *   dpop?: {store: {get(key: string): Promise<{keys: CryptoKeyPair}|undefined>}}}} settings
 * @property {() => Promise<UserLike|null>} getUser
 * @property {(args?: any) => Promise<void>} signinRedirect
 * @property {(args?: any) => Promise<UserLike>} signinPopup
 */

/**
 * What the adapter uses of oidc-client-ts's `User`.
 *
 * @typedef {{access_token: string, id_token?: string, profile?: Record<string, any>}} UserLike
 */

/**
 * The claims of a `User`'s ID token, `acr` and `auth_time` included: oidc-client-ts leaves
 * them out of `user.profile` (its `filterProtocolClaims` setting), so they are read from
 * `user.id_token` (decoded, not verified: oidc-client-ts got it from the token endpoint).
 * For `resumePending({idTokenClaims: idTokenClaims(user)})` after `signinRedirectCallback`.
 *
 * @param {UserLike|null|undefined} user
 * @returns {Record<string, any>|null}
 */
export function idTokenClaims(user) {
  return decodeJwtPayload(user?.id_token) ?? user?.profile ?? null;
}

/**
 * `getAccessToken` and `reauthenticate` for `createStepUpFetch`, over oidc-client-ts.
 *
 * - redirect (default): `signinRedirect`; the page leaves, and `state` (default
 *   `{stepUp: true}`) comes back as `user.state` from `signinRedirectCallback`. Then call
 *   `resumePending({..., idTokenClaims: idTokenClaims(user)})`. If the browser comes back from the
 *   back/forward cache without signing in, `reauthenticate` rejects with a `StepUpError`
 *   (`redirect_returned`).
 * - `popup: true`: `signinPopup`; the new ID token is checked with `verifyStepUp` before
 *   the retry (`StepUpError` `weaker_authentication`).
 * - `dpop`: a DPoP signer (stepup-fetch/dpop) over the key pair oidc-client-ts keeps in the
 *   store of its `dpop` setting, when that is set (null otherwise): spread into
 *   `createStepUpFetch` and `resumePending`, API requests then carry `Authorization: DPoP` and
 *   a proof (RFC 9449 §7.1).
 *
 * @param {UserManagerLike} userManager
 * @param {{popup?: boolean, state?: unknown}} [options]
 */
export function oidcClientTsAdapter(userManager, { popup = false, state = { stepUp: true } } = {}) {
  const { dpop, client_id: clientId = '' } = userManager.settings;
  /** @param {import('./index.js').StepUpRequest} stepUp */
  const args = (stepUp) => {
    const { scope, extraQueryParams } = userManager.settings;
    return {
      acr_values: stepUp.acrValues.join(' ') || undefined,
      max_age: stepUp.maxAge ?? undefined,
      prompt: stepUp.maxAge === 0 ? 'login' : undefined,
      scope: stepUp.scope.length ? [...new Set([...(scope ?? '').split(' '), ...stepUp.scope].filter(Boolean))].join(' ') : undefined,
      // Given per call, extraQueryParams replace the settings' ones: keep those.
      extraQueryParams: { ...extraQueryParams, ...(stepUp.claims ? { claims: stepUp.claims } : {}) },
      state,
    };
  };
  return {
    getAccessToken: async () => (await userManager.getUser())?.access_token ?? null,
    /** @param {import('./index.js').StepUpRequest} stepUp */
    reauthenticate: async (stepUp) => {
      if (popup) {
        verifyStepUp(idTokenClaims(await userManager.signinPopup(args(stepUp))), stepUp);
        return;
      }
      // Resolves only when the page is shown again without the sign-in (back/forward cache).
      await userManager.signinRedirect(args(stepUp));
      throw new StepUpError('the browser came back without signing in', { reason: 'redirect_returned' });
    },
    // oidc-client-ts keeps its DPoP key pair under the client_id.
    dpop: dpop
      ? createDpop({
        keyPair: async () => {
          const kept = await dpop.store.get(clientId);
          if (!kept?.keys) throw new StepUpError('oidc-client-ts holds no DPoP key pair yet (sign in first)', { reason: 'dpop_no_key' });
          return kept.keys;
        },
      })
      : null,
  };
}
