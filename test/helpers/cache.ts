// Redis-backed descriptor caches for the redis and two-tier tests: their config, opening one, the shared cache suite
// against one redis-server per describe block, and a blob already looked up through a cache.
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { Registry } from 'prom-client';
import { createDescriptorCache, type DescriptorCache } from '../../src/cache/index.js';
import { resolveConfig } from '../../src/config/load.js';
import type { RawConfig } from '../../src/config/schema.js';
import type { BlobDescriptor, BlobStatter } from '../../src/storage/blobs.js';
import { FakeStorage, runCacheSuite } from '../suites/cache-suite.js';
import { startRedis, type RedisServer } from './redis.js';

const silent = pino({ level: 'silent' });

/** A config with the Redis descriptor cache (two tiers when `twotier`) on `server`, and `redis` settings on top. */
export function redisCacheConfig(server: RedisServer, redis: Record<string, unknown> = {}, twotier = false): RawConfig {
  return {
    storage: { inmemory: {}, cache: { blobdescriptor: 'redis', twotier } },
    redis: { addrs: [server.addr], ...redis } as RawConfig['redis'],
  };
}

/** Opens the cache redisCacheConfig describes, reporting its metrics into `registry`. */
export async function openRedisCache(
  server: RedisServer,
  registry: Registry,
  redis: Record<string, unknown> = {},
  twotier = false,
): Promise<DescriptorCache> {
  const cache = await createDescriptorCache(resolveConfig(redisCacheConfig(server, redis, twotier)), silent, registry);
  assert.ok(cache !== undefined);
  return cache;
}

/**
 * Inside a describe block: starts one redis-server before its tests and disposes of it after, and runs the shared
 * cache suite against it, each suite test (and its replica) under a key prefix of its own that starts with `prefix`.
 * Returns the server, for the block's own tests.
 */
export function redisCacheSuite(name: string, prefix: string, twotier: boolean): () => RedisServer {
  let server: RedisServer | undefined;
  let prefixes = 0;
  const current = (): RedisServer => {
    assert.ok(server !== undefined, 'the redis-server is started in before()');
    return server;
  };

  before(async function () {
    server = await startRedis();
  });

  after(async function () {
    await server?.dispose();
  });

  runCacheSuite(name, async (registry) => {
    const redis = { prefix: `${prefix}${prefixes++}:` };
    const cache = await openRedisCache(current(), registry, redis, twotier);
    return {
      cache,
      replica: (peerRegistry) => openRedisCache(current(), peerRegistry, redis, twotier),
      cleanup: async () => undefined,
    };
  });
  return current;
}

/** `d` in a fresh storage under `scope`, and a statter through `cache` that has already looked it up `times` times. */
export async function statted(
  cache: DescriptorCache,
  scope: string | undefined,
  d: BlobDescriptor,
  times = 1,
): Promise<{ storage: FakeStorage; statter: BlobStatter }> {
  const storage = new FakeStorage();
  storage.put(scope, d);
  const statter = cache.wrap(storage.statter(scope), scope);
  for (let i = 0; i < times; i++) await statter.stat(d.digest);
  return { storage, statter };
}
