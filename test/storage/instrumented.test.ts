// The instrumented driver: it is still a driver (the shared driver suite), and it measures every action, bytes
// pushed into uploads, bytes pulled from the blob store and upload writes in progress.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Registry } from 'prom-client';
import type { RedirectOptions } from '../../src/storage/driver.js';
import { InstrumentedDriver } from '../../src/storage/instrumented.js';
import { InMemoryDriver } from '../../src/storage/drivers/inmemory/index.js';
import { parseMetrics, sumOf } from '../helpers/prometheus.js';
import { runDriverSuite } from '../suites/driver-suite.js';

runDriverSuite('instrumented(inmemory)', async () => ({
  driver: new InstrumentedDriver(new InMemoryDriver(), new Registry()),
  cleanup: async () => {},
}));

const BLOB = '/docker/registry/v2/blobs/sha256/ab/abcdef/data';
const UPLOAD = '/docker/registry/v2/repositories/a/b/_uploads/0f0e/data';

async function drain(stream: Readable): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += (chunk as Buffer).length;
  return n;
}

describe('InstrumentedDriver', function () {
  let registry: Registry;
  let driver: InstrumentedDriver;

  beforeEach(function () {
    registry = new Registry();
    driver = new InstrumentedDriver(new InMemoryDriver(), registry);
  });

  async function samples() {
    return parseMetrics(await registry.metrics());
  }

  it('keeps the name of the driver it wraps', function () {
    assert.equal(driver.name, 'inmemory');
  });

  it('has redirectURL exactly when the wrapped driver has it, and passes its answer through', async function () {
    assert.equal(driver.redirectURL, undefined);
    class Redirecting extends InMemoryDriver {
      redirectURL(path: string, options: RedirectOptions): Promise<string | undefined> {
        return Promise.resolve(`https://store.example${path}?method=${options.method}&s=${options.expiresInSeconds}`);
      }
    }
    const wrapped = new InstrumentedDriver(new Redirecting(), new Registry());
    assert.equal(
      await wrapped.redirectURL?.(BLOB, { method: 'GET', expiresInSeconds: 60 }),
      `https://store.example${BLOB}?method=GET&s=60`,
    );
  });

  it('has abortIncomplete exactly when the wrapped driver has it, so purging reaches it through the wrapper', async function () {
    assert.equal(driver.abortIncomplete, undefined);
    const calls: Array<[Date, boolean]> = [];
    class Leftovers extends InMemoryDriver {
      abortIncomplete(olderThan: Date, dryRun: boolean): Promise<number> {
        calls.push([olderThan, dryRun]);
        return Promise.resolve(3);
      }
    }
    const wrapped = new InstrumentedDriver(new Leftovers(), new Registry());
    const cutoff = new Date(0);
    assert.equal(await wrapped.abortIncomplete?.(cutoff, true), 3);
    assert.deepEqual(calls, [[cutoff, true]]);
  });

  it('counts every action in registry_storage_action_seconds by driver and action, failures included', async function () {
    await driver.putContent('/a/b', Buffer.from('hi'));
    await driver.getContent('/a/b');
    await driver.stat('/a/b');
    await assert.rejects(driver.stat('/missing'));
    await driver.list('/a');
    await driver.move('/a/b', '/a/c');
    await driver.delete('/a/c');
    const s = await samples();
    const count = (action: string) => sumOf(s, 'registry_storage_action_seconds_count', { driver: 'inmemory', action });
    assert.deepEqual(
      ['PutContent', 'GetContent', 'Stat', 'List', 'Move', 'Delete', 'Reader', 'Writer'].map(count),
      [1, 1, 2, 1, 1, 1, 0, 0],
    );
  });

  it('counts bytes read from the blob store, streamed or whole, and nothing else', async function () {
    await driver.putContent(BLOB, Buffer.alloc(1000, 1));
    await driver.putContent('/docker/registry/v2/repositories/a/_layers/sha256/ab/link', Buffer.alloc(71));
    assert.equal(await drain(await driver.reader(BLOB)), 1000);
    assert.equal(await drain(await driver.reader(BLOB, { offset: 100, length: 50 })), 50);
    await driver.getContent(BLOB);
    await driver.getContent('/docker/registry/v2/repositories/a/_layers/sha256/ab/link');
    assert.equal(sumOf(await samples(), 'registry_storage_bytes_pulled_total'), 2050);
  });

  it('destroys the driver stream when the reader it handed out is destroyed', async function () {
    await driver.putContent(BLOB, Buffer.alloc(1 << 20, 2));
    const stream = await driver.reader(BLOB);
    stream.destroy();
    await new Promise((r) => setImmediate(r));
    assert.ok(stream.destroyed);
  });

  it('counts committed upload bytes as pushed, and upload writers open as in progress', async function () {
    const gauge = async () => sumOf(await samples(), 'registry_storage_uploads_in_progress');
    const first = await driver.writer(UPLOAD, false);
    assert.equal(await gauge(), 1);
    await pipeline(Readable.from([Buffer.alloc(300)]), first.stream);
    await first.commit();
    assert.equal(await gauge(), 0);
    const second = await driver.writer(UPLOAD, true);
    await pipeline(Readable.from([Buffer.alloc(200)]), second.stream);
    await second.commit();
    const cancelled = await driver.writer(UPLOAD, true);
    await pipeline(Readable.from([Buffer.alloc(999)]), cancelled.stream);
    await cancelled.cancel();
    await cancelled.cancel().catch(() => undefined);
    assert.equal(await gauge(), 0);
    assert.equal(sumOf(await samples(), 'registry_storage_bytes_pushed_total'), 500);
    assert.equal((await driver.stat(UPLOAD)).size, 500);
  });
});
