// Failed logins per client address: a few are free, then each further failure doubles the time the address must
// wait before its credentials are checked again. Bounded: the least recently seen addresses are forgotten first.
import { LRUCache } from 'lru-cache';

export interface BackoffOptions {
  /** Failures allowed before waiting starts. */
  readonly free?: number;
  /** The first wait; each further failure doubles it. */
  readonly baseMs?: number;
  readonly maxMs?: number;
  /** Addresses remembered at most. */
  readonly max?: number;
  /** A quiet address is forgotten after this long. */
  readonly forgetMs?: number;
  readonly now?: () => number;
}

interface Record {
  failures: number;
  until: number;
}

export class FailureBackoff {
  readonly #free: number;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #now: () => number;
  readonly #records: LRUCache<string, Record>;

  constructor(options: BackoffOptions = {}) {
    this.#free = options.free ?? 5;
    this.#baseMs = options.baseMs ?? 1_000;
    this.#maxMs = options.maxMs ?? 60_000;
    this.#now = options.now ?? Date.now;
    this.#records = new LRUCache({
      max: options.max ?? 10_000,
      ttl: options.forgetMs ?? 15 * 60_000,
      perf: { now: () => this.#now() },
    });
  }

  /** Milliseconds `address` must still wait before its credentials are checked; 0 when it may try now. */
  retryAfter(address: string): number {
    const r = this.#records.get(address, { updateAgeOnGet: false });
    return r === undefined ? 0 : Math.max(0, r.until - this.#now());
  }

  /** Records a failed attempt. */
  failed(address: string): void {
    const r = this.#records.get(address) ?? { failures: 0, until: 0 };
    r.failures++;
    const over = r.failures - this.#free;
    if (over > 0) r.until = this.#now() + Math.min(this.#maxMs, this.#baseMs * 2 ** Math.min(over - 1, 30));
    this.#records.set(address, r);
  }

  /** A successful login clears the address's record. */
  succeeded(address: string): void {
    this.#records.delete(address);
  }

  get size(): number {
    return this.#records.size;
  }
}
