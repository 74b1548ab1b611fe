// Cache metrics as one more wrapper around a tier, with CNCF Distribution 3's names: requests, hits and errors per
// tier, and the latency of every Redis operation (Distribution's operation names, so its dashboards keep working).
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Digest } from '../oci/digest.js';
import type { DescriptorTier, Lookup, Scope } from './cache.js';

export interface CacheMetrics {
  /** Lookups asked of a tier. */
  readonly requests: Counter<'tier'>;
  /** Lookups a tier answered from what it holds. */
  readonly hits: Counter<'tier'>;
  /** Failed tier operations (lookups, fills, invalidations); each one was answered from storage instead. */
  readonly errors: Counter<'tier'>;
  readonly redisSeconds: Histogram<'operation'>;
}

function existing<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** The cache metrics in `registry` (created once per registry). */
export function cacheMetrics(registry: Registry): CacheMetrics {
  const counter = (name: string, help: string): Counter<'tier'> =>
    existing(registry, name, () => new Counter({ name, help, labelNames: ['tier'] as const, registers: [registry] }));
  return {
    requests: counter('registry_storage_cache_requests_total', 'Blob descriptor cache lookups, by tier.'),
    hits: counter('registry_storage_cache_hits_total', 'Blob descriptor cache lookups answered by the tier, by tier.'),
    errors: counter(
      'registry_storage_cache_errors_total',
      'Blob descriptor cache operations that failed (and were served from storage), by tier.',
    ),
    redisSeconds: existing(
      registry,
      'registry_storage_cache_redis_seconds',
      () =>
        new Histogram({
          name: 'registry_storage_cache_redis_seconds',
          help: 'Time of blob descriptor cache operations on Redis, by operation.',
          labelNames: ['operation'] as const,
          buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
          registers: [registry],
        }),
    ),
  };
}

type Operation = 'Stat' | 'SetDescriptor' | 'Clear';

function operationName(operation: Operation, scope: Scope): string {
  return scope === undefined ? operation : `Repo${operation}`;
}

/** Counts and times every operation of `tier`; answers and failures pass through unchanged. */
export function instrumentTier(tier: DescriptorTier, metrics: CacheMetrics): DescriptorTier {
  const labels = { tier: tier.name };
  // Series exist from the start at zero, so rates and ratios are defined before the first lookup.
  metrics.requests.inc(labels, 0);
  metrics.hits.inc(labels, 0);
  metrics.errors.inc(labels, 0);
  const timed = async <T>(operation: Operation, scope: Scope, run: () => Promise<T>): Promise<T> => {
    const stop =
      tier.name === 'redis'
        ? metrics.redisSeconds.startTimer({ operation: operationName(operation, scope) })
        : undefined;
    try {
      return await run();
    } catch (err) {
      metrics.errors.inc(labels);
      throw err;
    } finally {
      stop?.();
    }
  };
  return {
    name: tier.name,
    async lookup(scope: Scope, digest: Digest): Promise<Lookup> {
      metrics.requests.inc(labels);
      const result = await timed('Stat', scope, () => tier.lookup(scope, digest));
      if (result.hit) {
        metrics.hits.inc(labels);
        return result;
      }
      return { hit: false, fill: (descriptor) => timed('SetDescriptor', scope, () => result.fill(descriptor)) };
    },
    invalidate: (scope, digest) => timed('Clear', scope, () => tier.invalidate(scope, digest)),
    check: () => tier.check(),
    close: () => tier.close(),
  };
}
