// The debug listener: liveness that never waits on storage, readiness with a deadline, a scrape that fails cleanly,
// and what the HTTP metrics it serves count.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { pino } from 'pino';
import { Gauge } from 'prom-client';
import { createDebugServer } from '../../src/registry/debug.js';
import { createMetrics } from '../../src/registry/metrics.js';
import type { FileInfo, StorageDriver } from '../../src/storage/driver.js';
import { InMemoryDriver } from '../../src/storage/drivers/inmemory/index.js';
import { startInProcess } from '../helpers/harness.js';
import { parseMetrics, sumOf } from '../helpers/prometheus.js';
import { randomBlob, uploadBlob } from '../helpers/push.js';

/** An in-memory driver whose stat waits until `release` is called, as on a hung volume; counts the stats. */
class HungDriver extends InMemoryDriver {
  stats = 0;
  #waiting: Array<() => void> = [];

  override async stat(path: string): Promise<FileInfo> {
    this.stats++;
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
    return super.stat(path);
  }

  release(): void {
    for (const resolve of this.#waiting.splice(0)) resolve();
  }
}

async function listen(driver: StorageDriver, storageTimeoutMs = 200) {
  const metrics = createMetrics();
  const server = createDebugServer({
    driver,
    metrics,
    metricsPath: '/metrics',
    log: pino({ level: 'silent' }),
    storageTimeoutMs,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, url, metrics };
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

async function timed(url: string): Promise<{ status: number; ms: number; body: string }> {
  const started = performance.now();
  const res = await fetch(url);
  const body = await res.text();
  return { status: res.status, ms: performance.now() - started, body };
}

describe('debug listener', function () {
  it('answers /healthz without touching storage, even while storage hangs', async function () {
    const driver = new HungDriver();
    const { server, url } = await listen(driver);
    try {
      const health = await timed(`${url}/healthz`);
      assert.equal(health.status, 200);
      assert.ok(health.ms < 100, `${health.ms} ms`);
      assert.equal(driver.stats, 0);
    } finally {
      driver.release();
      await close(server);
    }
  });

  it('answers /readyz 503 once storage misses the deadline, and asks storage one question at a time', async function () {
    const driver = new HungDriver();
    const { server, url } = await listen(driver, 200);
    try {
      const [a, b] = await Promise.all([timed(`${url}/readyz`), timed(`${url}/readyz`)]);
      for (const r of [a, b]) {
        assert.equal(r.status, 503);
        assert.ok(r.ms < 1_000, `${r.ms} ms`);
        assert.match(r.body, /storage did not answer within 200 ms/);
      }
      assert.equal(driver.stats, 1, 'the second probe waits on the first stat instead of starting another');
      driver.release();
      await new Promise((resolve) => setTimeout(resolve, 10));
      const ready = await timed(`${url}/readyz`);
      assert.equal(ready.status, 503, 'the next probe asks again, and this stat hangs too');
      driver.release();
    } finally {
      driver.release();
      await close(server);
    }
  });

  it('answers /readyz 200 when storage answers in time', async function () {
    const { server, url } = await listen(new InMemoryDriver());
    try {
      const ready = await timed(`${url}/readyz`);
      assert.equal(ready.status, 200);
      assert.deepEqual(JSON.parse(ready.body), { status: 'ok', checks: { storage: 'ok' } });
    } finally {
      await close(server);
    }
  });

  it('answers a scrape whose collector fails with 500, logged, and keeps serving', async function () {
    const { server, url, metrics } = await listen(new InMemoryDriver());
    try {
      new Gauge({
        name: 'berth_test_broken',
        help: 'a collector that fails',
        registers: [metrics.registry],
        collect() {
          throw new Error('collector broke');
        },
      });
      const scrape = await timed(`${url}/metrics`);
      assert.equal(scrape.status, 500);
      assert.match(scrape.body, /collector broke/);
      assert.equal((await timed(`${url}/healthz`)).status, 200);
    } finally {
      await close(server);
    }
  });
});

describe('HTTP response size metric', function () {
  it('counts a GET by the bytes it sent and a HEAD as none', async function () {
    const registry = await startInProcess();
    try {
      const blob = randomBlob(4096);
      await uploadBlob(registry.url, 'sizes/repo', blob);
      const at = `${registry.url}/v2/sizes/repo/blobs/${blob.digest}`;
      for (let i = 0; i < 3; i++) assert.equal((await fetch(at, { method: 'HEAD' })).status, 200);
      const get = await fetch(at);
      assert.equal((await get.arrayBuffer()).byteLength, 4096);
      const samples = parseMetrics(await (await fetch(`${registry.debugUrl}/metrics`)).text());
      const size = (method: string) =>
        sumOf(samples, 'registry_http_response_size_bytes_sum', { method, route: 'blob' });
      assert.equal(sumOf(samples, 'registry_http_response_size_bytes_count', { method: 'HEAD', route: 'blob' }), 3);
      assert.equal(size('HEAD'), 0);
      assert.equal(size('GET'), 4096);
    } finally {
      await registry.close();
    }
  });
});
