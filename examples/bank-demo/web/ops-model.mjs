// What /ops computes, without the DOM (node --test examples/bank-demo/web/ runs ops.test.mjs):
// a small parser of the Prometheus text exposition format, the totals the page shows, and the
// rolling window of samples it plots.

/** How long samples are kept: the chart spans this much time. */
export const WINDOW_MS = 10 * 60 * 1000;

/**
 * Parses Prometheus text (`name{label="value",…} value [timestamp]` lines; `#` lines and blank
 * lines skipped) into `[{name, labels, value}]`. Label values may escape `\\`, `\"` and `\n`.
 * Lines that do not parse are skipped.
 */
export function parsePrometheus(text) {
  const out = [];
  for (const raw of String(text).split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const sample = parseLine(line);
    if (sample) out.push(sample);
  }
  return out;
}

function parseLine(line) {
  const name = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(line)?.[0];
  if (!name) return null;
  let i = name.length;
  const labels = {};
  if (line[i] === '{') {
    i += 1;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i += 1;
      if (line[i] === '}') {
        i += 1;
        break;
      }
      const key = /^[A-Za-z_][A-Za-z0-9_]*/.exec(line.slice(i))?.[0];
      if (!key) return null;
      i += key.length;
      while (line[i] === ' ') i += 1;
      if (line[i] !== '=') return null;
      i += 1;
      while (line[i] === ' ') i += 1;
      if (line[i] !== '"') return null;
      i += 1;
      let value = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) return null;
        i += 1;
        if (c === '"') break;
        if (c === '\\') {
          const e = line[i];
          i += 1;
          value += e === 'n' ? '\n' : e === undefined ? '' : e;
        } else {
          value += c;
        }
      }
      labels[key] = value;
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  if (rest.length < 1 || rest[0] === '') return null;
  const value = parseValue(rest[0]);
  if (value === null) return null;
  return { name, labels, value };
}

function parseValue(s) {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const v = Number(s);
  return Number.isNaN(v) ? null : v;
}

const add = (obj, key, v) => {
  obj[key] = (obj[key] ?? 0) + v;
};

/**
 * The totals the page shows (and exposes in `#ops-json`), from parsed samples:
 *
 *   decisions: { accepted, refused }            stepup_decisions_total by outcome
 *   refusals: { <reason>: n }                    stepup_decisions_total{outcome="refused"} by reason
 *   challenges: { total, byRouteAcr: { "<route> <acr>": n } }   stepup_challenges_total
 *   completions: { total, byRoute: { <route>: n } }             stepup_completions_total
 *   completionSeconds: { count, sum, byRoute: { <route>: { count, sum, quantiles: { "0.5": s, … } } } }
 *                                                 stepup_completion_seconds (a summary: the
 *                                                 exporter renders quantiles, _sum and _count)
 */
export function totals(samples) {
  const t = {
    decisions: { accepted: 0, refused: 0 },
    refusals: {},
    challenges: { total: 0, byRouteAcr: {} },
    completions: { total: 0, byRoute: {} },
    completionSeconds: { count: 0, sum: 0, byRoute: {} },
  };
  const seconds = (route) => {
    t.completionSeconds.byRoute[route] ??= { count: 0, sum: 0, quantiles: {} };
    return t.completionSeconds.byRoute[route];
  };
  for (const { name, labels, value } of samples) {
    if (!Number.isFinite(value)) continue;
    switch (name) {
      case 'stepup_decisions_total':
        if (labels.outcome === 'accepted') t.decisions.accepted += value;
        if (labels.outcome === 'refused') {
          t.decisions.refused += value;
          add(t.refusals, labels.reason ?? 'unknown', value);
        }
        break;
      case 'stepup_challenges_total':
        t.challenges.total += value;
        add(t.challenges.byRouteAcr, `${labels.route ?? 'unlabeled'} ${labels.acr ?? 'none'}`, value);
        break;
      case 'stepup_completions_total':
        t.completions.total += value;
        add(t.completions.byRoute, labels.route ?? 'unlabeled', value);
        break;
      case 'stepup_completion_seconds':
        if (labels.quantile !== undefined) seconds(labels.route ?? 'unlabeled').quantiles[labels.quantile] = value;
        break;
      case 'stepup_completion_seconds_sum':
        t.completionSeconds.sum += value;
        seconds(labels.route ?? 'unlabeled').sum += value;
        break;
      case 'stepup_completion_seconds_count':
        t.completionSeconds.count += value;
        seconds(labels.route ?? 'unlabeled').count += value;
        break;
      default:
    }
  }
  return t;
}

/** The series plotted: name → value, from totals (one per refusal reason, challenges, completions). */
export function seriesOf(t) {
  const s = {};
  for (const [reason, v] of Object.entries(t.refusals)) s[`refused: ${reason}`] = v;
  s.challenges = t.challenges.total;
  s.completions = t.completions.total;
  return s;
}

/**
 * The rolling window: samples `{at, totals}` of the last WINDOW_MS, and the completion
 * durations seen (`{at, seconds, n}`: the mean of the `n` completions between two polls, from the
 * growth of `_sum` and `_count`).
 */
export class Window {
  constructor(spanMs = WINDOW_MS) {
    this.spanMs = spanMs;
    this.samples = [];
    this.durations = [];
  }

  push(at, t) {
    const prev = this.samples.at(-1)?.totals;
    if (prev) {
      const dn = t.completionSeconds.count - prev.completionSeconds.count;
      const ds = t.completionSeconds.sum - prev.completionSeconds.sum;
      if (dn > 0) this.durations.push({ at, seconds: ds / dn, n: dn });
    }
    this.samples.push({ at, totals: t });
    const from = at - this.spanMs;
    // One sample older than the window stays: the lines start at the window's left edge.
    while (this.samples.length > 2 && this.samples[1].at <= from) this.samples.shift();
    while (this.durations.length > 0 && this.durations[0].at < from) this.durations.shift();
  }

  /** name → [{at, value}] over the window, every name seen in any sample (0 before it appeared). */
  series() {
    const names = new Set();
    for (const { totals: t } of this.samples) for (const n of Object.keys(seriesOf(t))) names.add(n);
    const out = {};
    for (const n of names) out[n] = this.samples.map(({ at, totals: t }) => ({ at, value: seriesOf(t)[n] ?? 0 }));
    return out;
  }

  /** Growth of each series over the last `ms` (counters: events in that time). */
  growth(ms = 60_000) {
    const last = this.samples.at(-1);
    if (!last) return {};
    const base = this.samples.find((s) => s.at >= last.at - ms) ?? last;
    const now = seriesOf(last.totals);
    const then = seriesOf(base.totals);
    return Object.fromEntries(Object.entries(now).map(([n, v]) => [n, v - (then[n] ?? 0)]));
  }
}
