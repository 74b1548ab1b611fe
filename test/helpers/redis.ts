// Real redis-server processes for tests: on a free 127.0.0.1 port, without persistence, each in its own temporary
// directory; stopped, killed, paused (SIGSTOP: a Redis that hangs) and restarted on the same port by the tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { removeDir, tempDir } from './harness.js';
import { runCommand } from './images.js';

export const REDIS_SERVER = '/usr/bin/redis-server';
export const REDIS_CLI = '/usr/bin/redis-cli';
const STARTUP_MS = 10_000;

/** A TCP port nothing listens on right now (the OS picks it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface RedisServerOptions {
  /** Extra redis-server arguments (`--maxmemory`, `--user`, TLS, cluster settings). */
  readonly args?: readonly string[];
  /** Listen with TLS only, on the port (the TLS arguments come in `args`). */
  readonly tls?: boolean;
  /** Run as a Sentinel (the config file is written into the server's directory). */
  readonly sentinelConfig?: string;
  /** The log line that means the server is ready. */
  readonly ready?: RegExp;
}

export interface RedisServer {
  readonly port: number;
  /** `127.0.0.1:<port>`, as the `redis.addrs` config wants it. */
  readonly addr: string;
  readonly dir: string;
  /** Output so far, for failure messages. */
  output(): string;
  /** A plain client for looking at what the cache wrote (the caller quits it). */
  client(options?: RedisOptions): Redis;
  /** SIGTERM and wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit: a crash. */
  kill(): Promise<void>;
  /** SIGSTOP: the server keeps its connections but answers nothing. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** Starts the server again on the same port (empty: nothing is persisted). */
  restart(): Promise<void>;
  /** Stops the server and removes its directory. */
  dispose(): Promise<void>;
}

async function launch(
  port: number,
  dir: string,
  options: RedisServerOptions,
): Promise<{ child: ChildProcess; output: () => string }> {
  const base = options.tls === true ? ['--port', '0', '--tls-port', String(port)] : ['--port', String(port)];
  const args =
    options.sentinelConfig !== undefined
      ? [join(dir, 'sentinel.conf'), '--sentinel', '--port', String(port), '--bind', '127.0.0.1', '--dir', dir]
      : [
          ...base,
          '--bind',
          '127.0.0.1',
          '--save',
          '',
          '--appendonly',
          'no',
          '--dir',
          dir,
          '--logfile',
          '',
          ...(options.args ?? []),
        ];
  const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  let output = '';
  const ready =
    options.ready ??
    (options.sentinelConfig !== undefined ? /Sentinel ID is|\+monitor master/ : /Ready to accept connections/);
  const started = new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      output += d.toString();
      if (ready.test(output)) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${output.slice(-2000)}`)));
    child.once('error', reject);
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`redis-server not ready in ${STARTUP_MS}ms: ${output.slice(-2000)}`)),
      STARTUP_MS,
    );
  });
  try {
    await Promise.race([started, timeout]);
  } catch (err) {
    if (child.exitCode === null) child.kill('SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return { child, output: () => output };
}

async function ended(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exit = once(child, 'exit');
  child.kill('SIGCONT');
  child.kill(signal);
  await exit;
}

/** Starts redis-server on a free loopback port (a few attempts, in case another process takes the port first). */
export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = await tempDir('berth-redis-');
  if (options.sentinelConfig !== undefined) {
    await writeFile(join(dir, 'sentinel.conf'), options.sentinelConfig);
  }
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    let running: { child: ChildProcess; output: () => string };
    try {
      running = await launch(port, dir, options);
    } catch (err) {
      lastError = err;
      continue;
    }
    const server: RedisServer = {
      port,
      addr: `127.0.0.1:${port}`,
      dir,
      output: () => running.output(),
      client: (extra = {}) =>
        new Redis({ host: '127.0.0.1', port, lazyConnect: false, maxRetriesPerRequest: 1, ...extra }),
      stop: () => ended(running.child, 'SIGTERM'),
      kill: () => ended(running.child, 'SIGKILL'),
      pause: () => void running.child.kill('SIGSTOP'),
      resume: () => void running.child.kill('SIGCONT'),
      restart: async () => {
        await ended(running.child, 'SIGKILL');
        running = await launch(port, dir, options);
      },
      dispose: async () => {
        await ended(running.child, 'SIGKILL');
        await removeDir(dir);
      },
    };
    return server;
  }
  await removeDir(dir);
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

/** Runs redis-cli with arguments; rejects unless it exits 0. */
export async function redisCli(args: readonly string[], timeoutMs = 30_000): Promise<string> {
  const result = await runCommand(REDIS_CLI, args, { timeoutMs });
  if (result.code !== 0) throw new Error(`${result.command} failed (${result.code}): ${result.stderr}${result.stdout}`);
  return result.stdout;
}

/** Waits until `probe` resolves true, polling every `everyMs`; rejects with `what` after `timeoutMs`. */
export async function eventually(
  probe: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 10_000,
  everyMs = 25,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
