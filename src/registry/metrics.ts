// HTTP metrics, with CNCF Distribution 3's names so dashboards written for it keep working.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface HttpMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'method' | 'route' | 'code'>;
  readonly duration: Histogram<'method' | 'route'>;
  readonly inFlight: Gauge;
  readonly responseSize: Histogram<'method' | 'route'>;
}

export function createMetrics(): HttpMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    requests: new Counter({
      name: 'registry_http_requests_total',
      help: 'HTTP requests answered, by method, route and status code.',
      labelNames: ['method', 'route', 'code'] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'registry_http_request_duration_seconds',
      help: 'Time from request to the end of the response.',
      labelNames: ['method', 'route'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: 'registry_http_in_flight_requests',
      help: 'Requests being served.',
      registers: [registry],
    }),
    responseSize: new Histogram({
      name: 'registry_http_response_size_bytes',
      help: 'Bytes in response bodies.',
      labelNames: ['method', 'route'] as const,
      buckets: [0, 512, 4096, 65536, 1 << 20, 16 << 20, 256 << 20, 1 << 30],
      registers: [registry],
    }),
  };
}
