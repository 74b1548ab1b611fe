// BENCH_SUITE=floor: where Node.js itself stands on this machine, for the targets Berth misses. In one run, beside
// Distribution 3 and Berth, it measures floor-server.ts (the least a Node.js registry could do: no grammar, no
// sessions in storage, no logs, no metrics) on
//   1. pushes of BENCH_BLOB_MIB (512), monolithic and in BENCH_CHUNK_MIB (8) chunks: node:http receiving, hashing
//      and appending (writes through the thread pool, and on the event loop), beside both Distribution versions;
//   2. HEAD of a blob whose descriptor is in process memory: node:http, and one Koa middleware (beside Berth's
//      in-memory and two-tier caches: the two-tier target, 1.5× Berth with Redis, is set against these floors);
//   3. HEAD of a blob whose descriptor is in Redis: one Koa middleware making one ioredis HGETALL (its commands
//      gathered per event-loop turn, as Berth's are).
// The table prints each against Distribution 3 under the same setting, and the rate a target asks of Berth, so a
// target above the floor shows as out of reach for a single-threaded Node.js server here. Table to stdout, JSON to
// bench/results/floor-latest.json.
//
// Environment (all optional): BENCH_QUICK, BENCH_DURATION, BENCH_WARMUP, BENCH_CONNECTIONS, BENCH_REPEAT,
// BENCH_BLOB_MIB, BENCH_CHUNK_MIB, BENCH_TMPDIR and BENCH_KEEP as for run.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { RegistryClient, type FileRange } from './client.js';
import {
  envNumber,
  loadSettings,
  loadSummary,
  loadText,
  machineText,
  publishReport,
  median,
  MIB,
  progress,
  rotated,
  settleDisk,
  stopOnSignals,
  workSettings,
} from './common.js';
import type { FloorKind } from './floor-server.js';
import { runLoad, type LoadResult } from './load.js';
import { cpuSeconds } from './proc.js';
import { startWithCache } from './cache.js';
import { CHUNKED_PUSH_NOTE } from './report.js';
import { startRedis } from './redis.js';
import { freePort, probe, REPO_ROOT, trackChild, type CacheMode } from './registries.js';

function readSettings() {
  const quick = process.env['BENCH_QUICK'] === '1';
  return {
    quick,
    blobMiB: Math.round(envNumber('BENCH_BLOB_MIB', quick ? 32 : 512, 1, 16_384)),
    chunkMiB: Math.round(envNumber('BENCH_CHUNK_MIB', 8, 1, 1024)),
    repeat: Math.round(envNumber('BENCH_REPEAT', quick ? 1 : 3, 1, 20)),
    ...loadSettings(quick),
    ...workSettings(),
  };
}
type Settings = ReturnType<typeof readSettings>;

/** Something the suite measures: a registry or a floor server, and how to stop it (and its redis-server). */
interface Target {
  readonly label: string;
  readonly pid: number;
  readonly baseUrl: URL;
  stop(): Promise<void>;
}

const FLOOR_LABELS: Readonly<Record<FloorKind, string>> = {
  http: 'node:http',
  'http-sync': 'node:http, writes on the event loop',
  koa: 'Koa',
  'koa-redis': 'Koa + ioredis',
};

async function startFloor(kind: FloorKind, dir: string, redisPort?: number): Promise<Target> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const script = join(REPO_ROOT, 'dist/bench/floor-server.js');
  const fd = openSync(join(dir, 'floor.log'), 'a');
  let child: ChildProcess;
  try {
    const args = [script, kind, String(port), dir, ...(redisPort === undefined ? [] : [String(redisPort)])];
    child = spawn(process.execPath, args, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  trackChild(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  const baseUrl = new URL(`http://127.0.0.1:${port}`);
  for (let attempt = 0; attempt < 100; attempt++) {
    await new Promise((r) => setTimeout(r, 100));
    if (child.exitCode !== null) break;
    if ((await probe(baseUrl)) === 200 && child.pid !== undefined) {
      return {
        label: `floor: ${FLOOR_LABELS[kind]}`,
        pid: child.pid,
        baseUrl,
        stop,
      };
    }
  }
  await stop();
  throw new Error(`floor-server ${kind} did not answer GET /v2/ (log in ${dir})`);
}

/** A registry, with its own redis-server when `cache` is redis (as the cache suite starts them). */
async function startReal(id: 'berth' | 'dist3' | 'dist28', cache: CacheMode, dir: string): Promise<Target> {
  const { reg, redis } = await startWithCache(id, cache, dir);
  return {
    label: `${reg.label} (${cache === 'none' ? 'storage only' : cache})`,
    pid: reg.pid,
    baseUrl: reg.baseUrl,
    stop: async () => {
      await reg.stop();
      await redis?.stop();
    },
  };
}

/** Random bytes in a file, and their digest. */
async function randomBlob(file: string, mib: number): Promise<{ range: FileRange; digest: string }> {
  const hash = createHash('sha256');
  const buffer = Buffer.alloc(MIB);
  const handle = await open(file, 'w');
  try {
    for (let i = 0; i < mib; i++) {
      randomFillSync(buffer);
      hash.update(buffer);
      await handle.write(buffer, 0, buffer.length, i * MIB);
    }
  } finally {
    await handle.close();
  }
  return { range: { file, start: 0, length: mib * MIB }, digest: `sha256:${hash.digest('hex')}` };
}

interface Measured {
  readonly label: string;
  /** MiB/s or req/s. */
  readonly rate: number;
  /** Server CPU: seconds per GiB, or µs per request. */
  readonly cpu: number;
  readonly detail: string;
}

type PushMode = 'monolithic' | 'chunked';

async function pushes(
  s: Settings,
  targets: readonly Target[],
  blob: { range: FileRange; digest: string },
  mode: PushMode,
): Promise<Measured[]> {
  const rates = targets.map(() => [] as number[]);
  const cpus = targets.map(() => [] as number[]);
  for (let round = 0; round < s.repeat; round++) {
    for (const i of rotated([...targets.keys()], round)) {
      const t = targets[i];
      if (t === undefined) continue;
      const client = new RegistryClient(t.baseUrl);
      try {
        settleDisk();
        const cpu0 = cpuSeconds(t.pid);
        const t0 = performance.now();
        if (mode === 'chunked')
          await client.pushChunked(`floor/chunked${round}`, blob.range, blob.digest, s.chunkMiB * MIB);
        else await client.pushMonolithic(`floor/monolithic${round}`, blob.range, blob.digest);
        const seconds = (performance.now() - t0) / 1000;
        const cpu = cpuSeconds(t.pid) - cpu0;
        rates[i]?.push(s.blobMiB / seconds);
        cpus[i]?.push(cpu / (s.blobMiB / 1024));
        progress(`  ${t.label}: ${mode} push ${round + 1}/${s.repeat}: ${(s.blobMiB / seconds).toFixed(1)} MiB/s`);
      } finally {
        client.close();
      }
    }
  }
  return targets.map((t, i) => ({
    label: t.label,
    rate: median(rates[i] ?? []),
    cpu: median(cpus[i] ?? []),
    detail: (rates[i] ?? []).map((r) => r.toFixed(0)).join(', '),
  }));
}

async function headLoads(s: Settings, targets: readonly Target[]): Promise<Measured[]> {
  const layer = randomFillSync(Buffer.alloc(2048));
  const digest = `sha256:${createHash('sha256').update(layer).digest('hex')}`;
  const out: Measured[] = [];
  for (const t of targets) {
    const client = new RegistryClient(t.baseUrl);
    try {
      await client.pushMonolithic('floor/head', layer, digest);
      const check = await client.send('HEAD', `/v2/floor/head/blobs/${digest}`);
      if (check.status !== 200 || check.headers['content-length'] !== '2048')
        throw new Error(`${t.label}: HEAD of the pushed blob: HTTP ${check.status}`);
    } finally {
      client.close();
    }
    const spec = { method: 'HEAD' as const, url: new URL(`/v2/floor/head/blobs/${digest}`, t.baseUrl) };
    const settings = { connections: s.connections, pid: t.pid };
    if (s.warmupS > 0) await runLoad(spec, { ...settings, durationS: s.warmupS });
    const r: LoadResult = await runLoad(spec, { ...settings, durationS: s.durationS });
    if (r.non2xx + r.errors + r.timeouts > 0) throw new Error(`${t.label}: ${loadSummary(r)}`);
    progress(`  ${t.label}: ${loadSummary(r)}`);
    out.push({
      label: t.label,
      rate: r.requestsPerSecond,
      cpu: r.serverCpuMicrosPerRequest,
      detail: `p99 ${r.p99Ms.toFixed(2)} ms`,
    });
  }
  return out;
}

/** Starts targets one after another (all or none), runs `measure` over them, and stops them whatever happens. */
async function withTargets<T>(
  starts: ReadonlyArray<() => Promise<Target>>,
  measure: (t: Target[]) => Promise<T>,
): Promise<T> {
  const targets: Target[] = [];
  try {
    for (const start of starts) targets.push(await start());
    return await measure(targets);
  } finally {
    await Promise.allSettled(targets.map((t) => t.stop()));
  }
}

/** A target the issue sets for Berth: `times` the rate of `name` (a reference registry, or Berth in another mode). */
interface BlockTarget {
  readonly name: string;
  readonly times: number;
  readonly rate: number;
}

interface Block {
  readonly title: string;
  readonly unit: string;
  readonly cpuUnit: string;
  /** Distribution 3 first: the ÷ D3 column divides by it. */
  readonly results: readonly Measured[];
  readonly targets: readonly BlockTarget[];
}

function rate(results: readonly Measured[], i: number): number {
  return results[i]?.rate ?? Number.NaN;
}

function blockRows(b: Block): string[] {
  const reference = b.results[0]?.rate ?? Number.NaN;
  const digits = b.unit === 'MiB/s' ? 1 : 0;
  const rows = b.results.map(
    (m) =>
      `| ${b.title} | ${m.label} | ${m.rate.toFixed(digits)} ${b.unit} | ` +
      `${(m.rate / reference).toFixed(2)}× | ${m.cpu.toFixed(b.cpuUnit === 's/GiB' ? 2 : 1)} ${b.cpuUnit} | ${m.detail} |`,
  );
  const best = Math.max(...b.results.filter((m) => m.label.startsWith('floor')).map((m) => m.rate));
  for (const t of b.targets) {
    const asked = t.rate * t.times;
    rows.push(
      `| ${b.title} | **target for Berth: ≥${t.times}× ${t.name}** | ${asked.toFixed(digits)} ${b.unit} | ` +
        `${(asked / reference).toFixed(2)}× | | best floor ÷ target: ${(best / asked).toFixed(2)} |`,
    );
  }
  return rows;
}

export async function runFloorSuite(): Promise<void> {
  const s = readSettings();
  const startedAt = new Date();
  const loadBefore = loadavg();
  const work = await mkdtemp(join(s.tmp, 'berth-floor-'));
  stopOnSignals(work, s.keep, 'servers');
  progress(
    `floor suite: ${s.blobMiB} MiB monolithic and in ${s.chunkMiB} MiB chunks ×${s.repeat}; HEAD loads ${s.warmupS}+${s.durationS} s ` +
      `at ${s.connections} connections; load average ${loadText(loadBefore)}`,
  );
  try {
    const d = (name: string): string => join(work, name);
    progress(
      'pushes: Distribution 3, Distribution 2.8, node:http floors (thread-pool and event-loop writes), Berth (storage only)',
    );
    const blob = await randomBlob(join(work, 'blob.bin'), s.blobMiB);
    const [monolithic, chunked] = await withTargets(
      [
        () => startReal('dist3', 'none', d('push-dist3')),
        () => startReal('dist28', 'none', d('push-dist28')),
        () => startFloor('http', d('push-floor')),
        () => startFloor('http-sync', d('push-floor-sync')),
        () => startReal('berth', 'none', d('push-berth')),
      ],
      async (t) => [await pushes(s, t, blob, 'monolithic'), await pushes(s, t, blob, 'chunked')] as const,
    );
    progress('HEAD, descriptor in memory: Distribution 3, node:http floor, Koa floor, Berth (inmemory, twotier)');
    const memory = await withTargets(
      [
        () => startReal('dist3', 'inmemory', d('mem-dist3')),
        () => startFloor('http', d('mem-http')),
        () => startFloor('koa', d('mem-koa')),
        () => startReal('berth', 'inmemory', d('mem-berth')),
        () => startReal('berth', 'twotier', d('mem-berth-twotier')),
      ],
      (t) => headLoads(s, t),
    );
    progress('HEAD, descriptor in Redis: Distribution 3, Koa + ioredis floor, Berth (redis)');
    const redis = await withTargets(
      [
        () => startReal('dist3', 'redis', d('redis-dist3')),
        async () => {
          const server = await startRedis(d('redis-floor-server'));
          try {
            const floor = await startFloor('koa-redis', d('redis-floor'), server.port);
            return { ...floor, stop: async () => (await floor.stop(), await server.stop()) };
          } catch (err) {
            await server.stop();
            throw err;
          }
        },
        () => startReal('berth', 'redis', d('redis-berth')),
      ],
      (t) => headLoads(s, t),
    );

    const blocks: Block[] = [
      {
        title: `push ${s.blobMiB} MiB monolithic`,
        unit: 'MiB/s',
        cpuUnit: 's/GiB',
        results: monolithic,
        targets: [
          { name: 'D3', times: 1.5, rate: rate(monolithic, 0) },
          { name: 'D2.8', times: 2.5, rate: rate(monolithic, 1) },
        ],
      },
      {
        // [1]: the note on durability under the table.
        title: `push ${s.blobMiB} MiB in ${s.chunkMiB} MiB chunks [1]`,
        unit: 'MiB/s',
        cpuUnit: 's/GiB',
        results: chunked,
        targets: [
          { name: 'D3', times: 1.5, rate: rate(chunked, 0) },
          { name: 'D2.8', times: 4, rate: rate(chunked, 1) },
        ],
      },
      {
        // The two-tier target compares Berth with itself: its in-process tier (here) against Redis (next block).
        title: 'HEAD blob, descriptor in memory',
        unit: 'req/s',
        cpuUnit: 'µs/req',
        results: memory,
        targets: [{ name: 'Berth (redis) [two-tier]', times: 1.5, rate: rate(redis, 2) }],
      },
      {
        title: 'HEAD blob, descriptor in Redis',
        unit: 'req/s',
        cpuUnit: 'µs/req',
        results: redis,
        targets: [{ name: 'D3', times: 5, rate: rate(redis, 0) }],
      },
    ];
    // The two-tier target compares Berth from process memory with Berth from Redis; the same ratio between the two
    // Koa floors bounds what any Koa server reaches here, whatever else it does per request.
    const twoTierFloor = rate(memory, 2) / rate(redis, 1);
    const twoTierBerth = rate(memory, 4) / rate(redis, 2);
    const table = [
      '| measurement | server | rate | ÷ D3 | server CPU | runs / p99 |',
      '| --- | --- | --- | --- | --- | --- |',
      ...blocks.flatMap(blockRows),
      `| HEAD blob, memory ÷ Redis | floor: Koa ÷ floor: Koa + ioredis | ${twoTierFloor.toFixed(2)}× | | | ` +
        'the most a Koa server gains here by answering from process memory instead of Redis |',
      `| HEAD blob, memory ÷ Redis | Berth (twotier) ÷ Berth (redis) | ${twoTierBerth.toFixed(2)}× | | | target ≥1.5× |`,
    ].join('\n');
    const loadAfter = loadavg();
    const notes = [
      `[1] ${CHUNKED_PUSH_NOTE} The floors fsync as Berth does: once, before the rename that makes the blob.`,
      'The floors are floor-server.ts: no grammar checks, no sessions in storage, no logs, no metrics, no error ' +
        'envelope, everything on one thread. A target above every floor is out of reach of a single-threaded ' +
        'Node.js server on this machine (hashing on a worker thread is not part of the floor).',
      `${s.quick ? '**QUICK run**: for checking the harness, not for quoting. ' : ''}Pushes: median of ${s.repeat}, ` +
        `rotated order, \`sync\` before each. HEAD: ${s.warmupS} s warm-up, ${s.durationS} s at ${s.connections} ` +
        'connections (autocannon in this process).',
      `Machine: ${machineText()}; load generator and servers share it. Load average before ${loadText(loadBefore)}, ` +
        `after ${loadText(loadAfter)}.`,
    ];
    await publishReport('floor-latest.json', {
      title: '## Node.js floor',
      table,
      notes,
      startedAt,
      settings: s,
      loadBefore,
      loadAfter,
      extra: { blocks },
    });
  } finally {
    if (s.keep) progress(`kept ${work}`);
    else await rm(work, { recursive: true, force: true });
  }
}
