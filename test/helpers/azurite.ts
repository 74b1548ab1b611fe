// A real Azure Blob endpoint for tests: Azurite's blob service (the npm devDependency) on a free loopback port, its
// data in a temporary directory, with one custom account (AZURITE_ACCOUNTS) whose key every request must be signed
// with: the well-known devstoreaccount1 is then disabled, so a wrong key is really refused.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { removeDir, REPO_ROOT, tempDir } from './harness.js';
import { freePort } from './redis.js';

export const AZURITE_BLOB = join(REPO_ROOT, 'node_modules', '.bin', 'azurite-blob');
const STARTUP_MS = 60_000;

export interface Azurite {
  /** `http://127.0.0.1:<port>/<account>`: the blob service URL, for `serviceurl`. */
  readonly serviceUrl: string;
  readonly accountName: string;
  /** The account key, base64. */
  readonly accountKey: string;
  /** A connection string for the account, for `connectionstring`. */
  readonly connectionString: string;
  /** A client signed with the account key (stop closes nothing of it: it holds no sockets of its own). */
  readonly client: BlobServiceClient;
  /** Creates a container (a fresh random name unless given) and resolves its name. */
  createContainer(name?: string): Promise<string>;
  /** The server's output so far, for failure messages. */
  output(): string;
  /** Stops Azurite and removes its data directory. */
  stop(): Promise<void>;
}

/**
 * Starts Azurite's blob service and resolves once it answers a signed request. A few attempts, in case another
 * process takes the port first.
 */
export async function startAzurite(): Promise<Azurite> {
  try {
    await access(AZURITE_BLOB);
  } catch {
    throw new Error(`${AZURITE_BLOB} is missing: run npm ci (azurite is a devDependency)`);
  }
  const accountName = `berth${randomBytes(5).toString('hex')}`;
  const accountKey = randomBytes(64).toString('base64');
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = await tempDir('berth-azurite-');
    const port = await freePort();
    const args = [
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(port),
      '--location',
      dir,
      // No access log on stdout; the SDK speaks a newer API version than this Azurite knows.
      '--silent',
      '--skipApiVersionCheck',
      '--loose',
      '--disableTelemetry',
      // The account comes from the URL's first path segment, never from a host name.
      '--disableProductStyleUrl',
    ];
    const child = spawn(AZURITE_BLOB, args, {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, AZURITE_ACCOUNTS: `${accountName}:${accountKey}` },
    });
    let output = '';
    const onData = (d: Buffer): void => {
      output = (output + d.toString()).slice(-20_000);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    const serviceUrl = `http://127.0.0.1:${port}/${accountName}`;
    const client = new BlobServiceClient(serviceUrl, new StorageSharedKeyCredential(accountName, accountKey), {
      retryOptions: { maxTries: 1 },
    });
    try {
      await waitForAzurite(child, client, () => output);
    } catch (err) {
      await stopChild(child);
      await removeDir(dir);
      lastError = err;
      continue;
    }
    return {
      serviceUrl,
      accountName,
      accountKey,
      connectionString:
        `DefaultEndpointsProtocol=http;AccountName=${accountName};AccountKey=${accountKey};` +
        `BlobEndpoint=${serviceUrl};`,
      client,
      createContainer: async (name = `berth-${randomBytes(6).toString('hex')}`) => {
        await client.getContainerClient(name).create();
        return name;
      },
      output: () => output,
      stop: async () => {
        await stopChild(child);
        await removeDir(dir);
      },
    };
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

async function waitForAzurite(child: ChildProcess, client: BlobServiceClient, output: () => string): Promise<void> {
  const deadline = Date.now() + STARTUP_MS;
  let last: unknown;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`azurite-blob exited with ${child.exitCode ?? child.signalCode}: ${output().slice(-3000)}`);
    }
    try {
      await client.getProperties();
      return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `Azurite not ready in ${STARTUP_MS} ms (${last instanceof Error ? last.message : String(last)}): ${output().slice(-3000)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** SIGTERM, then SIGKILL after 10 s. The bin is a node script run directly, so the child is Azurite itself. */
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
