// Berth's configuration: one zod schema gives the types, the defaults and validation errors that name the field.
// The raw file uses CNCF Distribution's config.yml keys where they overlap; `resolve` turns it into what the code uses.
import { z } from 'zod';
import { duration } from './duration.js';
import { NotificationsSchema, type NotificationsConfig } from './notifications.js';
import { RedisSchema, type RedisConfig } from './redis.js';

export { parseDuration } from './duration.js';

/** `host:port`, `:port` or `port`. */
const listenAddress = z
  .union([z.string(), z.number().int()])
  .transform((v) => String(v))
  .refine(
    (s) =>
      /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*)?:?\d{1,5}$/.test(s) && Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535,
    {
      message: 'expected an address such as :5000 or 127.0.0.1:5000',
    },
  );

// Strict like every other section, so a misspelt `enabeld` is an error rather than a silent `false`.
const enabledFlag = (def: boolean) => z.strictObject({ enabled: z.boolean().default(def) }).prefault({});

export const DRIVER_NAMES = ['filesystem', 'inmemory'] as const;
export type DriverName = (typeof DRIVER_NAMES)[number];

const FilesystemParams = z.strictObject({
  rootdirectory: z.string().min(1).default('/var/lib/registry'),
  /**
   * Threads for blocking file calls (Node's thread pool, UV_THREADPOOL_SIZE), Distribution's bound on concurrent
   * filesystem calls: on a volume where each call is a network round trip, the pool bounds the calls in flight.
   */
  maxthreads: z.number().int().min(4).max(1024).default(16),
  /**
   * Where stats, opens and small reads run: `auto` on the event loop while they are fast and only on a local
   * filesystem (statfs), `on` on any filesystem while fast, `off` always on the thread pool.
   */
  eventloopio: z.enum(['auto', 'on', 'off']).default('auto'),
  /** Flush every chunk of an upload before answering it, as Distribution does; by default only the finished blob. */
  flushchunks: z.boolean().default(false),
});

const StorageSchema = z
  .strictObject({
    filesystem: FilesystemParams.nullish(),
    inmemory: z.strictObject({}).nullish(),
    delete: enabledFlag(false),
    redirect: z.strictObject({ disable: z.boolean().default(false) }).prefault({}),
    cache: z
      .strictObject({
        blobdescriptor: z.enum(['inmemory', 'redis', 'none', '']).default('inmemory'),
        /** Entries in the in-process LRU (the `inmemory` cache, and the first tier of the two-tier cache). */
        blobdescriptorsize: z.number().int().positive().default(10_000),
        /** With `redis`: an in-process LRU in front of Redis, kept coherent across replicas by pub/sub. */
        twotier: z.boolean().default(false),
      })
      .prefault({}),
    maintenance: z
      .strictObject({
        uploadpurging: z
          .strictObject({
            enabled: z.boolean().default(true),
            age: duration.default(168 * 3_600_000),
            interval: duration.default(24 * 3_600_000),
            dryrun: z.boolean().default(false),
          })
          .prefault({}),
        readonly: enabledFlag(false),
      })
      .prefault({}),
  })
  .prefault({})
  .superRefine((s, ctx) => {
    const chosen = DRIVER_NAMES.filter((d) => s[d] !== undefined);
    if (chosen.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [chosen[1] ?? ''],
        message: `only one storage driver may be configured (found ${chosen.join(', ')})`,
      });
    }
  });

const LogSchema = z
  .strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    formatter: z.enum(['json']).default('json'),
    fields: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
    accesslog: z.strictObject({ disabled: z.boolean().default(false) }).prefault({}),
  })
  .prefault({});

const HttpSchema = z
  .strictObject({
    addr: listenAddress.default(':5000'),
    net: z.enum(['tcp']).default('tcp'),
    host: z.url().optional(),
    prefix: z.string().optional(),
    /** Accepted for compatibility with Distribution configs: Berth keeps upload state in storage and needs no shared secret for it. */
    secret: z.string().optional(),
    relativeurls: z.boolean().default(false),
    draintimeout: duration.default(10_000),
    headers: z.record(z.string(), z.union([z.string(), z.array(z.string())])).default({}),
    debug: z
      .strictObject({
        addr: z.union([z.literal(''), listenAddress]).default(':5001'),
        prometheus: z
          .strictObject({ enabled: z.boolean().default(true), path: z.string().startsWith('/').default('/metrics') })
          .prefault({}),
      })
      .prefault({}),
  })
  .prefault({});

/** Sections of Distribution's config.yml that Berth does not implement; accepted, and reported as ignored. */
export const IGNORED_SECTIONS = [
  'auth',
  'middleware',
  'reporting',
  'health',
  'proxy',
  'validation',
  'compatibility',
  'loglevel',
] as const;

export const ConfigSchema = z
  .strictObject({
    version: z.union([z.string(), z.number()]).transform(String).default('0.1'),
    log: LogSchema,
    storage: StorageSchema,
    http: HttpSchema,
    redis: RedisSchema.optional(),
    notifications: NotificationsSchema.optional(),
    ...Object.fromEntries(IGNORED_SECTIONS.map((k) => [k, z.unknown().optional()])),
  })
  .superRefine((c, ctx) => {
    if (c.storage.cache.blobdescriptor === 'redis' && c.redis === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['redis'],
        message: 'storage.cache.blobdescriptor is redis, so a redis section with addrs is required',
      });
    }
  });

export type RawConfig = z.input<typeof ConfigSchema>;
export type ParsedConfig = z.output<typeof ConfigSchema>;

export type StorageConfig =
  | {
      readonly driver: 'filesystem';
      readonly rootdirectory: string;
      readonly eventloopio: 'auto' | 'on' | 'off';
      readonly flushchunks: boolean;
      readonly maxthreads: number;
    }
  | { readonly driver: 'inmemory' };

/** What the code uses: defaults applied, durations in milliseconds, the storage driver chosen. */
export interface ResolvedConfig {
  readonly log: ParsedConfig['log'];
  readonly storage: StorageConfig;
  readonly deleteEnabled: boolean;
  readonly readOnly: boolean;
  readonly redirect: boolean;
  readonly cache: ParsedConfig['storage']['cache'];
  readonly uploadPurging: ParsedConfig['storage']['maintenance']['uploadpurging'];
  readonly http: ParsedConfig['http'];
  readonly redis: RedisConfig | undefined;
  readonly notifications: NotificationsConfig | undefined;
  /** Sections and keys present in the file that Berth ignores. */
  readonly ignored: readonly string[];
}
