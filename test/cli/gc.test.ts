// BERTH_GC modes map to V8 flags, which `berth serve` starts V8 with, as it starts its thread pool with maxthreads;
// anything else is refused with the choices named.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { GC_MODES, gcFlags } from '../../src/cli/gc.js';
import { removeDir, spawnRegistry, tempDir, type ChildRegistry } from '../helpers/harness.js';

describe('gcFlags', () => {
  it('defaults to balanced: the old generation may grow to 4× its live size', () => {
    assert.deepEqual(gcFlags(undefined), ['--heap-growing-percent=300']);
    assert.deepEqual(gcFlags('balanced'), gcFlags(undefined));
  });

  it('adds global accounting of socket buffers for throughput, and sets nothing for v8', () => {
    assert.deepEqual(gcFlags('throughput'), [
      '--heap-growing-percent=300',
      '--external-memory-accounted-in-global-limit',
    ]);
    assert.deepEqual(gcFlags('v8'), []);
  });

  it('refuses unknown modes, naming every choice', () => {
    for (const bad of ['', 'fast', 'THROUGHPUT']) {
      const result = gcFlags(bad);
      assert.ok(result instanceof Error, bad);
      for (const mode of GC_MODES) assert.match(result.message, new RegExp(mode));
    }
  });

  it('names only flags this V8 knows', () => {
    const known = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8', maxBuffer: 16 << 20 });
    for (const mode of GC_MODES) {
      const flags = gcFlags(mode);
      assert.ok(Array.isArray(flags));
      for (const flag of flags) assert.ok(known.includes(flag.split('=')[0] ?? flag), flag);
    }
  });
});

describe('BERTH_GC at start @integration', function () {
  this.timeout(120_000);
  const CHUNK = randomBytes(1 << 20);
  const CHUNKS = 384;

  async function majorCollections(registry: ChildRegistry): Promise<number> {
    const metrics = await (await fetch(`${registry.debugUrl}/metrics`)).text();
    const line = metrics.split('\n').find((l) => l.startsWith('nodejs_gc_duration_seconds_count{kind="major"}'));
    return Number(line?.split(' ')[1] ?? 0);
  }

  /** Pushes 384 MiB in one request and returns how many full (mark-compact) collections the server ran meanwhile. */
  async function majorCollectionsDuringPush(registry: ChildRegistry): Promise<number> {
    const before = await majorCollections(registry);
    const hash = createHash('sha256');
    for (let i = 0; i < CHUNKS; i++) hash.update(CHUNK);
    const digest = `sha256:${hash.digest('hex')}`;
    const body = Readable.from(
      (function* () {
        for (let i = 0; i < CHUNKS; i++) yield CHUNK;
      })(),
    );
    const res = await fetch(`${registry.url}/v2/gc/flags/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      body: Readable.toWeb(body) as ReadableStream<Uint8Array>,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(CHUNKS * CHUNK.length) },
      duplex: 'half',
    } as RequestInit);
    assert.equal(res.status, 201, await res.text());
    return (await majorCollections(registry)) - before;
  }

  it('starts V8 with the mode’s flags in the same process, and they change how often it collects', async () => {
    const dirs = [await tempDir(), await tempDir()];
    const started: ChildRegistry[] = [];
    try {
      const balanced = await spawnRegistry({
        BERTH_GC: 'balanced',
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: dirs[0]!,
      });
      started.push(balanced);
      const v8 = await spawnRegistry({ BERTH_GC: 'v8', REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: dirs[1]! });
      started.push(v8);
      // The pid the harness started is the one serving, now started with the flag (execve, not a child process).
      const cmdline = (pid: number | undefined) => readFileSync(`/proc/${String(pid)}/cmdline`, 'utf8').split('\0');
      assert.ok(cmdline(balanced.process.pid).includes('--heap-growing-percent=300'));
      assert.ok(!cmdline(v8.process.pid).includes('--heap-growing-percent=300'));
      const withFlag = await majorCollectionsDuringPush(balanced);
      const withoutFlag = await majorCollectionsDuringPush(v8);
      assert.ok(
        withFlag * 1.5 <= withoutFlag,
        `full collections during a 384 MiB push: ${withFlag} with balanced, ${withoutFlag} with V8's own heuristics`,
      );
    } finally {
      await Promise.all(started.map((r) => r.stop()));
      await Promise.all(dirs.map((d) => removeDir(d)));
    }
  });
});

describe('storage.filesystem.maxthreads at start @integration', function () {
  this.timeout(60_000);

  /** Threads of a process once its thread pool has started (libuv starts the whole pool on its first job). */
  async function threadsAfterFileWork(registry: ChildRegistry): Promise<number> {
    const blob = randomBytes(4096);
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const res = await fetch(`${registry.url}/v2/pool/size/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      body: blob,
    });
    assert.equal(res.status, 201);
    return readdirSync(`/proc/${String(registry.process.pid)}/task`).length;
  }

  it('sizes the thread pool for blocking file calls from the config, unless the environment already does', async () => {
    const dirs = [await tempDir(), await tempDir(), await tempDir()];
    const started: ChildRegistry[] = [];
    const start = async (env: Record<string, string>) => {
      const r = await spawnRegistry(env);
      started.push(r);
      return r;
    };
    try {
      const big = await start({
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: dirs[0]!,
        REGISTRY_STORAGE_FILESYSTEM_MAXTHREADS: '64',
      });
      const small = await start({
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: dirs[1]!,
        REGISTRY_STORAGE_FILESYSTEM_MAXTHREADS: '4',
      });
      const pinned = await start({
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: dirs[2]!,
        REGISTRY_STORAGE_FILESYSTEM_MAXTHREADS: '64',
        UV_THREADPOOL_SIZE: '4',
      });
      const [withBig, withSmall, withPinned] = [
        await threadsAfterFileWork(big),
        await threadsAfterFileWork(small),
        await threadsAfterFileWork(pinned),
      ];
      assert.ok(withBig >= 64, `${withBig} threads with maxthreads 64`);
      assert.ok(withSmall < 32, `${withSmall} threads with maxthreads 4`);
      assert.ok(withPinned < 32, `${withPinned} threads with UV_THREADPOOL_SIZE=4 set by the operator`);
    } finally {
      await Promise.all(started.map((r) => r.stop()));
      await Promise.all(dirs.map((d) => removeDir(d)));
    }
  });
});
