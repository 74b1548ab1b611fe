// `berth serve` on the azure driver against a real Azurite, configured by REGISTRY_STORAGE_AZURE_* alone: skopeo
// pushes a multi-layer image (one layer of several blocks) and pulls it back byte for byte through the SAS redirects,
// the OCI conformance suite passes its four workflows, and a wrong key or a missing container makes /readyz name the
// setting to check.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startAzurite, type Azurite } from '../helpers/azurite.js';
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

const CONFORMANCE_BIN = join(TOOLS_BIN, 'oci-conformance');
const MiB = 1024 * 1024;

describe('berth serve on azure (Azurite) @integration', function () {
  this.timeout(360_000);

  let azurite: Azurite;
  let container: string;
  let work: string;
  let registry: ChildRegistry | undefined;
  let ctx: SkopeoContext;
  let source: BuiltLayout;
  let sourceBlobs: Map<string, Buffer>;
  let host: string;

  /** The environment that configures the azure driver for the test server, with the account's key. */
  function azureEnv(overrides: Record<string, string> = {}): Record<string, string> {
    return {
      REGISTRY_STORAGE: 'azure',
      REGISTRY_STORAGE_AZURE_ACCOUNTNAME: azurite.accountName,
      REGISTRY_STORAGE_AZURE_ACCOUNTKEY: azurite.accountKey,
      REGISTRY_STORAGE_AZURE_SERVICEURL: azurite.serviceUrl,
      REGISTRY_STORAGE_AZURE_CONTAINER: container,
      REGISTRY_STORAGE_AZURE_ROOTDIRECTORY: '/registry',
      REGISTRY_STORAGE_DELETE_ENABLED: 'true',
      ...overrides,
    };
  }

  before(async function () {
    azurite = await startAzurite();
    container = await azurite.createContainer();
    work = await tempDir('berth-azure-registry-');
    ctx = await skopeoContext(work);
    source = await buildOciLayout(work, 'source', 'v1', [
      { 'etc/motd': 'pushed to Berth on Azure\n' },
      // More than two 4 MiB blocks: staged in parts, committed at once, then copied into the blob store.
      { 'data/random.bin': randomBytes(9 * MiB + 333) },
      { 'app/a.txt': 'a\n'.repeat(5000), 'app/empty': '' },
    ]);
    sourceBlobs = await readLayoutBlobs(source.dir);
    const manifestBytes = sourceBlobs.get(source.manifestDigest);
    assert.ok(manifestBytes !== undefined);
    assert.equal(parseImageManifest(manifestBytes).layers.length, 3);
    registry = await spawnRegistry(azureEnv());
    host = `127.0.0.1:${registry.port}`;
  });

  after(async function () {
    if (registry !== undefined) await registry.stop();
    if (work !== undefined) await removeDir(work);
    await azurite?.stop();
  });

  it('is ready: /readyz reaches the container', async function () {
    assert.ok(registry !== undefined);
    const res = await fetch(`${registry.debugUrl}/readyz`);
    assert.equal(res.status, 200, await res.text());
  });

  it('takes a multi-layer image from skopeo and gives it back byte for byte, the layers through SAS redirects', async function () {
    await skopeo(ctx, [
      'copy',
      '--dest-tls-verify=false',
      `oci:${source.dir}:${source.tag}`,
      `docker://${host}/azure/image:v1`,
    ]);
    // A blob GET answers 307 to a read-only SAS URL on Azurite.
    const layer = parseImageManifest(sourceBlobs.get(source.manifestDigest) ?? Buffer.alloc(0)).layers[1];
    assert.ok(layer !== undefined);
    const res = await fetch(`http://${host}/v2/azure/image/blobs/${layer.digest}`, { redirect: 'manual' });
    assert.equal(res.status, 307);
    const location = res.headers.get('location') ?? '';
    assert.ok(location.startsWith(`${azurite.serviceUrl}/${container}/registry/`), location);
    assert.match(location, /[?&]sig=/);
    const out = join(work, 'pulled');
    await skopeo(ctx, ['copy', '--src-tls-verify=false', `docker://${host}/azure/image:v1`, `oci:${out}:v1`]);
    const index = await readLayoutIndex(out);
    assert.equal(index.manifests[0]?.digest, source.manifestDigest);
    const pulled = await readLayoutBlobs(out);
    assert.deepEqual([...pulled.keys()].sort(), [...sourceBlobs.keys()].sort());
    for (const [digest, bytes] of sourceBlobs) {
      const copy = pulled.get(digest);
      assert.ok(copy !== undefined && copy.equals(bytes), `blob ${digest} differs after the round trip`);
      assert.equal(sha256(copy), digest);
    }
  });

  it('passes the OCI conformance suite’s four workflows', async function () {
    assert.ok(registry !== undefined);
    if (!(await exists(CONFORMANCE_BIN)))
      assert.fail(`${CONFORMANCE_BIN} is missing: run scripts/install-test-tools.sh`);
    const reportDir = await tempDir('berth-azure-conformance-');
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
    console.log(`      conformance on azure: ${summary?.[0] ?? 'no summary'} (report: ${junitPath})`);
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

  it('reports a wrong key on /readyz, naming the settings to check', async function () {
    const wrong = await spawnRegistry(
      azureEnv({ REGISTRY_STORAGE_AZURE_ACCOUNTKEY: randomBytes(64).toString('base64') }),
    );
    try {
      const res = await fetch(`${wrong.debugUrl}/readyz`);
      const body = await res.text();
      assert.equal(res.status, 503, body);
      assert.match(body, /refused the credentials/);
      assert.match(body, /storage\.azure\.accountname and storage\.azure\.accountkey/);
    } finally {
      await wrong.stop();
    }
  });

  it('reports a missing container on /readyz, naming the setting to check', async function () {
    const wrong = await spawnRegistry(azureEnv({ REGISTRY_STORAGE_AZURE_CONTAINER: 'no-such-container' }));
    try {
      const res = await fetch(`${wrong.debugUrl}/readyz`);
      const body = await res.text();
      assert.equal(res.status, 503, body);
      assert.match(body, /the container does not exist \(storage\.azure\.container\)/);
    } finally {
      await wrong.stop();
    }
  });
});
