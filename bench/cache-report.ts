// The cache suite's table: one block of rows per cache mode, ratios oriented so that > 1 favours Berth, informative
// targets beside them, and Berth's two-tier cache set against its plain Redis cache.
import type { LoadResult } from './load.js';
import type { CacheMode, RegistryId } from './registries.js';
import {
  allMet,
  comparisonCells,
  comparisonHeader,
  loadFailures,
  measure,
  ratio,
  ratioChecks,
  ratioTargetParts,
  type Better,
  type Measured,
  type MetricDef,
  type RatioTarget,
} from './report.js';

export interface PutResult {
  /** Each timed PUT, in order. */
  readonly samplesMs: readonly number[];
  readonly medianMs: number;
  readonly p99Ms: number;
}

/** Berth's own account of the HEAD load, from its /metrics before and after. */
export interface StorageAccount {
  /** Storage driver operations (sum of registry_storage_action_seconds_count) during the load. */
  readonly operations: number;
  /** HEADs Berth answered in the same window (its registry_http_requests_total). */
  readonly requests: number;
  readonly operationsPerRequest: number;
  /** Lookups (the front tier's requests), hits (any tier) and tier errors during the load. */
  readonly cacheLookups: number;
  readonly cacheHits: number;
  readonly cacheErrors: number;
  /** Hits ÷ lookups; undefined without a cache. */
  readonly hitRatio: number | undefined;
}

export interface ModeResult {
  /** The cache setting the registry ran with (Distribution runs `redis` where Berth runs `twotier`). */
  readonly setting: CacheMode;
  readonly version: string;
  readonly redis?: { readonly version: string; readonly descriptorKeys: number };
  head?: LoadResult;
  /** CPU seconds of the registry's redis-server during the measured HEAD load, per request, in µs. */
  redisCpuMicrosPerRequest?: number;
  put?: PutResult;
  storage?: StorageAccount;
}

export type ModeResults = Partial<Record<RegistryId, ModeResult>>;

interface Target extends RatioTarget {
  /** Bounds on Berth's own value. */
  readonly berthMin?: number;
  readonly berthMax?: number;
}

interface ModeMetric extends MetricDef<ModeResult, Target> {
  /** Below this, Berth's value is under the measurement's resolution and a quotient would be noise: no ratio. */
  readonly ratioFloor?: number;
}

export interface CacheRow extends Measured {
  /** The cache mode, or `twotier÷redis` for rows comparing Berth with itself. */
  readonly mode: string;
  readonly metric: string;
  readonly unit: string;
  readonly better: Better;
  readonly digits: number;
  readonly target?: Target;
  readonly targetText?: string;
  readonly targetMet?: boolean;
}

export const MODE_LABELS: Readonly<Record<CacheMode, string>> = {
  none: 'storage only',
  inmemory: 'inmemory',
  redis: 'redis',
  twotier: 'two-tier (refs: redis)',
};

function headWarning(r: ModeResult): string | undefined {
  const parts: string[] = [];
  const failures = loadFailures(r.head);
  if (failures !== undefined) parts.push(failures);
  if (r.storage !== undefined && r.storage.cacheErrors > 0) parts.push(`${r.storage.cacheErrors} cache errors`);
  return parts.length === 0 ? undefined : parts.join(', ');
}

function metricDefs(mode: CacheMode, layers: number): ModeMetric[] {
  const cached = mode !== 'none';
  const defs: ModeMetric[] = [
    {
      name: 'HEAD blob',
      unit: 'req/s',
      better: 'higher',
      digits: 0,
      value: (r) => r.head?.requestsPerSecond,
      warning: headWarning,
      ...(mode === 'redis' ? { target: { dist3: 5, dist28: 5 } } : {}),
    },
    {
      name: 'HEAD blob p99 latency',
      unit: 'ms',
      better: 'lower',
      digits: 2,
      value: (r) => r.head?.p99Ms,
      warning: headWarning,
    },
    {
      name: 'HEAD blob server CPU',
      unit: 'µs/req',
      better: 'lower',
      digits: 1,
      value: (r) => r.head?.serverCpuMicrosPerRequest,
    },
  ];
  if (mode === 'redis' || mode === 'twotier') {
    defs.push({
      name: 'HEAD blob redis-server CPU',
      unit: 'µs/req',
      better: 'lower',
      digits: 1,
      value: (r) => r.redisCpuMicrosPerRequest,
      // CPU time comes in 10 ms ticks: over some 10^4 requests, about 1 µs per request.
      ratioFloor: 1,
    });
  }
  defs.push(
    {
      name: `manifest PUT (${layers} layers), median`,
      unit: 'ms',
      better: 'lower',
      digits: 2,
      value: (r) => r.put?.medianMs,
    },
    {
      name: `manifest PUT (${layers} layers), p99`,
      unit: 'ms',
      better: 'lower',
      digits: 2,
      value: (r) => r.put?.p99Ms,
    },
    {
      name: cached ? 'storage ops per cached HEAD (Berth)' : 'storage ops per HEAD (Berth)',
      unit: 'ops/req',
      better: 'lower',
      digits: 3,
      value: (r) => r.storage?.operationsPerRequest,
      ...(cached ? { target: { berthMax: 0 } } : {}),
    },
  );
  if (cached) {
    defs.push({
      name: 'cache hit ratio during HEAD load (Berth)',
      unit: '%',
      better: 'higher',
      digits: 2,
      value: (r) => (r.storage?.hitRatio === undefined ? undefined : r.storage.hitRatio * 100),
      warning: headWarning,
    });
  }
  return defs;
}

function targetText(t: Target | undefined): string | undefined {
  if (t === undefined) return undefined;
  const parts = ratioTargetParts(t);
  if (t.berthMin !== undefined) parts.push(`Berth ≥ ${t.berthMin}`);
  if (t.berthMax !== undefined) parts.push(t.berthMax === 0 ? 'Berth = 0' : `Berth ≤ ${t.berthMax}`);
  return parts.join(', ');
}

function makeRow(mode: string, d: ModeMetric, results: ModeResults): CacheRow {
  const floor = d.ratioFloor;
  const { values, ratios, warnings } = measure(
    d,
    results,
    (v) => floor === undefined || (v.berth !== undefined && v.berth >= floor),
  );
  const t = d.target;
  let targetMet: boolean | undefined;
  if (t !== undefined) {
    const checks = ratioChecks(t, ratios);
    const b = values.berth;
    if (t.berthMin !== undefined) checks.push(b === undefined ? undefined : b >= t.berthMin);
    if (t.berthMax !== undefined) checks.push(b === undefined ? undefined : b <= t.berthMax);
    targetMet = allMet(checks);
  }
  const text = targetText(t);
  return {
    mode,
    metric: d.name,
    unit: d.unit,
    better: d.better,
    digits: d.digits,
    values,
    ratios,
    ...(t === undefined ? {} : { target: t }),
    ...(text === undefined ? {} : { targetText: text }),
    ...(targetMet === undefined ? {} : { targetMet }),
    warnings,
  };
}

/** Berth with two tiers against Berth with Redis alone: the same quotient orientation, > 1 favours two-tier. */
function twoTierRows(redis: ModeResult | undefined, twotier: ModeResult | undefined, layers: number): CacheRow[] {
  if (redis === undefined || twotier === undefined) return [];
  const defs: Array<{ name: string; value: number | undefined; target?: Target }> = [
    {
      name: 'Berth HEAD blob req/s, two-tier ÷ redis',
      value: ratio(twotier.head?.requestsPerSecond, redis.head?.requestsPerSecond, 'higher', '×'),
      target: { berthMin: 1.5 },
    },
    {
      name: 'Berth HEAD blob p99, redis ÷ two-tier',
      value: ratio(twotier.head?.p99Ms, redis.head?.p99Ms, 'lower', '×'),
    },
    {
      name: `Berth manifest PUT (${layers} layers) median, redis ÷ two-tier`,
      value: ratio(twotier.put?.medianMs, redis.put?.medianMs, 'lower', '×'),
    },
  ];
  return defs.map((d) =>
    makeRow(
      'two-tier vs redis',
      {
        name: d.name,
        unit: '×',
        better: 'higher',
        digits: 2,
        value: () => d.value,
        ...(d.target === undefined ? {} : { target: d.target }),
      },
      { berth: twotier },
    ),
  );
}

export function buildCacheRows(
  modes: readonly CacheMode[],
  results: Readonly<Partial<Record<CacheMode, ModeResults>>>,
  layers: number,
): CacheRow[] {
  const rows: CacheRow[] = [];
  for (const mode of modes) {
    const r = results[mode];
    if (r === undefined) continue;
    for (const d of metricDefs(mode, layers)) rows.push(makeRow(MODE_LABELS[mode], d, r));
  }
  rows.push(...twoTierRows(results.redis?.berth, results.twotier?.berth, layers));
  return rows;
}

/** The markdown table; ✓/✗ mark targets, ⚠ marks values measured while requests or cache operations failed. */
export function cacheMarkdownTable(rows: readonly CacheRow[], labels: Readonly<Record<RegistryId, string>>): string {
  const lines = [`| mode | metric | unit | ${comparisonHeader(labels)}`, '|---|---|---|--:|--:|--:|--:|--:|---|'];
  for (const row of rows) {
    const t = row.target;
    // Ratio targets are marked on the ratio; targets on Berth's own value are marked in the target column.
    const ownTarget = t?.berthMin !== undefined || t?.berthMax !== undefined;
    const target =
      (row.targetText ?? '') + (ownTarget && row.targetMet !== undefined ? (row.targetMet ? ' ✓' : ' ✗') : '');
    lines.push(`| ${row.mode} | ${row.metric} | ${row.unit} | ${comparisonCells(row, row.digits, t, target)}`);
  }
  return lines.join('\n');
}
