// Redis failing under a HEAD load on a running Berth: crashed (and restarted) or hung. No client request fails, the
// failures are counted in registry_storage_cache_errors_total, a hung Redis delays a request by at most the read
// timeout, and cache hits resume once Redis is back.
import assert from 'node:assert/strict';
import { spawnRegistry, type ChildRegistry } from '../helpers/harness.js';
import { scrape, sumOf } from '../helpers/prometheus.js';
import { headBlob, randomBlob, uploadBlob, type Blob } from '../helpers/push.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis.js';

const WORKERS = 4;
const READ_TIMEOUT_MS = 100;

interface Load {
  readonly statuses: Map<number, number>;
  readonly failures: string[];
  maxLatencyMs: number;
  requests: number;
  stop(): Promise<void>;
}

/** WORKERS concurrent clients HEADing the blobs in turn until stopped. */
function headLoad(url: string, name: string, blobs: readonly Blob[]): Load {
  let running = true;
  const load: Load = {
    statuses: new Map(),
    failures: [],
    maxLatencyMs: 0,
    requests: 0,
    stop: async () => {
      running = false;
      await workers;
    },
  };
  const worker = async (w: number): Promise<void> => {
    for (let i = w; running; i++) {
      const started = performance.now();
      try {
        const status = await headBlob(url, name, blobs[i % blobs.length]!.digest);
        load.statuses.set(status, (load.statuses.get(status) ?? 0) + 1);
      } catch (err) {
        load.failures.push(String(err));
      }
      load.maxLatencyMs = Math.max(load.maxLatencyMs, performance.now() - started);
      load.requests++;
    }
  };
  const workers = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  return load;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('redis outages under a HEAD load @integration', function () {
  this.timeout(120_000);

  for (const twotier of [false, true]) {
    describe(twotier ? 'two-tier cache' : 'redis cache', function () {
      let redis: RedisServer;
      let berth: ChildRegistry;
      let blobs: Blob[];

      beforeEach(async function () {
        redis = await startRedis();
        berth = await spawnRegistry({
          REGISTRY_STORAGE: 'inmemory',
          REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'redis',
          REGISTRY_STORAGE_CACHE_TWOTIER: String(twotier),
          REGISTRY_REDIS_ADDRS: `[${redis.addr}]`,
          REGISTRY_REDIS_READTIMEOUT: `${READ_TIMEOUT_MS}ms`,
          REGISTRY_REDIS_WRITETIMEOUT: `${READ_TIMEOUT_MS}ms`,
          REGISTRY_REDIS_DIALTIMEOUT: '500ms',
          REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
        });
        blobs = Array.from({ length: 5 }, () => randomBlob(512));
        for (const b of blobs) await uploadBlob(berth.url, 'load/test', b);
      });

      afterEach(async function () {
        await berth?.stop();
        await redis?.dispose();
      });

      const metric = async (name: string) => sumOf(await scrape(berth.debugUrl), name);

      it('fails no request while redis crashes and restarts, counts the errors, and hits again afterwards', async function () {
        const load = headLoad(berth.url, 'load/test', blobs);
        try {
          await eventually(async () => (await metric('registry_storage_cache_hits_total')) > 50, 'warm cache hits');
          const errorsBefore = await metric('registry_storage_cache_errors_total');
          await redis.kill();
          await sleep(1_000);
          const errorsDuring = await metric('registry_storage_cache_errors_total');
          assert.ok(errorsDuring > errorsBefore, `errors rise while redis is down (${errorsBefore} → ${errorsDuring})`);
          await redis.restart();
          const hitsAtRestart = await metric('registry_storage_cache_hits_total');
          await eventually(
            async () => (await metric('registry_storage_cache_hits_total')) > hitsAtRestart + 50,
            'hits after redis is back',
            20_000,
            100,
          );
          await eventually(
            async () =>
              ((await fetch(`${berth.debugUrl}/readyz`).then((r) => r.json())) as { checks: { cache: string } }).checks
                .cache === 'ok',
            'readiness of the cache',
            10_000,
            100,
          );
        } finally {
          await load.stop();
        }
        assert.deepEqual(load.failures, []);
        assert.deepEqual([...load.statuses.keys()], [200], `every HEAD answered 200 (${load.requests} requests)`);
        assert.ok(load.requests > 100);
      });

      it('delays a request by at most the read timeout while redis hangs', async function () {
        const load = headLoad(berth.url, 'load/test', blobs);
        try {
          await eventually(async () => (await metric('registry_storage_cache_hits_total')) > 50, 'warm cache hits');
          const warmMax = load.maxLatencyMs;
          const errorsBefore = await metric('registry_storage_cache_errors_total');
          redis.pause();
          await sleep(2_000);
          redis.resume();
          const errorsAfter = await metric('registry_storage_cache_errors_total');
          assert.ok(errorsAfter > errorsBefore, 'the hang is counted');
          const hits = await metric('registry_storage_cache_hits_total');
          await eventually(
            async () => (await metric('registry_storage_cache_hits_total')) > hits + 50,
            'hits after the hang',
            20_000,
            100,
          );
          assert.ok(
            load.maxLatencyMs < READ_TIMEOUT_MS + Math.max(250, warmMax),
            `slowest request ${load.maxLatencyMs.toFixed(0)}ms (warm ${warmMax.toFixed(0)}ms, timeout ${READ_TIMEOUT_MS}ms)`,
          );
        } finally {
          redis.resume();
          await load.stop();
        }
        assert.deepEqual(load.failures, []);
        assert.deepEqual([...load.statuses.keys()], [200]);
      });
    });
  }
});
