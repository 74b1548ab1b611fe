// Redis connections for the descriptor cache: the client for the configured topology (single node, Sentinel,
// Cluster) with its TLS settings, connecting within a bound, and closing.
import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '../config/redis.js';
import { withDeadline } from './cache.js';

export type RedisClient = Redis | Cluster;

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
    // writes save (measured in d5542df). A Cluster keeps it (above): its lookups are four commands.
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
