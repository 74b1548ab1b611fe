// The Redis tier, shared by every replica, with CNCF Distribution's key layout so an operator reads it the same way:
//
//   <prefix>blobs::<digest>                       hash  digest, size, mediatype (+ generation, Berth's)
//   <prefix>repository::<name>::blobs             set   digests linked into the repository
//   <prefix>repository::<name>::blobs::<digest>   hash  mediatype for the repository (+ digest, generation)
//   <prefix>blobs::<digest>::invalidated          string, set by every invalidation of the digest (expires in 1h)
//
// Every command touches one key, so the layout works unchanged on Redis Cluster. Two rules keep it never stale:
// - A fill reads the digest's `invalidated` token with its lookup, writes, then reads the token again and undoes its
//   writes if an invalidation came in between. An invalidation sets the token before it deletes, so either the
//   filler sees the new token or the delete comes after the fill.
// - A repository entry counts only while its `generation` equals the global hash's: dropping the global hash (the
//   blob left the registry) retires every repository's entry at once without knowing which repositories held it.
//
// Redis failures reject (the cached statter then serves from storage); an invalidation that could not reach Redis is
// kept and replayed when Redis is back, and until then this replica does not trust Redis for that digest.
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisConfig } from '../config/redis.js';
import { parseDigest, type Digest } from '../oci/digest.js';
import { OCTET_STREAM, type BlobDescriptor } from '../storage/blobs.js';
import { RateLimitedLog } from './cached-statter.js';
import {
  CacheTimeoutError,
  validateDescriptor,
  withDeadline,
  type DescriptorTier,
  type Lookup,
  type Scope,
} from './cache.js';

export type RedisClient = Redis | Cluster;

/** What an invalidation dropped: one digest in one scope, or (after too many failed ones) everything. */
export type Invalidation =
  { readonly kind: 'one'; readonly scope: Scope; readonly digest: Digest } | { readonly kind: 'all' };

const INVALIDATED_TTL_MS = 3_600_000;
/** Failed invalidations kept for replay; beyond this the whole cache is flushed when Redis is back. */
const MAX_PENDING = 10_000;
const RETRY_INTERVAL_MS = 1_000;
const PROBE_INTERVAL_MS = 200;

function token(): string {
  return randomBytes(9).toString('base64url');
}

function hostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

/** Reconnect delays: 50ms doubling to 2s, with jitter so replicas don't reconnect in step. */
export function reconnectDelay(attempt: number): number {
  return Math.min(50 * 2 ** Math.min(attempt, 6), 2_000) + Math.floor(Math.random() * 100);
}

/** The topology the config describes, as go-redis's UniversalClient (Distribution 3's) decides it. */
export function redisTopology(config: RedisConfig): 'sentinel' | 'cluster' | 'single' {
  if (config.mastername !== undefined) return 'sentinel';
  if (config.cluster || config.addrs.length > 1) return 'cluster';
  return 'single';
}

async function tlsOptions(config: RedisConfig): Promise<ConnectionOptions | undefined> {
  const tls = config.tls;
  if (!tls.enabled) return undefined;
  const [cert, key, cas] = await Promise.all([
    tls.certificate === undefined ? undefined : readFile(tls.certificate),
    tls.key === undefined ? undefined : readFile(tls.key),
    Promise.all(tls.clientcas.map((file) => readFile(file))),
  ]);
  return {
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    // `clientcas` are the authorities that sign the Redis server's certificate; without them, the system's.
    ...(cas.length === 0 ? {} : { ca: cas }),
    rejectUnauthorized: !tls.insecureskipverify,
  };
}

export type ConnectionRole = 'commands' | 'subscriber';

/**
 * A client for the configured topology, not yet connected (call connectWithin). The command connection fails fast:
 * no offline queue and no retries, so a Redis outage costs a request nothing; the subscriber connection queues its
 * SUBSCRIBE until connected. Both reconnect with backoff for ever. `pool` settings do not apply: ioredis multiplexes
 * every command over one connection per node.
 */
export async function createRedisClient(config: RedisConfig, role: ConnectionRole): Promise<RedisClient> {
  const tls = await tlsOptions(config);
  const commands = role === 'commands';
  const common: RedisOptions = {
    ...(config.username === undefined ? {} : { username: config.username }),
    ...(config.password === undefined ? {} : { password: config.password }),
    ...(tls === undefined ? {} : { tls }),
    connectTimeout: config.dialtimeout,
    // A backstop only: every operation of the tier has its own deadline (readtimeout or writetimeout), which must
    // fire first so that the breaker sees a CacheTimeoutError and bypasses Redis until it answers again.
    ...(commands ? { commandTimeout: 2 * Math.max(config.readtimeout, config.writetimeout) } : {}),
    maxRetriesPerRequest: commands ? 0 : null,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    // RESP2 works with every Redis (and Redis-compatible server) still in service.
    protocol: 2,
    connectionName: `berth-${role}`,
    lazyConnect: true,
  };
  const topology = redisTopology(config);
  if (topology === 'cluster') {
    const options: ClusterOptions = {
      redisOptions: common,
      enableOfflineQueue: !commands,
      enableAutoPipelining: commands,
      clusterRetryStrategy: reconnectDelay,
      slotsRefreshTimeout: config.dialtimeout,
      lazyConnect: true,
    };
    return new Cluster(config.addrs.map(hostPort), options);
  }
  const options: RedisOptions = {
    ...common,
    db: config.db,
    enableOfflineQueue: !commands,
    // Off: a lookup here is one EVALSHA, and auto-pipelining's per-command bookkeeping costs about what its fewer
    // writes save (alternating runs of HEAD with Redis at 32 connections: 9.7–15.4k req/s and p99 9–12 ms without
    // it, 10.1–11.8k and 13–15 ms with it). A Cluster keeps it (above): its lookups are four commands.
    enableAutoPipelining: false,
    retryStrategy: reconnectDelay,
  };
  if (topology === 'sentinel') {
    return new Redis({
      ...options,
      sentinels: config.addrs.map(hostPort),
      name: config.mastername,
      sentinelRetryStrategy: reconnectDelay,
      ...(tls === undefined ? {} : { enableTLSForSentinelMode: true, sentinelTLS: tls }),
    });
  }
  return new Redis({ ...options, ...hostPort(config.addrs[0] ?? '127.0.0.1:6379') });
}

/** Starts connecting and waits for readiness at most `ms`; a client that is not ready keeps trying in the background. */
export async function connectWithin(client: RedisClient, ms: number): Promise<boolean> {
  const connecting = client.connect().then(
    () => true,
    () => false,
  );
  const ready = await Promise.race([connecting, new Promise<false>((r) => setTimeout(() => r(false), ms).unref())]);
  return ready && client.status === 'ready';
}

function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

export interface RedisTierOptions {
  readonly client: RedisClient;
  readonly prefix: string;
  /** Bound on a lookup. */
  readonly readTimeout: number;
  /** Bound on a fill and on an invalidation. */
  readonly writeTimeout: number;
  readonly log: Logger;
  /** Runs once an invalidation is applied in Redis (two-tier tells every replica); a rejection makes it retried. */
  readonly broadcast?: (invalidation: Invalidation) => Promise<void>;
  /** Failed invalidations kept for replay; beyond this the whole cache is flushed instead. */
  readonly maxPending?: number;
}

const GLOBAL_FIELDS = ['digest', 'size', 'mediatype', 'generation'] as const;

/**
 * A repository-scoped lookup's four reads as one server-side script, so a HEAD costs one command instead of four
 * (one reply to decode, one timer). Only where all keys live on one node: not on a Cluster, whose slots differ.
 * It has no flags line (Redis 7's `#!lua flags=…`, a syntax error before 7.0): a script without one is refused on
 * a full Redis or a read-only replica only when it writes, and this one only reads.
 */
const SCOPED_LOOKUP = `local g = redis.call('HMGET', KEYS[2], 'digest', 'size', 'mediatype', 'generation')
local s = redis.call('HMGET', KEYS[3], 'mediatype', 'generation')
return {redis.call('SISMEMBER', KEYS[1], ARGV[1]), g[1], g[2], g[3], g[4], s[1], s[2], redis.call('GET', KEYS[4])}`;
const SCOPED_LOOKUP_SHA = createHash('sha1').update(SCOPED_LOOKUP).digest('hex');

/** The reads of a repository-scoped lookup. */
interface ScopedReads {
  readonly member: number;
  readonly fields: ReadonlyArray<string | null>;
  readonly scoped: ReadonlyArray<string | null>;
  readonly seen: string | null;
}

function scriptReply(reply: unknown): ScopedReads {
  const text = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  if (!Array.isArray(reply) || reply.length !== 8 || typeof reply[0] !== 'number')
    throw new Error('the lookup script gave an unexpected reply');
  const values: unknown[] = reply;
  return {
    member: reply[0],
    fields: values.slice(1, 5).map(text),
    scoped: values.slice(5, 7).map(text),
    seen: text(values[7]),
  };
}

/**
 * Gathers the commands a client sends while one turn of the event loop runs into one write. The HEADs of many
 * connections arrive together and each sends its lookup (a fill sends several commands); written one by one, each
 * write also pays for waking redis-server: on loopback and two shared cores about 30 µs of CPU, a third of what a
 * whole HEAD costs. So the socket is corked at a turn's first command and uncorked once the turn's I/O callbacks
 * are done (setImmediate): Redis reads them at once and answers in one write. Only once the client is ready, so the
 * connection's own handshake is untouched. A Cluster client needs none of this: it pipelines by itself.
 */
export function coalesceWrites(client: Redis): void {
  let corked = false;
  const send = client.sendCommand.bind(client);
  client.sendCommand = (command, stream) => {
    if (!corked && stream === undefined && client.status === 'ready') {
      const socket = client.stream;
      socket.cork();
      corked = true;
      setImmediate(() => {
        corked = false;
        socket.uncork();
      });
    }
    return send(command, stream);
  };
}

export class RedisTier implements DescriptorTier {
  readonly name = 'redis' as const;
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #readTimeout: number;
  readonly #writeTimeout: number;
  readonly #log: Logger;
  readonly #warn: RateLimitedLog;
  readonly #broadcast: ((invalidation: Invalidation) => Promise<void>) | undefined;
  readonly #maxPending: number;
  /** Invalidations that did not reach Redis, by scope and digest. */
  readonly #pending = new Map<string, Invalidation>();
  #flushAll = false;
  #replaying: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Set when Redis let an operation time out: it is bypassed (no waiting) until a probe PING answers in time. */
  #tripped = false;
  /** Whether scoped lookups run as one script: not on a Cluster, nor after a server refused scripts. */
  #scripted: boolean;

  constructor(options: RedisTierOptions) {
    this.#client = options.client;
    this.#prefix = options.prefix;
    this.#readTimeout = options.readTimeout;
    this.#writeTimeout = options.writeTimeout;
    this.#log = options.log;
    this.#warn = new RateLimitedLog(options.log);
    this.#broadcast = options.broadcast;
    this.#maxPending = options.maxPending ?? MAX_PENDING;
    this.#scripted = !(options.client instanceof Cluster);
    if (options.client instanceof Redis) coalesceWrites(options.client);
    this.#client.on('error', (err: unknown) => {
      this.#warn.warn(
        'connection',
        { err: err instanceof Error ? err.message : String(err) },
        'redis connection error',
      );
    });
    this.#client.on('ready', () => {
      this.#log.info('redis ready');
      void this.#replay();
    });
  }

  /** Key names, exactly as Distribution writes them (behind the configured prefix). */
  readonly keys = {
    blob: (digest: string): string => `${this.#prefix}blobs::${digest}`,
    invalidated: (digest: string): string => `${this.#prefix}blobs::${digest}::invalidated`,
    repositoryBlobs: (repository: string): string => `${this.#prefix}repository::${repository}::blobs`,
    repositoryBlob: (repository: string, digest: string): string =>
      `${this.#prefix}repository::${repository}::blobs::${digest}`,
  };

  /** How many invalidations wait for Redis to come back. */
  get pendingInvalidations(): number {
    return this.#flushAll ? Number.POSITIVE_INFINITY : this.#pending.size;
  }

  async lookup(scope: Scope, digest: Digest): Promise<Lookup> {
    if (this.#closed) throw new Error('the redis cache is closed');
    if (this.#tripped) throw new Error('redis is not answering in time; bypassed');
    if (this.#isPending(scope, digest)) throw new Error('an invalidation of this digest has not reached redis yet');
    return this.#guard(withDeadline(this.#lookup(scope, digest), this.#readTimeout, 'redis lookup'));
  }

  /** Passes `operation` through; a timeout trips the breaker, so the next requests do not wait for Redis too. */
  async #guard<T>(operation: Promise<T>): Promise<T> {
    try {
      return await operation;
    } catch (err) {
      if (err instanceof CacheTimeoutError && !this.#tripped && !this.#closed) {
        this.#tripped = true;
        this.#log.warn({ err: err.message }, 'redis is not answering in time; bypassing it until it does');
        void this.#probe();
      }
      throw err;
    }
  }

  async #probe(): Promise<void> {
    while (this.#tripped && !this.#closed) {
      await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS).unref());
      try {
        await withDeadline(this.#client.ping(), this.#readTimeout, 'redis ping');
        this.#tripped = false;
        this.#log.info('redis answers in time again');
        void this.#replay();
      } catch {
        // Still hung or down; probe again.
      }
    }
  }

  async #lookup(scope: Scope, digest: Digest): Promise<Lookup> {
    const c = this.#client;
    const d = digest.value;
    if (scope === undefined) {
      const [fields, seen] = await Promise.all([
        c.hmget(this.keys.blob(d), ...GLOBAL_FIELDS),
        c.get(this.keys.invalidated(d)),
      ]);
      const found = this.#parse(fields, digest);
      if (found !== undefined) return { hit: true, descriptor: found };
      return { hit: false, fill: (descriptor) => this.#fill(undefined, digest, descriptor, seen, undefined) };
    }
    const { member, fields, scoped, seen } = await this.#scopedReads(scope, d);
    const found = this.#parse(fields, digest);
    const generation = fields[3] ?? undefined;
    if (member === 1 && found !== undefined && generation !== undefined && scoped[1] === generation) {
      const mediaType = scoped[0];
      return { hit: true, descriptor: mediaType ? { ...found, mediaType } : found };
    }
    return {
      hit: false,
      fill: (descriptor) => this.#fill(scope, digest, descriptor, seen, found === undefined ? undefined : generation),
    };
  }

  async #scopedReads(scope: string, d: string): Promise<ScopedReads> {
    const c = this.#client;
    const keys = [
      this.keys.repositoryBlobs(scope),
      this.keys.blob(d),
      this.keys.repositoryBlob(scope, d),
      this.keys.invalidated(d),
    ] as const;
    if (this.#scripted) {
      try {
        return scriptReply(await c.evalsha(SCOPED_LOOKUP_SHA, keys.length, ...keys, d));
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        // Not loaded yet (or flushed by SCRIPT FLUSH, or a restart): EVAL loads it for the next EVALSHA.
        if (message.startsWith('NOSCRIPT')) return scriptReply(await c.eval(SCOPED_LOOKUP, keys.length, ...keys, d));
        // A server or proxy without scripting (or an ACL without EVAL): the commands one by one from now on.
        if (!/^(ERR unknown command|NOPERM|ERR .*script)/i.test(message)) throw err;
        this.#scripted = false;
        this.#log.warn({ err: message }, 'redis refuses the lookup script; using one command per read');
      }
    }
    const [member, fields, scoped, seen] = await Promise.all([
      c.sismember(keys[0], d),
      c.hmget(keys[1], ...GLOBAL_FIELDS),
      c.hmget(keys[2], 'mediatype', 'generation'),
      c.get(keys[3]),
    ]);
    return { member, fields, scoped, seen };
  }

  /** A valid descriptor from a global hash's fields, or undefined (absent, partial or corrupt: a miss). */
  #parse(fields: ReadonlyArray<string | null>, digest: Digest): BlobDescriptor | undefined {
    const [value, size, mediaType] = fields;
    if (value !== digest.value || size === null || size === undefined || !/^\d{1,16}$/.test(size)) return undefined;
    const descriptor = { digest, size: Number(size), mediaType: mediaType || OCTET_STREAM };
    return validateDescriptor(descriptor, digest) === undefined ? descriptor : undefined;
  }

  async #fill(
    scope: Scope,
    digest: Digest,
    descriptor: BlobDescriptor,
    seen: string | null,
    generation: string | undefined,
  ): Promise<void> {
    if (this.#closed || validateDescriptor(descriptor, digest) !== undefined) return;
    try {
      if (this.#tripped) throw new Error('redis is not answering in time; bypassed');
      await this.#guard(
        withDeadline(this.#write(scope, digest, descriptor, seen, generation), this.#writeTimeout, 'redis fill'),
      );
    } catch (err) {
      // The writes may have landed without the check that an invalidation did not race them: drop them later.
      this.#remember({ kind: 'one', scope, digest });
      throw err;
    }
  }

  async #write(
    scope: Scope,
    digest: Digest,
    descriptor: BlobDescriptor,
    seen: string | null,
    generation: string | undefined,
  ): Promise<void> {
    const c = this.#client;
    const d = digest.value;
    const blob = this.keys.blob(d);
    const global: Array<Promise<unknown>> = [
      c.hset(blob, { digest: d, size: String(descriptor.size) }),
      c.hsetnx(blob, 'mediatype', descriptor.mediaType),
      c.hsetnx(blob, 'generation', generation ?? token()),
    ];
    if (scope !== undefined) {
      let gen = generation;
      const scoped = [c.sadd(this.keys.repositoryBlobs(scope), d)];
      if (gen === undefined) {
        // No global entry at lookup time: another fill may be creating one now; take whichever generation won.
        const [, current] = await Promise.all([Promise.all([...global, ...scoped]), c.hget(blob, 'generation')]);
        gen = current ?? token();
      } else {
        global.push(...scoped);
      }
      global.push(
        c.hset(this.keys.repositoryBlob(scope, d), { digest: d, mediatype: descriptor.mediaType, generation: gen }),
      );
    }
    await Promise.all(global);
    if ((await c.get(this.keys.invalidated(d))) === seen) return;
    // An invalidation came in between: what we wrote may be what it meant to drop.
    const undo: Array<Promise<unknown>> = [c.del(blob)];
    if (scope !== undefined)
      undo.push(c.srem(this.keys.repositoryBlobs(scope), d), c.del(this.keys.repositoryBlob(scope, d)));
    await Promise.all(undo);
  }

  async invalidate(scope: Scope, digest: Digest): Promise<void> {
    if (this.#closed) throw new Error('the redis cache is closed');
    const invalidation: Invalidation = { kind: 'one', scope, digest };
    try {
      if (this.#tripped) throw new Error('redis is not answering in time; kept for later');
      await this.#guard(withDeadline(this.#applyInRedis(invalidation), this.#writeTimeout, 'redis invalidation'));
      // Bounded by the broadcaster itself; a slow replica is not a slow Redis, so it does not trip the breaker.
      await this.#broadcast?.(invalidation);
    } catch (err) {
      this.#remember(invalidation);
      throw err;
    }
  }

  async #applyInRedis(invalidation: Invalidation): Promise<void> {
    const c = this.#client;
    if (invalidation.kind === 'all') {
      await this.#flush();
    } else {
      const { scope, digest } = invalidation;
      const d = digest.value;
      // The token first: a fill that read the old one will see the change and undo itself.
      await c.set(this.keys.invalidated(d), token(), 'PX', INVALIDATED_TTL_MS);
      if (scope === undefined) await c.del(this.keys.blob(d));
      else await Promise.all([c.srem(this.keys.repositoryBlobs(scope), d), c.del(this.keys.repositoryBlob(scope, d))]);
    }
  }

  /** Deletes every key of this cache (behind its prefix), node by node on a Cluster. */
  async #flush(): Promise<void> {
    const c = this.#client;
    const nodes: Redis[] = c instanceof Cluster ? c.nodes('master') : [c];
    for (const node of nodes) {
      for (const match of [`${globEscape(this.#prefix)}blobs::*`, `${globEscape(this.#prefix)}repository::*`]) {
        let cursor = '0';
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', 500);
          cursor = next;
          // One key per command: keys of different slots cannot share a command on a Cluster node.
          // Invalidation markers stay: fills in flight still compare against them.
          await Promise.all(keys.filter((k) => !k.endsWith('::invalidated')).map((k) => node.unlink(k)));
        } while (cursor !== '0');
      }
    }
  }

  #pendingKey(scope: Scope, digest: string): string {
    return `${scope ?? ''}\u0000${digest}`;
  }

  #isPending(scope: Scope, digest: Digest): boolean {
    if (this.#flushAll) return true;
    if (this.#pending.size === 0) return false;
    return (
      this.#pending.has(this.#pendingKey(undefined, digest.value)) ||
      this.#pending.has(this.#pendingKey(scope, digest.value))
    );
  }

  #remember(invalidation: Invalidation): void {
    if (this.#closed) return;
    if (invalidation.kind === 'all' || this.#pending.size >= this.#maxPending) {
      this.#flushAll = true;
      this.#pending.clear();
    } else if (!this.#flushAll) {
      this.#pending.set(this.#pendingKey(invalidation.scope, invalidation.digest.value), invalidation);
    }
    this.#retryTimer ??= setInterval(() => void this.#replay(), RETRY_INTERVAL_MS).unref();
  }

  /** Applies the invalidations that failed, oldest first; stops at the first failure and tries again later. */
  #replay(): Promise<void> {
    if (this.#replaying !== undefined) return this.#replaying;
    if (!this.#flushAll && this.#pending.size === 0) return Promise.resolve();
    this.#replaying = (async () => {
      // Not before the assignment above: the finally below must find it set.
      await Promise.resolve();
      try {
        while (
          !this.#closed &&
          !this.#tripped &&
          (this.#flushAll || this.#pending.size > 0) &&
          this.#client.status === 'ready'
        ) {
          if (this.#flushAll) {
            await this.#applyInRedis({ kind: 'all' });
            await this.#broadcast?.({ kind: 'all' });
            this.#flushAll = false;
            this.#log.info('flushed the redis descriptor cache after invalidations were lost');
            continue;
          }
          const [key, next] = this.#pending.entries().next().value ?? [];
          if (key === undefined || next === undefined) break;
          await withDeadline(this.#applyInRedis(next), this.#writeTimeout, 'redis invalidation replay');
          await this.#broadcast?.(next);
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

  async check(): Promise<string | undefined> {
    if (this.#closed) return 'redis: closed';
    if (this.#client.status !== 'ready') return `redis: ${this.#client.status}`;
    if (this.#tripped) return `redis: not answering within ${this.#readTimeout}ms`;
    try {
      await withDeadline(this.#client.ping(), Math.max(this.#readTimeout, 1_000), 'redis ping');
    } catch (err) {
      return `redis: ${err instanceof Error ? err.message : String(err)}`;
    }
    const waiting = this.pendingInvalidations;
    if (waiting > 0)
      return `redis: ${waiting === Number.POSITIVE_INFINITY ? 'a flush' : `${waiting} invalidations`} waiting to be applied`;
    return undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retryTimer !== undefined) clearInterval(this.#retryTimer);
    await closeClient(this.#client);
  }
}

/** QUIT, or (when Redis does not answer soon) drop the connection. */
export async function closeClient(client: RedisClient): Promise<void> {
  if (client.status === 'end') return;
  try {
    await withDeadline(client.quit(), 1_000, 'redis quit');
  } catch {
    // Unreachable or slow: disconnecting is all that is left.
  }
  client.disconnect();
}

/** The digest of a pub/sub message or a key, or undefined when it is not one. */
export function digestOrUndefined(text: unknown): Digest | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    return parseDigest(text);
  } catch {
    return undefined;
  }
}
