// The size of the core (src/index.js, everything but the adapters and DPoP, which are the
// separate entry points stepup-fetch/oidc, stepup-fetch/oidc-client-ts and stepup-fetch/dpop):
// minified by esbuild, then
// gzipped by node's zlib at level 9.
//
//   node scripts/size.mjs            prints the figures
//   node scripts/size.mjs --check    also fails when the core is 5 KB (5120 bytes) or more, or
//                                    when README.md does not state the measured figure
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import { buildSync } from 'esbuild';

const HERE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LIMIT = 5 * 1024;

function measure(entry, external = []) {
  const out = buildSync({ entryPoints: [path.join(HERE, entry)], bundle: true, minify: true, format: 'esm', target: 'es2022', write: false, external, logLevel: 'silent' });
  const code = out.outputFiles[0].contents;
  return { minified: code.length, gzip: gzipSync(code, { level: 9 }).length };
}

const core = measure('src/index.js');
const kb = (core.gzip / 1024).toFixed(1);
console.log(`core (src/index.js): ${core.minified} bytes minified, ${core.gzip} bytes minified+gzip (${kb} KB)`);
for (const entry of ['src/oidc.js', 'src/oidc-client-ts.js', 'src/dpop.js']) {
  const m = measure(entry, ['./index.js', './dpop.js']);
  console.log(`adapter ${entry} (without the core): ${m.minified} bytes minified, ${m.gzip} bytes minified+gzip`);
}

if (process.argv.includes('--check')) {
  let failed = 0;
  if (core.gzip >= LIMIT) {
    console.log(`FAIL the core is ${core.gzip} bytes minified+gzip, not under ${LIMIT}`);
    failed++;
  } else {
    console.log(`PASS the core is under 5 KB minified+gzip (${core.gzip} < ${LIMIT})`);
  }
  const readme = readFileSync(path.join(HERE, 'README.md'), 'utf8');
  if (readme.includes(`${kb} KB`) && readme.includes('node scripts/size.mjs')) {
    console.log(`PASS README.md states the measured ${kb} KB and the command`);
  } else {
    console.log(`FAIL README.md must state the measured figure "${kb} KB" and the command "node scripts/size.mjs"`);
    failed++;
  }
  process.exitCode = failed ? 1 : 0;
}
