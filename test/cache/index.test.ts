// The cache factory and the tiered cache the rest of Berth sees: which config gives which cache, and that
// invalidation, readiness and shutdown never fail a caller.
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { DescriptorTier, Lookup } from '../../src/cache/cache.js';
import { createDescriptorCache, TieredDescriptorCache } from '../../src/cache/index.js';
import { resolveConfig } from '../../src/config/load.js';
import { digestBuffer } from '../../src/oci/digest.js';
import { FakeStorage } from '../suites/cache-suite.js';

const silent = pino({ level: 'silent' });
const digest = digestBuffer(Buffer.from('i'));

function failing(name: 'memory' | 'redis', problem: string | undefined): DescriptorTier & { invalidations: number } {
  const tier = {
    name,
    invalidations: 0,
    lookup: async (): Promise<Lookup> => {
      throw new Error('down');
    },
    invalidate: async () => {
      tier.invalidations++;
      throw new Error('down');
    },
    check: async () => problem,
    close: async () => undefined,
  };
  return tier;
}

describe('createDescriptorCache', function () {
  for (const kind of ['none', ''] as const) {
    it(`gives no cache for blobdescriptor ${JSON.stringify(kind)}`, async function () {
      const config = resolveConfig({ storage: { inmemory: {}, cache: { blobdescriptor: kind } } });
      assert.equal(await createDescriptorCache(config, silent, new Registry()), undefined);
    });
  }

  it('gives the in-memory cache by default, bounded by blobdescriptorsize', async function () {
    const config = resolveConfig({ storage: { inmemory: {}, cache: { blobdescriptorsize: 2 } } });
    const registry = new Registry();
    const cache = await createDescriptorCache(config, silent, registry);
    assert.ok(cache !== undefined);
    const storage = new FakeStorage();
    const digests = ['a', 'b', 'c'].map((t) => digestBuffer(Buffer.from(t)));
    for (const d of digests) storage.put(undefined, { digest: d, size: 1, mediaType: 'a/b' });
    const statter = cache.wrap(storage.statter(undefined), undefined);
    for (const d of digests) await statter.stat(d);
    for (const d of digests) await statter.stat(d);
    // Three entries never fit in two: the LRU cycles, so every stat is a miss.
    assert.equal(storage.asked(undefined, digests[0]!), 2);
    assert.match(await registry.metrics(), /registry_storage_cache_requests_total\{tier="memory"\} 6/);
    await cache.close();
  });

  it('warns that twotier applies to redis only and still gives the in-memory cache', async function () {
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const config = resolveConfig({ storage: { inmemory: {}, cache: { blobdescriptor: 'inmemory', twotier: true } } });
    const cache = await createDescriptorCache(config, log, new Registry());
    assert.ok(cache !== undefined);
    assert.ok(lines.some((l) => l.includes('twotier')));
    await cache.close();
  });
});

describe('TieredDescriptorCache', function () {
  it('never rejects an invalidation, and tries every tier even after one failed', async function () {
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const first = failing('memory', undefined);
    const second = failing('redis', undefined);
    const cache = new TieredDescriptorCache([first, second], log);
    await cache.invalidate('r', digest);
    await cache.invalidate(undefined, digest);
    // The front tier is invalidated again after the back tier, in case a lookup refilled it meanwhile.
    assert.equal(first.invalidations, 4);
    assert.equal(second.invalidations, 2);
    assert.ok(lines.length >= 1 && lines.length <= 2, 'failures are logged, rate-limited per tier and operation');
  });

  it('reports every tier problem on check, and undefined when there is none', async function () {
    assert.equal(await new TieredDescriptorCache([failing('memory', undefined)], silent).check(), undefined);
    const cache = new TieredDescriptorCache([failing('memory', 'a'), failing('redis', 'b')], silent);
    assert.equal(await cache.check(), 'a; b');
  });

  it('closes its tiers and extra resources once, however often it is closed', async function () {
    let closed = 0;
    const cache = new TieredDescriptorCache([], silent, [async () => void closed++]);
    await Promise.all([cache.close(), cache.close()]);
    await cache.close();
    assert.equal(closed, 1);
  });
});
