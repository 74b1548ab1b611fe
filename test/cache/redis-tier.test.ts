// The Redis tier against a real redis-server: the shared cache suite (with a second replica), Distribution's key
// layout, and failing open when Redis is down, hung or holds something unreadable.
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { connectWithin, createRedisClient } from '../../src/cache/redis-client.js';
import { RedisTier } from '../../src/cache/redis-tier.js';
import { RedisSchema } from '../../src/config/redis.js';
import type { BlobDescriptor } from '../../src/storage/blobs.js';
import { openRedisCache as open, redisCacheSuite, statted } from '../helpers/cache.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis.js';
import { FakeStorage, uniqueDigest } from '../suites/cache-suite.js';

const silent = pino({ level: 'silent' });

async function errors(registry: Registry): Promise<number> {
  const { values } = await registry.getSingleMetric('registry_storage_cache_errors_total')!.get();
  return values.reduce((s, v) => s + v.value, 0);
}

function layer(size = 42): BlobDescriptor {
  return { digest: uniqueDigest(), size, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
}

describe('redis descriptor cache @integration', function () {
  this.timeout(30_000);
  const server = redisCacheSuite('redis', 'suite', false);

  describe('key layout', function () {
    it("writes Distribution's keys: blobs::<digest>, repository::<name>::blobs and repository::<name>::blobs::<digest>", async function () {
      const cache = await open(server(), new Registry());
      const redis = server().client();
      try {
        const d = layer(4096);
        const storage = new FakeStorage();
        storage.put('library/alpine', d);
        await cache.wrap(storage.statter('library/alpine'), 'library/alpine').stat(d.digest);
        const global = await redis.hgetall(`blobs::${d.digest.value}`);
        assert.equal(global['digest'], d.digest.value);
        assert.equal(global['size'], '4096');
        assert.equal(global['mediatype'], d.mediaType);
        assert.ok(await redis.sismember('repository::library/alpine::blobs', d.digest.value));
        const scoped = await redis.hgetall(`repository::library/alpine::blobs::${d.digest.value}`);
        assert.equal(scoped['mediatype'], d.mediaType);
        assert.equal(scoped['generation'], global['generation']);

        await cache.invalidate('library/alpine', d.digest);
        assert.equal(await redis.sismember('repository::library/alpine::blobs', d.digest.value), 0);
        assert.equal(await redis.exists(`repository::library/alpine::blobs::${d.digest.value}`), 0);
        assert.equal(await redis.exists(`blobs::${d.digest.value}`), 1, 'an unlink keeps the global entry');
        const ttl = await redis.pttl(`blobs::${d.digest.value}::invalidated`);
        assert.ok(ttl > 0 && ttl <= 3_600_000, `the invalidation marker expires (pttl ${ttl})`);
        await cache.invalidate(undefined, d.digest);
        assert.equal(await redis.exists(`blobs::${d.digest.value}`), 0);
      } finally {
        redis.disconnect();
        await cache.close();
      }
    });

    it('puts every key behind the prefix, in the configured database', async function () {
      const cache = await open(server(), new Registry(), { prefix: 'berth-a/', db: 3 });
      const db3 = server().client({ db: 3 });
      const db0 = server().client();
      try {
        const d = layer();
        const storage = new FakeStorage();
        storage.put('p/q', d);
        storage.put(undefined, d);
        await cache.wrap(storage.statter('p/q'), 'p/q').stat(d.digest);
        await cache.wrap(storage.statter(undefined), undefined).stat(d.digest);
        const keys = (await db3.keys(`*${d.digest.hex}*`)).sort();
        assert.deepEqual(keys, [
          `berth-a/blobs::${d.digest.value}`,
          `berth-a/repository::p/q::blobs::${d.digest.value}`,
        ]);
        assert.equal(await db3.sismember('berth-a/repository::p/q::blobs', d.digest.value), 1);
        assert.deepEqual(await db0.keys(`*${d.digest.hex}*`), []);
      } finally {
        db3.disconnect();
        db0.disconnect();
        await cache.close();
      }
    });

    it('treats a corrupt or partial entry as a miss and repairs it', async function () {
      const cache = await open(server(), new Registry(), { prefix: 'corrupt:' });
      const redis = server().client();
      try {
        const storage = new FakeStorage();
        const cases: Array<Record<string, string>> = [
          { size: 'many' },
          { size: '-1' },
          { size: '12' },
          { size: '1e3' },
        ];
        for (const fields of cases) {
          const d = layer();
          storage.put(undefined, d);
          // digest missing in the third case; wrong size text in the others.
          const written = fields['size'] === '12' ? fields : { digest: d.digest.value, ...fields };
          await redis.hset(`corrupt:blobs::${d.digest.value}`, written);
          const statter = cache.wrap(storage.statter(undefined), undefined);
          assert.deepEqual(await statter.stat(d.digest), d);
          assert.deepEqual(await statter.stat(d.digest), d);
          assert.equal(storage.asked(undefined, d.digest), 1, `miss then repaired for ${JSON.stringify(fields)}`);
        }
        // An entry Distribution wrote has no generation: a miss for a repository, then Berth's own entry.
        const d = layer();
        storage.put('dist/repo', d);
        await redis.hset(`corrupt:blobs::${d.digest.value}`, {
          digest: d.digest.value,
          size: String(d.size),
          mediatype: d.mediaType,
        });
        await redis.sadd('corrupt:repository::dist/repo::blobs', d.digest.value);
        const statter = cache.wrap(storage.statter('dist/repo'), 'dist/repo');
        await statter.stat(d.digest);
        await statter.stat(d.digest);
        assert.equal(storage.asked('dist/repo', d.digest), 1);
      } finally {
        redis.disconnect();
        await cache.close();
      }
    });
  });

  describe('failing open', function () {
    let own: RedisServer;

    beforeEach(async function () {
      own = await startRedis();
    });

    afterEach(async function () {
      await own?.dispose();
    });

    it('serves from storage and counts errors while redis is down, and hits again once it is back', async function () {
      const registry = new Registry();
      const cache = await open(own, registry, { readtimeout: '100ms', writetimeout: '100ms' });
      try {
        const d = layer();
        const { storage, statter } = await statted(cache, 'down/x', d);
        await statter.stat(d.digest);
        assert.equal(storage.asked('down/x', d.digest), 1);
        await own.kill();
        for (let i = 0; i < 5; i++) assert.deepEqual(await statter.stat(d.digest), d);
        assert.equal(storage.asked('down/x', d.digest), 6);
        assert.ok((await errors(registry)) >= 5, 'every failed lookup is counted');
        assert.match((await cache.check()) ?? '', /redis/);
        await own.restart();
        await eventually(async () => (await cache.check()) === undefined, 'the cache to reconnect');
        await statter.stat(d.digest);
        const asked = storage.asked('down/x', d.digest);
        await statter.stat(d.digest);
        assert.equal(storage.asked('down/x', d.digest), asked, 'a hit again');
      } finally {
        await cache.close();
      }
    });

    it('adds at most the read timeout to one stat when redis hangs, and nothing to the next ones until it answers', async function () {
      const registry = new Registry();
      const cache = await open(own, registry, { readtimeout: '150ms', writetimeout: '150ms' });
      try {
        const d = layer();
        const { storage, statter } = await statted(cache, 'hang/x', d);
        own.pause();
        const took: number[] = [];
        for (let i = 0; i < 4; i++) {
          const started = Date.now();
          assert.deepEqual(await statter.stat(d.digest), d);
          took.push(Date.now() - started);
        }
        assert.ok(took[0]! >= 140 && took[0]! < 400, `the first stat waits for the timeout once: ${took.join(', ')}ms`);
        for (const t of took.slice(1)) assert.ok(t < 50, `then redis is bypassed: ${took.join(', ')}ms`);
        assert.equal(await errors(registry), 4);
        assert.match((await cache.check()) ?? '', /not answering within 150ms/);
        own.resume();
        await eventually(async () => (await cache.check()) === undefined, 'the breaker to close');
        const asked = storage.asked('hang/x', d.digest);
        await statter.stat(d.digest);
        assert.equal(storage.asked('hang/x', d.digest), asked, 'hits again');
      } finally {
        own.resume();
        await cache.close();
      }
    });

    it('keeps an invalidation redis missed, distrusts that digest, and applies it once redis answers again', async function () {
      const registry = new Registry();
      const cache = await open(own, registry, { readtimeout: '100ms', writetimeout: '100ms', prefix: 'pend:' });
      const redis = own.client();
      try {
        const gone = layer();
        const kept = layer();
        const storage = new FakeStorage();
        storage.put('pend/x', gone);
        storage.put('pend/x', kept);
        const statter = cache.wrap(storage.statter('pend/x'), 'pend/x');
        for (const d of [gone, kept]) await statter.stat(d.digest);
        own.pause();
        storage.remove('pend/x', gone.digest);
        const started = Date.now();
        await cache.invalidate('pend/x', gone.digest);
        assert.ok(Date.now() - started < 400, 'an invalidation never waits long for redis');
        own.resume();
        // Until the replay lands, this replica answers that digest from storage.
        await assert.rejects(statter.stat(gone.digest), /BLOB_UNKNOWN|blob unknown/);
        await eventually(
          async () => (await redis.sismember('pend:repository::pend/x::blobs', gone.digest.value)) === 0,
          'the replay',
        );
        assert.equal(await redis.exists(`pend:repository::pend/x::blobs::${gone.digest.value}`), 0);
        // The commands sent before the timeout may land as soon as redis resumes, before the breaker's probe
        // closes it again; once it has, the other digests answer from redis as before.
        await eventually(async () => (await cache.check()) === undefined, 'readiness');
        const asked = storage.asked('pend/x', kept.digest);
        await statter.stat(kept.digest);
        assert.equal(storage.asked('pend/x', kept.digest), asked, 'other digests stay cached');
      } finally {
        own.resume();
        redis.disconnect();
        await cache.close();
      }
    });

    it('starts when redis is unreachable, serving from storage, and reports it on check', async function () {
      await own.kill();
      const registry = new Registry();
      const cache = await open(own, registry, { dialtimeout: '200ms', readtimeout: '100ms' });
      try {
        const d = layer();
        const storage = new FakeStorage();
        storage.put(undefined, d);
        assert.deepEqual(await cache.wrap(storage.statter(undefined), undefined).stat(d.digest), d);
        assert.match((await cache.check()) ?? '', /^redis: /);
        assert.ok((await errors(registry)) >= 1);
      } finally {
        await cache.close();
      }
    });
  });

  describe('RedisTier', function () {
    it('flushes only its own keys when it missed more invalidations than it keeps', async function () {
      const own = await startRedis();
      const admin = own.client();
      const client = await createRedisClient(RedisSchema.parse({ addrs: [own.addr] }), 'commands');
      const tier = new RedisTier({
        client,
        prefix: 'mine:',
        readTimeout: 100,
        writeTimeout: 100,
        log: silent,
        maxPending: 2,
      });
      try {
        assert.ok(await connectWithin(client, 2_000));
        await admin.hset('theirs:blobs::x', { digest: 'x' });
        await admin.set('unrelated', '1');
        const ds = [layer(), layer(), layer()];
        for (const d of ds) {
          const found = await tier.lookup('r', d.digest);
          assert.ok(!found.hit);
          await found.fill(d);
        }
        assert.ok((await admin.keys('mine:*')).length >= 4);
        own.pause();
        for (const d of ds) await assert.rejects(tier.invalidate('r', d.digest));
        assert.equal(tier.pendingInvalidations, Number.POSITIVE_INFINITY, 'too many to keep: flush everything');
        await assert.rejects(tier.lookup(undefined, layer().digest));
        own.resume();
        await eventually(async () => (await tier.check()) === undefined, 'the flush and readiness');
        assert.deepEqual(
          (await admin.keys('mine:*')).filter((k) => !k.endsWith('::invalidated')),
          [],
          'its entries are gone',
        );
        assert.equal(await admin.exists('theirs:blobs::x', 'unrelated'), 2, 'keys of other prefixes stay');
        const found = await tier.lookup('r', ds[0]!.digest);
        assert.equal(found.hit, false);
      } finally {
        own.resume();
        await tier.close();
        admin.disconnect();
        await own.dispose();
      }
    });

    it('reads a repository entry with one script, loads it again after SCRIPT FLUSH, and does without scripts where they are refused', async function () {
      const own = await startRedis();
      const admin = own.client();
      const calls = async (): Promise<Record<string, number>> => {
        const stats = await admin.info('commandstats');
        return Object.fromEntries(
          [...stats.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)].map((m) => [m[1] ?? '', Number(m[2])]),
        );
      };
      await admin.call('ACL', 'SETUSER', 'noscript', 'on', '>pw', '~*', '&*', '+@all', '-@scripting');
      const tiers: RedisTier[] = [];
      const tierFor = async (options: { username?: string; password?: string }): Promise<RedisTier> => {
        const client = await createRedisClient(RedisSchema.parse({ addrs: [own.addr], ...options }), 'commands');
        assert.ok(await connectWithin(client, 2_000));
        const tier = new RedisTier({ client, prefix: '', readTimeout: 1_000, writeTimeout: 1_000, log: silent });
        tiers.push(tier);
        return tier;
      };
      try {
        const tier = await tierFor({});
        const d = layer(77);
        const miss = await tier.lookup('s/r', d.digest);
        assert.equal(miss.hit, false);
        await miss.fill(d);
        await admin.config('RESETSTAT');
        const hit = await tier.lookup('s/r', d.digest);
        assert.ok(hit.hit && hit.descriptor.size === 77 && hit.descriptor.mediaType === d.mediaType);
        const oneScript = await calls();
        assert.equal((oneScript['evalsha'] ?? 0) + (oneScript['eval'] ?? 0), 1, JSON.stringify(oneScript));

        await admin.script('FLUSH');
        const again = await tier.lookup('s/r', d.digest);
        assert.ok(again.hit, 'a hit after the script cache was flushed');
        assert.equal(((await calls())['eval'] ?? 0) >= 1, true, 'EVAL loaded the script again');

        // Another repository, not yet linked: a miss, whichever way it is read.
        assert.equal((await tier.lookup('s/other', d.digest)).hit, false);

        const plain = await tierFor({ username: 'noscript', password: 'pw' });
        await admin.config('RESETSTAT');
        const stillHit = await plain.lookup('s/r', d.digest);
        assert.ok(stillHit.hit && stillHit.descriptor.size === 77, 'a user without scripts still gets hits');
        const plainCalls = await calls();
        assert.equal(plainCalls['sismember'], 1, 'answered by plain commands');
        assert.equal(plainCalls['eval'], undefined, JSON.stringify(plainCalls));
        const e = layer(5);
        const plainMiss = await plain.lookup('s/r', e.digest);
        assert.equal(plainMiss.hit, false);
        await plainMiss.fill(e);
        assert.ok((await tier.lookup('s/r', e.digest)).hit, 'the script reads what plain commands wrote');
      } finally {
        for (const tier of tiers) await tier.close();
        admin.disconnect();
        await own.dispose();
      }
    });

    it('still answers hits with the script when redis is full and refuses writes (noeviction)', async function () {
      const own = await startRedis({ args: ['--maxmemory-policy', 'noeviction'] });
      const admin = own.client();
      const client = await createRedisClient(RedisSchema.parse({ addrs: [own.addr] }), 'commands');
      const tier = new RedisTier({ client, prefix: '', readTimeout: 1_000, writeTimeout: 1_000, log: silent });
      try {
        assert.ok(await connectWithin(client, 2_000));
        const d = layer(12);
        const miss = await tier.lookup('full/r', d.digest);
        assert.equal(miss.hit, false);
        await miss.fill(d);
        await admin.config('SET', 'maxmemory', '1');
        await assert.rejects(admin.set('x', 'y'), /OOM/, 'redis now refuses writes');
        await admin.config('RESETSTAT');
        const hit = await tier.lookup('full/r', d.digest);
        assert.ok(hit.hit && hit.descriptor.size === 12);
        assert.match(await admin.info('commandstats'), /^cmdstat_evalsha:calls=1,/m, 'through the script');
      } finally {
        await admin.config('SET', 'maxmemory', '0');
        await tier.close();
        admin.disconnect();
        await own.dispose();
      }
    });

    it('sends the commands of one event-loop turn to redis in one write, and answers each of them', async function () {
      const client = await createRedisClient(RedisSchema.parse({ addrs: [server().addr] }), 'commands');
      assert.ok(await connectWithin(client, 2_000));
      assert.ok(client instanceof Redis);
      const tier = new RedisTier({ client, prefix: 'turn:', readTimeout: 1_000, writeTimeout: 1_000, log: silent });
      // Counts what reaches the socket's own write methods: one call, one write(2).
      const socket = client.stream;
      let writes = 0;
      const write = socket._write.bind(socket);
      socket._write = (chunk: unknown, encoding: BufferEncoding, callback: (error?: Error | null) => void) => {
        writes++;
        write(chunk, encoding, callback);
      };
      const writev = socket._writev?.bind(socket);
      assert.ok(writev !== undefined);
      socket._writev = (chunks, callback) => {
        writes++;
        writev(chunks, callback);
      };
      try {
        // Loads the lookup script, should this server not have it yet (its first use sends it again).
        assert.equal((await tier.lookup('t/r', uniqueDigest())).hit, false);
        writes = 0;
        const ds = Array.from({ length: 20 }, (_, i) => layer(100 + i));
        const misses = await Promise.all(ds.map((d) => tier.lookup('t/r', d.digest)));
        assert.equal(writes, 1, 'twenty lookups in one turn, one write');
        writes = 0;
        // Each fill sends several commands in its first turn; twenty fills in one turn share one write too.
        await Promise.all(misses.map((m, i) => (m.hit ? Promise.reject(new Error('hit')) : m.fill(ds[i]!))));
        // A fill's commands go out in three turns (see RedisTier's #write): three writes for all twenty, not sixty.
        assert.ok(writes >= 1 && writes <= 3, `twenty fills took ${writes} writes`);
        writes = 0;
        const hits = await Promise.all(ds.map((d) => tier.lookup('t/r', d.digest)));
        assert.equal(writes, 1);
        hits.forEach((h, i) =>
          assert.ok(h.hit && h.descriptor.size === 100 + i, `lookup ${i} answered its own digest`),
        );
        writes = 0;
        // Lookups in separate turns are not held back for each other.
        for (const d of ds.slice(0, 3)) assert.ok((await tier.lookup('t/r', d.digest)).hit);
        assert.equal(writes, 3);
      } finally {
        await tier.close();
      }
    });

    it('refuses lookups and reports closed after close', async function () {
      const config = RedisSchema.parse({ addrs: [server().addr] });
      const client = await createRedisClient(config, 'commands');
      assert.ok(await connectWithin(client, 2_000));
      const tier = new RedisTier({ client, prefix: 'closed:', readTimeout: 200, writeTimeout: 200, log: silent });
      await tier.close();
      await tier.close();
      assert.equal(await tier.check(), 'redis: closed');
      await assert.rejects(tier.lookup(undefined, uniqueDigest()), /closed/);
    });
  });
});
