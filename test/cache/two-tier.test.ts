// The two-tier cache (each replica's LRU in front of a shared Redis, kept coherent over pub/sub) against a real
// redis-server: the shared cache suite with a second replica, and what only two tiers promise.
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import type { DescriptorCache } from '../../src/cache/index.js';
import type { BlobDescriptor } from '../../src/storage/blobs.js';
import { openRedisCache, redisCacheSuite, statted } from '../helpers/cache.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis.js';
import { uniqueDigest } from '../suites/cache-suite.js';

let prefixes = 0;

function open(server: RedisServer, registry: Registry, redis: Record<string, unknown> = {}): Promise<DescriptorCache> {
  return openRedisCache(server, registry, redis, true);
}

async function count(registry: Registry, name: string, tier: string): Promise<number> {
  const { values } = await registry.getSingleMetric(name)!.get();
  return values.filter((v) => v.labels['tier'] === tier).reduce((s, v) => s + v.value, 0);
}

/** Ids of the connections subscribed to both invalidation channels. */
async function subscriberIds(admin: ReturnType<RedisServer['client']>): Promise<string[]> {
  const list = String(await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
  return [...list.matchAll(/id=(\d+) .* sub=2 /g)].map((m) => m[1] ?? '');
}

function layer(): BlobDescriptor {
  return { digest: uniqueDigest(), size: 7, mediaType: 'application/octet-stream' };
}

describe('two-tier descriptor cache @integration', function () {
  this.timeout(30_000);
  const server = redisCacheSuite('two-tier', 'two', true);

  /** A cache under a prefix of its own starting with `name`, and a plain client beside it (the caller closes both). */
  async function openWithAdmin(name: string) {
    const prefix = `${name}${prefixes++}:`;
    const registry = new Registry();
    const cache = await open(server(), registry, { prefix });
    return { prefix, registry, cache, admin: server().client() };
  }

  it('answers from the LRU without asking redis, and fills the LRU from a redis hit', async function () {
    const prefix = `lru${prefixes++}:`;
    const one = new Registry();
    const two = new Registry();
    const a = await open(server(), one, { prefix });
    const b = await open(server(), two, { prefix });
    try {
      const d = layer();
      const { storage } = await statted(a, 't/t', d);
      const there = b.wrap(storage.statter('t/t'), 't/t');
      await there.stat(d.digest); // LRU miss, redis hit
      for (let i = 0; i < 10; i++) await there.stat(d.digest); // LRU hits
      assert.equal(await count(two, 'registry_storage_cache_requests_total', 'memory'), 11);
      assert.equal(await count(two, 'registry_storage_cache_hits_total', 'memory'), 10);
      assert.equal(await count(two, 'registry_storage_cache_requests_total', 'redis'), 1);
      assert.equal(await count(two, 'registry_storage_cache_hits_total', 'redis'), 1);
      assert.equal(storage.asked('t/t', d.digest), 1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('clears and bypasses the LRU while its subscription is lost, and trusts it again once resubscribed', async function () {
    const { registry, cache, admin } = await openWithAdmin('sub');
    try {
      const d = layer();
      const { storage, statter } = await statted(cache, 's/s', d, 2);
      assert.equal(await count(registry, 'registry_storage_cache_hits_total', 'memory'), 1);
      // Redis drops the subscriber connection: invalidations published meanwhile would be lost to this replica.
      const before = await subscriberIds(admin);
      await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      // A new subscriber connection means the replica saw the loss (and cleared its LRU); ready means resubscribed.
      await eventually(async () => (await subscriberIds(admin)).some((id) => !before.includes(id)), 'a new subscriber');
      await eventually(async () => (await cache.check()) === undefined, 'resubscription');
      const memoryHits = await count(registry, 'registry_storage_cache_hits_total', 'memory');
      await statter.stat(d.digest); // the LRU was cleared: redis answers
      assert.equal(await count(registry, 'registry_storage_cache_hits_total', 'memory'), memoryHits);
      await statter.stat(d.digest);
      assert.equal(await count(registry, 'registry_storage_cache_hits_total', 'memory'), memoryHits + 1);
      assert.equal(storage.asked('s/s', d.digest), 1);
    } finally {
      admin.disconnect();
      await cache.close();
    }
  });

  it('treats an unreadable message on the channel as "drop everything"', async function () {
    const { prefix, registry, cache, admin } = await openWithAdmin('bad');
    try {
      const d = layer();
      const { statter } = await statted(cache, undefined, d, 2);
      const memoryHits = await count(registry, 'registry_storage_cache_hits_total', 'memory');
      await admin.publish(
        `${prefix}berth::invalidations`,
        JSON.stringify({ id: 'x', t: 'i', s: null, d: 'not a digest' }),
      );
      await eventually(async () => {
        await statter.stat(d.digest);
        return (await count(registry, 'registry_storage_cache_hits_total', 'redis')) >= 1;
      }, 'an LRU miss answered by redis');
      assert.ok((await count(registry, 'registry_storage_cache_hits_total', 'memory')) >= memoryHits);
    } finally {
      admin.disconnect();
      await cache.close();
    }
  });

  it('serves from storage while redis is down and uses both tiers again once it is back', async function () {
    const own = await startRedis();
    const registry = new Registry();
    const cache = await open(own, registry, { readtimeout: '100ms', writetimeout: '100ms' });
    try {
      const d = layer();
      const { storage, statter } = await statted(cache, 'o/o', d);
      await own.kill();
      await eventually(async () => /not subscribed/.test((await cache.check()) ?? ''), 'the outage to be noticed');
      const asked = storage.asked('o/o', d.digest);
      for (let i = 0; i < 3; i++) assert.deepEqual(await statter.stat(d.digest), d);
      assert.equal(storage.asked('o/o', d.digest), asked + 3, 'no LRU answers without the invalidation channel');
      assert.ok((await count(registry, 'registry_storage_cache_errors_total', 'redis')) >= 3);
      await own.restart();
      await eventually(async () => (await cache.check()) === undefined, 'reconnection', 15_000);
      await statter.stat(d.digest);
      const hits = await count(registry, 'registry_storage_cache_hits_total', 'memory');
      await statter.stat(d.digest);
      assert.equal(await count(registry, 'registry_storage_cache_hits_total', 'memory'), hits + 1);
    } finally {
      await cache.close();
      await own.dispose();
    }
  });
});
