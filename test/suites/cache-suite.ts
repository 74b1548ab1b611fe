// The one test suite every blob-descriptor cache runs (inmemory, redis, two-tier): it holds each to the guarantees
// written on DescriptorCache and DescriptorTier. Storage here is a small in-process statter that counts its stats,
// so "answered from the cache" means "storage was not asked". A cache's own test file only calls runCacheSuite.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Registry } from 'prom-client';
import type { DescriptorCache } from '../../src/cache/index.js';
import { digestOf, type Digest } from '../../src/oci/digest.js';
import { RegistryError } from '../../src/oci/errors.js';
import type { BlobDescriptor, BlobStatter } from '../../src/storage/blobs.js';

export interface CacheUnderTest {
  readonly cache: DescriptorCache;
  /**
   * Another replica sharing the cache's state (the same Redis and prefix), when the cache is shared at all; it
   * reports metrics into `registry`.
   */
  replica?(registry: Registry): Promise<DescriptorCache>;
  /** Closes what the factory opened (not the caches, which the suite closes). */
  cleanup(): Promise<void>;
}

const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

let counter = 0;
/** A digest no other test uses. */
export function uniqueDigest(algorithm: 'sha256' | 'sha512' = 'sha256'): Digest {
  return digestOf(
    algorithm,
    createHash(algorithm).update(`cache-suite ${process.pid} ${Date.now()} ${counter++}`).digest('hex'),
  );
}

function descriptor(digest: Digest, size = 1234, mediaType = LAYER): BlobDescriptor {
  return { digest, size, mediaType };
}

/** Storage for the suite: what exists in each scope, how often each scope was asked, and an optional gate. */
export class FakeStorage {
  readonly #blobs = new Map<string, BlobDescriptor>();
  readonly stats = new Map<string, number>();
  /** When set, every stat waits for it before answering. */
  gate: Promise<void> | undefined;
  /** When set, every stat fails with it. */
  failure: Error | undefined;

  #key(scope: string | undefined, digest: Digest): string {
    return `${scope ?? '<global>'} ${digest.value}`;
  }

  /** Makes `d` the answer for `as` (its own digest unless said otherwise) in `scope`. */
  put(scope: string | undefined, d: BlobDescriptor, as: Digest = d.digest): void {
    this.#blobs.set(this.#key(scope, as), d);
  }

  remove(scope: string | undefined, digest: Digest): void {
    this.#blobs.delete(this.#key(scope, digest));
  }

  asked(scope: string | undefined, digest: Digest): number {
    return this.stats.get(this.#key(scope, digest)) ?? 0;
  }

  statter(scope: string | undefined): BlobStatter {
    return {
      stat: async (digest) => {
        const key = this.#key(scope, digest);
        this.stats.set(key, (this.stats.get(key) ?? 0) + 1);
        // Storage is read now; the gate only delays the answer (as a slow network would).
        const found = this.#blobs.get(key);
        const failure = this.failure;
        if (this.gate !== undefined) await this.gate;
        if (failure !== undefined) throw failure;
        if (found === undefined) throw new RegistryError('BLOB_UNKNOWN', { detail: { digest: digest.value } });
        return found;
      },
    };
  }
}

async function rejectsUnknown(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof RegistryError && err.code === 'BLOB_UNKNOWN');
}

async function counterSum(registry: Registry, name: string): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) return 0;
  const { values } = await metric.get();
  return values.reduce((sum, v) => sum + v.value, 0);
}

export function runCacheSuite(name: string, factory: (registry: Registry) => Promise<CacheUnderTest>): void {
  describe(`blob descriptor cache: ${name}`, function () {
    let subject: CacheUnderTest;
    let cache: DescriptorCache;
    let registry: Registry;
    let storage: FakeStorage;
    const opened: DescriptorCache[] = [];

    beforeEach(async function () {
      registry = new Registry();
      subject = await factory(registry);
      cache = subject.cache;
      opened.push(cache);
      storage = new FakeStorage();
    });

    afterEach(async function () {
      for (const c of opened.splice(0)) await c.close();
      await subject.cleanup();
    });

    async function replica(): Promise<{ peer: DescriptorCache; peerRegistry: Registry }> {
      const peerRegistry = new Registry();
      const peer = await subject.replica!(peerRegistry);
      opened.push(peer);
      return { peer, peerRegistry };
    }

    it('answers a miss from storage, then the same stat from the cache without asking storage', async function () {
      const d = descriptor(uniqueDigest());
      storage.put('library/alpine', d);
      const statter = cache.wrap(storage.statter('library/alpine'), 'library/alpine');
      assert.deepEqual(await statter.stat(d.digest), d);
      for (let i = 0; i < 5; i++) assert.deepEqual(await statter.stat(d.digest), d);
      assert.equal(storage.asked('library/alpine', d.digest), 1);
    });

    it('caches the global blob store apart from repositories', async function () {
      const d = descriptor(uniqueDigest());
      storage.put(undefined, d);
      const global = cache.wrap(storage.statter(undefined), undefined);
      assert.deepEqual(await global.stat(d.digest), d);
      assert.deepEqual(await global.stat(d.digest), d);
      assert.equal(storage.asked(undefined, d.digest), 1);
      // A repository's answer is "linked here", which the global entry alone cannot give.
      const repo = cache.wrap(storage.statter('library/alpine'), 'library/alpine');
      await rejectsUnknown(repo.stat(d.digest));
      assert.equal(storage.asked('library/alpine', d.digest), 1);
    });

    it('counts each answer from the cache once in registry_storage_cache_hits_total, with no errors', async function () {
      const d = descriptor(uniqueDigest());
      storage.put('a/b', d);
      const statter = cache.wrap(storage.statter('a/b'), 'a/b');
      const hitsBefore = await counterSum(registry, 'registry_storage_cache_hits_total');
      await statter.stat(d.digest);
      for (let i = 0; i < 7; i++) await statter.stat(d.digest);
      assert.equal((await counterSum(registry, 'registry_storage_cache_hits_total')) - hitsBefore, 7);
      assert.equal(await counterSum(registry, 'registry_storage_cache_errors_total'), 0);
      assert.ok((await counterSum(registry, 'registry_storage_cache_requests_total')) >= 8);
    });

    it('never caches a negative answer', async function () {
      const digest = uniqueDigest();
      const statter = cache.wrap(storage.statter('x/y'), 'x/y');
      await rejectsUnknown(statter.stat(digest));
      await rejectsUnknown(statter.stat(digest));
      assert.equal(storage.asked('x/y', digest), 2);
      storage.put('x/y', descriptor(digest));
      assert.deepEqual(await statter.stat(digest), descriptor(digest));
    });

    it('passes storage failures through and caches nothing from them', async function () {
      const d = descriptor(uniqueDigest());
      storage.put('x/y', d);
      storage.failure = new Error('disk on fire');
      const statter = cache.wrap(storage.statter('x/y'), 'x/y');
      await assert.rejects(statter.stat(d.digest), /disk on fire/);
      storage.failure = undefined;
      assert.deepEqual(await statter.stat(d.digest), d);
      assert.equal(storage.asked('x/y', d.digest), 2);
    });

    it('keeps repositories apart: an entry of one is never an answer for another', async function () {
      const d = descriptor(uniqueDigest());
      storage.put('team/one', d);
      await cache.wrap(storage.statter('team/one'), 'team/one').stat(d.digest);
      await rejectsUnknown(cache.wrap(storage.statter('team/two'), 'team/two').stat(d.digest));
      await rejectsUnknown(cache.wrap(storage.statter('team/one/sub'), 'team/one/sub').stat(d.digest));
      assert.equal(storage.asked('team/two', d.digest), 1);
    });

    it('drops exactly the unlinked entry when a digest is invalidated in one repository', async function () {
      const d = descriptor(uniqueDigest());
      const other = descriptor(uniqueDigest());
      for (const scope of ['r/a', 'r/b', undefined]) {
        storage.put(scope, d);
        storage.put(scope, other);
      }
      const a = cache.wrap(storage.statter('r/a'), 'r/a');
      const b = cache.wrap(storage.statter('r/b'), 'r/b');
      const global = cache.wrap(storage.statter(undefined), undefined);
      for (const s of [a, b, global]) {
        await s.stat(d.digest);
        await s.stat(other.digest);
      }
      // (A tier may fill the global entry from a repository's answer: that blob is in the store too.)
      const globalAsked = storage.asked(undefined, d.digest);
      storage.remove('r/a', d.digest);
      await cache.invalidate('r/a', d.digest);
      await rejectsUnknown(a.stat(d.digest));
      await b.stat(d.digest);
      await global.stat(d.digest);
      await a.stat(other.digest);
      assert.equal(storage.asked('r/a', d.digest), 2, 'the unlinked entry is asked of storage again');
      assert.equal(storage.asked('r/b', d.digest), 1, 'another repository keeps its entry');
      assert.equal(storage.asked(undefined, d.digest), globalAsked, 'the global entry stays');
      assert.equal(storage.asked('r/a', other.digest), 1, 'another digest stays');
    });

    it('drops the global entry and every repository entry when a digest leaves the registry', async function () {
      const d = descriptor(uniqueDigest());
      const scopes = ['g/a', 'g/b', 'g/c', undefined];
      for (const scope of scopes) storage.put(scope, d);
      const statters = scopes.map((scope) => cache.wrap(storage.statter(scope), scope));
      for (const s of statters) await s.stat(d.digest);
      const before = scopes.map((scope) => storage.asked(scope, d.digest));
      for (const scope of scopes) storage.remove(scope, d.digest);
      await cache.invalidate(undefined, d.digest);
      for (const s of statters) await rejectsUnknown(s.stat(d.digest));
      scopes.forEach((scope, i) =>
        assert.equal(storage.asked(scope, d.digest), before[i]! + 1, `${scope} asked again`),
      );
    });

    it('caches again after an invalidation when the blob comes back', async function () {
      const d = descriptor(uniqueDigest());
      storage.put('back/again', d);
      const statter = cache.wrap(storage.statter('back/again'), 'back/again');
      await statter.stat(d.digest);
      await cache.invalidate('back/again', d.digest);
      await statter.stat(d.digest);
      await statter.stat(d.digest);
      await statter.stat(d.digest);
      assert.equal(storage.asked('back/again', d.digest), 2);
    });

    it('returns but does not store a descriptor that fails validation', async function () {
      const digest = uniqueDigest();
      const statter = cache.wrap(storage.statter('v/v'), 'v/v');
      for (const bad of [
        { digest: uniqueDigest(), size: 1, mediaType: LAYER },
        { digest, size: -1, mediaType: LAYER },
        { digest, size: 1.5, mediaType: LAYER },
        { digest, size: 1, mediaType: '' },
        { digest, size: 1, mediaType: 'text/plain\r\nX-Injected: 1' },
      ]) {
        storage.put('v/v', bad, digest);
        const before = storage.asked('v/v', digest);
        const answered = await statter.stat(digest);
        assert.equal(answered.size, bad.size);
        await statter.stat(digest);
        assert.equal(storage.asked('v/v', digest), before + 2, `not cached: ${JSON.stringify(bad)}`);
      }
    });

    it('never lets a stat that raced an invalidation leave a stale entry', async function () {
      const d = descriptor(uniqueDigest());
      storage.put('race/x', d);
      const statter = cache.wrap(storage.statter('race/x'), 'race/x');
      let release!: () => void;
      storage.gate = new Promise<void>((r) => (release = r));
      // Storage answers "exists" from before the delete, but only after the delete's invalidation.
      const inFlight = statter.stat(d.digest);
      await new Promise((r) => setTimeout(r, 20));
      storage.remove('race/x', d.digest);
      await cache.invalidate('race/x', d.digest);
      release();
      storage.gate = undefined;
      assert.deepEqual(await inFlight, d);
      await rejectsUnknown(statter.stat(d.digest));
    });

    it('keeps media types and sizes beyond 4 GiB exactly, and sha512 digests', async function () {
      const big = descriptor(uniqueDigest(), 5 * 1024 ** 3 + 7, 'application/vnd.example+json; charset=utf-8');
      const sha512 = descriptor(uniqueDigest('sha512'), 0, 'application/octet-stream');
      storage.put('big/one', big);
      storage.put('big/one', sha512);
      const statter = cache.wrap(storage.statter('big/one'), 'big/one');
      for (const d of [big, sha512]) {
        await statter.stat(d.digest);
        assert.deepEqual(await statter.stat(d.digest), d);
        assert.equal(storage.asked('big/one', d.digest), 1);
      }
    });

    it('answers many digests and repositories concurrently without mixing them up', async function () {
      const scopes = ['c/a', 'c/b', 'c/c'];
      const all = scopes.flatMap((scope) =>
        Array.from({ length: 40 }, (_, i) => ({ scope, d: descriptor(uniqueDigest(), i * 1000 + scope.length) })),
      );
      for (const { scope, d } of all) storage.put(scope, d);
      const statters = new Map(scopes.map((s) => [s, cache.wrap(storage.statter(s), s)]));
      for (let round = 0; round < 2; round++) {
        const answers = await Promise.all(all.map(({ scope, d }) => statters.get(scope)!.stat(d.digest)));
        answers.forEach((answer, i) => assert.deepEqual(answer, all[i]!.d));
      }
      for (const { scope, d } of all) assert.equal(storage.asked(scope, d.digest), 1);
    });

    it('is ready while its backing service is', async function () {
      assert.equal(await cache.check(), undefined);
    });

    it('lets a caller change nothing it holds', async function () {
      const d = descriptor(uniqueDigest());
      storage.put('m/m', { ...d });
      const statter = cache.wrap(storage.statter('m/m'), 'm/m');
      await statter.stat(d.digest);
      const held = await statter.stat(d.digest);
      try {
        (held as { size: number }).size = 1;
      } catch {
        // frozen
      }
      assert.deepEqual(await statter.stat(d.digest), d);
    });

    describe('replicas sharing the cache', function () {
      beforeEach(function () {
        if (subject.replica === undefined) this.skip();
      });

      it('answers on one replica what another filled', async function () {
        const { peer } = await replica();
        const d = descriptor(uniqueDigest());
        storage.put('shared/x', d);
        await cache.wrap(storage.statter('shared/x'), 'shared/x').stat(d.digest);
        assert.deepEqual(await peer.wrap(storage.statter('shared/x'), 'shared/x').stat(d.digest), d);
        assert.equal(storage.asked('shared/x', d.digest), 1);
      });

      it('drops on every replica, by the time invalidate returns, what one replica invalidated', async function () {
        const { peer } = await replica();
        const d = descriptor(uniqueDigest());
        for (const scope of ['shared/y', undefined]) storage.put(scope, d);
        const here = cache.wrap(storage.statter('shared/y'), 'shared/y');
        const there = peer.wrap(storage.statter('shared/y'), 'shared/y');
        const thereGlobal = peer.wrap(storage.statter(undefined), undefined);
        await here.stat(d.digest);
        await there.stat(d.digest);
        await there.stat(d.digest);
        await thereGlobal.stat(d.digest);
        const globalAsked = storage.asked(undefined, d.digest);
        storage.remove('shared/y', d.digest);
        await cache.invalidate('shared/y', d.digest);
        await rejectsUnknown(there.stat(d.digest));
        await thereGlobal.stat(d.digest);
        assert.equal(storage.asked(undefined, d.digest), globalAsked, 'the global entry survives an unlink');
        storage.remove(undefined, d.digest);
        await cache.invalidate(undefined, d.digest);
        await rejectsUnknown(thereGlobal.stat(d.digest));
      });

      it('drops on another replica a fill that raced an invalidation there', async function () {
        const { peer } = await replica();
        const d = descriptor(uniqueDigest());
        storage.put('shared/z', d);
        const there = peer.wrap(storage.statter('shared/z'), 'shared/z');
        let release!: () => void;
        storage.gate = new Promise<void>((r) => (release = r));
        const inFlight = there.stat(d.digest);
        await new Promise((r) => setTimeout(r, 20));
        storage.remove('shared/z', d.digest);
        await cache.invalidate('shared/z', d.digest);
        release();
        storage.gate = undefined;
        await inFlight;
        await rejectsUnknown(there.stat(d.digest));
        await rejectsUnknown(cache.wrap(storage.statter('shared/z'), 'shared/z').stat(d.digest));
      });
    });
  });
}
