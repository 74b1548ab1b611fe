// `berth gc` as people and machines run it: argument errors, the plain progress lines and summary off a terminal,
// JSON lines with --json, and the gc metrics printed at the end.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI, removeDir, tempDir } from '../helpers/harness.js';
import { jsonReporter, lineReporter } from '../../src/cli/gc-progress.js';

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
