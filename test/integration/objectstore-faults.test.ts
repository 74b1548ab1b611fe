// Object storage faults, against real servers: `berth serve` on the s3 driver talks to SeaweedFS through a Toxiproxy
// proxy that the tests cut mid-push and mid-pull; a bucket is deleted under a running registry; registries start
// with a wrong endpoint and a wrong region; and stored objects are changed behind Berth's back (on s3 and on the
// filesystem driver, whose send path differs). Whatever happens, a client gets a clean error or a cut connection,
// never a complete response with the wrong bytes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { removeDir, spawnRegistry, tempDir, type ChildRegistry } from '../helpers/harness.js';
import {
  blobDataPath,
  header,
  httpRequest,
  makeSmallImage,
  openRequest,
  pushBlob,
  pushSmallImage,
  sha256,
  OCI_MANIFEST,
  type HttpResponse,
  type SmallImage,
} from '../helpers/images.js';
import { freePort } from '../helpers/redis.js';
import { startSeaweedS3, type SeaweedS3 } from '../helpers/seaweedfs.js';
import { startToxiproxy, type Toxiproxy } from '../helpers/toxiproxy.js';

const MiB = 1024 * 1024;
/** No fault may leave a client waiting longer than this. */
const CLIENT_BOUND_MS = 120_000;
const MISMATCH = 'registry_storage_digest_mismatch_total';
/** A store that stops sending mid-body must be given up on within this (a read timeout of the driver's). */
const HUNG_STORE_BOUND_MS = 90_000;

/** Polls `check` every 200 ms until it returns true, for at most `ms`; fails with `what` otherwise. */
async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The value of a series in a Prometheus text exposition; 0 when the series is absent. */
async function metric(debugUrl: string, series: string): Promise<number> {
  const text = await (await fetch(`${debugUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** Asserts an OCI error envelope with a 5xx status and no stack trace; returns its first code. */
function assertCleanError(res: HttpResponse, what: string): string {
  const text = res.body.toString();
  assert.ok(res.status >= 500 && res.status < 600, `${what}: status ${res.status} ${text.slice(0, 500)}`);
  assert.match(header(res, 'content-type') ?? '', /application\/json/, what);
  assert.doesNotMatch(text, /\n\s+at |\.js:\d+/, `${what}: a stack trace reached the client: ${text}`);
  const body = JSON.parse(text) as { errors?: Array<{ code?: unknown; message?: unknown }> };
  const first = body.errors?.[0];
  assert.ok(first !== undefined && typeof first.code === 'string' && typeof first.message === 'string', text);
  return first.code;
}

interface Pulled {
  readonly status: number;
  /** Every byte the client received. */
  readonly body: Buffer;
  /** Whether the response ended normally (all of its Content-Length arrived). */
  readonly complete: boolean;
  readonly error: string | undefined;
}

/**
 * A GET read as a client reads it, bounded by CLIENT_BOUND_MS. `onProgress` runs once when `afterBytes` have arrived,
 * with the response paused until it resolves (to cut the store while the response is under way).
 */
function pull(
  url: string,
  afterBytes = Infinity,
  onProgress?: () => Promise<void>,
  boundMs = CLIENT_BOUND_MS,
): Promise<Pulled> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let status = 0;
    let settled = false;
    const done = (complete: boolean, error?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        status,
        body: Buffer.concat(chunks),
        complete,
        error: error === undefined ? undefined : error instanceof Error ? error.message : String(error),
      });
    };
    const req = request(url, { agent: false }, (res) => {
      status = res.statusCode ?? 0;
      let fired = false;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        received += c.length;
        if (!fired && onProgress !== undefined && received >= afterBytes) {
          fired = true;
          res.pause();
          onProgress().then(
            () => res.resume(),
            (err: unknown) => {
              req.destroy();
              done(false, err);
            },
          );
        }
      });
      res.once('end', () => done(res.complete));
      res.once('error', (err) => done(false, err));
      res.once('close', () => done(res.complete, res.complete ? undefined : 'connection closed early'));
    });
    const timer = setTimeout(() => {
      req.destroy();
      done(false, `no end within ${boundMs} ms`);
    }, boundMs);
    req.once('error', (err) => done(false, err));
    req.end();
  });
}

/**
 * Asserts that a pull was cut, without hanging, before all of `expected` arrived; and, unless the stored bytes were
 * changed where the client may already have got them (only the last chunk is held back), that it got a prefix.
 */
function assertCut(got: Pulled, expected: Buffer, what: string, prefix = true): void {
  assert.ok(got.error === undefined || !/no end within/.test(got.error), `${what}: the client hung (${got.error})`);
  assert.equal(got.complete, false, `${what}: a complete response (${got.body.length} bytes, status ${got.status})`);
  assert.ok(got.body.length < expected.length, `${what}: all ${got.body.length} bytes arrived`);
  if (prefix)
    assert.ok(got.body.equals(expected.subarray(0, got.body.length)), `${what}: the bytes that arrived are no prefix`);
}

describe('object store faults: s3 (SeaweedFS behind Toxiproxy) and filesystem @integration', function () {
  this.timeout(600_000);

  let s3: SeaweedS3;
  let toxi: Toxiproxy;
  /** The proxy's `host:port`, which the registries under test use as their endpoint. */
  let proxied: string;
  let bucket: string;
  let work: string;
  const registries: ChildRegistry[] = [];

  function s3Env(overrides: Record<string, string> = {}): Record<string, string> {
    return {
      REGISTRY_STORAGE: 's3',
      REGISTRY_STORAGE_S3_REGIONENDPOINT: `http://${proxied}`,
      REGISTRY_STORAGE_S3_REGION: s3.region,
      REGISTRY_STORAGE_S3_FORCEPATHSTYLE: 'true',
      REGISTRY_STORAGE_S3_BUCKET: bucket,
      REGISTRY_STORAGE_S3_ROOTDIRECTORY: '/registry',
      REGISTRY_STORAGE_S3_ACCESSKEY: s3.accessKey,
      REGISTRY_STORAGE_S3_SECRETKEY: s3.secretKey,
      REGISTRY_STORAGE_S3_CHUNKSIZE: String(5 * MiB),
      // Bytes go through Berth, which is what these tests watch.
      REGISTRY_STORAGE_REDIRECT_DISABLE: 'true',
      ...overrides,
    };
  }

  async function spawn(env: Record<string, string>): Promise<ChildRegistry> {
    const registry = await spawnRegistry(env);
    registries.push(registry);
    return registry;
  }

  /** The object key of a blob's data under the registries' root directory. */
  function blobKey(digest: string): string {
    const hex = digest.slice('sha256:'.length);
    return `registry/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
  }

  /** Waits (bounded) until the log holds a line with `msg` that matches `pattern` in its JSON. */
  async function logLine(registry: ChildRegistry, msg: string, pattern: RegExp): Promise<Record<string, unknown>> {
    let line: Record<string, unknown> | undefined;
    await until(`a "${msg}" log line`, 20_000, async () => {
      line = registry.logs.find((l) => l['msg'] === msg && pattern.test(JSON.stringify(l)));
      return line !== undefined;
    });
    assert.ok(line !== undefined);
    return line;
  }

  before(async function () {
    s3 = await startSeaweedS3();
    bucket = await s3.createBucket();
    toxi = await startToxiproxy();
    proxied = await toxi.proxy('s3', new URL(s3.endpoint).host);
    work = await tempDir('berth-objectstore-faults-');
  });

  after(async function () {
    for (const r of registries) await r.stop();
    await toxi?.stop();
    await s3?.stop();
    if (work !== undefined) await removeDir(work);
  });

  afterEach(async function () {
    // Whatever a test did to the link, the next one starts with a clean one.
    await toxi.enable('s3', true).catch(() => undefined);
  });

  describe('the store going away under a running registry', function () {
    let registry: ChildRegistry;

    before(async function () {
      registry = await spawn(s3Env());
    });

    it('fails a push cut mid-body cleanly, shows no part of the blob, and takes the retried push', async function () {
      const blob = randomBytes(48 * MiB + 17);
      const digest = sha256(blob);
      const url = `${registry.url}/v2/faults/push/blobs/uploads/?digest=${digest}`;
      const upload = openRequest(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': blob.length },
        timeoutMs: CLIENT_BOUND_MS,
      });
      const started = Date.now();
      // A third of the body first, so that parts are on their way to the store; then the store goes away.
      let sent = 0;
      let writeError: unknown;
      try {
        for (; sent < blob.length; sent += 4 * MiB) {
          if (sent === 16 * MiB) await toxi.enable('s3', false);
          await upload.write(blob.subarray(sent, Math.min(sent + 4 * MiB, blob.length)));
        }
      } catch (err) {
        writeError = err; // the registry may answer and close before the body is all sent
      }
      let answer: HttpResponse | undefined;
      let cut: unknown;
      try {
        answer = await upload.finish();
      } catch (err) {
        cut = err;
      }
      const took = Date.now() - started;
      assert.ok(took < CLIENT_BOUND_MS, `the push took ${took} ms`);
      if (answer !== undefined) {
        const code = assertCleanError(answer, 'the push while the store is down');
        console.log(`      push cut at ${sent >> 20} MiB: ${answer.status} ${code} after ${took} ms`);
      } else {
        console.log(`      push cut at ${sent >> 20} MiB: connection cut (${String(cut)}, ${String(writeError)})`);
      }

      await toxi.enable('s3', true);
      await until('/readyz with the store back', 30_000, async () => (await fetch(`${registry.debugUrl}/readyz`)).ok);
      const head = await httpRequest(`${registry.url}/v2/faults/push/blobs/${digest}`, { method: 'HEAD' });
      assert.equal(head.status, 404, 'a blob from the failed push is visible');
      // Nor in the global store, where any repository could link it.
      const stored = await s3.client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: blobKey(digest).replace(/data$/, '') }),
      );
      assert.deepEqual(
        (stored.Contents ?? []).map((o) => o.Key),
        [],
        'the failed push left bytes in the blob store',
      );

      assert.equal(await pushBlob(registry.url, 'faults/push', blob), digest);
      const back = await pull(`${registry.url}/v2/faults/push/blobs/${digest}`);
      assert.equal(back.status, 200);
      assert.ok(back.complete && back.body.equals(blob), 'the retried push does not pull back byte for byte');
    });

    it('cuts a pull whose store resets mid-body: the client holds a prefix, never a complete response', async function () {
      const blob = randomBytes(64 * MiB + 5);
      const digest = await pushBlob(registry.url, 'faults/pull', blob);
      let toxic = '';
      const started = Date.now();
      const got = await pull(`${registry.url}/v2/faults/pull/blobs/${digest}`, 4 * MiB, async () => {
        toxic = await toxi.resetPeer('s3', 'downstream');
        await toxi.enable('s3', false);
      });
      console.log(
        `      pull cut: ${got.body.length >> 20} of ${blob.length >> 20} MiB, status ${got.status}, ` +
          `${got.error ?? 'no error'}, after ${Date.now() - started} ms`,
      );
      assert.equal(got.status, 200);
      assertCut(got, blob, 'the pull through a reset store');

      await toxi.removeToxic('s3', toxic);
      await toxi.enable('s3', true);
      const again = await pull(`${registry.url}/v2/faults/pull/blobs/${digest}`);
      assert.ok(again.complete && again.body.equals(blob), 'the blob does not pull whole once the store is back');
    });

    it('cuts a pull whose store hangs mid-body, within a bound', async function () {
      const blob = randomBytes(32 * MiB + 9);
      const digest = await pushBlob(registry.url, 'faults/hang', blob);
      let toxic = '';
      const started = Date.now();
      // Bytes stop flowing from the store, and its connections stay open: only a timeout ends the wait.
      const got = await pull(
        `${registry.url}/v2/faults/hang/blobs/${digest}`,
        4 * MiB,
        async () => {
          toxic = await toxi.timeout('s3', 'downstream', 0);
        },
        HUNG_STORE_BOUND_MS,
      );
      const took = Date.now() - started;
      await toxi.removeToxic('s3', toxic);
      console.log(`      pull from a hung store: ${got.body.length >> 20} MiB, ${got.error ?? 'no error'}, ${took} ms`);
      assertCut(got, blob, 'the pull from a hung store');
    });

    it('answers with OCI errors while the store is down, and /readyz says so', async function () {
      const image = makeSmallImage('faults-down');
      await pushSmallImage(registry.url, 'faults/down', 'v1', image);
      await toxi.enable('s3', false);
      const started = Date.now();
      const manifest = await httpRequest(`${registry.url}/v2/faults/down/manifests/v1`, {
        headers: { Accept: OCI_MANIFEST },
        timeoutMs: CLIENT_BOUND_MS,
      });
      assertCleanError(manifest, 'a manifest GET while the store is down');
      const upload = await httpRequest(`${registry.url}/v2/faults/down/blobs/uploads/`, {
        method: 'POST',
        timeoutMs: CLIENT_BOUND_MS,
      });
      assertCleanError(upload, 'an upload start while the store is down');
      assert.ok(Date.now() - started < CLIENT_BOUND_MS);
      const ready = await fetch(`${registry.debugUrl}/readyz`);
      assert.equal(ready.status, 503, await ready.text());
    });
  });

  describe('a bucket deleted under a running registry', function () {
    let doomed: string;
    let registry: ChildRegistry;
    let image: SmallImage;

    before(async function () {
      doomed = await s3.createBucket();
      registry = await spawn(s3Env({ REGISTRY_STORAGE_S3_BUCKET: doomed }));
      image = makeSmallImage('faults-doomed');
      await pushSmallImage(registry.url, 'faults/doomed', 'v1', image);
      // S3 deletes only empty buckets: first every object, then the bucket.
      for (let page = 0; page < 100; page++) {
        const list = await s3.client.send(new ListObjectsV2Command({ Bucket: doomed, MaxKeys: 1000 }));
        const keys = (list.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ Key: o.Key }]));
        if (keys.length === 0) break;
        await s3.client.send(new DeleteObjectsCommand({ Bucket: doomed, Delete: { Objects: keys } }));
      }
      await s3.client.send(new DeleteBucketCommand({ Bucket: doomed }));
    });

    it('is not ready, and /readyz names the bucket setting', async function () {
      const res = await fetch(`${registry.debugUrl}/readyz`);
      const body = await res.text();
      assert.equal(res.status, 503, body);
      assert.match(body, /storage\.s3\.bucket/);
      assert.ok(body.includes(doomed), body);
    });

    it('answers pulls with OCI JSON errors, without a stack trace', async function () {
      const [layer] = [...image.blobs.keys()];
      assert.ok(layer !== undefined);
      const manifest = await httpRequest(`${registry.url}/v2/faults/doomed/manifests/v1`, {
        headers: { Accept: OCI_MANIFEST },
      });
      assertCleanError(manifest, 'manifest GET');
      // The blob's descriptor may be cached: then the read itself must fail cleanly, before any byte goes out.
      assertCleanError(await httpRequest(`${registry.url}/v2/faults/doomed/blobs/${layer}`), 'blob GET');
      const tags = await httpRequest(`${registry.url}/v2/faults/doomed/tags/list`);
      assertCleanError(tags, 'tags list');
    });

    it('answers a push with an OCI JSON error, unless the store brings the bucket back', async function () {
      // Run last: SeaweedFS, unlike AWS S3, creates a missing bucket on a PutObject, so a write may succeed (and the
      // bucket is back). A store that is unreachable for pushes is covered by the store going away, above.
      const data = randomBytes(64 * 1024);
      const push = await httpRequest(`${registry.url}/v2/faults/doomed/blobs/uploads/?digest=${sha256(data)}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream' },
        body: data,
      });
      if (push.status === 201) {
        const buckets = await s3.client.send(new ListBucketsCommand({}));
        assert.ok(
          buckets.Buckets?.some((b) => b.Name === doomed),
          'a push succeeded without a bucket',
        );
        console.log('      SeaweedFS recreated the deleted bucket on the push, which then succeeded');
        const back = await httpRequest(`${registry.url}/v2/faults/doomed/blobs/${sha256(data)}`);
        assert.ok(back.status === 200 && back.body.equals(data));
      } else {
        assertCleanError(push, 'monolithic push');
      }
    });
  });

  describe('a registry started against the wrong place', function () {
    let fakeAws: Server | undefined;

    after(async function () {
      if (fakeAws !== undefined) await new Promise((r) => fakeAws?.close(r));
    });

    /** /readyz answers 503 naming `setting`, and the log says so once, in one line, at start. */
    async function assertNamed(registry: ChildRegistry, setting: RegExp): Promise<void> {
      // A probe answers within 500 ms; a check that takes longer (retries to a closed port) shows in the next ones.
      let body = '';
      for (let i = 0; i < 40; i++) {
        const res = await fetch(`${registry.debugUrl}/readyz`);
        body = await res.text();
        assert.equal(res.status, 503, body);
        if (setting.test(body)) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.match(body, setting, `/readyz does not name the setting: ${body}`);
      const line = await logLine(registry, 'storage is not reachable', /./);
      assert.match(String(line['err']), setting, JSON.stringify(line));
      assert.doesNotMatch(String(line['err']), /\n/, 'the start-up line is one line');
      assert.equal(registry.logs.filter((l) => l['msg'] === 'storage is not reachable').length, 1);
    }

    it('with a closed port as the endpoint: /readyz and the start-up line name storage.s3.regionendpoint', async function () {
      const closed = `http://127.0.0.1:${await freePort()}`;
      const registry = await spawn(s3Env({ REGISTRY_STORAGE_S3_REGIONENDPOINT: closed }));
      await assertNamed(registry, /storage\.s3\.regionendpoint/);
    });

    it('with the wrong region: /readyz and the start-up line name storage.s3.region', async function () {
      // SeaweedFS signs any region, so this endpoint answers as AWS S3 does a request signed for the wrong one.
      fakeAws = createServer((req, res) => {
        const scope = /Credential=[^/]+\/\d+\/([^/]+)\//.exec(req.headers.authorization ?? '');
        const region = scope?.[1] ?? 'unknown';
        const body =
          '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AuthorizationHeaderMalformed</Code>' +
          `<Message>The authorization header is malformed; the region '${region}' is wrong; expecting 'eu-west-1'` +
          '</Message><Region>eu-west-1</Region><RequestId>FAULTTEST</RequestId><HostId>fault</HostId></Error>';
        req.resume();
        res.writeHead(400, {
          'Content-Type': 'application/xml',
          'x-amz-bucket-region': 'eu-west-1',
          'Content-Length': req.method === 'HEAD' ? 0 : Buffer.byteLength(body),
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      });
      fakeAws.listen(0, '127.0.0.1');
      await once(fakeAws, 'listening');
      const { port } = fakeAws.address() as AddressInfo;
      const registry = await spawn(
        s3Env({
          REGISTRY_STORAGE_S3_REGIONENDPOINT: `http://127.0.0.1:${port}`,
          REGISTRY_STORAGE_S3_REGION: 'us-east-1',
        }),
      );
      await assertNamed(registry, /storage\.s3\.region\b/);
    });
  });

  describe('objects changed behind Berth’s back', function () {
    /** What each driver's variant needs: a registry that pushes, a way to overwrite stored bytes, a fresh reader. */
    interface Variant {
      push(): Promise<ChildRegistry>;
      overwrite(digest: string, bytes: Buffer): Promise<void>;
      reader(): Promise<ChildRegistry>;
    }

    function tamperTests(variant: () => Variant): void {
      const image = makeSmallImage('faults-tampered', 1, 1024);
      const big = randomBytes(9 * MiB + 333);
      const small = randomBytes(200 * 1024);
      let reader: ChildRegistry;

      before(async function () {
        const v = variant();
        const writer = await v.push();
        await pushSmallImage(writer.url, 'faults/tampered', 'v1', image);
        await pushBlob(writer.url, 'faults/tampered', big);
        await pushBlob(writer.url, 'faults/tampered', small);
        // Same sizes, other bytes: nothing but the content tells them apart.
        const manifest = Buffer.from(image.manifest);
        manifest.write(' ', manifest.length - 1); // the closing brace becomes a space
        await v.overwrite(image.manifestDigest, manifest);
        const bigChanged = Buffer.from(big);
        bigChanged.writeUInt8(bigChanged.readUInt8(big.length - 10) ^ 0xff, big.length - 10); // in the last chunk
        await v.overwrite(sha256(big), bigChanged);
        const smallChanged = Buffer.from(small);
        smallChanged.writeUInt8(smallChanged.readUInt8(1000) ^ 0x01, 1000);
        await v.overwrite(sha256(small), smallChanged);
        // A registry that has never read them: nothing of them is in its caches.
        reader = await v.reader();
      });

      it('refuses the manifest (GET by tag and digest, HEAD) with an OCI error, logged with its path', async function () {
        for (const ref of ['v1', image.manifestDigest]) {
          const url = `${reader.url}/v2/faults/tampered/manifests/${ref}`;
          const get = await httpRequest(url, { headers: { Accept: OCI_MANIFEST } });
          assert.equal(assertCleanError(get, `manifest GET ${ref}`), 'UNKNOWN');
          assert.equal(get.status, 500);
          const head = await httpRequest(url, { method: 'HEAD', headers: { Accept: OCI_MANIFEST } });
          assert.equal(head.status, 500, `manifest HEAD ${ref}`);
        }
        const line = await logLine(reader, 'stored content does not match its digest; not served', /manifest/);
        assert.equal(line['digest'], image.manifestDigest);
        assert.match(String(line['path']), new RegExp(`${image.manifestDigest.slice(7)}/data$`));
        assert.ok((await metric(reader.debugUrl, `${MISMATCH}{kind="manifest",reason="digest"}`)) >= 1);
      });

      it('never completes a GET of a changed blob: the client is cut before the last chunk', async function () {
        const before = await metric(reader.debugUrl, `${MISMATCH}{kind="blob",reason="digest"}`);
        const got = await pull(`${reader.url}/v2/faults/tampered/blobs/${sha256(big)}`);
        console.log(`      changed blob: ${got.body.length} of ${big.length} bytes, ${got.error ?? 'no error'}`);
        assertCut(got, big, 'the changed blob');
        assert.notEqual(sha256(got.body), sha256(big));
        const line = await logLine(reader, 'stored content does not match its digest; not served', /"blob"/);
        assert.equal(line['digest'], sha256(big));
        assert.equal(line['reason'], 'digest');
        assert.equal(await metric(reader.debugUrl, `${MISMATCH}{kind="blob",reason="digest"}`), before + 1);
      });

      it('never serves a changed blob that fits in one chunk: an OCI error, or a cut', async function () {
        const got = await pull(`${reader.url}/v2/faults/tampered/blobs/${sha256(small)}`);
        // The positional path reads the one chunk before it answers: a clean 500. A streamed body may be under way
        // (headers and the first chunks sent) when its last chunk fails the check: a cut.
        if (got.complete) {
          assert.equal(got.status, 500, `the changed blob was served`);
          assert.match(got.body.toString(), /"code":"UNKNOWN"/);
        } else {
          assertCut(got, small, 'the small changed blob', false);
        }
      });

      it('serves a range of a changed blob, checked for its length only (a digest covers the whole blob)', async function () {
        const range = await httpRequest(`${reader.url}/v2/faults/tampered/blobs/${sha256(big)}`, {
          headers: { Range: 'bytes=0-99' },
        });
        assert.equal(range.status, 206);
        assert.ok(range.body.equals(big.subarray(0, 100)));
      });
    }

    describe('on s3', function () {
      tamperTests(() => ({
        push: () => spawn(s3Env()),
        overwrite: async (digest, bytes) => {
          await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: blobKey(digest), Body: bytes }));
        },
        reader: () => spawn(s3Env()),
      }));
    });

    describe('on the filesystem driver (the positional send path), with storage.verifyreads: on', function () {
      let root = '';
      // `auto` hashes blob reads on the object stores only; a local disk opts in.
      const fsEnv = (): Record<string, string> => ({
        REGISTRY_STORAGE: 'filesystem',
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root,
        REGISTRY_STORAGE_VERIFYREADS: 'on',
      });
      tamperTests(() => {
        root = join(work, 'filesystem');
        return {
          push: () => spawn(fsEnv()),
          overwrite: async (digest, bytes) => {
            const path = blobDataPath(root, digest);
            assert.equal((await readFile(path)).length, bytes.length);
            await writeFile(path, bytes);
          },
          reader: () => spawn(fsEnv()),
        };
      });
    });
  });
});
