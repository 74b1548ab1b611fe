// The in-process LRU tier: the shared cache suite, and what only an LRU promises (its bound, its index).
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { createDescriptorCache } from '../../src/cache/index.js';
import { MemoryTier } from '../../src/cache/memory.js';
import { resolveConfig } from '../../src/config/load.js';
import type { BlobDescriptor } from '../../src/storage/blobs.js';
import { runCacheSuite, uniqueDigest } from '../suites/cache-suite.js';

runCacheSuite('inmemory', async (registry) => {
  const config = resolveConfig({ storage: { inmemory: {}, cache: { blobdescriptor: 'inmemory' } } });
  const cache = await createDescriptorCache(config, pino({ level: 'silent' }), registry);
  assert.ok(cache !== undefined);
  return { cache, cleanup: async () => undefined };
});

function descriptor(size = 1): BlobDescriptor {
  return { digest: uniqueDigest(), size, mediaType: 'application/octet-stream' };
}

async function fill(tier: MemoryTier, scope: string | undefined, d: BlobDescriptor): Promise<void> {
  const found = await tier.lookup(scope, d.digest);
  assert.equal(found.hit, false);
  if (!found.hit) await found.fill(d);
}

describe('MemoryTier', function () {
  it('holds at most its size, dropping the least recently used entry', async function () {
    const tier = new MemoryTier(3);
    const [a, b, c, d] = [descriptor(), descriptor(), descriptor(), descriptor()] as const;
    await fill(tier, undefined, a);
    await fill(tier, undefined, b);
    await fill(tier, undefined, c);
    assert.equal((await tier.lookup(undefined, a.digest)).hit, true, 'a is now the most recently used');
    await fill(tier, undefined, d);
    assert.equal(tier.size, 3);
    assert.equal((await tier.lookup(undefined, b.digest)).hit, false, 'b was least recently used');
    for (const kept of [a, c, d]) assert.equal((await tier.lookup(undefined, kept.digest)).hit, true);
  });

  it('drops every repository entry of a digest on a global invalidation, whatever was evicted before', async function () {
    const tier = new MemoryTier(4);
    const d = descriptor();
    for (const scope of ['a', 'b', 'c', undefined]) await fill(tier, scope, d);
    await fill(tier, 'x', descriptor()); // evicts the oldest of d's entries
    await tier.invalidate(undefined, d.digest);
    for (const scope of ['a', 'b', 'c', undefined]) assert.equal((await tier.lookup(scope, d.digest)).hit, false);
    assert.equal(tier.size, 1);
  });

  it('drops a fill that began before a clear or an invalidation of any digest', async function () {
    const tier = new MemoryTier(10);
    const d = descriptor();
    const first = await tier.lookup('r', d.digest);
    tier.clear();
    if (!first.hit) await first.fill(d);
    assert.equal((await tier.lookup('r', d.digest)).hit, false);
    const second = await tier.lookup('r', d.digest);
    await tier.invalidate('elsewhere', uniqueDigest());
    if (!second.hit) await second.fill(d);
    assert.equal((await tier.lookup('r', d.digest)).hit, false);
  });

  it('reports closed and refuses lookups after close', async function () {
    const tier = new MemoryTier(10);
    await tier.close();
    await tier.close();
    assert.equal(await tier.check(), 'closed');
    await assert.rejects(tier.lookup(undefined, uniqueDigest()), /closed/);
  });
});
