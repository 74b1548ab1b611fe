// `berth serve` on the s3 driver against a real SeaweedFS, configured by REGISTRY_STORAGE_S3_* alone: skopeo pushes
// a multi-layer image (one layer bigger than several parts) and pulls it back byte for byte, the OCI conformance
// suite passes its four workflows, and wrong credentials make /readyz say which settings to check.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
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
import { startSeaweedS3, type SeaweedS3 } from '../helpers/seaweedfs.js';

const CONFORMANCE_BIN = join(TOOLS_BIN, 'oci-conformance');
const MiB = 1024 * 1024;

describe('berth serve on s3 (SeaweedFS) @integration', function () {
  this.timeout(360_000);

  let s3: SeaweedS3;
  let bucket: string;
  let work: string;
  let registry: ChildRegistry | undefined;
  let ctx: SkopeoContext;
  let source: BuiltLayout;
  let sourceBlobs: Map<string, Buffer>;
  let host: string;

  /** The environment that configures the s3 driver for the test server; the smallest part size, to cut many parts. */
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
      REGISTRY_STORAGE_S3_MULTIPARTCOPYCHUNKSIZE: String(5 * MiB),
      REGISTRY_STORAGE_S3_MULTIPARTCOPYTHRESHOLDSIZE: String(5 * MiB),
      REGISTRY_STORAGE_DELETE_ENABLED: 'true',
      ...overrides,
    };
  }

  before(async function () {
    s3 = await startSeaweedS3();
    bucket = await s3.createBucket();
    work = await tempDir('berth-s3-registry-');
    ctx = await skopeoContext(work);
    source = await buildOciLayout(work, 'source', 'v1', [
      { 'etc/motd': 'pushed to Berth on S3\n' },
      // Bigger than two parts: a multipart upload, then a multipart copy into the blob store.
      { 'data/random.bin': randomBytes(12 * MiB + 333) },
      { 'app/a.txt': 'a\n'.repeat(5000), 'app/empty': '' },
    ]);
    sourceBlobs = await readLayoutBlobs(source.dir);
    const manifestBytes = sourceBlobs.get(source.manifestDigest);
    assert.ok(manifestBytes !== undefined);
    assert.equal(parseImageManifest(manifestBytes).layers.length, 3);
    registry = await spawnRegistry(s3Env());
    host = `127.0.0.1:${registry.port}`;
  });

  after(async function () {
    if (registry !== undefined) await registry.stop();
    if (work !== undefined) await removeDir(work);
    await s3?.stop();
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
      `docker://${host}/s3/image:v1`,
    ]);
    const out = join(work, 'pulled');
    await skopeo(ctx, ['copy', '--src-tls-verify=false', `docker://${host}/s3/image:v1`, `oci:${out}:v1`]);
    const index = await readLayoutIndex(out);
    assert.equal(index.manifests[0]?.digest, source.manifestDigest);
    const pulled = await readLayoutBlobs(out);
    assert.deepEqual([...pulled.keys()].sort(), [...sourceBlobs.keys()].sort());
    for (const [digest, bytes] of sourceBlobs) {
      const copy = pulled.get(digest);
      assert.ok(copy !== undefined && copy.equals(bytes), `blob ${digest} differs after the round trip`);
      assert.equal(sha256(copy), digest);
    }
    // Every multipart upload was completed or aborted.
    const uploads = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    assert.equal(uploads.Uploads?.length ?? 0, 0);
  });

  it('passes the OCI conformance suite’s four workflows', async function () {
    assert.ok(registry !== undefined);
    if (!(await exists(CONFORMANCE_BIN)))
      assert.fail(`${CONFORMANCE_BIN} is missing: run scripts/install-test-tools.sh`);
    const reportDir = await tempDir('berth-s3-conformance-');
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
    console.log(`      conformance on s3: ${summary?.[0] ?? 'no summary'} (report: ${junitPath})`);
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

  it('reports wrong credentials on /readyz, naming the settings to check', async function () {
    const wrong = await spawnRegistry(s3Env({ REGISTRY_STORAGE_S3_SECRETKEY: 'wrong-secret' }));
    try {
      const res = await fetch(`${wrong.debugUrl}/readyz`);
      const body = await res.text();
      assert.equal(res.status, 503, body);
      assert.match(body, /refused the credentials/);
      assert.match(body, /storage\.s3\.accesskey and storage\.s3\.secretkey/);
      // And once in the log, at start, in one line naming the settings.
      let line: Record<string, unknown> | undefined;
      for (let i = 0; i < 50 && line === undefined; i++) {
        line = wrong.logs.find((l) => l['msg'] === 'storage is not reachable');
        if (line === undefined) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(line, JSON.stringify(wrong.logs));
      assert.match(String(line['err']), /storage\.s3\.accesskey and storage\.s3\.secretkey/);
      assert.equal(wrong.logs.filter((l) => l['msg'] === 'storage is not reachable').length, 1);
    } finally {
      await wrong.stop();
    }
  });
});
