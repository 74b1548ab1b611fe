// Blob statting and reading: the global store (content-addressed bytes) and the per-repository view (only blobs
// linked into the repository exist there). The descriptor cache (src/cache) wraps the BlobStatter interface.
import type { Readable } from 'node:stream';
import { RegistryError } from '../oci/errors.js';
import type { Digest } from '../oci/digest.js';
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

/** The content-addressed store shared by every repository. */
export class GlobalBlobs implements BlobStatter {
  readonly #driver: StorageDriver;

  constructor(driver: StorageDriver) {
    this.#driver = driver;
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

  /** Streams `length` bytes of a blob from `offset`. */
  async open(digest: Digest, offset: number, length: number, signal?: AbortSignal): Promise<Readable> {
    try {
      return await this.#driver.reader(paths.blobData(digest), {
        offset,
        length,
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (err) {
      if (isNotFound(err)) throw unknown(digest);
      throw err;
    }
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

  /** Reads a small blob (a manifest) whole. */
  async getContent(digest: Digest): Promise<Buffer> {
    try {
      return await this.#driver.getContent(paths.blobData(digest));
    } catch (err) {
      if (isNotFound(err)) throw unknown(digest);
      throw err;
    }
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
