// The `berth` entry point as a process: usage names every command, `serve` pushes and pulls the same under every
// BERTH_GC mode (V8 flags set at start-up), and refuses an unknown mode before it listens.
import assert from 'node:assert/strict';
import { CLI, removeDir, spawnRegistry, tempDir, type ChildRegistry } from '../helpers/harness.js';
import { runCommand } from '../helpers/images.js';
import { pushImage, randomImage } from '../helpers/push.js';

describe('berth CLI @integration', function () {
  this.timeout(60_000);

  it('lists serve, operator and verify in its usage', async () => {
    const r = await runCommand(process.execPath, [CLI, 'help'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0);
    for (const command of ['berth serve', 'berth operator', 'berth verify'])
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
});
