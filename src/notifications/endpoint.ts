// One webhook endpoint: a bounded queue of events and one sender that posts them in envelopes, retrying a failed
// delivery with backoff. Requests only ever enqueue; when the queue is full, new events are dropped and counted.
import type { Logger } from 'pino';
import type { EndpointConfig } from '../config/notifications.js';
import { EVENTS_MEDIA_TYPE, type RegistryEvent } from './events.js';
import type { NotificationMetrics } from './metrics.js';

export interface EndpointOptions {
  /** Events kept waiting at most; past it, new ones are dropped. */
  readonly queueSize?: number;
  /** Events sent in one envelope at most. */
  readonly batchSize?: number;
  /** Waits between attempts below the threshold (ms); tests shorten it. */
  readonly retryDelayMs?: number;
}

const QUEUE_SIZE = 10_000;
const BATCH_SIZE = 100;
const RETRY_DELAY_MS = 100;

export class Endpoint {
  readonly name: string;
  readonly #config: EndpointConfig;
  readonly #metrics: NotificationMetrics;
  readonly #log: Logger;
  readonly #queueSize: number;
  readonly #batchSize: number;
  readonly #retryDelayMs: number;
  readonly #headers: Record<string, string>;
  readonly #ignoredTypes: ReadonlySet<string>;
  readonly #ignoredActions: ReadonlySet<string>;
  readonly #queue: RegistryEvent[] = [];
  /** Wakes the sender when it waits for events. */
  #wake: (() => void) | undefined;
  /** Cancels the sender's wait between attempts and its request in flight. */
  readonly #stop = new AbortController();
  readonly #sender: Promise<void>;
  #failures = 0;
  #lastWarned = 0;

  constructor(config: EndpointConfig, metrics: NotificationMetrics, log: Logger, options: EndpointOptions = {}) {
    this.name = config.name;
    this.#config = config;
    this.#metrics = metrics;
    this.#log = log.child({ endpoint: config.name });
    this.#queueSize = options.queueSize ?? QUEUE_SIZE;
    this.#batchSize = options.batchSize ?? BATCH_SIZE;
    this.#retryDelayMs = options.retryDelayMs ?? RETRY_DELAY_MS;
    this.#headers = Object.fromEntries(
      Object.entries(config.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : v]),
    );
    this.#ignoredTypes = new Set([...config.ignoredmediatypes, ...config.ignore.mediatypes]);
    this.#ignoredActions = new Set(config.ignore.actions);
    // Every series exists from the start, at 0: a dashboard shows "none dropped", not "no data".
    const labels = { endpoint: this.name };
    for (const counter of [metrics.events, metrics.sent, metrics.failed, metrics.dropped]) counter.inc(labels, 0);
    this.#metrics.queue.set(labels, 0);
    this.#sender = this.#send();
  }

  /** Queues an event for this endpoint unless its filters leave it out; drops it when the queue is full. */
  offer(event: RegistryEvent): void {
    if (this.#ignoredActions.has(event.action) || this.#ignoredTypes.has(event.target.mediaType)) return;
    const labels = { endpoint: this.name };
    this.#metrics.events.inc(labels);
    if (this.#stop.signal.aborted || this.#queue.length >= this.#queueSize) {
      this.#metrics.dropped.inc(labels);
      return;
    }
    this.#queue.push(event);
    this.#metrics.queue.set(labels, this.#queue.length);
    this.#wake?.();
  }

  /** Events waiting. */
  get pending(): number {
    return this.#queue.length;
  }

  async #send(): Promise<void> {
    const labels = { endpoint: this.name };
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      if (this.#queue.length === 0) {
        await this.#pause(undefined);
        continue;
      }
      const batch = this.#queue.slice(0, this.#batchSize);
      const problem = await this.#post(batch);
      if (problem === undefined) {
        this.#queue.splice(0, batch.length);
        this.#metrics.sent.inc(labels, batch.length);
        this.#metrics.queue.set(labels, this.#queue.length);
        if (this.#failures > 0) this.#log.info({ after: this.#failures }, 'notification endpoint reachable again');
        this.#failures = 0;
        continue;
      }
      if (signal.aborted) return;
      this.#failures++;
      this.#metrics.failed.inc(labels, batch.length);
      this.#warn(problem);
      // Distribution's retrying sink: quick retries, then `backoff` between attempts once `threshold` failed in a row.
      const wait =
        this.#failures >= this.#config.threshold ? this.#config.backoff : this.#retryDelayMs * this.#failures;
      await this.#pause(wait);
    }
  }

  /** Waits `ms` (undefined: until an event is queued), or until the endpoint is stopped. */
  #pause(ms: number | undefined): Promise<void> {
    const signal = this.#stop.signal;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.#wake = undefined;
        resolve();
      };
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      if (ms === undefined) this.#wake = done;
      signal.addEventListener('abort', done);
    });
  }

  /** Posts one envelope; undefined when the endpoint took it (2xx or 3xx, as Distribution counts), else why not. */
  async #post(batch: readonly RegistryEvent[]): Promise<string | undefined> {
    try {
      const res = await fetch(this.#config.url, {
        method: 'POST',
        headers: { ...this.#headers, 'Content-Type': EVENTS_MEDIA_TYPE },
        body: JSON.stringify({ events: batch }),
        redirect: 'manual',
        signal: AbortSignal.any([this.#stop.signal, AbortSignal.timeout(this.#config.timeout)]),
      });
      await res.body?.cancel();
      return res.status >= 200 && res.status < 400 ? undefined : `status ${res.status}`;
    } catch (err) {
      const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
      return `${err instanceof Error ? err.message : String(err)}${cause}`;
    }
  }

  #warn(problem: string): void {
    const now = Date.now();
    if (now - this.#lastWarned < 10_000) return;
    this.#lastWarned = now;
    this.#log.warn(
      { failures: this.#failures, pending: this.#queue.length, problem },
      'notification delivery failed; retrying',
    );
  }

  /**
   * Gives the queue until `graceMs` to drain, then stops the sender; what is left is dropped and counted.
   * Never throws.
   */
  async close(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (this.#queue.length > 0 && this.#failures === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    this.#stop.abort();
    await this.#sender.catch(() => undefined);
    if (this.#queue.length > 0) {
      this.#metrics.dropped.inc({ endpoint: this.name }, this.#queue.length);
      this.#log.warn({ dropped: this.#queue.length }, 'notifications still queued at shutdown were dropped');
      this.#queue.length = 0;
      this.#metrics.queue.set({ endpoint: this.name }, 0);
    }
  }
}
