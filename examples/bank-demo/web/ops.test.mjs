// node --test examples/bank-demo/web/ (the /ops page's parser, totals and window)
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Window, parsePrometheus, seriesOf, totals } from './ops-model.mjs';

// What metrics-exporter-prometheus renders (a histogram without buckets is a summary).
const TEXT = `# TYPE stepup_decisions_total counter
stepup_decisions_total{outcome="refused",reason="step_up",error="none"} 3
stepup_decisions_total{outcome="refused",reason="missing_token",error="none"} 1
stepup_decisions_total{outcome="accepted",reason="ok",error="none"} 12

# TYPE stepup_challenges_total counter
stepup_challenges_total{route="/api/transfers",acr="http://schemas.openid.net/pape/policies/2007/06/multi-factor"} 3

# TYPE stepup_completions_total counter
stepup_completions_total{route="/api/transfers"} 1

# TYPE stepup_completion_seconds summary
stepup_completion_seconds{route="/api/transfers",quantile="0.5"} 41.5
stepup_completion_seconds{route="/api/transfers",quantile="1"} 41.5
stepup_completion_seconds_sum{route="/api/transfers"} 41.5
stepup_completion_seconds_count{route="/api/transfers"} 1
`;

test('parsePrometheus reads names, labels (with escapes) and values; skips comments and junk', () => {
  const s = parsePrometheus(`# HELP x y\nx 1\ny{a="q\\"uote",b="back\\\\slash",c="new\\nline"} 2.5 1700000000000\nz{a="1"} +Inf\n{bad} 1\nw{a=1} 2\nv\n`);
  assert.deepEqual(s, [
    { name: 'x', labels: {}, value: 1 },
    { name: 'y', labels: { a: 'q"uote', b: 'back\\slash', c: 'new\nline' }, value: 2.5 },
    { name: 'z', labels: { a: '1' }, value: Infinity },
  ]);
});

test('totals: refusals by reason, challenges, completions and completion seconds', () => {
  const t = totals(parsePrometheus(TEXT));
  assert.deepEqual(t.decisions, { accepted: 12, refused: 4 });
  assert.deepEqual(t.refusals, { step_up: 3, missing_token: 1 });
  assert.equal(t.challenges.total, 3);
  assert.deepEqual(t.completions, { total: 1, byRoute: { '/api/transfers': 1 } });
  assert.equal(t.completionSeconds.count, 1);
  assert.equal(t.completionSeconds.byRoute['/api/transfers'].quantiles['0.5'], 41.5);
  assert.deepEqual(seriesOf(t), { 'refused: step_up': 3, 'refused: missing_token': 1, challenges: 3, completions: 1 });
});

test('Window keeps 10 minutes, derives completion durations from _sum/_count growth', () => {
  const w = new Window(600_000);
  const none = totals([]);
  const one = totals(parsePrometheus(TEXT));
  w.push(0, none);
  w.push(2_000, one);
  assert.deepEqual(w.durations, [{ at: 2_000, seconds: 41.5, n: 1 }]);
  assert.deepEqual(w.series().completions, [{ at: 0, value: 0 }, { at: 2_000, value: 1 }]);
  assert.equal(w.growth(60_000).completions, 1);
  for (let at = 4_000; at <= 700_000; at += 2_000) w.push(at, one);
  assert.ok(w.samples[0].at <= 700_000 - 600_000 && w.samples[1].at > 700_000 - 600_000);
  assert.equal(w.durations.length, 0);
  assert.equal(w.growth(60_000).completions, 0);
});
