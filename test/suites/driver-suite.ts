// The one test suite every storage driver runs: it holds each driver to the guarantees written on StorageDriver,
// so the layers above can rely on them whichever driver is configured. A driver's own test file only calls it.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, type Writable } from 'node:stream';
import { readdir } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import {
  StorageError,
  walkFiles,
  type PositionalFile,
  type StorageDriver,
  type StorageErrorKind,
} from '../../src/storage/driver.js';

export interface DriverUnderTest {
  readonly driver: StorageDriver;
  /** Removes whatever the driver left behind (temp directories, buckets). */
  cleanup(): Promise<void>;
}

const MiB = 1024 * 1024;

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** Resolves once the chunk reached the driver (the write callback ran), so size() must count it. */
function writeChunk(stream: Writable, chunk: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => stream.write(chunk, (err) => (err ? reject(err) : resolve())));
}

function endStream(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.once('error', reject);
    stream.end(() => resolve());
  });
}

function isStorageError(kind: StorageErrorKind, path?: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof StorageError, `expected a StorageError, got ${String(err)}`);
    assert.equal(err.kind, kind);
    if (path !== undefined) assert.equal(err.path, path);
    return true;
  };
}

/** Deterministic bytes that differ at every offset, so a misplaced slice cannot pass by accident. */
function pattern(size: number, seed = 0): Buffer {
  const buf = Buffer.alloc(size);
  for (let i = 0; i < size; i++) buf[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return buf;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function runDriverSuite(name: string, factory: () => Promise<DriverUnderTest>): void {
  describe(`storage driver: ${name}`, function () {
    let subject: DriverUnderTest;
    let d: StorageDriver;

    beforeEach(async function () {
      subject = await factory();
      d = subject.driver;
    });

    afterEach(async function () {
      await d.close();
      await subject.cleanup();
    });

    /** Writes `content` through a writer and commits it. */
    async function writeFile(path: string, content: Uint8Array, append = false): Promise<void> {
      const w = await d.writer(path, append);
      await writeChunk(w.stream, content);
      await endStream(w.stream);
      await w.commit();
    }

    it('reports a short lowercase name for logs and metrics', function () {
      assert.match(d.name, /^[a-z][a-z0-9-]*$/);
    });

    describe('getContent and putContent', function () {
      it('reads back exactly the bytes it stored', async function () {
        const content = Buffer.concat([Buffer.from([0, 255, 0, 10, 13]), randomBytes(4096)]);
        await d.putContent('/repo/file', content);
        assert.deepEqual(await d.getContent('/repo/file'), content);
      });

      it('stores and reads back an empty file', async function () {
        await d.putContent('/empty', new Uint8Array(0));
        assert.equal((await d.getContent('/empty')).length, 0);
        assert.equal((await d.stat('/empty')).size, 0);
      });

      it('replaces a longer file with a shorter one without leftover bytes', async function () {
        await d.putContent('/f', Buffer.from('a much longer first version'));
        await d.putContent('/f', Buffer.from('short'));
        assert.equal((await d.getContent('/f')).toString(), 'short');
      });

      it('creates the parent directories of a new file', async function () {
        await d.putContent('/a/b/c/file', Buffer.from('x'));
        assert.equal((await d.stat('/a/b')).isDir, true);
        assert.equal((await d.stat('/a/b/c')).isDir, true);
      });

      it('keeps its own copy: changing the caller buffer afterwards does not change the file', async function () {
        const content = Buffer.from('original');
        await d.putContent('/copy', content);
        content.fill(0);
        assert.equal((await d.getContent('/copy')).toString(), 'original');
      });

      it('throws PathNotFound for a missing file', async function () {
        await assert.rejects(d.getContent('/missing/file'), isStorageError('PathNotFound', '/missing/file'));
      });

      it('gives concurrent writers of one path exactly one of their contents, never a mix', async function () {
        const size = 256 * 1024;
        const versions = Array.from({ length: 6 }, (_, i) => Buffer.alloc(size, 0x41 + i));
        await d.putContent('/race', Buffer.alloc(size, 0x30));
        const seen: Buffer[] = [];
        const readers = Array.from({ length: 6 }, async () => {
          for (let i = 0; i < 5; i++) seen.push(await d.getContent('/race'));
        });
        await Promise.all([...versions.map((v) => d.putContent('/race', v)), ...readers]);
        const final = await d.getContent('/race');
        assert.ok(
          versions.some((v) => v.equals(final)),
          'the final content is one whole version',
        );
        for (const read of seen) {
          assert.equal(read.length, size, 'a reader saw a partial file');
          const first = read[0];
          assert.ok(
            read.every((b) => b === first),
            'a reader saw a mix of two versions',
          );
        }
      });
    });

    describe('reader', function () {
      const content = pattern(10_000);

      beforeEach(async function () {
        await d.putContent('/blob/data', content);
      });

      it('streams the whole file without options', async function () {
        assert.deepEqual(await readAll(await d.reader('/blob/data')), content);
      });

      it('starts at an offset and reads to the end', async function () {
        assert.deepEqual(await readAll(await d.reader('/blob/data', { offset: 1234 })), content.subarray(1234));
      });

      it('reads exactly length bytes from an offset', async function () {
        assert.deepEqual(
          await readAll(await d.reader('/blob/data', { offset: 100, length: 50 })),
          content.subarray(100, 150),
        );
      });

      it('reads nothing for a zero length', async function () {
        assert.equal((await readAll(await d.reader('/blob/data', { offset: 10, length: 0 }))).length, 0);
      });

      it('stops at the end of the file when length reaches past it', async function () {
        assert.deepEqual(
          await readAll(await d.reader('/blob/data', { offset: 9_990, length: 100 })),
          content.subarray(9_990),
        );
      });

      it('gives an empty stream at an offset equal to the size', async function () {
        assert.equal((await readAll(await d.reader('/blob/data', { offset: content.length }))).length, 0);
      });

      it('throws InvalidOffset when the offset is past the end', async function () {
        await assert.rejects(
          d.reader('/blob/data', { offset: content.length + 1 }),
          isStorageError('InvalidOffset', '/blob/data'),
        );
      });

      it('throws PathNotFound for a missing file', async function () {
        await assert.rejects(d.reader('/blob/nothing'), isStorageError('PathNotFound', '/blob/nothing'));
      });

      for (const options of [{ offset: -1 }, { offset: 1.5 }, { offset: 0, length: -1 }, { offset: 0, length: 2.5 }]) {
        it(`throws InvalidOffset for ${JSON.stringify(options)}`, async function () {
          await assert.rejects(d.reader('/blob/data', options), isStorageError('InvalidOffset', '/blob/data'));
        });
      }

      it('slices correctly across the pieces of a file written in many small writes', async function () {
        const big = pattern(300_000, 3);
        const w = await d.writer('/blob/pieces', false);
        for (let at = 0; at < big.length; at += 7_919) await writeChunk(w.stream, big.subarray(at, at + 7_919));
        await endStream(w.stream);
        await w.commit();
        for (const [offset, length] of [
          [0, 1],
          [7_918, 2],
          [7_919, 7_919],
          [50_000, 123_457],
          [299_999, 1],
        ] as const) {
          const got = await readAll(await d.reader('/blob/pieces', { offset, length }));
          assert.deepEqual(got, big.subarray(offset, offset + length), `offset ${offset} length ${length}`);
        }
      });

      it('ends the stream with an AbortError when its signal aborts', async function () {
        await d.putContent('/blob/large', pattern(4 * MiB));
        const controller = new AbortController();
        const stream = await d.reader('/blob/large', { signal: controller.signal });
        controller.abort();
        await assert.rejects(readAll(stream), (err: unknown) => err instanceof Error && err.name === 'AbortError');
      });
    });

    describe('open (positional reads)', function () {
      const content = pattern(300_000, 5);

      beforeEach(async function () {
        // open() is optional: a driver that can only stream (s3) leaves it out, and the HTTP layer then streams.
        if (d.open === undefined) this.skip();
        // Written in pieces, so in-memory files span several chunks.
        const w = await d.writer('/blob/positional', false);
        for (let at = 0; at < content.length; at += 7_919) await writeChunk(w.stream, content.subarray(at, at + 7_919));
        w.stream.end();
        await w.commit();
      });

      it('reads any range into the caller buffer and reports the size', async function () {
        const open = d.open?.bind(d);
        assert.ok(open !== undefined, `${d.name} has no open()`);
        const file = await open('/blob/positional');
        try {
          assert.equal(file.size, content.length);
          const buffer = Buffer.alloc(20_000);
          for (const position of [0, 7_918, 7_919, 123_457, content.length - 20_000]) {
            const n = await file.read(buffer, 20_000, position);
            assert.equal(n, 20_000);
            assert.deepEqual(buffer, content.subarray(position, position + 20_000), `at ${position}`);
          }
          assert.equal(await file.read(buffer, 100, content.length - 10), 10, 'a read past the end is short');
          assert.deepEqual(buffer.subarray(0, 10), content.subarray(content.length - 10));
          assert.equal(await file.read(buffer, 100, content.length), 0, 'a read at the end reads nothing');
        } finally {
          await file.close();
        }
      });

      it('throws PathNotFound for a missing file', async function () {
        const open = d.open?.bind(d);
        assert.ok(open !== undefined);
        await assert.rejects(open('/blob/nothing'), isStorageError('PathNotFound', '/blob/nothing'));
      });

      it('throws PathNotFound for a directory', async function () {
        const open = d.open?.bind(d);
        assert.ok(open !== undefined);
        await assert.rejects(open('/blob'), isStorageError('PathNotFound', '/blob'));
      });

      it('keeps reading the bytes it opened after the path is replaced, and refuses reads once closed', async function () {
        const open = d.open?.bind(d);
        assert.ok(open !== undefined);
        const file = await open('/blob/positional');
        const buffer = Buffer.alloc(1_000);
        try {
          await d.putContent('/blob/other', Buffer.from('replacement'));
          await d.move('/blob/other', '/blob/positional');
          assert.equal(await file.read(buffer, 1_000, 200_000), 1_000);
          assert.deepEqual(buffer, content.subarray(200_000, 201_000));
        } finally {
          await file.close();
        }
        await assert.rejects(file.read(buffer, 10, 0), /read after close/);
        await file.close(); // a second close is harmless
        assert.equal((await d.getContent('/blob/positional')).toString(), 'replacement');
      });

      it('releases what it opened: open-read-close rounds leave no descriptor behind', async function () {
        const open = d.open?.bind(d);
        assert.ok(open !== undefined);
        const descriptors = async (): Promise<number> => (await readdir('/proc/self/fd')).length;
        const before = await descriptors();
        const buffer = Buffer.alloc(64);
        for (let i = 0; i < 500; i++) {
          const file: PositionalFile = await open('/blob/positional');
          try {
            assert.equal(await file.read(buffer, 64, i * 64), 64);
          } finally {
            await file.close();
          }
        }
        assert.deepEqual(buffer, content.subarray(499 * 64, 500 * 64));
        // Other tests' sockets may come and go meanwhile, but not hundreds of them.
        assert.ok((await descriptors()) - before < 100, `descriptors went from ${before} to ${await descriptors()}`);
      });
    });

    describe('writer', function () {
      it('creates a new file that is readable after commit', async function () {
        await writeFile('/up/new', Buffer.from('hello'));
        assert.equal((await d.getContent('/up/new')).toString(), 'hello');
        assert.equal((await d.stat('/up/new')).size, 5);
      });

      it('truncates an existing file when not appending', async function () {
        await d.putContent('/up/f', Buffer.from('old content that is long'));
        await writeFile('/up/f', Buffer.from('new'));
        assert.equal((await d.getContent('/up/f')).toString(), 'new');
      });

      it('continues from the current end when appending', async function () {
        await writeFile('/up/f', Buffer.from('first-'));
        await writeFile('/up/f', Buffer.from('second-'), true);
        await writeFile('/up/f', Buffer.from('third'), true);
        assert.equal((await d.getContent('/up/f')).toString(), 'first-second-third');
      });

      it('appends to a missing file as to an empty one', async function () {
        await writeFile('/up/fresh', Buffer.from('abc'), true);
        assert.equal((await d.getContent('/up/fresh')).toString(), 'abc');
      });

      it('reports the size written so far while writing', async function () {
        const w = await d.writer('/up/sized', false);
        assert.equal(w.size(), 0);
        await writeChunk(w.stream, Buffer.alloc(100));
        assert.equal(w.size(), 100);
        await writeChunk(w.stream, Buffer.alloc(23));
        assert.equal(w.size(), 123);
        await endStream(w.stream);
        await w.commit();
        assert.equal((await d.stat('/up/sized')).size, 123);
      });

      it('counts the existing bytes in size() when appending', async function () {
        await d.putContent('/up/sized', Buffer.alloc(40));
        const w = await d.writer('/up/sized', true);
        assert.equal(w.size(), 40);
        await writeChunk(w.stream, Buffer.alloc(2));
        assert.equal(w.size(), 42);
        await endStream(w.stream);
        await w.commit();
      });

      it('leaves no file behind when a writer of a new file is cancelled', async function () {
        const w = await d.writer('/up/cancelled', false);
        await writeChunk(w.stream, Buffer.from('never'));
        await w.cancel();
        await assert.rejects(d.stat('/up/cancelled'), isStorageError('PathNotFound'));
        await assert.rejects(d.getContent('/up/cancelled'), isStorageError('PathNotFound'));
      });

      it('leaves the previous content when a truncating writer is cancelled', async function () {
        await d.putContent('/up/kept', Buffer.from('precious'));
        const w = await d.writer('/up/kept', false);
        await writeChunk(w.stream, Buffer.from('garbage'));
        await w.cancel();
        assert.equal((await d.getContent('/up/kept')).toString(), 'precious');
      });

      it('leaves the original bytes when an appending writer is cancelled', async function () {
        await d.putContent('/up/appended', Buffer.from('original'));
        const w = await d.writer('/up/appended', true);
        await writeChunk(w.stream, Buffer.from('-extra-bytes'));
        await w.cancel();
        assert.equal((await d.getContent('/up/appended')).toString(), 'original');
        assert.equal((await d.stat('/up/appended')).size, 8);
      });

      it('leaves no file behind when an appending writer of a missing file is cancelled', async function () {
        const w = await d.writer('/up/nothing', true);
        await writeChunk(w.stream, Buffer.from('x'));
        await w.cancel();
        await assert.rejects(d.getContent('/up/nothing'), isStorageError('PathNotFound'));
      });

      it('streams several MiB through pipeline and reads them back intact', async function () {
        const parts = Array.from({ length: 5 }, (_, i) => randomBytes(MiB - 7 + i));
        const total = parts.reduce((n, p) => n + p.length, 0);
        const expected = sha256(Buffer.concat(parts));
        const w = await d.writer('/up/big', false);
        await pipeline(Readable.from(parts), w.stream);
        assert.equal(w.size(), total);
        await w.commit();
        assert.equal((await d.stat('/up/big')).size, total);
        const back = await readAll(await d.reader('/up/big'));
        assert.equal(back.length, total);
        assert.equal(sha256(back), expected);
      });
    });

    describe('stat', function () {
      it('describes a file: its path, size, modification time and that it is no directory', async function () {
        const before = Date.now();
        await d.putContent('/s/file', Buffer.alloc(321));
        const after = Date.now();
        const info = await d.stat('/s/file');
        assert.equal(info.path, '/s/file');
        assert.equal(info.size, 321);
        assert.equal(info.isDir, false);
        assert.ok(info.modTime instanceof Date);
        // Filesystems may round times down to a second or two.
        assert.ok(
          info.modTime.getTime() >= before - 2_000 && info.modTime.getTime() <= after + 2_000,
          `modTime ${info.modTime.toISOString()}`,
        );
      });

      it('describes a directory as a directory', async function () {
        await d.putContent('/s/dir/file', Buffer.from('x'));
        const info = await d.stat('/s/dir');
        assert.equal(info.path, '/s/dir');
        assert.equal(info.isDir, true);
      });

      it('throws PathNotFound for a missing path', async function () {
        await assert.rejects(d.stat('/s/none'), isStorageError('PathNotFound', '/s/none'));
      });
    });

    describe('list', function () {
      it('returns the direct children of a directory as full paths', async function () {
        await d.putContent('/l/a', Buffer.from('1'));
        await d.putContent('/l/b', Buffer.from('2'));
        await d.putContent('/l/sub/deep/c', Buffer.from('3'));
        await d.putContent('/other/x', Buffer.from('4'));
        assert.deepEqual((await d.list('/l')).sort(), ['/l/a', '/l/b', '/l/sub']);
        assert.deepEqual(await d.list('/l/sub'), ['/l/sub/deep']);
      });

      it('lists the root without doubling the slash', async function () {
        await d.putContent('/top/file', Buffer.from('1'));
        await d.putContent('/second', Buffer.from('2'));
        assert.deepEqual((await d.list('/')).sort(), ['/second', '/top']);
      });

      it('throws PathNotFound for a missing directory', async function () {
        await assert.rejects(d.list('/l/missing'), isStorageError('PathNotFound', '/l/missing'));
      });

      it('never shows the temporary files of a putContent in progress', async function () {
        const names = Array.from({ length: 20 }, (_, i) => `/tmp-check/f${i}`);
        const listings: string[][] = [];
        const writes = names.map((n) => d.putContent(n, Buffer.alloc(64 * 1024, 1)));
        const lists = Array.from({ length: 20 }, async () => {
          try {
            listings.push(await d.list('/tmp-check'));
          } catch (err) {
            // The directory may not exist yet when the first listing runs.
            if (!(err instanceof StorageError && err.kind === 'PathNotFound')) throw err;
          }
        });
        await Promise.all([...writes, ...lists]);
        listings.push(await d.list('/tmp-check'));
        for (const listing of listings)
          for (const entry of listing) assert.ok(names.includes(entry), `unexpected entry ${entry}`);
        assert.deepEqual(listings.at(-1)?.sort(), [...names].sort());
      });
    });

    describe('move', function () {
      it('moves a file to a new path, creating its directories', async function () {
        await d.putContent('/m/src', Buffer.from('payload'));
        await d.move('/m/src', '/n/deep/dst');
        assert.equal((await d.getContent('/n/deep/dst')).toString(), 'payload');
        await assert.rejects(d.getContent('/m/src'), isStorageError('PathNotFound'));
      });

      it('replaces an existing destination', async function () {
        await d.putContent('/m/src', Buffer.from('new'));
        await d.putContent('/m/dst', Buffer.from('old and longer'));
        await d.move('/m/src', '/m/dst');
        assert.equal((await d.getContent('/m/dst')).toString(), 'new');
      });

      it('lets readers of the destination see the old or the new content while it is replaced', async function () {
        const size = 128 * 1024;
        await d.putContent('/m/dst', Buffer.alloc(size, 0x30));
        const seen: Buffer[] = [];
        for (let round = 0; round < 5; round++) {
          const fill = 0x41 + round;
          await d.putContent(`/m/src${round}`, Buffer.alloc(size, fill));
          let moved = false;
          // Readers keep reading until the move is over, so they overlap it however long it takes.
          await Promise.all([
            d.move(`/m/src${round}`, '/m/dst').finally(() => (moved = true)),
            ...Array.from({ length: 3 }, async () => {
              do seen.push(await d.getContent('/m/dst'));
              while (!moved);
            }),
          ]);
        }
        for (const read of seen) {
          assert.equal(read.length, size);
          const first = read[0];
          assert.ok(
            read.every((b) => b === first),
            'a reader saw a mix of two versions',
          );
        }
        assert.ok((await d.getContent('/m/dst')).every((b) => b === 0x45));
      });

      it('throws PathNotFound when the source is missing and leaves the destination alone', async function () {
        await d.putContent('/m/dst', Buffer.from('kept'));
        await assert.rejects(d.move('/m/none', '/m/dst'), isStorageError('PathNotFound', '/m/none'));
        assert.equal((await d.getContent('/m/dst')).toString(), 'kept');
      });

      it('refuses to move a file onto a directory and keeps the source', async function () {
        await d.putContent('/m/src', Buffer.from('payload'));
        await d.putContent('/m/dir/child', Buffer.from('child'));
        await assert.rejects(d.move('/m/src', '/m/dir'), isStorageError('InvalidPath'));
        assert.equal((await d.getContent('/m/src')).toString(), 'payload');
        assert.equal((await d.getContent('/m/dir/child')).toString(), 'child');
      });
    });

    describe('delete', function () {
      it('deletes a file and leaves its siblings', async function () {
        await d.putContent('/d/a', Buffer.from('1'));
        await d.putContent('/d/b', Buffer.from('2'));
        await d.delete('/d/a');
        await assert.rejects(d.getContent('/d/a'), isStorageError('PathNotFound'));
        assert.equal((await d.getContent('/d/b')).toString(), '2');
        assert.deepEqual(await d.list('/d'), ['/d/b']);
      });

      it('deletes a whole directory tree and nothing that only shares its prefix', async function () {
        await d.putContent('/d/tree/a', Buffer.from('1'));
        await d.putContent('/d/tree/sub/b', Buffer.from('2'));
        await d.putContent('/d/tree/sub/deeper/c', Buffer.from('3'));
        await d.putContent('/d/treehouse/keep', Buffer.from('4'));
        await d.delete('/d/tree');
        await assert.rejects(d.stat('/d/tree'), isStorageError('PathNotFound'));
        await assert.rejects(d.getContent('/d/tree/sub/deeper/c'), isStorageError('PathNotFound'));
        await assert.rejects(d.list('/d/tree/sub'), isStorageError('PathNotFound'));
        assert.equal((await d.getContent('/d/treehouse/keep')).toString(), '4');
        assert.deepEqual(await d.list('/d'), ['/d/treehouse']);
      });

      it('lets a deleted path be written again', async function () {
        await d.putContent('/d/tree/a', Buffer.from('1'));
        await d.delete('/d/tree');
        await d.putContent('/d/tree/a', Buffer.from('again'));
        assert.equal((await d.getContent('/d/tree/a')).toString(), 'again');
        assert.deepEqual(await d.list('/d/tree'), ['/d/tree/a']);
      });

      it('throws PathNotFound when the path is missing', async function () {
        await assert.rejects(d.delete('/d/none'), isStorageError('PathNotFound', '/d/none'));
      });
    });

    describe('paths', function () {
      for (const bad of ['relative', '/a/../b', '/a//b', '/a/b c', '/a/./b', '/a/', '', '/a/b\0c', '/a/é']) {
        it(`rejects ${JSON.stringify(bad)} with InvalidPath in every method`, async function () {
          await d.putContent('/a/b', Buffer.from('existing'));
          const calls: Array<[string, () => Promise<unknown>]> = [
            ['getContent', () => d.getContent(bad)],
            ['putContent', () => d.putContent(bad, Buffer.from('x'))],
            ['reader', () => d.reader(bad)],
            ['writer', () => d.writer(bad, false)],
            ['writer (append)', () => d.writer(bad, true)],
            ['stat', () => d.stat(bad)],
            ['list', () => d.list(bad)],
            ['move from', () => d.move(bad, '/a/moved')],
            ['move to', () => d.move('/a/b', bad)],
            ['delete', () => d.delete(bad)],
          ];
          for (const [method, call] of calls) {
            await assert.rejects(call(), isStorageError('InvalidPath', bad), method);
          }
          // Nothing escaped the driver's namespace or disturbed what was there.
          assert.equal((await d.getContent('/a/b')).toString(), 'existing');
          await assert.rejects(d.stat('/a/moved'), isStorageError('PathNotFound'));
        });
      }

      it('accepts every character the path grammar allows', async function () {
        const path = '/Repo_1/sha256:ABCdef-0123.data/x.y_z-';
        await d.putContent(path, Buffer.from('ok'));
        assert.equal((await d.getContent(path)).toString(), 'ok');
        assert.deepEqual(await d.list('/Repo_1'), ['/Repo_1/sha256:ABCdef-0123.data']);
      });
    });

    describe('walkFiles', function () {
      it('yields every file under a root depth first in sorted order, without directories', async function () {
        await d.putContent('/w/b/two', Buffer.alloc(2));
        await d.putContent('/w/a/z/three', Buffer.alloc(3));
        await d.putContent('/w/a/one', Buffer.alloc(1));
        await d.putContent('/w/c', Buffer.alloc(4));
        await d.putContent('/elsewhere', Buffer.alloc(5));
        const found: Array<[string, number]> = [];
        for await (const info of walkFiles(d, '/w')) found.push([info.path, info.size]);
        assert.deepEqual(found, [
          ['/w/a/one', 1],
          ['/w/a/z/three', 3],
          ['/w/b/two', 2],
          ['/w/c', 4],
        ]);
      });

      it('yields nothing for a missing root', async function () {
        const found: string[] = [];
        for await (const info of walkFiles(d, '/absent')) found.push(info.path);
        assert.deepEqual(found, []);
      });
    });
  });
}
