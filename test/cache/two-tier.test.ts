// The two-tier cache (each replica's LRU in front of a shared Redis, kept coherent over pub/sub) against a real
// redis-server: the shared cache suite with a second replica, and what only two tiers promise.
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createDescriptorCache, type DescriptorCache } from '../../src/cache/index.js';
import { resolveConfig } from '../../src/config/load.js';
import type { BlobDescriptor } from '../../src/storage/blobs.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis.js';
import { FakeStorage, runCacheSuite, uniqueDigest } from '../suites/cache-suite.js';

const silent = pino({ level: 'silent' });
let prefixes = 0;

async function open(
  server: RedisServer,
  registry: Registry,
  redis: Record<string, unknown> = {},
): Promise<DescriptorCache> {
  const config = resolveConfig({
    storage: { inmemory: {}, cache: { blobdescriptor: 'redis', twotier: true } },
    redis: { addrs: [server.addr], ...redis } as never,
  });
  const cache = await createDescriptorCache(config, silent, registry);
  assert.ok(cache !== undefined);
  return cache;
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
  let server: RedisServer;

  before(async function () {
    server = await startRedis();
  });

  after(async function () {
    await server?.dispose();
  });

  runCacheSuite('two-tier', async (registry) => {
    const prefix = `two${prefixes++}:`;
    const cache = await open(server, registry, { prefix });
    return { cache, replica: (peerRegistry) => open(server, peerRegistry, { prefix }), cleanup: async () => undefined };
  });

  it('answers from the LRU without asking redis, and fills the LRU from a redis hit', async function () {
    const prefix = `lru${prefixes++}:`;
    const one = new Registry();
    const two = new Registry();
    const a = await open(server, one, { prefix });
    const b = await open(server, two, { prefix });
    try {
      const d = layer();
      const storage = new FakeStorage();
      storage.put('t/t', d);
      await a.wrap(storage.statter('t/t'), 't/t').stat(d.digest);
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
    const prefix = `sub${prefixes++}:`;
    const registry = new Registry();
    const cache = await open(server, registry, { prefix });
    const admin = server.client();
    try {
      const d = layer();
      const storage = new FakeStorage();
      storage.put('s/s', d);
      const statter = cache.wrap(storage.statter('s/s'), 's/s');
      await statter.stat(d.digest);
      await statter.stat(d.digest);
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
    const prefix = `bad${prefixes++}:`;
    const registry = new Registry();
    const cache = await open(server, registry, { prefix });
    const admin = server.client();
    try {
      const d = layer();
      const storage = new FakeStorage();
      storage.put(undefined, d);
      const statter = cache.wrap(storage.statter(undefined), undefined);
      await statter.stat(d.digest);
      await statter.stat(d.digest);
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
      const storage = new FakeStorage();
      storage.put('o/o', d);
      const statter = cache.wrap(storage.statter('o/o'), 'o/o');
      await statter.stat(d.digest);
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
