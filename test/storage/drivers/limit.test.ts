import assert from 'node:assert/strict';
import { forEachLimit } from '../../../src/storage/drivers/limit.js';

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('forEachLimit', function () {
  it('calls fn for every item, never more than the limit at once', async function () {
    let running = 0;
    let most = 0;
    const seen: number[] = [];
    await forEachLimit([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      running++;
      most = Math.max(most, running);
      await tick(n % 3);
      seen.push(n);
      running--;
    });
    assert.deepEqual(
      seen.sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7],
    );
    assert.equal(most, 3);
  });

  it('starts nothing new after a failure, and rejects with the first one once the calls in flight settled', async function () {
    const started: number[] = [];
    let settled = 0;
    await assert.rejects(
      forEachLimit([1, 2, 3, 4, 5, 6], 2, async (n) => {
        started.push(n);
        await tick(n === 1 ? 1 : 10);
        settled++;
        if (n <= 2) throw new Error(`failed ${n}`);
      }),
      /failed 1/,
    );
    assert.deepEqual(started, [1, 2], 'no item starts once one has failed');
    assert.equal(settled, 2, 'the call in flight finished before the rejection');
  });

  it('resolves at once for no items', async function () {
    await forEachLimit([], 4, () => Promise.reject(new Error('never called')));
  });
});
