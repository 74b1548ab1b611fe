// The bridge from operator to registry: the ConfigMap and container environment the operator rendered for an example
// Registry, read back from a real API server, run by `berth serve` exactly as a pod would, and pushed to and pulled
// from with skopeo. Only what the pod's volume mount and network give (the data directory, the listen addresses) is
// substituted.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
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
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startSeaweedS3, type SeaweedS3 } from '../helpers/seaweedfs.js';
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

  /** skopeo pushes the image to `registry` and pulls it back; resolves `host:port`. */
  async function roundTrip(running: ChildRegistry): Promise<string> {
    const host = `127.0.0.1:${running.port}`;
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
    return host;
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
    const host = await roundTrip(registry);
    // deleteEnabled: true in the example reaches the registry.
    await skopeo(ctx, ['delete', '--tls-verify=false', `docker://${host}/team/app:v1`]);
    const gone = await fetch(`${registry.url}/v2/team/app/manifests/${image.manifestDigest}`, { method: 'HEAD' });
    assert.equal(gone.status, 404);
  });

  describe('the S3 example on SeaweedFS', () => {
    let s3: SeaweedS3 | undefined;
    let redis: RedisServer | undefined;

    after(async () => {
      await registry?.stop();
      registry = undefined;
      await s3?.stop();
      await redis?.stop();
    });

    it('serves pushes and pulls with the ConfigMap and environment the operator renders for examples/s3.yaml', async () => {
      s3 = await startSeaweedS3();
      redis = await startRedis();
      const bucket = await s3.createBucket();
      // The example as a user fills it in for their bucket: its credentials in the Secret, its bucket, region and
      // endpoint (path style, as S3-compatible servers take it).
      await kubectlOk(cluster, ['apply', '-f', join(EXAMPLES_DIR, 's3.yaml')]);
      await kubectlOk(cluster, [
        'patch',
        'secret',
        'registry-s3',
        '-n',
        NS,
        '--type=merge',
        '-p',
        JSON.stringify({ stringData: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey } }),
      ]);
      await kubectlOk(cluster, [
        'patch',
        'registry',
        'registry-s3',
        '-n',
        NS,
        '--type=merge',
        '-p',
        JSON.stringify({
          spec: { storage: { s3: { bucket, region: s3.region, endpoint: s3.endpoint, forcePathStyle: true } } },
        }),
      ]);
      const configYml = await waitFor('the ConfigMap with the bucket', async () => {
        const map = await getObject(cluster, 'configmap', 'registry-s3-config', NS);
        const yml = map === undefined ? '' : String((at(map, 'data') as Json)['config.yml']);
        return yml.includes(bucket) ? yml : undefined;
      });
      const deployment = await getObject(cluster, 'deployment', 'registry-s3', NS);
      const configFile = join(work, 's3-config.yml');
      await writeFile(configFile, configYml);
      const verified = await runCommand(process.execPath, [CLI, 'verify', configFile], { timeoutMs: 30_000 });
      assert.equal(verified.code, 0, verified.stderr);
      assert.match(verified.stdout, /storage s3/);
      assert.doesNotMatch(verified.stdout, /ignored/);
      const env = await containerEnv(deployment as Json);
      // The credentials come from the Secret, by environment; the config file holds none.
      assert.equal(env['REGISTRY_STORAGE_S3_ACCESSKEY'], s3.accessKey);
      assert.doesNotMatch(configYml, new RegExp(s3.secretKey));
      registry = await spawnRegistry(
        {
          ...env,
          // What the pod's network provides: the Redis the example names, and the listen addresses.
          REGISTRY_REDIS_ADDRS: `[${redis.addr}]`,
          REGISTRY_HTTP_ADDR: '127.0.0.1:0',
          REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:0',
        },
        configFile,
      );
      await roundTrip(registry);
      // The bytes are in the bucket, not on a disk.
      const listed = await s3.client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: 'docker/registry/v2/blobs/' }),
      );
      assert.ok((listed.KeyCount ?? 0) > 0, 'blobs in the bucket');
    });
  });
});
