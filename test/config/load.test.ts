import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { applyEnvironment, ConfigError, loadConfig, resolveConfig } from '../../src/config/load.js';
import { CLI, REPO_ROOT, removeDir, tempDir } from '../helpers/harness.js';

function configError(...fragments: string[]): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    for (const f of fragments) assert.ok(err.message.includes(f), `${JSON.stringify(f)} not in:\n${err.message}`);
    return true;
  };
}

interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err !== null && typeof err.code !== 'number') {
          reject(err);
          return;
        }
        resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr });
      },
    );
  });
}

describe('config/load', function () {
  let dir: string;

  before(async function () {
    dir = await tempDir('berth-config-');
  });

  after(async function () {
    await removeDir(dir);
  });

  async function file(name: string, text: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  }

  describe('resolveConfig', function () {
    it('resolves an empty config to filesystem storage with deletes off, redirects on and nothing ignored', function () {
      const c = resolveConfig({});
      assert.deepEqual(c.storage, {
        driver: 'filesystem',
        rootdirectory: '/var/lib/registry',
        eventloopio: 'auto',
        flushchunks: false,
        maxthreads: 16,
      });
      assert.equal(c.deleteEnabled, false);
      assert.equal(c.readOnly, false);
      assert.equal(c.redirect, true);
      assert.deepEqual(c.ignored, []);
      assert.equal(c.http.addr, ':5000');
    });

    it('resolves undefined and null like an empty config', function () {
      assert.deepEqual(resolveConfig(undefined), resolveConfig({}));
      assert.deepEqual(resolveConfig(null), resolveConfig({}));
    });

    it('maps the Distribution keys onto what the code uses', function () {
      const c = resolveConfig({
        storage: {
          filesystem: { rootdirectory: '/data' },
          delete: { enabled: true },
          redirect: { disable: true },
          maintenance: { readonly: { enabled: true }, uploadpurging: { age: '1h' } },
        },
        log: { level: 'debug' },
      });
      assert.deepEqual(c.storage, {
        driver: 'filesystem',
        rootdirectory: '/data',
        eventloopio: 'auto',
        flushchunks: false,
        maxthreads: 16,
      });
      assert.equal(c.deleteEnabled, true);
      assert.equal(c.readOnly, true);
      assert.equal(c.redirect, false);
      assert.equal(c.uploadPurging.age, 3_600_000);
      assert.equal(c.log.level, 'debug');
    });

    it('chooses inmemory storage when it is configured, with or without parameters', function () {
      assert.deepEqual(resolveConfig({ storage: { inmemory: {} } }).storage, { driver: 'inmemory' });
      assert.deepEqual(resolveConfig({ storage: { inmemory: null } }).storage, { driver: 'inmemory' });
    });

    it('uses the default root for a filesystem driver given with no parameters', function () {
      assert.deepEqual(resolveConfig({ storage: { filesystem: null } }).storage, {
        driver: 'filesystem',
        rootdirectory: '/var/lib/registry',
        eventloopio: 'auto',
        flushchunks: false,
        maxthreads: 16,
      });
    });

    it('takes maxthreads and the filesystem settings Berth adds, and refuses values out of range', function () {
      const c = resolveConfig({
        storage: { filesystem: { rootdirectory: '/d', maxthreads: 100, eventloopio: 'off', flushchunks: true } },
      });
      assert.deepEqual(c.ignored, []);
      assert.deepEqual(c.storage, {
        driver: 'filesystem',
        rootdirectory: '/d',
        eventloopio: 'off',
        flushchunks: true,
        maxthreads: 100,
      });
      assert.throws(() => resolveConfig({ storage: { filesystem: { eventloopio: 'sometimes' } } }), /eventloopio/);
      assert.throws(() => resolveConfig({ storage: { filesystem: { maxthreads: 2 } } }), /maxthreads/);
      assert.throws(() => resolveConfig({ storage: { filesystem: { maxthreads: 5000 } } }), /maxthreads/);
    });

    it('reports redis.pool as ignored where the config sets it, and no longer storage.redirect', function () {
      assert.deepEqual(resolveConfig({}).ignored, []);
      const c = resolveConfig({
        storage: { inmemory: {}, redirect: { disable: true } },
        redis: { addrs: ['r:6379'], pool: { maxidle: 4 } },
      });
      assert.deepEqual(c.ignored, ['redis.pool']);
    });

    it('redirects blob reads by default with URLs good for 20 minutes, and takes disable and expiry', function () {
      const d = resolveConfig({});
      assert.equal(d.redirect, true);
      assert.equal(d.redirectExpiry, 20 * 60_000);
      const c = resolveConfig({ storage: { inmemory: {}, redirect: { disable: true, expiry: '5m' } } });
      assert.equal(c.redirect, false);
      assert.equal(c.redirectExpiry, 5 * 60_000);
      assert.equal(resolveConfig({ storage: { redirect: { expiry: 90 } } }).redirectExpiry, 90_000);
    });

    it('refuses a redirect expiry under a second or over seven days, and unknown redirect keys', function () {
      assert.throws(() => resolveConfig({ storage: { redirect: { expiry: '500ms' } } }), /storage\.redirect\.expiry/);
      assert.throws(() => resolveConfig({ storage: { redirect: { expiry: '169h' } } }), /storage\.redirect\.expiry/);
      assert.throws(() => resolveConfig({ storage: { redirect: { disabled: true } } }), /storage\.redirect/);
    });

    it('takes REGISTRY_STORAGE_REDIRECT_DISABLE and _EXPIRY from the environment', function () {
      const c = resolveConfig(
        applyEnvironment({}, { REGISTRY_STORAGE_REDIRECT_DISABLE: 'true', REGISTRY_STORAGE_REDIRECT_EXPIRY: '1h' }),
      );
      assert.equal(c.redirect, false);
      assert.equal(c.redirectExpiry, 3_600_000);
    });

    it('reports the Distribution sections it ignores, even empty ones', function () {
      const c = resolveConfig({
        reporting: { bugsnag: {} },
        auth: null,
        health: { storagedriver: { enabled: true } },
      });
      assert.deepEqual([...c.ignored].sort(), ['health', 'reporting'], 'auth is acted on now');
    });

    it("takes notification endpoints with Distribution's keys and defaults, and names a bad one", function () {
      const c = resolveConfig({
        notifications: {
          endpoints: [
            {
              name: 'ci',
              url: 'http://hooks.example/registry',
              headers: { Authorization: ['Bearer x'] },
              timeout: '500ms',
              threshold: 5,
              backoff: '1s',
              ignoredmediatypes: ['application/octet-stream'],
              ignore: { actions: ['pull'] },
            },
          ],
          events: { includereferences: true },
        },
      });
      const [e] = c.notifications?.endpoints ?? [];
      assert.equal(e?.name, 'ci');
      assert.equal(e?.timeout, 500);
      assert.equal(e?.backoff, 1_000);
      assert.equal(e?.disabled, false);
      assert.deepEqual(e?.ignore, { mediatypes: [], actions: ['pull'] });
      assert.deepEqual(c.ignored, ['notifications.events'], 'includereferences is reported as ignored');
      assert.throws(
        () => resolveConfig({ notifications: { endpoints: [{ name: 'x', url: 'ftp://nope' }] } }),
        /notifications\.endpoints\.0\.url/,
      );
      assert.throws(
        () =>
          resolveConfig({
            notifications: {
              endpoints: [
                { name: 'x', url: 'http://a' },
                { name: 'x', url: 'http://b' },
              ],
            },
          }),
        /used twice/,
      );
      assert.throws(
        () =>
          resolveConfig({
            notifications: { endpoints: [{ name: 'x', url: 'http://a', ignore: { actions: ['fetch'] } }] },
          }),
        /ignore\.actions/,
      );
    });

    it('resolves s3 with Distribution’s defaults, and us-east-1 for signing when only an endpoint is given', function () {
      const c = resolveConfig({ storage: { s3: { bucket: 'images', regionendpoint: 'seaweedfs:8333' } } });
      assert.deepEqual(c.ignored, []);
      assert.deepEqual(c.storage, {
        driver: 's3',
        accesskey: '',
        secretkey: '',
        region: 'us-east-1',
        regionendpoint: 'seaweedfs:8333',
        forcepathstyle: false,
        bucket: 'images',
        rootdirectory: '',
        encrypt: false,
        keyid: '',
        secure: true,
        skipverify: false,
        v4auth: true,
        chunksize: 10 * 1024 * 1024,
        multipartcopychunksize: 32 * 1024 * 1024,
        multipartcopymaxconcurrency: 100,
        multipartcopythresholdsize: 32 * 1024 * 1024,
        storageclass: 'STANDARD',
        useragent: '',
      });
      const aws = resolveConfig({ storage: { s3: { bucket: 'b', region: 'eu-west-1', storageclass: 'standard_ia' } } });
      assert.equal(aws.storage.driver === 's3' && aws.storage.region, 'eu-west-1');
      assert.equal(aws.storage.driver === 's3' && aws.storage.storageclass, 'STANDARD_IA');
    });

    it('refuses bad s3 settings, naming each field', function () {
      assert.throws(
        () => resolveConfig({ storage: { s3: { region: 'us-east-1' } } }),
        configError('storage.s3.bucket'),
      );
      assert.throws(() => resolveConfig({ storage: { s3: { bucket: 'b' } } }), configError('storage.s3.region'));
      const base = { bucket: 'b', region: 'us-east-1' };
      for (const [key, value] of [
        ['chunksize', 1024],
        ['chunksize', 6 * 1024 ** 3],
        ['multipartcopychunksize', 4 * 1024 * 1024],
        ['multipartcopythresholdsize', -1],
        ['multipartcopymaxconcurrency', 0],
        ['storageclass', 'GLACIER'],
        ['forcepathstyle', 'yes'],
        ['bucket', ''],
      ] as const) {
        assert.throws(
          () => resolveConfig({ storage: { s3: { ...base, [key]: value } } }),
          configError(`storage.s3.${key}`),
          `${key}: ${String(value)}`,
        );
      }
      assert.throws(
        () => resolveConfig({ storage: { s3: { ...base, accesskeyid: 'AKIA' } } }),
        configError('storage.s3', 'accesskeyid'),
      );
    });

    it('reports s3 keys it does not act on as ignored: v4auth false, and keyid without encrypt', function () {
      const base = { bucket: 'b', region: 'us-east-1' };
      assert.deepEqual(resolveConfig({ storage: { s3: { ...base, v4auth: true } } }).ignored, []);
      assert.deepEqual(resolveConfig({ storage: { s3: { ...base, v4auth: false } } }).ignored, ['storage.s3.v4auth']);
      assert.deepEqual(resolveConfig({ storage: { s3: { ...base, keyid: 'k' } } }).ignored, ['storage.s3.keyid']);
      assert.deepEqual(resolveConfig({ storage: { s3: { ...base, keyid: 'k', encrypt: true } } }).ignored, []);
    });

    it('resolves gcs with Distribution’s defaults: 16 MiB chunks, and no key (Application Default Credentials)', function () {
      const c = resolveConfig({ storage: { gcs: { bucket: 'images' } } });
      assert.deepEqual(c.ignored, []);
      assert.deepEqual(c.storage, {
        driver: 'gcs',
        bucket: 'images',
        keyfile: '',
        rootdirectory: '',
        chunksize: 16 * 1024 * 1024,
        useragent: '',
        endpoint: '',
      });
      const emulator = resolveConfig({
        storage: { gcs: { bucket: 'b', endpoint: 'http://127.0.0.1:4443', chunksize: 512 * 1024 } },
      });
      assert.equal(emulator.storage.driver === 'gcs' && emulator.storage.endpoint, 'http://127.0.0.1:4443');
      assert.equal(emulator.storage.driver === 'gcs' && emulator.storage.chunksize, 512 * 1024);
    });

    it('refuses bad gcs settings, naming each field', function () {
      assert.throws(() => resolveConfig({ storage: { gcs: {} } }), configError('storage.gcs.bucket'));
      for (const [key, value] of [
        ['bucket', ''],
        ['chunksize', 1024],
        ['chunksize', 300 * 1024],
        ['chunksize', '16MiB'],
        ['endpoint', '127.0.0.1:4443'],
        ['endpoint', 'ftp://gcs.local'],
        ['keyfile', 42],
        ['credentials', { type: 'service_account' }],
        ['maxconcurrency', 0],
      ] as const) {
        assert.throws(
          () => resolveConfig({ storage: { gcs: { bucket: 'b', [key]: value } } }),
          configError(`storage.gcs.${key}`),
          `${key}: ${JSON.stringify(value)}`,
        );
      }
      assert.throws(
        () => resolveConfig({ storage: { gcs: { bucket: 'b', projectid: 'p' } } }),
        configError('storage.gcs', 'projectid'),
      );
      assert.throws(
        () => resolveConfig({ storage: { gcs: { bucket: 'b' }, s3: { bucket: 'b', region: 'r' } } }),
        configError('only one storage driver'),
      );
    });

    it('reports the gcs key it does not act on as ignored: maxconcurrency', function () {
      const c = resolveConfig({ storage: { gcs: { bucket: 'b', maxconcurrency: 50 } } });
      assert.deepEqual(c.ignored, ['storage.gcs.maxconcurrency']);
      const inline = resolveConfig({
        storage: { gcs: { bucket: 'b', credentials: { client_email: 'a@b.iam', private_key: 'k', type: 'x' } } },
      });
      assert.deepEqual(inline.ignored, []);
    });

    it('resolves azure with Distribution’s defaults: the public realm, five retries, no key (DefaultAzureCredential)', function () {
      const c = resolveConfig({ storage: { azure: { accountname: 'berthimages', container: 'images' } } });
      assert.deepEqual(c.ignored, []);
      assert.deepEqual(c.storage, {
        driver: 'azure',
        accountname: 'berthimages',
        accountkey: '',
        container: 'images',
        realm: 'core.windows.net',
        rootdirectory: '',
        serviceurl: '',
        connectionstring: '',
        max_retries: 5,
        retry_delay: 100,
        skipverify: false,
      });
      const azurite = resolveConfig({
        storage: {
          azure: {
            connectionstring: 'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;',
            container: 'images',
            retry_delay: '250ms',
          },
        },
      });
      assert.equal(azurite.storage.driver === 'azure' && azurite.storage.retry_delay, 250);
      const client = resolveConfig({
        storage: {
          azure: {
            accountname: 'acct',
            container: 'images',
            credentials: { type: 'client_secret', clientid: 'c', tenantid: 't', secret: 's' },
          },
        },
      });
      assert.equal(client.storage.driver === 'azure' && client.storage.credentials?.type, 'client_secret');
    });

    it('refuses bad azure settings, naming each field', function () {
      assert.throws(
        () => resolveConfig({ storage: { azure: { accountname: 'acct' } } }),
        configError('storage.azure.container'),
      );
      assert.throws(
        () => resolveConfig({ storage: { azure: { container: 'images' } } }),
        configError('storage.azure.accountname', 'required unless connectionstring'),
      );
      const base = { accountname: 'acct', container: 'images' };
      for (const [key, value] of [
        ['accountname', 'My_Account'],
        ['accountkey', 'not base64!'],
        ['container', 'Images'],
        ['container', 'a--b'],
        ['container', 'ab'],
        ['serviceurl', 'ftp://blob.local'],
        ['connectionstring', 'nonsense'],
        ['max_retries', -2],
        ['retry_delay', 'soon'],
        ['realm', ''],
      ] as const) {
        assert.throws(
          () => resolveConfig({ storage: { azure: { ...base, [key]: value } } }),
          configError(`storage.azure.${key}`),
          `${key}: ${String(value)}`,
        );
      }
      const cs = 'AccountName=acct;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/acct;';
      for (const key of ['accountkey', 'serviceurl'] as const) {
        const value = key === 'accountkey' ? 'a2V5' : 'http://127.0.0.1:10000/acct';
        assert.throws(
          () => resolveConfig({ storage: { azure: { connectionstring: cs, container: 'images', [key]: value } } }),
          configError(`storage.azure.${key}`, 'either connectionstring'),
        );
      }
      assert.throws(
        () => resolveConfig({ storage: { azure: { ...base, credentials: { type: 'client_secret', clientid: 'c' } } } }),
        (err: unknown) =>
          configError('storage.azure.credentials.tenantid', 'storage.azure.credentials.secret')(err) &&
          !String(err).includes('credentials.clientid'),
      );
      assert.throws(
        () => resolveConfig({ storage: { azure: { ...base, credentials: { type: 'shared_key' } } } }),
        configError('storage.azure.accountkey', 'shared_key'),
      );
      assert.throws(
        () => resolveConfig({ storage: { azure: { ...base, credentials: { type: 'default' } } } }),
        configError('storage.azure.credentials.type'),
      );
      assert.throws(
        () => resolveConfig({ storage: { azure: { ...base, accountkeyid: 'k' } } }),
        configError('storage.azure', 'accountkeyid'),
      );
    });

    it('reports azure keys it does not act on as ignored', function () {
      const base = { accountname: 'acct', container: 'images' };
      const cs = 'AccountName=acct;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/acct;';
      const ignored = (azure: Record<string, unknown>): readonly string[] =>
        resolveConfig({ storage: { azure } }).ignored;
      assert.deepEqual(ignored({ ...base, accountkey: 'a2V5', realm: 'core.chinacloudapi.cn' }), []);
      assert.deepEqual(ignored({ ...base, connectionstring: cs }), ['storage.azure.accountname']);
      assert.deepEqual(ignored({ ...base, serviceurl: 'http://127.0.0.1:10000/acct', realm: 'x.net' }), [
        'storage.azure.realm',
      ]);
      assert.deepEqual(ignored({ ...base, accountkey: 'a2V5', credentials: { type: 'default_credentials' } }), [
        'storage.azure.accountkey',
      ]);
      assert.deepEqual(ignored({ ...base, skipverify: true }), ['storage.azure.skipverify']);
      assert.deepEqual(ignored({ ...base, skipverify: false }), []);
    });

    it('rejects two storage drivers with a message naming the storage field', function () {
      assert.throws(
        () => resolveConfig({ storage: { filesystem: {}, inmemory: {} } }, 'my.yml'),
        configError('my.yml', 'storage.inmemory', 'only one storage driver'),
      );
    });

    it('rejects an unknown key, naming where it is and what it is', function () {
      assert.throws(() => resolveConfig({ http: { adr: ':5000' } }), configError('http', 'adr'));
    });

    it('lists every problem, not only the first', function () {
      assert.throws(
        () => resolveConfig({ http: { addr: 'nope' }, log: { level: 'loud' } }),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.equal(err.problems.length, 2);
          assert.ok(err.problems.some((p) => p.startsWith('http.addr:')));
          assert.ok(err.problems.some((p) => p.startsWith('log.level:')));
          return true;
        },
      );
    });

    it('rejects a bad duration, naming the field', function () {
      assert.throws(() => resolveConfig({ http: { draintimeout: 'soon' } }), configError('http.draintimeout'));
    });
  });

  describe('applyEnvironment', function () {
    it('reads REGISTRY_STORAGE_DELETE_ENABLED=true as the boolean true', function () {
      const raw = applyEnvironment({}, { REGISTRY_STORAGE_DELETE_ENABLED: 'true' });
      assert.deepEqual(raw, { storage: { delete: { enabled: true } } });
      assert.equal(resolveConfig(raw).deleteEnabled, true);
    });

    it('keeps secrets exactly as given, even when they look like YAML numbers, booleans, lists or comments', function () {
      for (const value of ['123456', 'true', '[x]', 'a: b', 'abc #def', '  padded ']) {
        const raw = applyEnvironment({}, { REGISTRY_HTTP_SECRET: value, REGISTRY_REDIS_PASSWORD: value });
        assert.deepEqual(raw, { http: { secret: value }, redis: { password: value } }, value);
      }
      const resolved = resolveConfig(
        applyEnvironment(
          { redis: { addrs: ['r:6379'] } },
          { REGISTRY_HTTP_SECRET: '123456', REGISTRY_REDIS_PASSWORD: 'false' },
        ),
      );
      assert.equal(resolved.http.secret, '123456');
      assert.equal(resolved.redis?.password, 'false');
    });

    it('keeps REGISTRY_HTTP_ADDR a string', function () {
      assert.deepEqual(applyEnvironment({}, { REGISTRY_HTTP_ADDR: ':6000' }), { http: { addr: ':6000' } });
      assert.deepEqual(applyEnvironment({}, { REGISTRY_HTTP_ADDR: '127.0.0.1:6000' }), {
        http: { addr: '127.0.0.1:6000' },
      });
      assert.equal(
        resolveConfig(applyEnvironment({}, { REGISTRY_HTTP_ADDR: '0.0.0.0:6000' })).http.addr,
        '0.0.0.0:6000',
      );
    });

    it('resolves storage.verifyreads: auto hashes blob reads on the object stores, not on local storage', function () {
      const s3 = { s3: { bucket: 'b', region: 'us-east-1' } };
      assert.equal(resolveConfig({ storage: s3 }).verifyReads, true);
      assert.equal(resolveConfig({ storage: { gcs: { bucket: 'b' } } }).verifyReads, true);
      assert.equal(resolveConfig({ storage: { filesystem: { rootdirectory: '/r' } } }).verifyReads, false);
      assert.equal(resolveConfig({ storage: { inmemory: {} } }).verifyReads, false);
      assert.equal(resolveConfig({ storage: { inmemory: {}, verifyreads: 'on' } }).verifyReads, true);
      assert.equal(resolveConfig({ storage: { ...s3, verifyreads: 'off' } }).verifyReads, false);
      assert.throws(() => resolveConfig({ storage: { inmemory: {}, verifyreads: 'yes' } }), /verifyreads/);
    });

    it('sets a key of a list item the file has, and keeps header values strings', function () {
      const file = {
        notifications: {
          endpoints: [
            { name: 'ci', url: 'http://ci.example/hook', headers: { 'X-Team': ['builds'] } },
            { name: 'audit', url: 'http://audit.example/hook' },
          ],
        },
      };
      const raw = applyEnvironment(file, {
        'REGISTRY_NOTIFICATIONS_ENDPOINTS_1_HEADERS_X-API-KEY': '123456',
        REGISTRY_NOTIFICATIONS_ENDPOINTS_1_HEADERS_AUTHORIZATION: 'Bearer abc #1',
        REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT: '3s',
      });
      const { notifications } = resolveConfig(raw);
      const [ci, audit] = notifications?.endpoints ?? [];
      assert.equal(ci?.timeout, 3_000);
      assert.deepEqual(ci?.headers, { 'X-Team': ['builds'] });
      assert.deepEqual(audit?.headers, { 'x-api-key': '123456', authorization: 'Bearer abc #1' });
    });

    it('reads numbers as numbers and leaves an empty value an empty string', function () {
      assert.deepEqual(
        applyEnvironment({}, { REGISTRY_STORAGE_CACHE_BLOBDESCRIPTORSIZE: '42', REGISTRY_HTTP_PREFIX: '' }),
        {
          storage: { cache: { blobdescriptorsize: 42 } },
          http: { prefix: '' },
        },
      );
    });

    it('overrides a file value and keeps its siblings', function () {
      const raw = { http: { addr: ':5000', debug: { addr: ':5001' } }, log: { level: 'info' } };
      assert.deepEqual(applyEnvironment(raw, { REGISTRY_HTTP_DEBUG_ADDR: ':7001' }), {
        http: { addr: ':5000', debug: { addr: ':7001' } },
        log: { level: 'info' },
      });
    });

    it('replaces a section the file left empty (YAML null)', function () {
      const raw = { storage: { filesystem: null } };
      assert.deepEqual(applyEnvironment(raw, { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv' }), {
        storage: { filesystem: { rootdirectory: '/srv' } },
      });
    });

    it('matches a key the file spells in another case', function () {
      const raw = { Log: { Level: 'info' } };
      assert.deepEqual(applyEnvironment(raw, { REGISTRY_LOG_LEVEL: 'warn' }), { Log: { Level: 'warn' } });
    });

    it('ignores variables that are not REGISTRY_*', function () {
      assert.deepEqual(
        applyEnvironment({}, { PATH: '/bin', HOME: '/root', REGISTRYX_HTTP_ADDR: ':1', registry_http_addr: ':2' }),
        {},
      );
    });

    it('switches the driver with REGISTRY_STORAGE=inmemory, dropping the configured one and keeping other storage keys', function () {
      const raw = { storage: { filesystem: { rootdirectory: '/data' }, delete: { enabled: true } } };
      const out = applyEnvironment(raw, { REGISTRY_STORAGE: 'inmemory' });
      assert.deepEqual(out, { storage: { inmemory: {}, delete: { enabled: true } } });
      assert.deepEqual(resolveConfig(out).storage, { driver: 'inmemory' });
    });

    it('keeps the parameters of the driver REGISTRY_STORAGE names when the file has it', function () {
      const raw = { storage: { filesystem: { rootdirectory: '/data' } } };
      assert.deepEqual(applyEnvironment(raw, { REGISTRY_STORAGE: 'filesystem' }), {
        storage: { filesystem: { rootdirectory: '/data' } },
      });
    });

    it('applies REGISTRY_STORAGE before deeper variables, whatever their order', function () {
      const env = { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/env', REGISTRY_STORAGE: 'filesystem' };
      const raw = { storage: { inmemory: null } };
      assert.deepEqual(resolveConfig(applyEnvironment(raw, env)).storage, {
        driver: 'filesystem',
        rootdirectory: '/env',
        eventloopio: 'auto',
        flushchunks: false,
        maxthreads: 16,
      });
    });

    it('lets the schema reject an unknown driver named by REGISTRY_STORAGE', function () {
      assert.throws(() => resolveConfig(applyEnvironment({}, { REGISTRY_STORAGE: 'swift' })), configError('swift'));
    });

    it('configures gcs from REGISTRY_STORAGE_GCS_* alone, keeping names and paths as strings', function () {
      const raw = applyEnvironment(
        { storage: { filesystem: { rootdirectory: '/data' } } },
        {
          REGISTRY_STORAGE: 'gcs',
          REGISTRY_STORAGE_GCS_BUCKET: '2024',
          REGISTRY_STORAGE_GCS_KEYFILE: '/etc/berth/gcs/key.json',
          REGISTRY_STORAGE_GCS_ROOTDIRECTORY: '/registry',
          REGISTRY_STORAGE_GCS_CHUNKSIZE: '5242880',
          REGISTRY_STORAGE_GCS_ENDPOINT: 'http://127.0.0.1:4443',
        },
      );
      const { storage } = resolveConfig(raw);
      assert.deepEqual(storage, {
        driver: 'gcs',
        bucket: '2024',
        keyfile: '/etc/berth/gcs/key.json',
        rootdirectory: '/registry',
        chunksize: 5 * 1024 * 1024,
        useragent: '',
        endpoint: 'http://127.0.0.1:4443',
      });
    });

    it('configures azure from REGISTRY_STORAGE_AZURE_* alone, keeping names and keys as strings', function () {
      const raw = applyEnvironment(
        { storage: { filesystem: { rootdirectory: '/data' } } },
        {
          REGISTRY_STORAGE: 'azure',
          REGISTRY_STORAGE_AZURE_ACCOUNTNAME: '123456',
          REGISTRY_STORAGE_AZURE_ACCOUNTKEY: 'a2V5a2V5a2V5',
          REGISTRY_STORAGE_AZURE_CONTAINER: '2024',
          REGISTRY_STORAGE_AZURE_REALM: 'core.usgovcloudapi.net',
          REGISTRY_STORAGE_AZURE_ROOTDIRECTORY: '/registry',
          REGISTRY_STORAGE_AZURE_SERVICEURL: 'http://127.0.0.1:10000/123456',
        },
      );
      const c = resolveConfig(raw);
      assert.deepEqual(c.storage, {
        driver: 'azure',
        accountname: '123456',
        accountkey: 'a2V5a2V5a2V5',
        container: '2024',
        realm: 'core.usgovcloudapi.net',
        rootdirectory: '/registry',
        serviceurl: 'http://127.0.0.1:10000/123456',
        connectionstring: '',
        max_retries: 5,
        retry_delay: 100,
        skipverify: false,
      });
      assert.deepEqual(c.ignored, ['storage.azure.realm']);
      const cs =
        'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://a:1/x;';
      const fromString = resolveConfig(
        applyEnvironment(
          {},
          {
            REGISTRY_STORAGE: 'azure',
            REGISTRY_STORAGE_AZURE_CONNECTIONSTRING: cs,
            REGISTRY_STORAGE_AZURE_CONTAINER: 'images',
          },
        ),
      );
      assert.equal(fromString.storage.driver === 'azure' && fromString.storage.connectionstring, cs);
    });

    it('configures s3 from REGISTRY_STORAGE_S3_* alone, keeping names and keys as strings', function () {
      const raw = applyEnvironment(
        { storage: { filesystem: { rootdirectory: '/data' } } },
        {
          REGISTRY_STORAGE: 's3',
          REGISTRY_STORAGE_S3_BUCKET: '2024',
          REGISTRY_STORAGE_S3_REGION: 'eu-central-1',
          REGISTRY_STORAGE_S3_REGIONENDPOINT: 'http://127.0.0.1:8333',
          REGISTRY_STORAGE_S3_ACCESSKEY: '123456',
          REGISTRY_STORAGE_S3_SECRETKEY: 'true',
          REGISTRY_STORAGE_S3_FORCEPATHSTYLE: 'true',
          REGISTRY_STORAGE_S3_CHUNKSIZE: '6291456',
        },
      );
      const { storage } = resolveConfig(raw);
      assert.equal(storage.driver, 's3');
      if (storage.driver !== 's3') return;
      assert.equal(storage.bucket, '2024');
      assert.equal(storage.region, 'eu-central-1');
      assert.equal(storage.regionendpoint, 'http://127.0.0.1:8333');
      assert.equal(storage.accesskey, '123456');
      assert.equal(storage.secretkey, 'true');
      assert.equal(storage.forcepathstyle, true);
      assert.equal(storage.chunksize, 6 * 1024 * 1024);
    });
  });

  describe('loadConfig', function () {
    it('uses defaults and the environment when there is no file', async function () {
      const c = await loadConfig(undefined, { REGISTRY_STORAGE: 'inmemory', REGISTRY_LOG_LEVEL: 'warn' });
      assert.deepEqual(c.storage, { driver: 'inmemory' });
      assert.equal(c.log.level, 'warn');
    });

    it('reads a Distribution-style YAML file', async function () {
      const path = await file(
        'distribution.yml',
        [
          'version: 0.1',
          'log:',
          '  level: debug',
          'storage:',
          '  filesystem:',
          '    rootdirectory: /srv/registry',
          '  delete:',
          '    enabled: true',
          'http:',
          '  addr: :5000',
          'auth:',
          '  htpasswd:',
          '    realm: basic',
          '    path: /etc/registry/htpasswd',
          '',
        ].join('\n'),
      );
      const c = await loadConfig(path, {});
      assert.deepEqual(c.storage, {
        driver: 'filesystem',
        rootdirectory: '/srv/registry',
        eventloopio: 'auto',
        flushchunks: false,
        maxthreads: 16,
      });
      assert.equal(c.deleteEnabled, true);
      assert.equal(c.log.level, 'debug');
      assert.deepEqual(c.ignored, []);
      assert.deepEqual(c.auth?.htpasswd, { realm: 'basic', path: '/etc/registry/htpasswd' });
    });

    it('reads `inmemory:` with no value as the inmemory driver', async function () {
      const path = await file('inmemory.yml', 'storage:\n  inmemory:  # takes no parameters\n');
      assert.deepEqual((await loadConfig(path, {})).storage, { driver: 'inmemory' });
    });

    it('lets REGISTRY_* variables override the file', async function () {
      const path = await file('override.yml', 'storage:\n  filesystem:\n    rootdirectory: /a\nhttp:\n  addr: :5000\n');
      const c = await loadConfig(path, {
        REGISTRY_HTTP_ADDR: '127.0.0.1:7000',
        REGISTRY_STORAGE_DELETE_ENABLED: 'true',
      });
      assert.equal(c.http.addr, '127.0.0.1:7000');
      assert.equal(c.deleteEnabled, true);
      assert.deepEqual(c.storage, {
        driver: 'filesystem',
        rootdirectory: '/a',
        eventloopio: 'auto',
        flushchunks: false,
        maxthreads: 16,
      });
    });

    it('switches a file’s filesystem storage to inmemory with REGISTRY_STORAGE=inmemory', async function () {
      const path = await file('switch.yml', 'storage:\n  filesystem:\n    rootdirectory: /a\n');
      assert.deepEqual((await loadConfig(path, { REGISTRY_STORAGE: 'inmemory' })).storage, { driver: 'inmemory' });
    });

    it('treats an empty file as defaults', async function () {
      const path = await file('empty.yml', '# nothing here\n');
      assert.deepEqual(await loadConfig(path, {}), resolveConfig({}));
    });

    it('reports a YAML syntax error with the file name', async function () {
      const path = await file('broken.yml', 'storage:\n  filesystem: [unclosed\nhttp:\n  addr: :5000\n');
      await assert.rejects(loadConfig(path, {}), configError(path, 'not valid YAML'));
    });

    it('reports duplicate keys as a YAML error', async function () {
      const path = await file('dup.yml', 'http:\n  addr: :1\nhttp:\n  addr: :2\n');
      await assert.rejects(loadConfig(path, {}), configError(path, 'not valid YAML'));
    });

    it('rejects a file whose top level is not a mapping', async function () {
      const path = await file('list.yml', '- a\n- b\n');
      await assert.rejects(loadConfig(path, {}), configError(path, 'expected a mapping'));
    });

    it('reports a file it cannot read', async function () {
      const path = join(dir, 'does-not-exist.yml');
      await assert.rejects(loadConfig(path, {}), configError(path, 'cannot read'));
    });

    it('rejects two storage drivers in a file, naming the field', async function () {
      const path = await file('two.yml', 'storage:\n  filesystem:\n    rootdirectory: /a\n  inmemory:\n');
      await assert.rejects(loadConfig(path, {}), configError(path, 'storage.inmemory', 'only one storage driver'));
    });

    it('loads every example config in config/', async function () {
      const examples = (await readdir(join(REPO_ROOT, 'config'))).filter((n) => /\.ya?ml$/.test(n));
      assert.ok(examples.length > 0);
      for (const name of examples) await loadConfig(join(REPO_ROOT, 'config', name), {});
    });
  });

  describe('berth verify', function () {
    it('exits 0 on a good file and says which storage and address it found', async function () {
      const path = await file('good.yml', 'storage:\n  inmemory:\nhttp:\n  addr: 127.0.0.1:5055\n');
      const r = await runCli(['verify', path]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /ok \(storage inmemory, listening on 127\.0\.0\.1:5055\)/);
    });

    it('exits 1 on a bad s3 section and names the field', async function () {
      const path = await file(
        'bad-s3.yml',
        'storage:\n  s3:\n    bucket: images\n    region: us-east-1\n    chunksize: 1000\n',
      );
      const r = await runCli(['verify', path]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /storage\.s3\.chunksize/);
      const good = await file(
        'good-s3.yml',
        'storage:\n  s3:\n    bucket: images\n    region: us-east-1\n    v4auth: false\n',
      );
      const ok = await runCli(['verify', good]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /storage s3/);
      assert.match(ok.stdout, /note: storage\.s3\.v4auth is not supported/);
    });

    it('exits 1 on a bad gcs section and names the field; notes maxconcurrency as ignored', async function () {
      const path = await file('bad-gcs.yml', 'storage:\n  gcs:\n    bucket: images\n    chunksize: 1000000\n');
      const r = await runCli(['verify', path]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /storage\.gcs\.chunksize/);
      const good = await file('good-gcs.yml', 'storage:\n  gcs:\n    bucket: images\n    maxconcurrency: 50\n');
      const ok = await runCli(['verify', good]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /storage gcs/);
      assert.match(ok.stdout, /note: storage\.gcs\.maxconcurrency is not supported/);
    });

    it('exits 1 on a bad azure section and names the field; notes skipverify as ignored', async function () {
      const path = await file('bad-azure.yml', 'storage:\n  azure:\n    accountname: acct\n    container: Images\n');
      const r = await runCli(['verify', path]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /storage\.azure\.container/);
      const good = await file(
        'good-azure.yml',
        'storage:\n  azure:\n    accountname: acct\n    container: images\n    skipverify: true\n',
      );
      const ok = await runCli(['verify', good]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /storage azure/);
      assert.match(ok.stdout, /note: storage\.azure\.skipverify is not supported/);
    });

    it('notes the sections it ignores', async function () {
      const path = await file('ignored.yml', 'middleware:\n  registry: []\n');
      const r = await runCli(['verify', path]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /note: middleware is not supported/);
    });

    it('exits 1 on a bad file and names the bad field on stderr', async function () {
      const path = await file(
        'bad.yml',
        'storage:\n  filesystem:\n    rootdirectory: /a\n  delete:\n    enabled: perhaps\n',
      );
      const r = await runCli(['verify', path]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /storage\.delete\.enabled/);
      assert.ok(r.stderr.includes(path));
      assert.equal(r.stdout, '');
    });

    it('exits 1 on a YAML syntax error', async function () {
      const path = await file('bad-syntax.yml', 'http: [\n');
      const r = await runCli(['verify', path]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /not valid YAML/);
    });

    it('checks the file alone, whatever REGISTRY_* variables are set', async function () {
      const path = await file('plain.yml', 'http:\n  addr: :5000\n');
      const r = await runCli(['verify', path], { REGISTRY_HTTP_ADDR: 'not an address' });
      assert.equal(r.code, 0, r.stderr);
    });

    it('exits 2 with usage when no file is given', async function () {
      const r = await runCli(['verify']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /usage:/);
    });
  });
});
