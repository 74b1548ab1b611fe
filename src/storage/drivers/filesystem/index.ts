// The filesystem driver, Berth's embedded default. Small files are replaced by write-to-temp-then-rename, so a
// crash leaves either the old or the new content; renames within one root are atomic. What a call reports as stored
// is on the disk, not only in the page cache: file data is flushed (fsync) before the rename that makes it visible,
// and the directories that gained an entry are flushed before the call returns, so a power loss or a kernel crash
// cannot leave a blob or a link that exists but holds nothing (CNCF Distribution flushes files the same way).
import { randomBytes } from 'node:crypto';
import {
  close,
  closeSync,
  fstat,
  fstatSync,
  open as fsOpen,
  openSync,
  promises as fsp,
  read,
  readSync,
  statSync,
  type Stats,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { LRUCache } from 'lru-cache';
import {
  checkPath,
  checkReadRange,
  StorageError,
  type FileInfo,
  type FileWriter,
  type PositionalFile,
  type ReadOptions,
  type StorageDriver,
} from '../../driver.js';
import { eventLoopAllowed, SyncMode } from './sync-mode.js';

/** Where stats, opens and small reads may run on the event loop: see SyncMode. */
export const EVENT_LOOP_IO = ['auto', 'on', 'off'] as const;
export type EventLoopIo = (typeof EVENT_LOOP_IO)[number];

export interface FilesystemOptions {
  readonly rootdirectory: string;
  /**
   * `auto`: on the event loop while fast, and only on a filesystem statfs(2) names as local; `on`: while fast, on any
   * filesystem; `off`: always on the thread pool, as for a volume that may stall (a network block device).
   */
  readonly eventloopio?: EventLoopIo;
  /** Flush every appended chunk before its commit returns (each PATCH durable), not only the finished blob. */
  readonly flushchunks?: boolean;
}

/** What the driver decided about the event loop, for the start-up log. */
export interface EventLoopReport {
  readonly setting: EventLoopIo;
  /** The filesystem type under the root, when the setting is `auto`. */
  readonly filesystem?: string;
  readonly eventLoop: boolean;
}

/** How data reaches the disk: fsync(2) of a file, and of a directory (its entries). Tests pass recorders. */
export interface Durability {
  /** Flushes the data of an open file, whose full path is `full`. */
  file(handle: fsp.FileHandle, full: string): Promise<void>;
  /** Flushes a directory's entries (names added, removed or renamed). */
  directory(full: string): Promise<void>;
}

export const FSYNC: Durability = {
  file: (handle) => handle.sync(),
  directory: async (full) => {
    const handle = await fsp.open(full, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

/**
 * Starts the writeback of a growing upload's data (see FilesystemDriver's #writeback): fdatasync(2) through a
 * descriptor of its own. Tests pass recorders.
 */
export type Writeback = (full: string) => Promise<void>;

export const DATASYNC: Writeback = async (full) => {
  const handle = await fsp.open(full, 'r');
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
};

/** An appending writer starts a writeback each time its file grows past a multiple of this. */
export const WRITEBACK_STEP = 32 * 1024 * 1024;

/** When stats and reads may run on the event loop (see SyncMode), and how data is flushed; tests pass their own. */
export interface FilesystemIo {
  readonly stats?: SyncMode;
  readonly reads?: SyncMode;
  readonly durability?: Durability;
  readonly writeback?: Writeback;
  /** Bytes between writebacks (WRITEBACK_STEP unless set). */
  readonly writebackStep?: number;
}

function code(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

function mapError(err: unknown, path: string): unknown {
  const c = code(err);
  if (c === 'ENOENT' || c === 'ENOTDIR') return new StorageError('PathNotFound', path);
  if (c === 'EISDIR') return new StorageError('InvalidPath', path, `${path} is a directory`);
  return err;
}

// Descriptor calls on the thread pool, for the slow-disk path of open (FileHandles would cost the fast path more).
const openAsync = promisify(fsOpen);
const fstatAsync = promisify(fstat);
const readAsync = promisify(read);
const closeAsync = promisify(close);

const TEMP_MARK = '.tmp-';
/**
 * Where writes in progress keep their temporary files, under the root (its name holds TEMP_MARK, so no listing shows
 * it): one directory to clear of what crashed writes left, and a rename away from any path of the same filesystem.
 */
const TEMP_DIR = '.tmp-writes';
/** Files up to this size are kept by getContent's stat-validated cache. */
const SMALL_FILE = 4096;

interface SmallFile {
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly data: Buffer;
}

function sameFile(st: Stats, f: SmallFile): boolean {
  return st.isFile() && st.ino === f.ino && st.size === f.size && st.mtimeMs === f.mtimeMs && st.ctimeMs === f.ctimeMs;
}

export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  readonly #root: string;
  /** Whether stats run on the event loop (fast disk) or the thread pool (slow one). */
  readonly #statMode: SyncMode;
  /** The same for the positional reads of pulls (up to 1 MiB each, so a larger budget). */
  readonly #readMode: SyncMode;
  /** Small files (links, tags, upload markers) by full path, validated by stat on every read. */
  readonly #small = new LRUCache<string, SmallFile>({ max: 50_000 });
  readonly #durability: Durability;
  readonly #startWriteback: Writeback;
  readonly #writebackStep: number;
  /** Writebacks running, by full path: at most one each. */
  readonly #writebacks = new Map<string, Promise<void>>();
  readonly #flushChunks: boolean;
  /** Whether stats and reads may use the event loop here, once the root's filesystem is known. */
  readonly eventLoop: Promise<EventLoopReport>;

  constructor(options: FilesystemOptions, io: FilesystemIo = {}) {
    this.#root = options.rootdirectory;
    const setting = options.eventloopio ?? 'auto';
    // Under `auto`, nothing runs on the event loop until statfs(2) has named a local filesystem.
    this.#statMode = io.stats ?? new SyncMode({ allowed: setting === 'on' });
    this.#readMode = io.reads ?? new SyncMode({ budgetMs: 2, allowed: setting === 'on' });
    this.#flushChunks = options.flushchunks ?? false;
    this.eventLoop =
      setting === 'auto' && io.stats === undefined && io.reads === undefined
        ? this.#judgeFilesystem()
        : Promise.resolve({ setting, eventLoop: setting === 'on' || io.stats !== undefined });
    this.#durability = io.durability ?? FSYNC;
    this.#startWriteback = io.writeback ?? DATASYNC;
    this.#writebackStep = io.writebackStep ?? WRITEBACK_STEP;
  }

  /** Allows the event loop when the filesystem under the root (or its nearest existing parent) is a local one. */
  async #judgeFilesystem(): Promise<EventLoopReport> {
    for (let dir = this.#root; ; dir = dirname(dir)) {
      try {
        const { filesystem, local } = eventLoopAllowed((await fsp.statfs(dir)).type);
        this.#statMode.allow(local);
        this.#readMode.allow(local);
        return { setting: 'auto', filesystem, eventLoop: local };
      } catch (err) {
        if (code(err) !== 'ENOENT' || dir === dirname(dir)) return { setting: 'auto', eventLoop: false };
      }
    }
  }

  /**
   * Creates `dir` and any missing parents; returns what the entries flush (`#flushEntries`) must cover: `dir`, and
   * up to the parent of the first directory it had to create.
   */
  async #makeDir(dir: string): Promise<string> {
    const created = await fsp.mkdir(dir, { recursive: true });
    return created === undefined ? dir : dirname(created);
  }

  /** Flushes the entries of `dir` and of each parent up to `top`: every directory that gained a name. */
  async #flushEntries(dir: string, top: string): Promise<void> {
    for (let d = dir; ; d = dirname(d)) {
      await this.#durability.directory(d);
      if (d === top || d === dirname(d)) return;
    }
  }

  #full(path: string): string {
    return join(this.#root, checkPath(path));
  }

  /** A fresh temporary file's path in TEMP_DIR. */
  #tempPath(): string {
    return join(this.#root, TEMP_DIR, `${TEMP_MARK}${randomBytes(8).toString('hex')}`);
  }

  /** Creates a temporary file for writing, and TEMP_DIR first when it is missing (a new root, or one deleted). */
  async #openTemp(temp: string): Promise<fsp.FileHandle> {
    try {
      return await fsp.open(temp, 'wx');
    } catch (err) {
      if (code(err) !== 'ENOENT') throw err;
      await fsp.mkdir(dirname(temp), { recursive: true });
      return fsp.open(temp, 'wx');
    }
  }

  async getContent(path: string): Promise<Buffer> {
    const full = this.#full(path);
    const cached = this.#small.get(full);
    try {
      if (cached !== undefined) {
        // One stat instead of open/fstat/read/close. Files are only ever replaced by rename, never rewritten in
        // place, so an unchanged inode, size and times mean unchanged bytes, whichever process wrote them.
        if (sameFile(await this.#statFull(full), cached)) return Buffer.from(cached.data);
        this.#small.delete(full);
      }
      const handle = await fsp.open(full, 'r');
      try {
        const st = await handle.stat();
        const data = await handle.readFile();
        // Only files last changed over a second ago: timestamps move in coarse ticks and inodes get reused, so a
        // file replaced within the same tick could otherwise look unchanged. Any later replacement gets a newer ctime.
        if (data.length <= SMALL_FILE && data.length === st.size && Date.now() - st.ctimeMs > 1000) {
          this.#small.set(full, {
            ino: st.ino,
            size: st.size,
            mtimeMs: st.mtimeMs,
            ctimeMs: st.ctimeMs,
            data: Buffer.from(data),
          });
        }
        return data;
      } finally {
        await handle.close();
      }
    } catch (err) {
      this.#small.delete(full);
      throw mapError(err, path);
    }
  }

  async putContent(path: string, content: Uint8Array): Promise<void> {
    const full = this.#full(path);
    const temp = this.#tempPath();
    const top = await this.#makeDir(dirname(full));
    try {
      const handle = await this.#openTemp(temp);
      try {
        await handle.writeFile(content);
        await this.#durability.file(handle, temp);
      } finally {
        await handle.close();
      }
      await fsp.rename(temp, full);
    } catch (err) {
      await fsp.rm(temp, { force: true });
      throw mapError(err, path);
    }
    await this.#flushEntries(dirname(full), top);
  }

  /** Opens a file for reading; a missing one is PathNotFound. */
  async #openForRead(path: string): Promise<fsp.FileHandle> {
    try {
      return await fsp.open(this.#full(path), 'r');
    } catch (err) {
      throw mapError(err, path);
    }
  }

  async reader(path: string, options: ReadOptions = {}): Promise<Readable> {
    const handle = await this.#openForRead(path);
    try {
      const { size } = await handle.stat();
      const offset = checkReadRange(path, options, size);
      const end = options.length === undefined ? undefined : offset + options.length - 1;
      if (end !== undefined && end < offset) {
        await handle.close();
        return Readable.from([]);
      }
      return handle.createReadStream({
        start: offset,
        ...(end === undefined ? {} : { end }),
        highWaterMark: 1 << 20,
        autoClose: true,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Opens a file for positional reads. While metadata calls are fast (the stat judge), the open, fstat and close run
   * on the event loop: a pull of a small blob (a config, a small layer) then costs no trip through the thread pool at
   * all, where three of them used to cost more CPU than the rest of the request.
   */
  async open(path: string): Promise<PositionalFile> {
    const full = this.#full(path);
    const meta = this.#statMode;
    let fd: number;
    let st: Stats;
    if (meta.synchronous) {
      try {
        [fd, st] = meta.run(() => {
          const opened = openSync(full, 'r');
          try {
            return [opened, fstatSync(opened)] as const;
          } catch (err) {
            closeSync(opened);
            throw err;
          }
        });
      } catch (err) {
        throw mapError(err, path);
      }
    } else {
      try {
        fd = await openAsync(full, 'r');
      } catch (err) {
        throw mapError(err, path);
      }
      try {
        st = await fstatAsync(fd);
      } catch (err) {
        await this.#close(fd).catch(() => undefined);
        throw mapError(err, path);
      }
    }
    if (!st.isFile()) {
      await this.#close(fd);
      throw new StorageError('PathNotFound', path, `${path} is a directory`);
    }
    let closed = false;
    return {
      size: st.size,
      read: async (buffer, length, position) => {
        if (closed) throw new Error(`${path}: read after close`);
        const mode = this.#readMode;
        if (!mode.synchronous) return (await readAsync(fd, buffer, 0, length, position)).bytesRead;
        return mode.run(() => readSync(fd, buffer, 0, length, position));
      },
      close: async () => {
        if (closed) return;
        closed = true;
        await this.#close(fd);
      },
    };
  }

  /** close(2) of a descriptor of ours, on the event loop while metadata calls are fast. */
  async #close(fd: number): Promise<void> {
    const meta = this.#statMode;
    if (!meta.synchronous) return closeAsync(fd);
    meta.run(() => closeSync(fd));
  }

  /**
   * A truncating writer's commit is durable (flushed, renamed into place, directory flushed). An appending writer
   * only adds bytes to an upload in progress: its commit makes them visible, and `move` makes the upload durable
   * when it becomes a blob, so the chunks of a push cost no flush each (unless `flushchunks` asks for one).
   */
  async writer(path: string, append: boolean): Promise<FileWriter> {
    const full = this.#full(path);
    const top = await this.#makeDir(dirname(full));
    let initial = 0;
    let existed = false;
    if (append) {
      try {
        initial = (await fsp.stat(full)).size;
        existed = true;
      } catch (err) {
        if (code(err) !== 'ENOENT') throw mapError(err, path);
      }
    }
    // A truncating writer fills a temp file renamed into place on commit: opening the path itself with 'w' would
    // destroy the old content before we know whether the writer commits or cancels.
    const target = append ? full : this.#tempPath();
    let handle: fsp.FileHandle;
    try {
      handle = append ? await fsp.open(target, 'a') : await this.#openTemp(target);
    } catch (err) {
      throw mapError(err, path);
    }
    const stream = new HandleWritable(handle);
    if (append) {
      // Past each multiple of the step (counted from the file's start, so chunks of any size add up).
      const step = this.#writebackStep;
      stream.grown = (before, after) => {
        if (Math.floor((initial + after) / step) > Math.floor((initial + before) / step)) this.#writeback(full);
      };
    }
    let finished = false;
    const finish = async (): Promise<void> => {
      if (finished) throw new Error('writer already finished');
      finished = true;
      if (!stream.destroyed) stream.destroy();
    };
    return {
      stream,
      size: () => initial + stream.written,
      commit: async () => {
        await finish();
        if (target === full) {
          try {
            if (this.#flushChunks) await this.#durability.file(handle, full);
          } finally {
            await handle.close();
          }
          return;
        }
        try {
          try {
            await this.#durability.file(handle, target);
          } finally {
            await handle.close();
          }
          await fsp.rename(target, full);
        } catch (err) {
          await fsp.rm(target, { force: true });
          throw mapError(err, path);
        }
        await this.#flushEntries(dirname(full), top);
      },
      cancel: async () => {
        if (finished) return;
        await finish();
        try {
          if (existed) await handle.truncate(initial);
        } finally {
          await handle.close();
        }
        if (!existed) await fsp.rm(target, { force: true });
      },
    };
  }

  /** stat(2) of a full path: synchronously while that stays fast (see SyncMode), else on the thread pool. */
  async #statFull(full: string): Promise<Stats> {
    const mode = this.#statMode;
    if (!mode.synchronous) return fsp.stat(full);
    const st = mode.run(() => statSync(full, { throwIfNoEntry: false }));
    if (st === undefined)
      throw Object.assign(new Error(`ENOENT: no such file or directory, stat '${full}'`), { code: 'ENOENT' });
    return st;
  }

  async stat(path: string): Promise<FileInfo> {
    let st: Stats;
    try {
      st = await this.#statFull(this.#full(path));
    } catch (err) {
      throw mapError(err, path);
    }
    return { path, size: st.isDirectory() ? 0 : st.size, modTime: st.mtime, isDir: st.isDirectory() };
  }

  async list(path: string): Promise<string[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.#full(path));
    } catch (err) {
      throw mapError(err, path);
    }
    const base = path === '/' ? '' : path;
    return names.filter((n) => !n.includes(TEMP_MARK)).map((n) => `${base}/${n}`);
  }

  /**
   * Starts writing a growing upload's data to the disk while more of it arrives, so that the flush that makes it
   * durable (`move`, when it becomes a blob) finds little left to write: with nothing started, the kernel leaves a
   * whole push in the page cache and that one flush waits for all of it.
   * It runs on the thread pool, awaited by no request, at most one per file at a time. A hint only: its errors are
   * dropped, since `move`'s own flush is what makes the data durable (and fails the move if the disk does).
   */
  #writeback(full: string): void {
    if (this.#writebacks.has(full)) return;
    const run = this.#startWriteback(full)
      .catch(() => undefined)
      .finally(() => this.#writebacks.delete(full));
    this.#writebacks.set(full, run);
  }

  /** Flushes the source's data, renames it into place and flushes the directories that gained an entry. */
  async move(source: string, destination: string): Promise<void> {
    const from = this.#full(source);
    const to = this.#full(destination);
    // A writeback still running would flush the same pages again beside ours.
    await this.#writebacks.get(from);
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(from, 'r');
    } catch (err) {
      throw mapError(err, source);
    }
    try {
      await this.#durability.file(handle, from);
    } finally {
      await handle.close();
    }
    const top = await this.#makeDir(dirname(to));
    try {
      await fsp.rename(from, to);
    } catch (err) {
      throw mapError(err, source);
    }
    await this.#flushEntries(dirname(to), top);
  }

  async delete(path: string): Promise<void> {
    const full = this.#full(path);
    try {
      await fsp.lstat(full);
    } catch (err) {
      throw mapError(err, path);
    }
    await fsp.rm(full, { recursive: true, force: true });
  }

  /**
   * Removes the temporary files of writes a crash cut short (in TEMP_DIR), last modified before `olderThan`.
   */
  async abortIncomplete(olderThan: Date, dryRun: boolean): Promise<number> {
    const dir = join(this.#root, TEMP_DIR);
    let names: string[];
    try {
      names = await fsp.readdir(dir);
    } catch (err) {
      if (code(err) === 'ENOENT') return 0;
      throw mapError(err, `/${TEMP_DIR}`);
    }
    let found = 0;
    for (const name of names) {
      const full = join(dir, name);
      const info = await fsp.lstat(full).catch(() => undefined);
      if (info === undefined || info.mtime >= olderThan) continue;
      found++;
      if (!dryRun) await fsp.rm(full, { force: true, recursive: true });
    }
    return found;
  }

  /** Waits for the writebacks still running. */
  async close(): Promise<void> {
    await Promise.all(this.#writebacks.values());
  }
}

/** A Writable over a FileHandle that counts the bytes that reached the file. */
class HandleWritable extends Writable {
  written = 0;
  /** Told after each write how many bytes had reached the file before it and after it. */
  grown: ((before: number, after: number) => void) | undefined;
  readonly #handle: fsp.FileHandle;

  constructor(handle: fsp.FileHandle) {
    super({ highWaterMark: 1 << 20 });
    this.#handle = handle;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#writeAll([chunk]).then(() => callback(), callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.#writeAll(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }

  async #writeAll(buffers: Buffer[]): Promise<void> {
    const before = this.written;
    await this.#writeBuffers(buffers);
    this.grown?.(before, this.written);
  }

  async #writeBuffers(buffers: Buffer[]): Promise<void> {
    const total = buffers.reduce((n, b) => n + b.length, 0);
    const { bytesWritten } = await this.#handle.writev(buffers);
    this.written += bytesWritten;
    if (bytesWritten !== total) {
      // A short write (rare: signals, nearly full disks): finish the rest piece by piece.
      let skip = bytesWritten;
      for (const b of buffers) {
        if (skip >= b.length) {
          skip -= b.length;
          continue;
        }
        let rest = b.subarray(skip);
        skip = 0;
        while (rest.length > 0) {
          const r = await this.#handle.write(rest);
          this.written += r.bytesWritten;
          rest = rest.subarray(r.bytesWritten);
        }
      }
    }
  }
}
