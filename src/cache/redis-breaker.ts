// A circuit breaker for the Redis tier: once Redis lets an operation run past its deadline, every operation fails at
// once (the request goes on to storage without waiting) until a probe answers in time again.
import type { Logger } from 'pino';
import { CacheTimeoutError } from './cache.js';

export interface BreakerOptions {
  /** A cheap round trip (PING) that must answer within its own deadline for the breaker to close. */
  readonly probe: () => Promise<unknown>;
  /** Time between probes while open. */
  readonly probeInterval: number;
  /** Runs when the breaker closes again. */
  readonly onClose?: () => void;
  readonly log: Logger;
}

export class Breaker {
  readonly #options: BreakerOptions;
  #open = false;
  #stopped = false;

  constructor(options: BreakerOptions) {
    this.#options = options;
  }

  /** Whether operations are refused now. */
  get open(): boolean {
    return this.#open;
  }

  /** Passes `operation` through; its timeout opens the breaker, so the next operations do not wait for Redis too. */
  async guard<T>(operation: Promise<T>): Promise<T> {
    try {
      return await operation;
    } catch (err) {
      if (err instanceof CacheTimeoutError && !this.#open && !this.#stopped) {
        this.#open = true;
        this.#options.log.warn({ err: err.message }, 'redis is not answering in time; bypassing it until it does');
        void this.#probe();
      }
      throw err;
    }
  }

  async #probe(): Promise<void> {
    while (this.#open && !this.#stopped) {
      await new Promise((r) => setTimeout(r, this.#options.probeInterval).unref());
      try {
        await this.#options.probe();
        this.#open = false;
        this.#options.log.info('redis answers in time again');
        this.#options.onClose?.();
      } catch {
        // Still hung or down; probe again.
      }
    }
  }

  /** Stops probing for good. */
  stop(): void {
    this.#stopped = true;
  }
}
