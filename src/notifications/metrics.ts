// registry_notifications_*: what each endpoint was offered, sent, failed to send and dropped, and its queue.
import { Counter, Gauge, type Registry } from 'prom-client';

export interface NotificationMetrics {
  readonly events: Counter<'endpoint'>;
  readonly sent: Counter<'endpoint'>;
  readonly failed: Counter<'endpoint'>;
  readonly dropped: Counter<'endpoint'>;
  readonly queue: Gauge<'endpoint'>;
}

export function notificationMetrics(registry: Registry): NotificationMetrics {
  const labelNames = ['endpoint'] as const;
  return {
    events: new Counter({
      name: 'registry_notifications_events_total',
      help: 'Events queued for a notification endpoint (after its filters), or dropped there.',
      labelNames,
      registers: [registry],
    }),
    sent: new Counter({
      name: 'registry_notifications_sent_total',
      help: 'Events a notification endpoint accepted.',
      labelNames,
      registers: [registry],
    }),
    failed: new Counter({
      name: 'registry_notifications_failed_total',
      help: 'Events in deliveries a notification endpoint failed or refused (each retry counts again).',
      labelNames,
      registers: [registry],
    }),
    dropped: new Counter({
      name: 'registry_notifications_dropped_total',
      help: 'Events dropped because the endpoint queue was full, or still queued at shutdown.',
      labelNames,
      registers: [registry],
    }),
    queue: new Gauge({
      name: 'registry_notifications_queue_length',
      help: 'Events waiting for a notification endpoint.',
      labelNames,
      registers: [registry],
    }),
  };
}
