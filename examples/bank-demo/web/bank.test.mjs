// node --test examples/bank-demo/web/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { stepUpRequest } from '../../../clients/stepup-fetch/src/index.js';
import {
  MFA_ACR,
  MAX_AMOUNT_CENTS,
  challengeSummary,
  checkTransfer,
  describeStepUp,
  describeTransfer,
  fieldErrorText,
  formatCents,
  loginErrorMessage,
  normalizeIban,
  parseAmount,
  parseBalance,
} from './bank.mjs';

// ---------------------------------------------------------------------------------------------
// What a step-up asks

// The demo server's challenge, read by the package the SPA uses (clients/stepup-fetch).
const challenged = (header) => stepUpRequest(new Response(null, { status: 401, headers: { 'WWW-Authenticate': header } }));
const demoChallenge = challenged(
  `Bearer realm="bank", error="insufficient_user_authentication", error_description="authentication too weak or too old", ` +
    `acr_values="${MFA_ACR}", max_age=300, resource_metadata="http://127.0.0.1:8080/.well-known/oauth-protected-resource"`,
);

test('the DPoP step-up challenge (RFC 9449 §7.1) of a DPoP request: summarised the same way, scheme DPoP', () => {
  const dpop = stepUpRequest(
    new Response(null, {
      status: 401,
      headers: {
        'WWW-Authenticate': `DPoP error="insufficient_user_authentication", error_description="authentication too weak or too old", acr_values="${MFA_ACR}", max_age=300, algs="ES256 ES384 EdDSA RS256 PS256"`,
      },
    }),
    {},
    'DPoP',
  );
  assert.deepEqual(challengeSummary(dpop), { scheme: 'DPoP', error: 'insufficient_user_authentication', acr_values: [MFA_ACR], max_age: 300 });
  assert.equal(describeStepUp(dpop), describeStepUp(demoChallenge));
});

test('challenge summary: scheme, error, acr_values, max_age and nothing else', () => {
  assert.deepEqual(challengeSummary(demoChallenge), {
    scheme: 'Bearer',
    error: 'insufficient_user_authentication',
    acr_values: [MFA_ACR],
    max_age: 300,
  });
  assert.deepEqual(challengeSummary(challenged('Bearer error="insufficient_user_authentication"')), {
    scheme: 'Bearer',
    error: 'insufficient_user_authentication',
    acr_values: [],
    max_age: null,
  });
});

test('challenge summary of an insufficient_scope names the scopes', () => {
  const s = stepUpRequest(new Response(null, { status: 403, headers: { 'WWW-Authenticate': 'Bearer error="insufficient_scope", scope="accounts"' } }));
  assert.deepEqual(challengeSummary(s), { scheme: 'Bearer', error: 'insufficient_scope', acr_values: [], max_age: null, scope: ['accounts'] });
  assert.equal(describeStepUp(s), 'more permissions (accounts)');
  assert.equal(describeStepUp({ reason: 'insufficient_claims' }), "a sign-in that meets the bank's conditions");
});

test('step-up described for people', () => {
  assert.equal(describeStepUp(demoChallenge), `multi-factor (acr ${MFA_ACR}), at most 300 s old`);
  assert.equal(describeStepUp({ acrValues: [MFA_ACR, 'loa3'], maxAge: null }), `one of multi-factor (acr ${MFA_ACR}), acr loa3`);
  assert.equal(describeStepUp({ acrValues: [], maxAge: 60 }), 'a new sign-in, at most 60 s old');
  assert.equal(describeStepUp({ acrValues: ['gold'], maxAge: 0 }), 'acr gold, made just now');
});

// ---------------------------------------------------------------------------------------------
// The bank's input rules

test('amounts: the bank\'s rule (ledger::parse_amount and its test vectors)', () => {
  assert.deepEqual(parseAmount('25.00'), { cents: 2500 });
  assert.deepEqual(parseAmount('25'), { cents: 2500 });
  assert.deepEqual(parseAmount('0.5'), { cents: 50 });
  assert.deepEqual(parseAmount('0.01'), { cents: 1 });
  assert.deepEqual(parseAmount('1000000000.00'), { cents: MAX_AMOUNT_CENTS });
  assert.deepEqual(parseAmount('0012.30'), { cents: 1230 });
  for (const bad of ['0', '0.00', '-1', '1.234', 'abc', '', '.5', '5.', '1e3', ' 5', '99999999999', '1000000000.01', '9999999999', '1,5', '+5', '5.0.0', '٣']) {
    assert.equal(typeof parseAmount(bad).error, 'string', JSON.stringify(bad));
    assert.equal(parseAmount(bad).cents, undefined, JSON.stringify(bad));
  }
  assert.match(parseAmount('1.234').error, /2 decimals/);
  assert.match(parseAmount('0').error, /above zero/);
  assert.equal(typeof parseAmount(undefined).error, 'string');
});

test('balances and cents as the bank writes them', () => {
  assert.equal(parseBalance('1000.00'), 100000);
  assert.equal(parseBalance('0.00'), 0);
  assert.equal(parseBalance('-5.10'), -510);
  assert.equal(parseBalance(' 975.00 '), 97500);
  for (const bad of ['', '1000', '1.5', 'abc', null, undefined]) assert.equal(parseBalance(bad), null, String(bad));
  assert.equal(formatCents(2500), '25.00');
  assert.equal(formatCents(5), '0.05');
  assert.equal(formatCents(-510), '-5.10');
  assert.equal(formatCents(MAX_AMOUNT_CENTS), '1000000000.00');
});

test('IBANs: the bank\'s rule (ledger::normalize_iban)', () => {
  assert.deepEqual(normalizeIban('DE89 3704 0044 0532 0130 00'), { iban: 'DE89370400440532013000' });
  assert.deepEqual(normalizeIban('de89370400440532013000'), { iban: 'DE89370400440532013000' });
  assert.deepEqual(normalizeIban('GB82 WEST 1234 5698 7654 32'), { iban: 'GB82WEST12345698765432' });
  assert.match(normalizeIban('DE88370400440532013000').error, /check digit/);
  for (const bad of ['12345', '', 'DE89-3704-0044-0532-0130-00', 'DE8937040044053201300ß', 'DE89\t370400440532013000']) {
    assert.equal(typeof normalizeIban(bad).error, 'string', JSON.stringify(bad));
  }
});

test('a transfer is checked before it is sent', () => {
  const known = { balance: '1000.00', account: 'DE75512108001245126199' };
  assert.equal(checkTransfer({ to: 'DE89370400440532013000', amount: '25.00' }, known), null);
  assert.equal(checkTransfer({ to: 'DE89370400440532013000', amount: '1000' }, known), null, 'the whole balance may go');
  assert.deepEqual(checkTransfer({ to: 'DE89370400440532013000', amount: '1000.01' }, known), {
    field: 'amount',
    message: 'This is more than your balance of 1000.00 EUR.',
  });
  assert.equal(checkTransfer({ to: 'DE89370400440532013000', amount: '1.234' }, known).field, 'amount');
  assert.equal(checkTransfer({ to: 'DE88370400440532013000', amount: '25.00' }, known).field, 'to');
  assert.deepEqual(checkTransfer({ to: 'de75 5121 0800 1245 1261 99', amount: '1' }, known), { field: 'to', message: 'This is your own account.' });
  // Nothing known about the balance: only the rules.
  assert.equal(checkTransfer({ to: 'DE89370400440532013000', amount: '5000' }, { balance: '' }), null);
  assert.equal(checkTransfer({ to: 'DE89370400440532013000', amount: '5000' }), null);
  assert.equal(checkTransfer({ to: 'DE89370400440532013000', amount: '0.01' }, { balance: '0.00' }).field, 'amount');
});

// ---------------------------------------------------------------------------------------------
// Messages

test('field errors name the field once', () => {
  // The bank's own descriptions (examples/bank-demo/src/lib.rs and ledger.rs).
  assert.equal(fieldErrorText('amount', 'amount must have at most two decimals'), 'The amount must have at most two decimals.');
  assert.equal(fieldErrorText('amount', 'amount must be a positive decimal number such as "25.00"'), 'The amount must be a positive decimal number such as "25.00".');
  assert.equal(fieldErrorText('amount', 'amount is above the balance'), 'The amount is above the balance.');
  assert.equal(fieldErrorText('to', 'to is your own account'), 'The recipient IBAN is your own account.');
  assert.equal(fieldErrorText('to', 'to must be an IBAN such as DE89370400440532013000'), 'The recipient IBAN must be an IBAN such as DE89370400440532013000.');
  // A description that does not start with the field's name is kept as it is.
  assert.equal(fieldErrorText('amount', 'too many requests.'), 'Too many requests.');
  assert.equal(fieldErrorText('today', 'today is not a field'), 'Today is not a field.');
  assert.equal(fieldErrorText(undefined, 'the body is not a JSON object'), 'The body is not a JSON object.');
  assert.equal(fieldErrorText('amount', 'amounts differ'), 'Amounts differ.');
});

const pendingTransfer = { to: 'DE89370400440532013000', amount: '25', idempotencyKey: 'k' };

test('a cancelled step-up says the transfer was not sent', () => {
  assert.equal(describeTransfer(pendingTransfer), 'the transfer of 25.00 EUR to DE89370400440532013000');
  assert.equal(
    loginErrorMessage('access_denied', 'the user cancelled', { stepUp: true, transfer: pendingTransfer }),
    'Second factor cancelled: the transfer of 25.00 EUR to DE89370400440532013000 was not sent.',
  );
  assert.equal(loginErrorMessage('access_denied', null, { stepUp: true }), 'Second factor cancelled.');
  assert.equal(loginErrorMessage('access_denied', 'the user cancelled'), 'Login cancelled: you are not logged in.');
  assert.equal(loginErrorMessage('login_required', 'x'), 'You need to log in again.');
  assert.equal(
    loginErrorMessage('server_error', 'the provider broke.', { stepUp: true, transfer: pendingTransfer }),
    'The stronger sign-in did not complete (the provider broke): the transfer of 25.00 EUR to DE89370400440532013000 was not sent.',
  );
  assert.equal(loginErrorMessage('temporarily_unavailable', ''), 'Login did not complete (temporarily_unavailable).');
});

test('the SPA writes one quote style: straight ASCII quotes or none', () => {
  for (const file of ['app.mjs', 'bank.mjs', 'login.mjs', 'index.html']) {
    const text = readFileSync(new URL(file, import.meta.url), 'utf8');
    assert.doesNotMatch(text, /[\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u00ab\u00bb]/, `${file} has typographic quotes`);
  }
});
