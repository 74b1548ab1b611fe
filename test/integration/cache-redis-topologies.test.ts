// The Redis cache on each topology and connection setting of the `redis:` section, against real redis-server
// processes: mutual TLS, ACL username and password with a database, Sentinel, and Cluster. Each runs the shared
// cache suite (plain and two-tier, with a second replica); TLS and ACL also show that a wrong setting fails open.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createDescriptorCache, type DescriptorCache } from '../../src/cache/index.js';
import { resolveConfig } from '../../src/config/load.js';
import { removeDir, tempDir } from '../helpers/harness.js';
import { runCommand } from '../helpers/images.js';
import { eventually, redisCli, startRedis, type RedisServer } from '../helpers/redis.js';
import { FakeStorage, runCacheSuite, uniqueDigest } from '../suites/cache-suite.js';

const silent = pino({ level: 'silent' });
let prefixes = 0;

async function open(registry: Registry, redis: Record<string, unknown>, twotier = false): Promise<DescriptorCache> {
  const config = resolveConfig({
    storage: { inmemory: {}, cache: { blobdescriptor: 'redis', twotier } },
    redis: redis as never,
  });
  const cache = await createDescriptorCache(config, silent, registry);
  assert.ok(cache !== undefined);
  return cache;
}

/** The shared suite for the plain and the two-tier cache over the settings `redis()` gives once servers run. */
function suites(name: string, redis: () => Record<string, unknown>): void {
  for (const twotier of [false, true]) {
    runCacheSuite(`${twotier ? 'two-tier' : 'redis'} over ${name}`, async (registry) => {
      const settings = { ...redis(), prefix: `topo${prefixes++}:` };
      return {
        cache: await open(registry, settings, twotier),
        replica: (peer) => open(peer, settings, twotier),
        cleanup: async () => undefined,
      };
    });
  }
}

/** A stat through a fresh cache with these settings is answered (by storage, if need be); the cache's check. */
async function statThrough(redis: Record<string, unknown>): Promise<string | undefined> {
  const cache = await open(new Registry(), { dialtimeout: '500ms', readtimeout: '100ms', ...redis });
  try {
    const d = { digest: uniqueDigest(), size: 3, mediaType: 'application/octet-stream' };
    const storage = new FakeStorage();
    storage.put(undefined, d);
    assert.deepEqual(await cache.wrap(storage.statter(undefined), undefined).stat(d.digest), d);
    return await cache.check();
  } finally {
    await cache.close();
  }
}

async function openssl(dir: string, args: readonly string[]): Promise<void> {
  const r = await runCommand('/usr/bin/openssl', args, { cwd: dir, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`${r.command}: ${r.stderr}`);
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, in a new directory. */
async function certificates(): Promise<string> {
  const dir = await tempDir('berth-tls-');
  await writeFile(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\n');
  await openssl(
    dir,
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=Berth test CA'].concat([
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
    ]),
  );
  for (const who of ['server', 'client']) {
    await openssl(dir, [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${who}`,
      '-keyout',
      `${who}.key`,
      '-out',
      `${who}.csr`,
    ]);
    await openssl(dir, [
      ...['x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial'],
      ...['-days', '1', '-out', `${who}.crt`],
      ...(who === 'server' ? ['-extfile', 'server.ext'] : []),
    ]);
  }
  return dir;
}

describe('redis topologies and connection settings @integration', function () {
  this.timeout(60_000);

  describe('mutual TLS', function () {
    let certs: string;
    let server: RedisServer;

    before(async function () {
      certs = await certificates();
      server = await startRedis({
        tls: true,
        args: [
          ...['--tls-cert-file', join(certs, 'server.crt'), '--tls-key-file', join(certs, 'server.key')],
          ...['--tls-ca-cert-file', join(certs, 'ca.crt'), '--tls-auth-clients', 'yes'],
        ],
      });
    });

    after(async function () {
      await server?.dispose();
      if (certs !== undefined) await removeDir(certs);
    });

    const tls = () => ({
      enabled: true,
      certificate: join(certs, 'client.crt'),
      key: join(certs, 'client.key'),
      clientcas: [join(certs, 'ca.crt')],
    });

    suites('mutual TLS', () => ({ addrs: [server.addr], tls: tls() }));

    it('fails open when the server certificate cannot be verified', async function () {
      const { clientcas: _, ...untrusted } = tls();
      assert.match((await statThrough({ addrs: [server.addr], tls: untrusted })) ?? '', /^redis: /);
    });

    it('connects to a server it cannot verify only with insecureskipverify', async function () {
      const { clientcas: _, ...untrusted } = tls();
      assert.equal(
        await statThrough({ addrs: [server.addr], tls: { ...untrusted, insecureskipverify: true } }),
        undefined,
      );
    });

    it('fails open without a client certificate', async function () {
      assert.match(
        (await statThrough({ addrs: [server.addr], tls: { enabled: true, clientcas: [join(certs, 'ca.crt')] } })) ?? '',
        /^redis: /,
      );
    });
  });

  describe('ACL username and password, database 5', function () {
    let server: RedisServer;

    before(async function () {
      server = await startRedis({
        args: ['--user', 'default', 'off', '--user', 'berth', 'on', '>s3cret', '~*', '&*', '+@all'],
      });
    });

    after(async function () {
      await server?.dispose();
    });

    suites('ACL auth', () => ({ addrs: [server.addr], username: 'berth', password: 's3cret', db: 5 }));

    it('keeps its keys in the configured database', async function () {
      const cache = await open(new Registry(), { addrs: [server.addr], username: 'berth', password: 's3cret', db: 5 });
      const admin = server.client({ username: 'berth', password: 's3cret', db: 5 });
      try {
        const d = { digest: uniqueDigest(), size: 9, mediaType: 'application/octet-stream' };
        const storage = new FakeStorage();
        storage.put(undefined, d);
        await cache.wrap(storage.statter(undefined), undefined).stat(d.digest);
        assert.equal(await admin.hget(`blobs::${d.digest.value}`, 'size'), '9');
      } finally {
        admin.disconnect();
        await cache.close();
      }
    });

    it('fails open with a wrong password', async function () {
      assert.match(
        (await statThrough({ addrs: [server.addr], username: 'berth', password: 'wrong' })) ?? '',
        /^redis: /,
      );
    });
  });

  describe('Sentinel', function () {
    let master: RedisServer;
    let sentinel: RedisServer;

    before(async function () {
      master = await startRedis();
      sentinel = await startRedis({
        sentinelConfig: [
          `sentinel monitor berthmaster 127.0.0.1 ${master.port} 1`,
          'sentinel down-after-milliseconds berthmaster 5000',
          '',
        ].join('\n'),
      });
    });

    after(async function () {
      await sentinel?.dispose();
      await master?.dispose();
    });

    suites('Sentinel', () => ({ addrs: [sentinel.addr], mastername: 'berthmaster' }));

    it('writes to the master the Sentinel names', async function () {
      const cache = await open(new Registry(), { addrs: [sentinel.addr], mastername: 'berthmaster' });
      const admin = master.client();
      try {
        const d = { digest: uniqueDigest(), size: 11, mediaType: 'application/octet-stream' };
        const storage = new FakeStorage();
        storage.put(undefined, d);
        await cache.wrap(storage.statter(undefined), undefined).stat(d.digest);
        assert.equal(await admin.hget(`blobs::${d.digest.value}`, 'size'), '11');
      } finally {
        admin.disconnect();
        await cache.close();
      }
    });
  });

  describe('Cluster of three masters', function () {
    const nodes: RedisServer[] = [];

    before(async function () {
      for (let i = 0; i < 3; i++) {
        nodes.push(
          await startRedis({
            args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000'],
          }),
        );
      }
      await redisCli(['--cluster', 'create', ...nodes.map((n) => n.addr), '--cluster-replicas', '0', '--cluster-yes']);
      await eventually(
        async () => {
          for (const n of nodes) {
            if (!(await redisCli(['-p', String(n.port), 'cluster', 'info'])).includes('cluster_state:ok')) return false;
          }
          return true;
        },
        'the cluster to be ok',
        30_000,
        200,
      );
    });

    after(async function () {
      for (const n of nodes.splice(0)) await n.dispose();
    });

    suites('Cluster', () => ({ addrs: nodes.map((n) => n.addr) }));

    it('spreads its keys over the nodes, each command on one key', async function () {
      const cache = await open(new Registry(), { addrs: [nodes[0]!.addr], cluster: true, prefix: 'spread:' });
      try {
        const storage = new FakeStorage();
        const digests = Array.from({ length: 30 }, () => uniqueDigest());
        for (const digest of digests) storage.put('c/r', { digest, size: 1, mediaType: 'application/octet-stream' });
        const statter = cache.wrap(storage.statter('c/r'), 'c/r');
        for (const digest of digests) await statter.stat(digest);
        for (const digest of digests) await statter.stat(digest);
        for (const digest of digests) assert.equal(storage.asked('c/r', digest), 1);
        const perNode = await Promise.all(
          nodes.map(async (n) => Number((await redisCli(['-p', String(n.port), 'dbsize'])).trim())),
        );
        assert.ok(perNode.filter((k) => k > 0).length >= 2, `keys on several nodes: ${perNode.join(', ')}`);
      } finally {
        await cache.close();
      }
    });
  });
});
