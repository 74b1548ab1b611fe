// Tags of one repository: each is one small file holding a manifest digest, replaced atomically.
import { RegistryError } from '../oci/errors.js';
import { parseDigest, type Digest } from '../oci/digest.js';
import { isNotFound, type StorageDriver } from './driver.js';
import { paths } from './paths.js';

function tagUnknown(tag: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', { message: `manifest tagged ${tag} is not known`, detail: { tag } });
}

export class Tags {
  readonly #driver: StorageDriver;
  readonly #name: string;

  constructor(driver: StorageDriver, name: string) {
    this.#driver = driver;
    this.#name = name;
  }

  /** The digest a tag points to; throws MANIFEST_UNKNOWN. */
  async resolve(tag: string): Promise<Digest> {
    let content: Buffer;
    try {
      content = await this.#driver.getContent(paths.tagCurrent(this.#name, tag));
    } catch (err) {
      throw isNotFound(err) ? tagUnknown(tag) : err;
    }
    return parseDigest(content.toString('utf8').trim());
  }

  /** Points a tag at a manifest, atomically replacing what it pointed to. */
  async tag(tag: string, digest: Digest): Promise<void> {
    await this.#driver.putContent(paths.tagCurrent(this.#name, tag), Buffer.from(digest.value));
  }

  /** Removes a tag; throws MANIFEST_UNKNOWN when there is none. */
  async untag(tag: string): Promise<void> {
    try {
      await this.#driver.delete(paths.tagDir(this.#name, tag));
    } catch (err) {
      throw isNotFound(err) ? tagUnknown(tag) : err;
    }
  }

  /** Every tag of the repository, sorted; an empty list for a repository with no tags. */
  async all(): Promise<string[]> {
    let children: string[];
    try {
      children = await this.#driver.list(paths.tags(this.#name));
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
    const names = children.map((p) => p.slice(p.lastIndexOf('/') + 1));
    // A tag exists only with its link: a crash between creating the directory and renaming the link into place
    // (or part-way through a delete) leaves a directory that must not be listed.
    const present = await Promise.all(names.map((tag) => this.#exists(tag)));
    return names.filter((_, i) => present[i]).sort();
  }

  async #exists(tag: string): Promise<boolean> {
    try {
      return !(await this.#driver.stat(paths.tagCurrent(this.#name, tag))).isDir;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** Tags that point to `digest`. */
  async pointingTo(digest: Digest): Promise<string[]> {
    const found: string[] = [];
    for (const tag of await this.all()) {
      try {
        if ((await this.resolve(tag)).value === digest.value) found.push(tag);
      } catch (err) {
        if (!(err instanceof RegistryError)) throw err;
      }
    }
    return found;
  }
}
