// The `berth` entry point as a process: usage names every command, `serve` pushes and pulls the same under every
// BERTH_GC mode (V8 flags set at start-up), and refuses an unknown mode before it listens; an address it cannot
// listen on ends it with one clear log line and exit code 1, not a stack trace, even with a Redis client open.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { CLI, removeDir, spawnRegistry, tempDir, type ChildRegistry } from '../helpers/harness.js';
import { runCommand } from '../helpers/images.js';
import { pushImage, randomImage } from '../helpers/push.js';

describe('berth CLI @integration', function () {
  this.timeout(60_000);

  it('lists serve, operator, verify, check and gc in its usage', async () => {
    const r = await runCommand(process.execPath, [CLI, 'help'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0);
    for (const command of ['berth serve', 'berth operator', 'berth verify', 'berth check', 'berth gc'])
      assert.match(r.stdout, new RegExp(command));
  });

  it('refuses an unknown BERTH_GC, naming the choices', async () => {
    const r = await runCommand(process.execPath, [CLI, 'serve'], {
      timeoutMs: 30_000,
      env: { PATH: process.env['PATH'] ?? '', BERTH_GC: 'fast', REGISTRY_HTTP_ADDR: '127.0.0.1:0' },
    });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /BERTH_GC=fast: choose one of balanced, throughput, v8/);
  });

  describe('an address it cannot listen on', () => {
    let taken: Server;
    let port: number;
    let dir: string;

    before(async () => {
      // It takes the port and hangs up on whoever connects (the Redis client of the last case).
      taken = createServer((socket) => socket.destroy());
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      port = (taken.address() as AddressInfo).port;
      dir = await tempDir('berth-cli-');
    });

    after(async () => {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
      await removeDir(dir);
    });

    const cases: ReadonlyArray<{ what: string; env: () => Record<string, string> }> = [
      { what: 'http.addr', env: () => ({ REGISTRY_HTTP_ADDR: `127.0.0.1:${port}` }) },
      {
        what: 'http.debug.addr',
        env: () => ({ REGISTRY_HTTP_ADDR: '127.0.0.1:0', REGISTRY_HTTP_DEBUG_ADDR: `127.0.0.1:${port}` }),
      },
      {
        // A Redis client that keeps reconnecting would hold the process open after the failed start.
        what: 'http.addr',
        env: () => ({
          REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
          REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'redis',
          REGISTRY_REDIS_ADDRS: `[127.0.0.1:${port}]`,
          REGISTRY_REDIS_DIALTIMEOUT: '200ms',
        }),
      },
    ];
    for (const { what, env } of cases) {
      const label = env()['REGISTRY_REDIS_ADDRS'] === undefined ? '' : ', with a Redis client open,';
      it(`exits 1${label} naming ${what} and the reason in one JSON line, without a stack trace`, async () => {
        const r = await runCommand(process.execPath, [CLI, 'serve'], {
          timeoutMs: 30_000,
          env: {
            PATH: process.env['PATH'] ?? '',
            REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: dir,
            REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:0',
            ...env(),
          },
        });
        assert.equal(r.timedOut, false, 'the process did not exit');
        assert.equal(r.code, 1, r.stdout + r.stderr);
        const fatal = r.stdout
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => JSON.parse(line) as Record<string, unknown>)
          .find((entry) => entry['level'] === 'fatal');
        assert.ok(fatal !== undefined, `no fatal log line in ${r.stdout}`);
        assert.equal(
          fatal['msg'],
          `cannot listen on 127.0.0.1:${port} (${what}): the address is already in use (another registry or process listens there)`,
        );
        assert.equal(fatal['code'], 'EADDRINUSE');
        assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at /, 'a stack trace was printed');
      });
    }
  });

  for (const gc of ['balanced', 'throughput', 'v8']) {
    it(`serves pushes and pulls with BERTH_GC=${gc}`, async () => {
      const dir = await tempDir('berth-cli-');
      let registry: ChildRegistry | undefined;
      try {
        registry = await spawnRegistry({ REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: dir, BERTH_GC: gc });
        const image = randomImage(2, 3 * 1024 * 1024);
        await pushImage(registry.url, 'cli/gc', 'v1', image);
        for (const layer of image.layers) {
          const res = await fetch(`${registry.url}/v2/cli/gc/blobs/${layer.digest}`);
          assert.equal(res.status, 200);
          assert.ok(Buffer.from(await res.arrayBuffer()).equals(layer.bytes));
        }
      } finally {
        await registry?.stop();
        await removeDir(dir);
      }
    });
  }

  describe('berth check', () => {
    let dir: string;
    let registry: ChildRegistry | undefined;

    before(async () => {
      dir = await tempDir('berth-check-');
      registry = await spawnRegistry({
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: dir,
        REGISTRY_STORAGE_DELETE_ENABLED: 'true',
      });
    });

    after(async () => {
      await registry?.stop();
      await removeDir(dir);
    });

    it('pushes a tiny image, pulls it back byte for byte, deletes it, and exits 0', async () => {
      assert.ok(registry);
      const r = await runCommand(process.execPath, [CLI, 'check', registry.url, '--repository', 'probe/one'], {
        timeoutMs: 30_000,
      });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const pushed = /pushed probe\/one:(check-\d+) \((sha256:[0-9a-f]{64})\)/.exec(r.stdout);
      assert.ok(pushed, r.stdout);
      assert.match(r.stdout, /manifest, config and layer match/);
      assert.match(r.stdout, /deleted the manifest/);
      // The manifest it pushed is gone again (the registry really took the push and the delete).
      const res = await fetch(`${registry.url}/v2/probe/one/manifests/${pushed[2] ?? ''}`, { method: 'HEAD' });
      assert.equal(res.status, 404);
    });

    it('exits 1 with the failing step and the registry’s answer', async () => {
      assert.ok(registry);
      const r = await runCommand(process.execPath, [CLI, 'check', registry.url, '--repository', 'Not/Valid'], {
        timeoutMs: 30_000,
      });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /^berth check: start an upload: HTTP 400, expected 202: .*NAME_INVALID/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'a stack trace was printed');
    });

    it('exits 1 naming the address when nothing listens there', async () => {
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const { port: free } = closed.address() as AddressInfo;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      const r = await runCommand(process.execPath, [CLI, 'check', `http://127.0.0.1:${free}`], { timeoutMs: 30_000 });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`GET http://127.0.0.1:${free}/v2/: fetch failed: connect ECONNREFUSED`));
    });
  });
});
