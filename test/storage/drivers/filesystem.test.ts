import assert from 'node:assert/strict';
import { readdir, readFile, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { StorageError } from '../../../src/storage/driver.js';
import {
  FilesystemDriver,
  FSYNC,
  type Durability,
  type Writeback,
} from '../../../src/storage/drivers/filesystem/index.js';
import { eventLoopAllowed, SyncMode } from '../../../src/storage/drivers/filesystem/sync-mode.js';
import { removeDir, tempDir } from '../../helpers/harness.js';
import { runDriverSuite } from '../../suites/driver-suite.js';

runDriverSuite('filesystem', async () => {
  const dir = await tempDir('berth-fs-driver-');
  return { driver: new FilesystemDriver({ rootdirectory: dir }), cleanup: () => removeDir(dir) };
});

// What a slow disk gets: every stat and read on the thread pool.
runDriverSuite('filesystem (thread pool)', async () => {
  const dir = await tempDir('berth-fs-driver-');
  const io = { stats: new SyncMode({ allowed: false }), reads: new SyncMode({ allowed: false }) };
  return { driver: new FilesystemDriver({ rootdirectory: dir }, io), cleanup: () => removeDir(dir) };
});

describe('filesystem driver: small-file cache', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('berth-fs-cache-');
  });
  afterEach(() => removeDir(dir));

  it('sees every replacement another process makes, even of the same size', async function () {
    this.timeout(10_000);
    const reader = new FilesystemDriver({ rootdirectory: dir });
    const writer = new FilesystemDriver({ rootdirectory: dir });
    await writer.putContent('/tag/link', Buffer.from('value-000'));
    // Old enough to be cached by the reader.
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await reader.getContent('/tag/link')).toString(), 'value-000');
    for (let i = 1; i <= 50; i++) {
      const value = `value-${String(i).padStart(3, '0')}`;
      await writer.putContent('/tag/link', Buffer.from(value));
      assert.equal((await reader.getContent('/tag/link')).toString(), value);
    }
  });

  it('reports a cached file deleted by another process as missing', async function () {
    this.timeout(10_000);
    const reader = new FilesystemDriver({ rootdirectory: dir });
    const writer = new FilesystemDriver({ rootdirectory: dir });
    await writer.putContent('/a/link', Buffer.from('x'));
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await reader.getContent('/a/link')).toString(), 'x');
    await writer.delete('/a/link');
    await assert.rejects(
      reader.getContent('/a/link'),
      (err: unknown) => err instanceof StorageError && err.kind === 'PathNotFound',
    );
  });
});

describe('filesystem driver: durability', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('berth-fs-durable-');
  });
  afterEach(() => removeDir(dir));

  interface Event {
    readonly kind: 'file' | 'directory';
    readonly path: string;
    /** What the final destination held when the flush ran (undefined: it did not exist). */
    readonly destination: string | undefined;
    /** For file flushes: the bytes the flushed file held. */
    readonly content?: string;
  }

  /** A Durability that really flushes, and records each flush with what the disk showed at that moment. */
  function recorder(destination: () => string): { io: Durability; events: Event[] } {
    const events: Event[] = [];
    const seen = async (): Promise<string | undefined> => readFile(destination(), 'utf8').catch(() => undefined);
    const io: Durability = {
      file: async (handle, full) => {
        const content = (await readFile(full)).toString('utf8');
        events.push({ kind: 'file', path: full, destination: await seen(), content });
        await FSYNC.file(handle, full);
      },
      directory: async (full) => {
        events.push({ kind: 'directory', path: full, destination: await seen() });
        await FSYNC.directory(full);
      },
    };
    return { io, events };
  }

  it('flushes a small file before renaming it into place, then every directory that gained an entry', async () => {
    const target = join(dir, 'repositories', 'a', 'b', 'link');
    const { io, events } = recorder(() => target);
    const driver = new FilesystemDriver({ rootdirectory: dir }, { durability: io });
    await driver.putContent('/repositories/a/b/link', Buffer.from('v1'));

    const [first, ...rest] = events;
    assert.equal(first?.kind, 'file');
    assert.equal(first?.content, 'v1', 'the temp file is flushed with all its bytes');
    assert.equal(first?.destination, undefined, 'and before it is renamed into place');
    assert.deepEqual(
      rest.map((e) => [e.kind, e.path, e.destination]),
      [
        ['directory', join(dir, 'repositories', 'a', 'b'), 'v1'],
        ['directory', join(dir, 'repositories', 'a'), 'v1'],
        ['directory', join(dir, 'repositories'), 'v1'],
        ['directory', dir, 'v1'],
      ],
      'after the rename: the new entry, and the directories mkdir created, up to the one that existed',
    );

    // A replacement creates no directory: one file flush, then only the entry's own directory.
    events.length = 0;
    await driver.putContent('/repositories/a/b/link', Buffer.from('v2'));
    assert.deepEqual(
      events.map((e) => [
        e.kind,
        e.path === target ? 'target' : e.path.startsWith(join(dir, '.tmp-writes', '.tmp-')) ? 'temp' : e.path,
        e.destination,
      ]),
      [
        ['file', 'temp', 'v1'],
        ['directory', join(dir, 'repositories', 'a', 'b'), 'v2'],
      ],
    );
  });

  it('flushes a moved file before the rename and its new directory after it', async () => {
    const target = join(dir, 'blobs', 'sha256', 'ab', 'data');
    const { io, events } = recorder(() => target);
    const driver = new FilesystemDriver({ rootdirectory: dir }, { durability: io });
    const writer = await driver.writer('/uploads/u1/data', true);
    writer.stream.end(Buffer.from('blob bytes'));
    await new Promise((resolve) => writer.stream.once('finish', resolve));
    await writer.commit();
    assert.equal(events.length, 0, 'an appending writer commits without a flush');

    await driver.move('/uploads/u1/data', '/blobs/sha256/ab/data');
    assert.deepEqual(
      events.map((e) => [e.kind, e.path, e.destination, e.content]),
      [
        ['file', join(dir, 'uploads', 'u1', 'data'), undefined, 'blob bytes'],
        ['directory', join(dir, 'blobs', 'sha256', 'ab'), 'blob bytes', undefined],
        ['directory', join(dir, 'blobs', 'sha256'), 'blob bytes', undefined],
        ['directory', join(dir, 'blobs'), 'blob bytes', undefined],
        ['directory', dir, 'blob bytes', undefined],
      ],
    );
  });

  it('with flushchunks, flushes each appended chunk before its commit returns', async () => {
    const upload = join(dir, 'uploads', 'u1', 'data');
    const { io, events } = recorder(() => upload);
    const driver = new FilesystemDriver({ rootdirectory: dir, flushchunks: true }, { durability: io });
    for (const chunk of ['one ', 'two']) {
      const writer = await driver.writer('/uploads/u1/data', true);
      writer.stream.end(Buffer.from(chunk));
      await new Promise((resolve) => writer.stream.once('finish', resolve));
      await writer.commit();
    }
    assert.deepEqual(
      events.map((e) => [e.kind, e.path, e.content]),
      [
        ['file', upload, 'one '],
        ['file', upload, 'one two'],
      ],
    );
  });

  it('flushes what a truncating writer wrote before its commit renames it into place', async () => {
    const target = join(dir, 'f', 'data');
    const { io, events } = recorder(() => target);
    const driver = new FilesystemDriver({ rootdirectory: dir }, { durability: io });
    const writer = await driver.writer('/f/data', false);
    writer.stream.end(Buffer.from('whole'));
    await new Promise((resolve) => writer.stream.once('finish', resolve));
    await writer.commit();
    assert.deepEqual(
      events.map((e) => [e.kind, e.kind === 'file' ? 'temp' : e.path, e.destination, e.content]),
      [
        ['file', 'temp', undefined, 'whole'],
        ['directory', join(dir, 'f'), 'whole', undefined],
        ['directory', dir, 'whole', undefined],
      ],
    );
  });

  it('keeps the old content and leaves no temp file when the flush fails', async () => {
    let failing = false;
    const io: Durability = {
      file: async (handle, full) => {
        if (failing) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
        await FSYNC.file(handle, full);
      },
      directory: FSYNC.directory,
    };
    const driver = new FilesystemDriver({ rootdirectory: dir }, { durability: io });
    await driver.putContent('/t/link', Buffer.from('old'));
    failing = true;
    await assert.rejects(driver.putContent('/t/link', Buffer.from('new')), /EIO/);
    assert.equal((await driver.getContent('/t/link')).toString(), 'old');
    assert.deepEqual(await readdir(join(dir, 't')), ['link']);

    // A move whose flush fails leaves the source where it was and the destination absent.
    failing = false;
    await driver.putContent('/u/data', Buffer.from('upload'));
    failing = true;
    await assert.rejects(driver.move('/u/data', '/b/data'), /EIO/);
    assert.equal((await driver.getContent('/u/data')).toString(), 'upload');
    await assert.rejects(
      driver.stat('/b/data'),
      (err: unknown) => err instanceof StorageError && err.kind === 'PathNotFound',
    );
  });
});

describe('filesystem driver: writeback while an upload grows', () => {
  const KIB = 1024;
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('berth-fs-writeback-');
  });
  afterEach(() => removeDir(dir));

  /** A writeback that records each start and finishes only when released (or at once, with `hold` false). */
  function recorder(hold: boolean): { writeback: Writeback; started: string[]; release: () => void } {
    const started: string[] = [];
    let waiting: Array<() => void> = [];
    const writeback: Writeback = async (full) => {
      started.push(full);
      if (hold) await new Promise<void>((resolve) => waiting.push(resolve));
    };
    const release = (): void => {
      for (const resolve of waiting) resolve();
      waiting = [];
    };
    return { writeback, started, release };
  }

  /** Appends `sizes` (in KiB) through one appending writer each, like the chunks of an upload. */
  async function appendChunks(driver: FilesystemDriver, path: string, sizes: readonly number[]): Promise<void> {
    for (const kib of sizes) {
      const writer = await driver.writer(path, true);
      for (let sent = 0; sent < kib; sent += 64) writer.stream.write(Buffer.alloc(Math.min(64, kib - sent) * KIB, 7));
      writer.stream.end();
      await new Promise((resolve) => writer.stream.once('finish', resolve));
      await writer.commit();
    }
  }

  it('starts one each time an appended file grows past a multiple of the step, counting across writers', async () => {
    const { writeback, started } = recorder(false);
    const driver = new FilesystemDriver({ rootdirectory: dir }, { writeback, writebackStep: 256 * KIB });
    // 100 + 100 + 100 + 300 + 50 KiB: the file passes 256 KiB in the third chunk, 512 in the fourth, not again.
    const steps: number[] = [];
    for (const kib of [100, 100, 100, 300, 50]) {
      await appendChunks(driver, '/uploads/u1/data', [kib]);
      steps.push(started.length);
    }
    assert.deepEqual(steps, [0, 0, 1, 2, 2]);
    assert.deepEqual(new Set(started), new Set([join(dir, 'uploads', 'u1', 'data')]));
    assert.equal((await driver.stat('/uploads/u1/data')).size, 650 * KIB);
  });

  it('starts none for files written whole (truncating writers, putContent)', async () => {
    const { writeback, started } = recorder(false);
    const driver = new FilesystemDriver({ rootdirectory: dir }, { writeback, writebackStep: 64 * KIB });
    const writer = await driver.writer('/f/data', false);
    writer.stream.end(Buffer.alloc(300 * KIB));
    await new Promise((resolve) => writer.stream.once('finish', resolve));
    await writer.commit();
    await driver.putContent('/g/data', Buffer.alloc(300 * KIB));
    assert.deepEqual(started, []);
  });

  it('runs one at a time per file, and a move waits for the running one before its own flush', async () => {
    const { writeback, started, release } = recorder(true);
    const flushed: string[] = [];
    const durability: Durability = {
      file: async (handle, full) => {
        flushed.push(full);
        await FSYNC.file(handle, full);
      },
      directory: FSYNC.directory,
    };
    const driver = new FilesystemDriver({ rootdirectory: dir }, { writeback, writebackStep: 64 * KIB, durability });
    await appendChunks(driver, '/uploads/u2/data', [100, 100, 100]);
    assert.equal(started.length, 1, 'past 64, 128, 192 and 256 KiB, but the first is still running');

    let moved = false;
    const moving = driver.move('/uploads/u2/data', '/blobs/b2/data').then(() => (moved = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(moved, false, 'the move waits for the writeback');
    assert.deepEqual(flushed, []);
    release();
    await moving;
    assert.deepEqual(flushed, [join(dir, 'uploads', 'u2', 'data')], 'then flushes the data itself');
    assert.equal((await driver.stat('/blobs/b2/data')).size, 300 * KIB);

    // Once it ended, the next step starts another.
    await appendChunks(driver, '/uploads/u3/data', [70]);
    assert.equal(started.length, 2);
    release();
    await driver.close();
  });

  it('loses nothing when a writeback fails: the chunks and the move go on, and the move still flushes', async () => {
    const failing: Writeback = async () => {
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    };
    let flushes = 0;
    const durability: Durability = {
      file: async (handle, full) => {
        flushes++;
        await FSYNC.file(handle, full);
      },
      directory: FSYNC.directory,
    };
    const driver = new FilesystemDriver(
      { rootdirectory: dir },
      { writeback: failing, writebackStep: 64 * KIB, durability },
    );
    await appendChunks(driver, '/uploads/u4/data', [100, 100]);
    await driver.move('/uploads/u4/data', '/blobs/b4/data');
    assert.equal(flushes, 1);
    assert.equal((await readFile(join(dir, 'blobs', 'b4', 'data'))).length, 200 * KIB);
  });

  it('really writes back with the default (fdatasync through its own descriptor)', async () => {
    const driver = new FilesystemDriver({ rootdirectory: dir }, { writebackStep: 64 * KIB });
    await appendChunks(driver, '/uploads/u5/data', [100, 100]);
    await driver.close();
    assert.equal((await readFile(join(dir, 'uploads', 'u5', 'data'))).length, 200 * KIB);
  });
});

describe('filesystem driver: the event loop', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('berth-fs-loop-');
  });
  afterEach(() => removeDir(dir));

  it('under auto, uses the event loop on a local filesystem, judged by statfs of the root or its nearest parent', async () => {
    const driver = new FilesystemDriver({ rootdirectory: join(dir, 'not', 'yet') });
    const report = await driver.eventLoop;
    const local = eventLoopAllowed((await statfs(dir)).type);
    assert.deepEqual(report, { setting: 'auto', filesystem: local.filesystem, eventLoop: local.local });
  });

  it('keeps every call on the thread pool when set off, and uses the event loop when set on', async () => {
    assert.deepEqual(await new FilesystemDriver({ rootdirectory: dir, eventloopio: 'off' }).eventLoop, {
      setting: 'off',
      eventLoop: false,
    });
    assert.deepEqual(await new FilesystemDriver({ rootdirectory: dir, eventloopio: 'on' }).eventLoop, {
      setting: 'on',
      eventLoop: true,
    });
  });
});
