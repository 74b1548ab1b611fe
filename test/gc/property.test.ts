// A property test of garbage collection over random sequences of pushes, tag moves, untags, manifest deletes,
// pushes left in flight, clock jumps and collections, on the in-memory driver. After every collection: each tagged
// image is complete, and no blob older than the grace period remains unless a manifest references it.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { collectGarbage } from '../../src/gc/collect.js';
import { digestBuffer, parseDigest } from '../../src/oci/digest.js';
import { RegistryError } from '../../src/oci/errors.js';
import { InMemoryDriver } from '../../src/storage/drivers/inmemory/index.js';
import { walkFiles, type FileInfo } from '../../src/storage/driver.js';
import { paths, REPOSITORIES, ROOT } from '../../src/storage/paths.js';
import { RegistryStorage } from '../../src/storage/registry.js';

const HOUR = 3_600_000;
const REPOS = ['a', 'b/c'] as const;
const TAGS = ['t1', 't2', 't3'] as const;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** Blobs and manifests the runs swept, so the test shows it exercised sweeping and not only keeping. */
const swept = { blobs: 0, manifests: 0 };
/** Pushes that raced a sweep and failed (cleanly); counted so the test shows the race happens. */
let failedRaces = 0;

/** The in-memory driver on a clock the test moves: modification times are those of the moved clock. */
class ClockedDriver extends InMemoryDriver {
  offset = 0;
  readonly #times = new Map<string, number>();

  now(): number {
    return Date.now() + this.offset;
  }

  /** While set, the write of `holdPath` waits for it: a manifest PUT held between its two checks. */
  hold: Promise<void> | undefined;
  holdPath = '';

  override async putContent(path: string, content: Uint8Array): Promise<void> {
    if (this.hold !== undefined && path === this.holdPath) await this.hold;
    await super.putContent(path, content);
    this.#times.set(path, this.now());
  }

  override async move(source: string, destination: string): Promise<void> {
    await super.move(source, destination);
    this.#times.set(destination, this.now());
  }

  override async stat(path: string): Promise<FileInfo> {
    const info = await super.stat(path);
    const time = this.#times.get(path);
    return time === undefined || info.isDir ? info : { ...info, modTime: new Date(time) };
  }
}

interface TestImage {
  readonly blobs: readonly Buffer[];
  readonly manifest: Buffer;
  readonly digest: string;
}

/** A small pool of images that share layers, so collections have to tell shared from unshared. */
function pool(): TestImage[] {
  const layers = Array.from({ length: 5 }, (_, i) => Buffer.from(`layer ${i} ${'x'.repeat(i * 10)}`));
  const images: TestImage[] = [];
  for (let i = 0; i < 6; i++) {
    const config = Buffer.from(JSON.stringify({ os: 'linux', image: i }));
    const own = [layers[i % 5]!, layers[(i * 2 + 1) % 5]!].filter((l, j, all) => all.indexOf(l) === j);
    const desc = (b: Buffer, mediaType: string) => ({ mediaType, digest: digestBuffer(b).value, size: b.length });
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: desc(config, 'application/vnd.oci.image.config.v1+json'),
        layers: own.map((l) => desc(l, 'application/vnd.oci.image.layer.v1.tar')),
      }),
    );
    images.push({ blobs: [config, ...own], manifest, digest: digestBuffer(manifest).value });
  }
  return images;
}

type Command =
  | { readonly op: 'push'; readonly repo: number; readonly tag: number; readonly image: number }
  | { readonly op: 'untag'; readonly repo: number; readonly tag: number }
  | { readonly op: 'delete'; readonly repo: number; readonly image: number }
  | { readonly op: 'start'; readonly repo: number; readonly image: number }
  | { readonly op: 'finish' }
  | { readonly op: 'age' }
  | { readonly op: 'gc'; readonly deleteUntagged: boolean; readonly dryRun: boolean }
  /**
   * A collection with a push racing it: at the collection's `at`-th step the push in flight finishes (its manifest
   * PUT), or, with none in flight, an image whose blobs are stored already is mounted into `repo` and its manifest
   * put there, as a client does with blobs it knows the registry has.
   */
  | {
      readonly op: 'race';
      readonly at: number;
      /** Steps for which the PUT's revision write waits, so that collection phases pass between its checks. */
      readonly hold: number;
      readonly repo: number;
      readonly image: number;
      readonly deleteUntagged: boolean;
    };

const repo = fc.integer({ min: 0, max: REPOS.length - 1 });
const tag = fc.integer({ min: 0, max: TAGS.length - 1 });
const image = fc.integer({ min: 0, max: 5 });
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('push' as const), repo, tag, image }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('untag' as const), repo, tag }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('delete' as const), repo, image }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('start' as const), repo, image }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('finish' as const) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('age' as const) }) },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('gc' as const), deleteUntagged: fc.boolean(), dryRun: fc.boolean() }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('race' as const),
      at: fc.integer({ min: 0, max: 60 }),
      hold: fc.integer({ min: 0, max: 40 }),
      repo,
      image,
      deleteUntagged: fc.boolean(),
    }),
  },
);

async function run(commands: readonly Command[]): Promise<void> {
  const images = pool();
  const driver = new ClockedDriver();
  const storage = new RegistryStorage(driver);
  // One clock for writes and collections; `age` moves it two hours ahead.
  const now = (): number => driver.now();
  /** What the model says each tag points to. */
  const tagged = new Map<string, TestImage>();
  let pending: { repo: string; image: TestImage; sweptSince: boolean } | undefined;

  const upload = async (name: string, img: TestImage): Promise<void> => {
    const r = storage.repository(name);
    for (const b of img.blobs) {
      const d = digestBuffer(b);
      await storage.blobs.putContent(d, b);
      await r.blobs.link(d);
    }
  };

  for (const c of commands) {
    switch (c.op) {
      case 'push': {
        const name = REPOS[c.repo]!;
        const img = images[c.image]!;
        await upload(name, img);
        await storage.repository(name).manifests.put(img.manifest, OCI_MANIFEST, { tag: TAGS[c.tag]! });
        tagged.set(`${name}:${TAGS[c.tag]!}`, img);
        break;
      }
      case 'untag': {
        const name = REPOS[c.repo]!;
        await storage
          .repository(name)
          .tags.untag(TAGS[c.tag]!)
          .catch(() => undefined);
        tagged.delete(`${name}:${TAGS[c.tag]!}`);
        break;
      }
      case 'delete': {
        const name = REPOS[c.repo]!;
        const img = images[c.image]!;
        await storage
          .repository(name)
          .manifests.delete(parseDigest(img.digest))
          .catch(() => undefined);
        for (const [key, value] of [...tagged]) if (key.startsWith(`${name}:`) && value === img) tagged.delete(key);
        break;
      }
      case 'start': {
        const name = REPOS[c.repo]!;
        const img = images[c.image]!;
        await upload(name, img);
        pending = { repo: name, image: img, sweptSince: false };
        break;
      }
      case 'finish': {
        if (pending === undefined) break;
        const { repo: name, image: img, sweptSince } = pending;
        pending = undefined;
        try {
          await storage.repository(name).manifests.put(img.manifest, OCI_MANIFEST, { tag: 'pending' });
          tagged.set(`${name}:pending`, img);
        } catch (err) {
          // Only a collection that saw the blobs older than the grace period may have taken them, and then the PUT
          // fails cleanly, asking for the missing blob.
          assert.ok(sweptSince, `a push in flight lost its blobs within the grace period: ${String(err)}`);
          assert.ok(err instanceof RegistryError && err.code === 'MANIFEST_BLOB_UNKNOWN', String(err));
        }
        break;
      }
      case 'age':
        driver.offset += 2 * HOUR;
        if (pending !== undefined) pending = { ...pending, sweptSince: true };
        break;
      case 'race': {
        let racing: Promise<void> | undefined;
        let step = 0;
        let release = (): void => undefined;
        const finishing = pending;
        pending = undefined;
        const name = finishing?.repo ?? REPOS[c.repo]!;
        const img = finishing?.image ?? images[c.image]!;
        const tagName = finishing === undefined ? 'mounted' : 'pending';
        const push = async (): Promise<void> => {
          const r = storage.repository(name);
          try {
            // A mount links blobs the registry has (if it still has them), then the manifest goes up.
            if (finishing === undefined) {
              for (const b of img.blobs) {
                const d = digestBuffer(b);
                const there = await storage.blobs.stat(d).then(
                  () => true,
                  () => false,
                );
                if (there) await r.blobs.link(d);
              }
            }
            await r.manifests.put(img.manifest, OCI_MANIFEST, { tag: tagName });
            tagged.set(`${name}:${tagName}`, img);
          } catch (err) {
            // Racing a sweep, a push may fail, but only cleanly: the client is told which blob to push again.
            assert.ok(
              err instanceof RegistryError && (err.code === 'MANIFEST_BLOB_UNKNOWN' || err.code === 'BLOB_UNKNOWN'),
              String(err),
            );
            failedRaces++;
          }
        };
        const report = await collectGarbage({
          driver,
          graceMs: HOUR,
          dryRun: false,
          deleteUntagged: c.deleteUntagged,
          now,
          onProgress: () => {
            if (step === c.at) {
              if (c.hold > 0) {
                driver.hold = new Promise<void>((resolve) => (release = resolve));
                driver.holdPath = paths.revisionLink(name, parseDigest(img.digest));
              }
              racing = push();
            }
            if (step === c.at + c.hold) release();
            step++;
          },
        });
        release();
        await (racing ?? push());
        driver.hold = undefined;
        swept.blobs += report.blobsSwept;
        swept.manifests += report.manifestsSwept;
        await checkInvariants(false);
        break;
      }
      case 'gc': {
        const report = await collectGarbage({
          driver,
          graceMs: HOUR,
          dryRun: c.dryRun,
          deleteUntagged: c.deleteUntagged,
          now,
        });
        assert.deepEqual(report.problems, []);
        if (!c.dryRun) {
          swept.blobs += report.blobsSwept;
          swept.manifests += report.manifestsSwept;
        }
        await checkInvariants(c.dryRun);
        break;
      }
    }
  }

  async function checkInvariants(dryRun: boolean): Promise<void> {
    // Every tagged image is complete: the tag, the manifest, and every blob, linked and byte-identical.
    for (const [key, img] of tagged) {
      const [name, t] = key.split(':') as [string, string];
      const r = storage.repository(name);
      assert.equal((await r.tags.resolve(t)).value, img.digest, key);
      assert.deepEqual((await r.manifests.get(parseDigest(img.digest))).content, img.manifest, key);
      for (const b of img.blobs) {
        const d = digestBuffer(b);
        await r.statter.stat(d);
        assert.deepEqual(await storage.blobs.getContent(d), b, `${key} ${d.value}`);
      }
    }
    // No manifest in any repository points at a blob that is gone or not linked there.
    for await (const f of walkFiles(driver, REPOSITORIES)) {
      const m = /^.*\/repositories\/(.+)\/_manifests\/revisions\/(\w+)\/(\w+)\/link$/.exec(f.path);
      if (m === null) continue;
      const [, name, alg, hex] = m as unknown as [string, string, string, string];
      const json = JSON.parse((await driver.getContent(paths.blobData(parseDigest(`${alg}:${hex}`)))).toString()) as {
        config: { digest: string };
        layers: Array<{ digest: string }>;
      };
      for (const ref of [json.config.digest, ...json.layers.map((l) => l.digest)]) {
        const d = parseDigest(ref);
        await driver
          .stat(paths.blobData(d))
          .catch(() => assert.fail(`${name}@${alg}:${hex} points at ${ref}, which is gone`));
        await driver
          .stat(paths.layerLink(name, d))
          .catch(() => assert.fail(`${name}@${alg}:${hex} points at ${ref}, which is not linked in ${name}`));
      }
    }
    if (dryRun) return;
    // No blob older than the grace period remains unless a remaining manifest references it (or is it).
    const referenced = new Set<string>();
    for await (const f of walkFiles(driver, REPOSITORIES)) {
      const m = /\/_manifests\/revisions\/(\w+)\/(\w+)\/link$/.exec(f.path);
      if (m === null) continue;
      const d = `${m[1]}:${m[2]}`;
      referenced.add(d);
      const json = JSON.parse((await driver.getContent(paths.blobData(parseDigest(d)))).toString()) as {
        config: { digest: string };
        layers: Array<{ digest: string }>;
      };
      referenced.add(json.config.digest);
      for (const l of json.layers) referenced.add(l.digest);
    }
    const youngLinks = new Set<string>();
    for await (const f of walkFiles(driver, REPOSITORIES)) {
      const m = /\/_layers\/(\w+)\/(\w+)\/link$/.exec(f.path);
      if (m !== null && now() - f.modTime.getTime() < HOUR) youngLinks.add(`${m[1]}:${m[2]}`);
    }
    for await (const f of walkFiles(driver, `${ROOT}/blobs`)) {
      const m = /\/(\w+)\/\w\w\/(\w+)\/data$/.exec(f.path);
      if (m === null) continue;
      const d = `${m[1]}:${m[2]}`;
      if (now() - f.modTime.getTime() < HOUR || youngLinks.has(d)) continue;
      assert.ok(referenced.has(d), `unreferenced blob ${d} older than the grace period survived`);
    }
  }
}

describe('garbage collection, property: random pushes, deletes, tag moves and collections (inmemory)', function () {
  this.timeout(300_000);

  it('leaves every tagged image complete and no unreferenced blob older than the grace period', async function () {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 60 }), (commands) => run(commands)),
      {
        numRuns: 200,
        // Always among the runs: a tag move, then a collection that sweeps the manifest left untagged.
        examples: [
          [
            [
              { op: 'push', repo: 0, tag: 0, image: 0 },
              { op: 'push', repo: 0, tag: 0, image: 3 },
              { op: 'age' },
              { op: 'gc', deleteUntagged: true, dryRun: false },
            ],
          ],
        ],
      },
    );
    assert.ok(swept.blobs > 0 && swept.manifests > 0, JSON.stringify(swept));
    assert.ok(failedRaces > 0, 'some pushes lost their race with a sweep (and failed cleanly)');
  });
});
