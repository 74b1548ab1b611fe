// HTTP tests of every endpoint of the distribution API, against the real Koa app started in-process.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { pino } from 'pino';
import { RequestState } from '../../src/registry/app.js';
import { removeDir, startInProcess, tempDir, type InProcessRegistry } from '../helpers/harness.js';
import { InMemoryDriver } from '../../src/storage/drivers/inmemory/index.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

interface Desc {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The OCI error code of a JSON error response (and checks it is one). */
async function errorOf(res: Response): Promise<{ code: string; detail: unknown }> {
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const body = (await res.json()) as { errors?: Array<{ code: string; detail?: unknown }> };
  const first = body.errors?.[0];
  assert.ok(first !== undefined, 'the body is an OCI error envelope');
  return { code: first.code, detail: first.detail };
}

async function expectError(res: Response, status: number, code: string): Promise<unknown> {
  assert.equal(res.status, status, `expected ${status} ${code}`);
  const err = await errorOf(res);
  assert.equal(err.code, code);
  return err.detail;
}

async function pushBlob(url: string, name: string, data: Buffer | string, mediaType = OCI_LAYER): Promise<Desc> {
  const bytes = Buffer.from(data);
  const digest = sha256(bytes);
  const res = await fetch(`${url}/v2/${name}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: bytes });
  assert.equal(res.status, 201, `pushing a blob to ${name}`);
  return { mediaType, digest, size: bytes.length };
}

async function putManifest(
  url: string,
  name: string,
  reference: string,
  manifest: unknown,
  contentType?: string,
): Promise<Response> {
  const body = typeof manifest === 'string' ? manifest : JSON.stringify(manifest);
  return fetch(`${url}/v2/${name}/manifests/${reference}`, {
    method: 'PUT',
    body,
    headers: contentType === undefined ? {} : { 'Content-Type': contentType },
  });
}

/** Pushes a config and a layer and an OCI image manifest tagged `tag`; returns the manifest's descriptor. */
async function pushImage(
  url: string,
  name: string,
  tag: string,
  extra: Record<string, unknown> = {},
): Promise<Desc & { body: string }> {
  const config = await pushBlob(url, name, `{"architecture":"amd64","os":"linux","tag":"${tag}"}`, OCI_CONFIG);
  const layer = await pushBlob(url, name, randomBytes(100));
  const body = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [layer], ...extra });
  const res = await putManifest(url, name, tag, body, OCI_MANIFEST);
  assert.equal(res.status, 201, `pushing ${name}:${tag}`);
  return { mediaType: OCI_MANIFEST, digest: sha256(body), size: Buffer.byteLength(body), body };
}

interface RawResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

/** A request with exactly these headers (fetch always adds Accept). */
function rawRequest(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A body sent with chunked transfer encoding (no Content-Length). */
function streamed(...parts: Buffer[]): { body: ReadableStream<Uint8Array>; duplex: 'half' } {
  const queue = [...parts];
  return {
    body: new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = queue.shift();
        if (next === undefined) controller.close();
        else controller.enqueue(new Uint8Array(next));
      },
    }),
    duplex: 'half',
  };
}

async function startSession(url: string, name: string): Promise<string> {
  const res = await fetch(`${url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  assert.equal(res.status, 202);
  const location = res.headers.get('location');
  assert.ok(location !== null);
  return location;
}

describe('registry HTTP API', function () {
  let reg: InProcessRegistry;
  let url: string;

  before(async function () {
    reg = await startInProcess({ storage: { delete: { enabled: true } } });
    url = reg.url;
  });

  after(async function () {
    await reg.close();
  });

  describe('GET /v2/', function () {
    it('answers 200 with an empty JSON object and the API version header', async function () {
      const res = await fetch(`${url}/v2/`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assert.deepEqual(await res.json(), {});
    });

    it('answers the base path without the trailing slash too', async function () {
      const res = await fetch(`${url}/v2`);
      assert.equal(res.status, 200);
    });
  });

  describe('blobs', function () {
    const name = 'blobs/repo';
    const data = Buffer.from('0123456789abcdefghij');
    let digest: string;

    before(async function () {
      digest = (await pushBlob(url, name, data)).digest;
    });

    it('serves a blob with its digest, ETag, length, type and range support', async function () {
      const res = await fetch(`${url}/v2/${name}/blobs/${digest}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-content-digest'), digest);
      assert.equal(res.headers.get('etag'), `"${digest}"`);
      assert.equal(res.headers.get('content-length'), String(data.length));
      assert.equal(res.headers.get('content-type'), 'application/octet-stream');
      assert.equal(res.headers.get('accept-ranges'), 'bytes');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
    });

    it('answers HEAD with the headers of GET and no body', async function () {
      const res = await fetch(`${url}/v2/${name}/blobs/${digest}`, { method: 'HEAD' });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-content-digest'), digest);
      assert.equal(res.headers.get('content-length'), String(data.length));
      assert.equal(res.headers.get('etag'), `"${digest}"`);
      assert.equal((await res.arrayBuffer()).byteLength, 0);
    });

    it('serves a byte range with 206 and Content-Range', async function () {
      const res = await fetch(`${url}/v2/${name}/blobs/${digest}`, { headers: { Range: 'bytes=2-5' } });
      assert.equal(res.status, 206);
      assert.equal(res.headers.get('content-range'), `bytes 2-5/${data.length}`);
      assert.equal(res.headers.get('content-length'), '4');
      assert.equal(Buffer.from(await res.arrayBuffer()).toString(), '2345');
    });

    it('serves a suffix range and an open-ended range', async function () {
      const suffix = await fetch(`${url}/v2/${name}/blobs/${digest}`, { headers: { Range: 'bytes=-3' } });
      assert.equal(suffix.status, 206);
      assert.equal(suffix.headers.get('content-range'), `bytes 17-19/${data.length}`);
      assert.equal(Buffer.from(await suffix.arrayBuffer()).toString(), 'hij');
      const open = await fetch(`${url}/v2/${name}/blobs/${digest}`, { headers: { Range: 'bytes=15-' } });
      assert.equal(open.status, 206);
      assert.equal(Buffer.from(await open.arrayBuffer()).toString(), 'fghij');
    });

    it('answers a range past the end with 416 and the size in Content-Range', async function () {
      const res = await fetch(`${url}/v2/${name}/blobs/${digest}`, { headers: { Range: 'bytes=20-30' } });
      await expectError(res, 416, 'RANGE_INVALID');
      assert.equal(res.headers.get('content-range'), `bytes */${data.length}`);
    });

    it('answers 304 when If-None-Match names the ETag', async function () {
      const res = await fetch(`${url}/v2/${name}/blobs/${digest}`, { headers: { 'If-None-Match': `"${digest}"` } });
      assert.equal(res.status, 304);
      assert.equal((await res.arrayBuffer()).byteLength, 0);
      const other = await fetch(`${url}/v2/${name}/blobs/${digest}`, {
        headers: { 'If-None-Match': `"${sha256('x')}"` },
      });
      assert.equal(other.status, 200);
      await other.arrayBuffer();
    });

    it('answers 304 when the ETag is one of a list in If-None-Match, or the list is *', async function () {
      for (const header of [`"${sha256('x')}", "${digest}"`, `W/"${digest}"`, '*']) {
        const res = await fetch(`${url}/v2/${name}/blobs/${digest}`, { headers: { 'If-None-Match': header } });
        assert.equal(res.status, 304, header);
        assert.equal(res.headers.get('etag'), `"${digest}"`);
        await res.arrayBuffer();
      }
    });

    it('answers 404 BLOB_UNKNOWN for a blob the repository does not have', async function () {
      const res = await fetch(`${url}/v2/${name}/blobs/${sha256('never pushed')}`);
      await expectError(res, 404, 'BLOB_UNKNOWN');
    });

    it('does not serve a blob of another repository', async function () {
      await pushBlob(url, 'blobs/other', 'only in other');
      const res = await fetch(`${url}/v2/${name}/blobs/${sha256('only in other')}`);
      await expectError(res, 404, 'BLOB_UNKNOWN');
    });

    it('deletes a blob with 202, after which it is unknown', async function () {
      const gone = await pushBlob(url, name, 'to be deleted');
      const res = await fetch(`${url}/v2/${name}/blobs/${gone.digest}`, { method: 'DELETE' });
      assert.equal(res.status, 202);
      assert.equal(res.headers.get('docker-content-digest'), gone.digest);
      await expectError(await fetch(`${url}/v2/${name}/blobs/${gone.digest}`), 404, 'BLOB_UNKNOWN');
      await expectError(
        await fetch(`${url}/v2/${name}/blobs/${gone.digest}`, { method: 'DELETE' }),
        404,
        'BLOB_UNKNOWN',
      );
    });

    it('refuses blob deletes with 405 UNSUPPORTED when storage.delete.enabled is false', async function () {
      const strict = await startInProcess();
      try {
        const blob = await pushBlob(strict.url, name, 'kept');
        const res = await fetch(`${strict.url}/v2/${name}/blobs/${blob.digest}`, { method: 'DELETE' });
        await expectError(res, 405, 'UNSUPPORTED');
        assert.equal((await fetch(`${strict.url}/v2/${name}/blobs/${blob.digest}`, { method: 'HEAD' })).status, 200);
      } finally {
        await strict.close();
      }
    });
  });

  describe('uploads', function () {
    const name = 'uploads/repo';

    it('starts a session with 202, Location, Range 0-0 and Docker-Upload-UUID', async function () {
      const res = await fetch(`${url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
      assert.equal(res.status, 202);
      const location = res.headers.get('location') ?? '';
      const id = res.headers.get('docker-upload-uuid') ?? '';
      assert.match(id, /^[0-9a-f-]{36}$/);
      assert.equal(location, `/v2/${name}/blobs/uploads/${id}`);
      assert.equal(res.headers.get('range'), '0-0');
      assert.equal(res.headers.get('content-length'), '0');
    });

    it('accepts a monolithic POST with ?digest= with 201 and the blob Location', async function () {
      const data = randomBytes(1000);
      const digest = sha256(data);
      const res = await fetch(`${url}/v2/${name}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('location'), `/v2/${name}/blobs/${digest}`);
      assert.equal(res.headers.get('docker-content-digest'), digest);
      const blob = await fetch(`${url}/v2/${name}/blobs/${digest}`);
      assert.deepEqual(Buffer.from(await blob.arrayBuffer()), data);
    });

    it('mounts a blob from another repository with 201', async function () {
      const blob = await pushBlob(url, 'uploads/source', 'mount me');
      const res = await fetch(`${url}/v2/${name}/blobs/uploads/?mount=${blob.digest}&from=uploads/source`, {
        method: 'POST',
      });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('location'), `/v2/${name}/blobs/${blob.digest}`);
      assert.equal(res.headers.get('docker-content-digest'), blob.digest);
      const got = await fetch(`${url}/v2/${name}/blobs/${blob.digest}`);
      assert.equal(Buffer.from(await got.arrayBuffer()).toString(), 'mount me');
    });

    it('falls back to a session (202) when the blob is not in the from repository', async function () {
      await pushBlob(url, 'uploads/source', 'something else');
      const res = await fetch(`${url}/v2/${name}/blobs/uploads/?mount=${sha256('not there')}&from=uploads/source`, {
        method: 'POST',
      });
      assert.equal(res.status, 202);
      assert.match(res.headers.get('location') ?? '', new RegExp(`^/v2/${name}/blobs/uploads/[0-9a-f-]{36}$`));
      await expectError(await fetch(`${url}/v2/${name}/blobs/${sha256('not there')}`), 404, 'BLOB_UNKNOWN');
    });

    it('falls back to a session (202) when from is missing or not a valid name, or mount is no digest', async function () {
      const blob = await pushBlob(url, 'uploads/source', 'mountable');
      for (const query of [
        `mount=${blob.digest}`,
        `mount=${blob.digest}&from=Not//Valid`,
        `mount=${blob.digest}&from=`,
        `mount=sha256:xyz&from=uploads/source`,
        `mount=&from=uploads/source`,
      ]) {
        const res = await fetch(`${url}/v2/uploads/fallback/blobs/uploads/?${query}`, { method: 'POST' });
        assert.equal(res.status, 202, query);
        assert.match(res.headers.get('location') ?? '', /\/blobs\/uploads\/[0-9a-f-]{36}$/, query);
      }
      // Nothing was mounted: the repository holds only upload sessions, so it is still unknown.
      await expectError(await fetch(`${url}/v2/uploads/fallback/blobs/${blob.digest}`), 404, 'NAME_UNKNOWN');
    });

    it('takes a streamed PATCH without Content-Range and reports the new Range', async function () {
      const location = await startSession(url, name);
      const a = randomBytes(3000);
      const b = randomBytes(2000);
      const res = await fetch(`${url}${location}`, { method: 'PATCH', ...streamed(a, b) });
      assert.equal(res.status, 202);
      assert.equal(res.headers.get('range'), '0-4999');
      assert.equal(res.headers.get('location'), location);
      const digest = sha256(Buffer.concat([a, b]));
      const put = await fetch(`${url}${location}?digest=${digest}`, { method: 'PUT' });
      assert.equal(put.status, 201);
      assert.equal(put.headers.get('docker-content-digest'), digest);
    });

    it('takes chunks in order with Content-Range and refuses an out-of-order chunk with 416 and Range', async function () {
      const location = await startSession(url, name);
      const first = await fetch(`${url}${location}`, {
        method: 'PATCH',
        body: 'abcd',
        headers: { 'Content-Range': '0-3', 'Content-Type': 'application/octet-stream' },
      });
      assert.equal(first.status, 202);
      assert.equal(first.headers.get('range'), '0-3');
      const skipped = await fetch(`${url}${location}`, {
        method: 'PATCH',
        body: 'ijkl',
        headers: { 'Content-Range': '8-11' },
      });
      await expectError(skipped, 416, 'RANGE_INVALID');
      assert.equal(skipped.headers.get('range'), '0-3');
      const repeated = await fetch(`${url}${location}`, {
        method: 'PATCH',
        body: 'abcd',
        headers: { 'Content-Range': '0-3' },
      });
      assert.equal(repeated.status, 416);
      assert.equal(repeated.headers.get('range'), '0-3');
      const second = await fetch(`${url}${location}`, {
        method: 'PATCH',
        body: 'efgh',
        headers: { 'Content-Range': '4-7' },
      });
      assert.equal(second.status, 202);
      assert.equal(second.headers.get('range'), '0-7');
      const put = await fetch(`${url}${location}?digest=${sha256('abcdefgh')}`, { method: 'PUT' });
      assert.equal(put.status, 201);
      const blob = await fetch(`${url}/v2/${name}/blobs/${sha256('abcdefgh')}`);
      assert.equal(await blob.text(), 'abcdefgh');
    });

    it('finishes an upload with a final chunk in the PUT', async function () {
      const location = await startSession(url, name);
      const patch = await fetch(`${url}${location}`, {
        method: 'PATCH',
        body: 'first-',
        headers: { 'Content-Range': '0-5' },
      });
      assert.equal(patch.status, 202);
      const digest = sha256('first-last');
      const put = await fetch(`${url}${location}?digest=${digest}`, {
        method: 'PUT',
        body: 'last',
        headers: { 'Content-Range': '6-9' },
      });
      assert.equal(put.status, 201);
      assert.equal(put.headers.get('location'), `/v2/${name}/blobs/${digest}`);
      assert.equal(await (await fetch(`${url}/v2/${name}/blobs/${digest}`)).text(), 'first-last');
    });

    it('finishes a session with the whole blob in the PUT (POST then PUT)', async function () {
      const location = await startSession(url, name);
      const data = randomBytes(4096);
      const put = await fetch(`${url}${location}?digest=${sha256(data)}`, { method: 'PUT', body: data });
      assert.equal(put.status, 201);
    });

    it('reports upload status with 204, Range and the upload id', async function () {
      const location = await startSession(url, name);
      const id = location.slice(location.lastIndexOf('/') + 1);
      const empty = await fetch(`${url}${location}`);
      assert.equal(empty.status, 204);
      assert.equal(empty.headers.get('range'), '0-0');
      await fetch(`${url}${location}`, { method: 'PATCH', body: 'twelve bytes' });
      const res = await fetch(`${url}${location}`);
      assert.equal(res.status, 204);
      assert.equal(res.headers.get('range'), '0-11');
      assert.equal(res.headers.get('docker-upload-uuid'), id);
      assert.equal(res.headers.get('location'), location);
    });

    it('cancels a session with 204, after which it is BLOB_UPLOAD_UNKNOWN', async function () {
      const location = await startSession(url, name);
      await fetch(`${url}${location}`, { method: 'PATCH', body: 'abandoned' });
      const res = await fetch(`${url}${location}`, { method: 'DELETE' });
      assert.equal(res.status, 204);
      await expectError(await fetch(`${url}${location}`), 404, 'BLOB_UPLOAD_UNKNOWN');
      await expectError(
        await fetch(`${url}${location}`, { method: 'PATCH', body: 'more' }),
        404,
        'BLOB_UPLOAD_UNKNOWN',
      );
      await expectError(
        await fetch(`${url}${location}?digest=${sha256('abandoned')}`, { method: 'PUT' }),
        404,
        'BLOB_UPLOAD_UNKNOWN',
      );
      await expectError(await fetch(`${url}${location}`, { method: 'DELETE' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    });

    it('refuses a PUT whose digest does not match with DIGEST_INVALID and keeps the session open', async function () {
      const location = await startSession(url, name);
      await fetch(`${url}${location}`, { method: 'PATCH', body: 'content' });
      await expectError(
        await fetch(`${url}${location}?digest=${sha256('other')}`, { method: 'PUT' }),
        400,
        'DIGEST_INVALID',
      );
      const status = await fetch(`${url}${location}`);
      assert.equal(status.status, 204);
      assert.equal(status.headers.get('range'), '0-6');
      assert.equal((await fetch(`${url}${location}?digest=${sha256('content')}`, { method: 'PUT' })).status, 201);
    });

    it('leaves a session as it was when the client aborts a PATCH midway', async function () {
      const dir = await tempDir();
      const disk = await startInProcess({ storage: { filesystem: { rootdirectory: dir } } });
      try {
        const location = await startSession(disk.url, name);
        assert.equal((await fetch(`${disk.url}${location}`, { method: 'PATCH', body: 'abcd' })).status, 202);
        const controller = new AbortController();
        let sent = 0;
        const body = new ReadableStream<Uint8Array>({
          pull(c) {
            if (sent++ < 8) {
              c.enqueue(new Uint8Array(randomBytes(128 * 1024)));
              return undefined;
            }
            // Hang up once the server has taken part of the chunk.
            setTimeout(() => controller.abort(), 20);
            return new Promise<void>(() => undefined);
          },
        });
        await assert.rejects(
          fetch(`${disk.url}${location}`, { method: 'PATCH', body, duplex: 'half', signal: controller.signal }),
        );
        // The server notices the hang-up asynchronously; the session must come back to exactly its four bytes.
        let range: string | null = null;
        for (let i = 0; i < 100 && range !== '0-3'; i++) {
          await new Promise((r) => setTimeout(r, 10));
          range = (await fetch(`${disk.url}${location}`)).headers.get('range');
        }
        assert.equal(range, '0-3');
        assert.equal(
          (
            await fetch(`${disk.url}${location}`, {
              method: 'PATCH',
              body: 'efgh',
              headers: { 'Content-Range': '4-7' },
            })
          ).status,
          202,
        );
        assert.equal(
          (await fetch(`${disk.url}${location}?digest=${sha256('abcdefgh')}`, { method: 'PUT' })).status,
          201,
        );
      } finally {
        await disk.close();
        await removeDir(dir);
      }
    });

    it('answers concurrent PUTs that finish one session with one 201 and BLOB_UPLOAD_UNKNOWN for the rest', async function () {
      const dir = await tempDir();
      const disk = await startInProcess({ storage: { filesystem: { rootdirectory: dir } } });
      try {
        for (let round = 0; round < 5; round++) {
          const location = await startSession(disk.url, name);
          const data = randomBytes(50_000);
          assert.equal((await fetch(`${disk.url}${location}`, { method: 'PATCH', body: data })).status, 202);
          const results = await Promise.all(
            [0, 1, 2].map(async () => {
              const res = await fetch(`${disk.url}${location}?digest=${sha256(data)}`, { method: 'PUT' });
              return { status: res.status, code: res.status === 201 ? '' : (await errorOf(res)).code };
            }),
          );
          assert.deepEqual(results.map((r) => `${r.status} ${r.code}`).sort(), [
            '201 ',
            '404 BLOB_UPLOAD_UNKNOWN',
            '404 BLOB_UPLOAD_UNKNOWN',
          ]);
          const blob = await fetch(`${disk.url}/v2/${name}/blobs/${sha256(data)}`);
          assert.deepEqual(Buffer.from(await blob.arrayBuffer()), data);
        }
      } finally {
        await disk.close();
        await removeDir(dir);
      }
    });

    it('completes a chunked upload whose PATCHes alternate between two registries on one storage', async function () {
      const dir = await tempDir();
      const a = await startInProcess({ storage: { filesystem: { rootdirectory: dir } } });
      const b = await startInProcess({ storage: { filesystem: { rootdirectory: dir } } });
      try {
        const chunks = [randomBytes(40_000), randomBytes(30_000), randomBytes(20_000), randomBytes(10_000)];
        const location = await startSession(a.url, name);
        let offset = 0;
        for (const [i, chunk] of chunks.entries()) {
          const target = i % 2 === 0 ? b : a;
          const res = await fetch(`${target.url}${location}`, {
            method: 'PATCH',
            body: chunk,
            headers: { 'Content-Range': `${offset}-${offset + chunk.length - 1}` },
          });
          assert.equal(res.status, 202, `chunk ${i}`);
          offset += chunk.length;
          assert.equal(res.headers.get('range'), `0-${offset - 1}`);
        }
        const whole = Buffer.concat(chunks);
        const digest = sha256(whole);
        await expectError(
          await fetch(`${a.url}${location}?digest=${sha256('wrong')}`, { method: 'PUT' }),
          400,
          'DIGEST_INVALID',
        );
        const put = await fetch(`${a.url}${location}?digest=${digest}`, { method: 'PUT' });
        assert.equal(put.status, 201);
        for (const r of [a, b]) {
          const got = await fetch(`${r.url}/v2/${name}/blobs/${digest}`);
          assert.deepEqual(Buffer.from(await got.arrayBuffer()), whole);
        }
      } finally {
        await a.close();
        await b.close();
        await removeDir(dir);
      }
    });
  });

  describe('manifests', function () {
    const name = 'manifests/repo';
    let image: Desc & { body: string };

    before(async function () {
      image = await pushImage(url, name, 'v1');
    });

    it('stores an OCI image manifest by tag and answers 201 with Location and digest', async function () {
      const config = await pushBlob(url, name, '{"os":"linux"}', OCI_CONFIG);
      const body = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [] });
      const res = await putManifest(url, name, 'fresh', body, OCI_MANIFEST);
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('docker-content-digest'), sha256(body));
      assert.equal(res.headers.get('location'), `/v2/${name}/manifests/${sha256(body)}`);
      assert.equal(res.headers.get('oci-subject'), null);
    });

    it('serves a manifest by tag and by digest with its type, digest and ETag', async function () {
      for (const ref of ['v1', image.digest]) {
        const res = await fetch(`${url}/v2/${name}/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
        assert.equal(res.status, 200, ref);
        assert.equal(res.headers.get('content-type'), OCI_MANIFEST);
        assert.equal(res.headers.get('docker-content-digest'), image.digest);
        assert.equal(res.headers.get('etag'), `"${image.digest}"`);
        assert.equal(res.headers.get('content-length'), String(image.size));
        assert.equal(await res.text(), image.body);
      }
    });

    it('answers HEAD on a manifest by tag and by digest with the headers and no body', async function () {
      for (const ref of ['v1', image.digest]) {
        const res = await fetch(`${url}/v2/${name}/manifests/${ref}`, { method: 'HEAD' });
        assert.equal(res.status, 200, ref);
        assert.equal(res.headers.get('docker-content-digest'), image.digest);
        assert.equal(res.headers.get('content-length'), String(image.size));
        assert.equal(res.headers.get('content-type'), OCI_MANIFEST);
        assert.equal((await res.arrayBuffer()).byteLength, 0);
      }
      const missing = await fetch(`${url}/v2/${name}/manifests/${sha256('no such manifest')}`, { method: 'HEAD' });
      assert.equal(missing.status, 404);
    });

    it('stores and serves an OCI index of manifests', async function () {
      const index = JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          {
            mediaType: OCI_MANIFEST,
            digest: image.digest,
            size: image.size,
            platform: { os: 'linux', architecture: 'amd64' },
          },
        ],
      });
      const res = await putManifest(url, name, 'multi', index, OCI_INDEX);
      assert.equal(res.status, 201);
      const got = await fetch(`${url}/v2/${name}/manifests/multi`, {
        headers: { Accept: `${OCI_INDEX}, ${OCI_MANIFEST}` },
      });
      assert.equal(got.status, 200);
      assert.equal(got.headers.get('content-type'), OCI_INDEX);
      assert.equal(got.headers.get('docker-content-digest'), sha256(index));
      assert.equal(await got.text(), index);
    });

    it('stores and serves a Docker schema 2 manifest and a Docker manifest list', async function () {
      const config = await pushBlob(url, name, '{"architecture":"arm64"}', DOCKER_CONFIG);
      const layer = await pushBlob(url, name, randomBytes(64), DOCKER_LAYER);
      const manifest = JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_MANIFEST, config, layers: [layer] });
      assert.equal((await putManifest(url, name, 'docker', manifest, DOCKER_MANIFEST)).status, 201);
      const list = JSON.stringify({
        schemaVersion: 2,
        mediaType: DOCKER_LIST,
        manifests: [
          {
            mediaType: DOCKER_MANIFEST,
            digest: sha256(manifest),
            size: manifest.length,
            platform: { os: 'linux', architecture: 'arm64' },
          },
        ],
      });
      assert.equal((await putManifest(url, name, 'docker-list', list, DOCKER_LIST)).status, 201);
      const m = await fetch(`${url}/v2/${name}/manifests/docker`, { headers: { Accept: DOCKER_MANIFEST } });
      assert.equal(m.headers.get('content-type'), DOCKER_MANIFEST);
      assert.equal(await m.text(), manifest);
      const l = await fetch(`${url}/v2/${name}/manifests/docker-list`, {
        headers: { Accept: `${DOCKER_LIST}, ${DOCKER_MANIFEST}` },
      });
      assert.equal(l.headers.get('content-type'), DOCKER_LIST);
      assert.equal(await l.text(), list);
    });

    it('stores an artifact with artifactType and subject and answers with OCI-Subject', async function () {
      const empty = await pushBlob(url, name, '{}', OCI_EMPTY);
      const artifact = JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.sbom',
        config: empty,
        layers: [],
        subject: { mediaType: OCI_MANIFEST, digest: image.digest, size: image.size },
      });
      const res = await putManifest(url, name, sha256(artifact), artifact, OCI_MANIFEST);
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('oci-subject'), image.digest);
      const got = await fetch(`${url}/v2/${name}/manifests/${sha256(artifact)}`);
      assert.equal(await got.text(), artifact);
    });

    it('accepts manifests without a mediaType field, as umoci and helm write them', async function () {
      const config = await pushBlob(url, name, '{"helm":"chart"}', 'application/vnd.cncf.helm.config.v1+json');
      const manifest = JSON.stringify({ schemaVersion: 2, config, layers: [] });
      const res = await putManifest(url, name, 'no-media-type', manifest, OCI_MANIFEST);
      assert.equal(res.status, 201);
      const got = await fetch(`${url}/v2/${name}/manifests/no-media-type`, { headers: { Accept: OCI_MANIFEST } });
      assert.equal(got.status, 200);
      assert.equal(got.headers.get('content-type'), OCI_MANIFEST);
      assert.equal(await got.text(), manifest);
      const index = JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(manifest), size: manifest.length }],
      });
      assert.equal((await putManifest(url, name, 'no-media-type-index', index, OCI_INDEX)).status, 201);
      const gotIndex = await fetch(`${url}/v2/${name}/manifests/no-media-type-index`);
      assert.equal(gotIndex.headers.get('content-type'), OCI_INDEX);
    });

    it('answers 404 MANIFEST_UNKNOWN when Accept names only other manifest types', async function () {
      const res = await fetch(`${url}/v2/${name}/manifests/v1`, {
        headers: { Accept: `${DOCKER_MANIFEST}, ${DOCKER_LIST}` },
      });
      await expectError(res, 404, 'MANIFEST_UNKNOWN');
    });

    it('serves a manifest to Accept */*, to a list that includes its type, and to no Accept at all', async function () {
      const star = await fetch(`${url}/v2/${name}/manifests/v1`, { headers: { Accept: '*/*' } });
      assert.equal(star.status, 200);
      await star.arrayBuffer();
      const listed = await fetch(`${url}/v2/${name}/manifests/v1`, {
        headers: { Accept: `${DOCKER_MANIFEST};q=0.9, ${OCI_MANIFEST}` },
      });
      assert.equal(listed.status, 200);
      await listed.arrayBuffer();
      const none = await rawRequest(url, 'GET', `/v2/${name}/manifests/v1`);
      assert.equal(none.status, 200);
      assert.equal(none.body.toString(), image.body);
    });

    it('answers 304 when If-None-Match names the manifest digest', async function () {
      const res = await fetch(`${url}/v2/${name}/manifests/v1`, { headers: { 'If-None-Match': `"${image.digest}"` } });
      assert.equal(res.status, 304);
      assert.equal(res.headers.get('docker-content-digest'), image.digest);
      assert.equal((await res.arrayBuffer()).byteLength, 0);
      const listed = await fetch(`${url}/v2/${name}/manifests/v1`, {
        headers: { 'If-None-Match': `"${sha256('x')}", W/"${image.digest}"` },
      });
      assert.equal(listed.status, 304);
      await listed.arrayBuffer();
      const other = await fetch(`${url}/v2/${name}/manifests/v1`, { headers: { 'If-None-Match': `"${sha256('x')}"` } });
      assert.equal(other.status, 200);
      await other.arrayBuffer();
    });

    it('stores a manifest by digest when the body matches it', async function () {
      const config = await pushBlob(url, name, '{"by":"digest"}', OCI_CONFIG);
      const body = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [] });
      const res = await putManifest(url, name, sha256(body), body, OCI_MANIFEST);
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('docker-content-digest'), sha256(body));
    });

    it('refuses a PUT by digest whose body does not match with 400 DIGEST_INVALID', async function () {
      const res = await putManifest(url, name, sha256('something else'), image.body, OCI_MANIFEST);
      await expectError(res, 400, 'DIGEST_INVALID');
    });

    it('refuses a manifest body over 4 MiB with 413', async function () {
      const padding = 'x'.repeat(4 * 1024 * 1024);
      const body = JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: image,
        layers: [],
        annotations: { padding },
      });
      const res = await putManifest(url, name, 'huge', body, OCI_MANIFEST);
      assert.equal(res.status, 413);
      await expectError(await fetch(`${url}/v2/${name}/manifests/huge`), 404, 'MANIFEST_UNKNOWN');
    });

    for (const framing of ['Content-Length', 'chunked'] as const) {
      it(`answers 413 to an oversized manifest (${framing}) while the body still arrives, then reads the rest and keeps the connection`, async function () {
        // A server that drops the connection instead leaves the rest of the body unsent for good.
        this.timeout(10_000);
        const agent = new Agent({ keepAlive: true, maxSockets: 1 });
        const { hostname, port } = new URL(url);
        const total = 5 * 1024 * 1024;
        // Sent before the answer: all of it when the length is declared, else enough to pass the limit.
        const first = framing === 'Content-Length' ? 64 * 1024 : 4 * 1024 * 1024 + 1024;
        try {
          const answer = await new Promise<{ status: number; code: string }>((resolve, reject) => {
            const req = request(
              {
                host: hostname,
                port,
                method: 'PUT',
                path: `/v2/${name}/manifests/huge`,
                agent,
                headers: {
                  'Content-Type': OCI_MANIFEST,
                  ...(framing === 'Content-Length' ? { 'Content-Length': String(total) } : {}),
                },
              },
              (res) => {
                const chunks: Buffer[] = [];
                res.on('data', (c: Buffer) => chunks.push(c));
                res.on('end', () => {
                  const code =
                    (JSON.parse(Buffer.concat(chunks).toString()) as { errors: Array<{ code: string }> }).errors[0]
                      ?.code ?? '';
                  // The rest of the body goes after the answer; the server must take it without resetting.
                  req.end(Buffer.alloc(total - first, 0x20), () => resolve({ status: res.statusCode ?? 0, code }));
                });
              },
            );
            req.on('error', reject);
            req.write(Buffer.alloc(first, 0x20));
          });
          assert.deepEqual(answer, { status: 413, code: 'SIZE_INVALID' });
          const next = await new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
            const req = request({ host: hostname, port, path: '/v2/', agent }, (res) => {
              res.resume();
              res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
            });
            req.on('error', reject);
            req.end();
          });
          assert.deepEqual(next, { status: 200, reused: true });
        } finally {
          agent.destroy();
        }
      });
    }

    it('refuses a manifest that references a missing blob with 400 MANIFEST_BLOB_UNKNOWN naming it', async function () {
      const config = await pushBlob(url, name, '{"missing":"layer"}', OCI_CONFIG);
      const missing = { mediaType: OCI_LAYER, digest: sha256('missing layer'), size: 13 };
      const res = await putManifest(
        url,
        name,
        'broken',
        { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [missing] },
        OCI_MANIFEST,
      );
      const detail = await expectError(res, 400, 'MANIFEST_BLOB_UNKNOWN');
      assert.deepEqual(detail, { digest: missing.digest });
      await expectError(await fetch(`${url}/v2/${name}/manifests/broken`), 404, 'MANIFEST_UNKNOWN');
    });

    it('refuses an index that references a missing manifest with 400 MANIFEST_BLOB_UNKNOWN naming it', async function () {
      const child = { mediaType: OCI_MANIFEST, digest: sha256('no such manifest'), size: 16 };
      const index = {
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [{ mediaType: OCI_MANIFEST, digest: image.digest, size: image.size }, child],
      };
      const detail = await expectError(
        await putManifest(url, name, 'broken-index', index, OCI_INDEX),
        400,
        'MANIFEST_BLOB_UNKNOWN',
      );
      assert.deepEqual(detail, { digest: child.digest });
    });

    it('deletes a tag with 202 and leaves the manifest reachable by digest', async function () {
      const m = await pushImage(url, name, 'untag-me');
      const res = await fetch(`${url}/v2/${name}/manifests/untag-me`, { method: 'DELETE' });
      assert.equal(res.status, 202);
      await expectError(await fetch(`${url}/v2/${name}/manifests/untag-me`), 404, 'MANIFEST_UNKNOWN');
      assert.equal((await fetch(`${url}/v2/${name}/manifests/${m.digest}`, { method: 'HEAD' })).status, 200);
    });

    it('deletes a manifest by digest with 202, with the tags that point to it', async function () {
      const m = await pushImage(url, name, 'delete-me');
      const res = await fetch(`${url}/v2/${name}/manifests/${m.digest}`, { method: 'DELETE' });
      assert.equal(res.status, 202);
      await expectError(await fetch(`${url}/v2/${name}/manifests/${m.digest}`), 404, 'MANIFEST_UNKNOWN');
      await expectError(await fetch(`${url}/v2/${name}/manifests/delete-me`), 404, 'MANIFEST_UNKNOWN');
      const tags = (await (await fetch(`${url}/v2/${name}/tags/list`)).json()) as { tags: string[] };
      assert.ok(!tags.tags.includes('delete-me'));
      await expectError(
        await fetch(`${url}/v2/${name}/manifests/${m.digest}`, { method: 'DELETE' }),
        404,
        'MANIFEST_UNKNOWN',
      );
    });

    it('refuses manifest deletes with 405 UNSUPPORTED when storage.delete.enabled is false', async function () {
      const strict = await startInProcess();
      try {
        const m = await pushImage(strict.url, name, 'kept');
        await expectError(
          await fetch(`${strict.url}/v2/${name}/manifests/${m.digest}`, { method: 'DELETE' }),
          405,
          'UNSUPPORTED',
        );
        await expectError(
          await fetch(`${strict.url}/v2/${name}/manifests/kept`, { method: 'DELETE' }),
          405,
          'UNSUPPORTED',
        );
        assert.equal((await fetch(`${strict.url}/v2/${name}/manifests/kept`, { method: 'HEAD' })).status, 200);
      } finally {
        await strict.close();
      }
    });
  });

  describe('tag list', function () {
    const name = 'tags/repo';
    const tags = ['alpha', 'beta', 'delta', 'gamma', 'latest'];

    before(async function () {
      const m = await pushImage(url, name, 'latest');
      for (const t of tags.filter((t) => t !== 'latest'))
        assert.equal((await putManifest(url, name, t, m.body, OCI_MANIFEST)).status, 201);
    });

    it('lists every tag in lexical order', async function () {
      const res = await fetch(`${url}/v2/${name}/tags/list`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('link'), null);
      assert.deepEqual(await res.json(), { name, tags });
    });

    it('pages with n and last and links to the next page until the end', async function () {
      const first = await fetch(`${url}/v2/${name}/tags/list?n=2`);
      assert.deepEqual(((await first.json()) as { tags: string[] }).tags, ['alpha', 'beta']);
      assert.equal(first.headers.get('link'), `</v2/${name}/tags/list?n=2&last=beta>; rel="next"`);
      const seen: string[] = [];
      let next: string | undefined = `/v2/${name}/tags/list?n=2`;
      let pages = 0;
      while (next !== undefined) {
        const res: Response = await fetch(`${url}${next}`);
        seen.push(...((await res.json()) as { tags: string[] }).tags);
        next = /^<([^>]+)>; rel="next"$/.exec(res.headers.get('link') ?? '')?.[1];
        pages++;
      }
      assert.deepEqual(seen, tags);
      assert.equal(pages, 3);
    });

    it('starts after last when given', async function () {
      const res = await fetch(`${url}/v2/${name}/tags/list?last=beta`);
      assert.deepEqual(((await res.json()) as { tags: string[] }).tags, ['delta', 'gamma', 'latest']);
      const page = await fetch(`${url}/v2/${name}/tags/list?n=3&last=beta`);
      assert.deepEqual(((await page.json()) as { tags: string[] }).tags, ['delta', 'gamma', 'latest']);
      assert.equal(page.headers.get('link'), null);
    });

    it('answers 404 NAME_UNKNOWN for a repository nothing was pushed to', async function () {
      await expectError(await fetch(`${url}/v2/tags/nothing-here/tags/list`), 404, 'NAME_UNKNOWN');
    });
  });

  describe('catalog', function () {
    it('lists repositories in order with n, last and a Link to the next page', async function () {
      const own = await startInProcess();
      try {
        const names = ['cat/a', 'cat/b', 'cat/c/nested', 'cat/d', 'zeta'];
        for (const n of names) await pushImage(own.url, n, 'latest');
        // A repository with only an upload session in progress is not listed.
        await startSession(own.url, 'cat/uploading');
        const all = await fetch(`${own.url}/v2/_catalog`);
        assert.deepEqual(await all.json(), { repositories: names });
        const first = await fetch(`${own.url}/v2/_catalog?n=2`);
        assert.deepEqual(await first.json(), { repositories: ['cat/a', 'cat/b'] });
        assert.equal(first.headers.get('link'), `</v2/_catalog?n=2&last=${encodeURIComponent('cat/b')}>; rel="next"`);
        const seen: string[] = [];
        let next: string | undefined = '/v2/_catalog?n=2';
        while (next !== undefined) {
          const res: Response = await fetch(`${own.url}${next}`);
          seen.push(...((await res.json()) as { repositories: string[] }).repositories);
          next = /^<([^>]+)>; rel="next"$/.exec(res.headers.get('link') ?? '')?.[1];
        }
        assert.deepEqual(seen, names);
        const after = await fetch(`${own.url}/v2/_catalog?last=cat/c/nested`);
        assert.deepEqual(await after.json(), { repositories: ['cat/d', 'zeta'] });
      } finally {
        await own.close();
      }
    });
  });

  describe('referrers', function () {
    const name = 'referrers/repo';
    let subject: Desc & { body: string };
    let sbom: string;
    let signature: string;

    async function pushReferrer(artifactType: string, annotations?: Record<string, string>): Promise<string> {
      const empty = await pushBlob(url, name, '{}', OCI_EMPTY);
      const body = JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType,
        config: empty,
        layers: [await pushBlob(url, name, `payload of ${artifactType}`, 'application/octet-stream')],
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
        ...(annotations === undefined ? {} : { annotations }),
      });
      const res = await putManifest(url, name, sha256(body), body, OCI_MANIFEST);
      assert.equal(res.status, 201);
      return body;
    }

    before(async function () {
      subject = await pushImage(url, name, 'v1');
      sbom = await pushReferrer('application/vnd.example.sbom', { 'org.example': 'yes' });
      signature = await pushReferrer('application/vnd.example.signature');
    });

    it('lists the referrers of a manifest as an OCI index of descriptors', async function () {
      const res = await fetch(`${url}/v2/${name}/referrers/${subject.digest}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), OCI_INDEX);
      assert.equal(res.headers.get('oci-filters-applied'), null);
      const index = (await res.json()) as {
        schemaVersion: number;
        mediaType: string;
        manifests: Array<Record<string, unknown>>;
      };
      assert.equal(index.schemaVersion, 2);
      assert.equal(index.mediaType, OCI_INDEX);
      const byDigest = new Map(index.manifests.map((m) => [m['digest'], m]));
      assert.equal(index.manifests.length, 2);
      assert.deepEqual(byDigest.get(sha256(sbom)), {
        mediaType: OCI_MANIFEST,
        digest: sha256(sbom),
        size: Buffer.byteLength(sbom),
        artifactType: 'application/vnd.example.sbom',
        annotations: { 'org.example': 'yes' },
      });
      assert.deepEqual(byDigest.get(sha256(signature)), {
        mediaType: OCI_MANIFEST,
        digest: sha256(signature),
        size: Buffer.byteLength(signature),
        artifactType: 'application/vnd.example.signature',
      });
    });

    it('filters by artifactType and says so in OCI-Filters-Applied', async function () {
      const res = await fetch(
        `${url}/v2/${name}/referrers/${subject.digest}?artifactType=application/vnd.example.signature`,
      );
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('oci-filters-applied'), 'artifactType');
      const index = (await res.json()) as { manifests: Array<{ digest: string }> };
      assert.deepEqual(
        index.manifests.map((m) => m.digest),
        [sha256(signature)],
      );
    });

    it('answers an empty index for a subject without referrers', async function () {
      const res = await fetch(`${url}/v2/${name}/referrers/${sha256('no referrers')}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), OCI_INDEX);
      assert.deepEqual(await res.json(), { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
    });

    it('drops a referrer from the list when it is deleted', async function () {
      const extra = await pushReferrer('application/vnd.example.temporary');
      const before = (await (await fetch(`${url}/v2/${name}/referrers/${subject.digest}`)).json()) as {
        manifests: Array<{ digest: string }>;
      };
      assert.ok(before.manifests.some((m) => m.digest === sha256(extra)));
      assert.equal((await fetch(`${url}/v2/${name}/manifests/${sha256(extra)}`, { method: 'DELETE' })).status, 202);
      const after = (await (await fetch(`${url}/v2/${name}/referrers/${subject.digest}`)).json()) as {
        manifests: Array<{ digest: string }>;
      };
      assert.deepEqual(after.manifests.map((m) => m.digest).sort(), [sha256(sbom), sha256(signature)].sort());
    });
  });

  describe('read-only mode', function () {
    let driver: InMemoryDriver;
    let ro: InProcessRegistry;
    let image: Desc & { body: string };
    let session: string;

    before(async function () {
      driver = new InMemoryDriver();
      const rw = await startInProcess({ storage: { delete: { enabled: true } } }, driver);
      image = await pushImage(rw.url, 'ro/repo', 'v1');
      session = await startSession(rw.url, 'ro/repo');
      await rw.close();
      ro = await startInProcess(
        { storage: { delete: { enabled: true }, maintenance: { readonly: { enabled: true } } } },
        driver,
      );
    });

    after(async function () {
      await ro.close();
    });

    it('still serves reads', async function () {
      assert.equal((await fetch(`${ro.url}/v2/ro/repo/manifests/v1`)).status, 200);
      assert.equal((await fetch(`${ro.url}/v2/ro/repo/tags/list`)).status, 200);
      assert.equal((await fetch(`${ro.url}${session}`)).status, 204);
    });

    it('refuses every write with 405 UNSUPPORTED', async function () {
      const config = JSON.parse(image.body) as { config: Desc };
      const writes: Array<[string, string, RequestInit?]> = [
        ['POST', '/v2/ro/repo/blobs/uploads/'],
        ['POST', `/v2/ro/repo/blobs/uploads/?digest=${sha256('x')}`, { body: 'x' }],
        ['POST', `/v2/ro/other/blobs/uploads/?mount=${config.config.digest}&from=ro/repo`],
        ['PATCH', session, { body: 'chunk' }],
        ['PUT', `${session}?digest=${sha256('')}`],
        ['DELETE', session],
        ['PUT', '/v2/ro/repo/manifests/v2', { body: image.body, headers: { 'Content-Type': OCI_MANIFEST } }],
        ['DELETE', `/v2/ro/repo/manifests/${image.digest}`],
        ['DELETE', '/v2/ro/repo/manifests/v1'],
        ['DELETE', `/v2/ro/repo/blobs/${config.config.digest}`],
      ];
      for (const [method, path, init] of writes) {
        const res = await fetch(`${ro.url}${path}`, { method, ...init });
        assert.equal(res.status, 405, `${method} ${path}`);
        assert.equal((await errorOf(res)).code, 'UNSUPPORTED');
      }
      assert.equal((await fetch(`${ro.url}/v2/ro/repo/manifests/v1`)).status, 200);
      assert.equal((await fetch(`${ro.url}${session}`)).status, 204);
      await expectError(await fetch(`${ro.url}/v2/ro/other/blobs/${config.config.digest}`), 404, 'NAME_UNKNOWN');
    });
  });

  describe('errors and routing', function () {
    it('answers an unknown endpoint with 404 and a JSON error', async function () {
      await expectError(await fetch(`${url}/v3/`), 404, 'UNSUPPORTED');
      await expectError(await fetch(`${url}/v2/repo/unknown/thing`), 404, 'UNSUPPORTED');
    });

    it('answers a method the endpoint lacks with 405 and Allow', async function () {
      const res = await fetch(`${url}/v2/some/repo/tags/list`, { method: 'POST' });
      await expectError(res, 405, 'UNSUPPORTED');
      assert.equal(res.headers.get('allow'), 'GET, HEAD');
    });

    it('echoes a well-formed X-Request-Id and makes one up otherwise', async function () {
      const given = await fetch(`${url}/v2/`, { headers: { 'X-Request-Id': 'req-123' } });
      assert.equal(given.headers.get('x-request-id'), 'req-123');
      const made = await fetch(`${url}/v2/`, { headers: { 'X-Request-Id': 'bad id with spaces' } });
      assert.match(made.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    });
  });

  describe('debug listener', function () {
    it('answers /healthz and /readyz with 200', async function () {
      const health = await fetch(`${reg.debugUrl}/healthz`);
      assert.equal(health.status, 200);
      assert.deepEqual(await health.json(), { status: 'ok' });
      const ready = await fetch(`${reg.debugUrl}/readyz`);
      assert.equal(ready.status, 200);
      const body = (await ready.json()) as { status: string; checks: Record<string, string> };
      assert.equal(body.status, 'ok');
      assert.equal(body.checks['storage'], 'ok');
    });

    it('exports registry_http_requests_total for answered requests on /metrics', async function () {
      await (await fetch(`${url}/v2/`)).arrayBuffer();
      // The counter moves when the response closes, which may be just after the client has it.
      let text = '';
      for (let i = 0; i < 50; i++) {
        const res = await fetch(`${reg.debugUrl}/metrics`);
        assert.equal(res.status, 200);
        text = await res.text();
        if (/^registry_http_requests_total\{[^}]*route="base"[^}]*\} [1-9]/m.test(text)) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.match(text, /^registry_http_requests_total\{method="GET",route="base",code="200"\} [1-9]\d*$/m);
      assert.match(text, /^registry_http_request_duration_seconds_bucket\{/m);
    });

    it('answers unknown debug paths with 404', async function () {
      assert.equal((await fetch(`${reg.debugUrl}/nope`)).status, 404);
    });
  });
});

describe('RequestState', function () {
  it('makes the request logger on first use, once, with the request id, through a getter it shares with every request', function () {
    const lines: string[] = [];
    const root = pino({ level: 'info', base: null }, { write: (line: string) => void lines.push(line) });
    const a = new RequestState(root, 'req-a');
    const b = new RequestState(root, 'req-b');
    assert.equal(a.route, 'unknown');
    // No accessor of its own: one defined per request gave each state its own hidden class, which held the request
    // from old space and made every request's objects survive young-generation collections.
    assert.equal(Object.getOwnPropertyDescriptor(a, 'log'), undefined);
    assert.deepEqual(Object.keys(a), Object.keys(b));
    assert.equal(lines.length, 0);
    assert.equal(a.log, a.log, 'one child logger per request');
    a.log.info('first');
    b.log.info('second');
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { reqId: string; msg: string }).reqId),
      ['req-a', 'req-b'],
    );
  });
});
