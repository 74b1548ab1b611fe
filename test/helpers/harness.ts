// Test harness: starts Berth in-process (for HTTP tests against the real Koa app) or as a child process (for real
// clients, crash tests and the conformance suite), on loopback ports chosen by the OS.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { resolveConfig } from '../../src/config/load.js';
import type { RawConfig } from '../../src/config/schema.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { startRegistry, type RunningRegistry, type StartOptions } from '../../src/compose.js';

/** The repository root (dist/test/helpers → three levels up). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const TOOLS_BIN = join(REPO_ROOT, '.tools', 'bin');
export const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

export async function tempDir(prefix = 'berth-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export interface InProcessRegistry {
  readonly url: string;
  readonly debugUrl: string;
  readonly registry: RunningRegistry;
  close(): Promise<void>;
}

/**
 * Starts Berth in this process on 127.0.0.1 with an OS-chosen port. `config` is raw config (Distribution keys);
 * storage defaults to inmemory unless the config or `driver` says otherwise. Logs are silent.
 */
export async function startInProcess(
  config: RawConfig = {},
  driver?: StorageDriver,
  options: Omit<StartOptions, 'driver'> = {},
): Promise<InProcessRegistry> {
  const raw: RawConfig = {
    ...config,
    storage: { ...(config.storage?.filesystem === undefined ? { inmemory: {} } : {}), ...config.storage },
    http: { addr: '127.0.0.1:0', ...config.http, debug: { addr: '127.0.0.1:0', ...config.http?.debug } },
  };
  const resolved = resolveConfig(raw, 'test');
  const registry = await startRegistry(resolved, pino({ level: 'silent' }), {
    ...options,
    ...(driver === undefined ? {} : { driver }),
  });
  const debug = registry.debugAddress;
  return {
    url: `http://127.0.0.1:${registry.address.port}`,
    debugUrl: debug === undefined ? '' : `http://127.0.0.1:${debug.port}`,
    registry,
    close: () => registry.close(),
  };
}

export interface ChildRegistry {
  readonly url: string;
  readonly port: number;
  readonly debugUrl: string;
  readonly process: ChildProcess;
  /** Log lines (parsed JSON) the child wrote so far. */
  readonly logs: Array<Record<string, unknown>>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit: a crash. */
  kill(): Promise<void>;
}

/**
 * Runs `berth serve` in a child process with the given environment (REGISTRY_* variables) and resolves once it
 * logs that it listens. Ports are chosen by the OS (port 0) unless the environment sets them.
 */
export async function spawnRegistry(env: Record<string, string>, configFile?: string): Promise<ChildRegistry> {
  const args = [CLI, 'serve', ...(configFile === undefined ? [] : ['--config', configFile])];
  const child = spawn(process.execPath, args, {
    env: {
      PATH: process.env['PATH'] ?? '',
      REGISTRY_HTTP_ADDR: '127.0.0.1:0',
      REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const listening = new Promise<{ addr: string; debugAddr: string }>((res, rej) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry['msg'] === 'listening')
        res({ addr: String(entry['addr']), debugAddr: String(entry['debugAddr'] ?? '') });
    });
    void exited.then((code) => rej(new Error(`berth exited with ${code} before listening: ${stderr}`)));
  });
  const timeout = new Promise<never>((_, rej) =>
    setTimeout(() => rej(new Error(`berth did not start in 20s: ${stderr}`)), 20_000).unref(),
  );
  const { addr, debugAddr } = await Promise.race([listening, timeout]);
  const port = Number(addr.slice(addr.lastIndexOf(':') + 1));
  const debugPort = debugAddr === '' ? 0 : Number(debugAddr.slice(debugAddr.lastIndexOf(':') + 1));
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    debugUrl: debugPort === 0 ? '' : `http://127.0.0.1:${debugPort}`,
    process: child,
    logs,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
