// Notifications end to end: a registry with two endpoints (one healthy, one answering 500 for a while, one slow)
// records push, pull, mount and delete events of real requests in Distribution's envelope, and a slow or failing
// receiver never slows the requests.
import assert from 'node:assert/strict';
import { startInProcess, type InProcessRegistry } from '../helpers/harness.js';
import { OCI_MANIFEST } from '../helpers/images.js';
import { parseMetrics, sumOf } from '../helpers/prometheus.js';
import { deleteManifest, pushImage, randomBlob, randomImage, uploadBlob } from '../helpers/push.js';
import { eventually, startReceiver, type Receiver } from '../helpers/receiver.js';

describe('notifications from real requests @integration', function () {
  this.timeout(60_000);
  let healthy: Receiver;
  let flaky: Receiver;
  let registry: InProcessRegistry;

  before(async function () {
    healthy = await startReceiver();
    flaky = await startReceiver();
    registry = await startInProcess({
      storage: { delete: { enabled: true } },
      notifications: {
        endpoints: [
          { name: 'healthy', url: healthy.url, headers: { 'X-Hook': ['berth'] } },
          { name: 'flaky', url: flaky.url, timeout: '300ms', threshold: 100, ignore: { actions: ['pull'] } },
        ],
      },
    });
  });

  after(async function () {
    await registry.close();
    await healthy.close();
    await flaky.close();
  });

  it('sends push, pull, mount and delete events with their targets and request ids', async function () {
    const image = randomImage(1, 1024);
    await pushImage(registry.url, 'notify/app', 'v1', image);
    const layer = image.layers[0]!;
    const pull = await fetch(`${registry.url}/v2/notify/app/manifests/v1`, {
      headers: { Accept: OCI_MANIFEST, 'User-Agent': 'notify-test/1' },
    });
    assert.equal(pull.status, 200);
    const pullId = pull.headers.get('X-Request-Id');
    await (await fetch(`${registry.url}/v2/notify/app/blobs/${layer.digest}`)).arrayBuffer();
    assert.equal((await fetch(`${registry.url}/v2/notify/app/blobs/${layer.digest}`, { method: 'HEAD' })).status, 200);
    const mount = await fetch(`${registry.url}/v2/notify/other/blobs/uploads/?mount=${layer.digest}&from=notify/app`, {
      method: 'POST',
    });
    assert.equal(mount.status, 201);
    await deleteManifest(registry.url, 'notify/app', image.digest);

    // config + layer + manifest pushed; manifest and layer pulled (the HEAD is not a pull); a mount; a delete. Blobs
    // are octet-stream to the registry, as in Distribution: only a manifest says what a blob is.
    await eventually('all events', () => healthy.events().length >= 7);
    const events = healthy.events();
    assert.deepEqual(
      events.map((e) => `${e.action} ${String(e.target['mediaType'])}`),
      [
        'push application/octet-stream',
        'push application/octet-stream',
        `push ${OCI_MANIFEST}`,
        `pull ${OCI_MANIFEST}`,
        'pull application/octet-stream',
        'mount application/octet-stream',
        'delete ',
      ],
    );
    const manifestPush = events[2]!;
    assert.deepEqual(
      {
        digest: manifestPush.target['digest'],
        repository: manifestPush.target['repository'],
        tag: manifestPush.target['tag'],
        size: manifestPush.target['size'],
        length: manifestPush.target['length'],
      },
      {
        digest: image.digest,
        repository: 'notify/app',
        tag: 'v1',
        size: image.manifest.length,
        length: image.manifest.length,
      },
    );
    const manifestPull = events[3]!;
    assert.equal((manifestPull['request'] as Record<string, unknown>)['id'], pullId);
    assert.equal((manifestPull['request'] as Record<string, unknown>)['useragent'], 'notify-test/1');
    assert.equal((manifestPull['request'] as Record<string, unknown>)['method'], 'GET');
    assert.equal(events[5]!.target['fromRepository'], 'notify/app');
    assert.equal(events[5]!.target['repository'], 'notify/other');
    assert.equal(events[6]!.target['digest'], image.digest);
    const ids = new Set(events.map((e) => e['id']));
    assert.equal(ids.size, events.length, 'every event has its own id');
    assert.equal(healthy.received[0]?.headers['x-hook'], 'berth');
    assert.equal(healthy.received[0]?.headers['content-type'], 'application/vnd.docker.distribution.events.v2+json');
    // The flaky endpoint ignores pulls.
    await eventually('the flaky endpoint’s events', () => flaky.events().length >= 5);
    assert.deepEqual(
      flaky.events().map((e) => e.action),
      ['push', 'push', 'push', 'mount', 'delete'],
    );
  });

  it('keeps requests fast while an endpoint refuses or stalls, and delivers once it recovers', async function () {
    flaky.behave(500, 1_000);
    const before = flaky.events().length;
    const started = performance.now();
    for (let i = 0; i < 5; i++) await uploadBlob(registry.url, 'notify/slow', randomBlob(512));
    const took = performance.now() - started;
    assert.ok(took < 1_000, `5 pushes took ${took.toFixed(0)} ms while the endpoint stalls`);
    await eventually('failed deliveries counted', () => flaky.attempts > 0);
    flaky.behave(200);
    await eventually('the 5 pushes delivered', () => flaky.events().length >= before + 5, 20_000);
    const samples = parseMetrics(await (await fetch(`${registry.debugUrl}/metrics`)).text());
    assert.ok(sumOf(samples, 'registry_notifications_failed_total', { endpoint: 'flaky' }) >= 1);
    assert.ok(sumOf(samples, 'registry_notifications_sent_total', { endpoint: 'healthy' }) >= 12);
    assert.equal(sumOf(samples, 'registry_notifications_dropped_total', { endpoint: 'flaky' }), 0);
  });
});
