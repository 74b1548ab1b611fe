// Upload purging: stale sessions go, young ones and everything else stay, a dry run only counts; on S3 the
// multipart uploads that writers left unfinished are aborted too (they are invisible to listings, yet billed).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { resolveConfig } from '../../src/config/load.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { InMemoryDriver } from '../../src/storage/drivers/inmemory/index.js';
import { S3Driver } from '../../src/storage/drivers/s3/index.js';
import { paths } from '../../src/storage/paths.js';
import { purgeUploads } from '../../src/storage/purge.js';
import { startSeaweedS3, type SeaweedS3 } from '../helpers/seaweedfs.js';

async function session(driver: StorageDriver, name: string, id: string): Promise<void> {
  await driver.putContent(paths.uploadStartedAt(name, id), Buffer.from(new Date().toISOString()));
  await driver.putContent(paths.uploadData(name, id), Buffer.from('partial bytes'));
}

async function exists(driver: StorageDriver, path: string): Promise<boolean> {
  return driver.stat(path).then(
    () => true,
    () => false,
  );
}

describe('upload purging', function () {
  it('deletes sessions started before the cut-off, in nested repositories too, and keeps the rest', async function () {
    const driver = new InMemoryDriver();
    await session(driver, 'app', 'old1');
    await session(driver, 'team/app', 'old2');
    const blob = paths.layerLink('app', { algorithm: 'sha256', hex: 'a'.repeat(64) } as never);
    await driver.putContent(blob, Buffer.from('link'));
    const cutoff = new Date(Date.now() + 1_000);
    await new Promise((r) => setTimeout(r, 1_100));
    await session(driver, 'app', 'young');

    const dry = await purgeUploads(driver, cutoff, true);
    assert.deepEqual(dry, { scanned: 3, purged: 2, incomplete: 0 });
    assert.ok(await exists(driver, paths.uploadDir('app', 'old1')), 'a dry run deletes nothing');

    const real = await purgeUploads(driver, cutoff, false);
    assert.deepEqual(real, { scanned: 3, purged: 2, incomplete: 0 });
    assert.equal(await exists(driver, paths.uploadDir('app', 'old1')), false);
    assert.equal(await exists(driver, paths.uploadDir('team/app', 'old2')), false);
    assert.ok(await exists(driver, paths.uploadStartedAt('app', 'young')), 'a young session stays');
    assert.ok(await exists(driver, blob), 'what is not an upload stays');
  });

  it('finishes cleanly on an empty store', async function () {
    assert.deepEqual(await purgeUploads(new InMemoryDriver(), new Date(), false), {
      scanned: 0,
      purged: 0,
      incomplete: 0,
    });
  });
});

describe('upload purging on S3 (SeaweedFS) @integration', function () {
  this.timeout(120_000);
  let server: SeaweedS3;
  let bucket: string;

  before(async function () {
    server = await startSeaweedS3();
    bucket = await server.createBucket();
  });

  after(async function () {
    await server?.stop();
  });

  function driverAt(rootdirectory: string): S3Driver {
    const { storage } = resolveConfig({
      storage: {
        s3: {
          regionendpoint: server.endpoint,
          forcepathstyle: true,
          region: server.region,
          accesskey: server.accessKey,
          secretkey: server.secretKey,
          bucket,
          rootdirectory,
        },
      },
    });
    assert.equal(storage.driver, 's3');
    return new S3Driver(storage);
  }

  /** A multipart upload with one part, begun and never finished: what a writer killed mid-blob leaves. */
  async function abandon(key: string): Promise<string> {
    const { UploadId } = await server.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    assert.ok(UploadId);
    await server.client.send(
      new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: randomBytes(1024) }),
    );
    return UploadId;
  }

  async function pendingKeys(prefix: string): Promise<string[]> {
    const res = await server.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    return (res.Uploads ?? []).map((u) => u.Key ?? '').sort();
  }

  it('aborts multipart uploads left under the root before the cut-off, and only those', async function () {
    const root = `p-${randomBytes(4).toString('hex')}`;
    const other = `q-${randomBytes(4).toString('hex')}`;
    const driver = driverAt(root);
    const stale = `${root}/docker/registry/v2/repositories/app/_uploads/u1/data`;
    const staleSegment = `${root}/docker/registry/v2/repositories/app/_uploads/u2/data~seg~0123~0000000001`;
    await abandon(stale);
    await abandon(staleSegment);
    await abandon(`${other}/docker/registry/v2/blobs/x/data`);
    // S3 dates uploads to the second: more than a second later, the start of the current second is a cut-off that
    // these three are before, and any upload begun from now on is not.
    await new Promise((r) => setTimeout(r, 1_100));
    const cutoff = new Date(Math.floor(Date.now() / 1000) * 1000);
    const young = `${root}/docker/registry/v2/repositories/app/_uploads/u3/data`;
    await abandon(young);
    try {
      assert.deepEqual(await pendingKeys(`${root}/`), [stale, staleSegment, young].sort());

      const dry = await purgeUploads(driver, cutoff, true);
      assert.equal(dry.incomplete, 2);
      assert.equal((await pendingKeys(`${root}/`)).length, 3, 'a dry run aborts nothing');

      const real = await purgeUploads(driver, cutoff, false);
      assert.equal(real.incomplete, 2);
      assert.deepEqual(await pendingKeys(`${root}/`), [young], 'the young upload is a writer still at work');
      assert.equal((await pendingKeys(`${other}/`)).length, 1, 'another root in the bucket is not touched');
    } finally {
      await driver.close();
    }
  });
});
