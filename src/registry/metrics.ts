// HTTP metrics, with CNCF Distribution 3's names so dashboards written for it keep working. They move on every
// request, so they aggregate in place (aggregated-metrics.ts) and reach prom-client when scraped.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { AggregatedCounter, AggregatedHistogram } from '../metrics/aggregated.js';

export interface HttpMetrics {
  readonly registry: Registry;
  /** Counts a request as it starts. */
  started(): void;
  /** Records a request that ended. */
  finished(method: string, route: string, code: number, seconds: number, bytes: number): void;
  /**
   * Counts stored content that was not served because it is not what its digest names: `kind` is blob or manifest,
   * `reason` digest (other bytes) or length (more or fewer bytes).
   */
  contentMismatch(kind: string, reason: string): void;
}

export function createMetrics(): HttpMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new AggregatedCounter({
    name: 'registry_http_requests_total',
    help: 'HTTP requests answered, by method, route and status code.',
    labelNames: ['method', 'route', 'code'] as const,
    registers: [registry],
  });
  const duration = new AggregatedHistogram({
    name: 'registry_http_request_duration_seconds',
    help: 'Time from request to the end of the response.',
    labelNames: ['method', 'route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const responseSize = new AggregatedHistogram({
    name: 'registry_http_response_size_bytes',
    help: 'Bytes in response bodies.',
    labelNames: ['method', 'route'] as const,
    buckets: [0, 512, 4096, 65536, 1 << 20, 16 << 20, 256 << 20, 1 << 30],
    registers: [registry],
  });
  // Rare by nature (damage, or a change behind Berth's back), so a plain counter: any rise deserves an alert.
  const mismatches = new Counter({
    name: 'registry_storage_digest_mismatch_total',
    help: 'Reads of stored blobs and manifests whose bytes did not match their digest or size; never served.',
    labelNames: ['kind', 'reason'] as const,
    registers: [registry],
  });
  let inFlight = 0;
  new Gauge({
    name: 'registry_http_in_flight_requests',
    help: 'Requests being served.',
    registers: [registry],
    collect() {
      this.set(inFlight);
    },
  });
  return {
    registry,
    started: () => {
      inFlight++;
    },
    finished: (method, route, code, seconds, bytes) => {
      inFlight--;
      const series = [method, route];
      requests.add([method, route, String(code)]);
      duration.record(series, seconds);
      responseSize.record(series, bytes);
    },
    contentMismatch: (kind, reason) => mismatches.inc({ kind, reason }),
  };
}
