// Manifests over the in-memory driver: references are verified before anything is written, writes go bytes →
// revision link (the commit point) → referrers entry → tag, and a delete takes its tags and referrers entry along.
import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { digestBuffer, type Digest } from '../../src/oci/digest.js';
import { RegistryError } from '../../src/oci/errors.js';
import {
  StorageError,
  type FileInfo,
  type FileWriter,
  type ReadOptions,
  type StorageDriver,
} from '../../src/storage/driver.js';
import { InMemoryDriver } from '../../src/storage/drivers/inmemory/index.js';
import { paths } from '../../src/storage/paths.js';
import { RegistryStorage, type Repository } from '../../src/storage/registry.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** An in-memory driver that records every write and can be told to fail one. */
class RecordingDriver implements StorageDriver {
  readonly name = 'recording';
  readonly inner = new InMemoryDriver();
  /** `put <path>`, `move <path>`, `delete <path>` in the order they happened. */
  readonly writes: string[] = [];
  failOn: ((path: string) => boolean) | undefined;

  #check(path: string): void {
    if (this.failOn?.(path) === true) throw new StorageError('InvalidPath', path, `injected failure writing ${path}`);
  }

  getContent(path: string): Promise<Buffer> {
    return this.inner.getContent(path);
  }
  async putContent(path: string, content: Uint8Array): Promise<void> {
    this.#check(path);
    this.writes.push(`put ${path}`);
    await this.inner.putContent(path, content);
  }
  reader(path: string, options?: ReadOptions): Promise<Readable> {
    return this.inner.reader(path, options);
  }
  async writer(path: string, append: boolean): Promise<FileWriter> {
    this.#check(path);
    this.writes.push(`write ${path}`);
    return this.inner.writer(path, append);
  }
  stat(path: string): Promise<FileInfo> {
    return this.inner.stat(path);
  }
  list(path: string): Promise<string[]> {
    return this.inner.list(path);
  }
  async move(source: string, destination: string): Promise<void> {
    this.#check(destination);
    this.writes.push(`move ${destination}`);
    await this.inner.move(source, destination);
  }
  async delete(path: string): Promise<void> {
    this.#check(path);
    this.writes.push(`delete ${path}`);
    await this.inner.delete(path);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const NAME = 'unit/manifests';

interface Desc {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

async function addBlob(
  storage: RegistryStorage,
  repo: Repository,
  content: string,
  mediaType = OCI_LAYER,
): Promise<Desc> {
  const bytes = Buffer.from(content);
  const digest = digestBuffer(bytes);
  await storage.blobs.putContent(digest, bytes);
  await repo.blobs.link(digest);
  return { mediaType, digest: digest.value, size: bytes.length };
}

function imageBody(config: Desc, layers: Desc[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers, ...extra }));
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<RegistryError> {
  let caught: unknown;
  await assert.rejects(promise, (err: unknown) => {
    caught = err;
    return err instanceof RegistryError && err.code === code;
  });
  return caught as RegistryError;
}

describe('Manifests', function () {
  let driver: RecordingDriver;
  let storage: RegistryStorage;
  let repo: Repository;
  let config: Desc;
  let layer: Desc;

  beforeEach(async function () {
    driver = new RecordingDriver();
    storage = new RegistryStorage(driver);
    repo = storage.repository(NAME);
    config = await addBlob(storage, repo, '{"os":"linux"}', OCI_CONFIG);
    layer = await addBlob(storage, repo, 'layer');
    driver.writes.length = 0;
  });

  /** Stores an image manifest under `tag` and returns its digest. */
  async function putImage(tag: string, extra: Record<string, unknown> = {}): Promise<Digest> {
    return (await repo.manifests.put(imageBody(config, [layer], extra), OCI_MANIFEST, { tag })).digest;
  }

  function subjectOf(digest: Digest, body: Buffer): Desc {
    return { mediaType: OCI_MANIFEST, digest: digest.value, size: body.length };
  }

  it('stores a manifest and serves it back by digest with its media type', async function () {
    const body = imageBody(config, [layer]);
    const { digest } = await repo.manifests.put(body, OCI_MANIFEST, { tag: 'v1' });
    assert.equal(digest.value, digestBuffer(body).value);
    const stored = await repo.manifests.get(digest);
    assert.deepEqual(stored.content, body);
    assert.equal(stored.mediaType, OCI_MANIFEST);
    assert.equal((await repo.tags.resolve('v1')).value, digest.value);
  });

  it('writes the bytes, then the revision link, then the referrers entry, and the tag last', async function () {
    const subject = await putImage('base');
    const subjectBody = await repo.manifests.get(subject);
    driver.writes.length = 0;
    const body = imageBody(config, [layer], {
      artifactType: 'application/vnd.example',
      subject: subjectOf(subject, subjectBody.content),
    });
    const { digest } = await repo.manifests.put(body, OCI_MANIFEST, { tag: 'signed' });
    assert.deepEqual(driver.writes, [
      `put ${paths.blobData(digest)}`,
      `put ${paths.revisionLink(NAME, digest)}`,
      `put ${paths.referrer(NAME, subject, digest)}`,
      `put ${paths.tagCurrent(NAME, 'signed')}`,
    ]);
  });

  it('writes nothing when a referenced blob is missing, and names it', async function () {
    const missing = { mediaType: OCI_LAYER, digest: digestBuffer(Buffer.from('missing')).value, size: 7 };
    const err = await rejectsWith(
      repo.manifests.put(imageBody(config, [layer, missing]), OCI_MANIFEST, { tag: 'v1' }),
      'MANIFEST_BLOB_UNKNOWN',
    );
    assert.deepEqual(err.detail, { digest: missing.digest });
    assert.equal(err.status, 400);
    assert.deepEqual(driver.writes, []);
  });

  it('writes nothing when an index names a manifest the repository lacks, even one of another repository', async function () {
    const elsewhere = storage.repository('unit/elsewhere');
    const cfg = await addBlob(storage, elsewhere, '{"os":"linux"}', OCI_CONFIG);
    const other = (await elsewhere.manifests.put(imageBody(cfg, []), OCI_MANIFEST, { tag: 'v1' })).digest;
    driver.writes.length = 0;
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [{ mediaType: OCI_MANIFEST, digest: other.value, size: 10 }],
      }),
    );
    const err = await rejectsWith(repo.manifests.put(index, OCI_INDEX, { tag: 'multi' }), 'MANIFEST_BLOB_UNKNOWN');
    assert.deepEqual(err.detail, { digest: other.value });
    assert.deepEqual(driver.writes, []);
  });

  it('writes nothing when a PUT by digest does not match the body', async function () {
    const body = imageBody(config, [layer]);
    const wrong = digestBuffer(Buffer.from('other'));
    await rejectsWith(repo.manifests.put(body, OCI_MANIFEST, { digest: wrong }), 'DIGEST_INVALID');
    assert.deepEqual(driver.writes, []);
  });

  it('leaves no manifest and the tag as it was when the revision link cannot be written', async function () {
    const old = await putImage('v1');
    const body = imageBody(config, [layer], { annotations: { version: '2' } });
    const digest = digestBuffer(body);
    driver.failOn = (p) => p === paths.revisionLink(NAME, digest);
    await assert.rejects(repo.manifests.put(body, OCI_MANIFEST, { tag: 'v1' }), /injected failure/);
    driver.failOn = undefined;
    assert.equal(await repo.manifests.exists(digest), false);
    await rejectsWith(repo.manifests.get(digest), 'MANIFEST_UNKNOWN');
    await rejectsWith(new RegistryStorage(driver).repository(NAME).manifests.get(digest), 'MANIFEST_UNKNOWN');
    assert.equal((await repo.tags.resolve('v1')).value, old.value);
  });

  it('leaves the tag as it was when the referrers entry cannot be written', async function () {
    const subject = await putImage('base');
    const subjectBody = (await repo.manifests.get(subject)).content;
    const first = await putImage('sig', { subject: subjectOf(subject, subjectBody) });
    const body = imageBody(config, [layer], { subject: subjectOf(subject, subjectBody), annotations: { n: '2' } });
    driver.failOn = (p) => p.includes('/_referrers/');
    await assert.rejects(repo.manifests.put(body, OCI_MANIFEST, { tag: 'sig' }), /injected failure/);
    driver.failOn = undefined;
    assert.equal((await repo.tags.resolve('sig')).value, first.value);
  });

  it('keeps the stored manifest and the old tag when the tag cannot be written', async function () {
    const old = await putImage('v1');
    const body = imageBody(config, [layer], { annotations: { version: '2' } });
    const digest = digestBuffer(body);
    driver.failOn = (p) => p === paths.tagCurrent(NAME, 'v1');
    await assert.rejects(repo.manifests.put(body, OCI_MANIFEST, { tag: 'v1' }), /injected failure/);
    driver.failOn = undefined;
    assert.equal(await repo.manifests.exists(digest), true);
    assert.deepEqual((await repo.manifests.get(digest)).content, body);
    assert.equal((await repo.tags.resolve('v1')).value, old.value);
  });

  it('moves a tag to the newer manifest pushed under it', async function () {
    await putImage('v1');
    const newer = await putImage('v1', { annotations: { newer: 'yes' } });
    assert.equal((await repo.tags.resolve('v1')).value, newer.value);
    assert.deepEqual(await repo.tags.all(), ['v1']);
  });

  it('deletes a manifest with every tag that points to it and leaves other tags', async function () {
    const doomed = await putImage('a');
    await repo.manifests.put((await repo.manifests.get(doomed)).content, OCI_MANIFEST, { tag: 'b' });
    const kept = await putImage('c', { annotations: { kept: 'yes' } });
    await repo.manifests.delete(doomed);
    assert.deepEqual(await repo.tags.all(), ['c']);
    assert.equal((await repo.tags.resolve('c')).value, kept.value);
    assert.equal(await repo.manifests.exists(doomed), false);
    await rejectsWith(repo.manifests.get(doomed), 'MANIFEST_UNKNOWN');
    await rejectsWith(repo.tags.resolve('a'), 'MANIFEST_UNKNOWN');
    await rejectsWith(repo.manifests.delete(doomed), 'MANIFEST_UNKNOWN');
  });

  it('deletes the referrers entry of a manifest with a subject', async function () {
    const subject = await putImage('base');
    const subjectBody = (await repo.manifests.get(subject)).content;
    const keep = await putImage('sbom', {
      artifactType: 'application/vnd.example.sbom',
      subject: subjectOf(subject, subjectBody),
    });
    const drop = await putImage('sig', {
      artifactType: 'application/vnd.example.sig',
      subject: subjectOf(subject, subjectBody),
    });
    assert.deepEqual(
      (await repo.manifests.referrers(subject)).map((r) => r.digest).sort(),
      [keep.value, drop.value].sort(),
    );
    await repo.manifests.delete(drop);
    const left = await repo.manifests.referrers(subject);
    assert.deepEqual(
      left.map((r) => r.digest),
      [keep.value],
    );
    await assert.rejects(driver.stat(paths.referrer(NAME, subject, drop)), { kind: 'PathNotFound' });
  });

  it('lists referrers with their artifact type, filtered on request', async function () {
    const subject = await putImage('base');
    const subjectBody = (await repo.manifests.get(subject)).content;
    const sbom = await putImage('sbom', {
      artifactType: 'application/vnd.example.sbom',
      subject: subjectOf(subject, subjectBody),
    });
    // Without artifactType, the config's media type is the artifact type.
    const plain = await putImage('plain', { subject: subjectOf(subject, subjectBody) });
    const all = await repo.manifests.referrers(subject);
    assert.deepEqual(
      new Map(all.map((r) => [r.digest, r.artifactType])),
      new Map([
        [sbom.value, 'application/vnd.example.sbom'],
        [plain.value, OCI_CONFIG],
      ]),
    );
    assert.deepEqual(
      (await repo.manifests.referrers(subject, 'application/vnd.example.sbom')).map((r) => r.digest),
      [sbom.value],
    );
    assert.deepEqual(await repo.manifests.referrers(digestBuffer(Buffer.from('nothing'))), []);
  });

  it('does not serve a deleted manifest from its cache', async function () {
    const digest = await putImage('v1');
    await repo.manifests.get(digest);
    await new RegistryStorage(driver).repository(NAME).manifests.delete(digest);
    await rejectsWith(repo.manifests.get(digest), 'MANIFEST_UNKNOWN');
  });

  it('reads back the media type of a manifest without a mediaType field from its bytes', async function () {
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers: [layer] }));
    const { digest } = await repo.manifests.put(manifest, OCI_MANIFEST, { tag: 'bare' });
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: OCI_MANIFEST, digest: digest.value, size: manifest.length }],
      }),
    );
    const indexDigest = (await repo.manifests.put(index, OCI_INDEX, { tag: 'bare-index' })).digest;
    // Another process, with nothing cached, must see the same types.
    const fresh = new RegistryStorage(driver).repository(NAME);
    assert.equal((await fresh.manifests.get(digest)).mediaType, OCI_MANIFEST);
    assert.equal((await fresh.manifests.get(indexDigest)).mediaType, OCI_INDEX);
  });

  it('refuses a Docker manifest without its mediaType field, whose type the bytes could not tell later', async function () {
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers: [layer] }));
    await rejectsWith(repo.manifests.put(manifest, DOCKER_MANIFEST, { tag: 'docker' }), 'MANIFEST_INVALID');
    assert.deepEqual(driver.writes, []);
  });
});
