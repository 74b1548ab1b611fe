// The storage-side registry: hands out small per-repository services over one driver.
import type { StorageDriver } from './driver.js';
import { isNotFound } from './driver.js';
import { GlobalBlobs, LinkedBlobs, noInvalidate, type BlobStatter, type Invalidate } from './blobs.js';
import { Manifests, newManifestContentCache, type ManifestContentCache } from './manifests.js';
import { paths, REPOSITORIES, REPOSITORY_MARKERS } from './paths.js';
import { Tags } from './tags.js';
import { newHashStates, Uploads, type HashStates, type UploadTurns } from './uploads.js';

export interface Repository {
  readonly name: string;
  /** Links and unlinks blobs; its own `stat` bypasses the descriptor cache. */
  readonly blobs: LinkedBlobs;
  /** Blob stats as every reader should make them: through the descriptor cache when there is one. */
  readonly statter: BlobStatter;
  readonly uploads: Uploads;
  readonly manifests: Manifests;
  readonly tags: Tags;
  /** Whether the repository holds anything: a linked blob or a manifest. */
  exists(): Promise<boolean>;
}

export interface RegistryStorageOptions {
  /** Wraps blob statters (the descriptor cache does this); identity by default. */
  readonly wrapStatter?: (statter: BlobStatter, scope: string | undefined) => BlobStatter;
  /** Told of every blob or manifest that stops existing in a scope, so caches can drop it. */
  readonly invalidate?: Invalidate;
  /** Hash whole blob reads against their digest (storage.verifyreads); on unless told otherwise. */
  readonly verifyReads?: boolean;
}

export class RegistryStorage {
  readonly driver: StorageDriver;
  readonly blobs: GlobalBlobs;
  readonly #statter: BlobStatter;
  readonly #hashes: HashStates = newHashStates();
  readonly #busyUploads: UploadTurns = new Map();
  readonly #manifestCache: ManifestContentCache = newManifestContentCache();
  readonly #wrap: (statter: BlobStatter, scope: string | undefined) => BlobStatter;
  /** Every deletion and unlink reports here; the descriptor cache listens. */
  readonly invalidate: Invalidate;

  constructor(driver: StorageDriver, options: RegistryStorageOptions = {}) {
    this.driver = driver;
    this.blobs = new GlobalBlobs(driver, options.verifyReads ?? true);
    this.#wrap = options.wrapStatter ?? ((s) => s);
    this.invalidate = options.invalidate ?? noInvalidate;
    this.#statter = this.#wrap(this.blobs, undefined);
  }

  /** The services of one repository; `name` must already be validated. */
  repository(name: string): Repository {
    const driver = this.driver;
    const blobs = new LinkedBlobs(driver, name, this.#statter, this.invalidate);
    const statter = this.#wrap(blobs, name);
    const tags = new Tags(driver, name);
    return {
      name,
      blobs,
      tags,
      uploads: new Uploads(driver, name, blobs, this.#hashes, this.#busyUploads),
      statter,
      manifests: new Manifests(driver, name, statter, this.blobs, tags, this.#manifestCache, this.invalidate),
      // As in the catalog: a repository has linked blobs or manifests. Its directory alone is not enough, for it
      // may hold only uploads (even failed ones) or be the parent of other repositories.
      exists: async () => {
        for (const marker of REPOSITORY_MARKERS) {
          try {
            if ((await driver.stat(`${paths.repository(name)}/${marker}`)).isDir) return true;
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
        }
        return false;
      },
    };
  }

  /** Repository names in lexical order, after `last` when given, at most `limit` of them. */
  async catalog(limit: number, last?: string): Promise<string[]> {
    const names: string[] = [];
    await this.#collect(REPOSITORIES, '', names);
    names.sort();
    const start = last === undefined ? 0 : names.findIndex((n) => n > last);
    return start < 0 ? [] : names.slice(start, start + limit);
  }

  async #collect(dir: string, prefix: string, out: string[]): Promise<void> {
    let children: string[];
    try {
      children = await this.driver.list(dir);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    const names = children.map((c) => c.slice(c.lastIndexOf('/') + 1));
    if (prefix !== '' && names.some((n) => REPOSITORY_MARKERS.has(n))) out.push(prefix);
    for (const child of names) {
      if (child.startsWith('_')) continue;
      await this.#collect(`${dir}/${child}`, prefix === '' ? child : `${prefix}/${child}`, out);
    }
  }
}
