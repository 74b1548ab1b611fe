// Upload sessions over the in-memory driver: chunks are all-or-nothing, the digest is verified at commit with and
// without this process's running hash, and a failed commit or a cancel leaves storage as the spec asks.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { digestBuffer, parseDigest, type Digest } from '../../src/oci/digest.js';
import { RegistryError } from '../../src/oci/errors.js';
import type { FileInfo, FileWriter, ReadOptions, StorageDriver } from '../../src/storage/driver.js';
import { InMemoryDriver } from '../../src/storage/drivers/inmemory/index.js';
import { paths } from '../../src/storage/paths.js';
import { RegistryStorage } from '../../src/storage/registry.js';

/** An in-memory driver that counts reads of each path. */
class CountingDriver implements StorageDriver {
  readonly name = 'counting';
  readonly inner = new InMemoryDriver();
  readonly reads = new Map<string, number>();

  getContent(path: string): Promise<Buffer> {
    return this.inner.getContent(path);
  }
  putContent(path: string, content: Uint8Array): Promise<void> {
    return this.inner.putContent(path, content);
  }
  reader(path: string, options?: ReadOptions): Promise<Readable> {
    this.reads.set(path, (this.reads.get(path) ?? 0) + 1);
    return this.inner.reader(path, options);
  }
  writer(path: string, append: boolean): Promise<FileWriter> {
    return this.inner.writer(path, append);
  }
  stat(path: string): Promise<FileInfo> {
    return this.inner.stat(path);
  }
  list(path: string): Promise<string[]> {
    return this.inner.list(path);
  }
  move(source: string, destination: string): Promise<void> {
    return this.inner.move(source, destination);
  }
  delete(path: string): Promise<void> {
    return this.inner.delete(path);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const NAME = 'unit/uploads';

function body(...parts: Buffer[]): Readable {
  return Readable.from(parts, { objectMode: false });
}

/** A body that yields `first` and then fails, as a request whose client goes away does. */
function failingBody(first: Buffer): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(first);
      } else {
        this.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
      }
    },
  });
}

/** A body that gives `data` only when released; `reading` resolves once the consumer first asks for bytes. */
function gatedBody(data: Buffer): { body: Readable; reading: Promise<void>; release: () => void } {
  let asked: () => void = () => undefined;
  const reading = new Promise<void>((resolve) => (asked = resolve));
  let released = false;
  let waiting = false;
  const body = new Readable({
    read() {
      asked();
      if (released) return;
      waiting = true;
    },
  });
  return {
    body,
    reading,
    release: () => {
      released = true;
      if (waiting) {
        body.push(data);
        body.push(null);
      }
    },
  };
}

function sha512(data: Buffer): Digest {
  return parseDigest(`sha512:${createHash('sha512').update(data).digest('hex')}`);
}

async function rejectsWith(promise: Promise<unknown>, code: string, status?: number): Promise<RegistryError> {
  let caught: unknown;
  await assert.rejects(promise, (err: unknown) => {
    caught = err;
    return err instanceof RegistryError && err.code === code && (status === undefined || err.status === status);
  });
  return caught as RegistryError;
}

describe('Uploads', function () {
  let driver: CountingDriver;
  let storage: RegistryStorage;

  beforeEach(function () {
    driver = new CountingDriver();
    storage = new RegistryStorage(driver);
  });

  it('starts a session of zero bytes that status then finds', async function () {
    const uploads = storage.repository(NAME).uploads;
    const session = await uploads.create();
    assert.match(session.id, /^[0-9a-f-]{36}$/);
    assert.equal(session.size, 0);
    const status = await uploads.status(session.id);
    assert.equal(status.size, 0);
    assert.equal(status.startedAt.toISOString(), session.startedAt.toISOString());
  });

  it('appends chunks and reports the growing size', async function () {
    const uploads = storage.repository(NAME).uploads;
    const { id } = await uploads.create();
    assert.equal((await uploads.append(id, body(Buffer.from('abc')))).size, 3);
    assert.equal((await uploads.append(id, body(Buffer.from('defg')), { range: { start: 3, end: 6 } })).size, 7);
    assert.equal((await uploads.status(id)).size, 7);
    assert.equal((await driver.getContent(paths.uploadData(NAME, id))).toString(), 'abcdefg');
  });

  it('leaves the upload as it was when a chunk body errors midway', async function () {
    const uploads = storage.repository(NAME).uploads;
    const { id } = await uploads.create();
    await uploads.append(id, body(Buffer.from('first')));
    await assert.rejects(uploads.append(id, failingBody(randomBytes(5000))), /socket hang up/);
    assert.equal((await uploads.status(id)).size, 5);
    assert.equal((await driver.getContent(paths.uploadData(NAME, id))).toString(), 'first');
    // The running hash must not have taken the failed bytes either: commit uses it and must still verify.
    await uploads.append(id, body(Buffer.from('-second')));
    const blob = await uploads.commit(id, digestBuffer(Buffer.from('first-second')));
    assert.equal(blob.size, 12);
    assert.equal(driver.reads.get(paths.uploadData(NAME, id)), undefined, 'verified from the running hash');
  });

  it('leaves the upload as it was when the signal aborts a chunk', async function () {
    const uploads = storage.repository(NAME).uploads;
    const { id } = await uploads.create();
    await uploads.append(id, body(Buffer.from('kept')));
    const controller = new AbortController();
    let pushed = false;
    // One piece, then nothing more until the signal aborts.
    const slow = new Readable({
      read() {
        if (pushed) return;
        pushed = true;
        this.push(Buffer.alloc(1024, 1));
        setTimeout(() => controller.abort(), 5);
      },
    });
    await assert.rejects(uploads.append(id, slow, { signal: controller.signal }), { name: 'AbortError' });
    assert.equal((await uploads.status(id)).size, 4);
  });

  it('refuses a chunk that does not start at the current end as an offset mismatch naming the current size', async function () {
    const uploads = storage.repository(NAME).uploads;
    const { id } = await uploads.create();
    await uploads.append(id, body(Buffer.from('abcd')));
    for (const start of [0, 2, 5]) {
      await assert.rejects(uploads.append(id, body(Buffer.from('xy')), { range: { start, end: start + 1 } }), {
        name: 'ChunkMismatch',
        kind: 'offset',
        size: 4,
        ranged: true,
      });
    }
    assert.equal((await uploads.status(id)).size, 4);
  });

  it('refuses a chunk shorter or longer than its Content-Range as a length mismatch and keeps the session as it was', async function () {
    const uploads = storage.repository(NAME).uploads;
    const { id } = await uploads.create();
    await uploads.append(id, body(Buffer.from('abcd')));
    const mismatch = { name: 'ChunkMismatch', kind: 'length', size: 4, ranged: true };
    await assert.rejects(uploads.append(id, body(Buffer.from('ef')), { range: { start: 4, end: 9 } }), mismatch);
    await assert.rejects(uploads.append(id, body(Buffer.from('efghij')), { range: { start: 4, end: 5 } }), mismatch);
    assert.equal((await uploads.status(id)).size, 4);
    assert.equal((await driver.getContent(paths.uploadData(NAME, id))).toString(), 'abcd');
  });

  it('refuses a chunk that differs from its Content-Length as an unranged length mismatch', async function () {
    const uploads = storage.repository(NAME).uploads;
    const { id } = await uploads.create();
    await assert.rejects(uploads.append(id, body(Buffer.from('abc')), { length: 10 }), {
      name: 'ChunkMismatch',
      kind: 'length',
      size: 0,
      ranged: false,
    });
    assert.equal((await uploads.status(id)).size, 0);
  });

  it('verifies the digest at commit from the running hash without reading the upload back', async function () {
    const uploads = storage.repository(NAME).uploads;
    const parts = [randomBytes(10_000), randomBytes(7), randomBytes(20_000)];
    const { id } = await uploads.create();
    for (const p of parts) await uploads.append(id, body(p));
    const whole = Buffer.concat(parts);
    const blob = await uploads.commit(id, digestBuffer(whole));
    assert.equal(blob.digest.value, digestBuffer(whole).value);
    assert.equal(blob.size, whole.length);
    assert.equal(driver.reads.get(paths.uploadData(NAME, id)), undefined);
    assert.deepEqual(await storage.blobs.getContent(blob.digest), whole);
  });

  it('verifies the digest by reading the upload back when another process took the chunks', async function () {
    const other = new RegistryStorage(driver);
    const { id } = await storage.repository(NAME).uploads.create();
    const whole = randomBytes(30_000);
    await other.repository(NAME).uploads.append(id, body(whole));
    await rejectsWith(
      storage.repository(NAME).uploads.commit(id, digestBuffer(Buffer.from('wrong'))),
      'DIGEST_INVALID',
    );
    const blob = await storage.repository(NAME).uploads.commit(id, digestBuffer(whole));
    assert.equal(blob.size, whole.length);
    assert.ok((driver.reads.get(paths.uploadData(NAME, id)) ?? 0) >= 1, 'read back');
    assert.deepEqual(await storage.blobs.getContent(blob.digest), whole);
  });

  it('does not trust a running hash that fell behind chunks another process appended', async function () {
    const a = storage.repository(NAME).uploads;
    const b = new RegistryStorage(driver).repository(NAME).uploads;
    const parts = [Buffer.from('one-'), Buffer.from('two-'), Buffer.from('three')];
    const { id } = await a.create();
    await a.append(id, body(parts[0] ?? Buffer.alloc(0)));
    await b.append(id, body(parts[1] ?? Buffer.alloc(0)), { range: { start: 4, end: 7 } });
    await a.append(id, body(parts[2] ?? Buffer.alloc(0)), { range: { start: 8, end: 12 } });
    await rejectsWith(a.commit(id, digestBuffer(Buffer.from('one-three'))), 'DIGEST_INVALID');
    const blob = await a.commit(id, digestBuffer(Buffer.concat(parts)));
    assert.equal((await storage.blobs.getContent(blob.digest)).toString(), 'one-two-three');
  });

  it('refuses a wrong digest with DIGEST_INVALID naming both digests and leaves the session open', async function () {
    const uploads = storage.repository(NAME).uploads;
    const { id } = await uploads.create();
    await uploads.append(id, body(Buffer.from('payload')));
    const wrong = digestBuffer(Buffer.from('not the payload'));
    const err = await rejectsWith(uploads.commit(id, wrong), 'DIGEST_INVALID', 400);
    assert.deepEqual(err.detail, { expected: wrong.value, actual: digestBuffer(Buffer.from('payload')).value });
    assert.equal((await uploads.status(id)).size, 7);
    await rejectsWith(storage.repository(NAME).blobs.stat(wrong), 'BLOB_UNKNOWN');
    // Still usable: more bytes, then the right digest.
    await uploads.append(id, body(Buffer.from('+more')));
    assert.equal((await uploads.commit(id, digestBuffer(Buffer.from('payload+more')))).size, 12);
  });

  it('keeps a final chunk only when the digest then matches', async function () {
    const uploads = storage.repository(NAME).uploads;
    const { id } = await uploads.create();
    await uploads.append(id, body(Buffer.from('head-')));
    await rejectsWith(
      uploads.commit(id, digestBuffer(Buffer.from('head-wrong')), body(Buffer.from('tail'))),
      'DIGEST_INVALID',
    );
    assert.equal((await uploads.status(id)).size, 5);
    // The same holds when this process has no running hash for the session.
    const fresh = new RegistryStorage(driver).repository(NAME).uploads;
    await rejectsWith(
      fresh.commit(id, digestBuffer(Buffer.from('head-wrong')), body(Buffer.from('tail'))),
      'DIGEST_INVALID',
    );
    assert.equal((await uploads.status(id)).size, 5);
    const blob = await fresh.commit(id, digestBuffer(Buffer.from('head-tail')), body(Buffer.from('tail')), {
      range: { start: 5, end: 8 },
    });
    assert.equal((await storage.blobs.getContent(blob.digest)).toString(), 'head-tail');
  });

  it('refuses a chunk that was still arriving when another request committed the session, and leaves no trace', async function () {
    const uploads = storage.repository(NAME).uploads;
    const { id } = await uploads.create();
    await uploads.append(id, body(Buffer.from('abcd')));
    const late = gatedBody(Buffer.from('late bytes'));
    const appending = uploads.append(id, late.body);
    await late.reading;
    const blob = await new RegistryStorage(driver)
      .repository(NAME)
      .uploads.commit(id, digestBuffer(Buffer.from('abcd')));
    late.release();
    await rejectsWith(appending, 'BLOB_UPLOAD_UNKNOWN', 404);
    await assert.rejects(driver.stat(paths.uploadData(NAME, id)), { kind: 'PathNotFound' });
    assert.equal((await storage.blobs.getContent(blob.digest)).toString(), 'abcd');
  });

  it('makes a commit in the same process wait for a chunk still arriving, so the blob holds exactly its bytes', async function () {
    const uploads = storage.repository(NAME).uploads;
    const { id } = await uploads.create();
    await uploads.append(id, body(Buffer.from('abcd')));
    const late = gatedBody(Buffer.from('efgh'));
    const appending = uploads.append(id, late.body);
    await late.reading;
    const committing = uploads.commit(id, digestBuffer(Buffer.from('abcdefgh')));
    late.release();
    assert.equal((await appending).size, 8);
    const blob = await committing;
    assert.equal((await storage.blobs.getContent(blob.digest)).toString(), 'abcdefgh');
    await rejectsWith(uploads.status(id), 'BLOB_UPLOAD_UNKNOWN', 404);
  });

  it('refuses a chunk that was still arriving when the session was cancelled, and leaves no trace', async function () {
    const uploads = storage.repository(NAME).uploads;
    const { id } = await uploads.create();
    const late = gatedBody(Buffer.from('late bytes'));
    const appending = uploads.append(id, late.body);
    await late.reading;
    await uploads.cancel(id);
    late.release();
    await rejectsWith(appending, 'BLOB_UPLOAD_UNKNOWN');
    await assert.rejects(driver.stat(paths.uploadData(NAME, id)), { kind: 'PathNotFound' });
  });

  it('lets only one of two concurrent commits of a session succeed; the other finds it unknown', async function () {
    const a = storage.repository(NAME).uploads;
    const b = new RegistryStorage(driver).repository(NAME).uploads;
    const data = randomBytes(2000);
    const { id } = await a.create();
    await a.append(id, body(data));
    const results = await Promise.allSettled([
      a.commit(id, digestBuffer(data)),
      b.commit(id, digestBuffer(data)),
      a.commit(id, digestBuffer(data)),
    ]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    for (const r of results) {
      if (r.status === 'rejected')
        assert.ok(r.reason instanceof RegistryError && r.reason.code === 'BLOB_UPLOAD_UNKNOWN', String(r.reason));
    }
    assert.deepEqual(await storage.blobs.getContent(digestBuffer(data)), data);
  });

  it('lets only one of concurrent cancels of a session succeed; the others find it unknown', async function () {
    const uploads = storage.repository(NAME).uploads;
    const { id } = await uploads.create();
    await uploads.append(id, body(Buffer.from('abandoned')));
    const results = await Promise.allSettled([uploads.cancel(id), uploads.cancel(id), uploads.cancel(id)]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    for (const r of results) {
      if (r.status === 'rejected') {
        assert.ok(r.reason instanceof RegistryError && r.reason.code === 'BLOB_UPLOAD_UNKNOWN', String(r.reason));
      }
    }
    await assert.rejects(driver.stat(paths.uploadDir(NAME, id)), { kind: 'PathNotFound' });
  });

  it('commits a sha512 digest by reading the upload back', async function () {
    const uploads = storage.repository(NAME).uploads;
    const data = randomBytes(5000);
    const { id } = await uploads.create();
    await uploads.append(id, body(data));
    const blob = await uploads.commit(id, sha512(data));
    assert.equal(blob.digest.algorithm, 'sha512');
    assert.deepEqual(await storage.blobs.getContent(blob.digest), data);
  });

  it('moves the bytes into the blob store, links them into the repository only, and ends the session', async function () {
    const uploads = storage.repository(NAME).uploads;
    const data = Buffer.from('linked blob');
    const digest = digestBuffer(data);
    const { id } = await uploads.create();
    await uploads.commit(id, digest, body(data));
    assert.deepEqual(await driver.getContent(paths.blobData(digest)), data);
    assert.equal((await driver.getContent(paths.layerLink(NAME, digest))).toString(), digest.value);
    assert.equal((await storage.repository(NAME).blobs.stat(digest)).size, data.length);
    await rejectsWith(storage.repository('unit/elsewhere').blobs.stat(digest), 'BLOB_UNKNOWN');
    await assert.rejects(driver.stat(paths.uploadDir(NAME, id)), { kind: 'PathNotFound' });
    await rejectsWith(uploads.status(id), 'BLOB_UPLOAD_UNKNOWN', 404);
    await rejectsWith(uploads.commit(id, digest), 'BLOB_UPLOAD_UNKNOWN');
  });

  it('cancels a session: its bytes go and the id is unknown from then on', async function () {
    const uploads = storage.repository(NAME).uploads;
    const { id } = await uploads.create();
    await uploads.append(id, body(Buffer.from('abandoned')));
    await uploads.cancel(id);
    await assert.rejects(driver.stat(paths.uploadDir(NAME, id)), { kind: 'PathNotFound' });
    await rejectsWith(uploads.status(id), 'BLOB_UPLOAD_UNKNOWN');
    await rejectsWith(uploads.append(id, body(Buffer.from('more'))), 'BLOB_UPLOAD_UNKNOWN');
    await rejectsWith(uploads.commit(id, digestBuffer(Buffer.from('abandoned'))), 'BLOB_UPLOAD_UNKNOWN');
    await rejectsWith(uploads.cancel(id), 'BLOB_UPLOAD_UNKNOWN');
  });

  it('treats malformed ids and ids of another repository as unknown', async function () {
    const { id } = await storage.repository('unit/owner').uploads.create();
    const uploads = storage.repository(NAME).uploads;
    for (const bad of ['../../x', '..', '', 'not-a-uuid', id.toUpperCase(), `${id}/data`]) {
      await rejectsWith(uploads.status(bad), 'BLOB_UPLOAD_UNKNOWN');
    }
    await rejectsWith(uploads.status(id), 'BLOB_UPLOAD_UNKNOWN');
    await rejectsWith(uploads.append(id, body(Buffer.from('x'))), 'BLOB_UPLOAD_UNKNOWN');
    await rejectsWith(uploads.cancel(id), 'BLOB_UPLOAD_UNKNOWN');
    assert.equal((await storage.repository('unit/owner').uploads.status(id)).size, 0);
  });
});
