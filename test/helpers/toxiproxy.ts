// Toxiproxy (github.com/Shopify/toxiproxy, built by scripts/install-test-tools.sh into .tools/bin): TCP proxies in
// front of a test's object store or Redis, for latency (`tc netem` is not available on these machines) and for
// faults: a link reset, a link that swallows bytes, a proxy switched off. Its latency toxic counts whole milliseconds;
// one toxic per direction gives "N ms each way".
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TOOLS_BIN } from './harness.js';
import { trackChild } from './kube.js';
import { freePort } from './redis.js';

export const TOXIPROXY = join(TOOLS_BIN, 'toxiproxy');

/** Which way a toxic acts: `upstream` is client → server, `downstream` server → client. */
export type ToxicStream = 'upstream' | 'downstream';

export interface Toxiproxy {
  /** Opens a proxy on a free loopback port to `upstream` (`host:port`); resolves the proxy's `127.0.0.1:port`. */
  proxy(name: string, upstream: string): Promise<string>;
  /** Sets `ms` of latency each way on the proxy (0 removes it). */
  latency(name: string, ms: number): Promise<void>;
  /**
   * Adds a reset_peer toxic: after `timeoutMs` (0: at once) every connection through the proxy, open or new, is
   * closed with a TCP RST. Resolves the toxic's name, for `removeToxic`.
   */
  resetPeer(name: string, stream: ToxicStream, timeoutMs?: number): Promise<string>;
  /**
   * Adds a timeout toxic: data stops flowing and, after `timeoutMs` (0: never), the connection is closed. A store
   * that hangs rather than refuses. Resolves the toxic's name, for `removeToxic`.
   */
  timeout(name: string, stream: ToxicStream, timeoutMs: number): Promise<string>;
  /** Removes a toxic; a toxic that is not there is no error. */
  removeToxic(name: string, toxic: string): Promise<void>;
  /** Switches the proxy off (its connections are closed and new ones refused) or back on. */
  enable(name: string, enabled: boolean): Promise<void>;
  /** Stops the server; its proxies and their connections go with it. */
  stop(): Promise<void>;
}

async function api(base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    signal: AbortSignal.timeout(10_000),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok && !(method === 'DELETE' && res.status === 404))
    throw new Error(`toxiproxy ${method} ${path}: HTTP ${res.status} ${text}`);
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

/** Starts a Toxiproxy server on a free loopback port and resolves once its API answers (within 10 s). */
export async function startToxiproxy(): Promise<Toxiproxy> {
  if (!existsSync(TOXIPROXY)) throw new Error(`${TOXIPROXY} not found (run scripts/install-test-tools.sh)`);
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
    if (i >= 100) {
      child.kill('SIGKILL');
      throw new Error(`toxiproxy did not answer on ${base}: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  let toxics = 0;
  const addToxic = async (
    name: string,
    type: 'reset_peer' | 'timeout',
    stream: ToxicStream,
    timeoutMs: number,
  ): Promise<string> => {
    const toxic = `${type}-${stream}-${++toxics}`;
    await api(base, 'POST', `/proxies/${name}/toxics`, {
      name: toxic,
      type,
      stream,
      toxicity: 1,
      attributes: { timeout: timeoutMs },
    });
    return toxic;
  };
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
    resetPeer: (name, stream, timeoutMs = 0) => addToxic(name, 'reset_peer', stream, timeoutMs),
    timeout: (name, stream, timeoutMs) => addToxic(name, 'timeout', stream, timeoutMs),
    removeToxic: async (name, toxic) => {
      await api(base, 'DELETE', `/proxies/${name}/toxics/${toxic}`);
    },
    enable: async (name, enabled) => {
      await api(base, 'POST', `/proxies/${name}`, { enabled });
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
