import assert from 'node:assert/strict';
import type { V1EnvVar } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { applyEnvironment, resolveConfig } from '../../src/config/load.js';
import { DRIVER_NAMES } from '../../src/config/schema.js';
import { registrySchema } from '../../src/operator/api/schema.js';
import type { RegistrySpec } from '../../src/operator/api/types.js';
import {
  DATA_DIR,
  GCS_KEY_DIR,
  HTPASSWD_DIR,
  TOKEN_BUNDLE_DIR,
  TLS_DIR,
  CLIENT_CA_DIR,
  mergeConfig,
  redisAddress,
  renderConfig,
  storageKind,
} from '../../src/operator/render-config.js';
import { NAMESPACE, registry, type DeepPartial } from './fixtures.js';

const HTTP_SECRET = { name: 'reg-http-secret', key: 'secret' } as const;

function render(spec: DeepPartial<RegistrySpec> = {}, httpSecret: { name: string; key: string } = HTTP_SECRET) {
  return renderConfig(registry(spec), httpSecret);
}

type Tree = Record<string, unknown>;

/** The value at a dotted path of a parsed config. */
function at(tree: unknown, path: string): unknown {
  let node = tree;
  for (const key of path.split('.')) node = (node as Tree | undefined)?.[key];
  return node;
}

/** The environment as the kubelet would give it, with each Secret reference replaced by `secrets["name/key"]`. */
function kubeletEnv(env: readonly V1EnvVar[], secrets: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env) {
    const ref = e.valueFrom?.secretKeyRef;
    const value = ref === undefined ? e.value : secrets[`${ref.name}/${ref.key}`];
    assert.ok(value !== undefined, `no value for ${e.name}`);
    out[e.name] = value;
  }
  return out;
}

/** Specs that Berth's own config must accept (its drivers are filesystem and inmemory). */
const ACCEPTED: Record<string, DeepPartial<RegistrySpec>> = {
  'the defaults (filesystem on a new PVC)': {},
  'an existing claim': { storage: { filesystem: { existingClaim: 'images', accessMode: 'ReadWriteMany' } } },
  'an emptyDir': { storage: { emptyDir: {} } },
  'no cache': { cache: { type: 'none' } },
  'an external Redis with a password': {
    cache: { type: 'redis', redis: { address: 'redis.shared:6379', db: 3, passwordSecret: { name: 'redis' } } },
  },
  'a managed Redis without the two-tier cache': { cache: { type: 'redis', redis: { managed: true, twoTier: false } } },
  'htpasswd, read-only, delete and debug logging': {
    auth: { htpasswd: { name: 'users' } },
    readOnly: true,
    deleteEnabled: true,
    logLevel: 'debug',
    metrics: { enabled: false },
  },
  'token auth with a certificate bundle and a JWKS': {
    auth: {
      token: {
        realm: 'https://auth.example.com/token',
        service: 'registry.example.com',
        issuer: 'auth.example.com',
        rootCertBundle: { name: 'token-signer' },
        jwksUrl: 'https://auth.example.com/jwks.json',
        signingAlgorithms: ['ES256', 'RS256'],
      },
    },
  },
  'htpasswd with a policy, and TLS with a client CA': {
    auth: {
      htpasswd: { name: 'users' },
      policy: {
        groups: { 'team-a': ['alice'] },
        catalog: ['authenticated'],
        rules: [
          { repository: ['library/*'], access: { anonymous: ['pull'], '@team-a': ['pull', 'push'] } },
          { repository: ['team-a/**'], access: { '@team-a': ['*'] } },
        ],
      },
    },
    tls: { secretName: 'registry-tls', clientCA: { name: 'clients' }, minimumVersion: 'tls1.3' },
  },
  'online garbage collection': { gc: { enabled: true, interval: '6h', gracePeriod: '90m', deleteUntagged: true } },
  'garbage collection on a schedule': {
    storage: { s3: { bucket: 'images' } },
    cache: { type: 'none' },
    gc: { schedule: '0 3 * * *' },
  },
  'config overrides of Distribution keys': {
    configOverrides: {
      http: { headers: { 'X-Content-Type-Options': ['nosniff'] } },
      storage: { redirect: { disable: true } },
    },
  },
};

describe('operator/render-config', function () {
  describe('renderConfig for Berth’s own config schema', function () {
    for (const [title, spec] of Object.entries(ACCEPTED)) {
      it(`renders a config.yml that Berth accepts for ${title}`, function () {
        const rendered = render(spec);
        const raw: unknown = parse(rendered.yaml);
        assert.deepEqual(raw, rendered.config, 'the YAML is the config');
        assert.doesNotThrow(() => resolveConfig(raw, 'rendered'));
      });
    }

    it('carries the spec into the resolved config', function () {
      const resolved = resolveConfig(
        parse(render({ deleteEnabled: true, readOnly: true, logLevel: 'warn', cache: { size: 77 } }).yaml),
      );
      // A claim may be a network block device that stalls: its calls stay off the event loop.
      assert.deepEqual(resolved.storage, {
        driver: 'filesystem',
        rootdirectory: DATA_DIR,
        eventloopio: 'off',
        flushchunks: false,
        maxthreads: 16,
      });
      assert.equal(resolved.deleteEnabled, true);
      assert.equal(resolved.readOnly, true);
      assert.equal(resolved.log.level, 'warn');
      assert.equal(resolved.cache.blobdescriptor, 'inmemory');
      assert.equal(resolved.cache.blobdescriptorsize, 77);
      assert.equal(resolved.http.addr, ':5000');
      assert.equal(resolved.http.debug.addr, ':5001');
      assert.equal(resolved.http.debug.prometheus.enabled, true);
    });

    it('keeps an emptyDir registry on the filesystem driver in the data directory, judged by statfs', function () {
      const resolved = resolveConfig(parse(render({ storage: { emptyDir: {} } }).yaml));
      assert.deepEqual(resolved.storage, {
        driver: 'filesystem',
        rootdirectory: DATA_DIR,
        eventloopio: 'auto',
        flushchunks: false,
        maxthreads: 16,
      });
    });

    it('points the registry at a managed Redis and its two-tier cache', function () {
      const resolved = resolveConfig(parse(render({ cache: { type: 'redis', redis: { managed: true } } }).yaml));
      assert.equal(resolved.cache.blobdescriptor, 'redis');
      assert.equal(resolved.cache.twotier, true);
      assert.deepEqual(resolved.redis?.addrs, [`reg-redis.${NAMESPACE}.svc:6379`]);
    });

    it('lets the Secret-backed environment set http.secret and redis.password, as the pod gets it', function () {
      const rendered = render(
        { cache: { type: 'redis', redis: { address: 'redis:6379', passwordSecret: { name: 'redis-auth' } } } },
        { name: 'signing', key: 'value' },
      );
      const env = kubeletEnv(rendered.env, { 'signing/value': 'sign-me', 'redis-auth/password': 'hunter-two' });
      const resolved = resolveConfig(applyEnvironment(parse(rendered.yaml) as Tree, env));
      assert.equal(resolved.http.secret, 'sign-me');
      assert.equal(resolved.redis?.password, 'hunter-two');
    });
  });

  describe('notifications', function () {
    const spec: DeepPartial<RegistrySpec> = {
      notifications: {
        endpoints: [
          {
            name: 'audit',
            url: 'https://audit.example/events',
            headers: {},
            headerSecrets: [],
            timeout: '1s',
            threshold: 10,
            backoff: '1s',
            ignoredActions: [],
            ignoredMediaTypes: ['application/octet-stream'],
          },
          {
            name: 'ci',
            url: 'http://ci.example/hook',
            headers: { 'X-Team': 'builds' },
            headerSecrets: [{ header: 'Authorization', name: 'hook-token', key: 'token' }],
            timeout: '3s',
            threshold: 4,
            backoff: '30s',
            ignoredActions: ['pull'],
            ignoredMediaTypes: [],
          },
        ],
      },
    };

    it('renders each endpoint with Distribution’s keys, and a header from a Secret only into the environment', function () {
      const rendered = render(spec);
      assert.doesNotMatch(rendered.yaml, /Authorization|hook-token/);
      assert.deepEqual(rendered.env.at(-1), {
        name: 'REGISTRY_NOTIFICATIONS_ENDPOINTS_1_HEADERS_AUTHORIZATION',
        valueFrom: { secretKeyRef: { name: 'hook-token', key: 'token' } },
      });
      const env = kubeletEnv(rendered.env, { 'reg-http-secret/secret': 's', 'hook-token/token': 'Bearer 42' });
      const resolved = resolveConfig(applyEnvironment(parse(rendered.yaml) as Tree, env));
      const [audit, ci] = resolved.notifications?.endpoints ?? [];
      assert.equal(audit?.url, 'https://audit.example/events');
      assert.deepEqual(audit?.ignore.mediatypes, ['application/octet-stream']);
      assert.deepEqual(audit?.headers, {});
      assert.deepEqual(ci?.headers, { 'X-Team': ['builds'], authorization: 'Bearer 42' });
      assert.equal(ci?.timeout, 3_000);
      assert.equal(ci?.threshold, 4);
      assert.equal(ci?.backoff, 30_000);
      assert.deepEqual(ci?.ignore.actions, ['pull']);
    });

    it('renders no notifications section without endpoints', function () {
      assert.equal(at(parse(render({}).yaml), 'notifications'), undefined);
    });
  });

  describe('secrets', function () {
    const spec: DeepPartial<RegistrySpec> = {
      httpSecret: { secretRef: { name: 'mine', key: 'k' } },
      cache: { type: 'redis', redis: { address: 'r:6379', passwordSecret: { name: 'redis-auth', key: 'pw' } } },
      auth: { htpasswd: { name: 'users' } },
    };

    it('keeps the HTTP secret and the Redis password out of the file', function () {
      const config = parse(render(spec, { name: 'mine', key: 'k' }).yaml) as Tree;
      assert.equal(at(config, 'http.secret'), undefined);
      assert.equal(at(config, 'redis.password'), undefined);
    });

    it('passes them as environment variables that reference the Secrets', function () {
      const { env } = render(spec, { name: 'mine', key: 'k' });
      assert.deepEqual(env, [
        { name: 'REGISTRY_HTTP_SECRET', valueFrom: { secretKeyRef: { name: 'mine', key: 'k' } } },
        { name: 'REGISTRY_REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'redis-auth', key: 'pw' } } },
      ]);
    });

    it('passes object storage credentials as Secret references only', function () {
      const s3 = render({
        storage: {
          s3: { bucket: 'images', credentialsSecret: { name: 'aws', accessKeyIdKey: 'id', secretAccessKeyKey: 'key' } },
        },
      });
      const azure = render({
        storage: { azure: { accountName: 'acct', container: 'images', credentialsSecret: { name: 'az' } } },
      });
      for (const { yaml, env } of [s3, azure]) {
        assert.doesNotMatch(yaml, /accesskey|secretkey|accountkey/i);
        for (const e of env) assert.equal(e.value, undefined, `${e.name} carries a literal value`);
      }
      assert.deepEqual(
        s3.env.map((e) => [e.name, e.valueFrom?.secretKeyRef?.name, e.valueFrom?.secretKeyRef?.key]),
        [
          ['REGISTRY_HTTP_SECRET', HTTP_SECRET.name, HTTP_SECRET.key],
          ['REGISTRY_STORAGE_S3_ACCESSKEY', 'aws', 'id'],
          ['REGISTRY_STORAGE_S3_SECRETKEY', 'aws', 'key'],
        ],
      );
      assert.deepEqual(azure.env.at(-1), {
        name: 'REGISTRY_STORAGE_AZURE_ACCOUNTKEY',
        valueFrom: { secretKeyRef: { name: 'az', key: 'accountKey' } },
      });
    });

    it('names the mounted token bundle, TLS and client CA files, never their contents', function () {
      const token = parse(render(ACCEPTED['token auth with a certificate bundle and a JWKS'] ?? {}).yaml) as Tree;
      assert.deepEqual(at(token, 'auth.token'), {
        realm: 'https://auth.example.com/token',
        service: 'registry.example.com',
        issuer: 'auth.example.com',
        rootcertbundle: `${TOKEN_BUNDLE_DIR}/ca.crt`,
        jwks: 'https://auth.example.com/jwks.json',
        signingalgorithms: ['ES256', 'RS256'],
      });
      const tls = parse(render(ACCEPTED['htpasswd with a policy, and TLS with a client CA'] ?? {}).yaml) as Tree;
      assert.deepEqual(at(tls, 'http.tls'), {
        certificate: `${TLS_DIR}/tls.crt`,
        key: `${TLS_DIR}/tls.key`,
        clientcas: [`${CLIENT_CA_DIR}/ca.crt`],
        minimumversion: 'tls1.3',
      });
      assert.equal((at(tls, 'auth.policy.rules') as unknown[]).length, 2);
    });

    it('names the mounted htpasswd file, not its contents', function () {
      const config = parse(render(spec).yaml) as Tree;
      assert.deepEqual(at(config, 'auth.htpasswd'), { realm: 'berth', path: `${HTPASSWD_DIR}/htpasswd` });
    });
  });

  describe('configOverrides', function () {
    it('merges into nested sections key by key, keeping the rendered siblings', function () {
      const { config } = render({ configOverrides: { storage: { cache: { blobdescriptorsize: 5 } } } });
      assert.equal(at(config, 'storage.cache.blobdescriptorsize'), 5);
      assert.equal(at(config, 'storage.cache.blobdescriptor'), 'inmemory');
      assert.equal(at(config, 'storage.filesystem.rootdirectory'), DATA_DIR);
    });

    it('wins over what the operator renders from the spec', function () {
      const { config } = render({
        logLevel: 'info',
        readOnly: false,
        cache: { type: 'redis', redis: { address: 'a:1' } },
        configOverrides: {
          log: { level: 'error' },
          storage: { maintenance: { readonly: { enabled: true } } },
          redis: { addrs: ['b:2', 'c:3'], cluster: true },
        },
      });
      assert.equal(at(config, 'log.level'), 'error');
      assert.equal(at(config, 'storage.maintenance.readonly.enabled'), true);
      assert.deepEqual(at(config, 'redis.addrs'), ['b:2', 'c:3'], 'lists are replaced, not concatenated');
      assert.equal(at(config, 'redis.cluster'), true);
    });

    it('replaces a section with a scalar, and leaves both inputs unchanged (mergeConfig)', function () {
      const base = { a: { b: 1, c: [1, 2] }, d: { e: 1 } };
      const over = { a: { c: [3] }, d: 'flat' };
      assert.deepEqual(mergeConfig(base, over), { a: { b: 1, c: [3] }, d: 'flat' });
      assert.deepEqual(base, { a: { b: 1, c: [1, 2] }, d: { e: 1 } });
      assert.deepEqual(over, { a: { c: [3] }, d: 'flat' });
    });
  });

  describe('hash', function () {
    it('is the same for the same Registry', function () {
      assert.equal(render({ deleteEnabled: true }).hash, render({ deleteEnabled: true }).hash);
    });

    for (const [title, spec] of Object.entries({
      deleteEnabled: { deleteEnabled: true },
      logLevel: { logLevel: 'debug' },
      'the cache': { cache: { type: 'none' } },
      configOverrides: { configOverrides: { http: { relativeurls: true } } },
    } satisfies Record<string, DeepPartial<RegistrySpec>>)) {
      it(`changes when ${title} changes the config`, function () {
        assert.notEqual(render(spec).hash, render().hash);
      });
    }

    it('changes when the Secret the environment references changes', function () {
      assert.notEqual(render({}, { name: 'other', key: 'secret' }).hash, render().hash);
    });

    it('stays the same when only replicas or pod settings change, so scaling does not restart pods', function () {
      const rwx = { storage: { filesystem: { accessMode: 'ReadWriteMany' } } } as const;
      assert.equal(
        render({ ...rwx, replicas: 3, podLabels: { team: 'a' }, service: { port: 80 } }).hash,
        render({ ...rwx, replicas: 1 }).hash,
      );
    });
  });

  describe('redisAddress', function () {
    it('is <name>-redis.<namespace>.svc:6379 for a managed Redis', function () {
      const r = registry({ cache: { type: 'redis', redis: { managed: true } } }, { name: 'hub', namespace: 'ci' });
      assert.equal(redisAddress(r), 'hub-redis.ci.svc:6379');
      assert.deepEqual(at(renderConfig(r, HTTP_SECRET).config, 'redis'), { addrs: ['hub-redis.ci.svc:6379'], db: 0 });
    });

    it('is the given address for an external Redis', function () {
      assert.equal(
        redisAddress(registry({ cache: { type: 'redis', redis: { address: 'redis.ops:6380' } } })),
        'redis.ops:6380',
      );
    });

    it('is undefined, and the config has no redis section, without a Redis cache', function () {
      const r = registry({ cache: { type: 'inmemory', redis: { address: 'unused:6379' } } });
      assert.equal(redisAddress(r), undefined);
      assert.equal(at(renderConfig(r, HTTP_SECRET).config, 'redis'), undefined);
    });
  });

  describe('object storage sections', function () {
    it('writes s3 with Distribution’s keys', function () {
      const { config } = render({
        storage: {
          s3: {
            bucket: 'images',
            region: 'eu-west-1',
            endpoint: 'https://minio:9000',
            forcePathStyle: true,
            rootDirectory: '/r',
          },
        },
      });
      assert.deepEqual(at(config, 'storage.s3'), {
        bucket: 'images',
        region: 'eu-west-1',
        regionendpoint: 'https://minio:9000',
        forcepathstyle: true,
        rootdirectory: '/r',
      });
    });

    it('writes s3 without regionendpoint for AWS', function () {
      const { config } = render({ storage: { s3: { bucket: 'images' } } });
      assert.deepEqual(at(config, 'storage.s3'), {
        bucket: 'images',
        region: 'us-east-1',
        forcepathstyle: false,
        rootdirectory: '/',
      });
    });

    it('writes azure with Distribution’s keys', function () {
      const { config } = render({ storage: { azure: { accountName: 'acct', container: 'images' } } });
      assert.deepEqual(at(config, 'storage.azure'), { accountname: 'acct', container: 'images', rootdirectory: '/' });
    });

    it('writes gcs with Distribution’s keys, the keyfile inside the mounted Secret', function () {
      const { config } = render({ storage: { gcs: { bucket: 'images', credentialsSecret: { name: 'sa' } } } });
      assert.deepEqual(at(config, 'storage.gcs'), {
        bucket: 'images',
        rootdirectory: '/',
        keyfile: `${GCS_KEY_DIR}/key.json`,
      });
      const plain = render({ storage: { gcs: { bucket: 'images' } } });
      assert.equal(at(plain.config, 'storage.gcs.keyfile'), undefined, 'workload identity needs no key file');
    });

    it('configures exactly one storage driver', function () {
      for (const storage of [
        {},
        { emptyDir: {} },
        { s3: { bucket: 'b' } },
        { azure: { accountName: 'a', container: 'c' } },
        { gcs: { bucket: 'g' } },
      ]) {
        const section = at(render({ storage }).config, 'storage') as Tree;
        const drivers = ['filesystem', 's3', 'azure', 'gcs', 'inmemory'].filter((d) => d in section);
        assert.equal(drivers.length, 1, JSON.stringify(drivers));
      }
    });
  });

  describe('spec.gc', function () {
    it('renders online collection as storage.maintenance.gc, which Berth resolves to the spec’s settings', function () {
      const rendered = render({ gc: { enabled: true, interval: '6h', gracePeriod: '90m', deleteUntagged: true } });
      assert.deepEqual(at(rendered.config, 'storage.maintenance.gc'), {
        enabled: true,
        interval: '6h',
        graceperiod: '90m',
        deleteuntagged: true,
      });
      assert.deepEqual(resolveConfig(parse(rendered.yaml)).gc, {
        enabled: true,
        interval: 6 * 3_600_000,
        graceperiod: 90 * 60_000,
        deleteuntagged: true,
        dryrun: false,
      });
    });

    it('renders the defaults of spec.gc as daily collection with an hour’s grace', function () {
      const resolved = resolveConfig(parse(render({ gc: { enabled: true } }).yaml));
      assert.equal(resolved.gc.interval, 24 * 3_600_000);
      assert.equal(resolved.gc.graceperiod, 3_600_000);
      assert.equal(resolved.gc.deleteuntagged, false);
    });

    it('turns online collection off when a CronJob collects on a schedule, whatever enabled says', function () {
      const spec: DeepPartial<RegistrySpec> = { storage: { s3: { bucket: 'images' } }, cache: { type: 'none' } };
      const scheduled = render({ ...spec, gc: { enabled: true, schedule: '0 3 * * *', interval: '1h' } });
      assert.deepEqual(at(scheduled.config, 'storage.maintenance.gc'), { enabled: false });
      assert.equal(resolveConfig(parse(scheduled.yaml)).gc.enabled, false);
      // The schedule and the settings only the CronJob uses stay out of the file, so changing them rolls no pod.
      assert.equal(render({ ...spec, gc: { schedule: '@weekly', gracePeriod: '5h' } }).hash, scheduled.hash);
      assert.equal(render({ ...spec, gc: {} }).hash, scheduled.hash);
    });

    it('leaves storage.maintenance.gc out without spec.gc, so existing registries keep their config', function () {
      const rendered = render();
      assert.equal(at(rendered.config, 'storage.maintenance.gc'), undefined);
      assert.equal(resolveConfig(parse(rendered.yaml)).gc.enabled, false);
    });

    it('changes the hash, and so rolls the pods, when online settings change', function () {
      const a = render({ gc: { enabled: true, interval: '6h' } }).hash;
      assert.notEqual(render({ gc: { enabled: true, interval: '12h' } }).hash, a);
      assert.notEqual(render({ gc: { enabled: true, interval: '6h', gracePeriod: '2h' } }).hash, a);
    });
  });

  describe('storageKind', function () {
    it('names the backend a spec uses', function () {
      assert.equal(storageKind(registry().spec), 'filesystem');
      assert.equal(storageKind(registry({ storage: { emptyDir: {} } }).spec), 'emptyDir');
      assert.equal(storageKind(registry({ storage: { s3: { bucket: 'b' } } }).spec), 's3');
      assert.equal(storageKind(registry({ storage: { azure: { accountName: 'a', container: 'c' } } }).spec), 'azure');
      assert.equal(storageKind(registry({ storage: { gcs: { bucket: 'g' } } }).spec), 'gcs');
    });

    it('offers only backends this build has a driver for (the operator no longer checks at run time)', function () {
      const offered = Object.keys(registrySchema.properties?.['spec']?.properties?.['storage']?.properties ?? {});
      assert.deepEqual(offered.sort(), ['azure', 'emptyDir', 'filesystem', 'gcs', 's3']);
      for (const kind of offered) {
        const driver = kind === 'emptyDir' ? 'filesystem' : kind;
        assert.ok((DRIVER_NAMES as readonly string[]).includes(driver), `no ${driver} driver for spec.storage.${kind}`);
      }
    });
  });
});
