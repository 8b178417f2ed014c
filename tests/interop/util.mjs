// Small helpers for run.sh, so that it needs nothing but bash, node and cargo.
//
//   node util.mjs free-ports N            N distinct free TCP ports on 127.0.0.1, one a line
//   node util.mjs wait URL SECONDS PID    poll URL until it answers 200; fail if PID dies first
//   node util.mjs target-dir PACKAGE...   read `cargo metadata` JSON on stdin, print
//                                         target_directory; fail if a PACKAGE is no member

import * as net from 'node:net';

const [cmd, ...rest] = process.argv.slice(2);

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function main() {
  switch (cmd) {
    case 'free-ports': {
      const n = Number.parseInt(rest[0] ?? '1', 10);
      const ports = new Set();
      while (ports.size < n) {
        ports.add(await freePort());
      }
      console.log([...ports].join('\n'));
      return 0;
    }
    case 'wait': {
      const [url, seconds, pid] = rest;
      const deadline = Date.now() + Number.parseFloat(seconds) * 1000;
      let last = 'no answer yet';
      while (Date.now() < deadline) {
        if (pid && !alive(Number.parseInt(pid, 10))) {
          console.error(`wait: process ${pid} exited before ${url} answered`);
          return 1;
        }
        try {
          const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
          if (res.status === 200) {
            return 0;
          }
          last = `status ${res.status}`;
        } catch (e) {
          last = e.cause?.code ?? e.message;
        }
        await new Promise((r) => { setTimeout(r, 200); });
      }
      console.error(`wait: ${url} not ready after ${seconds} s (${last})`);
      return 1;
    }
    case 'target-dir': {
      let input = '';
      for await (const chunk of process.stdin) {
        input += chunk;
      }
      const meta = JSON.parse(input);
      const members = new Set(meta.workspace_members ?? []);
      const names = new Set(meta.packages.filter((p) => members.has(p.id)).map((p) => p.name));
      const missing = rest.filter((name) => !names.has(name));
      if (missing.length > 0) {
        console.error(`not workspace members: ${missing.join(', ')} (add them to [workspace].members in the root Cargo.toml)`);
        return 1;
      }
      console.log(meta.target_directory);
      return 0;
    }
    default:
      console.error(`util.mjs: unknown command ${cmd}`);
      return 2;
  }
}

process.exitCode = await main();
