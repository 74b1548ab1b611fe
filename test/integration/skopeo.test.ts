// skopeo against Berth: an image built offline with umoci is pushed, inspected, listed, pulled back byte for byte,
// copied between repositories, pushed as Docker schema 2 and deleted.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeDir, spawnRegistry, tempDir, type ChildRegistry } from '../helpers/harness.js';
import {
  buildOciLayout,
  header,
  httpRequest,
  listTags,
  parseImageManifest,
  readLayoutBlobs,
  readLayoutIndex,
  sha256,
  skopeo,
  skopeoContext,
  type BuiltLayout,
  type ImageManifest,
  type SkopeoContext,
} from '../helpers/images.js';

const DOCKER_V2S2 = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

interface InspectOutput {
  readonly Digest: string;
  readonly Layers: readonly string[];
  readonly RepoTags?: readonly string[];
}

function parseInspect(stdout: string): InspectOutput {
  const json: unknown = JSON.parse(stdout);
  assert.ok(typeof json === 'object' && json !== null, `skopeo inspect printed ${stdout}`);
  const { Digest, Layers, RepoTags } = json as Record<string, unknown>;
  assert.equal(typeof Digest, 'string');
  assert.ok(Array.isArray(Layers));
  return {
    Digest: String(Digest),
    Layers: Layers.map(String),
    ...(Array.isArray(RepoTags) ? { RepoTags: RepoTags.map(String) } : {}),
  };
}

describe('skopeo against Berth @integration', function () {
  this.timeout(120_000);

  let work: string;
  let storage: string;
  let registry: ChildRegistry | undefined;
  let ctx: SkopeoContext;
  let source: BuiltLayout;
  let sourceBlobs: Map<string, Buffer>;
  let sourceManifest: ImageManifest;
  let host: string;

  before(async function () {
    work = await tempDir('berth-skopeo-');
    storage = await tempDir('berth-skopeo-storage-');
    ctx = await skopeoContext(work);
    source = await buildOciLayout(work, 'source', 'v1', [
      { 'etc/motd': 'built offline by umoci for the Berth skopeo test\n', 'etc/hostname': 'berth\n' },
      { 'data/random.bin': randomBytes(1536 * 1024) },
      { 'app/a/one.txt': 'one\n', 'app/b/two.txt': 'two\n'.repeat(1000), 'app/empty': '' },
    ]);
    sourceBlobs = await readLayoutBlobs(source.dir);
    const manifestBytes = sourceBlobs.get(source.manifestDigest);
    assert.ok(manifestBytes !== undefined);
    sourceManifest = parseImageManifest(manifestBytes);
    // umoci gc left exactly the tagged image's blobs: the manifest, the config and three layers.
    assert.equal(sourceManifest.layers.length, 3);
    assert.equal(sourceBlobs.size, 5);
    registry = await spawnRegistry({
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: storage,
      REGISTRY_STORAGE_DELETE_ENABLED: 'true',
    });
    host = `127.0.0.1:${registry.port}`;
  });

  after(async function () {
    if (registry !== undefined) await registry.stop();
    if (work !== undefined) await removeDir(work);
    if (storage !== undefined) await removeDir(storage);
  });

  async function push(repo: string, tag: string, extra: readonly string[] = []): Promise<void> {
    await skopeo(ctx, [
      'copy',
      ...extra,
      '--dest-tls-verify=false',
      `oci:${source.dir}:${source.tag}`,
      `docker://${host}/${repo}:${tag}`,
    ]);
  }

  async function inspect(repo: string, tag: string): Promise<InspectOutput> {
    return parseInspect(
      (await skopeo(ctx, ['inspect', '--tls-verify=false', `docker://${host}/${repo}:${tag}`])).stdout,
    );
  }

  it('pushes an OCI layout built by umoci and keeps its manifest digest and layers', async function () {
    await push('skopeo/pushed', 'v1');
    const info = await inspect('skopeo/pushed', 'v1');
    assert.equal(info.Digest, source.manifestDigest);
    assert.equal(info.Layers.length, 3);
    assert.deepEqual(
      info.Layers,
      sourceManifest.layers.map((l) => l.digest),
    );
    const res = await httpRequest(`${registry?.url}/v2/skopeo/pushed/manifests/v1`, {
      headers: { Accept: OCI_MANIFEST },
    });
    assert.equal(res.status, 200);
    assert.equal(header(res, 'docker-content-digest'), source.manifestDigest);
    assert.deepEqual(res.body, sourceBlobs.get(source.manifestDigest));
  });

  it('lists the pushed tags with skopeo list-tags', async function () {
    await push('skopeo/listed', 'v1');
    await push('skopeo/listed', 'v2');
    const out = (await skopeo(ctx, ['list-tags', '--tls-verify=false', `docker://${host}/skopeo/listed`])).stdout;
    const json = JSON.parse(out) as { Repository?: unknown; Tags?: unknown };
    assert.equal(json.Repository, `${host}/skopeo/listed`);
    assert.ok(Array.isArray(json.Tags));
    assert.deepEqual([...json.Tags].map(String).sort(), ['v1', 'v2']);
  });

  it('pulls the image back into a fresh OCI layout byte for byte', async function () {
    await push('skopeo/roundtrip', 'v1');
    const out = join(work, 'pulled');
    await skopeo(ctx, ['copy', '--src-tls-verify=false', `docker://${host}/skopeo/roundtrip:v1`, `oci:${out}:v1`]);
    const index = await readLayoutIndex(out);
    assert.equal(index.manifests.length, 1);
    assert.equal(index.manifests[0]?.digest, source.manifestDigest);
    const pulled = await readLayoutBlobs(out);
    assert.deepEqual([...pulled.keys()].sort(), [...sourceBlobs.keys()].sort());
    for (const [digest, bytes] of sourceBlobs) {
      const copy = pulled.get(digest);
      assert.ok(copy !== undefined && copy.equals(bytes), `blob ${digest} differs after the round trip`);
      assert.equal(sha256(copy), digest);
    }
  });

  it('copies the image to another repository of the same registry', async function () {
    await push('skopeo/origin', 'v1');
    await skopeo(ctx, [
      'copy',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      `docker://${host}/skopeo/origin:v1`,
      `docker://${host}/skopeo/elsewhere/copy:v1`,
    ]);
    const info = await inspect('skopeo/elsewhere/copy', 'v1');
    assert.equal(info.Digest, source.manifestDigest);
    // Every blob is readable through the destination repository, with the right bytes.
    for (const d of [sourceManifest.config, ...sourceManifest.layers]) {
      const res = await httpRequest(`${registry?.url}/v2/skopeo/elsewhere/copy/blobs/${d.digest}`);
      assert.equal(res.status, 200, `GET ${d.digest} in the copy: ${res.status}`);
      assert.equal(sha256(res.body), d.digest);
      assert.equal(res.body.length, d.size);
    }
  });

  it('round-trips the image pushed as Docker schema 2 (--format v2s2)', async function () {
    await push('skopeo/docker', 'v1', ['--format', 'v2s2']);
    const raw = (await skopeo(ctx, ['inspect', '--raw', '--tls-verify=false', `docker://${host}/skopeo/docker:v1`]))
      .stdout;
    const manifest = parseImageManifest(raw);
    assert.equal(manifest.mediaType, DOCKER_V2S2);
    // The conversion rewrites media types only: same config and layer bytes.
    assert.equal(manifest.config.digest, sourceManifest.config.digest);
    assert.deepEqual(
      manifest.layers.map((l) => l.digest),
      sourceManifest.layers.map((l) => l.digest),
    );

    const res = await httpRequest(`${registry?.url}/v2/skopeo/docker/manifests/v1`, {
      headers: { Accept: DOCKER_V2S2 },
    });
    assert.equal(res.status, 200);
    assert.equal(header(res, 'content-type'), DOCKER_V2S2);
    const digest = sha256(res.body);
    assert.equal(header(res, 'docker-content-digest'), digest);
    assert.equal(res.body.toString(), raw);

    // Pulling it out with the dir: transport keeps the manifest exactly as stored.
    const out = join(work, 'docker-dir');
    await skopeo(ctx, ['copy', '--src-tls-verify=false', `docker://${host}/skopeo/docker:v1`, `dir:${out}`]);
    const pulledManifest = await readFile(join(out, 'manifest.json'));
    assert.equal(sha256(pulledManifest), digest);
    for (const d of [manifest.config, ...manifest.layers]) {
      const bytes = await readFile(join(out, d.digest.slice('sha256:'.length)));
      const original = sourceBlobs.get(d.digest);
      assert.ok(original !== undefined && bytes.equals(original), `blob ${d.digest} differs after the v2s2 round trip`);
    }
    assert.equal((await inspect('skopeo/docker', 'v1')).Digest, digest);
  });

  it('deletes the image with skopeo delete, after which its manifest answers 404', async function () {
    await push('skopeo/doomed', 'v1');
    await push('skopeo/survivor', 'v1');
    const base = registry?.url ?? '';
    assert.equal(
      (await httpRequest(`${base}/v2/skopeo/doomed/manifests/${source.manifestDigest}`, { method: 'HEAD' })).status,
      200,
    );
    await skopeo(ctx, ['delete', '--tls-verify=false', `docker://${host}/skopeo/doomed:v1`]);
    const byDigest = await httpRequest(`${base}/v2/skopeo/doomed/manifests/${source.manifestDigest}`, {
      headers: { Accept: OCI_MANIFEST },
    });
    assert.equal(byDigest.status, 404);
    assert.match(byDigest.body.toString(), /MANIFEST_UNKNOWN/);
    const byTag = await httpRequest(`${base}/v2/skopeo/doomed/manifests/v1`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(byTag.status, 404);
    assert.deepEqual(await listTags(base, 'skopeo/doomed'), []);
    // The same manifest in another repository is untouched.
    assert.equal((await inspect('skopeo/survivor', 'v1')).Digest, source.manifestDigest);
  });
});
