// The Grafana dashboard we ship (charts/berth/dashboards/berth-registry.json): every query on it runs through a
// real Prometheus that scrapes a real Berth with a Redis cache, and the panels that traffic should fill have data.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT, startInProcess, type InProcessRegistry } from '../helpers/harness.js';
import { startPrometheus, type PrometheusServer } from '../helpers/prometheus.js';
import { headBlob, pushImage, randomImage } from '../helpers/push.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis.js';

interface Panel {
  readonly title: string;
  readonly targets: ReadonlyArray<{ readonly expr: string }>;
}

/** Grafana's variables, as Grafana would fill them for "all jobs" and a one-minute rate window. */
function asPromQL(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', '.+');
}

describe('Grafana dashboard queries through a real Prometheus @integration', function () {
  this.timeout(120_000);
  let redis: RedisServer;
  let berth: InProcessRegistry;
  let prometheus: PrometheusServer;
  let panels: readonly Panel[];

  before(async function () {
    const dashboard = JSON.parse(
      await readFile(join(REPO_ROOT, 'charts', 'berth', 'dashboards', 'berth-registry.json'), 'utf8'),
    ) as { panels: Panel[] };
    panels = dashboard.panels;
    redis = await startRedis();
    berth = await startInProcess({
      storage: { cache: { blobdescriptor: 'redis', twotier: true } },
      redis: { addrs: [redis.addr] },
    });
    prometheus = await startPrometheus([new URL(berth.debugUrl).host], 1);
  });

  after(async function () {
    await prometheus?.stop();
    await berth?.close();
    await redis?.dispose();
  });

  it('answers every panel query, with data on the cache, HTTP and storage panels once there is traffic', async function () {
    assert.ok(panels.length >= 10, 'the dashboard has its panels');
    await eventually(
      async () => ((await prometheus.query('up{job="berth"}'))[0]?.value ?? 0) === 1,
      'a first scrape before any traffic',
      30_000,
      200,
    );
    const image = randomImage(2, 4096);
    await pushImage(berth.url, 'dash/app', 'v1', image);
    const layer = image.layers[0];
    assert.ok(layer !== undefined);
    // Spread over several scrapes, so rate() over the window has points with traffic between them.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 20; i++) assert.equal(await headBlob(berth.url, 'dash/app', layer.digest), 200);
      await new Promise((r) => setTimeout(r, 1500));
    }
    const ratioExpr = asPromQL(panels.find((p) => p.title === 'Cache hit ratio (all tiers)')?.targets[0]?.expr ?? '');
    await eventually(
      async () =>
        ((await prometheus.query('sum(registry_storage_cache_hits_total)'))[0]?.value ?? 0) >= 60 &&
        (await prometheus.query(ratioExpr)).length > 0,
      'Prometheus to see the cache hits over a rate window',
      30_000,
      250,
    );

    const mustHaveData = new Set([
      'Cache hit ratio (all tiers)',
      'Cache hit ratio by tier',
      'Cache lookups, hits and errors by tier',
      'Redis command latency (p99) by operation',
      'HTTP requests by route and code',
      'HTTP latency (p99) by route',
      'Requests per second',
      'Process memory and CPU',
    ]);
    for (const panel of panels) {
      for (const target of panel.targets) {
        // A PromQL error fails here: query() throws on anything but success.
        const result = await prometheus.query(asPromQL(target.expr));
        if (mustHaveData.has(panel.title)) assert.ok(result.length > 0, `panel "${panel.title}" has no data`);
      }
    }
    const value = (await prometheus.query(ratioExpr))[0]?.value ?? NaN;
    assert.ok(value > 0.5 && value <= 1, `a HEAD-heavy load has a high hit ratio (got ${value})`);
  });
});
