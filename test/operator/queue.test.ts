import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkQueue, type RunResult, type Worker } from '../../src/operator/queue.js';

/** A promise with its resolve function: lets a test hold a worker inside its run. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Polls until `condition` holds; fails after `ms`. */
async function until(condition: () => boolean, ms = 1000, what = 'the condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** A worker that records each run's key and start/end times and whose behaviour per run a test chooses. */
class Recorder {
  readonly runs: { key: string; start: number; end?: number }[] = [];
  readonly active = new Map<string, number>();
  maxActive = 0;
  maxActivePerKey = 0;

  constructor(readonly body: (key: string, run: number) => Promise<RunResult | void> = async () => undefined) {}

  count(key: string): number {
    return this.runs.filter((r) => r.key === key).length;
  }

  readonly worker: Worker = async (key) => {
    const run = { key, start: performance.now() } as { key: string; start: number; end?: number };
    this.runs.push(run);
    this.active.set(key, (this.active.get(key) ?? 0) + 1);
    this.maxActivePerKey = Math.max(this.maxActivePerKey, this.active.get(key) ?? 0);
    this.maxActive = Math.max(
      this.maxActive,
      [...this.active.values()].reduce((a, b) => a + b, 0),
    );
    try {
      return await this.body(key, this.count(key));
    } finally {
      this.active.set(key, (this.active.get(key) ?? 1) - 1);
      run.end = performance.now();
    }
  };
}

describe('operator/queue', function () {
  const queues: WorkQueue[] = [];
  const queue = (worker: Worker, options?: ConstructorParameters<typeof WorkQueue>[1]): WorkQueue => {
    const q = new WorkQueue(worker, options);
    queues.push(q);
    return q;
  };

  afterEach(async function () {
    await Promise.all(queues.splice(0).map((q) => q.stop()));
  });

  it('runs an added key once', async function () {
    const rec = new Recorder();
    const q = queue(rec.worker);
    q.add('a');
    await until(() => q.depth === 0);
    await sleep(20);
    assert.equal(rec.count('a'), 1);
  });

  it('coalesces many add() calls for a key while it runs into exactly one more run', async function () {
    const held = gate();
    const rec = new Recorder(async (_key, run) => {
      if (run === 1) await held.promise;
    });
    const q = queue(rec.worker);
    q.add('a');
    await until(() => rec.count('a') === 1);
    for (let i = 0; i < 20; i++) q.add('a');
    held.open();
    await until(() => rec.count('a') === 2 && q.depth === 0);
    await sleep(30);
    assert.equal(rec.count('a'), 2);
  });

  it('makes one run of a key added many times while it waits for a slot', async function () {
    const held = gate();
    const rec = new Recorder(async (key) => {
      if (key === 'busy') await held.promise;
    });
    const q = queue(rec.worker, { concurrency: 1 });
    q.add('busy');
    for (let i = 0; i < 10; i++) q.add('a');
    assert.equal(q.depth, 2);
    held.open();
    await until(() => q.depth === 0);
    await sleep(20);
    assert.equal(rec.count('a'), 1);
  });

  it('never runs one key twice at once', async function () {
    const rec = new Recorder(() => sleep(15));
    const q = queue(rec.worker, { concurrency: 8 });
    for (let i = 0; i < 10; i++) {
      q.add('a');
      await sleep(4);
    }
    await until(() => q.depth === 0);
    assert.equal(rec.maxActivePerKey, 1);
    assert.ok(rec.count('a') >= 2, 'events during a run led to another run');
  });

  it('runs different keys at once, up to the concurrency limit', async function () {
    const rec = new Recorder(() => sleep(30));
    const q = queue(rec.worker, { concurrency: 2 });
    for (const key of ['a', 'b', 'c', 'd', 'e']) q.add(key);
    await until(() => rec.maxActive === 2, 1000, 'two runs at once');
    await until(() => q.depth === 0);
    assert.equal(rec.maxActive, 2);
    assert.deepEqual(
      rec.runs.map((r) => r.key),
      ['a', 'b', 'c', 'd', 'e'],
    );
  });

  it('retries a failing key with exponential backoff until it succeeds, reporting each failure', async function () {
    const rec = new Recorder(async (_key, run) => {
      if (run <= 3) throw new Error(`failure ${run}`);
    });
    const q = queue(rec.worker, { baseDelayMs: 10 });
    const failures: string[] = [];
    q.on('failure', (key: string, err: Error) => failures.push(`${key}: ${err.message}`));
    q.add('a');
    await until(() => rec.count('a') === 4, 1000, 'four runs');
    assert.deepEqual(failures, ['a: failure 1', 'a: failure 2', 'a: failure 3']);
    const gaps = rec.runs.slice(1).map((r, i) => r.start - (rec.runs[i]?.end ?? 0));
    // Timers may fire a millisecond early; the delays are 10, 20 and 40 ms.
    assert.ok((gaps[0] ?? 0) >= 9 && (gaps[1] ?? 0) >= 19 && (gaps[2] ?? 0) >= 39, JSON.stringify(gaps));
    await sleep(60);
    assert.equal(rec.count('a'), 4, 'no retry after the success');
  });

  it('caps the backoff at maxDelayMs', async function () {
    const rec = new Recorder(async (_key, run) => {
      if (run <= 4) throw new Error('down');
    });
    const q = queue(rec.worker, { baseDelayMs: 20, maxDelayMs: 20 });
    const started = performance.now();
    q.add('a');
    // Uncapped, the delays would be 20 + 40 + 80 + 160 ms.
    await until(() => rec.count('a') === 5, 1000, 'five runs');
    assert.ok(performance.now() - started < 200, `took ${performance.now() - started} ms`);
  });

  it('starts the backoff over after a success', async function () {
    const rec = new Recorder(async (_key, run) => {
      if (run === 1 || run === 3) throw new Error('down');
    });
    const q = queue(rec.worker, { baseDelayMs: 100 });
    q.add('a');
    await until(() => rec.count('a') === 2 && q.depth === 0, 1000, 'the retry');
    q.add('a');
    await until(() => rec.count('a') === 4, 1000, 'the second retry');
    const [, , third, fourth] = rec.runs;
    const gap = (fourth?.start ?? 0) - (third?.end ?? 0);
    // A second failure in a row would wait 200 ms.
    assert.ok(gap >= 99 && gap < 190, `${gap} ms`);
  });

  it('runs a key again an event arrives for during a failed run, without waiting out the backoff', async function () {
    const held = gate();
    const rec = new Recorder(async (_key, run) => {
      if (run === 1) {
        await held.promise;
        throw new Error('down');
      }
    });
    const q = queue(rec.worker, { baseDelayMs: 10_000 });
    q.add('a');
    await until(() => rec.count('a') === 1);
    q.add('a');
    held.open();
    await until(() => rec.count('a') === 2, 500, 'the second run');
  });

  it('runs a key again after requeueAfterMs', async function () {
    const rec = new Recorder(async (_key, run) => (run === 1 ? { requeueAfterMs: 30 } : undefined));
    const q = queue(rec.worker);
    q.add('a');
    await until(() => rec.count('a') === 2, 1000, 'the requeued run');
    const [first, second] = rec.runs;
    assert.ok((second?.start ?? 0) - (first?.end ?? 0) >= 29);
    await sleep(50);
    assert.equal(rec.count('a'), 2);
  });

  it('runs a key at once when an event arrives while it waits to be requeued', async function () {
    const rec = new Recorder(async () => ({ requeueAfterMs: 10_000 }));
    const q = queue(rec.worker);
    q.add('a');
    await until(() => rec.count('a') === 1 && q.depth === 0);
    q.add('a');
    await until(() => rec.count('a') === 2, 500, 'the second run');
  });

  it('runs a key after addAfter’s delay, and an add() before then wins', async function () {
    const rec = new Recorder();
    const q = queue(rec.worker);
    const started = performance.now();
    q.addAfter('a', 30);
    q.addAfter('a', 5);
    await until(() => rec.count('a') === 1, 500, 'the delayed run');
    assert.ok((rec.runs[0]?.start ?? 0) - started >= 29, 'the earlier addAfter wins');
    q.addAfter('b', 10_000);
    q.add('b');
    await until(() => rec.count('b') === 1, 500, 'the added run');
  });

  it('forget() drops a pending run', async function () {
    const held = gate();
    const rec = new Recorder(async (key) => {
      if (key === 'busy') await held.promise;
    });
    const q = queue(rec.worker, { concurrency: 1 });
    q.add('busy');
    q.add('a');
    q.forget('a');
    held.open();
    await until(() => q.depth === 0);
    await sleep(20);
    assert.equal(rec.count('a'), 0);
  });

  it('forget() cancels a pending retry and a requeue', async function () {
    const rec = new Recorder(async (key) => {
      if (key === 'failing') throw new Error('down');
      return { requeueAfterMs: 30 };
    });
    const q = queue(rec.worker, { baseDelayMs: 30 });
    q.add('failing');
    q.add('requeued');
    await until(() => q.depth === 0 && rec.runs.length === 2);
    q.forget('failing');
    q.forget('requeued');
    await sleep(80);
    assert.equal(rec.count('failing'), 1);
    assert.equal(rec.count('requeued'), 1);
  });

  it('stop() waits for running work, then runs nothing more', async function () {
    const rec = new Recorder(() => sleep(40));
    const q = queue(rec.worker, { concurrency: 1, baseDelayMs: 5 });
    q.add('a');
    q.add('b');
    q.addAfter('c', 5);
    await until(() => rec.count('a') === 1);
    q.add('a');
    const stopped = q.stop().then(() => performance.now());
    const result = await stopped;
    assert.ok(rec.runs[0]?.end !== undefined && result >= rec.runs[0].end, 'stop() resolved before the run ended');
    q.add('d');
    await sleep(60);
    assert.deepEqual(
      rec.runs.map((r) => r.key),
      ['a'],
    );
    assert.equal(q.depth, 0);
  });

  it('stop() resolves at once when nothing runs', async function () {
    const q = queue(async () => undefined);
    await q.stop();
  });
});
