// Toxiproxy (github.com/Shopify/toxiproxy, built by scripts/install-test-tools.sh --bench): TCP proxies that add
// latency to a link, since `tc netem` is not available on these machines. Its latency toxic counts whole
// milliseconds; one toxic per direction gives "N ms each way".
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, REPO_ROOT, trackChild } from './registries.js';

export const TOXIPROXY = join(REPO_ROOT, '.tools/bin/toxiproxy');

export interface Toxiproxy {
  /** Opens a proxy on a free loopback port to `upstream` (`host:port`); resolves the proxy's `127.0.0.1:port`. */
  proxy(name: string, upstream: string): Promise<string>;
  /** Sets `ms` of latency each way on the proxy (0 removes it). */
  latency(name: string, ms: number): Promise<void>;
  stop(): Promise<void>;
}

async function api(base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok && !(method === 'DELETE' && res.status === 404))
    throw new Error(`toxiproxy ${method} ${path}: HTTP ${res.status} ${text}`);
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

export async function startToxiproxy(): Promise<Toxiproxy> {
  if (!existsSync(TOXIPROXY)) throw new Error(`${TOXIPROXY} not found (run scripts/install-test-tools.sh --bench)`);
  const port = await freePort();
  const child: ChildProcess = spawn(TOXIPROXY, ['-host', '127.0.0.1', '-port', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LOG_LEVEL: 'error' },
  });
  trackChild(child);
  let output = '';
  child.stderr?.on('data', (d: Buffer) => {
    output = (output + d.toString()).slice(-4000);
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`toxiproxy exited while starting: ${output}`);
    const up = await fetch(`${base}/version`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    if (i >= 100) throw new Error(`toxiproxy did not answer on ${base}: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    proxy: async (name, upstream) => {
      const listen = `127.0.0.1:${await freePort()}`;
      await api(base, 'POST', '/proxies', { name, listen, upstream, enabled: true });
      return listen;
    },
    latency: async (name, ms) => {
      for (const stream of ['upstream', 'downstream']) {
        await api(base, 'DELETE', `/proxies/${name}/toxics/latency-${stream}`);
        if (ms > 0) {
          await api(base, 'POST', `/proxies/${name}/toxics`, {
            name: `latency-${stream}`,
            type: 'latency',
            stream,
            toxicity: 1,
            attributes: { latency: ms, jitter: 0 },
          });
        }
      }
    },
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
