import assert from 'node:assert/strict';
import { eventLoopAllowed, SyncMode } from '../../../../src/storage/drivers/filesystem/sync-mode.js';

/**
 * A SyncMode on a clock the test moves; `stat(ms)` records one synchronous stat that took `ms`. The per-turn budget
 * is off unless given: these tests run many stats in one turn of the event loop.
 */
function clocked(options: { budgetMs?: number; asyncForMs?: number; turnBudgetMs?: number } = {}) {
  let t = 0;
  const mode = new SyncMode({ turnBudgetMs: Number.POSITIVE_INFINITY, ...options, now: () => t });
  return {
    mode,
    stat(ms: number): void {
      assert.ok(mode.synchronous, 'a synchronous stat only happens in synchronous mode');
      mode.run(() => {
        t += ms;
      });
    },
    advance(ms: number): void {
      t += ms;
    },
  };
}

describe('filesystem SyncMode', function () {
  it('stays synchronous while stats are fast', function () {
    const c = clocked();
    for (let i = 0; i < 10_000; i++) c.stat(0.002);
    assert.equal(c.mode.synchronous, true);
  });

  it('shrugs off an occasional preemption in the middle of a stat', function () {
    const c = clocked();
    for (let i = 0; i < 1_000; i++) c.stat(i % 50 === 0 ? 5 : 0.002);
    assert.equal(c.mode.synchronous, true);
  });

  it('moves to the thread pool at once after one very slow stat, and back after the pause', function () {
    const c = clocked({ asyncForMs: 10_000 });
    c.stat(0.002);
    c.stat(50);
    assert.equal(c.mode.synchronous, false);
    c.advance(9_999);
    assert.equal(c.mode.synchronous, false);
    c.advance(2);
    assert.equal(c.mode.synchronous, true, 'tried again after asyncForMs');
    c.stat(0.002);
    assert.equal(c.mode.synchronous, true, 'judged afresh: the old average is gone');
  });

  it('moves to the thread pool after a run of stats over the budget', function () {
    const c = clocked({ budgetMs: 1 });
    let n = 0;
    while (c.mode.synchronous && n < 100) {
      c.stat(2);
      n++;
    }
    assert.equal(c.mode.synchronous, false);
    assert.ok(n > 1 && n < 20, `switched after ${n} slow stats`);
  });

  it('judges an operation that throws by its time too, and passes the error and results through', function () {
    const c = clocked({ asyncForMs: 10_000 });
    assert.equal(
      c.mode.run(() => 42),
      42,
    );
    assert.throws(
      () =>
        c.mode.run(() => {
          c.advance(50);
          throw new Error('EIO');
        }),
      /EIO/,
    );
    assert.equal(c.mode.synchronous, false, 'a slow failure counts like a slow success');
  });

  it('is never synchronous when not allowed', function () {
    const mode = new SyncMode({ allowed: false, now: () => 1e12 });
    assert.equal(mode.synchronous, false);
  });

  it('caps the synchronous time of one event-loop turn, and allows it again in the next turn', async function () {
    const c = clocked({ turnBudgetMs: 2, budgetMs: 1_000 });
    c.stat(0.5);
    c.stat(0.5);
    c.stat(0.5);
    assert.equal(c.mode.synchronous, true, '1.5 ms spent of 2');
    c.stat(0.6);
    assert.equal(c.mode.synchronous, false, 'over the turn budget: the rest of the turn goes to the thread pool');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(c.mode.synchronous, true, 'a new turn');
  });

  it('never runs synchronously while not allowed, and does once allowed', function () {
    const mode = new SyncMode({ allowed: false });
    assert.equal(mode.synchronous, false);
    mode.allow(true);
    assert.equal(mode.synchronous, true);
    mode.allow(false);
    assert.equal(mode.synchronous, false);
  });
});

describe('eventLoopAllowed', function () {
  it('allows local filesystems by their statfs type', function () {
    for (const [type, name] of [
      [0xef53, 'ext4'],
      [0x58465342, 'xfs'],
      [0x9123683e, 'btrfs'],
      [0x01021994, 'tmpfs'],
      [0x794c7630, 'overlay'],
    ] as const) {
      assert.deepEqual(eventLoopAllowed(type), { filesystem: name, local: true });
    }
  });

  it('refuses network and FUSE filesystems, and any type it does not know', function () {
    for (const [type, name] of [
      [0x6969, 'nfs'],
      [0x65735546, 'fuse'],
      [0xff534d42, 'cifs'],
      [0x00c36400, 'ceph'],
      [0x01021997, '9p'],
    ] as const) {
      assert.deepEqual(eventLoopAllowed(type), { filesystem: name, local: false });
    }
    assert.deepEqual(eventLoopAllowed(0x12345678), { filesystem: '0x12345678', local: false });
  });
});
