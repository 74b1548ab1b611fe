import assert from 'node:assert/strict';
import { SyncMode } from '../../../../src/storage/drivers/filesystem/sync-mode.js';

/** A SyncMode on a clock the test moves; `stat(ms)` records one synchronous stat that took `ms`. */
function clocked(options: { budgetMs?: number; asyncForMs?: number } = {}) {
  let t = 0;
  const mode = new SyncMode({ ...options, now: () => t });
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
});
