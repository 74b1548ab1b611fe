// Turns a Registry into the registry's config.yml and the environment its container needs. Pure: secrets never
// appear in the file, only as environment variables that reference Secrets, so the ConfigMap is safe to read.
import { createHash } from 'node:crypto';
import type { V1EnvVar } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { Registry, RegistrySpec } from './api/types.js';
import { names } from './names.js';

export const CONFIG_DIR = '/etc/berth';
export const CONFIG_FILE = `${CONFIG_DIR}/config.yml`;
export const DATA_DIR = '/var/lib/registry';
export const HTPASSWD_DIR = '/etc/berth/auth';
export const TOKEN_BUNDLE_DIR = '/etc/berth/token';
export const TLS_DIR = '/etc/berth/tls';
export const CLIENT_CA_DIR = '/etc/berth/client-ca';
export const GCS_KEY_DIR = '/etc/berth/gcs';
export const REGISTRY_PORT = 5000;
export const DEBUG_PORT = 5001;
export const REDIS_PORT = 6379;

type Tree = { [key: string]: unknown };

/** The `auth` section: files come from the Secrets the pod mounts (see builders), never inline. */
function renderAuth(spec: RegistrySpec): Tree | undefined {
  const auth = spec.auth;
  if (auth === undefined) return undefined;
  const out: Tree = {};
  if (auth.htpasswd !== undefined) {
    out['htpasswd'] = { realm: 'berth', path: `${HTPASSWD_DIR}/${auth.htpasswd.key}` };
  }
  if (auth.token !== undefined) {
    const t = auth.token;
    out['token'] = {
      realm: t.realm,
      service: t.service,
      issuer: t.issuer,
      ...(t.rootCertBundle === undefined ? {} : { rootcertbundle: `${TOKEN_BUNDLE_DIR}/${t.rootCertBundle.key}` }),
      ...(t.jwksUrl === undefined ? {} : { jwks: t.jwksUrl }),
      ...(t.signingAlgorithms === undefined ? {} : { signingalgorithms: t.signingAlgorithms }),
    };
  }
  if (auth.policy !== undefined) {
    const p = auth.policy;
    out['policy'] = {
      ...(p.groups === undefined ? {} : { groups: p.groups }),
      ...(p.catalog === undefined ? {} : { catalog: p.catalog }),
      rules: (p.rules ?? []).map((r) => ({ repository: r.repository, access: r.access })),
    };
  }
  return Object.keys(out).length === 0 ? undefined : out;
}

export interface RenderedConfig {
  /** The parsed config, before serialising. */
  readonly config: Tree;
  /** config.yml as it goes into the ConfigMap. */
  readonly yaml: string;
  /** Secret-backed environment variables (`REGISTRY_*` overrides). */
  readonly env: readonly V1EnvVar[];
  /** sha256 of the file and the environment: changes whenever the pods must restart. */
  readonly hash: string;
}

/** Which storage backend a spec uses (exactly one, as the CRD's rule guarantees). */
export function storageKind(spec: RegistrySpec): 'filesystem' | 'emptyDir' | 's3' | 'azure' | 'gcs' {
  const s = spec.storage;
  if (s.s3 !== undefined) return 's3';
  if (s.azure !== undefined) return 'azure';
  if (s.gcs !== undefined) return 'gcs';
  if (s.emptyDir !== undefined) return 'emptyDir';
  return 'filesystem';
}

/** The in-cluster `host:port` of the Redis a registry uses, or undefined without Redis. */
export function redisAddress(registry: Registry): string | undefined {
  const { cache } = registry.spec;
  if (cache.type !== 'redis' || cache.redis === undefined) return undefined;
  if (cache.redis.managed)
    return `${names(registry).redis}.${registry.metadata?.namespace ?? 'default'}.svc:${REDIS_PORT}`;
  return cache.redis.address;
}

/**
 * Where garbage collection runs: in the registry pods (online), in a CronJob (schedule), or nowhere. A schedule wins
 * over enabled, so the two never collect side by side with different settings.
 */
export function gcMode(spec: RegistrySpec): 'off' | 'online' | 'cronjob' {
  const gc = spec.gc;
  if (gc === undefined) return 'off';
  if (gc.schedule !== undefined) return 'cronjob';
  return gc.enabled ? 'online' : 'off';
}

/**
 * `storage.maintenance.gc`: only `enabled: false` unless the pods collect, so settings that do not reach them
 * (a schedule, the interval of collection that is off) leave the file, and so the pods, alone.
 */
function gcSection(spec: RegistrySpec): Tree | undefined {
  const gc = spec.gc;
  if (gc === undefined) return undefined;
  if (gcMode(spec) !== 'online') return { enabled: false };
  return { enabled: true, interval: gc.interval, graceperiod: gc.gracePeriod, deleteuntagged: gc.deleteUntagged };
}

function secretEnv(name: string, secret: string, key: string): V1EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: secret, key } } };
}

function storageSection(spec: RegistrySpec): { section: Tree; env: V1EnvVar[] } {
  const { storage } = spec;
  if (storage.s3 !== undefined) {
    const s3 = storage.s3;
    const section: Tree = {
      bucket: s3.bucket,
      region: s3.region,
      rootdirectory: s3.rootDirectory,
      forcepathstyle: s3.forcePathStyle,
    };
    if (s3.endpoint !== undefined) section['regionendpoint'] = s3.endpoint;
    const env = s3.credentialsSecret
      ? [
          secretEnv('REGISTRY_STORAGE_S3_ACCESSKEY', s3.credentialsSecret.name, s3.credentialsSecret.accessKeyIdKey),
          secretEnv(
            'REGISTRY_STORAGE_S3_SECRETKEY',
            s3.credentialsSecret.name,
            s3.credentialsSecret.secretAccessKeyKey,
          ),
        ]
      : [];
    return { section: { s3: section }, env };
  }
  if (storage.azure !== undefined) {
    const az = storage.azure;
    const env = az.credentialsSecret
      ? [secretEnv('REGISTRY_STORAGE_AZURE_ACCOUNTKEY', az.credentialsSecret.name, az.credentialsSecret.key)]
      : [];
    const section: Tree = { accountname: az.accountName, container: az.container, rootdirectory: az.rootDirectory };
    if (az.serviceURL !== undefined) section['serviceurl'] = az.serviceURL;
    return { section: { azure: section }, env };
  }
  if (storage.gcs !== undefined) {
    const gcs = storage.gcs;
    const section: Tree = { bucket: gcs.bucket, rootdirectory: gcs.rootDirectory };
    if (gcs.credentialsSecret !== undefined) section['keyfile'] = `${GCS_KEY_DIR}/${gcs.credentialsSecret.key}`;
    if (gcs.endpoint !== undefined) section['endpoint'] = gcs.endpoint;
    return { section: { gcs: section }, env: [] };
  }
  // A claim is usually a network block device (EBS, a persistent disk, Ceph RBD) that can stall for seconds, beyond
  // what statfs can tell from a local disk: its calls never run on the event loop. An emptyDir is the node's own disk.
  const filesystem: Tree =
    storage.emptyDir === undefined ? { rootdirectory: DATA_DIR, eventloopio: 'off' } : { rootdirectory: DATA_DIR };
  return { section: { filesystem }, env: [] };
}

const withKey = (key: string, value: Tree | undefined): Tree => (value === undefined ? {} : { [key]: value });

function isTree(value: unknown): value is Tree {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deep merge for config overrides: objects merge key by key, anything else (arrays included) replaces. */
export function mergeConfig(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isTree(current) && isTree(value) ? mergeConfig(current, value) : value;
  }
  return out;
}

/**
 * `secretVersions` (`name@resourceVersion` of every Secret the pods read) go into the hash, so rotating a Secret rolls
 * the pods that hold its old value in their environment.
 */
export function renderConfig(
  registry: Registry,
  httpSecret: { readonly name: string; readonly key: string },
  secretVersions: readonly string[] = [],
): RenderedConfig {
  const { spec } = registry;
  const storage = storageSection(spec);
  const env: V1EnvVar[] = [secretEnv('REGISTRY_HTTP_SECRET', httpSecret.name, httpSecret.key), ...storage.env];
  const cache = spec.cache;
  const cacheSection: Tree = { blobdescriptor: cache.type, blobdescriptorsize: cache.size };
  let config: Tree = {
    version: 0.1,
    log: {
      level: spec.logLevel,
      formatter: 'json',
      fields: { service: 'registry', registry: registry.metadata?.name },
    },
    storage: {
      ...storage.section,
      delete: { enabled: spec.deleteEnabled },
      cache: cacheSection,
      maintenance: { readonly: { enabled: spec.readOnly }, ...withKey('gc', gcSection(spec)) },
    },
    http: {
      addr: `:${REGISTRY_PORT}`,
      debug: { addr: `:${DEBUG_PORT}`, prometheus: { enabled: spec.metrics.enabled, path: '/metrics' } },
    },
  };
  const redis = redisAddress(registry);
  if (redis !== undefined && cache.redis !== undefined) {
    cacheSection['twotier'] = cache.redis.twoTier;
    config['redis'] = { addrs: [redis], db: cache.redis.db };
    if (cache.redis.passwordSecret !== undefined) {
      env.push(secretEnv('REGISTRY_REDIS_PASSWORD', cache.redis.passwordSecret.name, cache.redis.passwordSecret.key));
    }
  }
  const auth = renderAuth(spec);
  if (auth !== undefined) config['auth'] = auth;
  const endpoints = spec.notifications?.endpoints ?? [];
  if (endpoints.length > 0) {
    config['notifications'] = {
      endpoints: endpoints.map((e, i) => {
        // Secret headers arrive as REGISTRY_NOTIFICATIONS_ENDPOINTS_<i>_HEADERS_<header>, which Berth sets on the
        // endpoint at that index of the file: never in the ConfigMap.
        for (const h of e.headerSecrets) {
          env.push(secretEnv(`REGISTRY_NOTIFICATIONS_ENDPOINTS_${i}_HEADERS_${h.header.toUpperCase()}`, h.name, h.key));
        }
        return {
          name: e.name,
          url: e.url,
          headers: Object.fromEntries(Object.entries(e.headers).map(([k, v]) => [k, [v]])),
          timeout: e.timeout,
          threshold: e.threshold,
          backoff: e.backoff,
          ignore: { mediatypes: e.ignoredMediaTypes, actions: e.ignoredActions },
        };
      }),
    };
  }
  if (spec.tls !== undefined) {
    const http = config['http'] as Tree;
    http['tls'] = {
      certificate: `${TLS_DIR}/tls.crt`,
      key: `${TLS_DIR}/tls.key`,
      ...(spec.tls.clientCA === undefined ? {} : { clientcas: [`${CLIENT_CA_DIR}/${spec.tls.clientCA.key}`] }),
      minimumversion: spec.tls.minimumVersion,
    };
  }
  if (spec.configOverrides !== undefined) config = mergeConfig(config, spec.configOverrides);
  const yaml = `# Rendered by the Berth operator from Registry ${registry.metadata?.namespace}/${registry.metadata?.name}; edits are overwritten.\n${stringify(config)}`;
  const hash = createHash('sha256')
    .update(yaml)
    .update('\0')
    .update(JSON.stringify(env))
    .update('\0')
    .update([...secretVersions].sort().join(','))
    .digest('hex');
  return { config, yaml, env, hash };
}
