// BENCH_SUITE=gc: garbage collection. One generated store in Distribution's layout (Berth's too): 10,000 manifests in
// 100 repositories, each with a config and three layers, so 50,000 blobs in all, 70 % of the manifests tagged. Each
// collector runs with --delete-untagged on its own copy of it (byte-identical trees): Berth's `berth gc` (grace 0,
// so that it may sweep what was just written, as Distribution always does), Distribution 3's and 2.8's
// `registry garbage-collect`. Afterwards the blob and manifest counts left must agree. Table to stdout, JSON to
// bench/results/gc-latest.json.
//
// Environment (all optional): BENCH_GC_MANIFESTS (default 10000), BENCH_GC_REPOS (100), BENCH_QUICK=1 (1,000
// manifests), BENCH_REGISTRIES (subset of berth,dist3,dist28), BENCH_TMPDIR, BENCH_KEEP.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { RegistryClient } from './client.js';
import {
  envNumber,
  imageManifest,
  loadSettings,
  loadSummary,
  loadText,
  machineText,
  progress,
  publishReport,
  registriesFromEnv,
  stopOnSignals,
  workSettings,
} from './common.js';
import { runLoad } from './load.js';
import { REPO_ROOT, startRegistry, type RegistryId } from './registries.js';

const run = promisify(execFile);
const LAYERS = 3;
const TAGGED_PER_TEN = 7;

interface Dataset {
  /** A layer of a tagged image, which no collection may sweep: what the HEAD load asks for. */
  readonly sample: { readonly repo: string; readonly digest: string };
  readonly manifests: number;
  readonly blobs: number;
  readonly tagged: number;
  /** What a correct --delete-untagged collection leaves. */
  readonly keptManifests: number;
  readonly keptBlobs: number;
}

function hexOf(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes files a bounded number at a time: the generator makes some 115,000 of them. */
class Writer {
  readonly #pending = new Set<Promise<void>>();

  async put(path: string, data: Buffer | string): Promise<void> {
    while (this.#pending.size >= 64) await Promise.race(this.#pending);
    const p: Promise<void> = (async () => {
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, data);
    })().finally(() => this.#pending.delete(p));
    this.#pending.add(p);
  }

  async done(): Promise<void> {
    await Promise.all(this.#pending);
  }
}

/** The store: blobs, layer links, revision links, and tags (current and index links) for 70 % of the manifests. */
async function generate(root: string, manifests: number, repos: number): Promise<Dataset> {
  const v2 = join(root, 'docker/registry/v2');
  const w = new Writer();
  const blob = (hex: string, data: Buffer): Promise<void> =>
    w.put(join(v2, 'blobs/sha256', hex.slice(0, 2), hex, 'data'), data);
  const link = (path: string, hex: string): Promise<void> =>
    w.put(join(v2, 'repositories', path, 'link'), `sha256:${hex}`);
  let tagged = 0;
  let sample: Dataset['sample'] | undefined;
  // Kept by a correct collection: tagged manifests and their blobs.
  for (let i = 0; i < manifests; i++) {
    const repo = `bench/r${String(i % repos).padStart(3, '0')}`;
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', n: i, salt: randomBytes(8).toString('hex') }),
    );
    const layers = Array.from({ length: LAYERS }, () => randomBytes(256));
    const manifest = imageManifest(config, layers);
    const mHex = hexOf(manifest);
    for (const data of [config, ...layers]) {
      const hex = hexOf(data);
      await blob(hex, data);
      await link(`${repo}/_layers/sha256/${hex}`, hex);
    }
    await blob(mHex, manifest);
    await link(`${repo}/_manifests/revisions/sha256/${mHex}`, mHex);
    // By position within the repository, so that every repository has tagged and untagged manifests.
    if (Math.floor(i / repos) % 10 < TAGGED_PER_TEN) {
      tagged++;
      sample ??= { repo, digest: `sha256:${hexOf(layers[0] as Buffer)}` };
      await link(`${repo}/_manifests/tags/t${i}/current`, mHex);
      await link(`${repo}/_manifests/tags/t${i}/index/sha256/${mHex}`, mHex);
    }
  }
  await w.done();
  if (sample === undefined) throw new Error('the generated store has no tagged image');
  return {
    sample,
    manifests,
    blobs: manifests * (LAYERS + 2),
    tagged,
    keptManifests: tagged,
    keptBlobs: tagged * (LAYERS + 2),
  };
}

/** Blob data files and revision links left in a store. */
async function census(root: string): Promise<{ blobs: number; revisions: number }> {
  const v2 = join(root, 'docker/registry/v2');
  let blobs = 0;
  for (const prefix of await readdir(join(v2, 'blobs/sha256')).catch(() => [] as string[])) {
    for (const hex of await readdir(join(v2, 'blobs/sha256', prefix))) {
      const files = await readdir(join(v2, 'blobs/sha256', prefix, hex)).catch(() => [] as string[]);
      if (files.includes('data')) blobs++;
    }
  }
  let revisions = 0;
  const repos = join(v2, 'repositories/bench');
  for (const repo of await readdir(repos).catch(() => [] as string[])) {
    const dir = join(repos, repo, '_manifests/revisions/sha256');
    for (const hex of await readdir(dir).catch(() => [] as string[])) {
      const files = await readdir(join(dir, hex)).catch(() => [] as string[]);
      if (files.includes('link')) revisions++;
    }
  }
  return { blobs, revisions };
}

interface Timed {
  readonly wallS: number;
  readonly cpuS: number;
  readonly maxRssMiB: number;
}

/** Runs a command under GNU time: wall and CPU seconds, peak RSS. Its own output goes to `logFile`. */
async function timed(command: string, args: readonly string[], logFile: string): Promise<Timed> {
  const script = `exec "$@" >${JSON.stringify(logFile)} 2>&1`;
  const { stderr } = await run(
    '/usr/bin/time',
    ['-f', 'BENCHTIME %e %U %S %M', 'sh', '-c', script, 'sh', command, ...args],
    { maxBuffer: 1 << 20, timeout: 3_600_000 },
  ).catch((err: { stderr?: string; message: string }) => {
    throw new Error(`${command} ${args.join(' ')} failed (log: ${logFile}): ${err.stderr ?? err.message}`);
  });
  const m = /BENCHTIME (\S+) (\S+) (\S+) (\S+)/.exec(stderr);
  if (m === null) throw new Error(`no timing from /usr/bin/time: ${stderr}`);
  return { wallS: Number(m[1]), cpuS: Number(m[2]) + Number(m[3]), maxRssMiB: Number(m[4]) / 1024 };
}

const LABELS: Readonly<Record<RegistryId, string>> = {
  berth: 'Berth `berth gc`',
  dist3: 'Distribution 3 `garbage-collect`',
  dist28: 'Distribution 2.8 `garbage-collect`',
};

function collector(id: RegistryId, configFile: string): { command: string; args: string[] } {
  switch (id) {
    case 'berth':
      return {
        command: process.execPath,
        args: [
          join(REPO_ROOT, 'dist/src/cli/main.js'),
          'gc',
          '--config',
          configFile,
          '--delete-untagged',
          '--grace',
          '0',
          '--json',
        ],
      };
    case 'dist3':
      return {
        command: join(REPO_ROOT, '.tools/bin/registry-v3'),
        args: ['garbage-collect', '--delete-untagged', configFile],
      };
    case 'dist28':
      return { command: '/usr/bin/docker-registry', args: ['garbage-collect', '--delete-untagged', configFile] };
  }
}

function configYaml(id: RegistryId, root: string): string {
  // Berth's collector refuses an in-memory descriptor cache (serving replicas would keep stale entries); none here.
  const cache = id === 'berth' ? '  cache: { blobdescriptor: none }\n' : '';
  return `version: 0.1\nlog: { level: ${id === 'berth' ? 'warn' : 'error'} }\nstorage:\n  filesystem: { rootdirectory: ${root} }\n  delete: { enabled: true }\n${cache}`;
}

interface Throughput {
  readonly headPerS: number;
  readonly headP99Ms: number;
  readonly pushPerS: number;
  /** Collections that finished during the two loads. */
  readonly gcRuns: number;
  /** Whether a collection held the lease (was collecting) when the loads began and when they ended. */
  readonly collecting: readonly [boolean, boolean];
}

/** A counter's value from Berth's /metrics, summed over its series. */
async function counter(debugUrl: URL | undefined, name: string): Promise<number> {
  if (debugUrl === undefined) return 0;
  const text = await (await fetch(new URL('/metrics', debugUrl))).text();
  let sum = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.split(' ').at(-1));
  return sum;
}

/** Small monolithic pushes by `workers` clients for `durationS`: completed pushes per second. */
async function pushLoad(base: URL, workers: number, durationS: number): Promise<number> {
  const client = new RegistryClient(base);
  const until = performance.now() + durationS * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      while (performance.now() < until) {
        const body = randomBytes(4096);
        await client.pushMonolithic(`bench/push${w}`, body, `sha256:${hexOf(body)}`);
        done++;
      }
    }),
  );
  return done / durationS;
}

/**
 * HEAD blob and push throughput of one Berth on a copy of the store, with online collection off or running back to
 * back (interval 1s; a run over this store takes longer than that).
 */
async function measureOnline(
  work: string,
  source: string,
  data: Dataset,
  gc: boolean,
  quick: boolean,
): Promise<Throughput> {
  const dir = join(work, gc ? 'online-gc' : 'online-off');
  const root = join(dir, 'storage');
  await mkdir(dir, { recursive: true });
  await run('cp', ['-a', source, root], { timeout: 600_000 });
  const registry = await startRegistry('berth', {
    dir,
    root,
    cache: 'inmemory',
    extra: gc ? { storage: { maintenance: { gc: { enabled: true, interval: '1s', graceperiod: '1s' } } } } : {},
  });
  try {
    const settings = loadSettings(quick);
    if (gc) {
      // The first run starts within the first interval, after the lease's settle time.
      for (let i = 0; i < 100 && (await counter(registry.debugUrl, 'registry_gc_lease_held')) === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const runsBefore = await counter(registry.debugUrl, 'registry_gc_runs_total');
    const heldBefore = (await counter(registry.debugUrl, 'registry_gc_lease_held')) > 0;
    const url = new URL(`/v2/${data.sample.repo}/blobs/${data.sample.digest}`, registry.baseUrl);
    await runLoad(
      { url, method: 'HEAD' },
      { connections: settings.connections, durationS: settings.warmupS || 1, pid: registry.pid },
    );
    const head = await runLoad(
      { url, method: 'HEAD' },
      { connections: settings.connections, durationS: settings.durationS, pid: registry.pid },
    );
    progress(`Berth, online GC ${gc ? 'running' : 'off'}: HEAD ${loadSummary(head)}`);
    const pushPerS = await pushLoad(registry.baseUrl, 8, settings.durationS);
    progress(`Berth, online GC ${gc ? 'running' : 'off'}: ${pushPerS.toFixed(0)} pushes/s (4 KiB blobs, 8 clients)`);
    const gcRuns = (await counter(registry.debugUrl, 'registry_gc_runs_total')) - runsBefore;
    const heldAfter = (await counter(registry.debugUrl, 'registry_gc_lease_held')) > 0;
    return {
      headPerS: head.requestsPerSecond,
      headP99Ms: head.p99Ms,
      pushPerS,
      gcRuns,
      collecting: [heldBefore, heldAfter],
    };
  } finally {
    await registry.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function runGcSuite(): Promise<void> {
  const quick = process.env['BENCH_QUICK'] === '1';
  const manifests = envNumber('BENCH_GC_MANIFESTS', quick ? 1000 : 10_000, 10, 1_000_000);
  const repos = envNumber('BENCH_GC_REPOS', 100, 1, 10_000);
  const ids = registriesFromEnv();
  const { tmp, keep } = workSettings();
  const work = await mkdtemp(join(tmp, 'berth-bench-gc-'));
  stopOnSignals(work, keep, 'the collectors');
  const startedAt = new Date();
  const loadBefore = loadavg();
  try {
    progress(`generating ${manifests} manifests in ${repos} repositories`);
    const source = join(work, 'source');
    const t0 = performance.now();
    const data = await generate(source, manifests, repos);
    progress(`generated ${data.blobs} blobs in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const results = new Map<RegistryId, Timed & { left: { blobs: number; revisions: number } }>();
    for (const id of ids) {
      const root = join(work, id);
      await run('cp', ['-a', source, root], { timeout: 600_000 });
      await run('sync', []);
      const configFile = join(work, `${id}.yml`);
      await writeFile(configFile, configYaml(id, root));
      const { command, args } = collector(id, configFile);
      progress(`${LABELS[id]}: collecting`);
      const t = await timed(command, args, join(work, `${id}.log`));
      const left = await census(root);
      progress(
        `${LABELS[id]}: ${t.wallS.toFixed(2)} s wall, ${t.cpuS.toFixed(2)} s CPU, ${t.maxRssMiB.toFixed(0)} MiB peak; left ${left.blobs} blobs, ${left.revisions} manifests`,
      );
      results.set(id, { ...t, left });
      if (!keep) await rm(root, { recursive: true, force: true });
    }
    let online: { off: Throughput; on: Throughput } | undefined;
    if (ids.includes('berth') && process.env['BENCH_GC_ONLINE'] !== '0') {
      const off = await measureOnline(work, source, data, false, quick);
      const on = await measureOnline(work, source, data, true, quick);
      online = { off, on };
    }
    const berth = results.get('berth');
    const d3 = results.get('dist3');
    const rows = [...results].map(([id, r]) => {
      const right = r.left.blobs === data.keptBlobs && r.left.revisions === data.keptManifests;
      return `| ${LABELS[id]} | ${r.wallS.toFixed(2)} | ${r.cpuS.toFixed(2)} | ${r.maxRssMiB.toFixed(0)} | ${r.left.blobs} | ${r.left.revisions} | ${right ? 'yes' : '**no**'} |`;
    });
    const ratio = berth !== undefined && d3 !== undefined ? d3.wallS / berth.wallS : undefined;
    const table = [
      '| collector | wall s | CPU s | peak RSS MiB | blobs left | manifests left | as expected |',
      '| --- | --: | --: | --: | --: | --: | --- |',
      ...rows,
      '',
      `GC time, Berth ÷ Distribution 3: **${ratio === undefined ? 'n/a' : `${ratio.toFixed(2)}× faster`}** (target ≥ 2× ${ratio === undefined ? '' : ratio >= 2 ? '✓' : '✗'})`,
      ...(online === undefined
        ? []
        : [
            '',
            '| Berth on this store | online GC off | online GC running | ratio | target |',
            '| --- | --: | --: | --: | --- |',
            `| HEAD blob req/s (${loadSettings(quick).connections} connections), p99 ms | ${online.off.headPerS.toFixed(0)}, ${online.off.headP99Ms.toFixed(1)} | ${online.on.headPerS.toFixed(0)}, ${online.on.headP99Ms.toFixed(1)} | ${(online.on.headPerS / online.off.headPerS).toFixed(2)} | ≥ 0.8 ${online.on.headPerS / online.off.headPerS >= 0.8 ? '✓' : '✗'} |`,
            `| pushes/s (4 KiB monolithic, 8 clients) | ${online.off.pushPerS.toFixed(0)} | ${online.on.pushPerS.toFixed(0)} | ${(online.on.pushPerS / online.off.pushPerS).toFixed(2)} | ≥ 0.7 ${online.on.pushPerS / online.off.pushPerS >= 0.7 ? '✓' : '✗'} |`,
            `| collecting when the loads began / ended; runs finished meanwhile | ${online.off.collecting.map((c) => (c ? 'yes' : 'no')).join(' / ')}; ${online.off.gcRuns} | ${online.on.collecting.map((c) => (c ? 'yes' : 'no')).join(' / ')}; ${online.on.gcRuns} | | |`,
          ]),
    ].join('\n');
    const loadAfter = loadavg();
    await publishReport('gc-latest.json', {
      title: '## Garbage collection: Berth and Distribution on one generated store',
      table,
      notes: [
        `${data.manifests} manifests (${data.tagged} tagged) in ${repos} repositories, ${data.blobs} blobs (config, ${LAYERS} layers and the manifest each); --delete-untagged, so a correct run leaves ${data.keptManifests} manifests and ${data.keptBlobs} blobs.`,
        'Each collector gets its own copy of the same tree (cp -a, then sync), on the same filesystem. Berth runs with --grace 0 (nothing is old here) and no descriptor cache to invalidate; Distribution has neither.',
        'Not like for like: Distribution logs every blob it marks and every one it deletes (to a file here); Berth prints progress and one summary. Berth also removes the repository links of what it sweeps (Distribution leaves them dangling), moves each swept blob through a trash (renames flushed to disk) so that a manifest racing the sweep can be given its blobs back, and journals each batch.',
        'Online rows: one Berth on a fresh copy of the store (in-memory descriptor cache), loads one after the other, first with collection off, then with it on (interval 1s, grace 1s: runs back to back, the first sweeping the untagged images). Online collection is paced to 500 storage calls a second, 2 at a time, so one run over this store takes minutes, not the seconds the CLI takes; it collects throughout both loads. The HEAD is of a tagged layer; the pushes are new 4 KiB blobs, which later runs sweep.',
        `${quick ? '**QUICK run**: for checking the harness, not for quoting. ' : ''}Machine: ${machineText()}. Load average before ${loadText(loadBefore)}, after ${loadText(loadAfter)}.`,
      ],
      startedAt,
      settings: { manifests, repos, registries: ids },
      loadBefore,
      loadAfter,
      extra: { dataset: data, results: Object.fromEntries(results), online },
    });
  } finally {
    if (!keep) await rm(work, { recursive: true, force: true });
  }
}
