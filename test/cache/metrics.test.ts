// The metrics wrapper: what it counts for each tier operation, with Distribution's names and operation labels.
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import type { DescriptorTier, Lookup } from '../../src/cache/cache.js';
import { cacheMetrics, instrumentTier } from '../../src/cache/metrics.js';
import { digestBuffer } from '../../src/oci/digest.js';
import { parseMetrics } from '../helpers/prometheus.js';

const digest = digestBuffer(Buffer.from('m'));
const descriptor = { digest, size: 1, mediaType: 'a/b' };

/** A tier whose answers the test scripts. */
function scripted(
  name: 'memory' | 'redis',
  answers: Array<'hit' | 'miss' | 'fail'>,
  fillFails = false,
): DescriptorTier {
  return {
    name,
    async lookup(): Promise<Lookup> {
      const next = answers.shift();
      if (next === 'fail') throw new Error('down');
      if (next === 'hit') return { hit: true, descriptor };
      return {
        hit: false,
        fill: async () => {
          if (fillFails) throw new Error('fill failed');
        },
      };
    },
    async invalidate(scope) {
      if (scope === 'bad') throw new Error('invalidate failed');
    },
    check: async () => undefined,
    close: async () => undefined,
  };
}

async function value(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const { values } = await registry.getSingleMetric(name)!.get();
  const found = values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return found?.value ?? Number.NaN;
}

describe('instrumentTier', function () {
  it('starts every series of the tier at zero', async function () {
    const registry = new Registry();
    instrumentTier(scripted('memory', []), cacheMetrics(registry));
    for (const name of ['requests', 'hits', 'errors']) {
      assert.equal(await value(registry, `registry_storage_cache_${name}_total`, { tier: 'memory' }), 0);
    }
  });

  it('counts requests, hits and errors of lookups per tier', async function () {
    const registry = new Registry();
    const m = cacheMetrics(registry);
    const memory = instrumentTier(scripted('memory', ['hit', 'miss', 'hit']), m);
    const redis = instrumentTier(scripted('redis', ['fail', 'hit']), m);
    for (let i = 0; i < 3; i++) await memory.lookup(undefined, digest);
    await assert.rejects(redis.lookup('r', digest), /down/);
    await redis.lookup('r', digest);
    assert.equal(await value(registry, 'registry_storage_cache_requests_total', { tier: 'memory' }), 3);
    assert.equal(await value(registry, 'registry_storage_cache_hits_total', { tier: 'memory' }), 2);
    assert.equal(await value(registry, 'registry_storage_cache_errors_total', { tier: 'memory' }), 0);
    assert.equal(await value(registry, 'registry_storage_cache_requests_total', { tier: 'redis' }), 2);
    assert.equal(await value(registry, 'registry_storage_cache_hits_total', { tier: 'redis' }), 1);
    assert.equal(await value(registry, 'registry_storage_cache_errors_total', { tier: 'redis' }), 1);
  });

  it('counts failed fills and invalidations as errors, and passes the failure on', async function () {
    const registry = new Registry();
    const tier = instrumentTier(scripted('redis', ['miss'], true), cacheMetrics(registry));
    const found = await tier.lookup(undefined, digest);
    assert.equal(found.hit, false);
    if (!found.hit) await assert.rejects(found.fill(descriptor), /fill failed/);
    await assert.rejects(tier.invalidate('bad', digest), /invalidate failed/);
    await tier.invalidate('good', digest);
    assert.equal(await value(registry, 'registry_storage_cache_errors_total', { tier: 'redis' }), 2);
  });

  it("times redis operations with Distribution's operation names, and nothing for the memory tier", async function () {
    const registry = new Registry();
    const m = cacheMetrics(registry);
    const redis = instrumentTier(scripted('redis', ['miss', 'miss']), m);
    const memory = instrumentTier(scripted('memory', ['miss']), m);
    const global = await redis.lookup(undefined, digest);
    if (!global.hit) await global.fill(descriptor);
    const scoped = await redis.lookup('repo', digest);
    if (!scoped.hit) await scoped.fill(descriptor);
    await redis.invalidate(undefined, digest);
    await redis.invalidate('repo', digest);
    await memory.lookup(undefined, digest);
    const counts = parseMetrics(await registry.metrics()).filter(
      (v) => v.name === 'registry_storage_cache_redis_seconds_count',
    );
    assert.deepEqual(counts.map((v) => [v.labels['operation'], v.value]).sort(), [
      ['Clear', 1],
      ['RepoClear', 1],
      ['RepoSetDescriptor', 1],
      ['RepoStat', 1],
      ['SetDescriptor', 1],
      ['Stat', 1],
    ]);
  });

  it('shares one set of metrics between caches on the same registry', function () {
    const registry = new Registry();
    assert.equal(cacheMetrics(registry).requests, cacheMetrics(registry).requests);
  });
});
