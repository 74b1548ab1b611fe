// The `notifications` section, with CNCF Distribution's keys: webhook endpoints that receive registry events.
import { z } from 'zod';
import { duration } from './duration.js';

export const NOTIFICATION_ACTIONS = ['push', 'pull', 'delete', 'mount'] as const;
export type NotificationAction = (typeof NOTIFICATION_ACTIONS)[number];

const EndpointSchema = z.strictObject({
  name: z.string().min(1).max(128),
  disabled: z.boolean().default(false),
  url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }),
  /** Extra request headers; Distribution gives each a list of values. */
  headers: z.record(z.string(), z.union([z.string(), z.array(z.string())])).default({}),
  /** Bound on one delivery attempt. */
  timeout: duration.default(1_000),
  /** Failed attempts in a row after which the endpoint waits `backoff` before the next. */
  threshold: z.number().int().min(1).default(10),
  backoff: duration.default(1_000),
  /** Events whose target has one of these media types are not sent (Distribution's older key). */
  ignoredmediatypes: z.array(z.string()).default([]),
  ignore: z
    .strictObject({
      mediatypes: z.array(z.string()).default([]),
      actions: z.array(z.enum(NOTIFICATION_ACTIONS)).default([]),
    })
    .prefault({}),
});

export const NotificationsSchema = z
  .strictObject({
    endpoints: z.array(EndpointSchema).default([]),
    /** Distribution's `includereferences`: accepted, and reported as ignored (events carry no references). */
    events: z.strictObject({ includereferences: z.boolean().optional() }).optional(),
  })
  .superRefine((n, ctx) => {
    const seen = new Set<string>();
    n.endpoints.forEach((e, i) => {
      if (seen.has(e.name))
        ctx.addIssue({
          code: 'custom',
          path: ['endpoints', i, 'name'],
          message: `endpoint name ${e.name} is used twice`,
        });
      seen.add(e.name);
    });
  });

export type NotificationsConfig = z.output<typeof NotificationsSchema>;
export type EndpointConfig = NotificationsConfig['endpoints'][number];
