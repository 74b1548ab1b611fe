// `berth serve` on the gcs driver against a real fake-gcs-server, configured by REGISTRY_STORAGE_GCS_* alone: skopeo
// pushes a multi-layer image (one layer of many upload chunks) and pulls it back byte for byte, the OCI conformance
// suite passes its four workflows, and a missing bucket makes /readyz name the setting to check.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeDir, spawnRegistry, tempDir, TOOLS_BIN, type ChildRegistry } from '../helpers/harness.js';
import {
  buildOciLayout,
  describeFailure,
  exists,
  parseImageManifest,
  readLayoutBlobs,
  readLayoutIndex,
  runCommand,
  sha256,
  skopeo,
  skopeoContext,
  type BuiltLayout,
  type SkopeoContext,
} from '../helpers/images.js';
import { startFakeGcs, type FakeGcs } from '../helpers/fake-gcs.js';

const CONFORMANCE_BIN = join(TOOLS_BIN, 'oci-conformance');
const MiB = 1024 * 1024;

describe('berth serve on gcs (fake-gcs-server) @integration', function () {
  this.timeout(360_000);

  let gcs: FakeGcs;
  let bucket: string;
  let work: string;
  let registry: ChildRegistry | undefined;
  let ctx: SkopeoContext;
  let source: BuiltLayout;
  let sourceBlobs: Map<string, Buffer>;
  let host: string;

  /** The environment that configures the gcs driver for the test server; the smallest chunk size, to cut many. */
  function gcsEnv(overrides: Record<string, string> = {}): Record<string, string> {
    return {
      REGISTRY_STORAGE: 'gcs',
      REGISTRY_STORAGE_GCS_ENDPOINT: gcs.endpoint,
      REGISTRY_STORAGE_GCS_BUCKET: bucket,
      REGISTRY_STORAGE_GCS_ROOTDIRECTORY: '/registry',
      REGISTRY_STORAGE_GCS_CHUNKSIZE: String(256 * 1024),
      REGISTRY_STORAGE_DELETE_ENABLED: 'true',
      ...overrides,
    };
  }

  before(async function () {
    gcs = await startFakeGcs();
    bucket = await gcs.createBucket();
    work = await tempDir('berth-gcs-registry-');
    ctx = await skopeoContext(work);
    source = await buildOciLayout(work, 'source', 'v1', [
      { 'etc/motd': 'pushed to Berth on GCS\n' },
      // Many chunks: a resumable upload of a temporary object, composed into place, then rewritten into the blob store.
      { 'data/random.bin': randomBytes(3 * MiB + 333) },
      { 'app/a.txt': 'a\n'.repeat(5000), 'app/empty': '' },
    ]);
    sourceBlobs = await readLayoutBlobs(source.dir);
    const manifestBytes = sourceBlobs.get(source.manifestDigest);
    assert.ok(manifestBytes !== undefined);
    assert.equal(parseImageManifest(manifestBytes).layers.length, 3);
    registry = await spawnRegistry(gcsEnv());
    host = `127.0.0.1:${registry.port}`;
  });

  after(async function () {
    if (registry !== undefined) await registry.stop();
    if (work !== undefined) await removeDir(work);
    await gcs?.stop();
  });

  it('is ready: /readyz reaches the bucket', async function () {
    assert.ok(registry !== undefined);
    const res = await fetch(`${registry.debugUrl}/readyz`);
    assert.equal(res.status, 200, await res.text());
  });

  it('takes a multi-layer image from skopeo and gives it back byte for byte', async function () {
    await skopeo(ctx, [
      'copy',
      '--dest-tls-verify=false',
      `oci:${source.dir}:${source.tag}`,
      `docker://${host}/gcs/image:v1`,
    ]);
    const out = join(work, 'pulled');
    await skopeo(ctx, ['copy', '--src-tls-verify=false', `docker://${host}/gcs/image:v1`, `oci:${out}:v1`]);
    const index = await readLayoutIndex(out);
    assert.equal(index.manifests[0]?.digest, source.manifestDigest);
    const pulled = await readLayoutBlobs(out);
    assert.deepEqual([...pulled.keys()].sort(), [...sourceBlobs.keys()].sort());
    for (const [digest, bytes] of sourceBlobs) {
      const copy = pulled.get(digest);
      assert.ok(copy !== undefined && copy.equals(bytes), `blob ${digest} differs after the round trip`);
      assert.equal(sha256(copy), digest);
    }
    // Every temporary object of a writer was composed into place and removed.
    const names = await gcs.objectNames(bucket, 'registry/');
    assert.deepEqual(
      names.filter((n) => n.includes('~')),
      [],
    );
    assert.ok(names.some((n) => n.startsWith('registry/docker/registry/v2/blobs/')));
  });

  it('passes the OCI conformance suite’s four workflows', async function () {
    assert.ok(registry !== undefined);
    if (!(await exists(CONFORMANCE_BIN)))
      assert.fail(`${CONFORMANCE_BIN} is missing: run scripts/install-test-tools.sh`);
    const reportDir = await tempDir('berth-gcs-conformance-');
    const result = await runCommand(CONFORMANCE_BIN, ['--ginkgo.no-color'], {
      cwd: reportDir,
      timeoutMs: 300_000,
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: reportDir,
        OCI_ROOT_URL: registry.url,
        OCI_NAMESPACE: 'conformance/main',
        OCI_CROSSMOUNT_NAMESPACE: 'conformance/crossmount',
        OCI_TEST_PULL: '1',
        OCI_TEST_PUSH: '1',
        OCI_TEST_CONTENT_DISCOVERY: '1',
        OCI_TEST_CONTENT_MANAGEMENT: '1',
        OCI_AUTOMATIC_CROSSMOUNT: '0',
        OCI_HIDE_SKIPPED_WORKFLOWS: '0',
        OCI_REPORT_DIR: reportDir,
      },
    });
    const junitPath = join(reportDir, 'junit.xml');
    const junit = (await exists(junitPath)) ? await readFile(junitPath, 'utf8') : '';
    const plain = `${result.stdout}\n${result.stderr}`.replace(/\u001b\[[0-9;]*m/g, '');
    const summary = /(\d+) Passed \| (\d+) Failed \|/.exec(plain);
    console.log(`      conformance on gcs: ${summary?.[0] ?? 'no summary'} (report: ${junitPath})`);
    assert.equal(result.timedOut, false, describeFailure(result));
    assert.ok(summary !== null, `no ginkgo summary\n${result.stdout.slice(-4000)}`);
    assert.equal(Number(summary[2]), 0, `conformance specs failed\n${result.stdout.slice(-6000)}`);
    assert.ok(Number(summary[1]) > 50, `only ${summary[1]} specs passed`);
    assert.equal(result.code, 0, describeFailure(result));
    assert.match(junit, /<testsuites[^>]*\sfailures="0"/);
    for (const workflow of ['Pull', 'Push', 'Content Discovery', 'Content Management']) {
      assert.match(junit, new RegExp(`Conformance Tests ${workflow} `), `no ${workflow} specs ran`);
    }
    await removeDir(reportDir);
  });

  it('reports a missing bucket on /readyz, naming the setting to check', async function () {
    const wrong = await spawnRegistry(gcsEnv({ REGISTRY_STORAGE_GCS_BUCKET: 'no-such-bucket' }));
    try {
      const res = await fetch(`${wrong.debugUrl}/readyz`);
      const body = await res.text();
      assert.equal(res.status, 503, body);
      assert.match(body, /the bucket does not exist \(storage\.gcs\.bucket\)/);
    } finally {
      await wrong.stop();
    }
  });
});
