// Blob statting and reading: the global store (content-addressed bytes) and the per-repository view (only blobs
// linked into the repository exist there). The descriptor cache (src/cache) wraps the BlobStatter interface.
import { createHash, type Hash } from 'node:crypto';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { RegistryError } from '../oci/errors.js';
import { digestBuffer, type Digest } from '../oci/digest.js';
import { isNotFound, type PositionalFile, type RedirectOptions, type StorageDriver } from './driver.js';
import { paths } from './paths.js';

export interface BlobDescriptor {
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
}

export interface BlobStatter {
  /** The descriptor of a blob that exists; throws BLOB_UNKNOWN otherwise. */
  stat(digest: Digest): Promise<BlobDescriptor>;
}

/**
 * Told whenever a blob stops existing in a scope (a repository, or the whole registry when `repository` is
 * undefined), so caches drop what they hold for it. Deletes, unlinks and garbage collection all go through it.
 */
export type Invalidate = (repository: string | undefined, digest: Digest) => Promise<void>;

export const noInvalidate: Invalidate = async () => undefined;

export const OCTET_STREAM = 'application/octet-stream';

function unknown(digest: Digest): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', { detail: { digest: digest.value } });
}

/**
 * Stored bytes that are not the content their digest names: changed or damaged behind the registry's back (`digest`:
 * they hash to something else), or more or fewer of them than the blob's size (`length`). Such bytes are never
 * served: the registry answers with an error, or cuts a response that is already under way before its last bytes.
 */
export class ContentMismatch extends Error {
  /** The storage path read. */
  readonly path: string;
  readonly digest: Digest;
  readonly reason: 'digest' | 'length';

  constructor(path: string, digest: Digest, reason: 'digest' | 'length', message: string) {
    super(message);
    this.name = 'ContentMismatch';
    this.path = path;
    this.digest = digest;
    this.reason = reason;
  }
}

/**
 * Checks the bytes of one read of a blob as they go by. A read of the whole blob is hashed and must hash to the
 * digest; a range can be checked for its length only (a digest covers the whole blob, and hashing the bytes before
 * the range to check it would cost a read of them). Callers hold back the bytes that complete the read until
 * `finish` has passed, so a client never gets a complete response with the wrong bytes.
 */
export class ReadCheck {
  readonly #path: string;
  readonly #digest: Digest;
  readonly #length: number;
  readonly #hash: Hash | undefined;
  #seen = 0;
  #finished = false;

  /**
   * A read of `length` bytes from `offset` of a blob of `size` bytes; with `hash` false (storage.verifyreads), a
   * whole read too is checked for its length only.
   */
  constructor(digest: Digest, offset: number, length: number, size: number, hash = true) {
    this.#path = paths.blobData(digest);
    this.#digest = digest;
    this.#length = length;
    this.#hash = hash && offset === 0 && length === size ? createHash(digest.algorithm) : undefined;
  }

  /** Whether the whole expected length has been seen: the next step is `finish`, before the last bytes go out. */
  get complete(): boolean {
    return this.#seen >= this.#length;
  }

  /** Takes the next bytes; throws ContentMismatch when they run past the expected length. */
  update(chunk: Uint8Array): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#length) throw this.#mismatch('length', `read ${this.#seen} bytes of ${this.#length}`);
    this.#hash?.update(chunk);
  }

  /** Throws ContentMismatch unless exactly the expected bytes were seen and, for a whole read, hash to the digest. */
  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#seen !== this.#length)
      throw this.#mismatch('length', `storage gave ${this.#seen} bytes where ${this.#length} were expected`);
    if (this.#hash === undefined) return;
    const actual = `${this.#digest.algorithm}:${this.#hash.digest('hex')}`;
    if (actual !== this.#digest.value) throw this.#mismatch('digest', `the stored bytes hash to ${actual}`);
  }

  #mismatch(reason: 'digest' | 'length', why: string): ContentMismatch {
    return new ContentMismatch(this.#path, this.#digest, reason, `blob ${this.#digest.value} at ${this.#path}: ${why}`);
  }
}

/**
 * `source` through `check`: a chunk goes on once checked, and the chunk that completes the read only once `finish`
 * passed; any failure errors the returned stream (whose consumer, the HTTP response, is then destroyed).
 */
function checked(source: Readable, check: ReadCheck): Readable {
  const through = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      try {
        check.update(chunk);
        if (check.complete) check.finish();
      } catch (err) {
        callback(err as Error);
        return;
      }
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      try {
        check.finish();
      } catch (err) {
        callback(err as Error);
        return;
      }
      callback();
    },
  });
  // Errors reach `through` (a failing store destroys it with its error), and a consumer that leaves destroys `source`.
  return pipeline(source, through, () => undefined);
}

/** The content-addressed store shared by every repository. */
export class GlobalBlobs implements BlobStatter {
  readonly #driver: StorageDriver;

  /** Whether whole blob reads are hashed (storage.verifyreads); their length is always checked. */
  readonly #verifyReads: boolean;

  constructor(driver: StorageDriver, verifyReads = true) {
    this.#driver = driver;
    this.#verifyReads = verifyReads;
  }

  /** The check for one read of a blob, as this store is configured to check reads. */
  readCheck(digest: Digest, offset: number, length: number, size: number): ReadCheck {
    return new ReadCheck(digest, offset, length, size, this.#verifyReads);
  }

  async stat(digest: Digest): Promise<BlobDescriptor> {
    try {
      const info = await this.#driver.stat(paths.blobData(digest));
      if (info.isDir) throw unknown(digest);
      return { digest, size: info.size, mediaType: OCTET_STREAM };
    } catch (err) {
      if (isNotFound(err)) throw unknown(digest);
      throw err;
    }
  }

  /**
   * Streams `length` bytes from `offset` of a blob of `size` bytes, checked as a ReadCheck checks them: the stream
   * errors with ContentMismatch, before its last chunk, when the bytes are not the blob's.
   */
  async open(digest: Digest, offset: number, length: number, size: number, signal?: AbortSignal): Promise<Readable> {
    let source: Readable;
    try {
      source = await this.#driver.reader(paths.blobData(digest), {
        offset,
        length,
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (err) {
      if (isNotFound(err)) throw unknown(digest);
      throw err;
    }
    return checked(source, this.readCheck(digest, offset, length, size));
  }

  /**
   * Opens a blob for positional reads when the driver can (the fast path for sending it); undefined when the driver
   * only streams. Throws BLOB_UNKNOWN for a missing blob.
   */
  async openFile(digest: Digest): Promise<PositionalFile | undefined> {
    const open = this.#driver.open?.bind(this.#driver);
    if (open === undefined) return undefined;
    try {
      return await open(paths.blobData(digest));
    } catch (err) {
      if (isNotFound(err)) throw unknown(digest);
      throw err;
    }
  }

  /**
   * A URL on the storage backend where the blob's bytes can be read directly (storage.redirect), or undefined when
   * the driver cannot hand one out. It does not check that the blob exists: callers stat it first.
   */
  async redirectURL(digest: Digest, options: RedirectOptions): Promise<string | undefined> {
    const redirect = this.#driver.redirectURL?.bind(this.#driver);
    if (redirect === undefined) return undefined;
    return redirect(paths.blobData(digest), options);
  }

  /** Reads a small blob (a manifest) whole; throws ContentMismatch when the bytes do not hash to its digest. */
  async getContent(digest: Digest): Promise<Buffer> {
    const path = paths.blobData(digest);
    let content: Buffer;
    try {
      content = await this.#driver.getContent(path);
    } catch (err) {
      if (isNotFound(err)) throw unknown(digest);
      throw err;
    }
    const actual = digestBuffer(content, digest.algorithm).value;
    if (actual !== digest.value)
      throw new ContentMismatch(
        path,
        digest,
        'digest',
        `blob ${digest.value} at ${path}: the stored bytes hash to ${actual}`,
      );
    return content;
  }

  /** Stores a small blob (a manifest) whose digest the caller has verified. */
  async putContent(digest: Digest, content: Uint8Array): Promise<void> {
    await this.#driver.putContent(paths.blobData(digest), content);
  }
}

/** Blobs as one repository sees them: a blob exists there only when it is linked into the repository. */
export class LinkedBlobs implements BlobStatter {
  readonly #driver: StorageDriver;
  readonly #name: string;
  readonly #global: BlobStatter;
  readonly #invalidate: Invalidate;

  constructor(driver: StorageDriver, name: string, global: BlobStatter, invalidate: Invalidate = noInvalidate) {
    this.#driver = driver;
    this.#name = name;
    this.#global = global;
    this.#invalidate = invalidate;
  }

  async stat(digest: Digest): Promise<BlobDescriptor> {
    try {
      await this.#driver.stat(paths.layerLink(this.#name, digest));
    } catch (err) {
      if (isNotFound(err)) throw unknown(digest);
      throw err;
    }
    return this.#global.stat(digest);
  }

  /** Links a blob that exists in the global store into this repository. */
  async link(digest: Digest): Promise<void> {
    await this.#driver.putContent(paths.layerLink(this.#name, digest), Buffer.from(digest.value));
  }

  /** Removes the repository's link; the bytes stay for other repositories until garbage collection. */
  async unlink(digest: Digest): Promise<void> {
    try {
      await this.#driver.delete(paths.layerLinkDir(this.#name, digest));
    } catch (err) {
      if (isNotFound(err)) throw unknown(digest);
      throw err;
    } finally {
      // Also after a failure: storage may have changed part-way, and a dropped cache entry costs only a miss.
      await this.#invalidate(this.#name, digest);
    }
  }
}
