import assert from 'node:assert/strict';
import { ConfigSchema, IGNORED_SECTIONS, parseDuration } from '../../src/config/schema.js';

/** The `path: message` lines of a failed parse, in the form `resolveConfig` reports them. */
function problems(raw: unknown): string[] {
  const result = ConfigSchema.safeParse(raw);
  assert.equal(result.success, false, 'expected the config to be rejected');
  return result.error?.issues.map((i) => `${i.path.map(String).join('.')}: ${i.message}`) ?? [];
}

function parse(raw: unknown): ReturnType<typeof ConfigSchema.parse> {
  return ConfigSchema.parse(raw);
}

const HOUR = 3_600_000;

describe('config/schema', function () {
  describe('parseDuration', function () {
    for (const [text, ms] of [
      ['10s', 10_000],
      ['1h30m', 90 * 60_000],
      ['168h', 168 * HOUR],
      ['1.5s', 1_500],
      ['100ms', 100],
      ['250us', 0.25],
      ['2µs', 0.002],
      ['1h1m1s1ms', HOUR + 60_000 + 1_000 + 1],
      ['0s', 0],
    ] as const) {
      it(`reads ${text} as ${ms} ms`, function () {
        assert.ok(Math.abs(parseDuration(text) - ms) < 1e-9, `${parseDuration(text)} !== ${ms}`);
      });
    }

    for (const bad of ['', '10', '1d', '-1s', '1h 30m', ' 10s', 's', '1.s', '10S', '1e3s']) {
      it(`rejects ${JSON.stringify(bad)}, quoting it`, function () {
        assert.throws(
          () => parseDuration(bad),
          (err: unknown) => err instanceof Error && err.message.includes(JSON.stringify(bad)),
        );
      });
    }
  });

  describe('ConfigSchema defaults', function () {
    it('fills every section of an empty config with defaults', function () {
      const c = parse({});
      assert.equal(c.version, '0.1');
      assert.equal(c.log.level, 'info');
      assert.equal(c.log.accesslog.disabled, false);
      assert.equal(c.http.addr, ':5000');
      assert.equal(c.http.debug.addr, ':5001');
      assert.deepEqual(c.http.debug.prometheus, { enabled: true, path: '/metrics' });
      assert.equal(c.http.draintimeout, 10_000);
      assert.equal(c.storage.delete.enabled, false);
      assert.equal(c.storage.redirect.disable, false);
      assert.equal(c.storage.cache.blobdescriptor, 'inmemory');
      assert.equal(c.storage.cache.blobdescriptorsize, 10_000);
      assert.deepEqual(c.storage.maintenance.uploadpurging, {
        enabled: true,
        age: 168 * HOUR,
        interval: 24 * HOUR,
        dryrun: false,
      });
      assert.equal(c.storage.maintenance.readonly.enabled, false);
      assert.equal(c.storage.filesystem, undefined);
      assert.equal(c.storage.inmemory, undefined);
    });

    it('fills the defaults inside a section that is only partly given', function () {
      const c = parse({
        storage: { filesystem: {}, maintenance: { uploadpurging: { dryrun: true } } },
        http: { debug: { prometheus: { enabled: false } } },
      });
      assert.equal(c.storage.filesystem?.rootdirectory, '/var/lib/registry');
      assert.deepEqual(c.storage.maintenance.uploadpurging, {
        enabled: true,
        age: 168 * HOUR,
        interval: 24 * HOUR,
        dryrun: true,
      });
      assert.deepEqual(c.http.debug.prometheus, { enabled: false, path: '/metrics' });
    });

    it('reads durations as Go strings, and bare numbers as seconds', function () {
      const c = parse({
        storage: { maintenance: { uploadpurging: { age: '2h', interval: 90 } } },
        http: { draintimeout: '1m30s' },
      });
      assert.equal(c.storage.maintenance.uploadpurging.age, 2 * HOUR);
      assert.equal(c.storage.maintenance.uploadpurging.interval, 90_000);
      assert.equal(c.http.draintimeout, 90_000);
    });

    it('turns a numeric version into a string', function () {
      assert.equal(parse({ version: 0.1 }).version, '0.1');
    });
  });

  describe('ConfigSchema validation', function () {
    it('rejects an unknown top-level key, naming it', function () {
      assert.ok(problems({ storag: {} }).some((p) => p.includes('storag')));
    });

    for (const [where, raw, key] of [
      ['storage.filesystem', { storage: { filesystem: { rootdir: '/x' } } }, 'rootdir'],
      ['http.debug', { http: { debug: { address: ':1' } } }, 'address'],
      ['storage.delete', { storage: { delete: { enabeld: true } } }, 'enabeld'],
      ['storage.maintenance.readonly', { storage: { maintenance: { readonly: { enable: true } } } }, 'enable'],
      ['log', { log: { lvl: 'debug' } }, 'lvl'],
    ] as const) {
      it(`rejects the unknown key ${key} in ${where}, naming section and key`, function () {
        const found = problems(raw);
        assert.ok(
          found.some((p) => p.startsWith(`${where}:`) && p.includes(key)),
          found.join('\n'),
        );
      });
    }

    it('rejects two storage drivers with a message naming the storage field', function () {
      const found = problems({ storage: { filesystem: { rootdirectory: '/x' }, inmemory: {} } });
      assert.ok(
        found.some(
          (p) =>
            /^storage\.(filesystem|inmemory): only one storage driver/.test(p) && p.includes('filesystem, inmemory'),
        ),
        found.join('\n'),
      );
    });

    it('counts a driver given with no parameters (YAML null) as configured', function () {
      const found = problems({ storage: { filesystem: null, inmemory: null } });
      assert.ok(found.some((p) => p.includes('only one storage driver')));
    });

    it('rejects a bad duration, naming the field and the expected form', function () {
      const found = problems({ storage: { maintenance: { uploadpurging: { age: '7d' } } } });
      assert.ok(
        found.some((p) => p.startsWith('storage.maintenance.uploadpurging.age:') && p.includes('30s')),
        found.join('\n'),
      );
      assert.ok(problems({ http: { draintimeout: -1 } }).some((p) => p.startsWith('http.draintimeout:')));
    });

    for (const good of [
      ':5000',
      '127.0.0.1:5000',
      'localhost:8080',
      '[::1]:5000',
      '5000',
      5000,
      ':0',
      '0.0.0.0:65535',
    ]) {
      it(`accepts the listen address ${JSON.stringify(good)}`, function () {
        assert.equal(parse({ http: { addr: good } }).http.addr, String(good));
      });
    }

    for (const bad of [':65536', ':99999', 'localhost', 'host:', 'a b:1', 'http://x:1', '']) {
      it(`rejects the listen address ${JSON.stringify(bad)}, naming http.addr`, function () {
        assert.ok(problems({ http: { addr: bad } }).some((p) => p.startsWith('http.addr:')));
      });
    }

    it('rejects values of the wrong type, naming the field', function () {
      assert.ok(
        problems({ storage: { delete: { enabled: 'yes' } } }).some((p) => p.startsWith('storage.delete.enabled:')),
      );
      assert.ok(problems({ log: { level: 'verbose' } }).some((p) => p.startsWith('log.level:')));
      assert.ok(
        problems({ storage: { cache: { blobdescriptorsize: 0 } } }).some((p) =>
          p.startsWith('storage.cache.blobdescriptorsize:'),
        ),
      );
      assert.ok(
        problems({ http: { debug: { prometheus: { path: 'metrics' } } } }).some((p) =>
          p.startsWith('http.debug.prometheus.path:'),
        ),
      );
      assert.ok(
        problems({ storage: { filesystem: { rootdirectory: '' } } }).some((p) =>
          p.startsWith('storage.filesystem.rootdirectory:'),
        ),
      );
    });

    it('accepts the Distribution sections Berth does not implement, whatever they hold', function () {
      const raw = Object.fromEntries(IGNORED_SECTIONS.map((k) => [k, { anything: [1, 2, 3] }]));
      const c = parse(raw) as Record<string, unknown>;
      for (const k of IGNORED_SECTIONS) assert.deepEqual(c[k], { anything: [1, 2, 3] });
    });
  });
});
