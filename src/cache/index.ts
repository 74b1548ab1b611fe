// Builds the blob-descriptor cache the config asks for; `none` gives no cache at all.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ResolvedConfig } from '../config/schema.js';
import { MemoryTier } from './memory.js';
import { cacheMetrics, instrumentTier } from './metrics.js';
import { TieredDescriptorCache, type DescriptorCache } from './tiered.js';

export { TieredDescriptorCache, type DescriptorCache } from './tiered.js';

export async function createDescriptorCache(
  config: ResolvedConfig,
  log: Logger,
  metrics: Registry,
): Promise<DescriptorCache | undefined> {
  const kind = config.cache.blobdescriptor;
  if (kind === 'none' || kind === '') return undefined;
  const clog = log.child({ component: 'descriptor-cache' });
  const m = cacheMetrics(metrics);
  const size = config.cache.blobdescriptorsize;
  if (kind === 'inmemory') {
    if (config.cache.twotier) clog.warn('storage.cache.twotier applies to the redis cache only; ignored');
    clog.info({ kind, size }, 'blob descriptor cache');
    return new TieredDescriptorCache([instrumentTier(new MemoryTier(size), m)], clog);
  }
  const redis = config.redis;
  if (redis === undefined) throw new Error('storage.cache.blobdescriptor is redis, but there is no redis section');
  // Loaded only when Redis is configured: ioredis is a large part of an idle registry's heap, which every collection scans.
  const { createRedisCache } = await import('./redis-cache.js');
  return createRedisCache(redis, config.cache.twotier, size, clog, m);
}
