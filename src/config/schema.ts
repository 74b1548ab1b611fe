// Berth's configuration: one zod schema gives the types, the defaults and validation errors that name the field.
// The raw file uses CNCF Distribution's config.yml keys where they overlap; `resolve` turns it into what the code uses.
import { z } from 'zod';
import { AuthSchema, TlsSchema, type AuthConfig } from './auth.js';
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

export const DRIVER_NAMES = ['filesystem', 'inmemory', 's3', 'gcs', 'azure'] as const;
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

const MiB = 1024 * 1024;
/** S3's smallest part: every part of a multipart upload but the last is at least this big. */
const S3_MIN_PART = 5 * MiB;
/** S3's largest part, and the largest object one CopyObject takes. */
const S3_MAX_PART = 5 * 1024 * MiB;
const byteSize = (def: number, min: number, max: number) =>
  z
    .number()
    .int()
    .min(min, { message: `expected at least ${min} bytes` })
    .max(max, { message: `expected at most ${max} bytes` })
    .default(def);

/** Storage classes without a retrieval delay, as Distribution allows them; NONE sends no class (for servers without). */
export const S3_STORAGE_CLASSES = [
  'NONE',
  'STANDARD',
  'REDUCED_REDUNDANCY',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'OUTPOSTS',
  'GLACIER_IR',
  'EXPRESS_ONEZONE',
] as const;

/** CNCF Distribution's `storage.s3` keys, with its defaults and bounds. */
const S3Params = z
  .strictObject({
    /** With no accesskey and secretkey, the SDK's default credential chain applies (IRSA, instance roles, env). */
    accesskey: z.string().default(''),
    secretkey: z.string().default(''),
    /** Required on AWS; with a regionendpoint it only names the signing region (us-east-1 when empty). */
    region: z.string().default(''),
    /** An S3-compatible endpoint (`host:port`, or a URL); its scheme comes from `secure` when it has none. */
    regionendpoint: z.string().default(''),
    forcepathstyle: z.boolean().default(false),
    bucket: z.string().min(1, { message: 'the bucket name is required' }),
    rootdirectory: z.string().default(''),
    /** Server-side encryption: SSE-S3 (AES256), or SSE-KMS with `keyid`. */
    encrypt: z.boolean().default(false),
    keyid: z.string().default(''),
    secure: z.boolean().default(true),
    skipverify: z.boolean().default(false),
    /** Berth always signs with v4; `false` is accepted and reported as ignored. */
    v4auth: z.boolean().default(true),
    /** Part size of multipart uploads: what one writer holds in memory per part in flight. */
    chunksize: byteSize(2 * S3_MIN_PART, S3_MIN_PART, S3_MAX_PART),
    multipartcopychunksize: byteSize(32 * MiB, S3_MIN_PART, S3_MAX_PART),
    multipartcopymaxconcurrency: z.number().int().min(1).max(10_000).default(100),
    /** Objects above this size are moved by multipart copy, at or below it by one CopyObject. */
    multipartcopythresholdsize: byteSize(32 * MiB, 0, S3_MAX_PART),
    storageclass: z
      .string()
      .transform((v) => v.toUpperCase())
      .pipe(z.enum(S3_STORAGE_CLASSES))
      .default('STANDARD'),
    useragent: z.string().default(''),
  })
  .superRefine((s, ctx) => {
    if (s.regionendpoint === '' && s.region === '') {
      ctx.addIssue({
        code: 'custom',
        path: ['region'],
        message: 'a region is required unless regionendpoint names an S3-compatible server',
      });
    }
  });

/** GCS takes resumable-upload chunks in multiples of 256 KiB, as Distribution's `chunksize` must be. */
const GCS_CHUNK_UNIT = 256 * 1024;

/** CNCF Distribution's `storage.gcs` keys, with its defaults and bounds, plus `endpoint` for emulators. */
const GcsParams = z.strictObject({
  bucket: z.string().min(1, { message: 'the bucket name is required' }),
  /** A service-account key file; without it (or `credentials`), Application Default Credentials (workload identity). */
  keyfile: z.string().default(''),
  /** A service-account key inline, as Distribution takes it (the key file's fields). */
  credentials: z
    .record(z.string(), z.string())
    .refine((c) => c['client_email'] !== undefined && c['private_key'] !== undefined, {
      message: 'expected a service-account key with client_email and private_key',
    })
    .optional(),
  rootdirectory: z.string().default(''),
  /** Chunk size of resumable uploads: what one writer holds in memory. */
  chunksize: byteSize(16 * MiB, GCS_CHUNK_UNIT, 5 * 1024 * MiB).refine((n) => n % GCS_CHUNK_UNIT === 0, {
    message: `expected a multiple of ${GCS_CHUNK_UNIT} bytes`,
  }),
  useragent: z.string().default(''),
  /** Distribution bounds its concurrent GCS calls with this; Berth does not, and reports it as ignored. */
  maxconcurrency: z.number().int().min(1).optional(),
  /**
   * Base URL of the JSON API, for an emulator such as fake-gcs-server (`http://host:4443`); Google's when empty.
   * Requests to it carry credentials only when `keyfile` or `credentials` is set.
   */
  endpoint: z
    .string()
    .refine((v) => v === '' || (URL.canParse(v) && /^https?:\/\/[^/]/.test(v)), {
      message: 'expected an http or https URL, such as http://127.0.0.1:4443',
    })
    .default(''),
});

/** Azure's rules: account names are 3–24 lowercase letters and digits; containers 3–63, with single hyphens inside. */
const AZURE_ACCOUNT = /^[a-z0-9]{3,24}$/;
const AZURE_CONTAINER = /^(?=.{3,63}$)[a-z0-9](?:-?[a-z0-9])*$/;
export const AZURE_CREDENTIAL_TYPES = ['shared_key', 'client_secret', 'default_credentials'] as const;

/**
 * CNCF Distribution's `storage.azure` keys, plus `connectionstring` (Azurite, or any endpoint with its key) and
 * `serviceurl` (an endpoint other than `https://<accountname>.blob.<realm>`). Without a key, a connection string or
 * `credentials`, DefaultAzureCredential applies: workload identity on AKS, managed identity, the environment.
 */
const AzureParams = z
  .strictObject({
    accountname: z.string().default(''),
    /** The account's shared key, base64. */
    accountkey: z.string().default(''),
    container: z.string().regex(AZURE_CONTAINER, {
      message: 'expected a container name of 3 to 63 lowercase letters, digits and single hyphens',
    }),
    realm: z.string().min(1).default('core.windows.net'),
    rootdirectory: z.string().default(''),
    serviceurl: z
      .string()
      .refine((v) => v === '' || (URL.canParse(v) && /^https?:\/\/[^/]/.test(v)), {
        message: 'expected an http or https URL, such as https://myaccount.blob.core.windows.net',
      })
      .default(''),
    connectionstring: z
      .string()
      .refine((v) => v === '' || /(?:^|;)\s*(?:AccountName|BlobEndpoint)=/i.test(v), {
        message: 'expected an Azure Storage connection string with AccountName= or BlobEndpoint=',
      })
      .default(''),
    /** Distribution's explicit choice of credential; the keys above choose one when it is absent. */
    credentials: z
      .strictObject({
        type: z.enum(AZURE_CREDENTIAL_TYPES),
        clientid: z.string().default(''),
        tenantid: z.string().default(''),
        secret: z.string().default(''),
      })
      .optional(),
    /** Retries of a failed request (exponential backoff from retry_delay); -1 for none. */
    max_retries: z.number().int().min(-1).max(20).default(5),
    retry_delay: duration.refine((ms) => ms > 0 && ms <= 60_000, { message: 'expected from 1ms to 60s' }).default(100),
    /** Distribution skips TLS verification with it; Berth does not, and reports `true` as ignored. */
    skipverify: z.boolean().default(false),
  })
  .superRefine((a, ctx) => {
    const issue = (path: (string | number)[], message: string): void => {
      ctx.addIssue({ code: 'custom', path, message });
    };
    if (a.connectionstring !== '') {
      for (const key of ['accountkey', 'serviceurl'] as const) {
        if (a[key] !== '') issue([key], 'give either connectionstring, which carries it, or this key');
      }
      if (a.credentials !== undefined) issue(['credentials'], 'give either connectionstring or credentials');
    } else if (!AZURE_ACCOUNT.test(a.accountname)) {
      issue(
        ['accountname'],
        a.accountname === ''
          ? 'the account name is required unless connectionstring is given'
          : 'expected an account name of 3 to 24 lowercase letters and digits',
      );
    }
    if (a.accountkey !== '' && !/^[A-Za-z0-9+/]+={0,2}$/.test(a.accountkey)) {
      issue(['accountkey'], 'expected the account key as Azure shows it (base64)');
    }
    if (a.credentials?.type === 'shared_key' && a.accountkey === '' && a.connectionstring === '') {
      issue(['accountkey'], 'credentials.type shared_key needs the account key');
    }
    if (a.credentials?.type === 'client_secret') {
      for (const key of ['clientid', 'tenantid', 'secret'] as const) {
        if (a.credentials[key] === '') issue(['credentials', key], 'required with credentials.type client_secret');
      }
    }
  });

const StorageSchema = z
  .strictObject({
    filesystem: FilesystemParams.nullish(),
    inmemory: z.strictObject({}).nullish(),
    s3: S3Params.optional(),
    gcs: GcsParams.optional(),
    azure: AzureParams.optional(),
    delete: enabledFlag(false),
    /**
     * Whether a blob streamed through Berth is hashed on the way and cut before its last bytes when they are not its
     * digest's (ranges are checked for their length only; manifests are always hashed). `auto` hashes on the object
     * stores, where an object can change behind Berth's back; on a local disk it costs a third of a pull's rate.
     */
    verifyreads: z.enum(['auto', 'on', 'off']).default('auto'),
    /**
     * Blob GETs answer 307 to a URL on the storage backend (S3 presigned, GCS signed) when the driver can hand one
     * out, so bytes bypass the registry; `disable` streams them through Berth. `expiry` is how long such a URL
     * works (Distribution's 20 minutes; at most 7 days, as S3 and GCS allow).
     */
    redirect: z
      .strictObject({
        disable: z.boolean().default(false),
        expiry: duration
          .refine((ms) => ms >= 1000 && ms <= 7 * 24 * 3_600_000, { message: 'expected from 1s to 168h' })
          .default(20 * 60_000),
      })
      .prefault({}),
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
        /**
         * Online garbage collection inside `berth serve`: about every `interval` one replica of a shared store (the
         * holder of a lease in storage) collects; nothing modified within `graceperiod` is swept.
         */
        gc: z
          .strictObject({
            enabled: z.boolean().default(false),
            interval: duration.refine((ms) => ms >= 1000, { message: 'expected at least 1s' }).default(24 * 3_600_000),
            graceperiod: duration
              .refine((ms) => ms >= 1000, { message: 'expected at least 1s (pushes in flight need it)' })
              .default(3_600_000),
            deleteuntagged: z.boolean().default(false),
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
    /** Signs upload locations (HMAC), so every replica with the same secret accepts what another handed out. */
    secret: z.string().optional(),
    tls: TlsSchema.optional(),
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
    auth: AuthSchema.nullish(),
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
  | { readonly driver: 'inmemory' }
  | S3StorageConfig
  | GcsStorageConfig
  | AzureStorageConfig;

/** The s3 driver's settings, defaults applied; `region` is set (us-east-1 when only an endpoint was given). */
export type S3StorageConfig = { readonly driver: 's3' } & Readonly<z.output<typeof S3Params>>;

/** The gcs driver's settings, defaults applied. */
export type GcsStorageConfig = { readonly driver: 'gcs' } & Readonly<z.output<typeof GcsParams>>;

/** The azure driver's settings, defaults applied. */
export type AzureStorageConfig = { readonly driver: 'azure' } & Readonly<z.output<typeof AzureParams>>;

/** What the code uses: defaults applied, durations in milliseconds, the storage driver chosen. */
export interface ResolvedConfig {
  readonly log: ParsedConfig['log'];
  readonly storage: StorageConfig;
  readonly deleteEnabled: boolean;
  readonly readOnly: boolean;
  /** Whether blob GETs redirect to the storage backend when the driver offers a URL (storage.redirect.disable). */
  readonly redirect: boolean;
  /** How long a redirect URL stays good, in milliseconds (storage.redirect.expiry). */
  readonly redirectExpiry: number;
  /** Whether whole blob reads are hashed against their digest (storage.verifyreads, `auto` resolved). */
  readonly verifyReads: boolean;
  readonly cache: ParsedConfig['storage']['cache'];
  readonly uploadPurging: ParsedConfig['storage']['maintenance']['uploadpurging'];
  /** Online garbage collection (storage.maintenance.gc), durations in milliseconds. */
  readonly gc: ParsedConfig['storage']['maintenance']['gc'];
  readonly http: ParsedConfig['http'];
  readonly redis: RedisConfig | undefined;
  readonly notifications: NotificationsConfig | undefined;
  /** Access control; undefined serves everyone. */
  readonly auth: AuthConfig | undefined;
  /** Sections and keys present in the file that Berth ignores. */
  readonly ignored: readonly string[];
}
