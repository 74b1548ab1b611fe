import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { resolveConfig } from '../../../src/config/load.js';
import type { S3StorageConfig } from '../../../src/config/schema.js';
import { StorageError } from '../../../src/storage/driver.js';
import { copyRanges, MIN_PART_SIZE, planParts, S3Driver } from '../../../src/storage/drivers/s3/index.js';
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

/** SeaweedFS's count of S3 requests so far, by request type (SeaweedFS_s3_request_total, summed over buckets and codes). */
async function requestCounts(metricsUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(metricsUrl)).text();
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^SeaweedFS_s3_request_total\{([^}]*)\}\s+(\S+)/.exec(line);
    const type = /(?:^|,)type="([^"]*)"/.exec(m?.[1] ?? '')?.[1];
    if (m === null || type === undefined) continue;
    counts.set(type, (counts.get(type) ?? 0) + Number(m[2]));
  }
  return counts;
}

/** Requests of each type between two counts. */
function countsSince(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const diff = new Map<string, number>();
  for (const [type, n] of after) if (n - (before.get(type) ?? 0) > 0) diff.set(type, n - (before.get(type) ?? 0));
  return diff;
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

    it('makes a plain object segmented on its first append: a large one copied on the server, a small one sent again', async function () {
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

    it('moves past the threshold (S3’s 5 GiB CopyObject limit, lowered) in copy parts of the smallest size, the short tail joined to the part before', async function () {
      // 5 copy parts of 5 MiB and a tail of 3 MiB + 5: the tail would be a part too small to precede another, so
      // the last part is 8 MiB + 5.
      const content = randomBytes(5 * MIN_PART_SIZE + 3 * MiB + 5);
      await driver.putContent('/big/src', content);
      const before = await requestCounts(server.metricsUrl);
      await driver.move('/big/src', '/big/dst');
      const moved = countsSince(before, await requestCounts(server.metricsUrl));
      // Create and complete; one PUT per copy part and no CopyObject; the source deleted.
      assert.equal(moved.get('POST'), 2, JSON.stringify([...moved]));
      assert.equal(moved.get('PUT'), 5, JSON.stringify([...moved]));
      const head = await server.client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${root}/big/dst` }));
      assert.match(head.ETag ?? '', /-5"?$/, 'a multipart object of five parts');
      const last = await server.client.send(
        new HeadObjectCommand({ Bucket: bucket, Key: `${root}/big/dst`, PartNumber: 5 }),
      );
      assert.equal(last.ContentLength, 3 * MiB + 5 + MIN_PART_SIZE);
      assert.equal(sha256(await driver.getContent('/big/dst')), sha256(content));
      await assert.rejects(driver.stat('/big/src'), (err: unknown) => err instanceof StorageError);
      assert.equal(await pendingUploads(), 0);
    });

    it('appends more than 1,000 chunks (segment listings of two pages) and joins them in one move, byte for byte', async function () {
      this.timeout(300_000);
      // 1,003 committed appends: a large first one and a large one on the second listing page (both copied at the
      // move), the rest a few bytes each (read and sent as runs).
      const chunks = Array.from({ length: 1_003 }, (_, i) =>
        randomBytes(i === 0 ? MIN_PART_SIZE + 1 : i === 1_001 ? 2 * MIN_PART_SIZE + 7 : 1 + (i % 61)),
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
      const page = await server.client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: `${root}/uploads/many/data~seg~` }),
      );
      assert.equal(page.IsTruncated, true, 'the segments take more than one listing page');
      assert.equal(sha256(await driver.getContent('/uploads/many/data')), sha256(all));
      const tail = await readAll(
        await driver.reader('/uploads/many/data', { offset: all.length - MIN_PART_SIZE - 50 }),
      );
      assert.ok(tail.equals(all.subarray(all.length - MIN_PART_SIZE - 50)));

      const moving = await requestCounts(server.metricsUrl);
      await driver.move('/uploads/many/data', '/blobs/many/data');
      const moved = countsSince(moving, await requestCounts(server.metricsUrl));
      // One multipart upload: the first chunk copied, the small ones before the second large one sent as one part
      // with its first bytes, the rest of it copied, and the small ones after it sent as the last part.
      assert.equal(moved.get('POST'), 2, JSON.stringify([...moved]));
      assert.equal(moved.get('PUT'), 4, JSON.stringify([...moved]));
      assert.equal((await driver.stat('/blobs/many/data')).size, all.length);
      assert.equal(sha256(await driver.getContent('/blobs/many/data')), sha256(all));
      await assert.rejects(driver.stat('/uploads/many/data'), (err: unknown) => err instanceof StorageError);
      const left = await server.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${root}/uploads/` }));
      assert.equal(left.KeyCount ?? 0, 0, 'the source and its segments are gone');
      assert.equal(await pendingUploads(), 0);
    });

    it('keeps appended chunks as segments: each byte sent once, read and moved byte for byte', async function () {
      this.timeout(300_000);
      // 20 chunks of 1 MiB and 6 MiB mixed (runs of small ones, small ones between large ones, a small last one).
      const sizes = [6, 1, 1, 6, 1, 6, 6, 1, 1, 1, 1, 1, 1, 6, 1, 6, 1, 1, 6, 1].map((n, i) => n * MiB + i);
      const chunks = sizes.map((n) => randomBytes(n));
      const all = Buffer.concat(chunks);
      await driver.putContent('/uploads/u1/startedat', Buffer.from('now'));
      await driver.putContent('/uploads/u1/data', new Uint8Array());
      const before = await requestCounts(server.metricsUrl);
      let size = 0;
      for (const chunk of chunks) {
        const w = await driver.writer('/uploads/u1/data', true);
        assert.equal(w.size(), size);
        await write(driver, '/uploads/u1/data', chunk, true);
        await w.cancel();
        size += chunk.length;
        assert.equal((await driver.stat('/uploads/u1/data')).size, size);
      }
      const appended = countsSince(before, await requestCounts(server.metricsUrl));
      // Linear: each chunk is sent once, in parts of chunksize, and nothing already stored is copied (a copy is a PUT
      // too, so continuing the object would show as parts growing with its size) or read back, but the empty first
      // object (by both writers of the first chunk). SeaweedFS counts HEADs as GETs: three a chunk here (two writers
      // opened, one stat).
      const sent = sizes.reduce((n, size) => n + Math.ceil(size / MIN_PART_SIZE), 0);
      assert.ok((appended.get('PUT') ?? 0) <= sent, JSON.stringify([...appended]));
      assert.ok((appended.get('GET') ?? 0) <= 3 * chunks.length + 2, JSON.stringify([...appended]));
      assert.equal(sha256(await readAll(await driver.reader('/uploads/u1/data'))), sha256(all));
      assert.equal(sha256(await driver.getContent('/uploads/u1/data')), sha256(all));
      const bounds = sizes.reduce<number[]>((acc, n) => [...acc, (acc.at(-1) ?? 0) + n], [0]);
      for (const [offset, length] of [
        [0, 10],
        [(bounds[1] ?? 0) - 5, 10],
        [(bounds[3] ?? 0) - 1, (bounds[8] ?? 0) - (bounds[3] ?? 0) + 2],
        [(bounds[12] ?? 0) + 17, 1],
        [all.length - 3, 100],
        [all.length, undefined],
        [(bounds[9] ?? 0) + 1, undefined],
        [5, 0],
      ] as const) {
        const got = await readAll(await driver.reader('/uploads/u1/data', { offset, length }));
        const want = all.subarray(offset, length === undefined ? undefined : offset + length);
        assert.ok(got.equals(want), `offset ${offset} length ${String(length)}: ${got.length} bytes`);
      }
      await assert.rejects(
        driver.reader('/uploads/u1/data', { offset: all.length + 1 }),
        (err: unknown) => err instanceof StorageError && err.kind === 'InvalidOffset',
      );
      // Segments are no files: neither listed nor walked.
      assert.deepEqual((await driver.list('/uploads/u1')).sort(), ['/uploads/u1/data', '/uploads/u1/startedat']);
      const keys = await server.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${root}/uploads/` }));
      assert.equal(keys.KeyCount, 2 + chunks.length - 1, 'one object at the key and one per later append');

      const moving = await requestCounts(server.metricsUrl);
      await driver.move('/uploads/u1/data', '/blobs/ab/data');
      const moved = countsSince(moving, await requestCounts(server.metricsUrl));
      // One multipart upload (create and complete), a part per large segment or run of small ones.
      assert.equal(moved.get('POST'), 2, JSON.stringify([...moved]));
      assert.ok((moved.get('PUT') ?? 0) <= chunks.length, JSON.stringify([...moved]));
      assert.equal((await driver.stat('/blobs/ab/data')).size, all.length);
      assert.equal(sha256(await driver.getContent('/blobs/ab/data')), sha256(all));
      const tail = await readAll(await driver.reader('/blobs/ab/data', { offset: (bounds[17] ?? 0) - 3 }));
      assert.ok(tail.equals(all.subarray((bounds[17] ?? 0) - 3)));
      await assert.rejects(driver.stat('/uploads/u1/data'), (err: unknown) => err instanceof StorageError);
      const left = await server.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${root}/uploads/` }));
      assert.deepEqual(
        (left.Contents ?? []).map((o) => o.Key),
        [`${root}/uploads/u1/startedat`],
        'the source and its segments are gone',
      );
      assert.equal(await pendingUploads(), 0);
    });

    it('keeps a segmented file whole for readers when it is replaced, and deletes its segments with it', async function () {
      await write(driver, '/seg/f', Buffer.from('one-'), true);
      await write(driver, '/seg/f', Buffer.from('two-'), true);
      await write(driver, '/seg/f', Buffer.from('three'), true);
      assert.equal((await driver.getContent('/seg/f')).toString(), 'one-two-three');
      // An appending writer that is cancelled or writes nothing leaves no segment.
      const w = await driver.writer('/seg/f', true);
      await pipeline(Readable.from([Buffer.from('never')]), w.stream);
      await w.cancel();
      await write(driver, '/seg/f', Buffer.alloc(0), true);
      assert.equal((await driver.getContent('/seg/f')).toString(), 'one-two-three');
      // A replacement is one plain object: the old segments no longer count, and appends start afresh.
      await driver.putContent('/seg/f', Buffer.from('new'));
      assert.equal((await driver.getContent('/seg/f')).toString(), 'new');
      assert.equal((await driver.stat('/seg/f')).size, 3);
      await write(driver, '/seg/f', Buffer.from('+more'), true);
      await write(driver, '/seg/f', Buffer.from('+again'), true);
      assert.equal((await driver.getContent('/seg/f')).toString(), 'new+more+again');
      await write(driver, '/seg/f', Buffer.from('truncated'), false);
      assert.equal((await readAll(await driver.reader('/seg/f', { offset: 2 }))).toString(), 'uncated');
      assert.deepEqual(await driver.list('/seg'), ['/seg/f']);
      await write(driver, '/seg/f', Buffer.from('!'), true);
      await write(driver, '/seg/f', Buffer.from('?'), true);
      await driver.delete('/seg/f');
      const left = await server.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${root}/seg/f` }));
      assert.equal(left.KeyCount ?? 0, 0, JSON.stringify(left.Contents?.map((o) => o.Key)));
      await assert.rejects(driver.list('/seg'), (err: unknown) => err instanceof StorageError);
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

describe('s3 driver: planParts', function () {
  const M = MIN_PART_SIZE;
  const bytes = (plan: ReturnType<typeof planParts>): number =>
    plan.reduce((n, p) => n + (p.kind === 'copy' ? p.end - p.start + 1 : p.size), 0);

  it('copies large pieces and sends runs of small ones, every part but the last at least the smallest size', function () {
    const pieces = [
      { key: 'k', size: 0 },
      { key: 's1', size: M + 1 },
      { key: 's2', size: 1024 },
      { key: 's3', size: 1024 },
      { key: 's4', size: 2 * M },
      { key: 's5', size: 3 },
      { key: 's6', size: M + 5 },
      { key: 's7', size: 7 },
    ];
    const plan = planParts(pieces, 32 * M, 2 * M);
    assert.equal(
      bytes(plan),
      pieces.reduce((n, p) => n + p.size, 0),
    );
    for (const [i, p] of plan.entries()) {
      const size = p.kind === 'copy' ? p.end - p.start + 1 : p.size;
      if (i < plan.length - 1) assert.ok(size >= M, `part ${i} is ${size} bytes`);
    }
    assert.deepEqual(plan[0], { kind: 'copy', key: 's1', start: 0, end: M });
    // The two small pieces take the first bytes of s4, whose rest is still large enough to copy.
    assert.deepEqual(plan[1], {
      kind: 'send',
      ranges: [
        { key: 's2', start: 0, end: 1023 },
        { key: 's3', start: 0, end: 1023 },
        { key: 's4', start: 0, end: M - 2049 },
      ],
      size: M,
    });
    assert.deepEqual(plan[2], { kind: 'copy', key: 's4', start: M - 2048, end: 2 * M - 1 });
    // s5 then s6 whole (its rest would be too small to copy), and s7 last, short.
    assert.deepEqual(
      plan.slice(3).map((p) => (p.kind === 'send' ? p.ranges.map((r) => r.key) : p.key)),
      [['s5', 's6'], ['s7']],
    );
  });

  it('copies each byte at most once and plans nothing for empty pieces', function () {
    assert.deepEqual(planParts([{ key: 'k', size: 0 }], 32 * M, 2 * M), []);
    const pieces = Array.from({ length: 50 }, (_, i) => ({ key: `p${i}`, size: (i % 3 === 0 ? 6 : 1) * 1024 * 1024 }));
    const plan = planParts(pieces, 32 * M, 2 * M);
    assert.equal(
      bytes(plan),
      pieces.reduce((n, p) => n + p.size, 0),
    );
    assert.ok(plan.length <= pieces.length);
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
