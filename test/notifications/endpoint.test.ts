// One notification endpoint against a real HTTP receiver: the envelope, filters, retries with backoff, a bounded
// queue that drops and counts, and a request side that never waits.
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { NotificationsSchema, type EndpointConfig } from '../../src/config/notifications.js';
import { Endpoint } from '../../src/notifications/endpoint.js';
import { EVENTS_MEDIA_TYPE, type RegistryEvent } from '../../src/notifications/events.js';
import { notificationMetrics } from '../../src/notifications/metrics.js';
import { parseMetrics, sumOf } from '../helpers/prometheus.js';
import { eventually, startReceiver, type Receiver } from '../helpers/receiver.js';

function endpointConfig(url: string, extra: Record<string, unknown> = {}): EndpointConfig {
  const parsed = NotificationsSchema.parse({ endpoints: [{ name: 'hook', url, ...extra }] });
  const [e] = parsed.endpoints;
  assert.ok(e);
  return e;
}

let n = 0;
function event(
  action: RegistryEvent['action'] = 'push',
  mediaType = 'application/vnd.oci.image.manifest.v1+json',
): RegistryEvent {
  n++;
  return {
    id: `e${n}`,
    timestamp: new Date().toISOString(),
    action,
    target: { mediaType, digest: `sha256:${'a'.repeat(64)}`, size: n, length: n, repository: 'r/x', url: '/v2/r/x' },
    request: { id: `req${n}`, addr: '127.0.0.1:1', host: 'h', method: 'PUT', useragent: 'test' },
    actor: {},
    source: { addr: 'here', instanceID: 'i' },
  };
}

describe('notification endpoint', function () {
  let receiver: Receiver;
  let registry: Registry;
  let endpoints: Endpoint[];

  beforeEach(async function () {
    receiver = await startReceiver();
    registry = new Registry();
    endpoints = [];
  });

  afterEach(async function () {
    await Promise.all(endpoints.map((e) => e.close(0)));
    await receiver.close();
  });

  function start(config: EndpointConfig, options = {}): Endpoint {
    const e = new Endpoint(config, notificationMetrics(registry), pino({ level: 'silent' }), {
      retryDelayMs: 10,
      ...options,
    });
    endpoints.push(e);
    return e;
  }

  async function metric(name: string): Promise<number> {
    return sumOf(parseMetrics(await registry.metrics()), name, { endpoint: 'hook' });
  }

  it("posts events in Distribution's envelope with the configured headers", async function () {
    const e = start(endpointConfig(receiver.url, { headers: { Authorization: ['Bearer t'], 'X-One': 'v' } }));
    const sent = [event('push'), event('pull')];
    for (const ev of sent) e.offer(ev);
    await eventually('two events', () => receiver.events().length === 2);
    const first = receiver.received[0];
    assert.equal(first?.headers['content-type'], EVENTS_MEDIA_TYPE);
    assert.equal(first?.headers['authorization'], 'Bearer t');
    assert.equal(first?.headers['x-one'], 'v');
    assert.deepEqual(receiver.events(), JSON.parse(JSON.stringify(sent)));
    await eventually('the sent count', () => e.pending === 0);
    assert.equal(await metric('registry_notifications_sent_total'), 2);
    assert.equal(await metric('registry_notifications_events_total'), 2);
  });

  it('leaves out ignored actions and media types, by both of Distribution’s keys', async function () {
    const e = start(
      endpointConfig(receiver.url, {
        ignoredmediatypes: ['application/octet-stream'],
        ignore: { mediatypes: ['application/vnd.oci.image.config.v1+json'], actions: ['pull'] },
      }),
    );
    e.offer(event('pull'));
    e.offer(event('push', 'application/octet-stream'));
    e.offer(event('push', 'application/vnd.oci.image.config.v1+json'));
    const kept = event('delete');
    e.offer(kept);
    await eventually('the kept event', () => receiver.events().length === 1);
    assert.equal(receiver.events()[0]?.['id'], kept.id);
    assert.equal(await metric('registry_notifications_events_total'), 1);
  });

  it('retries a refused delivery until the receiver takes it, counting the failures', async function () {
    receiver.behave(500);
    const e = start(endpointConfig(receiver.url, { threshold: 100 }));
    e.offer(event());
    await eventually('three refused attempts', () => receiver.attempts >= 3);
    assert.equal(receiver.events().length, 0);
    receiver.behave(200);
    await eventually('the delivery', () => receiver.events().length === 1);
    assert.ok((await metric('registry_notifications_failed_total')) >= 3);
    assert.equal(await metric('registry_notifications_sent_total'), 1);
    assert.equal(await metric('registry_notifications_queue_length'), 0);
  });

  it('backs off for `backoff` once `threshold` attempts failed in a row', async function () {
    receiver.behave(503);
    const e = start(endpointConfig(receiver.url, { threshold: 2, backoff: '800ms' }));
    e.offer(event());
    await eventually('two failed attempts', () => receiver.attempts >= 2);
    const at = receiver.attempts;
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(receiver.attempts, at, 'no attempt during the backoff');
    await eventually('the next attempt after it', () => receiver.attempts > at, 2_000);
  });

  it('times out a slow receiver, and never makes the caller wait', async function () {
    receiver.behave(200, 1_500);
    const e = start(endpointConfig(receiver.url, { timeout: '200ms', threshold: 100 }));
    const started = performance.now();
    for (let i = 0; i < 50; i++) e.offer(event());
    assert.ok(performance.now() - started < 50, 'offering 50 events is immediate');
    await eventually('a timed-out attempt', () => receiver.attempts >= 1);
    const deadline = Date.now() + 5_000;
    while ((await metric('registry_notifications_failed_total')) === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    assert.ok((await metric('registry_notifications_failed_total')) >= 50, 'the timed-out delivery counts as failed');
    assert.equal(e.pending, 50, 'nothing delivered while the receiver is too slow');
    receiver.behave(200);
    await eventually('all 50 delivered', () => receiver.events().length >= 50, 15_000);
    assert.ok((await metric('registry_notifications_failed_total')) >= 50);
  });

  it('keeps at most queueSize events for a receiver that is down, and drops and counts the rest', async function () {
    await receiver.close();
    const e = start(endpointConfig(receiver.url, { threshold: 1, backoff: '10s' }), { queueSize: 5 });
    for (let i = 0; i < 12; i++) e.offer(event());
    assert.equal(e.pending, 5);
    assert.equal(await metric('registry_notifications_dropped_total'), 7);
    assert.equal(await metric('registry_notifications_events_total'), 12);
    assert.equal(await metric('registry_notifications_queue_length'), 5);
    await e.close(0);
    assert.equal(await metric('registry_notifications_dropped_total'), 12, 'what was left at shutdown counts too');
    receiver = await startReceiver();
  });

  it('sends what is queued before closing, within the grace', async function () {
    const e = start(endpointConfig(receiver.url));
    for (let i = 0; i < 3; i++) e.offer(event());
    await e.close(2_000);
    assert.equal(receiver.events().length, 3);
    e.offer(event());
    assert.equal(await metric('registry_notifications_dropped_total'), 1, 'a closed endpoint drops');
  });
});
