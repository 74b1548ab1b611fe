// Berth on a hung or slow volume (slowfs, a FUSE loopback): the event loop never waits on the disk, so liveness,
// the base endpoint and cached HEADs keep answering while the volume hangs, readiness says so quickly, and requests
// that need the volume finish once it answers again.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnRegistry, type ChildRegistry } from '../helpers/harness.js';
import { OCI_MANIFEST } from '../helpers/images.js';
import { putManifest, randomImage, pushImage, type Image } from '../helpers/push.js';
import { startSlowFs, type SlowFs, settledWithin, waitForBlocked } from '../helpers/slowfs.js';

async function timed(url: string, init: RequestInit = {}): Promise<{ status: number; ms: number; body: string }> {
  const started = performance.now();
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  const body = await res.text();
  return { status: res.status, ms: performance.now() - started, body };
}

describe('a slow or hung volume @integration', function () {
  this.timeout(120_000);
  let slow: SlowFs;
  let registry: ChildRegistry | undefined;
  let image: Image;

  beforeEach(async function () {
    slow = await startSlowFs();
  });

  afterEach(async function () {
    await slow.resume();
    await registry?.stop();
    registry = undefined;
    await slow.close();
  });

  async function start(env: Record<string, string> = {}): Promise<ChildRegistry> {
    registry = await spawnRegistry({ REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: slow.mountpoint, ...env });
    image = randomImage(2, 4096);
    await pushImage(registry.url, 'slow/app', 'v1', image);
    return registry;
  }

  it('keeps every call of a FUSE volume off the event loop, and says so at start', async function () {
    const r = await start();
    await sleep(100);
    const decided = r.logs.find((l) => l['msg'] === 'filesystem: every call runs on the thread pool');
    assert.ok(decided, JSON.stringify(r.logs.map((l) => l['msg'])));
    assert.equal(decided['filesystem'], 'fuse');
    assert.equal(decided['eventLoop'], false);
  });

  it('answers /healthz, /v2/ and cached HEADs while the volume hangs; /readyz says not ready; held requests finish on resume', async function () {
    const r = await start();
    const layer = image.layers[0]!;
    const blobUrl = `${r.url}/v2/slow/app/blobs/${layer.digest}`;
    assert.equal((await timed(blobUrl, { method: 'HEAD' })).status, 200, 'the HEAD fills the descriptor cache');

    await slow.hang();
    // A request that needs the volume: it waits for it, and must not take the rest of the server with it.
    const held = timed(`${r.url}/v2/slow/app/manifests/v1`, { headers: { Accept: OCI_MANIFEST } });
    await waitForBlocked(slow);

    for (let i = 0; i < 5; i++) {
      const health = await timed(`${r.debugUrl}/healthz`);
      assert.equal(health.status, 200);
      assert.ok(health.ms < 100, `/healthz took ${health.ms.toFixed(1)} ms on a hung volume`);
    }
    const base = await timed(`${r.url}/v2/`);
    assert.equal(base.status, 200);
    assert.ok(base.ms < 100, `/v2/ took ${base.ms.toFixed(1)} ms`);
    const head = await timed(blobUrl, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.ok(head.ms < 100, `a cached HEAD took ${head.ms.toFixed(1)} ms`);
    const ready = await timed(`${r.debugUrl}/readyz`);
    assert.equal(ready.status, 503);
    assert.ok(ready.ms < 1_500, `/readyz took ${ready.ms.toFixed(1)} ms`);
    assert.match(ready.body, /storage did not answer/);
    assert.equal(await settledWithin(held, 200), 'pending', 'the manifest GET waits for the volume');

    await slow.resume();
    const manifest = await held;
    assert.equal(manifest.status, 200, manifest.body);
    assert.equal(manifest.body, image.manifest.toString());
    assert.equal((await timed(`${r.debugUrl}/readyz`)).status, 200);
  });

  it('keeps serving pushes and pulls on a volume with a steady delay', async function () {
    const r = await start();
    await slow.setDelay(2);
    const again = randomImage(1, 2048);
    await pushImage(r.url, 'slow/other', 'v1', again);
    const res = await putManifest(r.url, 'slow/other', 'v2', again.manifest);
    assert.equal(res.status, 201);
    const got = await timed(`${r.url}/v2/slow/other/manifests/v2`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(got.status, 200);
    // 2 ms per operation on the volume, yet health answers at event-loop speed.
    const health = await timed(`${r.debugUrl}/healthz`);
    assert.ok(health.ms < 100, `/healthz took ${health.ms.toFixed(1)} ms`);
  });
});
