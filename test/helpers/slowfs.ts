// A slow or hung volume for tests: runs the slowfs tool (test/tools/slowfs, built into .tools/bin by
// scripts/install-test-tools.sh), a FUSE loopback of a temporary directory whose every operation can be delayed or
// held until resumed. Needs root and /dev/fuse.
import { execFile, spawn } from 'node:child_process';
import { mkdir, readFile, realpath, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { removeDir, tempDir, TOOLS_BIN } from './harness.js';

export const SLOWFS = join(TOOLS_BIN, 'slowfs');
const STARTUP_MS = 10_000;
const CONTROL_MS = 5_000;
/** slowfs retries a busy unmount for 1 s, then detaches lazily and waits up to 3 s for the mount's last user. */
const EXIT_MS = 8_000;

export interface SlowFsOptions {
  /** Added latency per filesystem operation from the start, in milliseconds (default 0). */
  readonly delayMs?: number;
}

export interface SlowFsStats {
  readonly delayMs: number;
  readonly hung: boolean;
  /** Operations waiting at the hang gate right now. */
  readonly blocked: number;
  /** Operations seen since the start (Lookup, GetAttr, Write, ...), with their sum in `total`. */
  readonly ops: Readonly<Record<string, number>>;
  readonly total: number;
}

export interface SlowFs {
  /** Where to point the code under test: every operation here goes through slowfs. */
  readonly mountpoint: string;
  /** The directory the mount shows, for looking at what was written without going through the mount. */
  readonly backing: string;
  /** The slowfs process id (gone once `close` resolves). */
  readonly pid: number;
  /** Sets the added latency per operation; applies to operations that start waiting afterwards. */
  setDelay(ms: number): Promise<void>;
  /** Holds every operation on the mount, including those already waiting out a delay, until `resume`. */
  hang(): Promise<void>;
  /** Lets held operations go on. */
  resume(): Promise<void>;
  stats(): Promise<SlowFsStats>;
  /**
   * Resumes, stops slowfs, makes sure nothing is mounted on `mountpoint` and removes the temporary directories.
   * Safe to call more than once and after failures; rejects only if the mount could not be removed.
   */
  close(): Promise<void>;
}

/** Whether something is mounted on `dir` (an absolute, symlink-free path) in this mount namespace. */
export async function isMounted(dir: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  return mounts.split('\n').some((line) => {
    const target = line.split(' ')[1];
    return target !== undefined && unescapeMountField(target) === dir;
  });
}

/** /proc/self/mounts writes space, tab, newline and backslash in paths as octal escapes. */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

interface ReadyLine {
  readonly control: string;
  readonly mount: string;
}

function parseReadyLine(line: string): ReadyLine | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { control, mount } = value as Record<string, unknown>;
  return typeof control === 'string' && typeof mount === 'string' ? { control, mount } : undefined;
}

/** Mounts a new slowfs volume on a temporary directory. */
export async function startSlowFs(options: SlowFsOptions = {}): Promise<SlowFs> {
  const dir = await realpath(await tempDir('berth-slowfs-'));
  const backing = join(dir, 'backing');
  const mountpoint = join(dir, 'mnt');
  await mkdir(backing);
  await mkdir(mountpoint);

  const args = ['-backing', backing, '-mount', mountpoint, '-control', '127.0.0.1:0'];
  if (options.delayMs !== undefined) args.push('-delay-ms', String(options.delayMs));
  const child = spawn(SLOWFS, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('close', () => resolve());
  });
  const running = (): boolean => child.pid !== undefined && child.exitCode === null && child.signalCode === null;

  let closing: Promise<void> | undefined;
  let control = '';

  const request = async (method: 'GET' | 'POST', path: string): Promise<unknown> => {
    const response = await fetch(`http://${control}${path}`, { method, signal: AbortSignal.timeout(CONTROL_MS) });
    const body = await response.text();
    if (!response.ok) throw new Error(`slowfs ${method} ${path}: ${response.status} ${body.trim()}`);
    return JSON.parse(body) as unknown;
  };

  const stop = async (): Promise<void> => {
    if (control !== '') await request('POST', '/resume').catch(() => undefined);
    if (running()) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_MS);
      await exited;
      clearTimeout(timer);
    } else if (child.pid !== undefined) {
      await exited;
    }
    if (await isMounted(mountpoint)) {
      // slowfs died without unmounting (a SIGKILL, a crash): the mount is left without a server.
      await promisify(execFile)('umount', ['-l', mountpoint]).catch(() => undefined);
    }
    if (await isMounted(mountpoint)) {
      await removeDir(backing);
      throw new Error(`slowfs: ${mountpoint} is still mounted after umount -l; stderr:\n${stderr}`);
    }
    // Not recursive: should anything still be mounted there after all, rmdir fails rather than reaching into it.
    await rmdir(mountpoint).catch(() => undefined);
    await removeDir(dir);
  };
  const close = (): Promise<void> => (closing ??= stop());

  try {
    const ready = await new Promise<ReadyLine>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`slowfs did not mount in ${STARTUP_MS} ms; stderr:\n${stderr}`)),
        STARTUP_MS,
      );
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${SLOWFS} (built by scripts/install-test-tools.sh): ${err.message}`));
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(
          new Error(`slowfs exited with ${child.exitCode ?? child.signalCode} before mounting; stderr:\n${stderr}`),
        );
      });
      createInterface({ input: child.stdout }).on('line', (line) => {
        const parsed = parseReadyLine(line);
        if (parsed === undefined) return;
        clearTimeout(timer);
        resolve(parsed);
      });
    });
    control = ready.control;
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }

  return {
    mountpoint,
    backing,
    pid: child.pid ?? 0,
    setDelay: async (ms) => {
      await request('POST', `/delay?ms=${ms}`);
    },
    hang: async () => {
      await request('POST', '/hang');
    },
    resume: async () => {
      await request('POST', '/resume');
    },
    stats: async () => (await request('GET', '/stats')) as SlowFsStats,
    close,
  };
}

/** Resolves to 'pending' if `promise` has not settled after `ms`. */
export async function settledWithin(promise: Promise<unknown>, ms: number): Promise<'settled' | 'pending'> {
  return Promise.race([promise.then(() => 'settled' as const), sleep(ms).then(() => 'pending' as const)]);
}

/** Waits (at most 5 s) until some operation is held at the hang gate. */
export async function waitForBlocked(slow: SlowFs): Promise<void> {
  const deadline = Date.now() + 5_000;
  while ((await slow.stats()).blocked === 0) {
    if (Date.now() > deadline) throw new Error('no operation reached the hang gate within 5 s');
    await sleep(10);
  }
}
