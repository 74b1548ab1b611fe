// Redis short of memory: with a small maxmemory, whether Redis evicts (allkeys-lru, volatile-lru) or refuses writes
// (noeviction), every HEAD still answers what storage holds — evicted or missing entries are misses, never wrong.
import assert from 'node:assert/strict';
import { startInProcess, type InProcessRegistry } from '../helpers/harness.js';
import { scrape, sumOf } from '../helpers/prometheus.js';
import { deleteBlob, headBlob, randomBlob, uploadBlob, type Blob } from '../helpers/push.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const BLOBS = 600;
const REPOS = ['evict/a', 'evict/b', 'evict/c'];
const CONCURRENCY = 8;

async function inParallel<T>(items: readonly T[], run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < items.length) await run(items[next++]!);
    }),
  );
}

function infoField(info: string, field: string): number {
  const m = new RegExp(`^${field}:(\\d+)`, 'm').exec(info);
  return m === null ? Number.NaN : Number(m[1]);
}

describe('redis with a small maxmemory @integration', function () {
  this.timeout(120_000);

  for (const policy of ['allkeys-lru', 'volatile-lru', 'noeviction'] as const) {
    it(`answers every HEAD correctly under ${policy}`, async function () {
      const redis: RedisServer = await startRedis({ args: ['--maxmemory-policy', policy] });
      const admin = redis.client();
      let berth: InProcessRegistry | undefined;
      try {
        // Room for about a third of what the cache would hold, so it outgrows it quickly.
        const used = infoField(await admin.info('memory'), 'used_memory');
        await admin.config('SET', 'maxmemory', String(used + 384 * 1024));
        berth = await startInProcess({
          storage: { delete: { enabled: true }, cache: { blobdescriptor: 'redis' } },
          redis: { addrs: [redis.addr], prefix: 'small:' },
        });
        const url = berth.url;
        const placed: Array<{ repo: string; blob: Blob }> = Array.from({ length: BLOBS }, (_, i) => ({
          repo: REPOS[i % REPOS.length]!,
          blob: randomBlob(64),
        }));
        await inParallel(placed, ({ repo, blob }) => uploadBlob(url, repo, blob));
        for (let round = 0; round < 2; round++) {
          await inParallel(placed, async ({ repo, blob }) => assert.equal(await headBlob(url, repo, blob.digest), 200));
        }
        const deleted = placed.filter((_, i) => i % 5 === 0);
        await inParallel(deleted, ({ repo, blob }) => deleteBlob(url, repo, blob.digest));
        const gone = new Set(deleted.map((p) => `${p.repo} ${p.blob.digest}`));
        for (let round = 0; round < 2; round++) {
          await inParallel(placed, async ({ repo, blob }) => {
            const expected = gone.has(`${repo} ${blob.digest}`) ? 404 : 200;
            assert.equal(await headBlob(url, repo, blob.digest), expected, `${repo} ${blob.digest}`);
          });
        }
        // Another repository never sees these blobs, cached or not.
        await inParallel(placed.slice(0, 60), async ({ blob }) =>
          assert.equal(await headBlob(url, 'evict/other', blob.digest), 404),
        );

        // A small hot set, looked up again and again, stays in an LRU-evicting Redis: those lookups hit.
        const hot = placed.filter((_, i) => i % 5 !== 0).slice(0, 12);
        for (let round = 0; round < 4; round++) {
          for (const { repo, blob } of hot) assert.equal(await headBlob(url, repo, blob.digest), 200);
        }

        const stats = await admin.info('stats');
        const samples = await scrape(berth.debugUrl);
        const hits = sumOf(samples, 'registry_storage_cache_hits_total');
        const errors = sumOf(samples, 'registry_storage_cache_errors_total');
        if (policy === 'allkeys-lru') {
          assert.ok(infoField(stats, 'evicted_keys') > 0, 'redis evicted entries');
          assert.ok(hits > 0, 'and still answered some lookups');
        } else if (policy === 'noeviction') {
          assert.ok(errors > 0, 'refused writes are counted as cache errors');
        }
      } finally {
        await berth?.close();
        admin.disconnect();
        await redis.dispose();
      }
    });
  }
});
