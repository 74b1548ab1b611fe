// Crash safety of the filesystem storage: Berth is SIGKILLed in the middle of blob uploads, manifest pushes and a
// stream of small pushes and tag churn, restarted on the same directory, and must show only complete content.
// SIGTERM, in contrast, must let in-flight requests finish.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { removeDir, spawnRegistry, tempDir, type ChildRegistry } from '../helpers/harness.js';
import {
  blobDataPath,
  corruptBlobs,
  exists,
  header,
  httpRequest,
  leftoverTempFiles,
  listTags,
  makeSmallImage,
  OCI_MANIFEST,
  openRequest,
  parseImageManifest,
  pushBlob,
  pushSmallImage,
  sha256,
  type HttpResponse,
} from '../helpers/images.js';

const MiB = 1024 * 1024;

/** Polls `check` every 20 ms until it returns true; fails after `timeoutMs`. */
async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(20);
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Sizes of the data files of the upload sessions of a repository, as they are on disk. */
async function uploadSizes(storage: string, repo: string): Promise<number[]> {
  const dir = join(storage, 'docker', 'registry', 'v2', 'repositories', repo, '_uploads');
  let ids: string[];
  try {
    ids = await readdir(dir);
  } catch {
    return [];
  }
  const sizes: number[] = [];
  for (const id of ids) {
    try {
      sizes.push((await stat(join(dir, id, 'data'))).size);
    } catch {
      // a session being created or removed
    }
  }
  return sizes;
}

async function catalog(base: string): Promise<unknown> {
  const res = await httpRequest(`${base}/v2/_catalog?n=1000`);
  assert.equal(res.status, 200);
  return JSON.parse(res.body.toString());
}

/** The value of the in-flight requests gauge on the debug server. */
async function inFlight(registry: ChildRegistry): Promise<number> {
  const res = await httpRequest(`${registry.debugUrl}/metrics`);
  const m = /^registry_http_in_flight_requests (\d+)/m.exec(res.body.toString());
  return m === null ? 0 : Number(m[1]);
}

/** Sends `data` in 1 MiB pieces. */
async function writeAll(req: ReturnType<typeof openRequest>, data: Buffer): Promise<void> {
  for (let off = 0; off < data.length; off += MiB)
    await req.write(data.subarray(off, Math.min(off + MiB, data.length)));
}

async function expectConnectionLost(response: Promise<HttpResponse>, what: string): Promise<void> {
  await assert.rejects(response, Error, `${what} got an answer although the server was killed`);
}

/** Fetches a blob and compares it to the expected bytes. */
/** After an interrupted upload: the blob answers 404, has no data file, no blob is corrupt and the tags are as before. */
async function assertBlobInvisible(
  base: string,
  storage: string,
  repo: string,
  digest: string,
  tagsBefore: unknown,
): Promise<void> {
  const head = await httpRequest(`${base}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  assert.equal(head.status, 404);
  assert.equal(
    await exists(blobDataPath(storage, digest)),
    false,
    'a blob data file exists for the interrupted upload',
  );
  assert.deepEqual(await corruptBlobs(storage), []);
  assert.deepEqual(await listTags(base, repo), tagsBefore);
}

async function assertBlobIs(base: string, repo: string, data: Buffer): Promise<void> {
  const digest = sha256(data);
  const res = await httpRequest(`${base}/v2/${repo}/blobs/${digest}`, { timeoutMs: 60_000 });
  assert.equal(res.status, 200, `GET blob ${digest}: ${res.status} ${res.body.subarray(0, 300).toString()}`);
  assert.equal(res.body.length, data.length);
  assert.ok(res.body.equals(data), `blob ${digest} does not read back byte-identical`);
}

/** A deterministic PRNG (mulberry32), so a failing run of the random-kill test can be replayed with its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('crash safety @integration', function () {
  this.timeout(120_000);

  let storage: string;
  let registry: ChildRegistry | undefined;

  const start = async (): Promise<ChildRegistry> => {
    registry = await spawnRegistry({
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: storage,
      REGISTRY_STORAGE_DELETE_ENABLED: 'true',
    });
    return registry;
  };

  const crash = async (): Promise<void> => {
    await registry?.kill();
    registry = undefined;
  };

  beforeEach(async function () {
    storage = await tempDir('berth-crash-');
  });

  afterEach(async function () {
    await crash();
    await removeDir(storage);
  });

  describe('SIGKILL during a blob upload', function () {
    it('leaves no blob after a crash in a 64 MiB monolithic POST, and the retried push reads back byte-identical', async function () {
      const repo = 'crash/monolithic';
      let reg = await start();
      await pushSmallImage(reg.url, repo, 'base', makeSmallImage('monolithic-base'));
      const tagsBefore = await listTags(reg.url, repo);
      const catalogBefore = await catalog(reg.url);

      const data = randomBytes(64 * MiB);
      const digest = sha256(data);
      const uploadPath = `/v2/${repo}/blobs/uploads/?digest=${digest}`;
      const upload = openRequest(`${reg.url}${uploadPath}`, {
        method: 'POST',
        headers: { 'Content-Length': data.length, 'Content-Type': 'application/octet-stream' },
      });
      await writeAll(upload, data.subarray(0, 32 * MiB));
      // The server is now part-way through writing the blob into its upload session.
      await waitFor('16 MiB of the upload on disk', 10_000, async () =>
        (await uploadSizes(storage, repo)).some((s) => s >= 16 * MiB),
      );
      await crash();
      await expectConnectionLost(upload.response, 'the interrupted upload');
      const leftover = await uploadSizes(storage, repo);
      assert.ok(
        leftover.every((s) => s < data.length),
        `an upload session holds ${leftover.join(', ')} bytes`,
      );

      reg = await start();
      await assertBlobInvisible(reg.url, storage, repo, digest, tagsBefore);
      assert.deepEqual(await catalog(reg.url), catalogBefore);

      const retry = await httpRequest(`${reg.url}${uploadPath}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream' },
        body: data,
        timeoutMs: 60_000,
      });
      assert.equal(retry.status, 201, retry.body.toString());
      assert.equal(header(retry, 'docker-content-digest'), digest);
      await assertBlobIs(reg.url, repo, data);
      assert.deepEqual(await corruptBlobs(storage), []);
    });

    it('does not make a new repository appear when its first upload is interrupted by a crash', async function () {
      const repo = 'crash/never-finished';
      let reg = await start();
      const catalogBefore = await catalog(reg.url);
      assert.equal(await listTags(reg.url, repo), null, 'the repository should be unknown before any push');
      const data = randomBytes(8 * MiB);
      const upload = openRequest(`${reg.url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, {
        method: 'POST',
        headers: { 'Content-Length': data.length, 'Content-Type': 'application/octet-stream' },
      });
      await writeAll(upload, data.subarray(0, 4 * MiB));
      await waitFor('part of the upload on disk', 10_000, async () =>
        (await uploadSizes(storage, repo)).some((s) => s > 0),
      );
      await crash();
      await expectConnectionLost(upload.response, 'the interrupted upload');

      reg = await start();
      assert.deepEqual(await catalog(reg.url), catalogBefore);
      const tags = await httpRequest(`${reg.url}/v2/${repo}/tags/list`);
      assert.equal(
        tags.status,
        404,
        `tags/list of a repository that only has an abandoned upload: ${tags.status} ${tags.body.toString()}`,
      );
      assert.match(tags.body.toString(), /NAME_UNKNOWN/);
    });

    it('leaves no blob after a crash mid-chunk of a chunked upload; a fresh push and a resume from the reported offset both give the exact bytes', async function () {
      const repo = 'crash/chunked';
      const chunk = 16 * MiB;
      let reg = await start();
      await pushSmallImage(reg.url, repo, 'base', makeSmallImage('chunked-base'));
      const tagsBefore = await listTags(reg.url, repo);

      const data = randomBytes(3 * chunk);
      const digest = sha256(data);
      const session = await httpRequest(`${reg.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      assert.equal(session.status, 202);
      const location = header(session, 'location');
      assert.ok(location !== undefined);
      const path = new URL(location, reg.url).pathname;
      const first = await httpRequest(`${reg.url}${path}`, {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${chunk - 1}` },
        body: data.subarray(0, chunk),
      });
      assert.equal(first.status, 202, first.body.toString());
      assert.equal(header(first, 'range'), `0-${chunk - 1}`);

      const second = openRequest(`${reg.url}${path}`, {
        method: 'PATCH',
        headers: {
          'Content-Type': 'application/octet-stream',
          'Content-Range': `${chunk}-${2 * chunk - 1}`,
          'Content-Length': chunk,
        },
      });
      await writeAll(second, data.subarray(chunk, chunk + chunk / 2));
      await waitFor('part of the second chunk on disk', 10_000, async () =>
        (await uploadSizes(storage, repo)).some((s) => s > chunk + MiB),
      );
      await crash();
      await expectConnectionLost(second.response, 'the interrupted chunk');

      reg = await start();
      await assertBlobInvisible(reg.url, storage, repo, digest, tagsBefore);

      // The client's retry: a whole new chunked upload.
      const retry = await httpRequest(`${reg.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      assert.equal(retry.status, 202);
      const retryPath = new URL(header(retry, 'location') ?? '', reg.url).pathname;
      for (let off = 0; off < data.length; off += chunk) {
        const res = await httpRequest(`${reg.url}${retryPath}`, {
          method: 'PATCH',
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${off}-${off + chunk - 1}` },
          body: data.subarray(off, off + chunk),
        });
        assert.equal(res.status, 202, res.body.toString());
      }
      const done = await httpRequest(`${reg.url}${retryPath}?digest=${digest}`, { method: 'PUT' });
      assert.equal(done.status, 201, done.body.toString());
      await assertBlobIs(reg.url, repo, data);

      // The interrupted session, resumed from the offset the restarted registry reports, must also give the exact
      // bytes: what survived the crash is a prefix of what was sent.
      const status = await httpRequest(`${reg.url}${path}`);
      if (status.status === 404) {
        assert.match(status.body.toString(), /BLOB_UPLOAD_UNKNOWN/);
      } else {
        assert.equal(status.status, 204, status.body.toString());
        const m = /^0-(\d+)$/.exec(header(status, 'range') ?? '');
        assert.ok(m !== null, `Range header ${header(status, 'range')}`);
        const offset = Number(m[1]) + 1;
        assert.ok(offset >= chunk && offset <= chunk + chunk / 2, `the session reports ${offset} bytes`);
        const rest = await httpRequest(`${reg.url}${path}`, {
          method: 'PATCH',
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${data.length - 1}` },
          body: data.subarray(offset),
        });
        assert.equal(rest.status, 202, rest.body.toString());
        const resumed = await httpRequest(`${reg.url}${path}?digest=${digest}`, { method: 'PUT' });
        assert.equal(resumed.status, 201, resumed.body.toString());
        await assertBlobIs(reg.url, repo, data);
      }
      assert.deepEqual(await corruptBlobs(storage), []);
    });
  });

  describe('SIGKILL during a manifest PUT', function () {
    it('shows neither the tag nor the manifest after restart, and the retry succeeds', async function () {
      const repo = 'crash/manifest';
      let reg = await start();
      await pushSmallImage(reg.url, repo, 'base', makeSmallImage('manifest-base'));
      const image = makeSmallImage('manifest-interrupted', 3);
      for (const blob of image.blobs.values()) await pushBlob(reg.url, repo, blob);
      const tagsBefore = await listTags(reg.url, repo);

      const put = openRequest(`${reg.url}/v2/${repo}/manifests/v2`, {
        method: 'PUT',
        headers: { 'Content-Type': OCI_MANIFEST, 'Content-Length': image.manifest.length },
      });
      await put.write(image.manifest.subarray(0, Math.floor(image.manifest.length / 2)));
      await waitFor('the manifest PUT to be in flight', 10_000, async () => (await inFlight(reg)) >= 1);
      await crash();
      await expectConnectionLost(put.response, 'the interrupted manifest PUT');

      reg = await start();
      const byTag = await httpRequest(`${reg.url}/v2/${repo}/manifests/v2`, { headers: { Accept: OCI_MANIFEST } });
      assert.equal(byTag.status, 404);
      const byDigest = await httpRequest(`${reg.url}/v2/${repo}/manifests/${image.manifestDigest}`, {
        method: 'HEAD',
        headers: { Accept: OCI_MANIFEST },
      });
      assert.equal(byDigest.status, 404);
      assert.deepEqual(await listTags(reg.url, repo), tagsBefore);
      const hex = image.manifestDigest.slice('sha256:'.length);
      const revision = join(
        storage,
        'docker',
        'registry',
        'v2',
        'repositories',
        repo,
        '_manifests',
        'revisions',
        'sha256',
        hex,
      );
      assert.equal(await exists(revision), false, 'a revision link exists for the interrupted manifest');
      assert.equal(
        await exists(join(storage, 'docker', 'registry', 'v2', 'repositories', repo, '_manifests', 'tags', 'v2')),
        false,
      );

      const retry = await httpRequest(`${reg.url}/v2/${repo}/manifests/v2`, {
        method: 'PUT',
        headers: { 'Content-Type': OCI_MANIFEST },
        body: image.manifest,
      });
      assert.equal(retry.status, 201, retry.body.toString());
      assert.equal(header(retry, 'docker-content-digest'), image.manifestDigest);
      const pulled = await httpRequest(`${reg.url}/v2/${repo}/manifests/v2`, { headers: { Accept: OCI_MANIFEST } });
      assert.equal(pulled.status, 200);
      assert.ok(pulled.body.equals(image.manifest));
      assert.deepEqual(await listTags(reg.url, repo), ['base', 'v2']);
    });
  });

  describe('SIGKILL at random moments', function () {
    /**
     * Every visible tag must resolve to a manifest whose bytes match its digest and whose blobs all exist whole;
     * every push the registry acknowledged (201) before a crash must still be there.
     */
    async function verifyRepository(
      base: string,
      repo: string,
      acknowledged: ReadonlyMap<string, string>,
    ): Promise<number> {
      const tags = (await listTags(base, repo)) ?? [];
      for (const [tag, digest] of acknowledged) {
        assert.ok(tags.includes(tag), `acknowledged tag ${tag} is gone after a crash`);
        const res = await httpRequest(`${base}/v2/${repo}/manifests/${tag}`, {
          method: 'HEAD',
          headers: { Accept: OCI_MANIFEST },
        });
        assert.equal(header(res, 'docker-content-digest'), digest, `tag ${tag} moved`);
      }
      for (const tag of tags) {
        const res = await httpRequest(`${base}/v2/${repo}/manifests/${tag}`, { headers: { Accept: OCI_MANIFEST } });
        assert.equal(res.status, 200, `visible tag ${tag} does not resolve: ${res.status} ${res.body.toString()}`);
        assert.equal(
          header(res, 'docker-content-digest'),
          sha256(res.body),
          `tag ${tag}: manifest bytes do not match their digest`,
        );
        const manifest = parseImageManifest(res.body);
        for (const d of [manifest.config, ...manifest.layers]) {
          const blob = await httpRequest(`${base}/v2/${repo}/blobs/${d.digest}`);
          assert.equal(blob.status, 200, `tag ${tag}: blob ${d.digest} is missing (${blob.status})`);
          assert.equal(
            blob.body.length,
            d.size,
            `tag ${tag}: blob ${d.digest} has ${blob.body.length} bytes, not ${d.size}`,
          );
          assert.equal(sha256(blob.body), d.digest, `tag ${tag}: blob ${d.digest} is corrupt`);
        }
      }
      return tags.length;
    }

    it('leaves every visible tag resolving to a complete manifest whose blobs all exist', async function () {
      const repo = 'crash/random';
      const rounds = 5;
      const seed = Number(process.env['BERTH_CRASH_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
      const random = prng(seed);
      const acknowledged = new Map<string, string>();
      const report: string[] = [];
      for (let round = 0; round < rounds; round++) {
        const reg = await start();
        await verifyRepository(reg.url, repo, acknowledged);
        assert.deepEqual(await corruptBlobs(storage), [], `seed ${seed}, round ${round}`);
        let stopped = false;
        let pushes = 0;
        const pusher = (async () => {
          // Bounded: a round pushes at most 500 small images before the kill stops it.
          for (let i = 0; i < 500 && !stopped; i++) {
            const tag = `r${round}-i${i}`;
            const image = makeSmallImage(`${seed}/${tag}`, 1 + (i % 3), 1024 + ((i * 7919) % 16384));
            try {
              await pushSmallImage(reg.url, repo, tag, image);
              acknowledged.set(tag, image.manifestDigest);
              // Re-point a moving tag too: it must always name some complete manifest.
              const moved = await httpRequest(`${reg.url}/v2/${repo}/manifests/latest`, {
                method: 'PUT',
                headers: { 'Content-Type': OCI_MANIFEST },
                body: image.manifest,
              });
              if (moved.status !== 201) throw new Error(`retagging latest: ${moved.status}`);
              pushes++;
            } catch {
              return;
            }
          }
        })();
        const delay = 50 + Math.floor(random() * 450);
        await sleep(delay);
        await crash();
        stopped = true;
        await pusher;
        report.push(`round ${round}: killed after ${delay} ms, ${pushes} pushes acknowledged`);
      }
      const reg = await start();
      const visible = await verifyRepository(reg.url, repo, acknowledged);
      assert.deepEqual(await corruptBlobs(storage), [], `seed ${seed}`);
      const temps = await leftoverTempFiles(storage);
      console.log(
        `      seed ${seed} (replay with BERTH_CRASH_SEED=${seed}); ${visible} tags visible, ${temps.length} temporary files left by the crashes\n      ${report.join('\n      ')}`,
      );
      assert.ok(acknowledged.size > 0, 'no push completed in any round; the kills came too early to test anything');
    });
  });

  describe('SIGKILL while tags are pushed and deleted', function () {
    it('leaves no listed tag that resolves to no manifest', async function () {
      const repo = 'crash/churn';
      const rounds = 5;
      const workers = 8;
      const seed = Number(process.env['BERTH_CRASH_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
      const random = prng(seed);
      let reg = await start();
      const image = makeSmallImage('churn');
      await pushSmallImage(reg.url, repo, 'base', image);
      const dangling: string[] = [];
      let operations = 0;
      for (let round = 0; round < rounds; round++) {
        let stopped = false;
        const base = reg.url;
        const loops = Array.from({ length: workers }, async (_, w) => {
          // Bounded: each worker does at most 1000 put/delete pairs before the kill stops it.
          for (let i = 0; i < 1000 && !stopped; i++) {
            const tag = `w${w}-${i % 3}`;
            try {
              await httpRequest(`${base}/v2/${repo}/manifests/${tag}`, {
                method: 'PUT',
                headers: { 'Content-Type': OCI_MANIFEST },
                body: image.manifest,
              });
              await httpRequest(`${base}/v2/${repo}/manifests/${tag}`, { method: 'DELETE' });
              operations += 2;
            } catch {
              return;
            }
          }
        });
        await sleep(100 + Math.floor(random() * 300));
        await crash();
        stopped = true;
        await Promise.all(loops);
        reg = await start();
        for (const tag of (await listTags(reg.url, repo)) ?? []) {
          const res = await httpRequest(`${reg.url}/v2/${repo}/manifests/${tag}`, {
            method: 'HEAD',
            headers: { Accept: OCI_MANIFEST },
          });
          if (res.status !== 200) dangling.push(`round ${round}: tag ${tag} is listed but HEAD answers ${res.status}`);
        }
      }
      console.log(`      seed ${seed}: ${operations} tag puts and deletes acknowledged over ${rounds} kills`);
      assert.deepEqual(dangling, [], `seed ${seed}: tags/list names tags that resolve to no manifest after a SIGKILL`);
    });
  });

  describe('states a SIGKILL can leave on disk', function () {
    // The filesystem driver writes a small file as mkdir(parent) → write temp → rename. A SIGKILL after the mkdir
    // (or in the middle of an untag's recursive delete, which removes the link before its directories) leaves a
    // tag directory without its link. Hitting that sub-millisecond window with a real kill is luck, so the test
    // lays down exactly that state and restarts Berth on it.
    it('does not list a tag whose link a crash never wrote', async function () {
      const repo = 'crash/torn-tag';
      let reg = await start();
      const image = makeSmallImage('torn-tag');
      await pushSmallImage(reg.url, repo, 'good', image);
      await crash();
      const tags = join(storage, 'docker', 'registry', 'v2', 'repositories', repo, '_manifests', 'tags');
      // Killed between the write of the temp file (in the driver's temporary directory) and its rename into place.
      await mkdir(join(tags, 'torn', 'current'), { recursive: true });
      await mkdir(join(storage, '.tmp-writes'), { recursive: true });
      await writeFile(join(storage, '.tmp-writes', '.tmp-0123456789abcdef'), image.manifestDigest.slice(0, 20));
      // Killed right after the mkdir.
      await mkdir(join(tags, 'bare', 'current'), { recursive: true });

      reg = await start();
      for (const tag of ['torn', 'bare']) {
        const res = await httpRequest(`${reg.url}/v2/${repo}/manifests/${tag}`, { headers: { Accept: OCI_MANIFEST } });
        assert.equal(res.status, 404, `${tag}: ${res.status}`);
      }
      const listed = await listTags(reg.url, repo);
      assert.deepEqual(listed, ['good'], 'tags/list names tags that resolve to no manifest');
    });
  });

  describe('SIGTERM', function () {
    it('lets an in-flight blob upload finish with 201 and exits 0', async function () {
      const repo = 'shutdown/graceful';
      const reg = await start();
      const data = randomBytes(16 * MiB);
      const digest = sha256(data);
      const upload = openRequest(`${reg.url}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
        method: 'POST',
        headers: { 'Content-Length': data.length, 'Content-Type': 'application/octet-stream' },
      });
      await writeAll(upload, data.subarray(0, 4 * MiB));
      await waitFor('the upload to reach the disk', 10_000, async () =>
        (await uploadSizes(storage, repo)).some((s) => s >= MiB),
      );

      const exited = reg.stop();
      await waitFor('the shutdown to begin', 10_000, async () =>
        reg.logs.some((l) => String(l['msg']).startsWith('shutting down')),
      );
      // No new connections once shutting down.
      await assert.rejects(
        httpRequest(`${reg.url}/v2/`, { timeoutMs: 5_000 }),
        /ECONNREFUSED|ECONNRESET|socket hang up/,
      );

      await writeAll(upload, data.subarray(4 * MiB));
      const res = await upload.finish();
      assert.equal(res.status, 201, res.body.toString());
      assert.equal(header(res, 'docker-content-digest'), digest);
      const code = await Promise.race([exited, sleep(15_000).then(() => 'still running' as const)]);
      if (code === 'still running') await reg.kill();
      assert.equal(code, 0, 'berth did not exit 0 after SIGTERM');

      const again = await start();
      const head = await httpRequest(`${again.url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(header(head, 'content-length'), String(data.length));
      await assertBlobIs(again.url, repo, data);
    });
  });
});
