// The online collector of `berth serve`: replicas sharing a store take turns through the lease, the one that holds it
// sweeps and counts its run, the others count a skip, and shutdown or a lost lease stop a run and free the lease.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { resolveConfig } from '../../src/config/load.js';
import { GC_LEASE_PATH, GcLease } from '../../src/gc/lease.js';
import { gcConfigNotes, startOnlineGc, type OnlineGc, type OnlineGcConfig } from '../../src/gc/online.js';
import { digestBuffer } from '../../src/oci/digest.js';
import { InMemoryDriver } from '../../src/storage/drivers/inmemory/index.js';
import { paths } from '../../src/storage/paths.js';
import { CLI, removeDir, tempDir } from '../helpers/harness.js';
import { runCommand } from '../helpers/images.js';

const silent = pino({ level: 'silent' });
const config: OnlineGcConfig = {
  enabled: true,
  interval: 60_000,
  graceperiod: 0,
  deleteuntagged: false,
  dryrun: false,
};

/** The in-memory driver, slowed down on listings so a run lasts long enough to be interrupted. */
class SlowDriver extends InMemoryDriver {
  listDelayMs = 0;
  /** Per move: the sweep moves each blob to the trash, many at once, so a long run needs slow moves. */
  moveDelayMs = 0;

  override async list(path: string): Promise<string[]> {
    if (this.listDelayMs > 0) await sleep(this.listDelayMs);
    return super.list(path);
  }

  override async move(source: string, destination: string): Promise<void> {
    if (this.moveDelayMs > 0) await sleep(this.moveDelayMs);
    return super.move(source, destination);
  }
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const found = (await registry.getSingleMetric(name)?.get())?.values.find((v) =>
    Object.entries(labels).every(([k, l]) => v.labels[k] === l),
  );
  return found?.value ?? 0;
}

/** An unreferenced blob, linked nowhere: what a run sweeps. */
async function orphan(driver: InMemoryDriver, text: string): Promise<string> {
  const d = digestBuffer(Buffer.from(text));
  await driver.putContent(paths.blobData(d), Buffer.from(text));
  return paths.blobData(d);
}

async function exists(driver: InMemoryDriver, path: string): Promise<boolean> {
  return driver.stat(path).then(
    () => true,
    () => false,
  );
}

describe('online garbage collection', function () {
  this.timeout(20_000);
  const started: OnlineGc[] = [];
  const start = (
    driver: InMemoryDriver,
    registry: Registry,
    extra: Partial<Parameters<typeof startOnlineGc>[0]> = {},
  ) => {
    const gc = startOnlineGc({ driver, config, log: silent, registry, schedule: false, settleMs: 30, ...extra });
    started.push(gc);
    return gc;
  };

  afterEach(async function () {
    await Promise.all(started.splice(0).map((gc) => gc.stop()));
  });

  it('lets one of three replicas collect and counts a skip on the others', async function () {
    const driver = new SlowDriver();
    const blob = await orphan(driver, 'unreferenced');
    const registries = [new Registry(), new Registry(), new Registry()];
    const replicas = registries.map((r) => start(driver, r));
    const outcomes = await Promise.all(replicas.map((gc) => gc.runOnce()));
    const ran = outcomes.filter((o) => o.ran);
    assert.equal(ran.length, 1, JSON.stringify(outcomes));
    assert.equal(await exists(driver, blob), false, 'the unreferenced blob is swept');
    for (const [i, o] of outcomes.entries()) {
      const r = registries[i]!;
      assert.equal(await metric(r, 'registry_gc_runs_total', { result: 'success' }), o.ran ? 1 : 0);
      const skips =
        (await metric(r, 'registry_gc_skipped_total', { reason: 'race' })) +
        (await metric(r, 'registry_gc_skipped_total', { reason: 'leased' }));
      assert.equal(skips, o.ran ? 0 : 1);
      assert.equal(await metric(r, 'registry_gc_lease_held'), 0);
    }
    const winner = registries[outcomes.findIndex((o) => o.ran)]!;
    assert.equal(await metric(winner, 'registry_gc_swept_total', { kind: 'blob' }), 1);
    // Released, with the run recorded: the others skip their turn within the interval.
    const record = await new GcLease({ driver, ttlMs: 1, settleMs: 0 }).read();
    assert.equal(record?.expiresAt, 0);
    assert.equal(record?.lastRun?.result, 'success');
    const again = await replicas[(outcomes.findIndex((o) => o.ran) + 1) % 3]!.runOnce();
    assert.deepEqual(again, { ran: false, reason: 'recent' });
  });

  it('runs a dry run that changes nothing, and refuses a second attempt while one runs', async function () {
    const driver = new SlowDriver();
    const blob = await orphan(driver, 'kept by the dry run');
    const registry = new Registry();
    const gc = start(driver, registry, { config: { ...config, dryrun: true } });
    const first = gc.runOnce();
    assert.deepEqual(await gc.runOnce(), { ran: false, reason: 'busy' });
    const outcome = await first;
    assert.ok(outcome.ran && outcome.result === 'dry_run' && outcome.report?.blobsSwept === 1);
    assert.equal(await exists(driver, blob), true);
    assert.equal(await metric(registry, 'registry_gc_runs_total', { result: 'dry_run' }), 1);
  });

  it('stops a running collection on shutdown and frees the lease', async function () {
    const driver = new SlowDriver();
    for (let i = 0; i < 30; i++) await orphan(driver, `orphan ${i}`);
    driver.listDelayMs = 20;
    const registry = new Registry();
    const gc = start(driver, registry);
    const running = gc.runOnce();
    for (let i = 0; i < 100 && (await metric(registry, 'registry_gc_lease_held')) === 0; i++) await sleep(10);
    assert.equal(await metric(registry, 'registry_gc_lease_held'), 1);
    const t0 = Date.now();
    await gc.stop();
    assert.ok(Date.now() - t0 < 2_000, 'stops at the next storage call');
    const outcome = await running;
    assert.ok(outcome.ran && outcome.result === 'aborted', JSON.stringify(outcome));
    assert.equal(await metric(registry, 'registry_gc_runs_total', { result: 'aborted' }), 1);
    const record = await new GcLease({ driver, ttlMs: 1, settleMs: 0 }).read();
    assert.equal(record?.expiresAt, 0, 'released');
    assert.equal(record?.lastRun?.result, 'aborted');
    assert.deepEqual(await gc.runOnce(), { ran: false, reason: 'stopped' });
  });

  it('stops when another replica takes the lease over, and leaves its record', async function () {
    const driver = new SlowDriver();
    for (let i = 0; i < 200; i++) await orphan(driver, `orphan ${i}`);
    driver.listDelayMs = 5;
    driver.moveDelayMs = 50;
    const registry = new Registry();
    const gc = start(driver, registry, { leaseTtlMs: 300 });
    const running = gc.runOnce();
    for (let i = 0; i < 100 && (await metric(registry, 'registry_gc_lease_held')) === 0; i++) await sleep(10);
    const rival = { holder: 'rival', token: 99, nonce: 'n', acquiredAt: Date.now(), expiresAt: Date.now() + 60_000 };
    await driver.putContent(GC_LEASE_PATH, Buffer.from(JSON.stringify(rival)));
    const outcome = await running;
    assert.ok(outcome.ran && outcome.result === 'aborted', JSON.stringify(outcome));
    assert.equal(await metric(registry, 'registry_gc_lease_lost_total'), 1);
    assert.equal((await new GcLease({ driver, ttlMs: 1, settleMs: 0 }).read())?.holder, 'rival');
  });

  it('renews the lease while a long run goes on', async function () {
    const driver = new SlowDriver();
    for (let i = 0; i < 40; i++) await orphan(driver, `orphan ${i}`);
    driver.listDelayMs = 15;
    driver.moveDelayMs = 150;
    const registry = new Registry();
    const gc = start(driver, registry, { leaseTtlMs: 150 });
    const outcome = await gc.runOnce();
    // The run outlasted several TTLs and still ended as the holder.
    assert.ok(outcome.ran && outcome.result === 'success', JSON.stringify(outcome));
    assert.ok(outcome.report!.durationMs > 300, `run took ${outcome.report!.durationMs}ms`);
    assert.equal(await metric(registry, 'registry_gc_lease_lost_total'), 0);
  });

  it('reads storage.maintenance.gc with defaults, Go durations, and errors that name the field', function () {
    assert.deepEqual(resolveConfig({}).gc, {
      enabled: false,
      interval: 24 * 3_600_000,
      graceperiod: 3_600_000,
      deleteuntagged: false,
      dryrun: false,
    });
    const set = resolveConfig({
      storage: {
        maintenance: { gc: { enabled: true, interval: '12h', graceperiod: 90, deleteuntagged: true, dryrun: true } },
      },
    }).gc;
    assert.deepEqual(set, {
      enabled: true,
      interval: 12 * 3_600_000,
      graceperiod: 90_000,
      deleteuntagged: true,
      dryrun: true,
    });
    for (const [gc, field] of [
      [{ interval: '500ms' }, 'storage.maintenance.gc.interval'],
      [{ graceperiod: 0 }, 'storage.maintenance.gc.graceperiod'],
      [{ grace: '1h' }, 'storage.maintenance.gc'],
      [{ enabled: 'yes' }, 'storage.maintenance.gc.enabled'],
    ] as const) {
      assert.throws(
        () => resolveConfig({ storage: { maintenance: { gc } } }),
        (err: Error) => err.message.includes(`${field}:`) || err.message.includes(field),
      );
    }
  });

  it('notes risky settings for berth verify and berth serve', function () {
    const base = { storage: { filesystem: {} } };
    assert.deepEqual(gcConfigNotes(resolveConfig(base)), []);
    const notes = gcConfigNotes(
      resolveConfig({
        storage: {
          filesystem: {},
          maintenance: { gc: { enabled: true, graceperiod: '30s' }, readonly: { enabled: true } },
        },
      }),
    );
    assert.equal(notes.length, 3, notes.join('\n'));
    assert.match(notes[0]!, /read-only/);
    assert.match(notes[1]!, /inmemory blob descriptor cache/);
    assert.match(notes[2]!, /graceperiod is 30s/);
    const safe = resolveConfig({
      storage: { filesystem: {}, cache: { blobdescriptor: 'none' }, maintenance: { gc: { enabled: true } } },
    });
    assert.deepEqual(gcConfigNotes(safe), []);
  });

  it('berth verify names a bad gc field and notes risky settings', async function () {
    const dir = await tempDir('berth-gc-verify-');
    try {
      const verify = async (name: string, yaml: string) => {
        const file = join(dir, name);
        await writeFile(file, yaml);
        return runCommand(process.execPath, [CLI, 'verify', file], { timeoutMs: 30_000 });
      };
      const bad = await verify(
        'bad.yml',
        'storage:\n  maintenance:\n    gc:\n      enabled: true\n      interval: 1d\n',
      );
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /storage\.maintenance\.gc\.interval/);
      const risky = await verify(
        'risky.yml',
        'storage:\n  filesystem: {}\n  maintenance:\n    gc: { enabled: true, interval: 1h, graceperiod: 1m }\n',
      );
      assert.equal(risky.code, 0, risky.stderr);
      assert.match(risky.stdout, /note: storage\.maintenance\.gc with the inmemory blob descriptor cache/);
      assert.match(risky.stdout, /note: storage\.maintenance\.gc\.graceperiod is 60s/);
    } finally {
      await removeDir(dir);
    }
  });
});
