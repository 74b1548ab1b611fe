// storage.redirect against the real Koa app: when a blob GET answers 307 to the driver's URL and when it streams.
// The driver is the inmemory one with a fake redirectURL, so every decision is seen without an object store.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import type { RawConfig } from '../../src/config/schema.js';
import type { RedirectOptions } from '../../src/storage/driver.js';
import { InMemoryDriver } from '../../src/storage/drivers/inmemory/index.js';
import { removeDir, startInProcess, tempDir, type InProcessRegistry } from '../helpers/harness.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The inmemory driver with a redirect URL that names the path; `answer` switches it to "cannot sign". */
class RedirectingDriver extends InMemoryDriver {
  readonly calls: Array<{ path: string; options: RedirectOptions }> = [];
  answer: 'url' | 'none' = 'url';

  redirectURL(path: string, options: RedirectOptions): Promise<string | undefined> {
    this.calls.push({ path, options });
    return Promise.resolve(
      this.answer === 'url'
        ? `https://bucket.example${path}?X-Signature=s&expires=${options.expiresInSeconds}`
        : undefined,
    );
  }
}

async function pushBlob(url: string, name: string, data: Uint8Array | string, authorization?: string): Promise<string> {
  const digest = sha256(data);
  const res = await fetch(`${url}/v2/${name}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    body: data,
    headers: authorization === undefined ? {} : { Authorization: authorization },
  });
  assert.equal(res.status, 201, `pushing a blob to ${name}`);
  return digest;
}

/** A GET that does not follow redirects. */
function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Response> {
  return fetch(url, { method, headers, redirect: 'manual' });
}

describe('blob redirects (storage.redirect)', function () {
  this.timeout(30_000);

  async function start(
    config: RawConfig = {},
  ): Promise<{ reg: InProcessRegistry; driver: RedirectingDriver; close(): Promise<void> }> {
    const driver = new RedirectingDriver();
    const reg = await startInProcess({ ...config, storage: { inmemory: {}, ...config.storage } }, driver);
    return { reg, driver, close: () => reg.close() };
  }

  describe('on by default, with a driver that hands out URLs', function () {
    let reg: InProcessRegistry;
    let driver: RedirectingDriver;
    const data = randomBytes(3000);
    let digest: string;

    before(async function () {
      ({ reg, driver } = await start());
      digest = await pushBlob(reg.url, 'app/web', data);
    });
    after(async function () {
      await reg?.close();
    });
    beforeEach(function () {
      driver.calls.length = 0;
      driver.answer = 'url';
    });

    it('answers a blob GET with 307 to the driver’s URL for the blob’s data, good for 20 minutes', async function () {
      const res = await get(`${reg.url}/v2/app/web/blobs/${digest}`);
      assert.equal(res.status, 307);
      const hex = digest.slice('sha256:'.length);
      assert.equal(
        res.headers.get('location'),
        `https://bucket.example/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data?X-Signature=s&expires=1200`,
      );
      assert.equal(res.headers.get('docker-content-digest'), digest);
      assert.equal(res.headers.get('content-length'), '0');
      assert.equal(res.headers.get('cache-control'), 'no-store', 'the URL expires, so the redirect is not cached');
      assert.equal(res.headers.get('etag'), null);
      assert.equal((await res.arrayBuffer()).byteLength, 0);
      assert.deepEqual(
        driver.calls.map((c) => c.options),
        [{ method: 'GET', expiresInSeconds: 1200 }],
      );
    });

    it('redirects a ranged GET too: the range goes to the object store with the client', async function () {
      const res = await get(`${reg.url}/v2/app/web/blobs/${digest}`, { Range: 'bytes=10-19' });
      assert.equal(res.status, 307);
      assert.ok(res.headers.get('location')?.startsWith('https://bucket.example/'));
    });

    it('never redirects a HEAD: it answers the size itself without asking the driver', async function () {
      const res = await get(`${reg.url}/v2/app/web/blobs/${digest}`, {}, 'HEAD');
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-length'), String(data.length));
      assert.equal(res.headers.get('location'), null);
      assert.equal(driver.calls.length, 0);
    });

    it('answers 304 to a matching If-None-Match rather than redirecting', async function () {
      const res = await get(`${reg.url}/v2/app/web/blobs/${digest}`, { 'If-None-Match': `"${digest}"` });
      assert.equal(res.status, 304);
      assert.equal(driver.calls.length, 0);
    });

    it('checks the blob exists in the repository before redirecting', async function () {
      const missing = await get(`${reg.url}/v2/app/web/blobs/${sha256('never pushed')}`);
      assert.equal(missing.status, 404);
      assert.equal(((await missing.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'BLOB_UNKNOWN');
      // The bytes exist in the registry, but are not linked into this repository.
      const other = await get(`${reg.url}/v2/app/other/blobs/${digest}`);
      assert.equal(other.status, 404);
      await other.arrayBuffer();
      assert.equal(driver.calls.length, 0);
    });

    it('streams the bytes itself when the driver cannot hand out a URL', async function () {
      driver.answer = 'none';
      const res = await get(`${reg.url}/v2/app/web/blobs/${digest}`);
      assert.equal(res.status, 200);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
      assert.equal(driver.calls.length, 1);
    });

    it('never redirects a manifest, by tag or by digest', async function () {
      const config = await pushBlob(reg.url, 'app/web', '{"architecture":"amd64","os":"linux"}');
      const manifest = JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 37 },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: data.length }],
      });
      const put = await fetch(`${reg.url}/v2/app/web/manifests/v1`, {
        method: 'PUT',
        body: manifest,
        headers: { 'Content-Type': OCI_MANIFEST },
      });
      assert.equal(put.status, 201);
      driver.calls.length = 0;
      for (const reference of ['v1', sha256(manifest)]) {
        const res = await get(`${reg.url}/v2/app/web/manifests/${reference}`, { Accept: OCI_MANIFEST });
        assert.equal(res.status, 200, reference);
        assert.equal(await res.text(), manifest);
      }
      assert.equal(driver.calls.length, 0);
    });

    it('counts redirects in registry_http_requests_total with code 307', async function () {
      await (await get(`${reg.url}/v2/app/web/blobs/${digest}`)).arrayBuffer();
      const metrics = await (await fetch(`${reg.debugUrl}/metrics`)).text();
      assert.match(metrics, /^registry_http_requests_total\{method="GET",route="blob",code="307"\} [1-9]/m);
    });
  });

  it('streams through Berth with storage.redirect.disable, never asking the driver', async function () {
    const { reg, driver, close } = await start({ storage: { redirect: { disable: true } } });
    try {
      const data = randomBytes(500);
      const digest = await pushBlob(reg.url, 'app/web', data);
      const res = await get(`${reg.url}/v2/app/web/blobs/${digest}`);
      assert.equal(res.status, 200);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
      assert.equal(driver.calls.length, 0);
    } finally {
      await close();
    }
  });

  it('hands the driver storage.redirect.expiry in seconds', async function () {
    const { reg, driver, close } = await start({ storage: { redirect: { expiry: '90s' } } });
    try {
      const digest = await pushBlob(reg.url, 'app/web', randomBytes(10));
      assert.equal((await get(`${reg.url}/v2/app/web/blobs/${digest}`)).status, 307);
      assert.deepEqual(driver.calls[0]?.options, { method: 'GET', expiresInSeconds: 90 });
    } finally {
      await close();
    }
  });

  it('never redirects on the filesystem driver, which has no redirect URL', async function () {
    const dir = await tempDir('berth-redirect-fs-');
    const reg = await startInProcess({ storage: { filesystem: { rootdirectory: dir } } });
    try {
      const data = randomBytes(2000);
      const digest = await pushBlob(reg.url, 'app/web', data);
      const res = await get(`${reg.url}/v2/app/web/blobs/${digest}`);
      assert.equal(res.status, 200);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
    } finally {
      await reg.close();
      await removeDir(dir);
    }
  });

  it('asks for credentials before redirecting, and redirects only clients that may pull', async function () {
    const dir = await tempDir('berth-redirect-auth-');
    const htpasswd = join(dir, 'htpasswd');
    await writeFile(htpasswd, `alice:${await bcrypt.hash('wonderland', 5)}\n`);
    const { reg, driver, close } = await start({
      auth: {
        htpasswd: { realm: 'Berth test', path: htpasswd },
        policy: { rules: [{ repository: 'private/**', access: { alice: ['pull', 'push'] } }] },
      },
    });
    try {
      const alice = `Basic ${Buffer.from('alice:wonderland').toString('base64')}`;
      const digest = await pushBlob(reg.url, 'private/app', randomBytes(100), alice);
      const anonymous = await get(`${reg.url}/v2/private/app/blobs/${digest}`);
      assert.equal(anonymous.status, 401);
      await anonymous.arrayBuffer();
      assert.equal(driver.calls.length, 0);
      const allowed = await get(`${reg.url}/v2/private/app/blobs/${digest}`, { Authorization: alice });
      assert.equal(allowed.status, 307);
    } finally {
      await close();
      await removeDir(dir);
    }
  });
});
