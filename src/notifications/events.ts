// Registry events in CNCF Distribution's notification envelope (`application/vnd.docker.distribution.events.v2+json`),
// so receivers written for Distribution (CI hooks, scanners, audit logs) read Berth's unchanged.
import type { NotificationAction } from '../config/notifications.js';

export const EVENTS_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v2+json';

/** What the event is about: a manifest or a blob in a repository (a tag with manifests). */
export interface EventTarget {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  /** Distribution's older name for size; the same value. */
  readonly length: number;
  readonly repository: string;
  readonly url: string;
  readonly tag?: string;
  /** With `mount`: the repository the blob was mounted from. */
  readonly fromRepository?: string;
}

/** The HTTP request that caused the event. */
export interface EventRequest {
  readonly id: string;
  readonly addr: string;
  readonly host: string;
  readonly method: string;
  readonly useragent: string;
}

export interface RegistryEvent {
  readonly id: string;
  readonly timestamp: string;
  readonly action: NotificationAction;
  readonly target: EventTarget;
  readonly request: EventRequest;
  /** Who acted; empty until Berth authenticates clients. */
  readonly actor: { readonly name?: string };
  /** Which registry process saw it. */
  readonly source: { readonly addr: string; readonly instanceID: string };
}

export interface EventEnvelope {
  readonly events: readonly RegistryEvent[];
}

/** Where the HTTP layer records events. Never blocks and never throws: delivery happens elsewhere, later. */
export interface EventSink {
  record(event: Omit<RegistryEvent, 'id' | 'timestamp' | 'source'>): void;
}
