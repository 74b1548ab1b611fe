// BENCH_SUITE=cache: the blob descriptor cache compared mode by mode (storage only, inmemory, redis, two-tier). Each
// mode starts Berth and both Distribution builds afresh with that cache (Distribution has no two-tier cache and runs
// redis there), each with its own redis-server, and measures cached HEAD load, manifest PUTs that reference many
// layers, and (from Berth's /metrics) storage operations per cached HEAD. Table to stdout, JSON to
// bench/results/cache-latest.json.
//
// Environment (all optional): BENCH_QUICK, BENCH_DURATION, BENCH_WARMUP, BENCH_CONNECTIONS, BENCH_REGISTRIES,
// BENCH_TMPDIR and BENCH_KEEP as for run.ts, and
//   BENCH_CACHE_MODES=none,inmemory,redis,twotier   the modes to run (default: all four, in this order)
//   BENCH_LAYERS (default 50), BENCH_PUTS (timed manifest PUTs per registry and mode; default 100, quick 20)
import { randomFillSync } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildCacheRows, cacheMarkdownTable, MODE_LABELS, type ModeResult, type ModeResults } from './cache-report.js';
import { RegistryClient, RegistryError } from './client.js';
import {
  envNumber,
  imageConfig,
  imageManifest,
  loadSettings,
  loadSummary,
  loadText,
  machineInfo,
  machineText,
  publishReport,
  median,
  OCI_MANIFEST,
  percentile,
  progress,
  registriesFromEnv,
  rotated,
  sha256,
  stopOnSignals,
  workSettings,
} from './common.js';
import { runLoad } from './load.js';
import { cpuSeconds } from './proc.js';
import { descriptorKeys, startRedis, type RunningRedis } from './redis.js';
import {
  CACHE_MODES,
  labelOf,
  REGISTRY_IDS,
  startRegistry,
  type CacheMode,
  type RegistryId,
  type RunningRegistry,
} from './registries.js';

const REPO = 'bench/cache';

function readSettings() {
  const quick = process.env['BENCH_QUICK'] === '1';
  const modesRaw = (process.env['BENCH_CACHE_MODES'] ?? CACHE_MODES.join(','))
    .split(',')
    .map((m) => m.trim())
    .filter((m) => m !== '');
  const unknown = modesRaw.filter((m) => !(CACHE_MODES as readonly string[]).includes(m));
  const modes = CACHE_MODES.filter((m) => modesRaw.includes(m));
  if (unknown.length > 0 || modes.length === 0)
    throw new Error(`BENCH_CACHE_MODES: choose from ${CACHE_MODES.join(', ')}`);
  return {
    quick,
    modes,
    registries: registriesFromEnv(),
    ...loadSettings(quick),
    layers: Math.round(envNumber('BENCH_LAYERS', 50, 1, 1000)),
    // 100 samples make p99 the second-slowest PUT rather than the slowest; they take about a second per registry.
    puts: Math.round(envNumber('BENCH_PUTS', quick ? 20 : 100, 1, 1000)),
    ...workSettings(),
  };
}
type Settings = ReturnType<typeof readSettings>;

interface LayeredImage {
  readonly config: Buffer;
  readonly layers: readonly Buffer[];
  /** The layer the HEAD load asks for. */
  readonly headDigest: string;
  readonly headSize: number;
}

/** Small random layers (so pushing them costs little) and a config; every registry gets the same bytes. */
function makeImage(layerCount: number): LayeredImage {
  const layers = Array.from({ length: layerCount }, (_, i) => randomFillSync(Buffer.alloc(1024 + ((i * 37) % 1024))));
  const config = imageConfig(layers);
  const head = layers[0];
  if (head === undefined) throw new Error('an image needs at least one layer');
  return { config, layers, headDigest: sha256(head), headSize: head.length };
}

/** A manifest of the image made distinct by its annotation, so every PUT stores a new manifest. */
function manifestFor(image: LayeredImage, sequence: number): Buffer {
  return imageManifest(image.config, image.layers, { 'io.berth.bench.sequence': String(sequence) });
}

/**
 * Pushes config and layers, then HEADs each once, as a client checks for blobs before pushing its manifest: from here
 * on every cache holds every descriptor, so what follows measures cached lookups.
 */
async function seed(client: RegistryClient, image: LayeredImage): Promise<void> {
  for (const blob of [image.config, ...image.layers]) await client.pushMonolithic(REPO, blob, sha256(blob));
  for (const blob of [image.config, ...image.layers]) {
    const reply = await client.send('HEAD', `/v2/${REPO}/blobs/${sha256(blob)}`);
    // The HEAD load counts only 2xx answers; check here that the answer is the right one.
    if (reply.status !== 200 || reply.headers['content-length'] !== String(blob.length))
      throw new RegistryError(`HEAD ${sha256(blob)}`, reply);
  }
}

interface MetricsSnapshot {
  /** HEAD requests Berth has answered (any route, any status). */
  readonly headRequests: number;
  readonly inFlight: number;
  readonly storageOperations: number;
  readonly cacheRequests: ReadonlyMap<string, number>;
  readonly cacheHits: number;
  readonly cacheErrors: number;
}

function fetchText(url: URL): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get(url, { timeout: 10_000, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(Buffer.concat(chunks).toString('utf8'))
          : reject(new Error(`GET ${url.href}: HTTP ${res.statusCode}`)),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url.href}: timeout`)));
    req.on('error', reject);
  });
}

/** Reads Berth's Prometheus text: storage driver operations, and cache lookups, hits and errors by tier. */
async function scrape(debugUrl: URL): Promise<MetricsSnapshot> {
  const text = await fetchText(new URL('/metrics', debugUrl));
  let headRequests = 0;
  let inFlight = 0;
  let storageOperations = 0;
  let cacheHits = 0;
  let cacheErrors = 0;
  const cacheRequests = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (m === null) continue;
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    const labels = m[2] ?? '';
    const tier = /(?:^|,)tier="([^"]*)"/.exec(labels)?.[1] ?? '';
    switch (m[1]) {
      case 'registry_http_requests_total':
        if (/(?:^|,)method="HEAD"/.test(labels)) headRequests += value;
        break;
      case 'registry_http_in_flight_requests':
        inFlight += value;
        break;
      case 'registry_storage_action_seconds_count':
        storageOperations += value;
        break;
      case 'registry_storage_cache_requests_total':
        cacheRequests.set(tier, (cacheRequests.get(tier) ?? 0) + value);
        break;
      case 'registry_storage_cache_hits_total':
        cacheHits += value;
        break;
      case 'registry_storage_cache_errors_total':
        cacheErrors += value;
        break;
    }
  }
  return { headRequests, inFlight, storageOperations, cacheRequests, cacheHits, cacheErrors };
}

/**
 * A snapshot once Berth has finished the requests still in flight when the load generator stopped, so that requests,
 * lookups, hits and storage operations all belong to the same window. Gives up waiting after two seconds.
 */
async function settledScrape(debugUrl: URL): Promise<MetricsSnapshot> {
  let snapshot = await scrape(debugUrl);
  for (let i = 0; i < 40 && snapshot.inFlight > 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    snapshot = await scrape(debugUrl);
  }
  return snapshot;
}

/**
 * Every lookup asks the front tier first and a tier further back only on a miss, so the front tier's requests (the
 * largest count) are the lookups, and the hits of all tiers together are the lookups some tier answered.
 */
function cacheDelta(
  before: MetricsSnapshot,
  after: MetricsSnapshot,
): { lookups: number; hits: number; errors: number } {
  let lookups = 0;
  for (const [tier, n] of after.cacheRequests) lookups = Math.max(lookups, n - (before.cacheRequests.get(tier) ?? 0));
  return { lookups, hits: after.cacheHits - before.cacheHits, errors: after.cacheErrors - before.cacheErrors };
}

interface Running {
  readonly reg: RunningRegistry;
  readonly client: RegistryClient;
  readonly redis: RunningRedis | undefined;
  readonly out: ModeResult;
}

interface Step {
  readonly name: string;
  readonly run: (r: Running) => Promise<void>;
}

function steps(s: Settings, image: LayeredImage): Step[] {
  return [
    {
      name: `HEAD blob at ${s.connections} connections`,
      run: async ({ reg, redis, out }) => {
        const spec = { method: 'HEAD', url: new URL(`/v2/${REPO}/blobs/${image.headDigest}`, reg.baseUrl) } as const;
        const settings = { connections: s.connections, pid: reg.pid };
        if (s.warmupS > 0) await runLoad(spec, { ...settings, durationS: s.warmupS });
        const before = reg.debugUrl === undefined ? undefined : await settledScrape(reg.debugUrl);
        const redisCpu0 = redis === undefined ? 0 : cpuSeconds(redis.pid);
        const r = await runLoad(spec, { ...settings, durationS: s.durationS });
        const redisCpu = redis === undefined ? 0 : cpuSeconds(redis.pid) - redisCpu0;
        const after = reg.debugUrl === undefined ? undefined : await settledScrape(reg.debugUrl);
        out.head = r;
        if (redis !== undefined && r.requests > 0) out.redisCpuMicrosPerRequest = (redisCpu * 1e6) / r.requests;
        let account = '';
        if (before !== undefined && after !== undefined) {
          const operations = after.storageOperations - before.storageOperations;
          // Berth's own count of HEADs answered in the window; autocannon's misses those in flight at its stop.
          const served = after.headRequests - before.headRequests;
          const requests = served > 0 ? served : r.requests;
          const cache = cacheDelta(before, after);
          out.storage = {
            operations,
            requests,
            operationsPerRequest: requests > 0 ? operations / requests : Number.NaN,
            cacheLookups: cache.lookups,
            cacheHits: cache.hits,
            cacheErrors: cache.errors,
            hitRatio: cache.lookups > 0 ? cache.hits / cache.lookups : undefined,
          };
          account =
            `, ${operations} storage ops (${out.storage.operationsPerRequest.toFixed(3)}/req), ` +
            `cache ${cache.hits}/${cache.lookups} hits${cache.errors > 0 ? `, ${cache.errors} cache errors` : ''}`;
        }
        progress(`  ${reg.label}: ${loadSummary(r, account)}`);
      },
    },
    {
      name: `${s.puts} manifest PUTs of ${s.layers} layers`,
      run: async ({ reg, client, out }) => {
        // One untimed PUT first: the first manifest a process handles also pays for code paths run once.
        await client.putManifest(REPO, 'warmup', OCI_MANIFEST, manifestFor(image, 0));
        const samples: number[] = [];
        for (let i = 1; i <= s.puts; i++) {
          const manifest = manifestFor(image, i);
          const t0 = performance.now();
          await client.putManifest(REPO, `put-${i}`, OCI_MANIFEST, manifest);
          // Microseconds are more than the timer's real resolution here; more digits would only bloat the JSON.
          samples.push(Math.round((performance.now() - t0) * 1000) / 1000);
        }
        out.put = { samplesMs: samples, medianMs: median(samples), p99Ms: percentile(samples, 0.99) };
        progress(
          `  ${reg.label}: manifest PUT median ${out.put.medianMs.toFixed(2)} ms, p99 ${out.put.p99Ms.toFixed(2)} ms ` +
            `(min ${Math.min(...samples).toFixed(2)}, max ${Math.max(...samples).toFixed(2)})`,
        );
      },
    },
  ];
}

/**
 * Starts a registry (and its redis-server, for the Redis modes) with the cache setting it gets in `mode`; the floor
 * suite starts its registries here too.
 */
export async function startWithCache(
  id: RegistryId,
  mode: CacheMode,
  dir: string,
): Promise<Omit<Running, 'client' | 'out'>> {
  // Distribution has no two-tier cache: against Berth's two tiers it runs its Redis cache.
  const setting: CacheMode = id !== 'berth' && mode === 'twotier' ? 'redis' : mode;
  await mkdir(dir, { recursive: true });
  const redis = setting === 'redis' || setting === 'twotier' ? await startRedis(join(dir, 'redis')) : undefined;
  try {
    const reg = await startRegistry(id, {
      dir,
      cache: setting,
      ...(redis === undefined ? {} : { redisPort: redis.port }),
    });
    return { reg, redis };
  } catch (err) {
    await redis?.stop();
    throw err;
  }
}

async function runMode(
  s: Settings,
  mode: CacheMode,
  modeIndex: number,
  image: LayeredImage,
  work: string,
): Promise<{ results: ModeResults; labels: Partial<Record<RegistryId, string>> }> {
  progress(`mode ${MODE_LABELS[mode]}: starting ${s.registries.map(labelOf).join(', ')}`);
  const running: Running[] = [];
  try {
    const started = await Promise.allSettled(s.registries.map((id) => startWithCache(id, mode, join(work, mode, id))));
    for (const r of started) {
      if (r.status !== 'fulfilled') continue;
      const { reg, redis } = r.value;
      const setting: CacheMode = reg.id !== 'berth' && mode === 'twotier' ? 'redis' : mode;
      const out: ModeResult = { setting, version: reg.version };
      running.push({ reg, redis, client: new RegistryClient(reg.baseUrl), out });
    }
    const failed = started.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;

    for (const [i, r] of running.entries()) {
      const { reg, redis } = r;
      progress(
        `  ${reg.label} (cache ${r.out.setting}): pid ${reg.pid}, ${reg.baseUrl.host}` +
          `${redis === undefined ? '' : `, ${redis.version} on port ${redis.port}`}; seeding ${s.layers} layers + config`,
      );
      await seed(r.client, image);
      if (redis !== undefined) {
        // A registry that ignored its redis section would be compared on the wrong cache: refuse to go on.
        const keys = await descriptorKeys(redis.port);
        if (keys === 0)
          throw new Error(`${reg.label}: no blob descriptor keys in its Redis after seeding; is it using Redis?`);
        running[i] = { ...r, out: { ...r.out, redis: { version: redis.version, descriptorKeys: keys } } };
        progress(`  ${reg.label}: ${keys} descriptor keys in Redis`);
      }
    }

    const plan = steps(s, image);
    for (const [n, step] of plan.entries()) {
      for (const r of rotated(running, n + modeIndex)) {
        progress(`${r.reg.label} [${MODE_LABELS[mode]}]: ${step.name}`);
        await step.run(r);
      }
    }
    return {
      results: Object.fromEntries(running.map((r) => [r.reg.id, r.out])),
      labels: Object.fromEntries(running.map((r) => [r.reg.id, r.reg.label])),
    };
  } finally {
    for (const r of running) r.client.close();
    await Promise.allSettled(running.map((r) => r.reg.stop()));
    await Promise.allSettled(running.map((r) => r.redis?.stop()));
  }
}

export async function runCacheSuite(): Promise<void> {
  const s = readSettings();
  const startedAt = new Date();
  const loadBefore = loadavg();
  if (process.env['BENCH_CACHE'] !== undefined)
    progress('BENCH_CACHE is ignored by the cache suite; BENCH_CACHE_MODES picks the modes');
  progress(
    `cache suite${s.quick ? ' (QUICK)' : ''}: modes ${s.modes.join(', ')}; HEAD loads ${s.warmupS}+${s.durationS} s at ` +
      `${s.connections} connections; ${s.puts} manifest PUTs of ${s.layers} layers; ` +
      `load average ${loadText(loadBefore)}`,
  );

  const work = await mkdtemp(join(s.tmp, 'berth-bench-cache-'));
  stopOnSignals(work, s.keep, 'registries and redis-servers');

  try {
    const image = makeImage(s.layers);
    const results: Partial<Record<CacheMode, ModeResults>> = {};
    // Modes run one after another, so a busy spell on the machine skews one mode only: this shows where.
    const modeLoad: Partial<Record<CacheMode, number>> = {};
    const labels: Record<RegistryId, string> = {
      berth: labelOf('berth'),
      dist3: labelOf('dist3'),
      dist28: labelOf('dist28'),
    };
    for (const [i, mode] of s.modes.entries()) {
      modeLoad[mode] = loadavg()[0] ?? Number.NaN;
      const r = await runMode(s, mode, i, image, work);
      results[mode] = r.results;
      Object.assign(labels, r.labels);
    }

    const rows = buildCacheRows(s.modes, results, s.layers);
    const loadAfter = loadavg();
    const versions = Object.fromEntries(
      REGISTRY_IDS.flatMap((id) => {
        const v = s.modes.map((m) => results[m]?.[id]?.version).find((x) => x !== undefined);
        return v === undefined ? [] : [[id, v]];
      }),
    );
    const redisVersion = s.modes
      .flatMap((m) => Object.values(results[m] ?? {}).map((r) => r.redis?.version))
      .find((v) => v !== undefined);
    const warnings = rows.flatMap((r) => r.warnings.map((w) => `${r.mode} / ${r.metric}: ${w}`));
    const notes = [
      `Ratios are oriented so that **> 1 means Berth is better**: req/s is Berth ÷ other; latency and CPU are other ÷ Berth.`,
      `Targets are informative only (✓ met, ✗ not met); the run never fails on them.`,
      `Each mode starts every registry afresh with that blob descriptor cache and, for redis, its own redis-server ` +
        `(${redisVersion ?? 'redis'}, loopback, no persistence). Distribution has no two-tier cache, so in the two-tier ` +
        `mode it runs (again, in the same conditions) with redis. Redis timeouts are the same for all ` +
        `(dial 2s, read/write 200ms); Distribution's connection pools allow 64 connections.`,
      `${s.quick ? '**QUICK run** (short loads, few PUTs): for checking the harness, not for quoting. ' : ''}` +
        `HEAD loads: ${s.durationS} s after ${s.warmupS} s warm-up at ${s.connections} connections on one ${image.headSize}-byte layer. ` +
        `Manifest PUTs: ${s.puts} timed (after 1 untimed) distinct OCI manifests of ${s.layers} layers + config, one at a time, ` +
        `after one HEAD per blob; p99 is nearest-rank (${s.puts >= 100 ? 'not' : 'nearly'} the slowest of ${s.puts}).`,
      `Storage ops per HEAD: the change in Berth's registry_storage_action_seconds_count (summed over drivers and ` +
        `actions) over the measured load, ÷ the HEADs it answered meanwhile (registry_http_requests_total); the hit ` +
        `ratio is hits of all tiers ÷ lookups over the same window. Both read once nothing is in flight.`,
      `Machine: ${machineText()}; load generator, registries and ` +
        `redis-servers share it. Load average before ${loadText(loadBefore)}, ` +
        `after ${loadText(loadAfter)}; 1-minute load as each mode began: ` +
        `${s.modes.map((m) => `${MODE_LABELS[m]} ${modeLoad[m]?.toFixed(2) ?? '?'}`).join(', ')}. ` +
        `Two-tier ÷ redis compares two modes, run a minute or so apart: noise there hits it fully.`,
      `Versions: ${Object.entries(versions)
        .map(([id, v]) => `${labels[id as RegistryId]}: ${v}`)
        .join('; ')}. Distribution 3 runs with OTEL_TRACES_EXPORTER=none.`,
      ...(warnings.length > 0 ? [`⚠ failures during: ${warnings.join('; ')}`] : []),
    ];
    await publishReport('cache-latest.json', {
      title: '## Blob descriptor cache: Berth vs CNCF Distribution',
      table: cacheMarkdownTable(rows, labels),
      notes,
      startedAt,
      settings: s,
      loadBefore,
      loadAfter,
      extra: {
        suite: 'cache',
        machine: { ...machineInfo(loadBefore, loadAfter), loadAtModeStart: modeLoad },
        versions: { ...versions, redis: redisVersion },
        rows,
        results,
      },
    });
  } finally {
    if (s.keep) progress(`kept ${work}`);
    else await rm(work, { recursive: true, force: true });
  }
}
