// The independent OpenID provider of the interop suite: npm `oidc-provider` (panva, OpenID
// certified), configured the way the bank demo expects an external issuer to be:
//
// - signing keys RS256, ES256, EdDSA and Ed25519 (RFC 9864's name), generated at every start; their `kid`s carry
//   the key generation and random bytes, so every restart is a key rotation; with --fixed-kids the
//   `kid`s are fixed (`fixed-rs256`, `fixed-es256`, `fixed-eddsa`, `fixed-ed25519`) while the key
//   material is still new at every start, so two such starts publish new keys under the same `kid`s;
// - RFC 9068 JWT access tokens (`typ` at+jwt) for the resource `urn:bank-api` (aud `bank-api`),
//   and for `urn:other-api` (aud `other-api`, to prove a wrong audience is refused);
// - `acr_values` loa1 and the PAPE multi-factor URI; `acr`, `amr` and `auth_time` in the ID
//   token and in the access tokens;
// - four public clients (PKCE S256, no client authentication), one per access-token alg;
// - DPoP (RFC 9449): proofs are optional for those clients (a proof on the token request binds
//   the access token: `token_type` DPoP, `cnf.jkt` in the JWT); a fifth public client
//   `interop-dpop` (ES256 tokens) has `dpop_bound_access_tokens` (RFC 9449 §5.2), so its
//   token requests must carry a proof, with a nonce the provider issued (`use_dpop_nonce` +
//   `DPoP-Nonce` first, RFC 9449 §8);
// - a non-interactive login for tests: GET /interaction/:uid completes the login with the first
//   supported `acr_values` entry (default loa1) and grants consent, answering 303;
// - with --spa-redirect URL, a sixth public client `interop-spa` for a browser SPA (the bank
//   demo's SPA on oidc-client-ts, tests/interop/spa/), whose redirect and post-logout redirect
//   URI is URL; the RP-Initiated Logout confirmation page is a plain form (the default one
//   loads a web font from the internet).
//
// Usage: node provider.mjs [--port N] [--generation G] [--fixed-kids] [--spa-redirect URL]
//        (or PROVIDER_PORT, KEY_GENERATION, FIXED_KIDS=1, SPA_REDIRECT_URI)

import * as crypto from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider, { errors, interactionPolicy } from 'oidc-provider';

export const MFA = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';
export const ACR_VALUES = ['loa1', MFA];
export const REDIRECT_URI = 'http://127.0.0.1:9/cb';
// client_id -> JWS alg of its access tokens and ID tokens.
export const CLIENTS = {
  'interop-rs256': 'RS256',
  'interop-es256': 'ES256',
  'interop-eddsa': 'EdDSA',
  // RFC 9864's fully-specified name for EdDSA over Ed25519.
  'interop-ed25519': 'Ed25519',
};
// RFC 9449 §5.2: the client whose token requests must carry a DPoP proof, and its tokens' alg.
export const DPOP_CLIENT = 'interop-dpop';
const DPOP_CLIENT_ALG = 'ES256';
const RESOURCES = {
  'urn:bank-api': { audience: 'bank-api', scope: 'accounts' },
  'urn:other-api': { audience: 'other-api', scope: 'accounts' },
};

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PROVIDER_PORT ?? '' },
    generation: { type: 'string', default: process.env.KEY_GENERATION ?? '1' },
    'fixed-kids': { type: 'boolean', default: process.env.FIXED_KIDS === '1' },
    'spa-redirect': { type: 'string', default: process.env.SPA_REDIRECT_URI ?? '' },
  },
});
export const SPA_CLIENT = 'interop-spa';
const spaRedirect = args['spa-redirect'];
if (spaRedirect && !/^http:\/\/127\.0\.0\.1:[0-9]+\/[^\s?#]*$/.test(spaRedirect)) {
  console.error('provider: --spa-redirect must be an http://127.0.0.1:PORT/ URL');
  process.exit(2);
}
const port = Number.parseInt(args.port, 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('provider: give --port N (or PROVIDER_PORT)');
  process.exit(2);
}
const generation = args.generation;
if (!/^[A-Za-z0-9_-]{1,32}$/.test(generation)) {
  console.error('provider: --generation must be 1-32 characters [A-Za-z0-9_-]');
  process.exit(2);
}
const fixedKids = args['fixed-kids'];
const issuer = `http://127.0.0.1:${port}`;

// New key material at every start; only the kid is fixed with --fixed-kids.
function jwk(type, options, alg) {
  const { privateKey } = crypto.generateKeyPairSync(type, options);
  const kid = fixedKids
    ? `fixed-${alg.toLowerCase()}`
    : `gen-${generation}-${alg.toLowerCase()}-${crypto.randomBytes(4).toString('hex')}`;
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

const keys = [
  jwk('rsa', { modulusLength: 2048 }, 'RS256'),
  jwk('ec', { namedCurve: 'P-256' }, 'ES256'),
  jwk('ed25519', {}, 'EdDSA'),
  jwk('ed25519', {}, 'Ed25519'),
];

// The JWS alg of a client's access tokens (RS256 for the SPA).
function tokenAlg(clientId) {
  if (clientId === DPOP_CLIENT) {
    return DPOP_CLIENT_ALG;
  }
  return CLIENTS[clientId] ?? 'RS256';
}

function acrFor(acrValues) {
  const requested = typeof acrValues === 'string' ? acrValues.split(' ').filter(Boolean) : [];
  return requested.find((v) => ACR_VALUES.includes(v)) ?? 'loa1';
}

// Step-up: an authorization request whose acr_values the current session does not satisfy
// asks for a new login (oidc-provider otherwise treats acr_values as voluntary).
const policy = interactionPolicy.base();
policy.get('login').checks.add(new interactionPolicy.Check(
  'acr_values_step_up',
  'the requested authentication context needs a new login',
  (ctx) => {
    const { oidc } = ctx;
    const requested = typeof oidc.params.acr_values === 'string'
      ? oidc.params.acr_values.split(' ').filter((v) => ACR_VALUES.includes(v))
      : [];
    if (!oidc.session.accountId || requested.length === 0 || requested.includes(oidc.acr)) {
      return interactionPolicy.Check.NO_NEED_TO_PROMPT;
    }
    return interactionPolicy.Check.REQUEST_PROMPT;
  },
));

const configuration = {
  clients: Object.entries(CLIENTS).map(([clientId, alg]) => ({
    client_id: clientId,
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
    id_token_signed_response_alg: alg,
  })).concat([{
    client_id: DPOP_CLIENT,
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
    id_token_signed_response_alg: DPOP_CLIENT_ALG,
    dpop_bound_access_tokens: true,
  }]).concat(spaRedirect ? [{
    client_id: SPA_CLIENT,
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [spaRedirect],
    post_logout_redirect_uris: [spaRedirect],
    id_token_signed_response_alg: 'RS256',
  }] : []),
  jwks: { keys },
  acrValues: ACR_VALUES,
  claims: { openid: ['sub', 'acr', 'amr', 'auth_time'] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  pkce: { required: () => true },
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
    Grant: 3600,
    IdToken: 3600,
    Interaction: 600,
    Session: 3600,
  },
  interactions: {
    policy,
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  features: {
    devInteractions: { enabled: false },
    // RFC 9449. Optional for clients without dpop_bound_access_tokens; the proofs of
    // interop-dpop must carry a nonce of the provider's (RFC 9449 §8), other clients' proofs
    // (the SPA's, if it sends any) need none. The secret of the (stateless) nonces is new at
    // every start.
    dPoP: {
      enabled: true,
      nonceSecret: crypto.randomBytes(32),
      requireNonce: (ctx) => ctx.oidc?.client?.clientId === DPOP_CLIENT,
      allowReplay: false,
    },
    rpInitiatedLogout: {
      enabled: true,
      // RP-Initiated Logout 1.0 §2: the end-user confirms; a plain page, nothing fetched.
      logoutSource: (ctx, form) => {
        ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Logout</title></head><body>
          <h1>Sign out?</h1>${form}
          <button id="logout-yes" type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
          <button id="logout-no" type="submit" form="op.logoutForm">No, stay signed in</button></body></html>`;
      },
      postLogoutSuccessSource: (ctx) => {
        ctx.body = '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Signed out</title></head><body><h1>Signed out</h1></body></html>';
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator, client) => {
        const rs = RESOURCES[resourceIndicator];
        if (!rs) {
          throw new errors.InvalidTarget();
        }
        return {
          ...rs,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: tokenAlg(client.clientId) } },
        };
      },
    },
  },
  // RFC 9068 §2.2.1: acr, amr and auth_time of the authentication behind the token.
  extraTokenClaims: (ctx, token) => {
    if (token.kind !== 'AccessToken') {
      return undefined;
    }
    const code = ctx?.oidc?.entities?.AuthorizationCode;
    if (!code) {
      return undefined;
    }
    return { acr: code.acr, amr: code.amr, auth_time: code.authTime };
  },
  findAccount: (ctx, sub) => ({
    accountId: sub,
    claims: () => ({ sub }),
  }),
  renderError: (ctx, out) => {
    ctx.type = 'application/json';
    ctx.body = out;
  },
};

const provider = new Provider(issuer, configuration);

// The non-interactive login and consent for tests.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(ctx.path);
  if (!match || ctx.method !== 'GET') {
    return next();
  }
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params } = details;
  let result;
  if (prompt.name === 'login') {
    const acr = acrFor(params.acr_values);
    result = {
      login: {
        accountId: 'interop-user',
        acr,
        amr: acr === MFA ? ['pwd', 'otp'] : ['pwd'],
        ts: Math.floor(Date.now() / 1000),
      },
    };
  } else if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) {
      grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    }
    if (missing.missingOIDCClaims) {
      grant.addOIDCClaims(missing.missingOIDCClaims);
    }
    if (missing.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    result = { consent: details.grantId ? {} : { grantId } };
  } else {
    ctx.status = 400;
    ctx.body = { error: 'unsupported_prompt', prompt: prompt.name };
    return undefined;
  }
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: true,
  });
  ctx.status = 303;
  ctx.set('Location', returnTo);
  ctx.body = '';
  return undefined;
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`provider: ${issuer} up (key generation ${generation}${fixedKids ? ', fixed kids' : ''}, kids ${keys.map((k) => k.kid).join(' ')})`);
});
const stop = () => {
  server.close(() => process.exit(0));
  // Keep-alive connections (the demo's key fetches) would hold the port otherwise.
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
