// Run by ci.sh from a scratch folder where the `npm pack` tarball was installed: imports the
// package by its name, as a user would, and answers one step-up against an HTTP server on
// 127.0.0.1. Prints PASS/FAIL lines; exits non-zero on any failure.
import { createServer } from 'node:http';

import * as core from 'stepup-fetch';
import * as oidc from 'stepup-fetch/oidc';
import * as octs from 'stepup-fetch/oidc-client-ts';

let failed = 0;
const check = (name, ok) => {
  console.log(`${ok ? 'PASS' : 'FAIL'} installed: ${name}`);
  if (!ok) failed++;
};

check('stepup-fetch exports createStepUpFetch, resumePending, parseChallenges, StepUpError',
  ['createStepUpFetch', 'resumePending', 'parseChallenges'].every((n) => typeof core[n] === 'function') && new core.StepUpError('x', { reason: 'r' }) instanceof Error);
check('stepup-fetch/oidc exports createOidcClient and oidcAdapter', typeof oidc.createOidcClient === 'function' && typeof oidc.oidcAdapter === 'function');
check('stepup-fetch/oidc-client-ts exports oidcClientTsAdapter', typeof octs.oidcClientTsAdapter === 'function');

const server = createServer((req, res) => {
  const ok = req.headers.authorization === 'Bearer new';
  res.writeHead(ok ? 200 : 401, ok ? {} : { 'WWW-Authenticate': 'Bearer error="insufficient_user_authentication", acr_values="mfa", max_age=60' });
  res.end(ok ? 'done' : '');
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
let token = 'old';
let asked = null;
const apiFetch = core.createStepUpFetch({ getAccessToken: () => token, reauthenticate: async (s) => { asked = s; token = 'new'; } });
const res = await apiFetch(`http://127.0.0.1:${server.address().port}/`, { method: 'POST', body: 'x' });
check('a step-up through the installed package: one reauthenticate, the retry answered 200', res.status === 200 && (await res.text()) === 'done' && asked?.maxAge === 60 && asked?.acrValues[0] === 'mfa');
server.close();
process.exitCode = failed ? 1 : 0;
