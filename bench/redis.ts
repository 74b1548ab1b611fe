// A throwaway redis-server per registry for the cache benchmark: loopback only, no persistence, stopped with the run.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, trackChild } from './registries.js';

const REDIS_SERVER = '/usr/bin/redis-server';
const REDIS_CLI = '/usr/bin/redis-cli';
const run = promisify(execFile);

export interface RunningRedis {
  readonly port: number;
  readonly pid: number;
  readonly version: string;
  readonly logFile: string;
  /** SIGTERM (redis exits at once without persistence), then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** One redis-cli command against the server on `port`, with a deadline so a wedged server cannot hang the bench. */
export async function redisCli(port: number, args: readonly string[], timeoutMs = 10_000): Promise<string> {
  const { stdout } = await run(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(port), ...args], {
    timeout: timeoutMs,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

/**
 * Keys that look like blob descriptors (Distribution's `blobs::<digest>` and `repository::<name>::blobs::<digest>`,
 * which Berth writes too): proof that a registry really uses its Redis, not a silently ignored config section.
 */
export async function descriptorKeys(port: number): Promise<number> {
  const out = await redisCli(port, ['--scan', '--pattern', '*blobs::sha256:*']);
  return out.split('\n').filter((l) => l.trim() !== '').length;
}

export async function startRedis(dir: string, readyTimeoutMs = 10_000): Promise<RunningRedis> {
  if (!existsSync(REDIS_SERVER)) throw new Error(`${REDIS_SERVER} not found (apt-get install redis-server)`);
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const logFile = join(dir, 'redis.log');
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    // No RDB snapshots or AOF: a benchmark's cache never needs to survive, and a background save would be noise.
    child = spawn(
      REDIS_SERVER,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        '--daemonize',
        'no',
      ],
      { cwd: dir, stdio: ['ignore', fd, fd] },
    );
  } finally {
    closeSync(fd);
  }
  trackChild(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const stop = async (graceMs = 3000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };

  const deadline = Date.now() + readyTimeoutMs;
  for (let attempt = 0; attempt < 200 && Date.now() < deadline; attempt++) {
    const failed = await Promise.race([
      spawnError,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), attempt === 0 ? 30 : 100)),
    ]);
    if (failed !== undefined) throw new Error(`cannot start ${REDIS_SERVER}: ${failed.message}`);
    if (child.exitCode !== null || child.signalCode !== null) break;
    const pong = await redisCli(port, ['ping'], 2000).catch(() => '');
    if (pong.trim() === 'PONG' && child.pid !== undefined) {
      const info = await redisCli(port, ['info', 'server']).catch(() => '');
      const version = /^redis_version:(\S+)/m.exec(info)?.[1] ?? 'unknown';
      return { port, pid: child.pid, version: `redis ${version}`, logFile, stop };
    }
  }
  await stop(1000);
  let log = '';
  try {
    log = readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-10).join('\n');
  } catch {
    log = '(no log)';
  }
  throw new Error(`redis-server on port ${port} did not answer PING in time; log:\n${log}`);
}
