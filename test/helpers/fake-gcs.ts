// A real Google Cloud Storage JSON API for tests: fake-gcs-server (built by scripts/install-test-tools.sh into
// .tools/bin) over plain HTTP on a free loopback port, its objects in a temporary directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { Storage } from '@google-cloud/storage';
import { removeDir, tempDir, TOOLS_BIN } from './harness.js';
import { freePort } from './redis.js';

export const FAKE_GCS = join(TOOLS_BIN, 'fake-gcs-server');
const STARTUP_MS = 30_000;

export interface FakeGcs {
  /** `http://127.0.0.1:<port>`: the JSON API's base URL, for `storage.gcs.endpoint`. */
  readonly endpoint: string;
  /** A client of the server, without retries (the caller must not close it; there is nothing to close). */
  readonly storage: Storage;
  /** Creates a bucket (a fresh random name unless given) and resolves its name. */
  createBucket(name?: string): Promise<string>;
  /** Object names in a bucket under a prefix, for checks behind the driver's back. */
  objectNames(bucket: string, prefix?: string): Promise<string[]>;
  /** The server's output so far, for failure messages. */
  output(): string;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

/** Throws with how to get it when the fake-gcs-server binary has not been built. */
export async function requireFakeGcs(): Promise<void> {
  try {
    await access(FAKE_GCS);
  } catch {
    throw new Error(`${FAKE_GCS} is missing: run scripts/install-test-tools.sh, which builds fake-gcs-server once`);
  }
}

/**
 * Starts fake-gcs-server and resolves once it lists buckets. Its public host and external URL are its own address,
 * so the resumable-upload session URLs it hands out point back at it. A few attempts, in case another process takes
 * the port first.
 */
export async function startFakeGcs(): Promise<FakeGcs> {
  await requireFakeGcs();
  const dir = await tempDir('berth-fake-gcs-');
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const args = [
      '-scheme=http',
      '-host=127.0.0.1',
      `-port=${port}`,
      '-backend=filesystem',
      `-filesystem-root=${dir}`,
      `-public-host=127.0.0.1:${port}`,
      `-external-url=${endpoint}`,
      '-log-level=warn',
    ];
    const child = spawn(FAKE_GCS, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const onData = (d: Buffer): void => {
      output = (output + d.toString()).slice(-20_000);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    const storage = new Storage({ apiEndpoint: endpoint, projectId: 'berth-test', retryOptions: { autoRetry: false } });
    try {
      await waitForServer(child, storage, () => output);
    } catch (err) {
      await stopChild(child);
      lastError = err;
      continue;
    }
    return {
      endpoint,
      storage,
      createBucket: async (name = `berth-${randomBytes(6).toString('hex')}`) => {
        await storage.createBucket(name);
        return name;
      },
      objectNames: async (bucket, prefix = '') => {
        const [files] = await storage.bucket(bucket).getFiles({ prefix });
        return files.map((f) => f.name);
      },
      output: () => output,
      stop: async () => {
        await stopChild(child);
        await removeDir(dir);
      },
    };
  }
  await removeDir(dir);
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

async function waitForServer(child: ChildProcess, storage: Storage, output: () => string): Promise<void> {
  const deadline = Date.now() + STARTUP_MS;
  let last: unknown;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`fake-gcs-server exited with ${child.exitCode ?? child.signalCode}: ${output().slice(-3000)}`);
    }
    try {
      await storage.getBuckets();
      return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `fake-gcs-server not ready in ${STARTUP_MS} ms (${last instanceof Error ? last.message : String(last)}): ${output().slice(-3000)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM, then SIGKILL after 10 s: the server is one process, so its exit leaves nothing behind. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exit = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  try {
    await exit;
  } finally {
    clearTimeout(timer);
  }
}
