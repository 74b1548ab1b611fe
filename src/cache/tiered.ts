// The blob-descriptor cache as the rest of Berth sees it (a statter wrapper, an invalidation hook, readiness and
// shutdown), and the one implementation: tiers asked in order, the in-process one first.
import type { Logger } from 'pino';
import type { Digest } from '../oci/digest.js';
import type { BlobStatter, Invalidate } from '../storage/blobs.js';
import type { DescriptorTier, Scope } from './cache.js';
import { CachedStatter, RateLimitedLog, type CacheOperation } from './cached-statter.js';

export interface DescriptorCache {
  /** Wraps a statter of one scope (a repository name, or undefined for the global blob store). */
  wrap(statter: BlobStatter, scope: string | undefined): BlobStatter;
  /** Drops what every tier (and, with Redis, every replica) holds for a digest in a scope. */
  readonly invalidate: Invalidate;
  /** Reachability of the cache's backing service, for /readyz; undefined when healthy. Never throws. */
  check(): Promise<string | undefined>;
  /** Releases connections and timers; idempotent. Statters it wrapped keep answering, from storage. */
  close(): Promise<void>;
}

/** A cache made of tiers asked in order (the LRU first); failures of any tier are counted, logged and skipped. */
export class TieredDescriptorCache implements DescriptorCache {
  readonly #tiers: readonly DescriptorTier[];
  readonly #log: Logger;
  readonly #errors: RateLimitedLog;
  readonly #closers: ReadonlyArray<() => Promise<void>>;
  #closing: Promise<void> | undefined;

  /** `tiers` are already instrumented; `closers` run after the tiers close (connections the tiers share). */
  constructor(tiers: readonly DescriptorTier[], log: Logger, closers: ReadonlyArray<() => Promise<void>> = []) {
    this.#tiers = tiers;
    this.#log = log;
    this.#errors = new RateLimitedLog(log);
    this.#closers = closers;
  }

  readonly #onError = (tier: DescriptorTier, operation: CacheOperation, err: unknown, digest: Digest): void => {
    this.#errors.warn(
      `${tier.name}:${operation}`,
      { tier: tier.name, operation, digest: digest.value, err: err instanceof Error ? err.message : String(err) },
      'descriptor cache failed; answering from storage',
    );
  };

  wrap(statter: BlobStatter, scope: string | undefined): BlobStatter {
    return new CachedStatter(statter, scope, this.#tiers, this.#onError, this.#log);
  }

  readonly invalidate: Invalidate = async (scope: Scope, digest: Digest) => {
    // In order, front tier first; then the front tiers once more, for a lookup that ran meanwhile may have refilled
    // them from a back-tier entry that was still there (cheap: front tiers are in-process).
    const tiers = [...this.#tiers, ...this.#tiers.slice(0, -1)];
    for (const tier of tiers) {
      try {
        await tier.invalidate(scope, digest);
      } catch (err) {
        this.#onError(tier, 'invalidate', err, digest);
      }
    }
  };

  async check(): Promise<string | undefined> {
    const problems = await Promise.all(this.#tiers.map((t) => t.check().catch((err: unknown) => String(err))));
    const found = problems.filter((p): p is string => p !== undefined);
    return found.length === 0 ? undefined : [...new Set(found)].join('; ');
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all(this.#tiers.map((t) => t.close().catch(() => undefined)));
      for (const close of this.#closers) await close().catch(() => undefined);
    })();
    return this.#closing;
  }
}
