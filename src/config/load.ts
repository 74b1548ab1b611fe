// Loading a configuration: YAML file → environment overrides → schema → resolved config.
//
// Environment overrides follow CNCF Distribution: REGISTRY_<SECTION>_<KEY>... sets the key at that path (matched
// case-insensitively; every schema key is one lowercase word), its value read as YAML, so
// REGISTRY_STORAGE_DELETE_ENABLED=true sets storage.delete.enabled to the boolean true. REGISTRY_STORAGE=<driver>
// picks the storage driver, dropping any other driver the file configured.
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import {
  ConfigSchema,
  DRIVER_NAMES,
  IGNORED_SECTIONS,
  type ParsedConfig,
  type ResolvedConfig,
  type StorageConfig,
} from './schema.js';

export class ConfigError extends Error {
  readonly problems: readonly string[];

  constructor(source: string, problems: readonly string[]) {
    super(`${source}: invalid configuration\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Tree = Record<string, unknown>;

function isTree(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Applies REGISTRY_* variables to a raw config tree (in place) and returns it. */
export function applyEnvironment(raw: Tree, env: NodeJS.ProcessEnv): Tree {
  const vars = Object.keys(env)
    .filter((k) => k.startsWith('REGISTRY_') && env[k] !== undefined)
    .sort((a, b) => a.split('_').length - b.split('_').length);
  for (const name of vars) {
    const segments = name.slice('REGISTRY_'.length).split('_').filter(Boolean);
    const value = env[name] ?? '';
    // Kubernetes injects REGISTRY_PORT, REGISTRY_SERVICE_HOST, ... for a Service named `registry`; like
    // Distribution, leave alone whatever does not start with a configuration section.
    if (!TOP_LEVEL_KEYS.has((segments[0] ?? '').toLowerCase())) continue;
    if (segments.length === 1 && segments[0] === 'STORAGE') {
      const storage = isTree(raw['storage']) ? raw['storage'] : (raw['storage'] = {});
      const driver = value.trim().toLowerCase();
      for (const d of DRIVER_NAMES) if (d !== driver) delete storage[d];
      if (!isTree(storage[driver])) storage[driver] = {};
      continue;
    }
    let node = raw;
    let parent = '';
    for (const [i, seg] of segments.entries()) {
      // Every schema key is one lowercase word, so the lowercased segment is the key unless the file spells it
      // otherwise. A number indexes a list the file has (REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL).
      const key = Object.keys(node).find((k) => k.toUpperCase() === seg) ?? seg.toLowerCase();
      if (i === segments.length - 1) {
        // Header values are strings, whatever they look like (`Bearer 123`, `123`).
        node[key] =
          STRING_KEYS.has(key.toLowerCase()) || parent === 'headers' ? stringValue(value) : parseScalar(value);
      } else {
        if (!isTree(node[key]) && !Array.isArray(node[key])) node[key] = {};
        node = node[key] as Tree;
        parent = key.toLowerCase();
      }
    }
  }
  return raw;
}

const TOP_LEVEL_KEYS: ReadonlySet<string> = new Set([
  'version',
  'log',
  'storage',
  'http',
  'redis',
  'notifications',
  'auth',
  ...IGNORED_SECTIONS,
]);

/**
 * Keys whose values are strings whatever they look like: secrets and names that YAML would otherwise turn into
 * numbers, booleans or lists, or cut at a ` #` (a password of `123456`, say, or `abc #def`).
 */
const STRING_KEYS: ReadonlySet<string> = new Set([
  'secret',
  'password',
  'username',
  'accesskey',
  'secretkey',
  'accountkey',
  'sessiontoken',
  'mastername',
  'prefix',
  'rootdirectory',
  'keyfile',
  'bucket',
  'region',
  'regionendpoint',
  'keyid',
  'useragent',
  'realm',
  'accountname',
  'container',
  'connectionstring',
  'serviceurl',
  'clientid',
  'tenantid',
  'service',
  'issuer',
]);

/** A string key's value: as given, unless it is a quoted YAML scalar (`"berth:"`), which is unquoted. */
function stringValue(value: string): string {
  if (/^(["']).*\1$/s.test(value)) {
    const parsed = parseScalar(value);
    if (typeof parsed === 'string') return parsed;
  }
  return value;
}

function parseScalar(value: string): unknown {
  try {
    const parsed: unknown = parseYaml(value);
    return parsed === null ? value : parsed;
  } catch {
    return value;
  }
}

/** Validates a raw tree; throws ConfigError naming each bad field. */
export function resolveConfig(raw: unknown, source = 'config'): ResolvedConfig {
  const result = ConfigSchema.safeParse(raw ?? {});
  if (!result.success) {
    throw new ConfigError(
      source,
      result.error.issues.map((i) => `${i.path.map(String).join('.') || '(top level)'}: ${i.message}`),
    );
  }
  return resolveParsed(result.data, ignoredKeys(raw));
}

/**
 * Keys Distribution's config has and Berth accepts without acting on them, where the raw config sets them: ioredis
 * multiplexes one connection per node (no pool), and events carry no `references`.
 */
const IGNORED_KEYS: ReadonlyArray<readonly [string, string]> = [
  ['redis', 'pool'],
  ['notifications', 'events'],
];

function ignoredKeys(raw: unknown): string[] {
  if (!isTree(raw)) return [];
  const ignored = IGNORED_KEYS.filter(([section, key]) => {
    const tree = raw[section];
    return isTree(tree) && tree[key] !== undefined;
  }).map(([section, key]) => `${section}.${key}`);
  // s3: Berth always signs with v4 (Distribution's v2 signing is for old S3-compatible servers), and a KMS key only
  // applies when encrypt is on.
  const storage = raw['storage'];
  const s3 = isTree(storage) ? storage['s3'] : undefined;
  if (isTree(s3)) {
    if (s3['v4auth'] === false) ignored.push('storage.s3.v4auth');
    if (typeof s3['keyid'] === 'string' && s3['keyid'] !== '' && s3['encrypt'] !== true)
      ignored.push('storage.s3.keyid');
  }
  // gcs: Distribution's bound on concurrent calls; Berth's calls are bounded per writer and per listing instead.
  const gcs = isTree(storage) ? storage['gcs'] : undefined;
  if (isTree(gcs) && gcs['maxconcurrency'] !== undefined) ignored.push('storage.gcs.maxconcurrency');
  // azure: a connection string names the account and endpoint, a serviceurl the endpoint; an explicit credential
  // other than shared_key uses no account key; TLS is always verified.
  const azure = isTree(storage) ? storage['azure'] : undefined;
  if (isTree(azure)) {
    const set = (key: string): boolean => azure[key] !== undefined && azure[key] !== '';
    const type = isTree(azure['credentials']) ? azure['credentials']['type'] : undefined;
    if (set('connectionstring') && set('accountname')) ignored.push('storage.azure.accountname');
    if ((set('connectionstring') || set('serviceurl')) && set('realm')) ignored.push('storage.azure.realm');
    if ((type === 'client_secret' || type === 'default_credentials') && set('accountkey'))
      ignored.push('storage.azure.accountkey');
    if (azure['skipverify'] === true) ignored.push('storage.azure.skipverify');
  }
  return ignored;
}

function resolveParsed(c: ParsedConfig, ignoredKeys: readonly string[]): ResolvedConfig {
  const s = c.storage;
  const storage: StorageConfig =
    // `inmemory:` takes no parameters, so YAML gives it as null: present all the same.
    s.inmemory !== undefined
      ? ({ driver: 'inmemory' } as const)
      : s.s3 !== undefined
        ? { driver: 's3', ...s.s3, region: s.s3.region === '' ? 'us-east-1' : s.s3.region }
        : s.gcs !== undefined
          ? { driver: 'gcs', ...s.gcs }
          : s.azure !== undefined
            ? { driver: 'azure', ...s.azure }
            : ({
                driver: 'filesystem',
                rootdirectory: s.filesystem?.rootdirectory ?? '/var/lib/registry',
                eventloopio: s.filesystem?.eventloopio ?? 'auto',
                flushchunks: s.filesystem?.flushchunks ?? false,
                maxthreads: s.filesystem?.maxthreads ?? 16,
              } as const);
  const present = c as unknown as Tree;
  return {
    log: c.log,
    storage,
    deleteEnabled: s.delete.enabled,
    readOnly: s.maintenance.readonly.enabled,
    redirect: !s.redirect.disable,
    redirectExpiry: s.redirect.expiry,
    verifyReads:
      s.verifyreads === 'on' ||
      (s.verifyreads === 'auto' && (storage.driver === 's3' || storage.driver === 'gcs' || storage.driver === 'azure')),
    cache: s.cache,
    uploadPurging: s.maintenance.uploadpurging,
    gc: s.maintenance.gc,
    http: c.http,
    redis: c.redis,
    notifications: c.notifications,
    auth: c.auth ?? undefined,
    ignored: [...IGNORED_SECTIONS.filter((k) => present[k] !== undefined), ...ignoredKeys],
  };
}

/** Reads a YAML file (or nothing, with only defaults and environment), applies the environment, resolves. */
export async function loadConfig(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedConfig> {
  let raw: unknown = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new ConfigError(file, [`cannot read the file: ${err instanceof Error ? err.message : String(err)}`]);
    }
    try {
      raw = parseYaml(text) ?? {};
    } catch (err) {
      throw new ConfigError(file, [`not valid YAML: ${err instanceof Error ? err.message : String(err)}`]);
    }
    if (!isTree(raw)) throw new ConfigError(file, ['(top level): expected a mapping of keys']);
  }
  return resolveConfig(applyEnvironment(raw as Tree, env), file ?? 'environment');
}
