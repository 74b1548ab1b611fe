// Garbage-collection metrics. `berth gc` records one run into a registry of its own and prints it at the end; the
// online collector inside `berth serve` registers them in the registry's /metrics, with its lease's besides.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { GcReport } from './collect.js';

/** `aborted`: an online run stopped by shutdown or by losing its lease. */
export const GC_RESULTS = ['success', 'failure', 'dry_run', 'aborted'] as const;
export type GcResult = (typeof GC_RESULTS)[number];

export interface GcMetrics {
  /** Records one run: its result, and (for a real run) what it swept. */
  record(result: GcResult, seconds: number, report?: GcReport): void;
}

export function createGcMetrics(registry: Registry): GcMetrics {
  const runs = new Counter({
    name: 'registry_gc_runs_total',
    help: 'Garbage-collection runs, by result (success, failure, dry_run, aborted).',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  for (const result of GC_RESULTS) runs.inc({ result }, 0);
  const swept = new Counter({
    name: 'registry_gc_swept_total',
    help: 'What garbage collection deleted, by kind (blob, manifest, link).',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  for (const kind of ['blob', 'manifest', 'link']) swept.inc({ kind }, 0);
  const bytes = new Counter({
    name: 'registry_gc_reclaimed_bytes_total',
    help: 'Bytes of the blobs garbage collection deleted.',
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'registry_gc_duration_seconds',
    help: 'Time one garbage-collection run took, mark and sweep.',
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600],
    registers: [registry],
  });
  return {
    record(result, seconds, report) {
      runs.inc({ result });
      duration.observe(seconds);
      if (result === 'success' && report !== undefined) {
        swept.inc({ kind: 'blob' }, report.blobsSwept);
        swept.inc({ kind: 'manifest' }, report.manifestsSwept);
        swept.inc({ kind: 'link' }, report.linksSwept);
        bytes.inc(report.bytesFreed);
      }
    },
  };
}

/** Why a scheduled online run did not collect: see GcLease.acquire. */
export const GC_SKIP_REASONS = ['leased', 'race', 'recent'] as const;
export type GcSkipReason = (typeof GC_SKIP_REASONS)[number];

export interface GcLeaseMetrics {
  /** Counts a scheduled run this replica left to another. */
  skipped(reason: GcSkipReason): void;
  /** Whether this replica holds the lease now. */
  holding(held: boolean): void;
  /** Counts a lease this replica lost while collecting (expired, or taken over). */
  lost(): void;
}

export function createGcLeaseMetrics(registry: Registry): GcLeaseMetrics {
  const skipped = new Counter({
    name: 'registry_gc_skipped_total',
    help:
      'Scheduled online collections this replica skipped: another replica held the lease (leased), won the race to ' +
      'take it (race), or had collected within the interval (recent).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of GC_SKIP_REASONS) skipped.inc({ reason }, 0);
  const held = new Gauge({
    name: 'registry_gc_lease_held',
    help: '1 while this replica holds the garbage-collection lease and collects, else 0.',
    registers: [registry],
  });
  held.set(0);
  const lost = new Counter({
    name: 'registry_gc_lease_lost_total',
    help: 'Online collections stopped because the lease expired or another replica took it over.',
    registers: [registry],
  });
  return {
    skipped: (reason) => skipped.inc({ reason }),
    holding: (on) => held.set(on ? 1 : 0),
    lost: () => lost.inc(),
  };
}
