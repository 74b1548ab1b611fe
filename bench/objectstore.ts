// BENCH_SUITE=objectstore: Berth and Distribution 3 on object storage, where the blob descriptor cache earns its keep.
// One SeaweedFS S3 server and one redis-server, each behind a Toxiproxy proxy that adds latency (by default 5 ms
// each way to the object store, as to a regional S3, and 1 ms each way to Redis, as across availability zones).
// Both registries use the same bucket (each under its own root directory), the same Redis (each its own database)
// and the same proxies, one after the other. For each storage (s3, filesystem) × link (latency, loopback) × cache
// mode (none, redis, two-tier) it measures HEAD blob load, and on s3 counts the object-store requests each HEAD cost
// at the S3 server. On s3 with latency it also times 512 MiB pushes (monolithic and chunked) and pulls, and samples
// the registries' memory during a 1 GiB push. Table to stdout, JSON to bench/results/objectstore-latest.json.
//
// Environment (all optional): BENCH_QUICK, BENCH_DURATION, BENCH_WARMUP, BENCH_CONNECTIONS (default 32), BENCH_TMPDIR,
// BENCH_KEEP as for run.ts, and
//   BENCH_S3_LATENCY_MS (5), BENCH_REDIS_LATENCY_MS (1)      latency each way, whole milliseconds
//   BENCH_BLOB_MIB (512, quick 32), BENCH_BIG_MIB (1024, quick 64), BENCH_CHUNK_MIB (8)
//   BENCH_OBJECTSTORE_STORAGES=s3,filesystem  BENCH_OBJECTSTORE_LINKS=latency,loopback
import { createHash, randomFillSync } from 'node:crypto';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startSeaweedS3, type SeaweedS3 } from '../test/helpers/seaweedfs.js';
import { RegistryClient, type FileRange } from './client.js';
import {
  envNumber,
  imageConfig,
  imageManifest,
  loadSettings,
  loadSummary,
  loadText,
  machineText,
  MIB,
  OCI_MANIFEST,
  progress,
  publishReport,
  sha256,
  stopOnSignals,
  workSettings,
} from './common.js';
import { runLoad, type LoadResult } from './load.js';
import { cpuSeconds, RssSampler } from './proc.js';
import { redisCli, startRedis, type RunningRedis } from './redis.js';
import { startRegistry, type CacheMode, type RunningRegistry } from './registries.js';
import { startToxiproxy, type Toxiproxy } from '../test/helpers/toxiproxy.js';

const IDS = ['berth', 'dist3'] as const;
type Id = (typeof IDS)[number];
const LABELS: Readonly<Record<Id, string>> = { berth: 'Berth', dist3: 'Distribution 3' };
const STORAGES = ['s3', 'filesystem'] as const;
type Storage = (typeof STORAGES)[number];
const LINKS = ['latency', 'loopback'] as const;
type Link = (typeof LINKS)[number];
const MODES = ['none', 'redis', 'twotier'] as const;
type Mode = (typeof MODES)[number];
const MODE_LABELS: Readonly<Record<Mode, string>> = { none: 'no cache', redis: 'Redis', twotier: 'two-tier' };
const REPO = 'bench/objectstore';

function pick<T extends string>(name: string, all: readonly T[]): T[] {
  const raw = (process.env[name] ?? all.join(','))
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const bad = raw.filter((x) => !(all as readonly string[]).includes(x));
  if (bad.length > 0 || raw.length === 0) throw new Error(`${name}: choose from ${all.join(', ')}`);
  return all.filter((x) => raw.includes(x));
}

function readSettings() {
  const quick = process.env['BENCH_QUICK'] === '1';
  const load = loadSettings(quick);
  return {
    quick,
    ...load,
    connections: Math.round(envNumber('BENCH_CONNECTIONS', 32, 1, 1024)),
    s3LatencyMs: Math.round(envNumber('BENCH_S3_LATENCY_MS', 5, 0, 1000)),
    redisLatencyMs: Math.round(envNumber('BENCH_REDIS_LATENCY_MS', 1, 0, 1000)),
    blobMiB: Math.round(envNumber('BENCH_BLOB_MIB', quick ? 32 : 512, 1, 16_384)),
    bigMiB: Math.round(envNumber('BENCH_BIG_MIB', quick ? 64 : 1024, 1, 16_384)),
    chunkMiB: Math.round(envNumber('BENCH_CHUNK_MIB', 8, 1, 1024)),
    storages: pick('BENCH_OBJECTSTORE_STORAGES', STORAGES),
    links: pick('BENCH_OBJECTSTORE_LINKS', LINKS),
    ...workSettings(),
  };
}
type Settings = ReturnType<typeof readSettings>;

interface HeadRow {
  readonly storage: Storage;
  readonly link: Link;
  readonly mode: Mode;
  readonly id: Id;
  readonly setting: CacheMode;
  readonly load: LoadResult;
  /** Object-store requests per HEAD, counted by the S3 server (s3 only). */
  readonly storeRequestsPerHead?: number;
}

interface TransferRow {
  readonly id: Id;
  readonly what: 'push monolithic' | 'push chunked' | 'pull';
  readonly mibPerSecond: number;
  readonly serverCpuSecondsPerGiB: number;
}

interface MemoryRow {
  readonly id: Id;
  readonly baselineMiB: number;
  readonly peakMiB: number;
}

/** The S3 server's request count: SeaweedFS_s3_request_total summed over buckets, codes and types. */
async function storeRequests(s3: SeaweedS3): Promise<number> {
  const text = await (await fetch(s3.metricsUrl)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^SeaweedFS_s3_request_total(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m !== null) total += Number(m[1]);
  }
  return total;
}

/** Random bytes in a file, hashed as written: the transfer blob is its first blobMiB, the memory test's its first bigMiB. */
async function generateData(dir: string, s: Settings) {
  const file = join(dir, 'blob.bin');
  const total = Math.max(s.blobMiB, s.bigMiB) * MIB;
  const [blobBytes, bigBytes] = [s.blobMiB * MIB, s.bigMiB * MIB];
  const [blobHash, bigHash] = [createHash('sha256'), createHash('sha256')];
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
  const blob: FileRange = { file, start: 0, length: blobBytes };
  const big: FileRange = { file, start: 0, length: bigBytes };
  return { blob, blobDigest: `sha256:${blobHash.digest('hex')}`, big, bigDigest: `sha256:${bigHash.digest('hex')}` };
}

interface World {
  readonly s3: SeaweedS3;
  readonly bucket: string;
  readonly redis: RunningRedis;
  readonly proxy: Toxiproxy;
  readonly s3Addr: string;
  readonly redisAddr: string;
}

let roots = 0;

async function start(world: World, s: Settings, id: Id, storage: Storage, mode: Mode, dir: string) {
  const setting: CacheMode = id !== 'berth' && mode === 'twotier' ? 'redis' : mode;
  await mkdir(dir, { recursive: true });
  const storageSection =
    storage === 's3'
      ? {
          s3: {
            bucket: world.bucket,
            region: world.s3.region,
            regionendpoint: `http://${world.s3Addr}`,
            forcepathstyle: true,
            accesskey: world.s3.accessKey,
            secretkey: world.s3.secretKey,
            rootdirectory: `/${id}-${roots++}`,
            chunksize: s.chunkMiB * MIB < 5 * MIB ? 5 * MIB : s.chunkMiB * MIB,
          },
        }
      : undefined;
  const reg = await startRegistry(id, {
    dir,
    cache: setting,
    ...(storageSection === undefined ? {} : { storage: storageSection }),
    redisAddr: world.redisAddr,
    redisDb: id === 'berth' ? 0 : 1,
    // Distribution 3's Redis pool as large as the load's connections (the issue's condition for a fair comparison).
    redisPoolSize: s.connections,
    readyTimeoutMs: 60_000,
  });
  return { reg, setting };
}

async function seedSmall(client: RegistryClient): Promise<{ digest: string; size: number }> {
  const layers = [randomFillSync(Buffer.alloc(2048)), randomFillSync(Buffer.alloc(3072))];
  const config = imageConfig(layers);
  for (const blob of [config, ...layers]) await client.pushMonolithic(REPO, blob, sha256(blob));
  await client.putManifest(REPO, 'latest', OCI_MANIFEST, imageManifest(config, layers));
  const head = layers[0] ?? Buffer.alloc(0);
  const digest = sha256(head);
  const reply = await client.send('HEAD', `/v2/${REPO}/blobs/${digest}`);
  if (reply.status !== 200) throw new Error(`HEAD seeded blob: HTTP ${reply.status}`);
  return { digest, size: head.length };
}

async function measureHead(
  world: World,
  s: Settings,
  reg: RunningRegistry,
  storage: Storage,
  digest: string,
): Promise<{ load: LoadResult; storeRequestsPerHead?: number }> {
  const spec = { method: 'HEAD', url: new URL(`/v2/${REPO}/blobs/${digest}`, reg.baseUrl) } as const;
  const settings = { connections: s.connections, pid: reg.pid };
  if (s.warmupS > 0) await runLoad(spec, { ...settings, durationS: s.warmupS });
  const before = storage === 's3' ? await storeRequests(world.s3) : 0;
  const load = await runLoad(spec, { ...settings, durationS: s.durationS });
  // Requests still in flight at the load's end reach the server within a moment.
  await new Promise((r) => setTimeout(r, 300));
  if (storage !== 's3') return { load };
  const after = await storeRequests(world.s3);
  return { load, storeRequestsPerHead: load.requests > 0 ? (after - before) / load.requests : Number.NaN };
}

async function timed(reg: RunningRegistry, bytes: number, work: () => Promise<void>) {
  const cpu0 = cpuSeconds(reg.pid);
  const t0 = performance.now();
  await work();
  const seconds = (performance.now() - t0) / 1000;
  return {
    mibPerSecond: bytes / MIB / seconds,
    serverCpuSecondsPerGiB: (cpuSeconds(reg.pid) - cpu0) / (bytes / 1024 / MIB),
  };
}

function fmt(n: number | undefined, digits = 0): string {
  return n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits);
}

function ratioText(berth: number | undefined, other: number | undefined, better: 'higher' | 'lower'): string {
  if (berth === undefined || other === undefined || !(berth > 0) || !(other > 0)) return '–';
  return `${(better === 'higher' ? berth / other : other / berth).toFixed(2)}×`;
}

export async function runObjectStoreSuite(): Promise<void> {
  const s = readSettings();
  const startedAt = new Date();
  const loadBefore = loadavg();
  progress(
    `objectstore suite${s.quick ? ' (QUICK)' : ''}: ${s.storages.join(', ')} × ${s.links.join(', ')} × ${MODES.join(', ')}; ` +
      `HEAD loads ${s.warmupS}+${s.durationS} s at ${s.connections} connections; S3 +${s.s3LatencyMs} ms and Redis ` +
      `+${s.redisLatencyMs} ms each way; load average ${loadText(loadBefore)}`,
  );
  const work = await mkdtemp(join(s.tmp, 'berth-bench-objectstore-'));
  stopOnSignals(work, s.keep, 'registries, SeaweedFS, redis-server and toxiproxy');
  let s3: SeaweedS3 | undefined;
  let redis: RunningRedis | undefined;
  let proxy: Toxiproxy | undefined;
  const heads: HeadRow[] = [];
  const transfers: TransferRow[] = [];
  const memory: MemoryRow[] = [];
  try {
    s3 = await startSeaweedS3();
    redis = await startRedis(join(work, 'redis'));
    proxy = await startToxiproxy();
    const world: World = {
      s3,
      bucket: await s3.createBucket(),
      redis,
      proxy,
      s3Addr: await proxy.proxy('s3', new URL(s3.endpoint).host),
      redisAddr: await proxy.proxy('redis', `127.0.0.1:${redis.port}`),
    };
    let turn = 0;
    for (const storage of s.storages) {
      for (const link of s.links) {
        await proxy.latency('s3', link === 'latency' ? s.s3LatencyMs : 0);
        await proxy.latency('redis', link === 'latency' ? s.redisLatencyMs : 0);
        for (const mode of MODES) {
          // Each scenario starts from an empty Redis and fresh registries; the order alternates between scenarios.
          await redisCli(redis.port, ['FLUSHALL']);
          const order = turn++ % 2 === 0 ? IDS : [...IDS].reverse();
          for (const id of order) {
            const { reg, setting } = await start(
              world,
              s,
              id,
              storage,
              mode,
              join(work, `${storage}-${link}-${mode}-${id}`),
            );
            const client = new RegistryClient(reg.baseUrl);
            try {
              const { digest } = await seedSmall(client);
              progress(
                `${LABELS[id]} [${storage}, ${link}, ${MODE_LABELS[mode]}${setting !== mode ? ` (runs ${setting})` : ''}]: HEAD blob`,
              );
              const m = await measureHead(world, s, reg, storage, digest);
              heads.push({
                storage,
                link,
                mode,
                id,
                setting,
                load: m.load,
                ...(m.storeRequestsPerHead === undefined ? {} : { storeRequestsPerHead: m.storeRequestsPerHead }),
              });
              progress(
                `  ${loadSummary(m.load, m.storeRequestsPerHead === undefined ? '' : `, ${m.storeRequestsPerHead.toFixed(3)} object-store requests/HEAD`)}`,
              );

              if (storage === 's3' && link === 'latency' && mode === 'redis') {
                const data = await generateDataOnce(work, s);
                const blob = data.blob;
                const bytes = blob.length;
                await client.send('DELETE', `/v2/${REPO}/blobs/${data.blobDigest}`).catch(() => undefined);
                const mono = await timed(reg, bytes, () =>
                  client.pushMonolithic(`${REPO}/mono`, blob, data.blobDigest),
                );
                transfers.push({ id, what: 'push monolithic', ...mono });
                progress(
                  `  push ${s.blobMiB} MiB monolithic: ${mono.mibPerSecond.toFixed(1)} MiB/s, ${mono.serverCpuSecondsPerGiB.toFixed(2)} CPU s/GiB`,
                );
                const chunked = await timed(reg, bytes, () =>
                  client.pushChunked(`${REPO}/chunked`, blob, data.blobDigest, s.chunkMiB * MIB),
                );
                transfers.push({ id, what: 'push chunked', ...chunked });
                progress(
                  `  push ${s.blobMiB} MiB in ${s.chunkMiB} MiB chunks: ${chunked.mibPerSecond.toFixed(1)} MiB/s`,
                );
                const pulled = await timed(reg, bytes, () =>
                  client.pull(`${REPO}/mono`, data.blobDigest, bytes, false),
                );
                transfers.push({ id, what: 'pull', ...pulled });
                progress(`  pull ${s.blobMiB} MiB: ${pulled.mibPerSecond.toFixed(1)} MiB/s`);
                const sampler = new RssSampler(reg.pid, 50);
                const baseline = sampler.summary().startMiB;
                try {
                  await client.pushMonolithic(`${REPO}/big`, data.big, data.bigDigest);
                } finally {
                  sampler.stop();
                }
                const peak = sampler.summary().peakMiB;
                memory.push({ id, baselineMiB: baseline, peakMiB: peak });
                progress(`  RSS during a ${s.bigMiB} MiB push: ${baseline.toFixed(0)} → ${peak.toFixed(0)} MiB`);
              }
            } finally {
              client.close();
              await reg.stop();
            }
          }
        }
      }
    }
  } finally {
    await proxy?.stop();
    await redis?.stop();
    await s3?.stop();
    if (s.keep) progress(`kept ${work}`);
    else await rm(work, { recursive: true, force: true });
  }

  const row = (storage: Storage, link: Link, mode: Mode, id: Id) =>
    heads.find((h) => h.storage === storage && h.link === link && h.mode === mode && h.id === id);
  const lines = [
    '| storage | link | cache | Berth req/s | Dist 3 req/s | ratio | Berth p50 / p99 ms | Dist 3 p50 / p99 ms | CPU µs/req Berth / Dist 3 | object-store req/HEAD Berth / Dist 3 |',
    '|---|---|---|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const storage of s.storages)
    for (const link of s.links)
      for (const mode of MODES) {
        const [b, d] = [row(storage, link, mode, 'berth'), row(storage, link, mode, 'dist3')];
        if (b === undefined && d === undefined) continue;
        lines.push(
          `| ${storage} | ${link === 'latency' ? (storage === 's3' ? `+${s.s3LatencyMs} ms S3, +${s.redisLatencyMs} ms Redis` : `+${s.redisLatencyMs} ms Redis`) : 'loopback'} | ${MODE_LABELS[mode]}${d?.setting === 'redis' && mode === 'twotier' ? ' (Dist 3: Redis)' : ''} ` +
            `| ${fmt(b?.load.requestsPerSecond)} | ${fmt(d?.load.requestsPerSecond)} | ${ratioText(b?.load.requestsPerSecond, d?.load.requestsPerSecond, 'higher')} ` +
            `| ${fmt(b?.load.p50Ms, 2)} / ${fmt(b?.load.p99Ms, 2)} | ${fmt(d?.load.p50Ms, 2)} / ${fmt(d?.load.p99Ms, 2)} ` +
            `| ${fmt(b?.load.serverCpuMicrosPerRequest)} / ${fmt(d?.load.serverCpuMicrosPerRequest)} ` +
            `| ${fmt(b?.storeRequestsPerHead, 3)} / ${fmt(d?.storeRequestsPerHead, 3)} |`,
        );
      }
  const t = (id: Id, what: TransferRow['what']) => transfers.find((x) => x.id === id && x.what === what);
  if (transfers.length > 0) {
    lines.push(
      '',
      '| s3, +latency, Redis cache | Berth MiB/s | Dist 3 MiB/s | ratio | CPU s/GiB Berth / Dist 3 |',
      '|---|--:|--:|--:|--:|',
    );
    for (const what of ['push monolithic', 'push chunked', 'pull'] as const) {
      const [b, d] = [t('berth', what), t('dist3', what)];
      lines.push(
        `| ${what} ${s.blobMiB} MiB${what === 'push chunked' ? ` (${s.chunkMiB} MiB chunks)` : ''} | ${fmt(b?.mibPerSecond, 1)} | ${fmt(d?.mibPerSecond, 1)} | ${ratioText(b?.mibPerSecond, d?.mibPerSecond, 'higher')} | ${fmt(b?.serverCpuSecondsPerGiB, 2)} / ${fmt(d?.serverCpuSecondsPerGiB, 2)} |`,
      );
    }
    for (const m of memory)
      lines.push(
        `| RSS growth during a ${s.bigMiB} MiB push, ${LABELS[m.id]} | ${fmt(m.peakMiB - m.baselineMiB)} MiB | | | ${fmt(m.baselineMiB)} → ${fmt(m.peakMiB)} MiB |`,
      );
  }

  // Targets, from the issue: informative only, the run never fails on them.
  const checks: string[] = [];
  const target = (what: string, value: number | undefined, ok: (v: number) => boolean, shown: string): void => {
    checks.push(`${value !== undefined && Number.isFinite(value) && ok(value) ? '✓' : '✗'} ${what}: ${shown}`);
  };
  const rps = (mode: Mode, id: Id) => row('s3', 'latency', mode, id)?.load.requestsPerSecond;
  const per = (mode: Mode, id: Id) => row('s3', 'latency', mode, id)?.storeRequestsPerHead;
  if (s.storages.includes('s3') && s.links.includes('latency')) {
    for (const mode of ['redis', 'twotier'] as const)
      target(
        `object-store requests per cached HEAD, Berth, ${MODE_LABELS[mode]} = 0`,
        per(mode, 'berth'),
        (v) => v < 0.001,
        fmt(per(mode, 'berth'), 3),
      );
    const [bn, dn] = [per('none', 'berth'), per('none', 'dist3')];
    target(
      'object-store requests per uncached HEAD, Berth ≤ Distribution 3',
      bn === undefined || dn === undefined ? undefined : dn - bn,
      (v) => v >= 0,
      `${fmt(bn, 2)} vs ${fmt(dn, 2)}`,
    );
    const r = (a: number | undefined, b: number | undefined) =>
      a === undefined || b === undefined ? undefined : a / b;
    target(
      'HEAD req/s, Redis cache, Berth ÷ Distribution 3 ≥ 5×',
      r(rps('redis', 'berth'), rps('redis', 'dist3')),
      (v) => v >= 5,
      fmt(r(rps('redis', 'berth'), rps('redis', 'dist3')), 2),
    );
    target(
      'HEAD req/s, Berth two-tier ÷ Berth Redis ≥ 2×',
      r(rps('twotier', 'berth'), rps('redis', 'berth')),
      (v) => v >= 2,
      fmt(r(rps('twotier', 'berth'), rps('redis', 'berth')), 2),
    );
    target(
      'HEAD req/s, no cache, Berth ÷ Distribution 3 ≥ 3×',
      r(rps('none', 'berth'), rps('none', 'dist3')),
      (v) => v >= 3,
      fmt(r(rps('none', 'berth'), rps('none', 'dist3')), 2),
    );
    for (const [what, min] of [
      ['push monolithic', 1.5],
      ['push chunked', 1.5],
      ['pull', 1],
    ] as const) {
      const v = r(t('berth', what)?.mibPerSecond, t('dist3', what)?.mibPerSecond);
      target(`${what} ${s.blobMiB} MiB, Berth ÷ Distribution 3 ≥ ${min}×`, v, (x) => x >= min, fmt(v, 2));
    }
    const m = memory.find((x) => x.id === 'berth');
    target(
      `Berth RSS growth during a ${s.bigMiB} MiB push < 150 MiB`,
      m === undefined ? undefined : m.peakMiB - m.baselineMiB,
      (v) => v < 150,
      `${fmt(m === undefined ? undefined : m.peakMiB - m.baselineMiB)} MiB`,
    );
  }
  const loadAfter = loadavg();
  await publishReport('objectstore-latest.json', {
    title: '## Object storage: Berth and Distribution 3 on SeaweedFS S3 and Redis behind Toxiproxy',
    table: [...lines, '', '**Targets** (informative only):', '', ...checks.map((c) => `- ${c}`)].join('\n'),
    notes: [
      'Ratios: > 1 means Berth is better (req/s and MiB/s Berth ÷ Distribution 3).',
      `Both registries go through the same Toxiproxy proxies (latency toxics of ${s.s3LatencyMs} ms to S3 and ${s.redisLatencyMs} ms to Redis, each way; 0 on the loopback rows), one registry at a time; same bucket (own root directory each), same redis-server (own database each), FLUSHALL and fresh processes before each scenario.`,
      "Distribution has no two-tier cache: in that mode it runs its Redis cache. Its Redis pool (poolsize, maxidleconns) equals the load's connections. Blob GETs stream through both registries (storage.redirect.disable: true for both; with redirects on, bytes would bypass both).",
      'Object-store requests per HEAD are counted at the S3 server (SeaweedFS_s3_request_total) over the measured load, divided by the HEADs completed.',
      "Not like for like: SeaweedFS on loopback answers in well under a millisecond before the added latency, where a real S3 takes 5–20 ms and varies; the filesystem rows are on this machine's disk.",
      `${s.quick ? '**QUICK run**: for checking the harness, not for quoting. ' : ''}HEAD loads: ${s.durationS} s after ${s.warmupS} s warm-up at ${s.connections} connections; transfers: one run each.`,
      `Machine: ${machineText()}; load generator, registries, SeaweedFS, Redis and Toxiproxy share it. Load average before ${loadText(loadBefore)}, after ${loadText(loadAfter)}.`,
    ],
    startedAt,
    settings: s,
    loadBefore,
    loadAfter,
    extra: { heads, transfers, memory, targets: checks },
  });
}

let generated: Awaited<ReturnType<typeof generateData>> | undefined;
async function generateDataOnce(work: string, s: Settings) {
  if (generated === undefined) {
    progress(`generating ${Math.max(s.blobMiB, s.bigMiB)} MiB of random data`);
    generated = await generateData(work, s);
  }
  return generated;
}
