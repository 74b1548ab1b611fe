// Builds the notification events of requests: what was pushed, pulled, deleted or mounted, and by which request.
import type { NotificationAction } from '../config/notifications.js';
import type { EventTarget } from '../notifications/index.js';
import type { Ctx, RegistryDeps } from './context.js';

export interface TargetOf {
  readonly repository: string;
  readonly digest: string;
  readonly mediaType?: string;
  readonly size?: number;
  readonly url: string;
  readonly tag?: string;
  readonly fromRepository?: string;
}

/** Records one event, when notifications are configured; costs nothing otherwise and never throws. */
export function recordEvent(deps: RegistryDeps, ctx: Ctx, action: NotificationAction, of: TargetOf): void {
  const sink = deps.events;
  if (sink === undefined) return;
  const size = of.size ?? 0;
  const target: EventTarget = {
    mediaType: of.mediaType ?? '',
    digest: of.digest,
    size,
    length: size,
    repository: of.repository,
    url: of.url,
    ...(of.tag === undefined ? {} : { tag: of.tag }),
    ...(of.fromRepository === undefined ? {} : { fromRepository: of.fromRepository }),
  };
  const socket = ctx.req.socket;
  sink.record({
    action,
    target,
    request: {
      id: ctx.state.requestId,
      addr: `${socket.remoteAddress ?? ''}:${socket.remotePort ?? ''}`,
      host: ctx.host,
      method: ctx.method,
      useragent: ctx.get('User-Agent'),
    },
    actor: ctx.state.grant.user === undefined ? {} : { name: ctx.state.grant.user },
  });
}
