// A per-object work queue: one reconcile at a time per key, events for a busy key coalesce into one more run after it,
// failures retry with exponential backoff, and a run may ask to be repeated later.
import { EventEmitter } from 'node:events';

export interface QueueOptions {
  /** Reconciles running at once (different keys). */
  readonly concurrency?: number;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
}

/** What one run of the worker asks for. */
export interface RunResult {
  /** Run this key again after so many milliseconds even without events. */
  readonly requeueAfterMs?: number;
}

export type Worker = (key: string) => Promise<RunResult | void>;

export class WorkQueue extends EventEmitter {
  readonly #worker: Worker;
  readonly #concurrency: number;
  readonly #base: number;
  readonly #max: number;
  /** Keys waiting to run, in order. */
  readonly #pending = new Set<string>();
  readonly #running = new Set<string>();
  /** Keys that got an event while running: run once more afterwards. */
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  /** Keys forgotten while running: their run's outcome schedules nothing. */
  readonly #forgotten = new Set<string>();
  #stopped = false;
  #idle: (() => void)[] = [];

  constructor(worker: Worker, options: QueueOptions = {}) {
    super();
    this.#worker = worker;
    this.#concurrency = options.concurrency ?? 4;
    this.#base = options.baseDelayMs ?? 500;
    this.#max = options.maxDelayMs ?? 300_000;
  }

  /** Keys waiting or running. */
  get depth(): number {
    return this.#pending.size + this.#running.size;
  }

  /** Asks for a run of key soon; several calls before it runs make one run. */
  add(key: string): void {
    if (this.#stopped) return;
    this.#forgotten.delete(key);
    const timer = this.#timers.get(key);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.#timers.delete(key);
    }
    if (this.#running.has(key)) this.#dirty.add(key);
    else this.#pending.add(key);
    this.#pump();
  }

  /** Asks for a run after a delay (an earlier add or addAfter wins). */
  addAfter(key: string, ms: number): void {
    if (this.#stopped || this.#pending.has(key) || this.#timers.has(key)) return;
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.#timers.set(key, timer);
  }

  /** Forgets a key's pending runs and failure count (the object is gone). */
  forget(key: string): void {
    this.#pending.delete(key);
    this.#dirty.delete(key);
    if (this.#running.has(key)) this.#forgotten.add(key);
    this.#failures.delete(key);
    const timer = this.#timers.get(key);
    if (timer !== undefined) clearTimeout(timer);
    this.#timers.delete(key);
  }

  /** Takes work again after stop() (a new leadership term). */
  resume(): void {
    this.#stopped = false;
  }

  /** Stops taking work; resolves when running reconciles have finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#pending.clear();
    this.#dirty.clear();
    if (this.#running.size === 0) return;
    await new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  #pump(): void {
    while (!this.#stopped && this.#running.size < this.#concurrency && this.#pending.size > 0) {
      const key = this.#pending.values().next().value as string;
      this.#pending.delete(key);
      this.#running.add(key);
      void this.#run(key);
    }
  }

  async #run(key: string): Promise<void> {
    let result: RunResult | void = undefined;
    let failed = false;
    try {
      result = await this.#worker(key);
    } catch (err) {
      failed = true;
      this.emit('failure', key, err);
    }
    this.#running.delete(key);
    if (this.#forgotten.delete(key)) {
      this.#failures.delete(key);
    } else if (failed) {
      const n = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, n);
      const delay = Math.min(this.#max, this.#base * 2 ** (n - 1));
      if (this.#dirty.delete(key)) this.#pending.add(key);
      else this.addAfter(key, delay);
    } else {
      this.#failures.delete(key);
      if (this.#dirty.delete(key)) this.#pending.add(key);
      else if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    }
    if (this.#running.size === 0 && this.#stopped) {
      for (const resolve of this.#idle.splice(0)) resolve();
    }
    this.#pump();
  }
}
