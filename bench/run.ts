// `npm run bench`: Berth against CNCF Distribution 3 and 2.8 on loopback, same load, same filesystem settings.
// Prints a markdown table (and writes it as JSON to bench/results/latest.json); progress goes to stderr.
//
// Environment (all optional):
//   BENCH_QUICK=1          small blobs and short load runs, for trying the harness out
//   BENCH_CACHE=inmemory   run all three with their in-memory blob descriptor cache (default: none)
//   BENCH_BLOB_MIB, BENCH_BIG_MIB, BENCH_CHUNK_MIB   push/pull blob, memory-test blob and PATCH chunk sizes
//   BENCH_DURATION, BENCH_WARMUP (seconds), BENCH_CONNECTIONS, BENCH_REPEAT (transfers per measurement; median kept)
//   BENCH_REGISTRIES=berth,dist3,dist28   a subset, while working on the harness
//   BENCH_TMPDIR (default: the OS temp dir), BENCH_KEEP=1 to leave the temp dir (configs, logs, storage) behind
//   BENCH_BERTH_GC=throughput   Berth with that BERTH_GC mode (throughput, v8) instead of the default, balanced
//   BENCH_SLOW_VOLUME=0    skip the last block, HEAD and GET manifest with each registry's storage on a slowfs mount
//                          (slow-volume.ts; it needs root and .tools/bin/slowfs, and is skipped without them)
//   BENCH_SUITE=cache      instead, the blob descriptor cache comparison of cache.ts (its own variables are there)
//   BENCH_SUITE=floor      instead, floor.ts: what a bare Node.js server reaches where Berth misses a target
//   BENCH_SUITE=objectstore instead, objectstore.ts: Berth and Distribution 3 on S3 and Redis behind added latency
//   BENCH_SUITE=auth       instead, auth.ts: Bearer tokens, auth on and off, and TLS, Berth beside Distribution 3
//   BENCH_SUITE=gc         instead, gc.ts: garbage collection of one generated store, Berth beside Distribution
import { createHash, randomFillSync } from 'node:crypto';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { runCacheSuite } from './cache.js';
import { runFloorSuite } from './floor.js';
import { runAuthSuite } from './auth.js';
import { runGcSuite } from './gc.js';
import { runObjectStoreSuite } from './objectstore.js';
import { runSlowVolume, SLOW_VOLUME_DELAY_MS, type SlowVolumeOutcome } from './slow-volume.js';
import { RegistryClient, type FileRange } from './client.js';
import {
  envNumber,
  imageConfig,
  imageManifest,
  loadSettings,
  loadSummary,
  loadText,
  machineText,
  publishReport,
  median,
  MIB,
  OCI_MANIFEST,
  progress,
  registriesFromEnv,
  rotated,
  settleDisk,
  sha256,
  stopOnSignals,
  workSettings,
} from './common.js';
import { runLoad, type LoadSpec } from './load.js';
import { cpuSeconds, rssMiB, RssSampler, type RssSummary } from './proc.js';
import {
  killAllNow,
  labelOf,
  REGISTRY_IDS,
  startRegistry,
  type CacheMode,
  type RegistryId,
  type RunningRegistry,
} from './registries.js';
import {
  buildRows,
  LOAD_KINDS,
  LOAD_LABELS,
  markdownTable,
  metricDefs,
  type LoadKind,
  type RegistryResults,
  type TransferResult,
} from './report.js';

function readSettings() {
  const quick = process.env['BENCH_QUICK'] === '1';
  const cacheRaw = process.env['BENCH_CACHE'] ?? 'none';
  if (cacheRaw !== 'none' && cacheRaw !== 'inmemory')
    throw new Error(`BENCH_CACHE=${cacheRaw}: expected none or inmemory`);
  const cache: CacheMode = cacheRaw;
  const registries = registriesFromEnv();
  return {
    quick,
    cache,
    registries,
    blobMiB: Math.round(envNumber('BENCH_BLOB_MIB', quick ? 32 : 512, 1, 16_384)),
    bigMiB: Math.round(envNumber('BENCH_BIG_MIB', quick ? 64 : 1024, 1, 16_384)),
    chunkMiB: Math.round(envNumber('BENCH_CHUNK_MIB', 8, 1, 1024)),
    ...loadSettings(quick),
    repeat: Math.round(envNumber('BENCH_REPEAT', quick ? 1 : 3, 1, 20)),
    ...workSettings(),
  };
}
type Settings = ReturnType<typeof readSettings>;

interface TestData {
  readonly file: string;
  readonly blob: FileRange;
  readonly blobDigest: string;
  readonly big: FileRange;
  readonly bigDigest: string;
}

/**
 * Writes random bytes once into one file, hashing as it goes: the push/pull blob is its first `blobMiB`, the memory
 * test's blob its first `bigMiB`, so one file serves both and every registry receives exactly the same bytes.
 */
async function generateData(dir: string, blobMiB: number, bigMiB: number): Promise<TestData> {
  const file = join(dir, 'blob.bin');
  const total = Math.max(blobMiB, bigMiB) * MIB;
  const blobBytes = blobMiB * MIB;
  const bigBytes = bigMiB * MIB;
  const blobHash = createHash('sha256');
  const bigHash = createHash('sha256');
  const buffer = Buffer.alloc(8 * MIB);
  const handle = await open(file, 'w');
  try {
    for (let offset = 0; offset < total; offset += buffer.length) {
      const chunk = buffer.subarray(0, Math.min(buffer.length, total - offset));
      randomFillSync(chunk);
      if (offset < blobBytes) blobHash.update(chunk.subarray(0, Math.min(chunk.length, blobBytes - offset)));
      if (offset < bigBytes) bigHash.update(chunk.subarray(0, Math.min(chunk.length, bigBytes - offset)));
      await handle.write(chunk, 0, chunk.length, offset);
    }
  } finally {
    await handle.close();
  }
  return {
    file,
    blob: { file, start: 0, length: blobBytes },
    blobDigest: `sha256:${blobHash.digest('hex')}`,
    big: { file, start: 0, length: bigBytes },
    bigDigest: `sha256:${bigHash.digest('hex')}`,
  };
}

const MANIFEST_ACCEPT = [
  OCI_MANIFEST,
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');
const SEED_REPO = 'bench/seed';

interface SeedImage {
  readonly blobs: readonly Buffer[];
  readonly manifest: Buffer;
  /** The layer (2 KiB) the HEAD and GET blob loads ask for. */
  readonly headDigest: string;
  readonly headSize: number;
}

/** A small image (config + two layers + manifest) that every registry gets, byte for byte. */
function makeSeedImage(): SeedImage {
  const layers = [randomFillSync(Buffer.alloc(2048)), randomFillSync(Buffer.alloc(3072))];
  const config = imageConfig(layers);
  const manifest = imageManifest(config, layers);
  const head = layers[0] ?? Buffer.alloc(0);
  return { blobs: [config, ...layers], manifest, headDigest: sha256(head), headSize: head.length };
}

async function seed(client: RegistryClient, image: SeedImage): Promise<void> {
  for (const blob of image.blobs) await client.pushMonolithic(SEED_REPO, blob, sha256(blob));
  await client.putManifest(SEED_REPO, 'latest', OCI_MANIFEST, image.manifest);
  // The load runs count only 2xx answers; check once here that each target really answers 2xx.
  const head = await client.send('HEAD', `/v2/${SEED_REPO}/blobs/${image.headDigest}`);
  if (head.status !== 200 || head.headers['content-length'] !== String(image.headSize)) {
    throw new Error(`HEAD seeded blob: HTTP ${head.status}, length ${head.headers['content-length']}`);
  }
  const manifest = await client.send('GET', `/v2/${SEED_REPO}/manifests/latest`, {
    headers: { accept: MANIFEST_ACCEPT },
  });
  if (manifest.status !== 200 || !manifest.body.equals(image.manifest))
    throw new Error(`GET seeded manifest: HTTP ${manifest.status}`);
}

/** Runs one transfer `repeat` times, timing each, and keeps the median rate and server CPU per GiB. */
async function measureTransfer(
  reg: RunningRegistry,
  what: string,
  bytes: number,
  repeat: number,
  transfer: () => Promise<void>,
): Promise<TransferResult> {
  const rates: number[] = [];
  const cpuPerGiB: number[] = [];
  for (let i = 1; i <= repeat; i++) {
    settleDisk();
    const cpu0 = cpuSeconds(reg.pid);
    const t0 = performance.now();
    await transfer();
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(reg.pid) - cpu0;
    rates.push(bytes / MIB / seconds);
    cpuPerGiB.push(cpu / (bytes / (1024 * MIB)));
    progress(
      `  ${reg.label}: ${what} ${i}/${repeat}: ${(bytes / MIB / seconds).toFixed(1)} MiB/s, server CPU ${cpu.toFixed(2)} s`,
    );
  }
  return { mibPerSecond: median(rates), runsMibPerSecond: rates, serverCpuSecondsPerGiB: median(cpuPerGiB) };
}

/** Samples the registry's RSS every 50 ms while `work` runs. */
async function sampleRss(pid: number, work: () => Promise<void>): Promise<RssSummary> {
  const sampler = new RssSampler(pid, 50);
  try {
    await work();
  } finally {
    sampler.stop();
  }
  return sampler.summary();
}

function loadSpec(kind: LoadKind, base: URL, image: SeedImage): LoadSpec {
  switch (kind) {
    case 'headBlob':
      return { method: 'HEAD', url: new URL(`/v2/${SEED_REPO}/blobs/${image.headDigest}`, base) };
    case 'getBlob':
      return { method: 'GET', url: new URL(`/v2/${SEED_REPO}/blobs/${image.headDigest}`, base) };
    case 'getManifest':
      return {
        method: 'GET',
        url: new URL(`/v2/${SEED_REPO}/manifests/latest`, base),
        headers: { accept: MANIFEST_ACCEPT },
      };
    case 'getBase':
      return { method: 'GET', url: new URL('/v2/', base) };
  }
}

interface Step {
  readonly name: string;
  /** The one registry the step is for; every registry when absent. */
  readonly only?: RegistryId;
  readonly run: (reg: RunningRegistry, client: RegistryClient, out: RegistryResults) => Promise<void>;
}

/**
 * Chunked pushes to a second Berth with `flushchunks` (each PATCH fsynced before its answer, as Distribution does),
 * started in `dir` for this measurement alone and stopped after it.
 */
async function pushChunkedFlushingEach(s: Settings, data: TestData, dir: string): Promise<TransferResult> {
  await mkdir(dir);
  const reg = await startRegistry('berth', { dir, cache: s.cache, flushChunks: true });
  const client = new RegistryClient(reg.baseUrl);
  try {
    progress(`  ${reg.label}: pid ${reg.pid}, ${reg.baseUrl.host}`);
    return await measureTransfer(reg, 'chunked push', data.blob.length, s.repeat, () =>
      client.pushChunked('bench/chunked', data.blob, data.blobDigest, s.chunkMiB * MIB),
    );
  } finally {
    client.close();
    await reg.stop();
  }
}

function steps(s: Settings, data: TestData, image: SeedImage, work: string): Step[] {
  const chunkBytes = s.chunkMiB * MIB;
  const list: Step[] = [
    {
      // First, on a freshly started and seeded process, so the baseline is the registry at rest.
      name: `memory during a ${s.bigMiB} MiB push and pull`,
      run: async (reg, client, out) => {
        settleDisk();
        await new Promise((r) => setTimeout(r, 500));
        const baseline = rssMiB(reg.pid);
        const pushed = await sampleRss(reg.pid, () => client.pushMonolithic('bench/big', data.big, data.bigDigest));
        settleDisk();
        // Not timed, so this pull also verifies the content by hashing it.
        const pulled = await sampleRss(reg.pid, () => client.pull('bench/big', data.bigDigest, data.big.length, true));
        out.memory = {
          sizeMiB: s.bigMiB,
          baselineMiB: baseline,
          pushPeakMiB: pushed.peakMiB,
          pushGrowthMiB: pushed.peakMiB - baseline,
          pullStartMiB: pulled.startMiB,
          pullPeakMiB: pulled.peakMiB,
          pullGrowthMiB: pulled.peakMiB - pulled.startMiB,
        };
        progress(
          `  ${reg.label}: RSS ${baseline.toFixed(1)} MiB at rest, push peak ${pushed.peakMiB.toFixed(1)} ` +
            `(+${out.memory.pushGrowthMiB.toFixed(1)}), pull peak ${pulled.peakMiB.toFixed(1)} (+${out.memory.pullGrowthMiB.toFixed(1)}) ` +
            `[${pushed.samples}+${pulled.samples} samples]`,
        );
      },
    },
    {
      name: `push ${s.blobMiB} MiB monolithic`,
      run: async (reg, client, out) => {
        out.pushMonolithic = await measureTransfer(reg, 'monolithic push', data.blob.length, s.repeat, () =>
          client.pushMonolithic('bench/monolithic', data.blob, data.blobDigest),
        );
      },
    },
    {
      name: `push ${s.blobMiB} MiB in ${s.chunkMiB} MiB chunks`,
      run: async (reg, client, out) => {
        out.pushChunked = await measureTransfer(reg, 'chunked push', data.blob.length, s.repeat, () =>
          client.pushChunked('bench/chunked', data.blob, data.blobDigest, chunkBytes),
        );
        // Distribution always flushes each PATCH: this push is already its figure at equal durability.
        if (reg.id !== 'berth') out.pushChunkedFlushed = out.pushChunked;
      },
    },
    {
      name: `push ${s.blobMiB} MiB in ${s.chunkMiB} MiB chunks, flushing each chunk`,
      only: 'berth',
      run: async (_reg, _client, out) => {
        out.pushChunkedFlushed = await pushChunkedFlushingEach(s, data, join(work, 'berth-flushchunks'));
      },
    },
    {
      name: `pull ${s.blobMiB} MiB`,
      run: async (reg, client, out) => {
        settleDisk();
        // One untimed pull hashes the content; the timed ones only count bytes, so the client's hashing never
        // becomes the bottleneck that makes every registry look the same.
        await client.pull('bench/monolithic', data.blobDigest, data.blob.length, true);
        out.pull = await measureTransfer(reg, 'pull', data.blob.length, s.repeat, () =>
          client.pull('bench/monolithic', data.blobDigest, data.blob.length, false),
        );
      },
    },
  ];
  for (const kind of LOAD_KINDS) {
    list.push({
      name: `${LOAD_LABELS[kind]} at ${s.connections} connections`,
      run: async (reg, _client, out) => {
        const spec = loadSpec(kind, reg.baseUrl, image);
        const settings = { connections: s.connections, pid: reg.pid };
        if (s.warmupS > 0) await runLoad(spec, { ...settings, durationS: s.warmupS });
        const r = await runLoad(spec, { ...settings, durationS: s.durationS });
        out.load[kind] = r;
        progress(`  ${reg.label}: ${loadSummary(r)}`);
      },
    });
  }
  return list;
}

/** The notes' line on the slow-volume block: how it ran, or why it did not. */
function slowVolumeText(
  slow: SlowVolumeOutcome,
  loads: { connections: number; durationS: number; warmupS: number },
): string {
  if (!slow.ran) return `Slow-volume block skipped: ${slow.reason}.`;
  const berth =
    slow.berthFilesystem === undefined
      ? "Berth's log there says nothing on where its filesystem calls run"
      : `Berth's log there: "${slow.berthFilesystem}"`;
  const failures = slow.cleanupFailures.length > 0 ? ` ⚠ Mounts left behind: ${slow.cleanupFailures.join('; ')}.` : '';
  return (
    `Slow volume: ${SLOW_VOLUME_DELAY_MS} ms per filesystem operation (slowfs), storage only for all three, loads ` +
    `${loads.durationS} s after ${loads.warmupS} s warm-up at ${loads.connections} connections; ${berth}.${failures}`
  );
}

async function main(): Promise<void> {
  const s = readSettings();
  const startedAt = new Date();
  const loadBefore = loadavg();
  progress(
    `${s.quick ? 'QUICK run' : 'full run'}: cache ${s.cache}, blob ${s.blobMiB} MiB (chunks ${s.chunkMiB} MiB), ` +
      `memory test ${s.bigMiB} MiB, loads ${s.warmupS}+${s.durationS} s at ${s.connections} connections, ${s.repeat}× per transfer; ` +
      `load average ${loadText(loadBefore)}`,
  );

  const work = await mkdtemp(join(s.tmp, 'berth-bench-'));
  const running: RunningRegistry[] = [];
  const clients: RegistryClient[] = [];
  stopOnSignals(work, s.keep, 'registries');

  try {
    progress(`generating ${Math.max(s.blobMiB, s.bigMiB)} MiB of random data in ${work}`);
    const data = await generateData(work, s.blobMiB, s.bigMiB);
    const image = makeSeedImage();

    progress(`starting ${s.registries.map(labelOf).join(', ')}`);
    const started = await Promise.allSettled(
      s.registries.map(async (id) => {
        const dir = join(work, id);
        await mkdir(dir);
        return startRegistry(id, { dir, cache: s.cache });
      }),
    );
    for (const r of started) if (r.status === 'fulfilled') running.push(r.value);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    for (const reg of running) {
      progress(`  ${reg.label}: ${reg.version}, pid ${reg.pid}, ${reg.baseUrl.host}`);
      clients.push(new RegistryClient(reg.baseUrl));
    }

    const results: Partial<Record<RegistryId, RegistryResults>> = {};
    for (const [i, reg] of running.entries()) {
      const client = clients[i];
      if (client === undefined) continue;
      progress(`${reg.label}: seeding ${SEED_REPO}:latest`);
      await seed(client, image);
      results[reg.id] = { load: {} };
    }

    const plan = steps(s, data, image, work);
    for (const [n, step] of plan.entries()) {
      for (const i of rotated([...running.keys()], n)) {
        const reg = running[i];
        const client = clients[i];
        const out = reg === undefined ? undefined : results[reg.id];
        if (reg === undefined || client === undefined || out === undefined) continue;
        if (step.only !== undefined && reg.id !== step.only) continue;
        progress(`${reg.label}: ${step.name} (step ${n + 1}/${plan.length})`);
        await step.run(reg, client, out);
      }
    }

    // The slow-volume block starts registries of its own; the ones above have nothing left to do.
    await Promise.allSettled(running.map((r) => r.stop()));
    const slowLoads = {
      connections: s.connections,
      durationS: Math.min(s.durationS, 5),
      warmupS: Math.min(s.warmupS, 2),
    };
    progress(
      `slow volume (${SLOW_VOLUME_DELAY_MS} ms per filesystem operation): HEAD blob and GET manifest, ` +
        `loads ${slowLoads.warmupS}+${slowLoads.durationS} s at ${slowLoads.connections} connections`,
    );
    const slow = await runSlowVolume({
      registries: s.registries,
      work,
      ...slowLoads,
      seed: (client) => seed(client, image),
      spec: (kind, base) => loadSpec(kind, base, image),
    });
    if (slow.ran) {
      for (const [id, r] of Object.entries(slow.results)) {
        const out = results[id as RegistryId];
        if (out !== undefined) out.slowVolume = r;
      }
    }

    const defs = metricDefs(s, slow.ran ? { delayMs: SLOW_VOLUME_DELAY_MS } : undefined);
    const rows = buildRows(defs, results);
    const labels = Object.fromEntries(
      REGISTRY_IDS.map((id) => [id, running.find((r) => r.id === id)?.label ?? labelOf(id)]),
    ) as Record<RegistryId, string>;
    const versions = Object.fromEntries(running.map((r) => [r.id, r.version]));
    const loadAfter = loadavg();
    const warnings = rows.flatMap((r) => r.warnings.map((w) => `${r.metric}: ${w}`));
    const notes = [
      `Ratios are oriented so that **> 1 means Berth is better**: throughput is Berth ÷ other; latency, CPU and memory are other ÷ Berth.`,
      `Targets are informative only (✓ met, ✗ not met); the run never fails on them.`,
      `${s.quick ? '**QUICK run** (small blobs, short loads): for checking the harness, not for quoting. ' : ''}` +
        `Cache: ${s.cache === 'inmemory' ? 'in-memory blob descriptor cache' : 'none (storage only)'} for all three. ` +
        `Blob ${s.blobMiB} MiB, chunks ${s.chunkMiB} MiB, memory test ${s.bigMiB} MiB, median of ${s.repeat}; ` +
        `loads ${s.durationS} s after ${s.warmupS} s warm-up at ${s.connections} connections (autocannon in this process; p99 from its per-response times).`,
      `Machine: ${machineText()}; load generator and registries share it. ` +
        `Load average before ${loadText(loadBefore)}, after ${loadText(loadAfter)}.`,
      `Versions: ${running.map((r) => `${r.label}: ${r.version}`).join('; ')}. Distribution 3 runs with OTEL_TRACES_EXPORTER=none.`,
      slowVolumeText(slow, slowLoads),
      ...(warnings.length > 0 ? [`⚠ requests failed during: ${warnings.join('; ')}`] : []),
    ];
    await publishReport('latest.json', {
      title: '## Berth vs CNCF Distribution',
      table: markdownTable(defs, rows, labels),
      notes,
      startedAt,
      settings: s,
      loadBefore,
      loadAfter,
      extra: {
        versions,
        slowVolume: slow.ran
          ? { delayMs: SLOW_VOLUME_DELAY_MS, ...slowLoads, berthFilesystem: slow.berthFilesystem }
          : { skipped: slow.reason },
        rows,
        results,
      },
    });
  } finally {
    for (const c of clients) c.close();
    progress('stopping registries');
    await Promise.allSettled(running.map((r) => r.stop()));
    if (s.keep) progress(`kept ${work}`);
    else await rm(work, { recursive: true, force: true });
  }
}

// BENCH_SUITE picks the comparison: unset (or `registry`) is the one above; `cache` is cache.ts's per-cache-mode one;
// `floor` is floor.ts's comparison with a bare Node.js server.
const suite = process.env['BENCH_SUITE'] ?? '';
try {
  if (suite === '' || suite === 'registry') await main();
  else if (suite === 'cache') await runCacheSuite();
  else if (suite === 'floor') await runFloorSuite();
  else if (suite === 'objectstore') await runObjectStoreSuite();
  else if (suite === 'auth') await runAuthSuite();
  else if (suite === 'gc') await runGcSuite();
  else throw new Error(`BENCH_SUITE=${suite}: expected registry (the default), cache, floor, objectstore, auth or gc`);
} catch (err) {
  progress(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  killAllNow();
  process.exitCode = 1;
}
