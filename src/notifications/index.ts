// Notifications: every event the HTTP layer records goes to each configured endpoint's queue, stamped with an id,
// the time and this process; endpoints deliver on their own, so a slow or dead receiver never slows a request.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { NotificationsConfig } from '../config/notifications.js';
import { Endpoint, type EndpointOptions } from './endpoint.js';
import type { EventSink, RegistryEvent } from './events.js';
import { notificationMetrics } from './metrics.js';

export type { EventSink, EventTarget, RegistryEvent } from './events.js';

export class Notifier implements EventSink {
  readonly #endpoints: readonly Endpoint[];
  readonly #source: RegistryEvent['source'];

  constructor(endpoints: readonly Endpoint[], sourceAddr: string) {
    this.#endpoints = endpoints;
    this.#source = { addr: sourceAddr, instanceID: randomUUID() };
  }

  record(event: Omit<RegistryEvent, 'id' | 'timestamp' | 'source'>): void {
    const stamped: RegistryEvent = {
      id: randomUUID(),
      timestamp: new Date().toISOString(),
      ...event,
      source: this.#source,
    };
    for (const endpoint of this.#endpoints) endpoint.offer(stamped);
  }

  /** Lets each endpoint drain for up to `graceMs`, then stops them. */
  async close(graceMs = 2_000): Promise<void> {
    await Promise.all(this.#endpoints.map((e) => e.close(graceMs)));
  }
}

/** The notifier for the enabled endpoints, or undefined when there are none. */
export function createNotifier(
  config: NotificationsConfig | undefined,
  metrics: Registry,
  log: Logger,
  sourceAddr: string = hostname(),
  options: EndpointOptions = {},
): Notifier | undefined {
  const enabled = (config?.endpoints ?? []).filter((e) => !e.disabled);
  if (enabled.length === 0) return undefined;
  const m = notificationMetrics(metrics);
  const nlog = log.child({ component: 'notifications' });
  nlog.info({ endpoints: enabled.map((e) => e.name) }, 'notification endpoints');
  return new Notifier(
    enabled.map((e) => new Endpoint(e, m, nlog, options)),
    sourceAddr,
  );
}
