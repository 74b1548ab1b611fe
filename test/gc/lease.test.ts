// The garbage-collection lease on real drivers: of replicas racing for it only one wins, a held lease keeps others
// out until it expires or is released, renewals extend it, and a holder that was overtaken finds out.
import assert from 'node:assert/strict';
import { GcLease, GC_LEASE_PATH, type LeaseOptions } from '../../src/gc/lease.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { FilesystemDriver } from '../../src/storage/drivers/filesystem/index.js';
import { InMemoryDriver } from '../../src/storage/drivers/inmemory/index.js';
import { removeDir, tempDir } from '../helpers/harness.js';

/** Replicas of one store: each its own driver instance on the same storage, as separate processes would have. */
interface Store {
  driver(): StorageDriver;
  cleanup(): Promise<void>;
}

const stores: Record<string, () => Promise<Store>> = {
  inmemory: async () => {
    const shared = new InMemoryDriver();
    return { driver: () => shared, cleanup: async () => undefined };
  },
  filesystem: async () => {
    const dir = await tempDir('berth-gc-lease-');
    return { driver: () => new FilesystemDriver({ rootdirectory: dir }), cleanup: () => removeDir(dir) };
  },
};

const TTL = 10_000;

for (const [kind, makeStore] of Object.entries(stores)) {
  describe(`GcLease on the ${kind} driver`, function () {
    let store: Store;
    let clock: number;
    const lease = (holder: string, options: Partial<LeaseOptions> = {}): GcLease =>
      new GcLease({ driver: store.driver(), holder, ttlMs: TTL, settleMs: 30, now: () => clock, ...options });

    beforeEach(async function () {
      store = await makeStore();
      clock = 1_000_000;
    });

    afterEach(async function () {
      await store.cleanup();
    });

    it('lets exactly one of three replicas racing for a free lease win, every time', async function () {
      for (let round = 0; round < 15; round++) {
        const replicas = ['a', 'b', 'c'].map((h) => lease(`${h}${round}`));
        const results = await Promise.all(replicas.map((r) => r.acquire()));
        const winners = results.filter((r) => r.acquired);
        assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(results)}`);
        for (const r of results) if (!r.acquired) assert.ok(r.reason === 'race' || r.reason === 'leased');
        const winner = replicas.find((r) => r.held !== undefined)!;
        assert.equal((await winner.read())?.holder, winner.holder);
        assert.equal(await winner.release(), true);
      }
    });

    it('keeps others out while held, and lets one in once it expired', async function () {
      const a = lease('a');
      const b = lease('b');
      const first = await a.acquire();
      assert.ok(first.acquired);
      clock += TTL - 1;
      const refused = await b.acquire();
      assert.deepEqual([refused.acquired, !refused.acquired && refused.reason], [false, 'leased']);
      // The holder died without releasing: after the TTL the lease is free.
      clock += 2;
      const second = await b.acquire();
      assert.ok(second.acquired);
      assert.equal(second.record.token, first.record.token + 1, 'the fencing token goes up');
      // The old holder, back from a pause, must not go on.
      assert.equal(await a.renew(), false);
      assert.equal(a.held, undefined);
      assert.equal(await a.release(), false);
      assert.equal((await b.read())?.holder, 'b', 'a late release leaves the new holder alone');
    });

    it('extends the lease on renewal', async function () {
      const a = lease('a');
      const b = lease('b');
      assert.ok((await a.acquire()).acquired);
      for (let i = 0; i < 3; i++) {
        clock += TTL * 0.9;
        assert.equal(await a.renew(), true);
        const r = await b.acquire();
        assert.equal(r.acquired, false, `renewal ${i}`);
      }
      assert.equal((await a.read())?.expiresAt, clock + TTL);
    });

    it('tells a holder that was overtaken, and its renewal fails', async function () {
      const a = lease('a');
      assert.ok((await a.acquire()).acquired);
      // A rival that read the lease as free long ago writes now (the residual race): its record is there.
      const rival = lease('rival');
      await store
        .driver()
        .putContent(
          GC_LEASE_PATH,
          Buffer.from(
            JSON.stringify({ holder: 'rival', token: 7, nonce: 'x', acquiredAt: clock, expiresAt: clock + TTL }),
          ),
        );
      assert.equal(await a.renew(), false);
      assert.equal((await rival.read())?.holder, 'rival');
    });

    it('frees the lease on release, keeps the token, and skips a turn right after a finished run', async function () {
      const a = lease('a');
      const b = lease('b');
      const taken = await a.acquire();
      assert.ok(taken.acquired);
      const lastRun = {
        holder: 'a',
        token: taken.record.token,
        startedAt: clock,
        finishedAt: clock + 5,
        result: 'success',
      };
      assert.equal(await a.release(lastRun), true);
      clock += 100;
      const recent = await b.acquire({ skipWithinMs: 1000 });
      assert.deepEqual([recent.acquired, !recent.acquired && recent.reason], [false, 'recent']);
      clock += 1000;
      const later = await b.acquire({ skipWithinMs: 1000 });
      assert.ok(later.acquired);
      assert.equal(later.record.token, taken.record.token + 1);
      assert.deepEqual(later.record.lastRun, lastRun);
    });

    it('does not skip a turn after a run that failed', async function () {
      const a = lease('a');
      const taken = await a.acquire();
      assert.ok(taken.acquired);
      await a.release({ holder: 'a', token: 1, startedAt: clock, finishedAt: clock, result: 'failure' });
      assert.ok((await lease('b').acquire({ skipWithinMs: 1000 })).acquired);
    });

    it('frees its record when stopped while settling', async function () {
      const a = lease('a', { settleMs: 5_000 });
      const stop = new AbortController();
      const taking = a.acquire({ signal: stop.signal });
      setTimeout(() => stop.abort(new Error('shutting down')), 20);
      await assert.rejects(taking, /shutting down/);
      assert.equal((await a.read())?.expiresAt, 0);
      assert.ok((await lease('b').acquire()).acquired);
    });

    it('counts an unreadable lease file as free', async function () {
      await store.driver().putContent(GC_LEASE_PATH, Buffer.from('not json'));
      const taken = await lease('a').acquire();
      assert.ok(taken.acquired);
      assert.equal(taken.record.token, 1);
    });
  });
}
