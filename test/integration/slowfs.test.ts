// The slowfs test tool itself: a FUSE loopback that passes data through, adds the latency it is told to, holds
// operations while hung, and leaves nothing behind when closed.
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isMounted, startSlowFs, type SlowFs, settledWithin, waitForBlocked } from '../helpers/slowfs.js';

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

describe('slowfs test volume @integration', function () {
  this.timeout(30_000);
  let slow: SlowFs | undefined;

  afterEach(async () => {
    await slow?.close();
    slow = undefined;
  });

  it('passes reads and writes through to the backing directory, and sees each of them', async () => {
    slow = await startSlowFs();
    await writeFile(join(slow.mountpoint, 'written'), 'hello');
    assert.equal(await readFile(join(slow.backing, 'written'), 'utf8'), 'hello');
    await writeFile(join(slow.backing, 'stored'), 'world');
    assert.equal(await readFile(join(slow.mountpoint, 'stored'), 'utf8'), 'world');
    // Not served by the kernel alone (FUSE passthrough), so delays and hangs apply to data too.
    const { ops } = await slow.stats();
    assert.ok((ops['Write'] ?? 0) >= 1 && (ops['Read'] ?? 0) >= 1, `reads or writes not seen: ${JSON.stringify(ops)}`);
  });

  it('adds the configured delay to every stat', async () => {
    slow = await startSlowFs();
    const file = join(slow.mountpoint, 'blob');
    await writeFile(file, 'x');
    await slow.setDelay(20);
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      await stat(file);
      const elapsed = performance.now() - started;
      assert.ok(elapsed >= 20, `stat took ${elapsed.toFixed(1)} ms with a 20 ms delay`);
    }
    assert.equal((await slow.stats()).delayMs, 20);
  });

  it('holds a stat while hung and completes it on resume', async () => {
    slow = await startSlowFs();
    const file = join(slow.mountpoint, 'blob');
    await writeFile(file, 'x');
    await slow.hang();
    const pending = stat(file);
    assert.equal(await settledWithin(pending, 300), 'pending');
    assert.ok((await slow.stats()).blocked >= 1);
    await slow.resume();
    assert.equal((await pending).size, 1);
  });

  it('unmounts and exits on close, even with an operation held', async () => {
    const volume = await startSlowFs();
    slow = volume;
    await writeFile(join(volume.mountpoint, 'blob'), 'x');
    await volume.hang();
    const pending = stat(join(volume.mountpoint, 'blob')).then(
      () => 'completed',
      (err: NodeJS.ErrnoException) => err.code ?? 'failed',
    );
    await waitForBlocked(volume);
    await volume.close();
    assert.equal(await settledWithin(pending, 1_000), 'settled');
    assert.equal(await isMounted(volume.mountpoint), false);
    assert.ok(processGone(volume.pid), `slowfs (pid ${volume.pid}) still runs`);
    await assert.rejects(stat(dirname(volume.mountpoint)), { code: 'ENOENT' });
  });

  it('cleans up a mount whose slowfs process was killed', async () => {
    const volume = await startSlowFs();
    slow = volume;
    process.kill(volume.pid, 'SIGKILL');
    await volume.close();
    assert.equal(await isMounted(volume.mountpoint), false);
    assert.ok(processGone(volume.pid));
  });
});
