// /ops: polls /metrics (same origin) every 2 s, parses the Prometheus text itself
// (ops-model.mjs), keeps the last 10 minutes of samples in memory and draws them as SVG.
// Everything comes from the demo binary; no request leaves its origin.
//
// Machine-readable for tests (and documented in ops.html):
//   document.querySelector('#ops-data').dataset
//     .completions  stepup_completions_total, all routes
//     .challenges   stepup_challenges_total, all routes and acr values
//     .refusals     stepup_decisions_total{outcome="refused"}, all reasons
//     .accepted     stepup_decisions_total{outcome="accepted"}
//     .samples      samples in the window
//     .drawn        "true" once the chart plotted at least one sample
//   document.querySelector('#ops-json').textContent: the latest totals() as JSON.

import { WINDOW_MS, Window, parsePrometheus, seriesOf, totals } from './ops-model.mjs';

const POLL_MS = 2000;
const SVG = 'http://www.w3.org/2000/svg';
const W = 900;
const H = 260;
const PAD = { left: 48, right: 16, top: 12, bottom: 28 };
const FIXED = { challenges: '#1f5fbf', completions: '#1d6b3a' };
const PALETTE = ['#a3261b', '#c2410c', '#7e22ce', '#b45309', '#be185d', '#0f766e', '#4d7c0f', '#57534e', '#9f1239'];

const $ = (id) => document.getElementById(id);
const window10 = new Window(WINDOW_MS);
const colors = new Map();

function colorOf(name) {
  if (FIXED[name]) return FIXED[name];
  if (!colors.has(name)) colors.set(name, PALETTE[colors.size % PALETTE.length]);
  return colors.get(name);
}

function el(name, attrs = {}, text = null) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== null) e.textContent = text;
  return e;
}

/** A rounded-up axis maximum: 1, 2, 5 × 10^n. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v) ?? v;
}

/** An empty chart: axes, grid, time labels; returns {svg, x, y}. */
function frame(now, yMax, unit, label) {
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, class: 'chart' });
  const x = (at) => PAD.left + ((at - (now - WINDOW_MS)) / WINDOW_MS) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (v / yMax) * (H - PAD.top - PAD.bottom);
  for (const f of [0, 0.5, 1]) {
    const v = yMax * f;
    svg.append(el('line', { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: 'grid' }));
    svg.append(el('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, `${Number.isInteger(v) ? v : v.toFixed(2)}${unit}`));
  }
  for (const m of [10, 8, 6, 4, 2, 0]) {
    const at = now - m * 60_000;
    svg.append(el('text', { x: x(at), y: H - 8, 'text-anchor': 'middle', class: 'tick' }, m === 0 ? 'now' : `−${m} min`));
  }
  return { svg, x, y };
}

function drawTotals(now) {
  const series = window10.series();
  const names = Object.keys(series).sort((a, b) => (a.startsWith('refused') ? 0 : 1) - (b.startsWith('refused') ? 0 : 1) || a.localeCompare(b));
  const max = niceMax(Math.max(0, ...names.flatMap((n) => series[n].map((p) => p.value))));
  const { svg, x, y } = frame(now, max, '', 'Totals of refusals by reason, challenges and completions over the last 10 minutes');
  let points = 0;
  for (const n of names) {
    const pts = series[n];
    // Counters change between samples: steps, not slopes.
    const d = pts.map((p, i) => (i === 0 ? `M${x(Math.max(p.at, now - WINDOW_MS))},${y(p.value)}` : `H${x(p.at)}V${y(p.value)}`)).join('');
    svg.append(el('path', { d: `${d}H${x(now)}`, fill: 'none', stroke: colorOf(n), 'stroke-width': 2, 'data-series': n }));
    const last = pts.at(-1);
    if (last) {
      const dot = el('circle', { cx: x(now), cy: y(last.value), r: 4, fill: colorOf(n) });
      dot.append(el('title', {}, `${n}: ${last.value}`));
      svg.append(dot);
    }
    points += pts.length;
  }
  $('chart').replaceChildren(svg);
  $('legend').replaceChildren(
    ...names.map((n) => {
      const li = document.createElement('li');
      const sw = el('svg', { width: 14, height: 14, 'aria-hidden': 'true' });
      sw.append(el('rect', { width: 14, height: 14, rx: 3, fill: colorOf(n) }));
      li.append(sw, ` ${n}: ${series[n].at(-1)?.value ?? 0}`);
      return li;
    }),
  );
  return points;
}

function drawDurations(now, t) {
  const ds = window10.durations;
  const max = niceMax(Math.max(0, ...ds.map((d) => d.seconds)));
  const { svg, x, y } = frame(now, max, ' s', 'Step-up completion durations over the last 10 minutes');
  for (const d of ds) {
    const dot = el('circle', { cx: x(d.at), cy: y(d.seconds), r: 4 + Math.min(d.n, 5), fill: FIXED.completions });
    dot.append(el('title', {}, `${d.n} completion${d.n === 1 ? '' : 's'}, ${d.seconds.toFixed(1)} s${d.n === 1 ? '' : ' on average'}`));
    svg.append(dot);
  }
  $('durations-chart').replaceChildren(svg);
  const { count, sum } = t.completionSeconds;
  const last = ds.slice(-5).reverse().map((d) => `${d.seconds.toFixed(1)} s${d.n > 1 ? ` (mean of ${d.n})` : ''}`);
  const quantiles = Object.entries(t.completionSeconds.byRoute)
    .map(([route, r]) => {
      const q = (k) => (r.quantiles[k] === undefined ? '–' : `${r.quantiles[k].toFixed(1)} s`);
      return `${route}: median ${q('0.5')}, p90 ${q('0.9')}, max ${q('1')} (the exporter's recent window)`;
    });
  $('durations').textContent = count === 0
    ? 'No completion yet.'
    : [`${count} completion${count === 1 ? '' : 's'}, ${(sum / count).toFixed(1)} s on average since the server started.`,
        last.length > 0 ? `Seen by this page, latest first: ${last.join(', ')}.` : 'None since this page opened.',
        ...quantiles].join(' ');
}

function row(name, total, minute) {
  const tr = document.createElement('tr');
  for (const v of [name, total, minute]) {
    const td = document.createElement('td');
    td.textContent = String(v);
    tr.append(td);
  }
  return tr;
}

function drawTable(t) {
  const growth = window10.growth(60_000);
  const rows = [row('accepted', t.decisions.accepted, '')];
  for (const [reason, v] of Object.entries(t.refusals).sort()) rows.push(row(`refused: ${reason}`, v, growth[`refused: ${reason}`] ?? 0));
  rows.push(row('step-up challenges', t.challenges.total, growth.challenges ?? 0));
  for (const [k, v] of Object.entries(t.challenges.byRouteAcr).sort()) rows.push(row(`  challenges ${k}`, v, ''));
  rows.push(row('step-up completions', t.completions.total, growth.completions ?? 0));
  for (const [k, v] of Object.entries(t.completions.byRoute).sort()) rows.push(row(`  completions ${k}`, v, ''));
  $('totals').replaceChildren(...rows);
}

function publish(t, points) {
  const data = $('ops-data').dataset;
  data.completions = String(t.completions.total);
  data.challenges = String(t.challenges.total);
  data.refusals = String(t.decisions.refused);
  data.accepted = String(t.decisions.accepted);
  data.samples = String(window10.samples.length);
  data.drawn = String(points > 0);
  $('ops-json').textContent = JSON.stringify(t, null, 2);
}

async function poll() {
  try {
    const res = await fetch('/metrics', { cache: 'no-store' });
    const text = await res.text();
    if (!res.ok) {
      $('ops-status').textContent = `/metrics answered HTTP ${res.status}: ${text.trim().slice(0, 200)}`;
      return;
    }
    const now = Date.now();
    const t = totals(parsePrometheus(text));
    window10.push(now, t);
    const points = drawTotals(now);
    drawDurations(now, t);
    drawTable(t);
    publish(t, points);
    const s = seriesOf(t);
    $('ops-status').textContent = `Updated ${new Date(now).toLocaleTimeString()}: ${t.decisions.refused} refusals, ${s.challenges} challenges, ${s.completions} completions.`;
  } catch (e) {
    $('ops-status').textContent = `Could not read /metrics: ${e?.message ?? e}`;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
