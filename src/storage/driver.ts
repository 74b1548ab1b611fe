// The storage driver interface: paths and bytes, nothing about digests or HTTP. Every driver passes
// test/suites/driver-suite.ts. Paths are absolute, `/`-separated, and made of [A-Za-z0-9._:-] segments.
import type { Readable, Writable } from 'node:stream';

export interface FileInfo {
  readonly path: string;
  readonly size: number;
  readonly modTime: Date;
  readonly isDir: boolean;
}

/** A writer for one file. Bytes go to `stream`; nothing is guaranteed visible until `commit` resolves. */
export interface FileWriter {
  /** Where the bytes go. End it (or let `pipeline` end it) before `commit`. */
  readonly stream: Writable;
  /** Size of the file so far: what it had when opened for append plus what has been written. */
  size(): number;
  /** Makes everything written visible at the path, at once. The writer is finished afterwards. */
  commit(): Promise<void>;
  /** Drops what this writer wrote: the file is left as it was when the writer was opened. */
  cancel(): Promise<void>;
}

export interface ReadOptions {
  /** First byte to read. */
  readonly offset?: number;
  /** How many bytes to read from `offset`; to the end when absent. */
  readonly length?: number;
  readonly signal?: AbortSignal;
}

/** A file opened for reads at any position: the fast path for sending blobs through a few reused buffers. */
export interface PositionalFile {
  /** Size when opened. */
  readonly size: number;
  /** Reads up to `length` bytes at `position` into the start of `buffer`; resolves how many (0 at the end). */
  read(buffer: Buffer, length: number, position: number): Promise<number>;
  /** Releases the file; reads afterwards fail. */
  close(): Promise<void>;
}

/** What a redirect URL is for: the method the client will use, and how long the URL stays good. */
export interface RedirectOptions {
  readonly method: 'GET' | 'HEAD';
  /** Seconds from now until the URL stops working. */
  readonly expiresInSeconds: number;
}

export interface StorageDriver {
  /** Short name for logs and metrics (`filesystem`, `inmemory`). */
  readonly name: string;
  /** Reads a whole small file. Throws PathNotFound. */
  getContent(path: string): Promise<Buffer>;
  /**
   * Replaces a small file atomically: readers see the old or the new content, never a mix. Once it resolves, the
   * content survives a crash of the process or of the machine.
   */
  putContent(path: string, content: Uint8Array): Promise<void>;
  /** Streams a file from an offset. Throws PathNotFound, or InvalidOffset when offset is past the end. */
  reader(path: string, options?: ReadOptions): Promise<Readable>;
  /**
   * Optional: opens a file for positional reads, which lets the HTTP layer reuse its buffers instead of allocating
   * one per chunk. Drivers that can only stream leave it out. Throws PathNotFound.
   */
  open?(path: string): Promise<PositionalFile>;
  /**
   * Optional (Distribution's RedirectURL): a URL on the backend itself where a client can read the file with
   * `method` until the expiry passes, without credentials of its own (an S3 presigned URL, a GCS signed URL, an Azure
   * SAS), so blob bytes bypass the registry. Resolves undefined when this configuration cannot hand one out (a GCS
   * emulator, or credentials that cannot sign); the caller then streams through `reader`. It does not check that the
   * file exists, and it makes no request to the backend. Drivers on local storage leave it out.
   */
  redirectURL?(path: string, options: RedirectOptions): Promise<string | undefined>;
  /**
   * Opens a file for writing, truncated or (with append) continuing from its current end. A truncating writer's
   * commit is as durable as putContent; an appending one's makes its bytes visible, and need not make them durable.
   */
  writer(path: string, append: boolean): Promise<FileWriter>;
  /** Size, time and kind of a file or directory. Throws PathNotFound. */
  stat(path: string): Promise<FileInfo>;
  /** Full paths of the direct children of a directory. Throws PathNotFound. */
  list(path: string): Promise<string[]>;
  /**
   * Moves a file, replacing the destination atomically; once it resolves, the destination with all its bytes
   * survives a crash of the machine. Throws PathNotFound when the source is missing.
   */
  move(source: string, destination: string): Promise<void>;
  /** Deletes a file or a whole directory tree. Throws PathNotFound. */
  delete(path: string): Promise<void>;
  /**
   * Optional: removes what unfinished writers left out of sight on the backend, started before `olderThan` (S3
   * multipart uploads of a process that died mid-write: stored and billed, though no listing shows them), and
   * resolves how many it found; with `dryRun` it only counts them. Upload purging calls it. Drivers whose backend
   * drops such leftovers itself leave it out (Azure discards uncommitted blocks, and GCS unfinished resumable
   * sessions, after a week).
   */
  abortIncomplete?(olderThan: Date, dryRun: boolean): Promise<number>;
  /** Releases resources (connections, timers). */
  close(): Promise<void>;
}

export const StorageErrorKinds = ['PathNotFound', 'InvalidPath', 'InvalidOffset'] as const;
export type StorageErrorKind = (typeof StorageErrorKinds)[number];

/** A driver failure the layers above handle (a missing path is an answer, not a crash). */
export class StorageError extends Error {
  readonly kind: StorageErrorKind;
  readonly path: string;

  constructor(kind: StorageErrorKind, path: string, message?: string) {
    super(message ?? `${kind}: ${path}`);
    this.name = 'StorageError';
    this.kind = kind;
    this.path = path;
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof StorageError && err.kind === 'PathNotFound';
}

const SEGMENT = /^[A-Za-z0-9._:-]+$/;

/** Throws InvalidPath unless `path` is absolute with clean segments (no `.`/`..`, no empty segments). */
export function checkPath(path: string): string {
  if (path === '/') return path;
  if (!path.startsWith('/') || path.length > 4096) throw new StorageError('InvalidPath', path);
  for (const seg of path.slice(1).split('/')) {
    if (!SEGMENT.test(seg) || seg === '.' || seg === '..') throw new StorageError('InvalidPath', path);
  }
  return path;
}

/**
 * Throws InvalidOffset unless `offset` is a whole number from 0 to `size` and `length`, when given, a whole number
 * of at least 0; returns the offset. Shared so that every driver refuses the same ranges (Node's streams throw
 * their own errors, and leak the open file, on a negative or fractional start).
 */
export function checkReadRange(path: string, options: ReadOptions, size: number): number {
  const offset = options.offset ?? 0;
  const { length } = options;
  if (
    !Number.isSafeInteger(offset) ||
    offset < 0 ||
    (length !== undefined && (!Number.isSafeInteger(length) || length < 0))
  ) {
    throw new StorageError('InvalidOffset', path, `invalid read range: offset ${offset}, length ${String(length)}`);
  }
  if (offset > size) throw new StorageError('InvalidOffset', path, `offset ${offset} is past the end (${size})`);
  return offset;
}

/** All file paths under `root` (depth first); directories are descended, not returned. */
export async function* walkFiles(driver: StorageDriver, root: string): AsyncGenerator<FileInfo> {
  let children: string[];
  try {
    children = await driver.list(root);
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  children.sort();
  for (const child of children) {
    let info: FileInfo;
    try {
      info = await driver.stat(child);
    } catch (err) {
      if (isNotFound(err)) continue;
      throw err;
    }
    if (info.isDir) yield* walkFiles(driver, child);
    else yield info;
  }
}
