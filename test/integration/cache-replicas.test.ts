// Two Berth processes sharing filesystem storage and one Redis (plain, and two-tier with each process's LRU in
// front): a blob deleted through one is gone at once on the other, and pushing the same image again succeeds —
// the stale "blob exists" answer that breaks pushes after deletes in Distribution never comes.
import assert from 'node:assert/strict';
import { removeDir, spawnRegistry, tempDir, type ChildRegistry } from '../helpers/harness.js';
import { scrape, sumOf } from '../helpers/prometheus.js';
import { deleteBlob, deleteManifest, headBlob, pushImage, randomImage, type Image } from '../helpers/push.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const CYCLES = 8;
let prefixes = 0;

describe('descriptor cache across two registry processes @integration', function () {
  this.timeout(120_000);
  let redis: RedisServer;

  before(async function () {
    redis = await startRedis();
  });

  after(async function () {
    await redis?.dispose();
  });

  for (const twotier of [false, true]) {
    describe(twotier ? 'two-tier (LRU in front of redis, pub/sub invalidations)' : 'redis', function () {
      let storage: string;
      let a: ChildRegistry | undefined;
      let b: ChildRegistry | undefined;

      beforeEach(async function () {
        storage = await tempDir('berth-replicas-');
        const env = {
          REGISTRY_STORAGE: 'filesystem',
          REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: storage,
          REGISTRY_STORAGE_DELETE_ENABLED: 'true',
          REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'redis',
          REGISTRY_STORAGE_CACHE_TWOTIER: String(twotier),
          REGISTRY_REDIS_ADDRS: `[${redis.addr}]`,
          REGISTRY_REDIS_PREFIX: `replicas${prefixes++}-`,
          REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
        };
        [a, b] = await Promise.all([spawnRegistry(env), spawnRegistry(env)]);
      });

      afterEach(async function () {
        await Promise.all([a?.stop(), b?.stop()]);
        await removeDir(storage);
      });

      async function cacheHits(r: ChildRegistry): Promise<number> {
        return sumOf(await scrape(r.debugUrl), 'registry_storage_cache_hits_total');
      }

      it('answers 404 on one replica as soon as the other deleted the blob, and re-pushing the same image works', async function () {
        const [one, two] = [a!, b!];
        const image: Image = randomImage(2);
        const layer = image.layers[0]!;
        await pushImage(one.url, 'shared/app', 'v1', image);
        for (let cycle = 0; cycle < CYCLES; cycle++) {
          // Warm both replicas: the blob is in Redis (and in both LRUs with two tiers).
          for (const r of [one, two, two]) assert.equal(await headBlob(r.url, 'shared/app', layer.digest), 200);
          const hits = await cacheHits(two);
          assert.equal(await headBlob(two.url, 'shared/app', layer.digest), 200);
          assert.equal(await cacheHits(two), hits + 1, 'the other replica answers from its cache');

          const [deleter, other] = cycle % 2 === 0 ? [one, two] : [two, one];
          await deleteBlob(deleter.url, 'shared/app', layer.digest);
          assert.equal(
            await headBlob(other.url, 'shared/app', layer.digest),
            404,
            `cycle ${cycle}: stale on the other replica`,
          );
          assert.equal(await headBlob(deleter.url, 'shared/app', layer.digest), 404);

          // A client pushing the image again HEADs first: a stale 200 would skip the upload and fail the manifest.
          await pushImage(other.url, 'shared/app', 'v1', image);
          assert.equal(await headBlob(deleter.url, 'shared/app', layer.digest), 200);
        }
        for (const r of [one, two])
          assert.equal(sumOf(await scrape(r.debugUrl), 'registry_storage_cache_errors_total'), 0);
      });

      it('forgets a deleted manifest on both replicas and accepts it again', async function () {
        const [one, two] = [a!, b!];
        const image = randomImage(1);
        await pushImage(one.url, 'shared/man', 'latest', image);
        assert.equal(
          (await fetch(`${two.url}/v2/shared/man/manifests/${image.digest}`, { method: 'HEAD' })).status,
          200,
        );
        await deleteManifest(one.url, 'shared/man', image.digest);
        assert.equal(
          (await fetch(`${two.url}/v2/shared/man/manifests/${image.digest}`, { method: 'HEAD' })).status,
          404,
        );
        // The blobs stay linked after a manifest delete, so the push succeeds without uploading them again.
        for (const blob of [...image.layers, image.config])
          assert.equal(await headBlob(two.url, 'shared/man', blob.digest), 200);
        await pushImage(two.url, 'shared/man', 'latest', image);
        assert.equal((await fetch(`${one.url}/v2/shared/man/manifests/latest`, { method: 'HEAD' })).status, 200);
      });
    });
  }
});
