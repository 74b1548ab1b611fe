// Online garbage collection with three `berth serve` processes on one filesystem root, under push load: the lease
// lets one replica collect at a time and passes on when its holder shuts down, old unreferenced blobs go, and every
// image pushed while collections ran pulls whole afterwards (over HTTP by digest, and with skopeo into a directory).
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { readFile, readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { removeDir, spawnRegistry, tempDir, type ChildRegistry } from '../helpers/harness.js';
import { skopeo, skopeoContext } from '../helpers/images.js';
import {
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
  type Blob,
  type Image,
} from '../helpers/push.js';

const INTERVAL_S = 3;
const GRACE_S = 5;
const LOAD_MS = 18_000;
const PUSHERS = 4;

interface Run {
  readonly replica: number;
  readonly holder: string;
  readonly token: number;
  readonly start: number;
  readonly end: number;
  readonly result: string;
  readonly blobsSwept: number;
}

async function metricsOf(r: ChildRegistry): Promise<string> {
  const res = await fetch(`${r.debugUrl}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** Collections from the replicas' JSON logs: start and end times, holder, fencing token and result. */
function runsFromLogs(replicas: readonly ChildRegistry[]): Run[] {
  const runs: Run[] = [];
  for (const [i, r] of replicas.entries()) {
    const started = new Map<number, Record<string, unknown>>();
    for (const entry of r.logs) {
      if (entry['component'] !== 'gc') continue;
      const token = Number(entry['token']);
      if (entry['msg'] === 'garbage collection started') started.set(token, entry);
      if (entry['msg'] === 'garbage collection finished') {
        const s = started.get(token);
        assert.ok(s !== undefined, `replica ${i}: run ${token} finished without starting`);
        runs.push({
          replica: i,
          holder: String(entry['holder']),
          token,
          start: Date.parse(String(s['time'])),
          end: Date.parse(String(entry['time'])),
          result: String(entry['result']),
          blobsSwept: Number(entry['blobsSwept'] ?? 0),
        });
      }
    }
  }
  return runs.sort((a, b) => a.start - b.start);
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

const blobFile = (root: string, digest: string): string => {
  const hex = digest.slice('sha256:'.length);
  return join(root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
};

async function pullWhole(url: string, name: string, tag: string, image: Image): Promise<void> {
  const res = await fetch(`${url}/v2/${name}/manifests/${tag}`, { headers: { Accept: OCI_MANIFEST } });
  assert.equal(res.status, 200, `${url} ${name}:${tag}`);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), image.manifest);
  for (const blob of [image.config, ...image.layers]) {
    const b = await fetch(`${url}/v2/${name}/blobs/${blob.digest}`);
    assert.equal(b.status, 200, `${url} ${name}:${tag} ${blob.digest}`);
    assert.equal(sha256(Buffer.from(await b.arrayBuffer())), blob.digest);
  }
}

describe('online garbage collection with 3 replicas on one filesystem root, under push load @integration', function () {
  this.timeout(180_000);
  let storage: string;
  let work: string;
  let replicas: ChildRegistry[] = [];

  before(async function () {
    storage = await tempDir('berth-gc-online-');
    work = await tempDir('berth-gc-online-work-');
  });

  after(async function () {
    await Promise.all(replicas.map((r) => r.kill()));
    await removeDir(storage);
    await removeDir(work);
  });

  it('collects on one replica at a time, sweeps old unreferenced blobs and loses no image pushed meanwhile', async function () {
    const env = {
      REGISTRY_STORAGE: 'filesystem',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: storage,
      REGISTRY_STORAGE_DELETE_ENABLED: 'true',
      // No replica keeps a cache of its own that the collecting replica could not tell of a sweep.
      REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'none',
      REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED: 'true',
      REGISTRY_STORAGE_MAINTENANCE_GC_INTERVAL: `${INTERVAL_S}s`,
      REGISTRY_STORAGE_MAINTENANCE_GC_GRACEPERIOD: `${GRACE_S}s`,
      REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
    };
    replicas = await Promise.all([spawnRegistry(env), spawnRegistry(env), spawnRegistry(env)]);
    const [one, two] = [replicas[0]!, replicas[1]!];

    // Garbage from before: a base image that stays tagged (its layer is reused under load), an image whose manifest
    // was deleted, and a blob pushed and never referenced; made an hour old, as if left long ago.
    const base = randomImage(1, 4096);
    await pushImage(one.url, 'load/base', 'v1', base);
    const deleted = randomImage(2);
    await pushImage(two.url, 'old/app', 'gone', deleted);
    await deleteManifest(one.url, 'old/app', deleted.digest);
    const stray = randomBlob(3000);
    await pushBlob(two.url, 'old/app', stray);
    const hourAgo = new Date(Date.now() - 3_600_000);
    for (const file of await filesUnder(storage)) await utimes(file, hourAgo, hourAgo);
    const doomed = [stray.digest, deleted.digest, deleted.config.digest, ...deleted.layers.map((l) => l.digest)];

    // Push load across the replicas while collections run: blobs to one replica, the manifest to another, with a
    // pause (shorter than the grace period) between them as a slow client would have. Every third image is deleted
    // again, so collections during the load have garbage to sweep, and later images reuse layers of deleted ones
    // that are older than the grace period: the race the collector must survive. A client whose manifest PUT lost
    // that race (MANIFEST_BLOB_UNKNOWN) pushes again, as docker and skopeo do.
    const pushed: Array<{ name: string; tag: string; image: Image }> = [];
    const graveyard: Array<{ name: string; at: number; layers: readonly Blob[] }> = [];
    let repushes = 0;
    const loadStart = Date.now();
    const deadline = loadStart + LOAD_MS;
    // Half-way through, the replica that collected last shuts down (SIGTERM): its lease is freed, not left to
    // expire, and another replica takes over. Pushers leave it a moment before, so no request of theirs is cut.
    let alive = [...replicas];
    let stopped = -1;
    let stoppedAt = 0;
    const handover = async (): Promise<void> => {
      let last: Run | undefined;
      for (let i = 0; i < 100 && last === undefined; i++) {
        await sleep(200);
        last = runsFromLogs(replicas).find((r) => r.start > loadStart);
      }
      assert.ok(last !== undefined, 'no collection in the first part of the load');
      await sleep(Math.max(0, loadStart + LOAD_MS / 2 - Date.now()));
      stopped = runsFromLogs(replicas).at(-1)!.replica;
      alive = replicas.filter((_, i) => i !== stopped);
      await sleep(4_000);
      stoppedAt = Date.now();
      assert.equal(await replicas[stopped]!.stop(), 0);
    };
    const pusher = async (p: number): Promise<void> => {
      const name = `load/p${p}`;
      for (let n = 0; n < 200 && Date.now() < deadline; n++) {
        const fresh = randomImage(1 + randomInt(2), 1024 + randomInt(8192));
        const dead = graveyard.filter((g) => g.name === name && Date.now() - g.at > GRACE_S * 1000);
        const reused = n % 3 === 1 && dead.length > 0 ? [dead[randomInt(dead.length)]!.layers[0]!] : [];
        // Every other image reuses the base layer: an old blob that stays referenced.
        const layers = [...(n % 2 === 0 ? [] : [base.layers[0]!]), ...reused, ...fresh.layers];
        const manifest = imageManifest(fresh.config, layers);
        const image: Image = { config: fresh.config, layers, manifest, digest: sha256(manifest) };
        const tag = `t${n}`;
        for (let attempt = 1; ; attempt++) {
          const up = alive[(p + n + attempt) % alive.length]!;
          const down = alive[(p + n + attempt + 1) % alive.length]!;
          for (const blob of [...image.layers, image.config]) await pushBlob(up.url, name, blob);
          await sleep(randomInt(1500));
          const res = await putManifest(down.url, name, tag, image.manifest);
          const body = await res.text();
          if (res.status === 201) break;
          assert.ok(
            res.status === 400 && body.includes('MANIFEST_BLOB_UNKNOWN') && attempt < 3,
            `PUT ${name}:${tag}: ${res.status} ${body}`,
          );
          repushes++;
        }
        if (n % 3 === 2) {
          await deleteManifest(alive[(p + n) % alive.length]!.url, name, image.digest);
          graveyard.push({ name, at: Date.now(), layers: fresh.layers });
        } else {
          pushed.push({ name, tag, image });
        }
      }
    };
    await Promise.all([handover(), ...Array.from({ length: PUSHERS }, (_, p) => pusher(p))]);
    assert.ok(pushed.length >= 20, `only ${pushed.length} images pushed (${repushes} pushed again)`);

    // At least three collections, some of them during the load, and the old garbage gone.
    let runs: Run[] = [];
    for (let i = 0; i < 60; i++) {
      runs = runsFromLogs(replicas);
      if (
        runs.length >= 3 &&
        runs.some((r) => r.replica !== stopped && r.start > stoppedAt) &&
        (await Promise.all(doomed.map((d) => headBlob(alive[0]!.url, 'old/app', d)))).every((s) => s === 404)
      )
        break;
      await sleep(500);
    }
    assert.ok(runs.length >= 3, `${runs.length} collections ran`);
    const during = runs.filter((r) => r.start > loadStart && r.start < deadline);
    assert.ok(during.length >= 2, `collections during the load: ${JSON.stringify(runs)}`);
    assert.ok(
      during.some((r) => r.blobsSwept > 0),
      `no collection swept during the load: ${JSON.stringify(runs)}`,
    );
    for (const r of alive)
      for (const d of doomed) assert.equal(await headBlob(r.url, 'old/app', d), 404, `${r.url} still has ${d}`);
    for (const d of doomed)
      await assert.rejects(readFile(blobFile(storage, d)), { code: 'ENOENT' }, `${d} is still on disk`);
    assert.ok(
      runs.reduce((n, r) => n + r.blobsSwept, 0) >= doomed.length,
      `blobs swept: ${runs.map((r) => r.blobsSwept).join(', ')}`,
    );

    // Never two at once: each collection starts after the previous one ended, and the tokens go up one by one.
    for (let i = 1; i < runs.length; i++) {
      const [prev, next] = [runs[i - 1]!, runs[i]!];
      assert.ok(next.start >= prev.end, `run ${next.token} began before run ${prev.token} ended`);
      assert.ok(next.token > prev.token, `tokens ${prev.token} then ${next.token}`);
    }
    // Only a run cut short by the shutdown may end otherwise; after the shutdown another replica holds the lease.
    for (const r of runs)
      assert.ok(r.result === 'success' || (r.result === 'aborted' && r.replica === stopped), JSON.stringify(r));
    assert.ok(
      runs.some((r) => r.replica !== stopped && r.start > stoppedAt),
      `no handover: ${JSON.stringify(runs)}`,
    );

    // The metrics agree: runs only on the replicas that held the lease, skips on the others' turns.
    const texts = await Promise.all(alive.map(metricsOf));
    let skipped = 0;
    for (const [j, text] of texts.entries()) {
      const i = replicas.indexOf(alive[j]!);
      const held = runs.filter((r) => r.replica === i).length;
      assert.equal(value(text, 'registry_gc_runs_total{result="success"}'), held, `replica ${i}`);
      assert.equal(value(text, 'registry_gc_runs_total{result="failure"}'), 0);
      assert.equal(value(text, 'registry_gc_lease_lost_total'), 0);
      skipped +=
        value(text, 'registry_gc_skipped_total{reason="leased"}') +
        value(text, 'registry_gc_skipped_total{reason="race"}') +
        value(text, 'registry_gc_skipped_total{reason="recent"}');
    }
    assert.ok(skipped > 0, 'some replica found the lease taken or the store freshly collected');
    assert.ok(
      texts.some((t) => value(t, 'registry_gc_swept_total{kind="blob"}') >= 1),
      'a replica counted swept blobs',
    );

    // Every image pushed under load pulls whole from every replica, the base image too.
    for (const [i, { name, tag, image }] of pushed.entries()) await pullWhole(alive[i % 2]!.url, name, tag, image);
    for (const r of alive) await pullWhole(r.url, 'load/base', 'v1', base);
    // And skopeo copies a few of them, checking every digest on the way.
    const ctx = await skopeoContext(work);
    for (const k of [0, Math.floor(pushed.length / 2), pushed.length - 1]) {
      const { name, tag, image } = pushed[k]!;
      const dir = join(work, `copy-${k}`);
      await skopeo(ctx, [
        'copy',
        '--src-tls-verify=false',
        `docker://127.0.0.1:${alive[k % 2]!.port}/${name}:${tag}`,
        `dir:${dir}`,
      ]);
      assert.equal(sha256(await readFile(join(dir, 'manifest.json'))), image.digest);
      for (const blob of [image.config, ...image.layers])
        assert.equal(sha256(await readFile(join(dir, blob.digest.slice('sha256:'.length)))), blob.digest);
    }

    // Shutdown frees the lease, whether or not a collection was running.
    assert.deepEqual(await Promise.all(alive.map((r) => r.stop())), [0, 0]);
    const lease = JSON.parse(await readFile(join(storage, '_gc', 'lease'), 'utf8')) as { expiresAt: number };
    assert.equal(lease.expiresAt, 0);
  });
});
