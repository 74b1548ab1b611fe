// The cached blob statter (Distribution's cachedBlobStatter): ask the tiers in order; a hit answers and fills the
// tiers before it; a miss everywhere asks storage and fills every tier that missed. Only positive, valid answers are
// cached. A tier that fails is skipped, reported, and never fails the request: the cache fails open.
import type { Logger } from 'pino';
import type { Digest } from '../oci/digest.js';
import type { BlobDescriptor, BlobStatter } from '../storage/blobs.js';
import { validateDescriptor, type DescriptorTier, type Fill, type Scope } from './cache.js';

export type CacheOperation = 'lookup' | 'fill' | 'invalidate';

/** Told of every tier failure; the request goes on without that tier. */
export type TierErrorHandler = (tier: DescriptorTier, operation: CacheOperation, err: unknown, digest: Digest) => void;

export class CachedStatter implements BlobStatter {
  readonly #backend: BlobStatter;
  readonly #scope: Scope;
  readonly #tiers: readonly DescriptorTier[];
  readonly #onError: TierErrorHandler;
  readonly #log: Logger;

  constructor(
    backend: BlobStatter,
    scope: Scope,
    tiers: readonly DescriptorTier[],
    onError: TierErrorHandler,
    log: Logger,
  ) {
    this.#backend = backend;
    this.#scope = scope;
    this.#tiers = tiers;
    this.#onError = onError;
    this.#log = log;
  }

  async stat(digest: Digest): Promise<BlobDescriptor> {
    const misses: Array<{ tier: DescriptorTier; fill: Fill }> = [];
    for (const tier of this.#tiers) {
      let found;
      try {
        found = await tier.lookup(this.#scope, digest);
      } catch (err) {
        this.#onError(tier, 'lookup', err, digest);
        continue;
      }
      if (found.hit) {
        await this.#fill(misses, found.descriptor, digest);
        return found.descriptor;
      }
      misses.push({ tier, fill: found.fill });
    }
    // Storage's errors (BLOB_UNKNOWN included) go to the caller untouched; nothing negative is cached.
    const descriptor = await this.#backend.stat(digest);
    const problem = validateDescriptor(descriptor, digest);
    if (problem !== undefined) {
      this.#log.warn(
        { digest: digest.value, scope: this.#scope, problem },
        'storage gave a descriptor the cache refuses',
      );
      return descriptor;
    }
    await this.#fill(misses, descriptor, digest);
    return descriptor;
  }

  async #fill(
    misses: ReadonlyArray<{ tier: DescriptorTier; fill: Fill }>,
    descriptor: BlobDescriptor,
    digest: Digest,
  ): Promise<void> {
    await Promise.all(
      misses.map(({ tier, fill }) =>
        fill(descriptor).catch((err: unknown) => this.#onError(tier, 'fill', err, digest)),
      ),
    );
  }
}

/**
 * Logs the first occurrence of each kind of message at once, then at most one per interval with the number that
 * were held back, so a Redis outage under load logs a handful of lines rather than one per request.
 */
export class RateLimitedLog {
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(log: Logger, intervalMs = 10_000) {
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  warn(kind: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    const last = this.#last.get(kind);
    if (last !== undefined && now - last.at < this.#intervalMs) {
      last.suppressed++;
      return;
    }
    this.#log.warn({ ...fields, ...(last?.suppressed ? { suppressed: last.suppressed } : {}) }, message);
    this.#last.set(kind, { at: now, suppressed: 0 });
  }
}
