// The bridge from operator to registry: the ConfigMap and container environment the operator rendered for an example
// Registry, read back from a real API server, run by `berth serve` exactly as a pod would, and pushed to and pulled
// from with skopeo. Only what the pod's volume mount and network give (the data directory, the listen addresses) is
// substituted.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunningOperator } from '../../src/operator/main.js';
import { CLI, removeDir, spawnRegistry, tempDir, type ChildRegistry } from '../helpers/harness.js';
import {
  buildOciLayout,
  runCommand,
  skopeo,
  skopeoContext,
  type BuiltLayout,
  type SkopeoContext,
} from '../helpers/images.js';
import type { KubeCluster } from '../helpers/kube.js';
import {
  EXAMPLES_DIR,
  at,
  getObject,
  kubectlOk,
  runOperator,
  startClusterWithCrds,
  waitFor,
} from '../helpers/operator.js';

type Json = Record<string, unknown>;
const NS = 'berth-examples';

interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: { readonly secretKeyRef?: { readonly name: string; readonly key: string } };
}

describe('operator-rendered config run by berth serve @integration', function () {
  this.timeout(180_000);
  let cluster: KubeCluster;
  let operator: RunningOperator | undefined;
  let registry: ChildRegistry | undefined;
  let work: string;
  let ctx: SkopeoContext;
  let image: BuiltLayout;

  before(async function () {
    cluster = await startClusterWithCrds([NS]);
    operator = await runOperator(cluster.kubeconfig);
    work = await tempDir('berth-bridge-');
    ctx = await skopeoContext(work);
    image = await buildOciLayout(work, 'image', 'v1', [
      { 'etc/motd': 'through the operator\n' },
      { 'data/blob': randomBytes(256 * 1024) },
    ]);
  });

  after(async () => {
    await registry?.stop();
    await operator?.stop();
    await cluster?.dispose();
    if (work !== undefined) await removeDir(work);
  });

  /** The environment of the Deployment's registry container, with Secret references resolved as the kubelet does. */
  async function containerEnv(deployment: Json): Promise<Record<string, string>> {
    const containers = at(deployment, 'spec.template.spec.containers') as Json[];
    const container = containers.find((c) => c['name'] === 'registry');
    assert.ok(container !== undefined, 'no registry container');
    const env: Record<string, string> = {};
    for (const v of (container['env'] ?? []) as EnvVar[]) {
      if (v.value !== undefined) env[v.name] = v.value;
      const ref = v.valueFrom?.secretKeyRef;
      if (ref !== undefined) {
        const secret = await getObject(cluster, 'secret', ref.name, NS);
        const data = at(secret, 'data') as Record<string, string>;
        const encoded = data[ref.key];
        assert.ok(encoded !== undefined, `secret ${ref.name} has no ${ref.key}`);
        env[v.name] = Buffer.from(encoded, 'base64').toString('utf8');
      }
    }
    return env;
  }

  it('serves pushes and pulls with the filesystem example’s ConfigMap and environment', async () => {
    await kubectlOk(cluster, ['apply', '-f', join(EXAMPLES_DIR, 'filesystem-pvc.yaml')]);
    const configMap = await waitFor('the rendered ConfigMap', () =>
      getObject(cluster, 'configmap', 'registry-config', NS),
    );
    const deployment = await waitFor('the Deployment', () => getObject(cluster, 'deployment', 'registry', NS));
    const configYml = String((at(configMap, 'data') as Json)['config.yml']);
    const configFile = join(work, 'config.yml');
    await writeFile(configFile, configYml);

    // The config the operator rendered passes Berth's own check, with nothing ignored.
    const verified = await runCommand(process.execPath, [CLI, 'verify', configFile], { timeoutMs: 30_000 });
    assert.equal(verified.code, 0, verified.stderr);
    assert.doesNotMatch(verified.stdout, /ignored/);
    assert.match(verified.stdout, /storage filesystem/);

    const env = await containerEnv(deployment as Json);
    assert.ok((env['REGISTRY_HTTP_SECRET'] ?? '').length >= 32, 'the generated HTTP secret reaches the container');
    const mounts = at(deployment, 'spec.template.spec.containers') as Json[];
    const dataMount = ((mounts[0]?.['volumeMounts'] ?? []) as Json[]).find((m) => m['name'] === 'data');
    assert.equal(dataMount?.['mountPath'], '/var/lib/registry');
    assert.match(configYml, /rootdirectory: \/var\/lib\/registry/);

    const data = join(work, 'data');
    registry = await spawnRegistry(
      {
        ...env,
        // What the pod's volume mount and network provide; the rest is exactly the operator's.
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: data,
        REGISTRY_HTTP_ADDR: '127.0.0.1:0',
        REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:0',
      },
      configFile,
    );
    const host = `127.0.0.1:${registry.port}`;
    await skopeo(ctx, [
      'copy',
      '--dest-tls-verify=false',
      `oci:${image.dir}:${image.tag}`,
      `docker://${host}/team/app:v1`,
    ]);
    const inspected = JSON.parse(
      (await skopeo(ctx, ['inspect', '--tls-verify=false', `docker://${host}/team/app:v1`])).stdout,
    ) as Json;
    assert.equal(inspected['Digest'], image.manifestDigest);
    const out = join(work, 'pulled');
    await skopeo(ctx, ['copy', '--src-tls-verify=false', `docker://${host}/team/app:v1`, `oci:${out}:v1`]);
    const pulled = await skopeo(ctx, ['inspect', `oci:${out}:v1`]);
    assert.equal((JSON.parse(pulled.stdout) as Json)['Digest'], image.manifestDigest);
    // deleteEnabled: true in the example reaches the registry.
    await skopeo(ctx, ['delete', '--tls-verify=false', `docker://${host}/team/app:v1`]);
    const gone = await fetch(`${registry.url}/v2/team/app/manifests/${image.manifestDigest}`, { method: 'HEAD' });
    assert.equal(gone.status, 404);
  });
});
