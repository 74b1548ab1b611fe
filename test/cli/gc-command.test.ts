// `berth gc` as people and machines run it: argument errors, the plain progress lines and summary off a terminal,
// JSON lines with --json, the gc metrics printed at the end, and --online under the lease serving replicas take.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, removeDir, tempDir } from '../helpers/harness.js';
import { jsonReporter, lineReporter } from '../../src/cli/gc-progress.js';
import { GcLease } from '../../src/gc/lease.js';
import { FilesystemDriver } from '../../src/storage/drivers/filesystem/index.js';

const run = promisify(execFile);

async function gc(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, 'gc', ...args], {
      env: { PATH: process.env['PATH'] ?? '', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('berth gc (command line)', function () {
  this.timeout(60_000);
  let root: string;
  let env: Record<string, string>;

  beforeEach(async function () {
    root = await tempDir('berth-gc-cli-');
    env = {
      REGISTRY_STORAGE: 'filesystem',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root,
      REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'none',
    };
  });

  afterEach(async function () {
    await removeDir(root);
  });

  it('refuses a bad grace period with exit code 2', async function () {
    const r = await gc(['--grace', 'soon'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--grace/);
  });

  it('runs on empty storage, printing phases, a summary and the gc metrics', async function () {
    const r = await gc(['--dry-run'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /gc: finding repositories/);
    assert.match(r.stdout, /^dry run: 0 blobs, 0 B would free/m);
    assert.match(r.stdout, /^registry_gc_runs_total\{result="dry_run"\} 1$/m);
    assert.match(r.stdout, /^registry_gc_duration_seconds_count 1$/m);
    for (const kind of ['blob', 'manifest', 'link'])
      assert.match(r.stdout, new RegExp(`^registry_gc_swept_total\\{kind="${kind}"\\} 0$`, 'm'));
    assert.match(r.stdout, /^registry_gc_reclaimed_bytes_total 0$/m);
  });

  it('writes JSON lines with --json, ending with the summary', async function () {
    const r = await gc(['--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.slice(0, -1).every((l) => l['type'] === 'progress' && typeof l['phase'] === 'string'));
    const summary = lines.at(-1)!;
    assert.equal(summary['type'], 'summary');
    assert.equal(summary['blobsSwept'], 0);
    assert.ok(Array.isArray(summary['metrics']));
  });
});

/** Writes `count` blobs that nothing references, two hours old: garbage past the default grace period. */
async function seedGarbage(root: string, count: number): Promise<void> {
  const old = new Date(Date.now() - 2 * 3_600_000);
  for (let i = 0; i < count; i++) {
    const bytes = randomBytes(64);
    const hex = createHash('sha256').update(bytes).digest('hex');
    const file = join(root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, bytes);
    await utimes(file, old, old);
  }
}

async function blobsLeft(root: string): Promise<number> {
  const dir = join(root, 'docker/registry/v2/blobs/sha256');
  let n = 0;
  for (const prefix of await readdir(dir).catch(() => [])) n += (await readdir(join(dir, prefix))).length;
  return n;
}

describe('berth gc --online (command line)', function () {
  this.timeout(60_000);
  let root: string;
  let env: Record<string, string>;

  beforeEach(async function () {
    root = await tempDir('berth-gc-online-');
    env = {
      REGISTRY_STORAGE: 'filesystem',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root,
      REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'none',
    };
    await seedGarbage(root, 20);
  });

  afterEach(async function () {
    await removeDir(root);
  });

  it('lets exactly one of two concurrent runs on one store collect; the other says who holds the lease and exits 0', async function () {
    const runs = await Promise.all([gc(['--online'], env), gc(['--online'], env)]);
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const collected = runs.filter((r) => /^20 blobs, .* freed/m.test(r.stdout));
    const skipped = runs.filter((r) => r.stdout.startsWith('berth gc: skipped: '));
    assert.equal(collected.length, 1, runs.map((r) => r.stdout).join('\n---\n'));
    assert.equal(skipped.length, 1, runs.map((r) => r.stdout).join('\n---\n'));
    assert.equal(skipped[0]?.stdout.trim().split('\n').length, 1, 'one line');
    // Whether it found the winner's record live or lost the race for it, it names the one run: the first.
    assert.match(skipped[0]?.stdout ?? '', /\(run 1\)/);
    assert.equal(await blobsLeft(root), 0);

    // Released, with the run recorded as online GC records it, so serving replicas see a recent collection.
    const lease = new GcLease({ driver: new FilesystemDriver({ rootdirectory: root }), ttlMs: 10_000, settleMs: 10 });
    const record = await lease.read();
    assert.equal(record?.expiresAt, 0);
    assert.equal(record?.lastRun?.result, 'success');
    assert.equal(record?.lastRun?.token, record?.token);
    assert.ok(Date.now() - (record?.lastRun?.finishedAt ?? 0) < 30_000);
    assert.equal((await lease.acquire()).acquired, true, 'the lease is free afterwards');
  });

  it('skips, with exit code 0, while a live holder has the lease, and collects once it is released', async function () {
    const driver = new FilesystemDriver({ rootdirectory: root });
    const replica = new GcLease({ driver, holder: 'registry-7d9f-abcde', ttlMs: 60_000, settleMs: 10 });
    const held = await replica.acquire();
    assert.equal(held.acquired, true);
    const r = await gc(['--online'], env);
    assert.equal(r.code, 0, r.stderr);
    const until = new Date(held.record?.expiresAt ?? 0).toISOString();
    assert.equal(
      r.stdout,
      `berth gc: skipped: the garbage-collection lease is held by registry-7d9f-abcde (run 1) until ${until}; it collects\n`,
    );
    assert.equal(await blobsLeft(root), 20, 'nothing collected');
    assert.equal((await replica.read())?.holder, 'registry-7d9f-abcde', 'the holder’s record is left alone');

    const json = await gc(['--online', '--json'], env);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), {
      type: 'skipped',
      reason: 'leased',
      holder: 'registry-7d9f-abcde',
      token: 1,
      until,
    });

    await replica.release();
    const after = await gc(['--online'], env);
    assert.equal(after.code, 0, after.stderr);
    assert.match(after.stdout, /^20 blobs, .* freed/m);
    const record = await replica.read();
    assert.equal(record?.token, 2, 'the next run’s fencing token');
    assert.equal(record?.expiresAt, 0, 'released');
  });

  it('documents --online and that a skipped run is not a failure', async function () {
    const r = await gc(['--help'], env);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--online/);
    assert.match(r.stdout, /exit 0 without collecting \(a skipped run\s+is not a failure\)/);
  });
});

describe('gc progress reporters', function () {
  it('prints a line per phase and per 1,000 items', function () {
    const lines: string[] = [];
    const report = lineReporter((l) => lines.push(l));
    for (let done = 0; done <= 2500; done += 100) report({ phase: 'blobs', done, total: undefined });
    report({ phase: 'blobs', done: 2500, total: 2500, end: true });
    assert.deepEqual(lines, [
      'gc: scanning blobs',
      'gc: scanning blobs: 1000',
      'gc: scanning blobs: 2000',
      'gc: scanning blobs: done, 2500',
    ]);
  });

  it('throttles JSON progress lines but always writes phase starts and ends', function () {
    const lines: string[] = [];
    const report = jsonReporter((l) => lines.push(l), 60_000);
    for (let done = 0; done < 50; done++) report({ phase: 'mark', done, total: 50 });
    report({ phase: 'mark', done: 50, total: 50, end: true });
    report({ phase: 'sweep', done: 0, total: 3 });
    assert.deepEqual(
      lines.map((l) => JSON.parse(l) as unknown),
      [
        { type: 'progress', phase: 'mark', done: 0, total: 50 },
        { type: 'progress', phase: 'mark', done: 50, total: 50, end: true },
        { type: 'progress', phase: 'sweep', done: 0, total: 3 },
      ],
    );
  });
});
