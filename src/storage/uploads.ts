// Blob upload sessions. Their state lives in storage (`_uploads/<id>/`), so any Berth process sharing the storage
// can serve any request of a session. Each chunk is all-or-nothing: a failed or interrupted chunk is cut back off.
// A blob becomes visible only after its digest is verified, by an atomic move into the blob store and then a link.
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LRUCache } from 'lru-cache';
import { RegistryError } from '../oci/errors.js';
import { digestOf, HashingStream, type Digest } from '../oci/digest.js';
import { isNotFound, type StorageDriver } from './driver.js';
import { paths } from './paths.js';
import { OCTET_STREAM, type BlobDescriptor, type LinkedBlobs } from './blobs.js';

export interface UploadStatus {
  readonly id: string;
  /** Bytes received so far. */
  readonly size: number;
  readonly startedAt: Date;
}

/** Inclusive byte range a client says a chunk covers (from Content-Range). */
export interface ChunkRange {
  readonly start: number;
  readonly end: number;
}

export interface ChunkOptions {
  readonly range?: ChunkRange;
  /** The request's Content-Length, when it sent one. */
  readonly length?: number;
  readonly signal?: AbortSignal;
}

/**
 * Running sha256 states of uploads this process is receiving, so a chunked upload is hashed as it streams. A state
 * is used only when it covers exactly the bytes in storage; otherwise (another process took a chunk, or the state
 * was evicted) the blob is read back once at commit.
 */
export type HashStates = LRUCache<string, { readonly hash: Hash; readonly size: number }>;

/** Per session, the promise that ends when the current writer's turn ends. */
export type UploadTurns = Map<string, Promise<void>>;

export function newHashStates(max = 1024): HashStates {
  return new LRUCache({ max });
}

const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * A chunk that does not fit its upload: it starts somewhere other than the upload's end (`offset`), or its length
 * differs from what the request announced (`length`). The upload is left as it was, `size` bytes long.
 */
export class ChunkMismatch extends Error {
  readonly kind: 'offset' | 'length';
  /** The upload's length, unchanged by the refused chunk. */
  readonly size: number;
  /** Whether the request gave the chunk's range (PATCH with Content-Range) rather than only its length. */
  readonly ranged: boolean;

  constructor(kind: 'offset' | 'length', size: number, ranged: boolean, message: string) {
    super(message);
    this.name = 'ChunkMismatch';
    this.kind = kind;
    this.size = size;
    this.ranged = ranged;
  }
}

function uploadUnknown(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', { detail: { id: id.slice(0, 100) } });
}

export class Uploads {
  readonly #driver: StorageDriver;
  readonly #name: string;
  readonly #blobs: LinkedBlobs;
  readonly #hashes: HashStates;
  readonly #busy: UploadTurns;

  /** `busy` is shared by every Uploads of one process: whose turn it is to write to each session. */
  constructor(
    driver: StorageDriver,
    name: string,
    blobs: LinkedBlobs,
    hashes: HashStates,
    busy: UploadTurns = new Map(),
  ) {
    this.#driver = driver;
    this.#name = name;
    this.#blobs = blobs;
    this.#hashes = hashes;
    this.#busy = busy;
  }

  /**
   * Runs the writing operations (chunks and commits) of one session one after another within this process. Two
   * writers would interleave their bytes, and a commit would move the file a chunk is still being written to into
   * the blob store. Cancels need no turn: unlinking a file someone writes to harms nobody.
   */
  async #exclusive<T>(id: string, op: () => Promise<T>): Promise<T> {
    const key = this.#key(id);
    const previous = this.#busy.get(key) ?? Promise.resolve();
    let release = (): void => undefined;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.#busy.set(key, tail);
    await previous;
    try {
      return await op();
    } finally {
      release();
      if (this.#busy.get(key) === tail) this.#busy.delete(key);
    }
  }

  #key(id: string): string {
    return `${this.#name}\u0000${id}`;
  }

  /** Starts a session. */
  async create(): Promise<UploadStatus> {
    const id = randomUUID();
    const startedAt = new Date();
    await this.#driver.putContent(paths.uploadData(this.#name, id), new Uint8Array());
    // Written last: its presence is what makes the session exist.
    await this.#driver.putContent(paths.uploadStartedAt(this.#name, id), Buffer.from(startedAt.toISOString()));
    this.#hashes.set(this.#key(id), { hash: createHash('sha256'), size: 0 });
    return { id, size: 0, startedAt };
  }

  /** The state of a session; throws BLOB_UPLOAD_UNKNOWN for ids that are malformed, finished or of another repository. */
  async status(id: string): Promise<UploadStatus> {
    if (!UPLOAD_ID.test(id)) throw uploadUnknown(id);
    try {
      const [started, data] = await Promise.all([
        this.#driver.getContent(paths.uploadStartedAt(this.#name, id)),
        this.#driver.stat(paths.uploadData(this.#name, id)),
      ]);
      const startedAt = new Date(started.toString('utf8'));
      return { id, size: data.size, startedAt: Number.isNaN(startedAt.getTime()) ? data.modTime : startedAt };
    } catch (err) {
      if (isNotFound(err)) throw uploadUnknown(id);
      throw err;
    }
  }

  /** Appends one chunk. A chunk whose range does not start at the current end is refused with 416. */
  async append(id: string, body: Readable, options: ChunkOptions = {}): Promise<UploadStatus> {
    // Read once its turn comes: a writer before it may have grown, finished or cancelled the session.
    return this.#exclusive(id, async () => this.#append(await this.status(id), body, options));
  }

  /**
   * Appends a chunk; with `final`, the chunk is the last one and is kept only if the whole upload then hashes to
   * `final.digest` (`final.hash` holds the hash of the bytes already stored).
   */
  async #append(
    status: UploadStatus,
    body: Readable,
    options: ChunkOptions,
    final?: { hash: Hash; digest: Digest },
  ): Promise<UploadStatus> {
    const { range, length } = options;
    if (range !== undefined && range.start !== status.size) {
      throw new ChunkMismatch(
        'offset',
        status.size,
        true,
        `chunk starts at ${range.start} but the upload has ${status.size} bytes`,
      );
    }
    const key = this.#key(status.id);
    const state = this.#hashes.get(key);
    // Hash as we stream when our state covers exactly what is stored; copy it so a failed chunk leaves it intact.
    const hash = final?.hash ?? (state !== undefined && state.size === status.size ? state.hash.copy() : undefined);
    const counter = new HashingStream(hash ?? null);
    const writer = await this.#driver.writer(paths.uploadData(this.#name, status.id), true);
    try {
      await pipeline(
        body,
        counter,
        writer.stream,
        ...(options.signal === undefined ? [] : [{ signal: options.signal }]),
      );
      const expected = range !== undefined ? range.end - range.start + 1 : length;
      if (expected !== undefined && counter.bytes !== expected) {
        throw new ChunkMismatch(
          'length',
          status.size,
          range !== undefined,
          `chunk has ${counter.bytes} bytes but the request announced ${expected}`,
        );
      }
      if (final !== undefined) verify(final.digest, final.hash);
      // A session another request finished or cancelled meanwhile must not take the chunk (nor come back for it).
      await this.status(status.id);
    } catch (err) {
      await writer.cancel();
      throw err;
    }
    await writer.commit();
    const size = status.size + counter.bytes;
    if (hash !== undefined && final === undefined) this.#hashes.set(key, { hash, size });
    else this.#hashes.delete(key);
    return { ...status, size };
  }

  /**
   * Finishes a session: appends the optional last chunk, verifies the digest (DIGEST_INVALID leaves the session
   * open and as it was, without that chunk), moves the bytes into the blob store and links the blob into the repository.
   */
  async commit(id: string, digest: Digest, body?: Readable, options: ChunkOptions = {}): Promise<BlobDescriptor> {
    return this.#exclusive(id, async () => this.#commit(await this.status(id), digest, body, options));
  }

  async #commit(
    initial: UploadStatus,
    digest: Digest,
    body: Readable | undefined,
    options: ChunkOptions,
  ): Promise<BlobDescriptor> {
    let status = initial;
    const id = status.id;
    const key = this.#key(id);
    const data = paths.uploadData(this.#name, id);
    const state = this.#hashes.get(key);
    // The hash of what is stored: our running state when it covers exactly that, else read back once.
    let hash: Hash;
    if (digest.algorithm === 'sha256' && state !== undefined && state.size === status.size) {
      hash = state.hash.copy();
    } else {
      hash = createHash(digest.algorithm);
      const stored = await this.#driver.reader(data).catch(goneIsUnknown(id));
      await pipeline(stored, new HashingStream(hash), devNull());
    }
    // A last chunk is kept only when the digest then matches, so DIGEST_INVALID leaves the session as it was.
    if (body !== undefined) status = await this.#append(status, body, options, { hash, digest });
    else verify(digest, hash);
    // A concurrent commit of the same session (a client's retry) may have taken the bytes first.
    await this.#driver.move(data, paths.blobData(digest)).catch(goneIsUnknown(id));
    await this.#blobs.link(digest);
    this.#hashes.delete(key);
    await this.#driver.delete(paths.uploadDir(this.#name, id)).catch(() => undefined);
    return { digest, size: status.size, mediaType: OCTET_STREAM };
  }

  /** Abandons a session and its bytes. */
  async cancel(id: string): Promise<void> {
    await this.status(id);
    this.#hashes.delete(this.#key(id));
    // The marker goes first so that a crash half-way leaves no session that looks alive. A concurrent cancel or
    // commit of the same session may take the marker or the directory first.
    await this.#driver.delete(paths.uploadStartedAt(this.#name, id)).catch(goneIsUnknown(id));
    await this.#driver.delete(paths.uploadDir(this.#name, id)).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }
}

/** Turns a missing path of a session into BLOB_UPLOAD_UNKNOWN: the session ended while the request ran. */
function goneIsUnknown(id: string): (err: unknown) => never {
  return (err) => {
    throw isNotFound(err) ? uploadUnknown(id) : err;
  };
}

/** Throws DIGEST_INVALID unless `hash` (which it finishes) gives `digest`. */
function verify(digest: Digest, hash: Hash): void {
  const actual = digestOf(digest.algorithm, hash.digest('hex'));
  if (actual.value !== digest.value) {
    throw new RegistryError('DIGEST_INVALID', { detail: { expected: digest.value, actual: actual.value } });
  }
}

function devNull(): Writable {
  return new Writable({ write: (_chunk, _encoding, callback) => callback() });
}
