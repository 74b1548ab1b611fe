// The operator's Prometheus metrics, on their own registry (served by the operator's /metrics).
import { Counter, Gauge, Histogram, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';

export interface OperatorMetrics {
  readonly registry: PromRegistry;
  readonly reconciles: Counter<'result'>;
  readonly reconcileSeconds: Histogram;
  readonly queueDepth: Gauge;
  readonly leader: Gauge;
  readonly informerRestarts: Counter<'kind'>;
}

export function createOperatorMetrics(): OperatorMetrics {
  const registry = new PromRegistry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    reconciles: new Counter({
      name: 'berth_operator_reconciles_total',
      help: 'Reconciles of Registry objects by result (success, requeue, error).',
      labelNames: ['result'],
      registers: [registry],
    }),
    reconcileSeconds: new Histogram({
      name: 'berth_operator_reconcile_duration_seconds',
      help: 'Time one reconcile of a Registry takes.',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'berth_operator_queue_depth',
      help: 'Registries waiting for or in reconcile.',
      registers: [registry],
    }),
    leader: new Gauge({
      name: 'berth_operator_leader',
      help: '1 while this process holds the leader lease.',
      registers: [registry],
    }),
    informerRestarts: new Counter({
      name: 'berth_operator_informer_restarts_total',
      help: 'Informers restarted after a watch error, by kind.',
      labelNames: ['kind'],
      registers: [registry],
    }),
  };
}
