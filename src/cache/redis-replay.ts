// Invalidations that did not reach Redis, kept and applied again once it is back. Until then the tier does not trust
// Redis for those digests; past a bound, one flush of the whole cache replaces them.
import type { Logger } from 'pino';
import type { Digest } from '../oci/digest.js';
import type { Invalidation, Scope } from './cache.js';
import { RateLimitedLog } from './cached-statter.js';

export interface ReplayOptions {
  /** Applies one invalidation (in Redis, then to the other replicas); rejects when it did not get through. */
  readonly apply: (invalidation: Invalidation) => Promise<void>;
  /** Whether Redis may be tried now (connected, not bypassed). */
  readonly ready: () => boolean;
  /** Invalidations kept; beyond this the whole cache is flushed instead. */
  readonly maxPending: number;
  /** Time between attempts while some are pending. */
  readonly retryInterval: number;
  readonly log: Logger;
}

export class InvalidationReplay {
  readonly #options: ReplayOptions;
  readonly #warn: RateLimitedLog;
  /** Kept invalidations, by scope and digest, oldest first. */
  readonly #pending = new Map<string, Invalidation>();
  #flushAll = false;
  #replaying: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: ReplayOptions) {
    this.#options = options;
    this.#warn = new RateLimitedLog(options.log);
  }

  /** How many invalidations wait; Infinity when a flush of everything does. */
  get pending(): number {
    return this.#flushAll ? Number.POSITIVE_INFINITY : this.#pending.size;
  }

  #key(scope: Scope, digest: string): string {
    return `${scope ?? ''}\u0000${digest}`;
  }

  /** Whether an invalidation of `digest` (globally, or in `scope`) is still waiting. */
  has(scope: Scope, digest: Digest): boolean {
    if (this.#flushAll) return true;
    if (this.#pending.size === 0) return false;
    return this.#pending.has(this.#key(undefined, digest.value)) || this.#pending.has(this.#key(scope, digest.value));
  }

  /** Keeps an invalidation that did not get through, and retries every interval until all have. */
  remember(invalidation: Invalidation): void {
    if (this.#stopped) return;
    if (invalidation.kind === 'all' || this.#pending.size >= this.#options.maxPending) {
      this.#flushAll = true;
      this.#pending.clear();
    } else if (!this.#flushAll) {
      this.#pending.set(this.#key(invalidation.scope, invalidation.digest.value), invalidation);
    }
    this.#retryTimer ??= setInterval(() => void this.replay(), this.#options.retryInterval).unref();
  }

  /** Applies the kept invalidations, oldest first; stops at the first failure and tries again later. */
  replay(): Promise<void> {
    if (this.#replaying !== undefined) return this.#replaying;
    if (!this.#flushAll && this.#pending.size === 0) return Promise.resolve();
    this.#replaying = (async () => {
      // Not before the assignment above: the finally below must find it set.
      await Promise.resolve();
      try {
        while (!this.#stopped && (this.#flushAll || this.#pending.size > 0) && this.#options.ready()) {
          if (this.#flushAll) {
            await this.#options.apply({ kind: 'all' });
            this.#flushAll = false;
            this.#options.log.info('flushed the redis descriptor cache after invalidations were lost');
            continue;
          }
          const [key, next] = this.#pending.entries().next().value ?? [];
          if (key === undefined || next === undefined) break;
          await this.#options.apply(next);
          this.#pending.delete(key);
        }
      } catch (err) {
        this.#warn.warn(
          'replay',
          { err: err instanceof Error ? err.message : String(err) },
          'replaying invalidations on redis failed',
        );
      } finally {
        this.#replaying = undefined;
        if (!this.#flushAll && this.#pending.size === 0 && this.#retryTimer !== undefined) {
          clearInterval(this.#retryTimer);
          this.#retryTimer = undefined;
        }
      }
    })();
    return this.#replaying;
  }

  /** Stops retrying for good. */
  stop(): void {
    this.#stopped = true;
    if (this.#retryTimer !== undefined) clearInterval(this.#retryTimer);
  }
}
