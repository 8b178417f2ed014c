// Type-checked by ci.sh (tsc --noEmit, strict, NodeNext) against the .d.ts files of the
// installed tarball: the public contract as a TypeScript user sees it.
import {
  createStepUpFetch,
  parseChallenges,
  resumePending,
  StepUpError,
  type Challenge,
  type StepUpRequest,
} from 'stepup-fetch';
import { createOidcClient, oidcAdapter } from 'stepup-fetch/oidc';
import { idTokenClaims, oidcClientTsAdapter } from 'stepup-fetch/oidc-client-ts';
import { createDpop, generateDpopKeyPair, type Dpop } from 'stepup-fetch/dpop';
// The real class (ci.sh maps this to the package's devDependency): the adapter accepts it.
import { IndexedDbDPoPStore, UserManager } from 'oidc-client-ts';

const storage = { getItem: (_k: string): string | null => null, setItem: (_k: string, _v: string) => {}, removeItem: (_k: string) => {} };

const apiFetch: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response> = createStepUpFetch({
  getAccessToken: async () => 'token',
  reauthenticate: async (request: StepUpRequest) => {
    const reason: 'insufficient_user_authentication' | 'insufficient_scope' | 'insufficient_claims' = request.reason;
    const acr: string[] = request.acrValues;
    const maxAge: number | null = request.maxAge;
    const claims: string | null = request.claims;
    const c: Challenge = request.challenge;
    void [reason, acr, maxAge, claims, c];
  },
  storage,
});

export async function use(): Promise<void> {
  const res: Response = await apiFetch('/api/transfers', { method: 'POST', body: '{}' });
  const resumed: Response | null = await resumePending({ getAccessToken: () => 'token', storage });
  const [first]: Challenge[] = parseChallenges('Bearer realm="x"');
  try {
    void [res, resumed, first.params['realm']];
  } catch (e) {
    if (e instanceof StepUpError) {
      const s: number | null = e.status;
      const r: string = e.reason;
      void [s, r, e.challenge?.scheme];
    }
  }
  const client = createOidcClient({ issuer: 'https://op', clientId: 'c', redirectUri: 'https://app/', storage });
  createStepUpFetch({ getAccessToken: () => null, ...oidcAdapter(client), storage });
  const um = {
    settings: { scope: 'openid', extraQueryParams: { resource: 'urn:x' } },
    getUser: async () => ({ access_token: 'a', id_token: 'x.y.z', profile: {} }),
    signinRedirect: async () => {},
    signinPopup: async () => ({ access_token: 'a' }),
  };
  createStepUpFetch({ ...oidcClientTsAdapter(um, { popup: true }) });
  void idTokenClaims(await um.getUser())?.['acr'];
  const real = new UserManager({ authority: 'https://op', client_id: 'c', redirect_uri: 'https://app/' });
  createStepUpFetch({ ...oidcClientTsAdapter(real), storage });
  void idTokenClaims(await real.getUser());

  // DPoP: a key pair made by the package or given by the app (e.g. read from IndexedDB).
  const keyPair: CryptoKeyPair = await generateDpopKeyPair();
  const dpop: Dpop = createDpop({ keyPair: async () => keyPair });
  const proof: string = await dpop.proof('POST', 'https://api/x', 'token');
  const jkt: string = await dpop.thumbprint();
  const bound = createOidcClient({ issuer: 'https://op', clientId: 'c', redirectUri: 'https://app/', storage, dpop });
  createStepUpFetch({ getAccessToken: () => 'token', ...oidcAdapter(bound), storage });
  await resumePending({ getAccessToken: () => 'token', storage, dpop: createDpop() });
  const withDpop = new UserManager({ authority: 'https://op', client_id: 'c', redirect_uri: 'https://app/', dpop: { store: new IndexedDbDPoPStore() } });
  createStepUpFetch({ ...oidcClientTsAdapter(withDpop), storage });
  void [proof, jkt];
}
