// The Redis tier of the descriptor cache, shared by every replica, with CNCF Distribution's key layout so an
// operator reads it the same way:
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
import { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { type Digest } from '../oci/digest.js';
import { OCTET_STREAM, type BlobDescriptor } from '../storage/blobs.js';
import { RateLimitedLog } from './cached-statter.js';
import {
  validateDescriptor,
  withDeadline,
  type DescriptorTier,
  type Invalidation,
  type Lookup,
  type Scope,
} from './cache.js';
import { Breaker } from './redis-breaker.js';
import { closeClient, type RedisClient } from './redis-client.js';
import { coalesceWrites } from './redis-coalesce.js';
import { InvalidationReplay } from './redis-replay.js';

const INVALIDATED_TTL_MS = 3_600_000;
/** Failed invalidations kept for replay; beyond this the whole cache is flushed when Redis is back. */
const MAX_PENDING = 10_000;
const RETRY_INTERVAL_MS = 1_000;
const PROBE_INTERVAL_MS = 200;

function token(): string {
  return randomBytes(9).toString('base64url');
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

export class RedisTier implements DescriptorTier {
  readonly name = 'redis' as const;
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #readTimeout: number;
  readonly #writeTimeout: number;
  readonly #log: Logger;
  readonly #warn: RateLimitedLog;
  readonly #broadcast: ((invalidation: Invalidation) => Promise<void>) | undefined;
  /** Open when Redis let an operation time out: it is bypassed (no waiting) until a probe PING answers in time. */
  readonly #breaker: Breaker;
  /** Invalidations that did not reach Redis. */
  readonly #replay: InvalidationReplay;
  #closed = false;
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
    this.#breaker = new Breaker({
      probe: () => withDeadline(this.#client.ping(), this.#readTimeout, 'redis ping'),
      probeInterval: PROBE_INTERVAL_MS,
      onClose: () => void this.#replay.replay(),
      log: options.log,
    });
    this.#replay = new InvalidationReplay({
      apply: async (invalidation) => {
        // A flush walks every key: no single deadline fits it.
        const applied = this.#applyInRedis(invalidation);
        await (invalidation.kind === 'all'
          ? applied
          : withDeadline(applied, this.#writeTimeout, 'redis invalidation replay'));
        await this.#broadcast?.(invalidation);
      },
      ready: () => !this.#closed && !this.#breaker.open && this.#client.status === 'ready',
      maxPending: options.maxPending ?? MAX_PENDING,
      retryInterval: RETRY_INTERVAL_MS,
      log: options.log,
    });
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
      void this.#replay.replay();
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
    return this.#replay.pending;
  }

  async lookup(scope: Scope, digest: Digest): Promise<Lookup> {
    if (this.#closed) throw new Error('the redis cache is closed');
    if (this.#breaker.open) throw new Error('redis is not answering in time; bypassed');
    if (this.#replay.has(scope, digest)) throw new Error('an invalidation of this digest has not reached redis yet');
    return this.#breaker.guard(withDeadline(this.#lookup(scope, digest), this.#readTimeout, 'redis lookup'));
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
      if (this.#breaker.open) throw new Error('redis is not answering in time; bypassed');
      await this.#breaker.guard(
        withDeadline(this.#write(scope, digest, descriptor, seen, generation), this.#writeTimeout, 'redis fill'),
      );
    } catch (err) {
      // The writes may have landed without the check that an invalidation did not race them: drop them later.
      this.#replay.remember({ kind: 'one', scope, digest });
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
      if (this.#breaker.open) throw new Error('redis is not answering in time; kept for later');
      await this.#breaker.guard(
        withDeadline(this.#applyInRedis(invalidation), this.#writeTimeout, 'redis invalidation'),
      );
      // Bounded by the broadcaster itself; a slow replica is not a slow Redis, so it does not trip the breaker.
      await this.#broadcast?.(invalidation);
    } catch (err) {
      this.#replay.remember(invalidation);
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

  async check(): Promise<string | undefined> {
    if (this.#closed) return 'redis: closed';
    if (this.#client.status !== 'ready') return `redis: ${this.#client.status}`;
    if (this.#breaker.open) return `redis: not answering within ${this.#readTimeout}ms`;
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
    this.#breaker.stop();
    this.#replay.stop();
    await closeClient(this.#client);
  }
}
