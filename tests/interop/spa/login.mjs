// The bank SPA's login over oidc-client-ts (https://github.com/authts/oidc-client-ts) and the
// stepup-fetch package's oidc-client-ts adapter: the same seam as
// examples/bank-demo/web/login.mjs, which tests/interop/spa/server.mjs serves in its place so
// that the unchanged app.mjs runs on oidc-client-ts (second browser scenario,
// tests/browser/oidc-client-ts.mjs).
//
// oidc-client-ts keeps the user (its tokens) in sessionStorage, as the demo does; the step-up
// requests wait in sessionStorage too, under stepup-fetch's key, without any token.

import { UserManager, WebStorageStateStore } from '/vendor/oidc-client-ts.js';
import { idTokenClaims, oidcClientTsAdapter } from './stepup-fetch/oidc-client-ts.js';

// Set by "Log out" when the provider's session could not be ended: the next login asks for the
// password (OpenID Connect Core 1.0 §3.1.2.1 prompt=login).
const FORCE_LOGIN_KEY = 'bank-demo.force-login';

/** @param {{issuer: string, client_id: string, redirect_uri: string, scope: string, resource?: string|null}} config */
export async function createLogin(config) {
  const userManager = new UserManager({
    authority: config.issuer,
    client_id: config.client_id,
    redirect_uri: config.redirect_uri,
    post_logout_redirect_uri: config.redirect_uri,
    scope: config.scope,
    // RFC 8707: the access token is for the bank.
    ...(config.resource ? { resource: config.resource } : {}),
    userStore: new WebStorageStateStore({ store: sessionStorage }),
    stateStore: new WebStorageStateStore({ store: sessionStorage }),
    loadUserInfo: false,
    automaticSilentRenew: false,
    monitorSession: false,
  });
  const adapter = oidcClientTsAdapter(userManager);
  let user = await userManager.getUser();

  const valid = () => Boolean(user && !user.expired);
  const cleanUrl = () => window.history.replaceState(null, '', window.location.pathname + window.location.hash);

  return {
    session: () => (valid() ? { sub: user.profile.sub, idToken: user.id_token, expiresAt: user.expires_at * 1000 } : null),

    getAccessToken: () => (valid() ? user.access_token : null),

    login: () =>
      userManager.signinRedirect({ prompt: sessionStorage.getItem(FORCE_LOGIN_KEY) ? 'login' : undefined, state: { stepUp: false } }),

    // signinRedirect with the challenge's acr_values, max_age, scope and claims.
    stepUp: adapter.reauthenticate,

    async handleReturn() {
      const params = new URLSearchParams(window.location.search);
      if (!params.has('state') && !params.has('code') && !params.has('error')) return { kind: 'none' };
      const url = window.location.href;
      cleanUrl();
      if (!params.has('code') && !params.has('error')) {
        // RP-Initiated Logout 1.0 §3: back from the provider's logout, with the state sent.
        try {
          await userManager.signoutRedirectCallback(url);
          return { kind: 'logout', ok: true };
        } catch {
          return { kind: 'logout', ok: false };
        }
      }
      try {
        user = await userManager.signinRedirectCallback(url);
      } catch (e) {
        const stepUp = Boolean(e?.state?.stepUp);
        if (e?.error) return { kind: 'login', ok: false, stepUp, error: e.error, description: e.error_description ?? null };
        return { kind: 'login', ok: false, stepUp, error: 'invalid_state', description: String(e?.message ?? e) };
      }
      sessionStorage.removeItem(FORCE_LOGIN_KEY);
      return { kind: 'login', ok: true, stepUp: Boolean(user.state?.stepUp), idTokenClaims: idTokenClaims(user) };
    },

    clear() {
      user = null;
      userManager.removeUser().catch(() => {});
    },

    async logout() {
      sessionStorage.removeItem(FORCE_LOGIN_KEY);
      try {
        // Removes the user, then leaves for the end_session_endpoint with id_token_hint; state
        // data makes oidc-client-ts send a state and check it on the way back.
        await userManager.signoutRedirect({ state: { logout: true } });
        return 'left';
      } catch {
        user = null;
        await userManager.removeUser().catch(() => {});
        sessionStorage.setItem(FORCE_LOGIN_KEY, '1');
        return 'no-endpoint';
      } finally {
        user = null;
      }
    },
  };
}
