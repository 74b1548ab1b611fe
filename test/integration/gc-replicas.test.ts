// Distribution #2945, the scenario that must pass: two Berth processes share filesystem storage and one Redis
// (plain, and two-tier with each process's LRU in front), both have a blob's descriptor cached, the manifest is
// deleted and `berth gc` sweeps the blob. Then neither replica answers 200 for it, and pushing it again works.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI, removeDir, spawnRegistry, tempDir, type ChildRegistry } from '../helpers/harness.js';
import { deleteManifest, headBlob, OCI_MANIFEST, pushImage, randomImage, type Image } from '../helpers/push.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const run = promisify(execFile);
let prefixes = 0;

async function pullWhole(url: string, name: string, tag: string, image: Image): Promise<void> {
  const res = await fetch(`${url}/v2/${name}/manifests/${tag}`, { headers: { Accept: OCI_MANIFEST } });
  assert.equal(res.status, 200, `${url} ${name}:${tag}`);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), image.manifest);
  for (const blob of [image.config, ...image.layers]) {
    const b = await fetch(`${url}/v2/${name}/blobs/${blob.digest}`);
    assert.equal(b.status, 200, `${url} ${blob.digest}`);
    assert.deepEqual(Buffer.from(await b.arrayBuffer()), blob.bytes);
  }
}

describe('berth gc with two replicas sharing storage and Redis (Distribution #2945) @integration', function () {
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
      let env: Record<string, string>;
      let a: ChildRegistry | undefined;
      let b: ChildRegistry | undefined;

      beforeEach(async function () {
        storage = await tempDir('berth-gc-replicas-');
        env = {
          REGISTRY_STORAGE: 'filesystem',
          REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: storage,
          REGISTRY_STORAGE_DELETE_ENABLED: 'true',
          REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'redis',
          REGISTRY_STORAGE_CACHE_TWOTIER: String(twotier),
          REGISTRY_REDIS_ADDRS: `[${redis.addr}]`,
          REGISTRY_REDIS_PREFIX: `gcreplicas${prefixes++}-`,
          REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
        };
        [a, b] = await Promise.all([spawnRegistry(env), spawnRegistry(env)]);
      });

      afterEach(async function () {
        await Promise.all([a?.stop(), b?.stop()]);
        await removeDir(storage);
      });

      it('answers 404 on both replicas for a blob gc swept, and re-pushing it works', async function () {
        const [one, two] = [a!, b!];
        const kept = randomImage(1);
        const doomed = randomImage(2);
        await pushImage(one.url, 'shared/app', 'kept', kept);
        await pushImage(one.url, 'shared/app', 'doomed', doomed);
        const layer = doomed.layers[0]!.digest;
        // Both replicas (and, with two tiers, both LRUs) hold the descriptor.
        for (const r of [one, two, one, two]) assert.equal(await headBlob(r.url, 'shared/app', layer), 200);
        await deleteManifest(two.url, 'shared/app', doomed.digest);
        // Deleting the manifest leaves the blob: still 200 until the collection.
        assert.equal(await headBlob(one.url, 'shared/app', layer), 200);

        const { stdout } = await run(process.execPath, [CLI, 'gc', '--json', '--grace', '0'], {
          env: { PATH: process.env['PATH'] ?? '', ...env, REGISTRY_LOG_LEVEL: 'warn' },
        });
        const lines = stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        const summary = lines.at(-1)!;
        assert.equal(summary['type'], 'summary');
        assert.ok(lines.some((l) => l['type'] === 'progress' && l['phase'] === 'sweep'));
        assert.deepEqual(
          summary['sweptBlobs'],
          [doomed.digest, doomed.config.digest, ...doomed.layers.map((l) => l.digest)].sort(),
        );

        for (const r of [one, two]) {
          for (const blob of [doomed.config, ...doomed.layers])
            assert.equal(await headBlob(r.url, 'shared/app', blob.digest), 404, `${r.url}: stale ${blob.digest}`);
        }
        // A client pushing the image again HEADs first: a stale 200 would skip the upload and break the image.
        await pushImage(two.url, 'shared/app', 'doomed', doomed);
        for (const r of [one, two]) {
          await pullWhole(r.url, 'shared/app', 'doomed', doomed);
          await pullWhole(r.url, 'shared/app', 'kept', kept);
        }
      });
    });
  }
});
