// A real S3 server for tests: SeaweedFS (`weed server -s3`, built by scripts/install-test-tools.sh into .tools/bin)
// with its master, volume, filer and S3 gateway on free loopback ports, its data in a temporary directory, and one
// identity whose keys every request must be signed with.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { removeDir, tempDir, TOOLS_BIN } from './harness.js';
import { freePort } from './redis.js';

export const WEED = join(TOOLS_BIN, 'weed');
const STARTUP_MS = 90_000;

export interface SeaweedS3 {
  /** `http://127.0.0.1:<port>`: the S3 endpoint, for `regionendpoint`. */
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
  /** A client signed with the identity's keys, path style (the caller must not destroy it; stop does). */
  readonly client: S3Client;
  /** Creates a bucket (a fresh random name unless given) and resolves its name. */
  createBucket(name?: string): Promise<string>;
  /** `http://127.0.0.1:<port>/metrics`: its Prometheus metrics (SeaweedFS_s3_request_total counts requests). */
  readonly metricsUrl: string;
  /** The server's output so far, for failure messages. */
  output(): string;
  /** Stops every SeaweedFS process and removes the data directory. */
  stop(): Promise<void>;
}

/** Throws with how to get it when the weed binary has not been built. */
export async function requireWeed(): Promise<void> {
  try {
    await access(WEED);
  } catch {
    throw new Error(`${WEED} is missing: run scripts/install-test-tools.sh, which builds SeaweedFS once`);
  }
}

async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/**
 * Starts SeaweedFS with an S3 gateway that checks signatures against one identity, and resolves once the gateway
 * answers a signed ListBuckets. A few attempts, in case another process takes one of its ports first.
 */
export async function startSeaweedS3(): Promise<SeaweedS3> {
  await requireWeed();
  const dir = await tempDir('berth-seaweedfs-');
  const accessKey = `berth${randomBytes(6).toString('hex')}`;
  const secretKey = randomBytes(24).toString('base64url');
  const region = 'us-east-1';
  // The identity may do everything in every bucket; anything unsigned or signed otherwise is refused.
  await writeFile(
    join(dir, 's3.json'),
    JSON.stringify({
      identities: [
        {
          name: 'berth',
          credentials: [{ accessKey, secretKey }],
          actions: ['Admin', 'Read', 'List', 'Tagging', 'Write'],
        },
      ],
    }),
  );
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const [master, masterGrpc, volume, volumeGrpc, filer, filerGrpc, s3, s3Grpc, metrics] = await distinctFreePorts(9);
    const args = [
      'server',
      '-ip=127.0.0.1',
      '-ip.bind=127.0.0.1',
      `-dir=${dir}`,
      '-filer',
      '-s3',
      `-s3.config=${join(dir, 's3.json')}`,
      `-master.port=${master}`,
      `-master.port.grpc=${masterGrpc}`,
      '-master.volumeSizeLimitMB=256',
      '-master.telemetry=false',
      `-volume.port=${volume}`,
      `-volume.port.grpc=${volumeGrpc}`,
      '-volume.max=100',
      `-filer.port=${filer}`,
      `-filer.port.grpc=${filerGrpc}`,
      `-filer.localSocket=${join(dir, 'filer.sock')}`,
      `-s3.port=${s3}`,
      `-s3.port.grpc=${s3Grpc}`,
      `-s3.localSocket=${join(dir, 's3.sock')}`,
      '-s3.port.iceberg=0',
      '-s3.port.lance=0',
      `-metricsPort=${metrics}`,
    ];
    const child = spawn(WEED, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: false });
    let output = '';
    const onData = (d: Buffer): void => {
      output = (output + d.toString()).slice(-20_000);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    const endpoint = `http://127.0.0.1:${s3}`;
    const client = new S3Client({
      endpoint,
      region,
      forcePathStyle: true,
      credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
      maxAttempts: 1,
    });
    try {
      await waitForS3(child, client, () => output);
    } catch (err) {
      client.destroy();
      await stopChild(child);
      lastError = err;
      continue;
    }
    const server: SeaweedS3 = {
      endpoint,
      accessKey,
      secretKey,
      region,
      client,
      createBucket: async (name = `berth-${randomBytes(6).toString('hex')}`) => {
        await client.send(new CreateBucketCommand({ Bucket: name }));
        return name;
      },
      metricsUrl: `http://127.0.0.1:${metrics}/metrics`,
      output: () => output,
      stop: async () => {
        client.destroy();
        await stopChild(child);
        await removeDir(dir);
      },
    };
    return server;
  }
  await removeDir(dir);
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

async function waitForS3(child: ChildProcess, client: S3Client, output: () => string): Promise<void> {
  const deadline = Date.now() + STARTUP_MS;
  let last: unknown;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`weed exited with ${child.exitCode ?? child.signalCode}: ${output().slice(-3000)}`);
    }
    try {
      await client.send(new ListBucketsCommand({}));
      return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `SeaweedFS S3 not ready in ${STARTUP_MS} ms (${last instanceof Error ? last.message : String(last)}): ${output().slice(-3000)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** SIGTERM, then SIGKILL after 10 s: weed runs its servers in one process, so its exit leaves nothing behind. */
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
