// Scale-out on object storage: three `berth serve` processes on one SeaweedFS bucket and one Redis, each with a
// two-tier cache, as replicas of a Deployment run. An upload's state lives in the bucket, so a chunked upload whose
// PATCHes land on different replicas finishes on any of them; a delete through one is seen at once by the others;
// a manifest pushed through one is listed by all.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnRegistry, type ChildRegistry } from '../helpers/harness.js';
import { deleteBlob, headBlob, pushImage, randomImage, sha256 } from '../helpers/push.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startSeaweedS3, type SeaweedS3 } from '../helpers/seaweedfs.js';

const MiB = 1024 * 1024;

describe('three replicas sharing one S3 bucket and one Redis @integration', function () {
  this.timeout(300_000);
  let s3: SeaweedS3 | undefined;
  let redis: RedisServer | undefined;
  let replicas: ChildRegistry[] = [];

  before(async function () {
    s3 = await startSeaweedS3();
    redis = await startRedis();
    const bucket = await s3.createBucket();
    const env = {
      REGISTRY_STORAGE: 's3',
      REGISTRY_STORAGE_S3_REGIONENDPOINT: s3.endpoint,
      REGISTRY_STORAGE_S3_REGION: s3.region,
      REGISTRY_STORAGE_S3_FORCEPATHSTYLE: 'true',
      REGISTRY_STORAGE_S3_BUCKET: bucket,
      REGISTRY_STORAGE_S3_ACCESSKEY: s3.accessKey,
      REGISTRY_STORAGE_S3_SECRETKEY: s3.secretKey,
      REGISTRY_STORAGE_S3_CHUNKSIZE: String(5 * MiB),
      REGISTRY_STORAGE_DELETE_ENABLED: 'true',
      REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'redis',
      REGISTRY_STORAGE_CACHE_TWOTIER: 'true',
      REGISTRY_REDIS_ADDRS: `[${redis.addr}]`,
      // One secret for all, as the operator gives every pod of a Registry: any replica takes another's upload URLs.
      REGISTRY_HTTP_SECRET: randomBytes(32).toString('hex'),
      REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
    };
    for (let i = 0; i < 3; i++) replicas.push(await spawnRegistry(env));
  });

  after(async function () {
    await Promise.all(replicas.map((r) => r.stop()));
    replicas = [];
    await redis?.dispose();
    await s3?.stop();
  });

  it('finishes a chunked upload whose PATCHes go round-robin, and every replica serves the same bytes', async function () {
    const chunks = Array.from({ length: 7 }, (_, i) => randomBytes(i === 3 ? 6 * MiB : 700 * 1024));
    const blob = Buffer.concat(chunks);
    const digest = sha256(blob);
    const base = (i: number): string => replicas[i % replicas.length]?.url ?? '';
    const started = await fetch(`${base(0)}/v2/spread/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(started.status, 202, await started.text());
    let location = started.headers.get('location') ?? '';
    let offset = 0;
    for (const [i, chunk] of chunks.entries()) {
      // The same path on the next replica: the state it needs is in the bucket (and the signed location).
      const url = new URL(location, base(i + 1));
      const res = await fetch(new URL(url.pathname + url.search, base(i + 1)), {
        method: 'PATCH',
        body: chunk,
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${offset}-${offset + chunk.length - 1}`,
        },
      });
      assert.equal(res.status, 202, `PATCH ${i} on replica ${(i + 1) % 3}: ${await res.text()}`);
      offset += chunk.length;
      assert.equal(res.headers.get('range'), `0-${offset - 1}`);
      location = res.headers.get('location') ?? location;
    }
    const last = new URL(location, base(chunks.length + 1));
    last.searchParams.set('digest', digest);
    const put = await fetch(new URL(last.pathname + last.search, base(chunks.length + 1)), { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    for (const r of replicas) {
      const res = await fetch(`${r.url}/v2/spread/app/blobs/${digest}`);
      assert.equal(res.status, 200);
      const got = Buffer.from(await res.arrayBuffer());
      assert.equal(got.length, blob.length);
      assert.ok(got.equals(blob), `replica ${r.url} serves other bytes`);
    }
  });

  it('answers 404 on the other two as soon as one deleted a blob', async function () {
    const image = randomImage(1);
    const layer = image.layers[0];
    assert.ok(layer);
    await pushImage(replicas[0]?.url ?? '', 'spread/deleted', 'v1', image);
    // Every replica has the descriptor cached (its LRU and Redis).
    for (const r of replicas)
      for (let i = 0; i < 2; i++) assert.equal(await headBlob(r.url, 'spread/deleted', layer.digest), 200);
    await deleteBlob(replicas[1]?.url ?? '', 'spread/deleted', layer.digest);
    for (const r of replicas) assert.equal(await headBlob(r.url, 'spread/deleted', layer.digest), 404, r.url);
  });

  it('lists a manifest pushed through one replica in the tags and catalog of the others', async function () {
    await pushImage(replicas[2]?.url ?? '', 'spread/listed', 'v7', randomImage(1));
    for (const r of replicas) {
      const tags = (await (await fetch(`${r.url}/v2/spread/listed/tags/list`)).json()) as { tags: string[] };
      assert.deepEqual(tags.tags, ['v7']);
      const catalog = (await (await fetch(`${r.url}/v2/_catalog`)).json()) as { repositories: string[] };
      assert.ok(catalog.repositories.includes('spread/listed'), JSON.stringify(catalog));
    }
  });
});
