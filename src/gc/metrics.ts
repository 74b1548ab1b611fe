// Garbage-collection metrics. `berth gc` records one run into a registry of its own and prints it at the end; a
// collector run inside `berth serve` (not yet) would register these in the registry's metrics instead.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { GcReport } from './collect.js';

export const GC_RESULTS = ['success', 'failure', 'dry_run'] as const;
export type GcResult = (typeof GC_RESULTS)[number];

export interface GcMetrics {
  /** Records one run: its result, and (for a real run) what it swept. */
  record(result: GcResult, seconds: number, report?: GcReport): void;
}

export function createGcMetrics(registry: Registry): GcMetrics {
  const runs = new Counter({
    name: 'registry_gc_runs_total',
    help: 'Garbage-collection runs, by result (success, failure, dry_run).',
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
