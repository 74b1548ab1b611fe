// The Redis-backed caches built by createRedisCache: which tiers each gives, against a real redis-server, and that
// a Redis nobody answers on still gives a cache that serves from storage.
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { cacheMetrics } from '../../src/cache/metrics.js';
import { createRedisCache } from '../../src/cache/redis-cache.js';
import { RedisSchema } from '../../src/config/redis.js';
import { digestBuffer } from '../../src/oci/digest.js';
import { freePort, startRedis, type RedisServer } from '../helpers/redis.js';
import { FakeStorage } from '../suites/cache-suite.js';

const silent = pino({ level: 'silent' });

describe('createRedisCache @integration', function () {
  this.timeout(30_000);
  let server: RedisServer | undefined;
  before(async function () {
    server = await startRedis();
  });
  after(async function () {
    await server?.dispose();
  });

  for (const twotier of [false, true]) {
    const tiers = twotier ? ['memory', 'redis'] : ['redis'];
    it(`gives ${tiers.join(' then ')} with twotier ${twotier}, answering the second stat from the cache`, async function () {
      const registry = new Registry();
      const config = RedisSchema.parse({ addrs: [server!.addr], prefix: `rc-${twotier}:` });
      const cache = await createRedisCache(config, twotier, 100, silent, cacheMetrics(registry));
      try {
        const storage = new FakeStorage();
        const d = digestBuffer(Buffer.from(`redis-cache ${twotier}`));
        storage.put('a/b', { digest: d, size: 9, mediaType: 'x/y' });
        const statter = cache.wrap(storage.statter('a/b'), 'a/b');
        assert.equal((await statter.stat(d)).size, 9);
        assert.equal((await statter.stat(d)).size, 9);
        assert.equal(storage.asked('a/b', d), 1, 'the second stat never reached storage');
        const text = await registry.metrics();
        const seen = [...text.matchAll(/^registry_storage_cache_requests_total\{tier="(\w+)"\}/gm)].map((m) => m[1]);
        assert.deepEqual(seen.sort(), [...tiers].sort());
        assert.equal(await cache.check(), undefined);
      } finally {
        await cache.close();
      }
    });
  }

  it('serves from storage and reports not ready while nothing answers at the Redis address', async function () {
    const config = RedisSchema.parse({ addrs: [`127.0.0.1:${await freePort()}`], dialtimeout: 200 });
    const cache = await createRedisCache(config, false, 100, silent, cacheMetrics(new Registry()));
    try {
      const storage = new FakeStorage();
      const d = digestBuffer(Buffer.from('no redis'));
      storage.put(undefined, { digest: d, size: 3, mediaType: 'x/y' });
      assert.equal((await cache.wrap(storage.statter(undefined), undefined).stat(d)).size, 3);
      assert.match((await cache.check()) ?? '', /^redis: /);
    } finally {
      await cache.close();
    }
  });
});
