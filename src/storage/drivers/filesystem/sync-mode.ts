// When the filesystem driver may run a kind of operation (stat, read) synchronously. On a local disk a stat of a
// cached entry takes a microsecond or two on the event loop, where the thread pool's round trip costs tens, and a
// read from the page cache lands in a buffer still warm in this core's cache when it goes out on the socket; but a
// slow disk (a cold cache, a network filesystem) must not stall the event loop. So operations run synchronously while
// their moving average stays within a budget, and go to the thread pool for a while once it does not.
//
// A moving average, not a single sample: on a busy machine the scheduler preempts the process in the middle of an
// operation now and then, and one such pause says nothing about the disk. A single operation ten times over the
// budget, or a run of slow ones, still sends them to the thread pool at once.

export interface SyncModeOptions {
  /** The moving average (ms) above which operations leave the event loop. */
  readonly budgetMs?: number;
  /** How long they stay on the thread pool before the event loop is tried again. */
  readonly asyncForMs?: number;
  /** Weight of the newest sample in the average. */
  readonly weight?: number;
  readonly now?: () => number;
  /** False: never synchronous (everything on the thread pool), as for a disk known to be slow. */
  readonly allowed?: boolean;
}

export class SyncMode {
  readonly #budgetMs: number;
  readonly #asyncForMs: number;
  readonly #weight: number;
  readonly #now: () => number;
  #averageMs = 0;
  #asyncUntil = Number.NEGATIVE_INFINITY;

  constructor(options: SyncModeOptions = {}) {
    this.#budgetMs = options.budgetMs ?? 1;
    this.#asyncForMs = options.asyncForMs ?? 10_000;
    this.#weight = options.weight ?? 0.1;
    this.#now = options.now ?? (() => performance.now());
    if (options.allowed === false) this.#asyncUntil = Number.POSITIVE_INFINITY;
  }

  /** Whether the next operation may run on the event loop (through `run`). */
  get synchronous(): boolean {
    return this.#now() >= this.#asyncUntil;
  }

  /** Runs a synchronous operation and judges the disk by how long it took, whether it returned or threw. */
  run<T>(operation: () => T): T {
    const started = this.#now();
    try {
      return operation();
    } finally {
      this.#took(this.#now() - started);
    }
  }

  #took(ms: number): void {
    this.#averageMs += (ms - this.#averageMs) * this.#weight;
    if (this.#averageMs > this.#budgetMs) {
      this.#asyncUntil = this.#now() + this.#asyncForMs;
      // Back on the event loop, the disk is judged afresh.
      this.#averageMs = 0;
    }
  }
}
