// The Redis-backed descriptor caches (Redis alone, or the two tiers), in a module of their own so that a registry
// without Redis never loads ioredis.
import type { Logger } from 'pino';
import type { RedisConfig } from '../config/redis.js';
import { TieredDescriptorCache, type DescriptorCache } from './tiered.js';
import { MemoryTier } from './memory.js';
import { instrumentTier, type CacheMetrics } from './metrics.js';
import { connectWithin, createRedisClient, redisTopology, type RedisClient } from './redis-client.js';
import { RedisTier } from './redis-tier.js';
import { CoherentMemoryTier, InvalidationBus } from './two-tier.js';

/** Where an `addrs` list points, for logs (never the password). */
function describe(config: RedisConfig): Record<string, unknown> {
  return {
    topology: redisTopology(config),
    addrs: config.addrs,
    db: config.db,
    prefix: config.prefix,
    tls: config.tls.enabled,
  };
}

/** Redis alone, or (with `twotier`) an in-process LRU of `size` entries in front of it, kept coherent over pub/sub. */
export async function createRedisCache(
  redis: RedisConfig,
  twotier: boolean,
  size: number,
  clog: Logger,
  m: CacheMetrics,
): Promise<DescriptorCache> {
  const client = await createRedisClient(redis, 'commands');
  const tierOptions = {
    client,
    prefix: redis.prefix,
    readTimeout: redis.readtimeout,
    writeTimeout: redis.writetimeout,
    log: clog,
  };
  if (!twotier) {
    // The tier listens for the client's errors before the first connection attempt can fail.
    const remote = new RedisTier(tierOptions);
    if (!(await connectWithin(client, redis.dialtimeout)))
      clog.warn(describe(redis), 'redis is not reachable yet; serving from storage until it is');
    clog.info({ kind: 'redis', ...describe(redis) }, 'blob descriptor cache');
    return new TieredDescriptorCache([instrumentTier(remote, m)], clog);
  }
  // Pub/sub goes through one node. On a Cluster that is the first of `addrs` for every replica (a plain connection,
  // so the bus sees exactly when it loses the subscription, and PUBLISH counts every replica subscribed there).
  const clustered = redisTopology(redis) === 'cluster';
  const busConfig: RedisConfig = clustered
    ? { ...redis, cluster: false, addrs: redis.addrs.slice(0, 1), db: 0 }
    : redis;
  let subscriber: RedisClient;
  let publisher: RedisClient = client;
  try {
    subscriber = await createRedisClient(busConfig, 'subscriber');
    if (clustered) publisher = await createRedisClient(busConfig, 'commands');
  } catch (err) {
    client.disconnect();
    throw err;
  }
  const bus = new InvalidationBus({
    subscriber,
    publisher,
    ownsPublisher: clustered,
    channel: `${redis.prefix}berth::invalidations`,
    ackTimeout: redis.writetimeout,
    log: clog,
  });
  const memory = new CoherentMemoryTier(new MemoryTier(size), bus);
  const remote = new RedisTier({ ...tierOptions, broadcast: (invalidation) => bus.publish(invalidation) });
  const [connected, subscribed] = await Promise.all([
    connectWithin(client, redis.dialtimeout),
    bus.start(redis.dialtimeout),
  ]);
  if (!connected) clog.warn(describe(redis), 'redis is not reachable yet; serving from storage until it is');
  else if (!subscribed) clog.warn('not yet subscribed to invalidations; the in-process tier waits for it');
  clog.info({ kind: 'two-tier', size, ...describe(redis) }, 'blob descriptor cache');
  return new TieredDescriptorCache([instrumentTier(memory, m), instrumentTier(remote, m)], clog, [() => bus.close()]);
}
