// Cache metrics as one more wrapper around a tier, with CNCF Distribution 3's names: requests, hits and errors per
// tier, and the latency of every Redis operation (Distribution's operation names, so its dashboards keep working).
import type { Registry } from 'prom-client';
import { AggregatedCounter, AggregatedHistogram } from '../metrics/aggregated.js';
import type { Digest } from '../oci/digest.js';
import type { DescriptorTier, Lookup, Scope } from './cache.js';

export interface CacheMetrics {
  /** Lookups asked of a tier. */
  readonly requests: AggregatedCounter<'tier'>;
  /** Lookups a tier answered from what it holds. */
  readonly hits: AggregatedCounter<'tier'>;
  /** Failed tier operations (lookups, fills, invalidations); each one was answered from storage instead. */
  readonly errors: AggregatedCounter<'tier'>;
  readonly redisSeconds: AggregatedHistogram<'operation'>;
}

const perRegistry = new WeakMap<Registry, CacheMetrics>();

/** The cache metrics in `registry` (created once per registry). */
export function cacheMetrics(registry: Registry): CacheMetrics {
  const known = perRegistry.get(registry);
  if (known !== undefined) return known;
  const counter = (name: string, help: string): AggregatedCounter<'tier'> =>
    new AggregatedCounter({ name, help, labelNames: ['tier'] as const, registers: [registry] });
  const metrics: CacheMetrics = {
    requests: counter('registry_storage_cache_requests_total', 'Blob descriptor cache lookups, by tier.'),
    hits: counter('registry_storage_cache_hits_total', 'Blob descriptor cache lookups answered by the tier, by tier.'),
    errors: counter(
      'registry_storage_cache_errors_total',
      'Blob descriptor cache operations that failed (and were served from storage), by tier.',
    ),
    redisSeconds: new AggregatedHistogram({
      name: 'registry_storage_cache_redis_seconds',
      help: 'Time of blob descriptor cache operations on Redis, by operation.',
      labelNames: ['operation'] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
  };
  perRegistry.set(registry, metrics);
  return metrics;
}

type Operation = 'Stat' | 'SetDescriptor' | 'Clear';

function operationName(operation: Operation, scope: Scope): string {
  return scope === undefined ? operation : `Repo${operation}`;
}

/** Counts and times every operation of `tier`; answers and failures pass through unchanged. */
export function instrumentTier(tier: DescriptorTier, metrics: CacheMetrics): DescriptorTier {
  const labels = [tier.name];
  // Series exist from the start at zero, so rates and ratios are defined before the first lookup.
  metrics.requests.add(labels, 0);
  metrics.hits.add(labels, 0);
  metrics.errors.add(labels, 0);
  const timed = async <T>(operation: Operation, scope: Scope, run: () => Promise<T>): Promise<T> => {
    const started = tier.name === 'redis' ? performance.now() : undefined;
    try {
      return await run();
    } catch (err) {
      metrics.errors.add(labels);
      throw err;
    } finally {
      if (started !== undefined)
        metrics.redisSeconds.record([operationName(operation, scope)], (performance.now() - started) / 1000);
    }
  };
  return {
    name: tier.name,
    async lookup(scope: Scope, digest: Digest): Promise<Lookup> {
      metrics.requests.add(labels);
      const result = await timed('Stat', scope, () => tier.lookup(scope, digest));
      if (result.hit) {
        metrics.hits.add(labels);
        return result;
      }
      return { hit: false, fill: (descriptor) => timed('SetDescriptor', scope, () => result.fill(descriptor)) };
    },
    invalidate: (scope, digest) => timed('Clear', scope, () => tier.invalidate(scope, digest)),
    check: () => tier.check(),
    close: () => tier.close(),
  };
}
