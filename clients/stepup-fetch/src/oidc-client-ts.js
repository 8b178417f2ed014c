// stepup-fetch/oidc-client-ts: answers step-ups with oidc-client-ts's UserManager
// (signinRedirect / signinPopup), passing the challenge on as OpenID Connect Core 1.0
// §3.1.2.1 `acr_values`, `max_age` and `scope`, and §5.5 `claims` (extraQueryParams.claims).

import { StepUpError, decodeJwtPayload, verifyStepUp } from './index.js';

/**
 * What the adapter uses of oidc-client-ts's `UserManager` (v3).
 *
 * @typedef {object} UserManagerLike
 * @property {{scope?: string, extraQueryParams?: Record<string, string|number|boolean>}} settings
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
 *
 * @param {UserManagerLike} userManager
 * @param {{popup?: boolean, state?: unknown}} [options]
 */
export function oidcClientTsAdapter(userManager, { popup = false, state = { stepUp: true } } = {}) {
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
  };
}
