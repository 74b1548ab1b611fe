import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CRC32C } from '@google-cloud/storage';
import { resolveConfig } from '../../../src/config/load.js';
import type { GcsStorageConfig } from '../../../src/config/schema.js';
import { StorageError } from '../../../src/storage/driver.js';
import { GcsDriver } from '../../../src/storage/drivers/gcs/index.js';
import { startFakeGcs, type FakeGcs } from '../../helpers/fake-gcs.js';
import { runDriverSuite } from '../../suites/driver-suite.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** The driver's settings as `berth serve` resolves them from `storage.gcs`, for this server and bucket. */
function gcsConfig(server: FakeGcs, bucket: string, extra: Record<string, unknown> = {}): GcsStorageConfig {
  const { storage } = resolveConfig({ storage: { gcs: { endpoint: server.endpoint, bucket, ...extra } } });
  assert.equal(storage.driver, 'gcs');
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

async function write(driver: GcsDriver, path: string, content: Buffer, append: boolean): Promise<void> {
  const w = await driver.writer(path, append);
  // 64 KiB writes, as an HTTP body arrives in pieces.
  const pieces = Array.from({ length: Math.ceil(content.length / (64 * KiB)) }, (_, i) =>
    content.subarray(i * 64 * KiB, (i + 1) * 64 * KiB),
  );
  await pipeline(Readable.from(pieces), w.stream);
  await w.commit();
}

describe('gcs driver on fake-gcs-server @integration', function () {
  this.timeout(120_000);
  let server: FakeGcs;
  let bucket: string;

  before(async function () {
    server = await startFakeGcs();
    bucket = await server.createBucket();
  });

  after(async function () {
    await server?.stop();
  });

  // Each test under its own root directory in one bucket, which the cleanup empties.
  runDriverSuite('gcs', async () => {
    const rootdirectory = `/t-${randomBytes(6).toString('hex')}/`;
    const driver = new GcsDriver(gcsConfig(server, bucket, { rootdirectory }));
    const sweeper = new GcsDriver(gcsConfig(server, bucket, { rootdirectory }));
    return {
      driver,
      cleanup: async () => {
        await sweeper.delete('/');
        await sweeper.close();
      },
    };
  });

  describe('resumable uploads and compose, at GCS’s smallest chunk size', function () {
    let driver: GcsDriver;
    let root: string;

    beforeEach(function () {
      root = `c-${randomBytes(6).toString('hex')}`;
      driver = new GcsDriver(gcsConfig(server, bucket, { rootdirectory: root, chunksize: 256 * KiB }));
    });

    afterEach(async function () {
      await driver.delete('/').catch(() => undefined);
      await driver.close();
    });

    it('streams a file of many chunks into a temporary object that only commit puts in place', async function () {
      const content = randomBytes(3 * MiB + 123);
      const w = await driver.writer('/big', false);
      await pipeline(Readable.from([content.subarray(0, 2 * MiB)]), w.stream, { end: false });
      await assert.rejects(driver.stat('/big'), (err: unknown) => err instanceof StorageError);
      w.stream.end(content.subarray(2 * MiB));
      await new Promise((r) => w.stream.once('finish', r));
      // Uploaded, and still invisible: only a temporary object, which no listing shows.
      await assert.rejects(driver.stat('/big'), (err: unknown) => err instanceof StorageError);
      assert.equal((await server.objectNames(bucket, `${root}/`)).length, 1);
      assert.deepEqual(await driver.list('/'), []);
      await w.commit();
      assert.equal(w.size(), content.length);
      assert.equal(sha256(await readAll(await driver.reader('/big'))), sha256(content));
      assert.deepEqual(await server.objectNames(bucket, `${root}/`), [`${root}/big`]);
    });

    it('appends by composing the existing object with the new bytes on the server', async function () {
      const parts = [randomBytes(700 * KiB + 1), randomBytes(5), randomBytes(1 * MiB + 7), Buffer.alloc(0)];
      for (const part of parts) await write(driver, '/upload/data', part, true);
      const all = Buffer.concat(parts);
      assert.equal((await driver.stat('/upload/data')).size, all.length);
      assert.equal(sha256(await driver.getContent('/upload/data')), sha256(all));
      const tail = await readAll(await driver.reader('/upload/data', { offset: all.length - 10 }));
      assert.deepEqual(tail, all.subarray(all.length - 10));
      assert.deepEqual(await server.objectNames(bucket, `${root}/`), [`${root}/upload/data`]);
    });

    it('leaves the object as it was, and no temporary object, when an appending writer is cancelled', async function () {
      const original = randomBytes(300 * KiB);
      await write(driver, '/kept', original, false);
      const w = await driver.writer('/kept', true);
      assert.equal(w.size(), original.length);
      await pipeline(Readable.from([randomBytes(1 * MiB)]), w.stream);
      await w.cancel();
      assert.equal(sha256(await driver.getContent('/kept')), sha256(original));
      assert.deepEqual(await server.objectNames(bucket, `${root}/`), [`${root}/kept`]);
    });

    it('appends more than 1,024 times (the old component limit of a composite object) and moves the result, byte for byte', async function () {
      this.timeout(300_000);
      // Each append composes [the object so far, the new bytes]: its component count grows by one each time. Two of
      // the appends are larger than a chunk, so they go through a resumable upload.
      const chunks = Array.from({ length: 1_030 }, (_, i) =>
        randomBytes(i === 3 || i === 1_027 ? 300 * KiB + i : 1 + (i % 53)),
      );
      const all = Buffer.concat(chunks);
      let size = 0;
      for (const chunk of chunks) {
        const w = await driver.writer('/uploads/many/data', true);
        assert.equal(w.size(), size);
        w.stream.end(chunk);
        await new Promise((r) => w.stream.once('finish', r));
        await w.commit();
        size += chunk.length;
      }
      assert.equal((await driver.stat('/uploads/many/data')).size, all.length);
      await driver.move('/uploads/many/data', '/blobs/many/data');
      assert.equal((await driver.stat('/blobs/many/data')).size, all.length);
      assert.equal(sha256(await readAll(await driver.reader('/blobs/many/data'))), sha256(all));
      await assert.rejects(driver.stat('/uploads/many/data'), (err: unknown) => err instanceof StorageError);
      assert.deepEqual(await server.objectNames(bucket, `${root}/`), [`${root}/blobs/many/data`]);
    });

    it('lists and deletes more than one page (1,000 names) of a directory', async function () {
      this.timeout(300_000);
      const names = Array.from({ length: 1_005 }, (_, i) => `/many/f${String(i).padStart(4, '0')}`);
      for (let i = 0; i < names.length; i += 50) {
        await Promise.all(names.slice(i, i + 50).map((n) => driver.putContent(n, Buffer.from(n))));
      }
      await driver.putContent('/many/sub/x', Buffer.from('x'));
      assert.deepEqual((await driver.list('/many')).sort(), [...names, '/many/sub'].sort());
      await driver.delete('/many');
      await assert.rejects(driver.list('/many'), (err: unknown) => err instanceof StorageError);
      assert.deepEqual(await server.objectNames(bucket, `${root}/many/`), []);
    });
  });

  describe('failures', function () {
    it('names the bucket setting when the bucket does not exist', async function () {
      const driver = new GcsDriver(gcsConfig(server, 'no-such-bucket-here'));
      try {
        for (const call of [
          () => driver.stat('/'),
          () => driver.list('/'),
          () => driver.putContent('/x', Buffer.from('x')),
        ]) {
          await assert.rejects(call(), (err: unknown) => {
            assert.ok(!(err instanceof StorageError), `a missing bucket is no missing path: ${String(err)}`);
            assert.match(String(err), /no-such-bucket-here.*the bucket does not exist \(storage\.gcs\.bucket\)/);
            return true;
          });
        }
      } finally {
        await driver.close();
      }
    });

    it('fails a whole read whose bytes miss the CRC32C that GCS gives, and never ends it cleanly', async function () {
      // A server that answers every read with bytes other than those its hash describes.
      const liar = createServer((_req, res) => {
        const crc = new CRC32C();
        crc.update(Buffer.from('the stored bytes'));
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-goog-hash': `crc32c=${crc.toString()}` });
        res.end('other bytes here');
      });
      liar.listen(0, '127.0.0.1');
      await once(liar, 'listening');
      const { port } = liar.address() as AddressInfo;
      const driver = new GcsDriver(gcsConfig(server, bucket, { endpoint: `http://127.0.0.1:${port}` }));
      try {
        await assert.rejects(readAll(await driver.reader('/blob')), /does not match its CRC32C/);
        await assert.rejects(driver.getContent('/blob'), /does not match its CRC32C/);
        // A range has no hash to check, and is passed through.
        assert.equal((await readAll(await driver.reader('/blob', { offset: 1 }))).toString(), 'other bytes here');
      } finally {
        await driver.close();
        liar.close();
      }
    });

    it('names the endpoint when nothing answers there', async function () {
      const driver = new GcsDriver(gcsConfig(server, bucket, { endpoint: 'http://127.0.0.1:9' }));
      try {
        await assert.rejects(driver.stat('/'), /gcs: bucket .* at http:\/\/127\.0\.0\.1:9: .*ECONNREFUSED/);
      } finally {
        await driver.close();
      }
    });
  });
});
