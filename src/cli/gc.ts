// BERTH_GC: the V8 garbage-collector settings `berth serve` starts with.
/** How `berth serve` asks V8 to collect garbage (`BERTH_GC`). */
export const GC_MODES = ['balanced', 'throughput', 'v8'] as const;

/**
 * The V8 flags of a BERTH_GC mode, or an error naming the choices. Every chunk a socket reads is a new buffer outside
 * V8's heap, and a registry's own heap is small, so V8's default heuristics keep the old generation's limit close to
 * its live size; while request bodies stream in, that headroom is always "nearly used" and V8 runs a full collection
 * every few tens of MiB received, a large share of a push's CPU.
 * - `balanced` (the default) lets the old generation grow to 4× its live size before the next collection (V8's own
 *   upper bound for the factor): a few MiB more heap, far fewer collections.
 * - `throughput` adds counting socket buffers in V8's global limit: fewer collections still, for more peak memory
 *   during a large push.
 * - `v8` leaves V8's heuristics alone.
 * The README's Benchmarks section has the figures.
 */
export function gcFlags(mode: string | undefined): string[] | Error {
  switch (mode ?? 'balanced') {
    case 'balanced':
      return ['--heap-growing-percent=300'];
    case 'throughput':
      return ['--heap-growing-percent=300', '--external-memory-accounted-in-global-limit'];
    case 'v8':
      return [];
    default:
      return new Error(`BERTH_GC=${String(mode)}: choose one of ${GC_MODES.join(', ')}`);
  }
}
