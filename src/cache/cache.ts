// What every tier of the descriptor cache (the in-process LRU, Redis) promises, and the check a descriptor passes
// before any tier stores it. A tier holds positive answers only: "this blob exists in this scope, with this size".
import type { Digest } from '../oci/digest.js';
import type { BlobDescriptor } from '../storage/blobs.js';

export const CACHE_TIERS = ['memory', 'redis'] as const;
export type CacheTierName = (typeof CACHE_TIERS)[number];

/**
 * A scope is a repository name (the blob is linked into that repository) or undefined (the blob is in the global
 * blob store). Repository names never contain NUL or `:`, so they can be embedded in keys.
 */
export type Scope = string | undefined;

/** What an invalidation dropped: one digest in one scope, or (after too many failed ones) everything. */
export type Invalidation =
  { readonly kind: 'one'; readonly scope: Scope; readonly digest: Digest } | { readonly kind: 'all' };

/** Stores what storage answered after a miss. */
export type Fill = (descriptor: BlobDescriptor) => Promise<void>;

/** What a tier answers for one digest in one scope. */
export type Lookup =
  | { readonly hit: true; readonly descriptor: BlobDescriptor }
  | {
      readonly hit: false;
      /**
       * Stores storage's answer, unless the digest was invalidated (on any replica) after the lookup began: a fill
       * that raced a delete is dropped rather than left stale. Rejects when the backing service fails.
       */
      readonly fill: Fill;
    };

export interface DescriptorTier {
  readonly name: CacheTierName;
  /**
   * The descriptor cached for `digest` in `scope`, or a miss carrying its `fill`. A hit is always a descriptor that
   * passed validateDescriptor for this digest. Rejects when the backing service fails; never answers for another
   * scope (a repository's answer is never taken from the global store's entry alone, nor from another repository).
   */
  lookup(scope: Scope, digest: Digest): Promise<Lookup>;
  /**
   * Drops the entry of `digest` in `scope`; with `scope` undefined, the global entry and every repository's entry
   * for the digest. Once it resolves, no lookup (on any replica that shares the tier) answers with an entry filled
   * before it began, and no fill begun before it lands. Rejects when the backing service fails.
   */
  invalidate(scope: Scope, digest: Digest): Promise<void>;
  /** Undefined when the tier can serve; otherwise why not. Never rejects. */
  check(): Promise<string | undefined>;
  /** Releases connections and timers; lookups after close reject. Idempotent. */
  close(): Promise<void>;
}

const MEDIA_TYPE = /^[\x21-\x7e][\x20-\x7e]{0,254}$/;

/** Why a descriptor must not be cached for `digest`, or undefined when it may. */
export function validateDescriptor(descriptor: BlobDescriptor, digest: Digest): string | undefined {
  if (descriptor.digest.value !== digest.value)
    return `descriptor digest ${descriptor.digest.value} is not ${digest.value}`;
  if (!Number.isSafeInteger(descriptor.size) || descriptor.size < 0) return `invalid size ${String(descriptor.size)}`;
  if (typeof descriptor.mediaType !== 'string' || !MEDIA_TYPE.test(descriptor.mediaType)) {
    return `invalid media type ${JSON.stringify(descriptor.mediaType)}`;
  }
  return undefined;
}

/** A frozen copy, so no caller can change what a tier holds. */
export function freezeDescriptor(descriptor: BlobDescriptor): BlobDescriptor {
  return Object.freeze({
    digest: Object.freeze({ ...descriptor.digest }),
    size: descriptor.size,
    mediaType: descriptor.mediaType,
  });
}

/** Rejects with a timeout error when `promise` has not settled within `ms`. */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CacheTimeoutError(`${what} took longer than ${ms}ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

export class CacheTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CacheTimeoutError';
  }
}
