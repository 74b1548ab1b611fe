// The `redis:` section: Distribution 3's keys and defaults, the topology they describe, the rules between keys, and
// REGISTRY_REDIS_* / REGISTRY_STORAGE_CACHE_* environment overrides.
import assert from 'node:assert/strict';
import { redisTopology } from '../../src/cache/redis-client.js';
import { ConfigError, loadConfig, resolveConfig } from '../../src/config/load.js';
import { RedisSchema } from '../../src/config/redis.js';

function problems(raw: unknown): string[] {
  try {
    resolveConfig(raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return [...err.problems];
  }
  return [];
}

describe('config/redis', function () {
  it('fills the defaults: db 0, no prefix, no TLS, 2s dial and 200ms read and write timeouts', function () {
    const r = RedisSchema.parse({ addrs: ['127.0.0.1:6379'] });
    assert.equal(r.db, 0);
    assert.equal(r.prefix, '');
    assert.equal(r.cluster, false);
    assert.deepEqual(r.tls, { enabled: false, clientcas: [], insecureskipverify: false });
    assert.equal(r.dialtimeout, 2_000);
    assert.equal(r.readtimeout, 200);
    assert.equal(r.writetimeout, 200);
  });

  it('reads Go durations and seconds', function () {
    const r = RedisSchema.parse({ addrs: ['a:1'], dialtimeout: '1.5s', readtimeout: '50ms', writetimeout: 1 });
    assert.deepEqual([r.dialtimeout, r.readtimeout, r.writetimeout], [1_500, 50, 1_000]);
  });

  it('picks the topology as go-redis does: mastername is Sentinel, cluster or several addrs is Cluster', function () {
    assert.equal(redisTopology(RedisSchema.parse({ addrs: ['a:1'] })), 'single');
    assert.equal(redisTopology(RedisSchema.parse({ addrs: ['a:1', 'b:2'], mastername: 'm' })), 'sentinel');
    assert.equal(redisTopology(RedisSchema.parse({ addrs: ['a:1', 'b:2'] })), 'cluster');
    assert.equal(redisTopology(RedisSchema.parse({ addrs: ['a:1'], cluster: true })), 'cluster');
  });

  for (const [why, redis, field] of [
    ['no addrs', { addrs: [] }, 'redis.addrs'],
    ['an address without a port', { addrs: ['redis'] }, 'redis.addrs.0'],
    ['a db on a Cluster', { addrs: ['a:1'], cluster: true, db: 2 }, 'redis.db'],
    ['a db with several addrs (Cluster)', { addrs: ['a:1', 'b:2'], db: 1 }, 'redis.db'],
    ['mastername with cluster', { addrs: ['a:1'], mastername: 'm', cluster: true }, 'redis.cluster'],
    [
      'a certificate without its key',
      { addrs: ['a:1'], tls: { enabled: true, certificate: '/c.pem' } },
      'redis.tls.key',
    ],
    ['a db beyond 15', { addrs: ['a:1'], db: 16 }, 'redis.db'],
    ['an unknown key', { addrs: ['a:1'], sentinel: true }, 'redis'],
  ] as const) {
    it(`rejects ${why}, naming ${field}`, function () {
      const found = problems({ redis });
      assert.ok(
        found.some((p) => p.startsWith(`${field}:`) || p.startsWith(`${field}`)),
        `${field} not named in ${JSON.stringify(found)}`,
      );
    });
  }

  it('requires a redis section for the redis cache, naming it', function () {
    const found = problems({ storage: { inmemory: {}, cache: { blobdescriptor: 'redis' } } });
    assert.ok(
      found.some((p) => p.startsWith('redis:')),
      JSON.stringify(found),
    );
  });

  it('takes the cache and redis settings from REGISTRY_* variables', async function () {
    const config = await loadConfig(undefined, {
      REGISTRY_STORAGE: 'inmemory',
      REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'redis',
      REGISTRY_STORAGE_CACHE_TWOTIER: 'true',
      REGISTRY_STORAGE_CACHE_BLOBDESCRIPTORSIZE: '500',
      REGISTRY_REDIS_ADDRS: '[127.0.0.1:6379, 127.0.0.1:6380]',
      REGISTRY_REDIS_PASSWORD: 's3cret',
      // Values are YAML: a prefix ending in a colon is quoted, or it reads as a mapping.
      REGISTRY_REDIS_PREFIX: '"berth:"',
      REGISTRY_REDIS_READTIMEOUT: '75ms',
      REGISTRY_REDIS_TLS_ENABLED: 'true',
      REGISTRY_REDIS_TLS_CLIENTCAS: '[/etc/ssl/ca.pem]',
    });
    assert.deepEqual(config.cache, { blobdescriptor: 'redis', blobdescriptorsize: 500, twotier: true });
    assert.ok(config.redis !== undefined);
    assert.deepEqual(config.redis.addrs, ['127.0.0.1:6379', '127.0.0.1:6380']);
    assert.equal(config.redis.password, 's3cret');
    assert.equal(config.redis.prefix, 'berth:');
    assert.equal(config.redis.readtimeout, 75);
    assert.equal(config.redis.tls.enabled, true);
    assert.deepEqual(config.redis.tls.clientcas, ['/etc/ssl/ca.pem']);
  });
});
