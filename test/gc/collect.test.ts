// Garbage collection against a real registry on the filesystem driver: it frees exactly what nothing references,
// every remaining image pulls whole, a push in flight survives, and the dry run names what the real run deletes.
import assert from 'node:assert/strict';
import { mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { collectGarbage, JOURNAL, TRASH, type GcOptions, type GcReport } from '../../src/gc/collect.js';
import { parseDigest } from '../../src/oci/digest.js';
import { paths } from '../../src/storage/paths.js';
import { removeDir, startInProcess, tempDir, type InProcessRegistry } from '../helpers/harness.js';
import {
  blobOf,
  deleteManifest,
  headBlob,
  imageManifest,
  OCI_MANIFEST,
  pushBlob,
  pushImage,
  putManifest,
  randomBlob,
  randomImage,
  sha256,
  type Image,
} from '../helpers/push.js';

const HOUR = 3_600_000;

async function pullWhole(url: string, name: string, tag: string, image: Image): Promise<void> {
  const res = await fetch(`${url}/v2/${name}/manifests/${tag}`, { headers: { Accept: OCI_MANIFEST } });
  assert.equal(res.status, 200, `${name}:${tag}`);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), image.manifest);
  for (const blob of [image.config, ...image.layers]) {
    const b = await fetch(`${url}/v2/${name}/blobs/${blob.digest}`);
    assert.equal(b.status, 200, `${name}:${tag} ${blob.digest}`);
    assert.deepEqual(Buffer.from(await b.arrayBuffer()), blob.bytes);
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** Two images sharing a layer with a third in another repository, and a manifest that shares nothing. */
function images() {
  const shared = randomBlob(3000);
  const keep = randomImage(2);
  const withShared: Image = (() => {
    const config = blobOf(Buffer.from('{"os":"linux","n":1}'), 'application/vnd.oci.image.config.v1+json');
    const layers = [shared, randomBlob(1500)];
    const manifest = imageManifest(config, layers);
    return { config, layers, manifest, digest: sha256(manifest) };
  })();
  const other: Image = (() => {
    const config = blobOf(Buffer.from('{"os":"linux","n":2}'), 'application/vnd.oci.image.config.v1+json');
    const layers = [shared];
    const manifest = imageManifest(config, layers);
    return { config, layers, manifest, digest: sha256(manifest) };
  })();
  const doomed = randomImage(2, 5000);
  return { keep, withShared, other, doomed };
}

describe('garbage collection on a serving registry (filesystem)', function () {
  this.timeout(60_000);
  let root: string;
  let reg: InProcessRegistry;

  beforeEach(async function () {
    root = await tempDir('berth-gc-');
    reg = await startInProcess({ storage: { filesystem: { rootdirectory: root }, delete: { enabled: true } } });
  });

  afterEach(async function () {
    await reg?.close();
    await removeDir(root);
  });

  /** A run in which everything already in storage is older than the grace period. */
  function gc(extra: Partial<GcOptions> = {}): Promise<GcReport> {
    return collectGarbage({
      driver: reg.registry.storage.driver,
      invalidate: reg.registry.storage.invalidate,
      graceMs: HOUR,
      dryRun: false,
      deleteUntagged: false,
      now: () => Date.now() + 2 * HOUR,
      ...extra,
    });
  }

  it('frees exactly the blobs of a deleted manifest, and every remaining image pulls byte-identical', async function () {
    const { keep, withShared, other, doomed } = images();
    await pushImage(reg.url, 'app', 'keep', keep);
    await pushImage(reg.url, 'app', 'shared', withShared);
    await pushImage(reg.url, 'lib/other', 'v1', other);
    await pushImage(reg.url, 'app', 'doomed', doomed);
    // The layer of `doomed` is still cached as present before the collection.
    assert.equal(await headBlob(reg.url, 'app', doomed.layers[0]!.digest), 200);
    await deleteManifest(reg.url, 'app', doomed.digest);

    const report = await gc();
    const expected = [doomed.digest, doomed.config.digest, ...doomed.layers.map((l) => l.digest)].sort();
    assert.deepEqual(report.sweptBlobs, expected);
    assert.equal(
      report.bytesFreed,
      doomed.manifest.length + doomed.config.size + doomed.layers.reduce((n, l) => n + l.size, 0),
    );
    assert.deepEqual(report.problems, []);
    for (const d of expected.slice(1)) assert.equal(await headBlob(reg.url, 'app', d), 404, d);
    await pullWhole(reg.url, 'app', 'keep', keep);
    await pullWhole(reg.url, 'app', 'shared', withShared);
    await pullWhole(reg.url, 'lib/other', 'v1', other);

    // A second run finds nothing more, and the deleted image can be pushed again.
    assert.deepEqual((await gc()).sweptBlobs, []);
    await pushImage(reg.url, 'app', 'doomed', doomed);
    await pullWhole(reg.url, 'app', 'doomed', doomed);
  });

  it('keeps the blobs of a push in flight within the grace period, and the manifest PUT then succeeds', async function () {
    const inFlight = randomImage(2);
    const old = randomImage(1);
    await pushImage(reg.url, 'app', 'old', old);
    await deleteManifest(reg.url, 'app', old.digest);
    for (const blob of [...inFlight.layers, inFlight.config]) assert.ok(await pushBlob(reg.url, 'app', blob));
    // Real clock: the in-flight blobs are seconds old; so is everything else, so pretend only `old` is old.
    const report = await gc({ now: () => Date.now(), graceMs: HOUR });
    assert.deepEqual(report.sweptBlobs, []);
    assert.ok(report.blobsInGrace >= 3);
    const res = await putManifest(reg.url, 'app', 'v1', inFlight.manifest);
    assert.equal(res.status, 201, await res.text());
    await pullWhole(reg.url, 'app', 'v1', inFlight);
    // Later, with everything aged, only `old` goes.
    const later = await gc();
    assert.deepEqual(later.sweptBlobs, [old.digest, old.config.digest, old.layers[0]!.digest].sort());
    await pullWhole(reg.url, 'app', 'v1', inFlight);
  });

  it('dry run deletes nothing and names exactly what the real run then deletes', async function () {
    const { keep, withShared, other, doomed } = images();
    await pushImage(reg.url, 'app', 'keep', keep);
    await pushImage(reg.url, 'app', 'shared', withShared);
    await pushImage(reg.url, 'lib/other', 'v1', other);
    await pushImage(reg.url, 'app', 'doomed', doomed);
    await pushImage(reg.url, 'lib/other', 'v2', doomed);
    await deleteManifest(reg.url, 'app', doomed.digest);
    await deleteManifest(reg.url, 'lib/other', doomed.digest);
    await deleteManifest(reg.url, 'app', withShared.digest);

    const before = await filesUnder(root);
    const dry = await gc({ dryRun: true, deleteUntagged: true });
    assert.deepEqual(await filesUnder(root), before, 'the dry run changed storage');
    assert.ok(dry.blobsSwept > 0);
    const real = await gc({ deleteUntagged: true });
    const { durationMs: _d, dryRun: _x, ...dryRest } = dry;
    const { durationMs: _r, dryRun: _y, ...realRest } = real;
    assert.deepEqual(realRest, dryRest);
    // Linked into app: doomed's config and 2 layers, withShared's config and own layer; manifests are linked nowhere.
    assert.equal(real.perRepository['app']?.blobs, 5);
    assert.equal(real.perRepository['']?.blobs, 2);
    await pullWhole(reg.url, 'app', 'keep', keep);
    await pullWhole(reg.url, 'lib/other', 'v1', other);
  });

  it('with deleteUntagged, sweeps a manifest no tag reaches and its referrers, keeping referrers of tagged ones', async function () {
    const first = randomImage(1);
    const second = randomImage(1);
    await pushImage(reg.url, 'app', 'latest', first);
    const sigOf = async (image: Image): Promise<Image> => {
      const config = blobOf(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');
      const layer = randomBlob(100);
      await pushBlob(reg.url, 'app', config);
      await pushBlob(reg.url, 'app', layer);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          artifactType: 'application/vnd.example.signature',
          config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
          layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }],
          subject: { mediaType: OCI_MANIFEST, digest: image.digest, size: image.manifest.length },
        }),
      );
      const digest = sha256(manifest);
      const res = await putManifest(reg.url, 'app', digest, manifest);
      assert.equal(res.status, 201, await res.text());
      return { config, layers: [layer], manifest, digest };
    };
    const sigFirst = await sigOf(first);
    // Moving the tag leaves `first` untagged.
    await pushImage(reg.url, 'app', 'latest', second);
    const sigSecond = await sigOf(second);

    const report = await gc({ deleteUntagged: true });
    assert.deepEqual(report.sweptManifests, [`app@${first.digest}`, `app@${sigFirst.digest}`].sort());
    assert.ok(report.sweptBlobs.includes(first.layers[0]!.digest));
    assert.ok(report.sweptBlobs.includes(sigFirst.layers[0]!.digest));
    assert.ok(!report.sweptBlobs.includes(sigSecond.layers[0]!.digest));
    await pullWhole(reg.url, 'app', 'latest', second);
    await pullWhole(reg.url, 'app', sigSecond.digest, sigSecond);
    const gone = await fetch(`${reg.url}/v2/app/manifests/${first.digest}`, { method: 'HEAD' });
    assert.equal(gone.status, 404);
    const referrers = (await (await fetch(`${reg.url}/v2/app/referrers/${second.digest}`)).json()) as {
      manifests: Array<{ digest: string }>;
    };
    assert.deepEqual(
      referrers.manifests.map((m) => m.digest),
      [sigSecond.digest],
    );
  });

  it('reports a corrupt manifest and keeps the blobs linked into its repository', async function () {
    const image = randomImage(1);
    await pushImage(reg.url, 'app', 'v1', image);
    await deleteManifest(reg.url, 'app', image.digest);
    const corrupt = randomImage(1);
    await pushImage(reg.url, 'app', 'v2', corrupt);
    const { writeFile } = await import('node:fs/promises');
    const hex = corrupt.digest.slice('sha256:'.length);
    await writeFile(join(root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data'), '{not json');
    const report = await gc();
    assert.equal(report.problems.length, 1);
    assert.match(report.problems[0]!, /corrupt manifest/);
    assert.deepEqual(report.sweptBlobs, [image.digest]);
  });

  it('puts back, whole, what a run that died mid-sweep left in its trash, and leaves no trash itself', async function () {
    const { keep } = images();
    await pushImage(reg.url, 'app', 'keep', keep);
    const driver = reg.registry.storage.driver;
    // What a collector killed between its sweep and its rescan leaves: a layer's link gone, its bytes in the trash.
    const layer = parseDigest(keep.layers[0]!.digest);
    await driver.putContent(`${JOURNAL}/test-000000`, Buffer.from(JSON.stringify([[layer.value, ['app']]])));
    await driver.delete(paths.layerLinkDir('app', layer));
    await driver.move(paths.blobData(layer), `${TRASH}/${layer.algorithm}-${layer.hex}`);
    await reg.registry.storage.invalidate(undefined, layer);
    assert.equal(await headBlob(reg.url, 'app', layer.value), 404);

    const report = await gc();
    assert.deepEqual(report.sweptBlobs, []);
    await pullWhole(reg.url, 'app', 'keep', keep);
    assert.deepEqual(await filesUnder(join(root, TRASH)), []);
    assert.deepEqual(await filesUnder(join(root, JOURNAL)), []);
  });

  it('removes temporary files that crashed writes left, once older than the grace period', async function () {
    const { keep } = images();
    await pushImage(reg.url, 'app', 'keep', keep);
    // The filesystem driver writes every file to its temporary directory under the root, then renames it in place.
    const temps = join(root, '.tmp-writes');
    await mkdir(temps, { recursive: true });
    const old = join(temps, '.tmp-0123456789abcdef');
    const young = join(temps, '.tmp-fedcba9876543210');
    await writeFile(old, 'half');
    await writeFile(young, 'half');
    const hoursAgo = new Date(Date.now() - 2 * HOUR);
    await utimes(old, hoursAgo, hoursAgo);

    const dry = await gc({ now: () => Date.now(), dryRun: true });
    assert.equal(dry.leftoversSwept, 1);
    assert.ok(await stat(old), 'a dry run removes nothing');
    const report = await gc({ now: () => Date.now() });
    assert.equal(report.leftoversSwept, 1);
    await assert.rejects(stat(old), /ENOENT/);
    assert.ok(await stat(young), 'a write that may be in progress stays');
    await pullWhole(reg.url, 'app', 'keep', keep);
  });

  it('exits cleanly on empty storage', async function () {
    const report = await gc();
    assert.equal(report.repositories, 0);
    assert.equal(report.blobsSwept, 0);
  });
});
