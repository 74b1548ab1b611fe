// The descriptor cache in a running Berth, read from /metrics: a scripted push and N HEADs move the request, hit and
// error counters by exactly the expected amounts for each cache kind, and a HEAD answered by the cache does zero
// storage operations. Also manifest verification and mounts through the cache, deletes, and /readyz.
import assert from 'node:assert/strict';
import type { RawConfig } from '../../src/config/schema.js';
import { startInProcess, type InProcessRegistry } from '../helpers/harness.js';
import { scrape, sumOf, type Sample } from '../helpers/prometheus.js';
import { deleteBlob, headBlob, pushImage, putManifest, randomBlob, randomImage, uploadBlob } from '../helpers/push.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

type Kind = 'inmemory' | 'redis' | 'two-tier';
const N = 25;

interface Counts {
  readonly requests: Record<string, number>;
  readonly hits: Record<string, number>;
  readonly errors: number;
  readonly storageOps: number;
  readonly stats: number;
}

function counts(samples: readonly Sample[]): Counts {
  const byTier = (name: string) =>
    Object.fromEntries(['memory', 'redis'].map((tier) => [tier, sumOf(samples, name, { tier })]));
  return {
    requests: byTier('registry_storage_cache_requests_total'),
    hits: byTier('registry_storage_cache_hits_total'),
    errors: sumOf(samples, 'registry_storage_cache_errors_total'),
    storageOps: sumOf(samples, 'registry_storage_action_seconds_count'),
    stats: sumOf(samples, 'registry_storage_action_seconds_count', { action: 'Stat' }),
  };
}

function delta(after: Counts, before: Counts): Counts {
  const sub = (a: Record<string, number>, b: Record<string, number>) =>
    Object.fromEntries(Object.keys(a).map((k) => [k, (a[k] ?? 0) - (b[k] ?? 0)]));
  return {
    requests: sub(after.requests, before.requests),
    hits: sub(after.hits, before.hits),
    errors: after.errors - before.errors,
    storageOps: after.storageOps - before.storageOps,
    stats: after.stats - before.stats,
  };
}

let prefixes = 0;

function cacheConfig(kind: Kind, redis: RedisServer | undefined): RawConfig {
  const storage = { delete: { enabled: true } };
  if (kind === 'inmemory') return { storage: { ...storage, cache: { blobdescriptor: 'inmemory' } } };
  assert.ok(redis !== undefined);
  return {
    storage: { ...storage, cache: { blobdescriptor: 'redis', twotier: kind === 'two-tier' } },
    redis: { addrs: [redis.addr], prefix: `metrics${prefixes++}:` },
  };
}

/** Per tier, what one cache lookup that misses everywhere adds to the request counters. */
function missAll(kind: Kind, lookups: number): Record<string, number> {
  return {
    memory: kind === 'redis' ? 0 : lookups,
    redis: kind === 'inmemory' ? 0 : lookups,
  };
}

/** Per tier, what lookups answered by the first tier add. */
function firstTier(kind: Kind, lookups: number): Record<string, number> {
  return { memory: kind === 'redis' ? 0 : lookups, redis: kind === 'redis' ? lookups : 0 };
}

describe('descriptor cache metrics in a running registry @integration', function () {
  this.timeout(60_000);
  let redis: RedisServer;

  before(async function () {
    redis = await startRedis();
  });

  after(async function () {
    await redis?.dispose();
  });

  for (const kind of ['inmemory', 'redis', 'two-tier'] as const) {
    describe(`with the ${kind} cache`, function () {
      let berth: InProcessRegistry;

      beforeEach(async function () {
        berth = await startInProcess(cacheConfig(kind, redis));
      });

      afterEach(async function () {
        await berth?.close();
      });

      const read = async () => counts(await scrape(berth.debugUrl));

      it(`moves requests, hits and errors by exactly the expected amounts for one push and ${N} HEADs`, async function () {
        const blob = randomBlob(4096);
        const start = await read();
        await uploadBlob(berth.url, 'exact/counts', blob);
        const pushed = delta(await read(), start);
        assert.deepEqual(
          pushed.requests,
          { memory: 0, redis: 0 },
          'a monolithic upload stats nothing through the cache',
        );

        // First HEAD: the repository lookup misses, storage checks the link and asks the global store, which misses.
        assert.equal(await headBlob(berth.url, 'exact/counts', blob.digest), 200);
        const first = delta(await read(), start);
        assert.deepEqual(first.requests, missAll(kind, 2));
        assert.deepEqual(first.hits, { memory: 0, redis: 0 });
        assert.equal(first.errors, 0);
        assert.equal(first.stats - pushed.stats, 2, 'the miss costs two storage stats: link and data');

        const beforeHits = await read();
        for (let i = 1; i < N; i++) assert.equal(await headBlob(berth.url, 'exact/counts', blob.digest), 200);
        const rest = delta(await read(), beforeHits);
        assert.deepEqual(rest.requests, firstTier(kind, N - 1));
        assert.deepEqual(rest.hits, firstTier(kind, N - 1));
        assert.equal(rest.errors, 0);
        assert.equal(rest.storageOps, 0, 'a HEAD answered by the cache does zero storage operations');

        const total = delta(await read(), start);
        const requests = Object.values(total.requests).reduce((a, b) => a + b, 0);
        const hits = Object.values(total.hits).reduce((a, b) => a + b, 0);
        assert.equal(hits, N - 1);
        assert.equal(requests, kind === 'two-tier' ? N + 3 : N + 1);
      });

      it('verifies the blobs of a manifest PUT through the cache', async function () {
        const image = randomImage(2);
        for (const b of [...image.layers, image.config]) await uploadBlob(berth.url, 'verify/me', b);
        const start = await read();
        assert.equal((await putManifest(berth.url, 'verify/me', 'v1', image.manifest)).status, 201);
        const first = delta(await read(), start);
        // Three blobs: a repository and a global lookup each, all missing the cache; then, once the revision is
        // written, the check again (for a collection racing the PUT), whose global lookups the first check filled.
        const sum = (a: Record<string, number>, b: Record<string, number>) =>
          Object.fromEntries(Object.keys(a).map((k) => [k, (a[k] ?? 0) + (b[k] ?? 0)]));
        assert.deepEqual(first.requests, sum(missAll(kind, 6), firstTier(kind, 3)));
        assert.deepEqual(first.hits, firstTier(kind, 3));
        const again = await read();
        assert.equal((await putManifest(berth.url, 'verify/me', 'v2', image.manifest)).status, 201);
        const second = delta(await read(), again);
        assert.deepEqual(second.hits, firstTier(kind, 6), 'both checks answered by the cache the second time');
        assert.equal(second.stats, first.stats - 6, 'the blob checks cost no storage stat the second time');
      });

      it('stats the source of a cross-repository mount through the cache', async function () {
        const blob = randomBlob();
        await uploadBlob(berth.url, 'mount/src', blob);
        assert.equal(await headBlob(berth.url, 'mount/src', blob.digest), 200);
        const before = await read();
        const res = await fetch(`${berth.url}/v2/mount/dst/blobs/uploads/?mount=${blob.digest}&from=mount/src`, {
          method: 'POST',
        });
        assert.equal(res.status, 201);
        assert.deepEqual(delta(await read(), before).hits, firstTier(kind, 1));
        assert.equal(await headBlob(berth.url, 'mount/dst', blob.digest), 200);
      });

      it('answers 404 right after a blob is deleted, and lets the same image be pushed again', async function () {
        const image = randomImage(1);
        await pushImage(berth.url, 'again/img', 'latest', image);
        const layer = image.layers[0]!;
        for (let i = 0; i < 3; i++) assert.equal(await headBlob(berth.url, 'again/img', layer.digest), 200);
        await deleteBlob(berth.url, 'again/img', layer.digest);
        assert.equal(await headBlob(berth.url, 'again/img', layer.digest), 404);
        await pushImage(berth.url, 'again/img', 'latest', image);
        assert.equal(await headBlob(berth.url, 'again/img', layer.digest), 200);
        assert.equal(counts(await scrape(berth.debugUrl)).errors, 0);
      });

      it('reports the cache on /readyz and stays alive on /healthz', async function () {
        const ready = await fetch(`${berth.debugUrl}/readyz`);
        assert.equal(ready.status, 200);
        assert.deepEqual(await ready.json(), { status: 'ok', checks: { storage: 'ok', cache: 'ok' } });
        assert.equal((await fetch(`${berth.debugUrl}/healthz`)).status, 200);
      });
    });
  }

  it('costs two storage stats per HEAD without a cache', async function () {
    const berth = await startInProcess({ storage: { cache: { blobdescriptor: 'none' } } });
    try {
      const blob = randomBlob();
      await uploadBlob(berth.url, 'no/cache', blob);
      const before = counts(await scrape(berth.debugUrl));
      for (let i = 0; i < 5; i++) assert.equal(await headBlob(berth.url, 'no/cache', blob.digest), 200);
      const d = delta(counts(await scrape(berth.debugUrl)), before);
      assert.equal(d.stats, 10);
      assert.deepEqual(d.requests, { memory: 0, redis: 0 });
    } finally {
      await berth.close();
    }
  });

  it('reports an unreachable redis on /readyz without failing readiness or requests', async function () {
    const own = await startRedis();
    const berth = await startInProcess({
      storage: { cache: { blobdescriptor: 'redis' } },
      redis: { addrs: [own.addr], readtimeout: '100ms', writetimeout: '100ms' },
    });
    try {
      await own.kill();
      const res = await fetch(`${berth.debugUrl}/readyz`);
      assert.equal(res.status, 200);
      const body = (await res.json()) as { status: string; checks: { storage: string; cache: string } };
      assert.equal(body.status, 'ok');
      assert.equal(body.checks.storage, 'ok');
      assert.match(body.checks.cache, /^redis: /);
      const blob = randomBlob();
      await uploadBlob(berth.url, 'down/redis', blob);
      assert.equal(await headBlob(berth.url, 'down/redis', blob.digest), 200);
      assert.ok(counts(await scrape(berth.debugUrl)).errors >= 1);
    } finally {
      await berth.close();
      await own.dispose();
    }
  });

  it('counts bytes pushed and pulled', async function () {
    const berth = await startInProcess({});
    try {
      const blob = randomBlob(10_000);
      await uploadBlob(berth.url, 'bytes/b', blob);
      const res = await fetch(`${berth.url}/v2/bytes/b/blobs/${blob.digest}`);
      assert.equal(Buffer.from(await res.arrayBuffer()).length, 10_000);
      const ranged = await fetch(`${berth.url}/v2/bytes/b/blobs/${blob.digest}`, { headers: { Range: 'bytes=0-99' } });
      assert.equal((await ranged.arrayBuffer()).byteLength, 100);
      const samples = await scrape(berth.debugUrl);
      assert.equal(sumOf(samples, 'registry_storage_bytes_pushed_total'), 10_000);
      assert.equal(sumOf(samples, 'registry_storage_bytes_pulled_total'), 10_100);
      assert.equal(sumOf(samples, 'registry_storage_uploads_in_progress'), 0);
    } finally {
      await berth.close();
    }
  });
});
