// The top-level `redis:` section, with CNCF Distribution 3's keys: one schema for single node, Sentinel and Cluster.
// As in Distribution (go-redis's UniversalClient): `mastername` means Sentinel; `cluster: true` or several `addrs`
// mean Cluster; else one node. `pool` is accepted for compatibility; ioredis multiplexes one connection per node.
import { z } from 'zod';
import { duration } from './duration.js';

export const RedisSchema = z
  .strictObject({
    /** `host:port` of one node, of the Sentinels (with `mastername`), or of Cluster seed nodes (with `cluster: true`). */
    addrs: z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port')).min(1),
    /** Sentinel: the name of the monitored master. */
    mastername: z.string().min(1).optional(),
    /** Treat `addrs` as Redis Cluster seed nodes. */
    cluster: z.boolean().default(false),
    username: z.string().optional(),
    password: z.string().optional(),
    db: z.number().int().min(0).max(15).default(0),
    /** Prefix for every key, so several registries can share one Redis. */
    prefix: z.string().default(''),
    tls: z
      .strictObject({
        enabled: z.boolean().default(false),
        certificate: z.string().optional(),
        key: z.string().optional(),
        clientcas: z.array(z.string()).default([]),
        insecureskipverify: z.boolean().default(false),
      })
      .prefault({}),
    dialtimeout: duration.default(2_000),
    readtimeout: duration.default(200),
    writetimeout: duration.default(200),
    pool: z
      .strictObject({
        maxidle: z.number().int().nonnegative().default(16),
        maxactive: z.number().int().nonnegative().default(64),
        idletimeout: duration.default(300_000),
      })
      .prefault({}),
  })
  .superRefine((r, ctx) => {
    const clustered = r.cluster || (r.addrs.length > 1 && r.mastername === undefined);
    if (r.mastername !== undefined && r.cluster) {
      ctx.addIssue({
        code: 'custom',
        path: ['cluster'],
        message: 'mastername (Sentinel) and cluster exclude each other',
      });
    }
    if (clustered && r.db !== 0) {
      ctx.addIssue({ code: 'custom', path: ['db'], message: 'Redis Cluster has only database 0' });
    }
    if ((r.tls.certificate === undefined) !== (r.tls.key === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['tls', r.tls.key === undefined ? 'key' : 'certificate'],
        message: 'tls.certificate and tls.key go together',
      });
    }
  });

export type RedisConfig = z.output<typeof RedisSchema>;
