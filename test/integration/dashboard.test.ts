// The Grafana dashboard we ship (charts/berth/dashboards/berth-registry.json), through a real Prometheus that scrapes
// real Berths and itself: every query runs, the panels traffic should fill have data, the job variable offers Berth's
// jobs only, and the hit-ratio panel shows what a known workload did, in each cache mode.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RawConfig } from '../../src/config/schema.js';
import { REPO_ROOT, startInProcess, type InProcessRegistry } from '../helpers/harness.js';
import { scrape, startPrometheus, sumOf, type PrometheusServer } from '../helpers/prometheus.js';
import { headBlob, pushImage, randomBlob, randomImage, uploadBlob } from '../helpers/push.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis.js';

interface Panel {
  readonly title: string;
  readonly targets: ReadonlyArray<{ readonly expr: string }>;
}

interface Variable {
  readonly name: string;
  readonly query?: unknown;
  readonly allValue?: unknown;
}

interface Dashboard {
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly Variable[] };
}

const HIT_RATIO = 'Cache hit ratio (all tiers)';

/** Berths that see nothing but the workload below, one job each: the three cache modes. */
function ratioConfigs(redisAddr: string): Readonly<Record<string, RawConfig>> {
  return {
    'ratio-twotier': {
      storage: { cache: { blobdescriptor: 'redis', twotier: true } },
      redis: { addrs: [redisAddr], prefix: 'twotier-' },
    },
    'ratio-redis': { storage: { cache: { blobdescriptor: 'redis' } }, redis: { addrs: [redisAddr], prefix: 'redis-' } },
    'ratio-inmemory': { storage: { cache: { blobdescriptor: 'inmemory' } } },
  };
}

const BLOBS = 3;
const HEADS_PER_BLOB = 10;
const MISSES = 4;
/**
 * The workload's lookups, the same in every mode: one per HEAD, plus one in the global scope on each blob's first
 * HEAD (the repository's entry missed, so storage checks the link and asks the cached global statter); a HEAD of an
 * unknown digest stops at the missing link. Uploads fill no tier, so each first HEAD misses every tier; every later
 * HEAD is a hit of the front tier.
 */
const LOOKUPS = BLOBS * (HEADS_PER_BLOB + 1) + MISSES;
const HITS = BLOBS * (HEADS_PER_BLOB - 1);

/** `value` as a regex that matches it alone, escaped as Grafana escapes a variable's values for Prometheus. */
function regexEscape(value: string): string {
  return value.replace(/\\/g, '\\\\\\\\').replace(/[$^*+?.()|{}[\]]/g, '\\\\$&');
}

/** A panel expression as Grafana sends it: `$job` filled with `jobRegex`, and a rate window. */
function asPromQL(expr: string, jobRegex: string, window = '1m'): string {
  return expr.replaceAll('$__rate_interval', window).replaceAll('$job', jobRegex);
}

describe('Grafana dashboard queries through a real Prometheus @integration', function () {
  this.timeout(120_000);
  let redis: RedisServer;
  let berth: InProcessRegistry;
  const ratioBerths = new Map<string, InProcessRegistry>();
  let prometheus: PrometheusServer;
  let dashboard: Dashboard;

  before(async function () {
    dashboard = JSON.parse(
      await readFile(join(REPO_ROOT, 'charts', 'berth', 'dashboards', 'berth-registry.json'), 'utf8'),
    ) as Dashboard;
    redis = await startRedis();
    berth = await startInProcess({
      // Online collection every couple of seconds, with a deleted image for it to sweep (below).
      storage: {
        cache: { blobdescriptor: 'redis', twotier: true },
        delete: { enabled: true },
        maintenance: { gc: { enabled: true, interval: '2s', graceperiod: '1s' } },
      },
      redis: { addrs: [redis.addr] },
      // A receiver that is down: its events fail, wait in the queue and are counted.
      notifications: { endpoints: [{ name: 'down', url: 'http://127.0.0.1:1/events', timeout: '200ms' }] },
    });
    for (const [job, config] of Object.entries(ratioConfigs(redis.addr)))
      ratioBerths.set(job, await startInProcess(config));
    const host = (r: InProcessRegistry): string => new URL(r.debugUrl).host;
    prometheus = await startPrometheus(
      { berth: [host(berth)], ...Object.fromEntries([...ratioBerths].map(([job, r]) => [job, [host(r)]])) },
      1,
      { selfJob: 'prometheus' },
    );
    // One request each, which touches no cache, so that every Berth has HTTP series for the job variable to find.
    for (const r of [berth, ...ratioBerths.values()]) assert.equal((await fetch(`${r.url}/v2/`)).status, 200);
  });

  after(async function () {
    await prometheus?.stop();
    for (const r of ratioBerths.values()) await r.close();
    await berth?.close();
    await redis?.dispose();
  });

  function panelExpr(title: string): string {
    const expr = dashboard.panels.find((p) => p.title === title)?.targets[0]?.expr;
    assert.ok(expr !== undefined, `the dashboard has a panel "${title}"`);
    return expr;
  }

  /** The job variable's values, and its All value, as Grafana computes them. */
  async function jobVariable(): Promise<{ values: string[]; all: string }> {
    const variable = dashboard.templating.list.find((v) => v.name === 'job');
    const m = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(String(variable?.query));
    assert.ok(m?.[1] !== undefined && m[2] !== undefined, `the job variable lists label values: ${variable?.query}`);
    const values = (await prometheus.labelValues(m[2], m[1])).sort();
    // With no custom all value, Grafana's All is the alternation of the variable's values.
    const custom = variable?.allValue;
    const all = typeof custom === 'string' && custom !== '' ? custom : `(${values.map(regexEscape).join('|')})`;
    return { values, all };
  }

  async function allJobsUp(): Promise<void> {
    const jobs = ['berth', 'prometheus', ...ratioBerths.keys()];
    await eventually(
      async () => (await prometheus.query('up == 1')).filter((r) => jobs.includes(r.labels['job'] ?? '')).length === 5,
      'a first scrape of every job',
      30_000,
      200,
    );
  }

  it('answers every panel query, with data on the cache, HTTP and storage panels once there is traffic', async function () {
    assert.ok(dashboard.panels.length >= 10, 'the dashboard has its panels');
    await allJobsUp();
    const image = randomImage(2, 4096);
    await pushImage(berth.url, 'dash/app', 'v1', image);
    const doomed = randomImage(2, 8192);
    await pushImage(berth.url, 'dash/doomed', 'v1', doomed);
    assert.equal(
      (await fetch(`${berth.url}/v2/dash/doomed/manifests/${doomed.digest}`, { method: 'DELETE' })).status,
      202,
    );
    const layer = image.layers[0];
    assert.ok(layer !== undefined);
    // Spread over several scrapes, so rate() over the window has points with traffic between them.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 20; i++) assert.equal(await headBlob(berth.url, 'dash/app', layer.digest), 200);
      await new Promise((r) => setTimeout(r, 1500));
    }
    const ratioExpr = asPromQL(panelExpr(HIT_RATIO), 'berth');
    await eventually(
      async () =>
        ((await prometheus.query('sum(registry_storage_cache_hits_total{job="berth"})'))[0]?.value ?? 0) >= 60 &&
        (await prometheus.query(ratioExpr)).length > 0,
      'Prometheus to see the cache hits over a rate window',
      30_000,
      250,
    );

    // A collection swept the deleted image, and Prometheus scraped it.
    await eventually(
      async () =>
        ((await prometheus.query('sum(registry_gc_reclaimed_bytes_total{job="berth"})'))[0]?.value ?? 0) >= 8192,
      'a collection that reclaimed the deleted image, scraped',
      30_000,
      250,
    );
    const { all } = await jobVariable();
    const mustHaveData = new Set([
      HIT_RATIO,
      'Cache hit ratio by tier',
      'Cache lookups, hits and errors by tier',
      'Redis command latency (p99) by operation',
      'HTTP requests by route and code',
      'HTTP latency (p99) by route',
      'Requests per second',
      'Process memory and CPU',
      'Notifications: sent, failed, dropped and queued by endpoint',
      'Garbage collection: runs and what they swept',
      'Garbage collection: bytes reclaimed and run time',
    ]);
    for (const panel of dashboard.panels) {
      for (const target of panel.targets) {
        // A PromQL error fails here: query() throws on anything but success.
        const result = await prometheus.query(asPromQL(target.expr, all));
        if (mustHaveData.has(panel.title)) assert.ok(result.length > 0, `panel "${panel.title}" has no data`);
      }
    }
    const value = (await prometheus.query(ratioExpr))[0]?.value ?? NaN;
    assert.ok(value > 0.5 && value <= 1, `a HEAD-heavy load has a high hit ratio (got ${value})`);
  });

  it("offers Berth's jobs only, and All plots none of the other processes Prometheus scrapes", async function () {
    await allJobsUp();
    const berthJobs = ['berth', ...ratioBerths.keys()].sort();
    await eventually(
      async () => (await jobVariable()).values.length === berthJobs.length,
      'the HTTP series of every Berth',
      30_000,
      200,
    );
    const { values, all } = await jobVariable();
    assert.deepEqual(values, berthJobs);
    assert.ok(
      (await prometheus.query('process_resident_memory_bytes{job="prometheus"}')).length > 0,
      'another process with process metrics is scraped',
    );
    for (const panel of dashboard.panels) {
      for (const target of panel.targets) {
        for (const r of await prometheus.query(asPromQL(target.expr, all))) {
          const job = r.labels['job'];
          assert.ok(job === undefined || berthJobs.includes(job), `panel "${panel.title}" plots job ${job}`);
        }
      }
    }
  });

  it('shows as hit ratio the hits of a known workload ÷ its lookups, in each cache mode and across them', async function () {
    const jobs = [...ratioBerths.keys()];
    // Prometheus holds each series at zero before the first lookup, so rate() extrapolates every series of a Berth
    // alike and the panel's quotient is the quotient of the counts.
    for (const job of jobs) {
      await eventually(
        async () =>
          (await prometheus.query(`sum(registry_storage_cache_requests_total{job="${job}"})`))[0]?.value === 0,
        `the zero series of ${job} in Prometheus`,
        30_000,
        200,
      );
    }
    const expected = HITS / LOOKUPS;
    for (const [job, r] of ratioBerths) {
      const blobs = Array.from({ length: BLOBS }, () => randomBlob(256));
      for (const b of blobs) await uploadBlob(r.url, 'ratio/app', b);
      for (let i = 0; i < HEADS_PER_BLOB; i++)
        for (const b of blobs) assert.equal(await headBlob(r.url, 'ratio/app', b.digest), 200);
      for (let i = 0; i < MISSES; i++) assert.equal(await headBlob(r.url, 'ratio/app', randomBlob(8).digest), 404);

      const samples = await scrape(r.debugUrl);
      const requests = ['memory', 'redis'].map((tier) =>
        sumOf(samples, 'registry_storage_cache_requests_total', { tier }),
      );
      assert.equal(sumOf(samples, 'registry_storage_cache_hits_total'), HITS, `${job}: hits of every tier`);
      assert.equal(Math.max(...requests), LOOKUPS, `${job}: the front tier's requests are the lookups`);
      const total = sumOf(samples, 'registry_storage_cache_requests_total');
      await eventually(
        async () =>
          (await prometheus.query(`sum(registry_storage_cache_requests_total{job="${job}"})`))[0]?.value === total &&
          (await prometheus.query(`sum(registry_storage_cache_hits_total{job="${job}"})`))[0]?.value === HITS,
        `Prometheus to scrape the workload's counts from ${job}`,
        30_000,
        200,
      );
    }

    // A window reaching back before the first lookup; every mode ran the same workload, so together they give the
    // same quotient, whatever the phase of each Berth's scrapes.
    const expr = panelExpr(HIT_RATIO);
    const selections: ReadonlyArray<readonly [string, string]> = [
      ...jobs.map((job) => [job, regexEscape(job)] as const),
      ['all three modes', `(${jobs.map(regexEscape).join('|')})`],
    ];
    for (const [what, jobRegex] of selections) {
      const value = (await prometheus.query(asPromQL(expr, jobRegex, '10m')))[0]?.value;
      assert.ok(
        value !== undefined && Math.abs(value - expected) < 1e-9,
        `${what}: the panel shows ${value}, the workload's ${HITS} hits ÷ ${LOOKUPS} lookups are ${expected}`,
      );
    }
  });
});
