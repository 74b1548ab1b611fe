import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { resolveConfig } from '../../../src/config/load.js';
import type { S3StorageConfig } from '../../../src/config/schema.js';
import { StorageError } from '../../../src/storage/driver.js';
import { copyRanges, MIN_PART_SIZE, S3Driver } from '../../../src/storage/drivers/s3/index.js';
import { eventually } from '../../helpers/redis.js';
import { startSeaweedS3, type SeaweedS3 } from '../../helpers/seaweedfs.js';
import { runDriverSuite } from '../../suites/driver-suite.js';

const MiB = 1024 * 1024;

/** The driver's settings as `berth serve` resolves them from `storage.s3`, for this server and bucket. */
function s3Config(server: SeaweedS3, bucket: string, extra: Record<string, unknown> = {}): S3StorageConfig {
  const { storage } = resolveConfig({
    storage: {
      s3: {
        regionendpoint: server.endpoint,
        forcepathstyle: true,
        region: server.region,
        accesskey: server.accessKey,
        secretkey: server.secretKey,
        bucket,
        ...extra,
      },
    },
  });
  assert.equal(storage.driver, 's3');
  return storage;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function write(driver: S3Driver, path: string, content: Buffer, append: boolean): Promise<void> {
  const w = await driver.writer(path, append);
  // 1 MiB writes, as an HTTP body arrives in pieces.
  const pieces = Array.from({ length: Math.ceil(content.length / MiB) }, (_, i) =>
    content.subarray(i * MiB, (i + 1) * MiB),
  );
  await pipeline(Readable.from(pieces), w.stream);
  await w.commit();
}

describe('s3 driver on SeaweedFS @integration', function () {
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

  // Each test under its own root directory in one bucket, which the cleanup empties.
  runDriverSuite('s3', async () => {
    const rootdirectory = `/t-${randomBytes(6).toString('hex')}/`;
    const driver = new S3Driver(s3Config(server, bucket, { rootdirectory }));
    const sweeper = new S3Driver(s3Config(server, bucket, { rootdirectory }));
    return {
      driver,
      cleanup: async () => {
        await sweeper.delete('/');
        await sweeper.close();
      },
    };
  });

  describe('multipart paths, at S3’s smallest part size', function () {
    let driver: S3Driver;
    let root: string;

    beforeEach(function () {
      root = `m-${randomBytes(6).toString('hex')}`;
      driver = new S3Driver(
        s3Config(server, bucket, {
          rootdirectory: root,
          chunksize: MIN_PART_SIZE,
          multipartcopychunksize: MIN_PART_SIZE,
          multipartcopythresholdsize: MIN_PART_SIZE,
        }),
      );
    });

    afterEach(async function () {
      await driver.delete('/').catch(() => undefined);
      await driver.close();
    });

    async function pendingUploads(): Promise<number> {
      const res = await server.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${root}/` }));
      return res.Uploads?.length ?? 0;
    }

    it('streams a 12 MiB file as parts that become visible only at commit', async function () {
      const content = randomBytes(12 * MiB + 123);
      const w = await driver.writer('/big', false);
      await pipeline(Readable.from([content.subarray(0, 11 * MiB)]), w.stream, { end: false });
      // Two whole parts are going up (the write callbacks do not wait for them); the object is still invisible.
      await eventually(async () => (await pendingUploads()) === 1, 'the multipart upload to start');
      await assert.rejects(driver.stat('/big'), (err: unknown) => err instanceof StorageError);
      w.stream.end(content.subarray(11 * MiB));
      await new Promise((r) => w.stream.once('finish', r));
      await w.commit();
      assert.equal(w.size(), content.length);
      assert.equal(sha256(await readAll(await driver.reader('/big'))), sha256(content));
      assert.equal(await pendingUploads(), 0);
    });

    it('appends to a large object by copying it on the server, and to a small one by sending it again', async function () {
      const first = randomBytes(6 * MiB + 1);
      const second = randomBytes(2 * MiB + 5);
      const third = randomBytes(7 * MiB);
      await write(driver, '/upload/data', first, true);
      await write(driver, '/upload/data', second, true);
      await write(driver, '/upload/data', third, true);
      const all = Buffer.concat([first, second, third]);
      assert.equal((await driver.stat('/upload/data')).size, all.length);
      assert.equal(sha256(await driver.getContent('/upload/data')), sha256(all));
      // A small object continued: read back and sent again with the new bytes.
      await write(driver, '/upload/small', Buffer.from('abc'), true);
      await write(driver, '/upload/small', Buffer.from('def'), true);
      assert.equal((await driver.getContent('/upload/small')).toString(), 'abcdef');
      const tail = await readAll(await driver.reader('/upload/data', { offset: all.length - 10 }));
      assert.deepEqual(tail, all.subarray(all.length - 10));
    });

    it('aborts the multipart upload of a cancelled writer and leaves the object as it was', async function () {
      const original = randomBytes(6 * MiB);
      await write(driver, '/kept', original, false);
      const w = await driver.writer('/kept', true);
      assert.equal(w.size(), original.length);
      await pipeline(Readable.from([randomBytes(11 * MiB)]), w.stream);
      await eventually(async () => (await pendingUploads()) === 1, 'the multipart upload to start');
      await w.cancel();
      assert.equal(await pendingUploads(), 0);
      assert.equal(sha256(await driver.getContent('/kept')), sha256(original));
    });

    it('moves an object above the threshold by multipart copy, byte for byte', async function () {
      const content = randomBytes(13 * MiB + 17);
      await driver.putContent('/src', content);
      await driver.move('/src', '/dst/blob');
      assert.equal(sha256(await driver.getContent('/dst/blob')), sha256(content));
      await assert.rejects(driver.stat('/src'), (err: unknown) => err instanceof StorageError);
      assert.equal(await pendingUploads(), 0);
    });

    it('lists and deletes more than one page (1,000 keys) of a directory', async function () {
      this.timeout(300_000);
      const names = Array.from({ length: 1_005 }, (_, i) => `/many/f${String(i).padStart(4, '0')}`);
      for (let i = 0; i < names.length; i += 50) {
        await Promise.all(names.slice(i, i + 50).map((n) => driver.putContent(n, Buffer.from(n))));
      }
      assert.deepEqual((await driver.list('/many')).sort(), names);
      await driver.delete('/many');
      await assert.rejects(driver.list('/many'), (err: unknown) => err instanceof StorageError);
      const left = await server.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${root}/many/` }));
      assert.equal(left.KeyCount ?? 0, 0);
    });
  });

  describe('failures', function () {
    it('refuses wrong credentials with an error that names the keys to check', async function () {
      const driver = new S3Driver(s3Config(server, bucket, { secretkey: 'not-the-secret' }));
      try {
        for (const call of [() => driver.stat('/'), () => driver.getContent('/x'), () => driver.list('/')]) {
          await assert.rejects(call(), (err: unknown) => {
            assert.ok(!(err instanceof StorageError), `a wrong key is no missing path: ${String(err)}`);
            assert.match(String(err), /refused the credentials/);
            assert.match(String(err), /storage\.s3\.accesskey and storage\.s3\.secretkey/);
            assert.match(String(err), new RegExp(`bucket ${bucket} at ${server.endpoint}`));
            return true;
          });
        }
      } finally {
        await driver.close();
      }
    });

    it('names the bucket setting when the bucket does not exist', async function () {
      const driver = new S3Driver(s3Config(server, 'no-such-bucket-here'));
      try {
        await assert.rejects(
          driver.stat('/'),
          /no-such-bucket-here.*the bucket does not exist \(storage\.s3\.bucket\)/,
        );
      } finally {
        await driver.close();
      }
    });

    it('names the endpoint when nothing answers there', async function () {
      const driver = new S3Driver(s3Config(server, bucket, { regionendpoint: 'http://127.0.0.1:9' }));
      try {
        await assert.rejects(driver.stat('/'), /s3: bucket .* at http:\/\/127\.0\.0\.1:9: .*ECONNREFUSED/);
      } finally {
        await driver.close();
      }
    });
  });
});

describe('s3 driver: copyRanges', function () {
  it('cuts an object into copy parts of the chunk size, the last one joined to its neighbour when too small', function () {
    assert.deepEqual(copyRanges(10 * MiB, 5 * MiB), [
      { start: 0, end: 5 * MiB - 1 },
      { start: 5 * MiB, end: 10 * MiB - 1 },
    ]);
    assert.deepEqual(copyRanges(11 * MiB, 5 * MiB), [
      { start: 0, end: 5 * MiB - 1 },
      { start: 5 * MiB, end: 11 * MiB - 1 },
    ]);
    assert.deepEqual(copyRanges(6 * MiB, 32 * MiB), [{ start: 0, end: 6 * MiB - 1 }]);
    const ranges = copyRanges(100 * MiB + 3, 7 * MiB);
    assert.equal(ranges.at(-1)?.end, 100 * MiB + 2);
    for (const [i, r] of ranges.entries()) {
      assert.ok(r.end - r.start + 1 >= MIN_PART_SIZE, `range ${i} is a valid non-last part`);
      if (i > 0) assert.equal(r.start, (ranges[i - 1]?.end ?? 0) + 1, 'ranges are contiguous');
    }
  });

  it('gives no ranges for an empty object', function () {
    assert.deepEqual(copyRanges(0, 5 * MiB), []);
  });
});

describe('s3 driver: endpoint', function () {
  it('takes regionendpoint as given when it has a scheme, else gives it one by secure', function () {
    assert.equal(S3Driver.endpoint({ regionendpoint: '', secure: true }), undefined);
    assert.equal(S3Driver.endpoint({ regionendpoint: 'minio.local:9000', secure: true }), 'https://minio.local:9000');
    assert.equal(S3Driver.endpoint({ regionendpoint: 'minio.local:9000', secure: false }), 'http://minio.local:9000');
    assert.equal(S3Driver.endpoint({ regionendpoint: 'http://10.0.0.1:8333', secure: true }), 'http://10.0.0.1:8333');
  });
});
