// A real Prometheus (the Debian package) scrapes Berth's debug listener; the cache-hit-ratio queries an operator
// would put on a dashboard, run through Prometheus's HTTP API, agree with the counters Berth exposes.
import assert from 'node:assert/strict';
import { startInProcess, type InProcessRegistry } from '../helpers/harness.js';
import { scrape, sumOf, type Sample } from '../helpers/prometheus.js';
import { startPrometheus, type PrometheusServer } from '../helpers/prometheus.js';
import { headBlob, randomBlob, uploadBlob } from '../helpers/push.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis.js';

const TIERS = ['memory', 'redis'] as const;

describe('cache hit ratio through a real Prometheus @integration', function () {
  this.timeout(120_000);
  let redis: RedisServer;
  let berth: InProcessRegistry;
  let prometheus: PrometheusServer;

  before(async function () {
    redis = await startRedis();
    berth = await startInProcess({
      storage: { cache: { blobdescriptor: 'redis', twotier: true } },
      redis: { addrs: [redis.addr], prefix: 'prom-' },
    });
    prometheus = await startPrometheus([new URL(berth.debugUrl).host], 1);
  });

  after(async function () {
    await prometheus?.stop();
    await berth?.close();
    await redis?.dispose();
  });

  async function promValue(query: string): Promise<number | undefined> {
    const result = await prometheus.query(query);
    return result[0]?.value;
  }

  it('computes the same hit ratio per tier as the counters, instant and rate-based', async function () {
    // Prometheus has seen the counters at zero before any traffic.
    await eventually(async () => (await promValue('up{job="berth"}')) === 1, 'a first successful scrape', 30_000, 200);
    await eventually(
      async () => (await promValue('sum(registry_storage_cache_requests_total)')) === 0,
      'the zero series in Prometheus',
      30_000,
      200,
    );

    const blobs = Array.from({ length: 3 }, () => randomBlob(256));
    for (const b of blobs) await uploadBlob(berth.url, 'prom/ratio', b);
    for (let i = 0; i < 10; i++)
      for (const b of blobs) assert.equal(await headBlob(berth.url, 'prom/ratio', b.digest), 200);
    for (let i = 0; i < 4; i++) assert.equal(await headBlob(berth.url, 'prom/ratio', randomBlob(8).digest), 404);

    const samples: Sample[] = await scrape(berth.debugUrl);
    const direct = Object.fromEntries(
      TIERS.map((tier) => [
        tier,
        {
          hits: sumOf(samples, 'registry_storage_cache_hits_total', { tier }),
          requests: sumOf(samples, 'registry_storage_cache_requests_total', { tier }),
        },
      ]),
    );
    const totalRequests = TIERS.reduce((s, t) => s + direct[t]!.requests, 0);
    assert.equal(direct['memory']!.hits, 27, '30 HEADs of 3 blobs: the first of each misses the LRU');
    assert.equal(direct['memory']!.requests, 30 + 3 + 4, 'plus a global lookup per first HEAD, and the misses');

    await eventually(
      async () => (await promValue('sum(registry_storage_cache_requests_total)')) === totalRequests,
      `Prometheus to scrape ${totalRequests} requests`,
      30_000,
      200,
    );
    const instant = await prometheus.query(
      'sum by (tier) (registry_storage_cache_hits_total) / sum by (tier) (registry_storage_cache_requests_total)',
    );
    const rated = await prometheus.query(
      'sum by (tier) (rate(registry_storage_cache_hits_total[5m])) / sum by (tier) (rate(registry_storage_cache_requests_total[5m]))',
    );
    for (const tier of TIERS) {
      const expected = direct[tier]!.hits / direct[tier]!.requests;
      const fromInstant = instant.find((r) => r.labels['tier'] === tier)?.value;
      const fromRate = rated.find((r) => r.labels['tier'] === tier)?.value;
      assert.ok(
        fromInstant !== undefined && Math.abs(fromInstant - expected) < 1e-12,
        `${tier}: ${fromInstant} vs ${expected}`,
      );
      assert.ok(
        fromRate !== undefined && Math.abs(fromRate - expected) < 1e-9,
        `${tier} (rate): ${fromRate} vs ${expected}`,
      );
    }
    const overall = await promValue(
      'sum(registry_storage_cache_hits_total) / sum(registry_storage_cache_requests_total)',
    );
    const expectedOverall = TIERS.reduce((s, t) => s + direct[t]!.hits, 0) / totalRequests;
    assert.ok(overall !== undefined && Math.abs(overall - expectedOverall) < 1e-12);
    assert.equal(await promValue('sum(registry_storage_cache_errors_total)'), 0);
    assert.ok(
      ((await promValue('sum(registry_storage_cache_redis_seconds_count)')) ?? 0) > 0,
      'redis latency is scraped too',
    );
  });
});
