// The in-process tier: a bounded LRU of descriptors keyed by scope and digest, with an index from digest to the keys
// that hold it so that a global invalidation drops every repository's entry too.
import { LRUCache } from 'lru-cache';
import type { Digest } from '../oci/digest.js';
import type { BlobDescriptor } from '../storage/blobs.js';
import { freezeDescriptor, validateDescriptor, type DescriptorTier, type Lookup, type Scope } from './cache.js';

const GLOBAL = '';

function keyOf(scope: Scope, digest: string): string {
  return `${scope ?? GLOBAL}\u0000${digest}`;
}

const noFill = async (): Promise<void> => undefined;

export class MemoryTier implements DescriptorTier {
  readonly name = 'memory' as const;
  readonly #entries: LRUCache<string, BlobDescriptor>;
  /** digest → keys of the entries that hold it. */
  readonly #byDigest = new Map<string, Set<string>>();
  /**
   * Bumped by every invalidation and clear. A fill is kept only if no bump happened since its lookup, so an answer
   * that storage gave before a delete can never land after the delete's invalidation.
   */
  #epoch = 0;
  #closed = false;

  constructor(size: number) {
    this.#entries = new LRUCache<string, BlobDescriptor>({
      max: size,
      dispose: (value, key) => {
        const keys = this.#byDigest.get(value.digest.value);
        keys?.delete(key);
        if (keys?.size === 0) this.#byDigest.delete(value.digest.value);
      },
    });
  }

  /** How many entries the LRU holds (at most the configured size). */
  get size(): number {
    return this.#entries.size;
  }

  async lookup(scope: Scope, digest: Digest): Promise<Lookup> {
    if (this.#closed) throw new Error('the memory cache is closed');
    const found = this.#entries.get(keyOf(scope, digest.value));
    if (found !== undefined) return { hit: true, descriptor: found };
    return { hit: false, fill: this.fillFor(scope, digest) };
  }

  /** A fill that lands only if nothing was invalidated from now until it runs. */
  fillFor(scope: Scope, digest: Digest): (descriptor: BlobDescriptor) => Promise<void> {
    const epoch = this.#epoch;
    return async (descriptor) => {
      if (this.#closed || epoch !== this.#epoch || validateDescriptor(descriptor, digest) !== undefined) return;
      const key = keyOf(scope, digest.value);
      this.#entries.set(key, freezeDescriptor(descriptor));
      let keys = this.#byDigest.get(digest.value);
      if (keys === undefined) this.#byDigest.set(digest.value, (keys = new Set()));
      keys.add(key);
    };
  }

  /** A miss whose fill does nothing (for callers that know the LRU cannot be trusted right now). */
  static readonly miss: Lookup = { hit: false, fill: noFill };

  async invalidate(scope: Scope, digest: Digest): Promise<void> {
    this.invalidateNow(scope, digest);
  }

  /** The synchronous form of invalidate, for pub/sub handlers. */
  invalidateNow(scope: Scope, digest: Digest): void {
    this.#epoch++;
    if (scope !== undefined) {
      this.#entries.delete(keyOf(scope, digest.value));
      return;
    }
    for (const key of [...(this.#byDigest.get(digest.value) ?? [])]) this.#entries.delete(key);
    this.#entries.delete(keyOf(undefined, digest.value));
  }

  /** Drops everything, and every fill in flight. */
  clear(): void {
    this.#epoch++;
    this.#entries.clear();
    this.#byDigest.clear();
  }

  async check(): Promise<string | undefined> {
    return this.#closed ? 'closed' : undefined;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.clear();
  }
}
