// Two tiers: each replica's in-process LRU in front of the shared Redis. An invalidation is applied in Redis, then
// published; every replica (the publisher too) drops the entry from its LRU and acknowledges, and the publisher waits
// for as many acknowledgements as Redis counted receivers (bounded by the write timeout), so once a delete returns no
// replica answers from its LRU for that blob. A replica trusts its LRU only while subscribed: losing the subscription
// clears the LRU, and until the subscription is back lookups go to Redis (or storage).
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { digestOrUndefined, type Digest } from '../oci/digest.js';
import { RateLimitedLog } from './cached-statter.js';
import { withDeadline, type DescriptorTier, type Invalidation, type Lookup, type Scope } from './cache.js';
import { MemoryTier } from './memory.js';
import { closeClient, type RedisClient } from './redis-client.js';

interface Wire {
  readonly id: string;
  /** `i`: one digest in one scope (`s` null for the global store); `f`: everything. */
  readonly t: 'i' | 'f';
  readonly s?: string | null;
  readonly d?: string;
}

export interface BusListener {
  /** An invalidation from some replica (this one included). */
  invalidate(scope: Scope, digest: Digest): void;
  /** Everything is to be dropped. */
  flush(): void;
  /** The subscription was lost or regained; whatever was learned meanwhile is unknown. */
  subscriptionChanged(subscribed: boolean): void;
}

export interface InvalidationBusOptions {
  /** A dedicated connection (not yet connected); the bus owns it. */
  readonly subscriber: RedisClient;
  /** The connection for PUBLISH (the command connection, unless `ownsPublisher`). */
  readonly publisher: RedisClient;
  /** The bus connects and closes the publisher itself (a connection of its own, not shared). */
  readonly ownsPublisher?: boolean;
  readonly channel: string;
  /** How long a publisher waits for acknowledgements. */
  readonly ackTimeout: number;
  readonly log: Logger;
  /**
   * How often the subscription is probed with PING (answer due within the ack timeout), so a dead or hung connection
   * is noticed within about this long: meanwhile no replica can publish, and the LRU is not to be trusted.
   */
  readonly heartbeatMs?: number;
}

/** Invalidation messages between replicas over Redis pub/sub, acknowledged by every receiver. */
export class InvalidationBus {
  readonly #subscriber: RedisClient;
  readonly #publisher: RedisClient;
  readonly #ownsPublisher: boolean;
  readonly #channel: string;
  readonly #ackChannel: string;
  readonly #ackTimeout: number;
  readonly #log: Logger;
  readonly #warn: RateLimitedLog;
  readonly #listeners: BusListener[] = [];
  readonly #acks = new Map<string, { needed: number | undefined; got: number; done: () => void }>();
  readonly #heartbeat: NodeJS.Timeout;
  #subscribed = false;
  #closed = false;

  constructor(options: InvalidationBusOptions) {
    this.#subscriber = options.subscriber;
    this.#publisher = options.publisher;
    this.#ownsPublisher = options.ownsPublisher ?? false;
    if (this.#ownsPublisher) {
      this.#publisher.on('error', (err: unknown) => {
        this.#warn.warn(
          'publisher',
          { err: err instanceof Error ? err.message : String(err) },
          'redis publisher error',
        );
      });
    }
    this.#channel = options.channel;
    this.#ackChannel = `${options.channel}::acks`;
    this.#ackTimeout = options.ackTimeout;
    this.#log = options.log;
    this.#warn = new RateLimitedLog(options.log);
    const s = this.#subscriber;
    s.on('ready', () => void this.#subscribe());
    for (const event of ['close', 'end', 'reconnecting']) s.on(event, () => this.#setSubscribed(false));
    s.on('error', (err: unknown) => {
      this.#warn.warn(
        'subscriber',
        { err: err instanceof Error ? err.message : String(err) },
        'redis subscriber error',
      );
    });
    s.on('message', (channel: string, text: string) => this.#receive(channel, text));
    this.#heartbeat = setInterval(() => void this.#probe(), options.heartbeatMs ?? 1_000).unref();
  }

  get subscribed(): boolean {
    return this.#subscribed;
  }

  listen(listener: BusListener): void {
    this.#listeners.push(listener);
  }

  /** Connects and subscribes, waiting at most `ms`; keeps trying in the background after that. */
  async start(ms: number): Promise<boolean> {
    this.#subscriber.connect().catch(() => undefined);
    if (this.#ownsPublisher) this.#publisher.connect().catch(() => undefined);
    const deadline = Date.now() + ms;
    while (!this.#subscribed && !this.#closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return this.#subscribed;
  }

  async #subscribe(): Promise<void> {
    try {
      await this.#subscriber.subscribe(this.#channel, this.#ackChannel);
      this.#setSubscribed(true);
    } catch (err) {
      this.#warn.warn('subscribe', { err: err instanceof Error ? err.message : String(err) }, 'redis subscribe failed');
      this.#setSubscribed(false);
      if (!this.#closed) this.#subscriber.disconnect(true);
    }
  }

  #setSubscribed(subscribed: boolean): void {
    if (subscribed === this.#subscribed) return;
    this.#subscribed = subscribed;
    if (subscribed) this.#log.info({ channel: this.#channel }, 'subscribed to descriptor cache invalidations');
    else if (!this.#closed)
      this.#log.warn({ channel: this.#channel }, 'lost the descriptor cache invalidation channel');
    for (const l of this.#listeners) l.subscriptionChanged(subscribed);
  }

  async #probe(): Promise<void> {
    if (!this.#subscribed || this.#closed) return;
    try {
      await withDeadline(this.#subscriber.ping(), this.#ackTimeout, 'redis subscriber ping');
    } catch {
      // The connection may be dead without having said so; reconnecting resubscribes and clears the LRU.
      this.#setSubscribed(false);
      if (!this.#closed) this.#subscriber.disconnect(true);
    }
  }

  #receive(channel: string, text: string): void {
    if (channel === this.#ackChannel) {
      const entry = this.#acks.get(text);
      if (entry === undefined) return;
      entry.got++;
      if (entry.needed !== undefined && entry.got >= entry.needed) entry.done();
      return;
    }
    if (channel !== this.#channel) return;
    let wire: Wire;
    try {
      wire = JSON.parse(text) as Wire;
    } catch {
      this.#warn.warn('message', { text: text.slice(0, 200) }, 'ignored a malformed invalidation message');
      return;
    }
    if (wire.t === 'f') {
      for (const l of this.#listeners) l.flush();
    } else {
      const digest = digestOrUndefined(wire.d);
      const scope = typeof wire.s === 'string' ? wire.s : undefined;
      if (digest === undefined) {
        // Unreadable, so it may concern anything.
        for (const l of this.#listeners) l.flush();
      } else {
        for (const l of this.#listeners) l.invalidate(scope, digest);
      }
    }
    if (typeof wire.id === 'string') {
      this.#publisher.publish(this.#ackChannel, wire.id).catch((err: unknown) => {
        this.#warn.warn(
          'ack',
          { err: err instanceof Error ? err.message : String(err) },
          'could not acknowledge an invalidation',
        );
      });
    }
  }

  /** Publishes and waits until every subscriber Redis counted has acknowledged; rejects after the ack timeout. */
  async publish(invalidation: Invalidation): Promise<void> {
    const id = randomUUID();
    const wire: Wire =
      invalidation.kind === 'all'
        ? { id, t: 'f' }
        : { id, t: 'i', s: invalidation.scope ?? null, d: invalidation.digest.value };
    let done!: () => void;
    const acknowledged = new Promise<void>((resolve) => (done = resolve));
    const entry = { needed: undefined as number | undefined, got: 0, done };
    this.#acks.set(id, entry);
    try {
      const receivers = await this.#publisher.publish(this.#channel, JSON.stringify(wire));
      entry.needed = receivers;
      if (entry.got >= receivers) done();
      await withDeadline(acknowledged, this.#ackTimeout, `acknowledgement by ${receivers} replicas`);
    } finally {
      this.#acks.delete(id);
    }
  }

  async check(): Promise<string | undefined> {
    return this.#subscribed ? undefined : 'redis: not subscribed to invalidations';
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    this.#setSubscribed(false);
    await closeClient(this.#subscriber);
    if (this.#ownsPublisher) await closeClient(this.#publisher);
  }
}

/** The LRU of the two-tier cache: answers only while the replica hears every invalidation. */
export class CoherentMemoryTier implements DescriptorTier {
  readonly name = 'memory' as const;
  readonly #memory: MemoryTier;
  readonly #bus: InvalidationBus;

  constructor(memory: MemoryTier, bus: InvalidationBus) {
    this.#memory = memory;
    this.#bus = bus;
    bus.listen({
      invalidate: (scope, digest) => memory.invalidateNow(scope, digest),
      flush: () => memory.clear(),
      // Both ways: entries and fills from before a gap in the subscription may have missed an invalidation.
      subscriptionChanged: () => memory.clear(),
    });
  }

  async lookup(scope: Scope, digest: Digest): Promise<Lookup> {
    if (!this.#bus.subscribed) return MemoryTier.miss;
    return this.#memory.lookup(scope, digest);
  }

  async invalidate(scope: Scope, digest: Digest): Promise<void> {
    this.#memory.invalidateNow(scope, digest);
  }

  async check(): Promise<string | undefined> {
    return (await this.#memory.check()) ?? (await this.#bus.check());
  }

  async close(): Promise<void> {
    await this.#memory.close();
  }
}
