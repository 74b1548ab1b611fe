// storage.redirect on the s3 driver against a real SeaweedFS: a blob GET answers 307 to a presigned URL on the S3
// endpoint that serves the exact bytes (and nothing once tampered with or expired), skopeo pulls an image through the
// redirects byte for byte while the layer bytes bypass Berth, and with REGISTRY_STORAGE_REDIRECT_DISABLE=true, or on
// the filesystem driver, Berth streams the bytes itself.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { removeDir, spawnRegistry, tempDir, type ChildRegistry } from '../helpers/harness.js';
import {
  buildOciLayout,
  header,
  httpRequest,
  pushBlob,
  readLayoutBlobs,
  readLayoutIndex,
  sha256,
  skopeo,
  skopeoContext,
  type BuiltLayout,
  type SkopeoContext,
} from '../helpers/images.js';
import { startSeaweedS3, type SeaweedS3 } from '../helpers/seaweedfs.js';

const MiB = 1024 * 1024;

/** The value of a counter or gauge series in a Prometheus text exposition; 0 when the series is absent. */
async function metric(debugUrl: string, series: string): Promise<number> {
  const text = await (await fetch(`${debugUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

const REDIRECTS = 'registry_http_requests_total{method="GET",route="blob",code="307"}';
const PULLED = 'registry_storage_bytes_pulled_total{driver="s3"}';

describe('blob redirects on s3 (SeaweedFS) @integration', function () {
  this.timeout(360_000);

  let s3: SeaweedS3;
  let bucket: string;
  let work: string;
  let ctx: SkopeoContext;
  let source: BuiltLayout;
  let sourceBlobs: Map<string, Buffer>;
  /** Redirects on (the default). */
  let redirecting: ChildRegistry | undefined;
  /** The same bucket with REGISTRY_STORAGE_REDIRECT_DISABLE=true. */
  let streaming: ChildRegistry | undefined;
  const blob = randomBytes(6 * MiB + 123);
  let digest: string;

  function s3Env(overrides: Record<string, string> = {}): Record<string, string> {
    return {
      REGISTRY_STORAGE: 's3',
      REGISTRY_STORAGE_S3_REGIONENDPOINT: s3.endpoint,
      REGISTRY_STORAGE_S3_REGION: s3.region,
      REGISTRY_STORAGE_S3_FORCEPATHSTYLE: 'true',
      REGISTRY_STORAGE_S3_BUCKET: bucket,
      REGISTRY_STORAGE_S3_ROOTDIRECTORY: '/registry',
      REGISTRY_STORAGE_S3_ACCESSKEY: s3.accessKey,
      REGISTRY_STORAGE_S3_SECRETKEY: s3.secretKey,
      REGISTRY_STORAGE_S3_CHUNKSIZE: String(5 * MiB),
      ...overrides,
    };
  }

  before(async function () {
    s3 = await startSeaweedS3();
    bucket = await s3.createBucket();
    work = await tempDir('berth-s3-redirect-');
    ctx = await skopeoContext(work);
    source = await buildOciLayout(work, 'source', 'v1', [
      { 'etc/motd': 'pulled through a redirect\n' },
      { 'data/random.bin': randomBytes(7 * MiB + 77) },
    ]);
    sourceBlobs = await readLayoutBlobs(source.dir);
    redirecting = await spawnRegistry(s3Env());
    streaming = await spawnRegistry(s3Env({ REGISTRY_STORAGE_REDIRECT_DISABLE: 'true' }));
    digest = await pushBlob(redirecting.url, 'redirect/blob', blob);
  });

  after(async function () {
    await redirecting?.stop();
    await streaming?.stop();
    if (work !== undefined) await removeDir(work);
    await s3?.stop();
  });

  it('answers a blob GET with 307 to a presigned URL on the S3 endpoint that serves the exact bytes', async function () {
    assert.ok(redirecting !== undefined);
    const res = await httpRequest(`${redirecting.url}/v2/redirect/blob/blobs/${digest}`);
    assert.equal(res.status, 307, res.body.toString());
    assert.equal(header(res, 'docker-content-digest'), digest);
    assert.equal(header(res, 'content-length'), '0');
    assert.equal(res.body.length, 0);
    const location = header(res, 'location') ?? '';
    // Path style, as forcepathstyle asks: the endpoint, the bucket, then the key under rootdirectory.
    assert.ok(location.startsWith(`${s3.endpoint}/${bucket}/registry/docker/registry/v2/blobs/`), location);
    const url = new URL(location);
    assert.equal(url.searchParams.get('X-Amz-Algorithm'), 'AWS4-HMAC-SHA256');
    assert.equal(url.searchParams.get('X-Amz-Expires'), '1200');
    // No credentials of its own: the URL alone is the grant.
    const direct = await httpRequest(location, { timeoutMs: 60_000 });
    assert.equal(direct.status, 200, direct.body.toString().slice(0, 500));
    assert.equal(direct.body.length, blob.length);
    assert.ok(direct.body.equals(blob), 'the object store served other bytes');
    const ranged = await httpRequest(location, { headers: { Range: 'bytes=100-199' } });
    assert.equal(ranged.status, 206);
    assert.ok(ranged.body.equals(blob.subarray(100, 200)), 'a range through the URL');
  });

  it('redirects a blob pushed in chunks to one object with all of its bytes', async function () {
    assert.ok(redirecting !== undefined);
    // Three PATCHes: the upload is appended to twice, then moved into the blob store as one object.
    const pieces = [randomBytes(5 * MiB + 1), randomBytes(3 * MiB), randomBytes(1000)];
    const whole = Buffer.concat(pieces);
    const d = sha256(whole);
    const start = await fetch(`${redirecting.url}/v2/redirect/chunked/blobs/uploads/`, { method: 'POST' });
    assert.equal(start.status, 202);
    let location = new URL(start.headers.get('location') ?? '', redirecting.url).toString();
    let offset = 0;
    for (const piece of pieces) {
      const res = await fetch(location, {
        method: 'PATCH',
        body: piece,
        headers: {
          'Content-Type': 'application/octet-stream',
          'Content-Range': `${offset}-${offset + piece.length - 1}`,
        },
      });
      assert.equal(res.status, 202, await res.text());
      offset += piece.length;
      location = new URL(res.headers.get('location') ?? '', redirecting.url).toString();
    }
    const put = await fetch(`${location}${location.includes('?') ? '&' : '?'}digest=${d}`, { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    const res = await httpRequest(`${redirecting.url}/v2/redirect/chunked/blobs/${d}`);
    assert.equal(res.status, 307);
    const direct = await httpRequest(header(res, 'location') ?? '', { timeoutMs: 60_000 });
    assert.equal(direct.status, 200);
    assert.equal(direct.body.length, whole.length);
    assert.ok(direct.body.equals(whole), 'the object behind the redirect is not the whole blob');
  });

  it('hands out URLs the object store checks: a tampered signature is refused', async function () {
    assert.ok(redirecting !== undefined);
    const res = await httpRequest(`${redirecting.url}/v2/redirect/blob/blobs/${digest}`);
    const url = new URL(header(res, 'location') ?? '');
    const signature = url.searchParams.get('X-Amz-Signature') ?? '';
    url.searchParams.set('X-Amz-Signature', `${signature.startsWith('0') ? '1' : '0'}${signature.slice(1)}`);
    const tampered = await httpRequest(url.toString());
    assert.equal(tampered.status, 403, tampered.body.toString().slice(0, 500));
  });

  it('never redirects a HEAD', async function () {
    assert.ok(redirecting !== undefined);
    const res = await httpRequest(`${redirecting.url}/v2/redirect/blob/blobs/${digest}`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(header(res, 'content-length'), String(blob.length));
    assert.equal(header(res, 'location'), undefined);
  });

  it('lets skopeo pull an image through the redirects byte for byte, the layers bypassing Berth', async function () {
    assert.ok(redirecting !== undefined);
    const host = `127.0.0.1:${redirecting.port}`;
    await skopeo(ctx, [
      'copy',
      '--dest-tls-verify=false',
      `oci:${source.dir}:v1`,
      `docker://${host}/redirect/image:v1`,
    ]);
    const redirectsBefore = await metric(redirecting.debugUrl, REDIRECTS);
    const pulledBefore = await metric(redirecting.debugUrl, PULLED);
    const out = join(work, 'pulled-redirect');
    await skopeo(ctx, ['copy', '--src-tls-verify=false', `docker://${host}/redirect/image:v1`, `oci:${out}:v1`]);
    assert.equal((await readLayoutIndex(out)).manifests[0]?.digest, source.manifestDigest);
    const pulled = await readLayoutBlobs(out);
    assert.deepEqual([...pulled.keys()].sort(), [...sourceBlobs.keys()].sort());
    for (const [d, bytes] of sourceBlobs) {
      const copy = pulled.get(d);
      assert.ok(copy !== undefined && copy.equals(bytes), `blob ${d} differs after the pull`);
      assert.equal(sha256(copy), d);
    }
    // The config and both layers went by redirect; Berth read only the manifest (a few hundred bytes).
    const redirects = (await metric(redirecting.debugUrl, REDIRECTS)) - redirectsBefore;
    assert.ok(redirects >= 3, `${redirects} redirects`);
    const pulledThrough = (await metric(redirecting.debugUrl, PULLED)) - pulledBefore;
    assert.ok(pulledThrough < 64 * 1024, `${pulledThrough} bytes went through Berth`);
  });

  it('streams blobs through Berth with REGISTRY_STORAGE_REDIRECT_DISABLE=true, and skopeo pulls through it', async function () {
    assert.ok(streaming !== undefined);
    const res = await httpRequest(`${streaming.url}/v2/redirect/blob/blobs/${digest}`, { timeoutMs: 60_000 });
    assert.equal(res.status, 200);
    assert.equal(header(res, 'location'), undefined);
    assert.ok(res.body.equals(blob), 'Berth streamed other bytes');
    const host = `127.0.0.1:${streaming.port}`;
    const pulledBefore = await metric(streaming.debugUrl, PULLED);
    const out = join(work, 'pulled-streaming');
    // The image the redirecting replica took, from the same bucket.
    await skopeo(ctx, ['copy', '--src-tls-verify=false', `docker://${host}/redirect/image:v1`, `oci:${out}:v1`]);
    const pulled = await readLayoutBlobs(out);
    for (const [d, bytes] of sourceBlobs) assert.ok(pulled.get(d)?.equals(bytes), `blob ${d} differs after the pull`);
    assert.equal(await metric(streaming.debugUrl, REDIRECTS), 0);
    const layerBytes = [...sourceBlobs.values()].reduce((n, b) => n + b.length, 0);
    assert.ok((await metric(streaming.debugUrl, PULLED)) - pulledBefore >= layerBytes - 64 * 1024);
  });

  it('hands out URLs that stop working after storage.redirect.expiry', async function () {
    const short = await spawnRegistry(s3Env({ REGISTRY_STORAGE_REDIRECT_EXPIRY: '1s' }));
    try {
      const res = await httpRequest(`${short.url}/v2/redirect/blob/blobs/${digest}`);
      assert.equal(res.status, 307);
      const location = header(res, 'location') ?? '';
      assert.equal(new URL(location).searchParams.get('X-Amz-Expires'), '1');
      await new Promise((r) => setTimeout(r, 2500));
      const expired = await httpRequest(location);
      assert.equal(expired.status, 403, `an expired URL answered ${expired.status}`);
    } finally {
      await short.stop();
    }
  });

  it('never redirects on the filesystem driver', async function () {
    const dir = await tempDir('berth-fs-redirect-');
    const fs = await spawnRegistry({
      REGISTRY_STORAGE: 'filesystem',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: dir,
    });
    try {
      const data = randomBytes(100_000);
      const d = await pushBlob(fs.url, 'fs/blob', data);
      const res = await httpRequest(`${fs.url}/v2/fs/blob/blobs/${d}`);
      assert.equal(res.status, 200);
      assert.equal(header(res, 'location'), undefined);
      assert.ok(res.body.equals(data));
    } finally {
      await fs.stop();
      await removeDir(dir);
    }
  });
});
