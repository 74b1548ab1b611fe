// The bridge from operator to registry: the ConfigMap and container environment the operator rendered for an example
// Registry, read back from a real API server, run by `berth serve` exactly as a pod would, and pushed to and pulled
// from with skopeo. Only what the pod's volume mount and network give (the data directory, the listen addresses) is
// substituted.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
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
import { startAzurite, type Azurite } from '../helpers/azurite.js';
import { startReceiver } from '../helpers/receiver.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startSeaweedS3, type SeaweedS3 } from '../helpers/seaweedfs.js';
import { issueCert, makeCa } from '../helpers/token-issuer.js';
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

  // Each test runs its own `berth serve`: stop it before the next, whatever the test's outcome.
  afterEach(async () => {
    await registry?.stop();
    registry = undefined;
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
    return resolveEnv(container);
  }

  /** A container's environment, with Secret references resolved as the kubelet does. */
  async function resolveEnv(container: Json): Promise<Record<string, string>> {
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

  it('sends notifications as spec.notifications says, with a header from a Secret that never reaches the ConfigMap', async () => {
    const receiver = await startReceiver();
    try {
      const token = `Bearer ${randomBytes(12).toString('hex')} #1`;
      await kubectlOk(cluster, [
        'create',
        'secret',
        'generic',
        'hook-token',
        '-n',
        NS,
        `--from-literal=value=${token}`,
      ]);
      const spec = [
        'storage: {emptyDir: {}}',
        'notifications:',
        '  endpoints:',
        `  - {name: ci, url: "${receiver.url}", headers: {X-Team: builds}, timeout: 2s, ignoredActions: [pull],`,
        '     headerSecrets: [{header: Authorization, name: hook-token}]}',
      ].join('\n');
      await kubectlOk(
        cluster,
        ['apply', '-f', '-'],
        `apiVersion: berth.dev/v1alpha1\nkind: Registry\nmetadata: {name: hooks, namespace: ${NS}}\nspec:\n${spec
          .split('\n')
          .map((l) => `  ${l}`)
          .join('\n')}\n`,
      );
      const configMap = await waitFor('the rendered ConfigMap', () =>
        getObject(cluster, 'configmap', 'hooks-config', NS),
      );
      const deployment = await waitFor('the Deployment', () => getObject(cluster, 'deployment', 'hooks', NS));
      const configYml = String((at(configMap, 'data') as Json)['config.yml']);
      assert.doesNotMatch(configYml, new RegExp(token.split(' ')[1] ?? 'x'), 'the token stays out of the ConfigMap');
      const configFile = join(work, 'hooks.yml');
      await writeFile(configFile, configYml);
      const verified = await runCommand(process.execPath, [CLI, 'verify', configFile], { timeoutMs: 30_000 });
      assert.equal(verified.code, 0, verified.stderr);
      assert.doesNotMatch(verified.stdout, /ignored/);

      const env = await containerEnv(deployment as Json);
      registry = await spawnRegistry(
        {
          ...env,
          REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(work, 'hooks-data'),
          REGISTRY_HTTP_ADDR: '127.0.0.1:0',
          REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:0',
        },
        configFile,
      );
      await roundTrip(registry);
      const pushed = await waitFor('the manifest push event', async () =>
        receiver.received.find((r) =>
          r.body.events.some((e) => e.action === 'push' && e.target['digest'] === image.manifestDigest),
        ),
      );
      assert.equal(pushed.headers['authorization'], token);
      assert.equal(pushed.headers['x-team'], 'builds');
      // skopeo pulled the image back; ignoredActions kept those events from this endpoint.
      assert.equal(receiver.events().filter((e) => e.action === 'pull').length, 0);
    } finally {
      await receiver.close();
    }
  });

  it('collects garbage by running exactly the command, config and environment of the gc.schedule CronJob', async () => {
    const spec = [
      'storage: {filesystem: {accessMode: ReadWriteMany}}',
      'cache: {type: none}',
      'deleteEnabled: true',
      'gc: {schedule: "*/30 * * * *", gracePeriod: 1s}',
    ].join('\n');
    await kubectlOk(
      cluster,
      ['apply', '-f', '-'],
      `apiVersion: berth.dev/v1alpha1\nkind: Registry\nmetadata: {name: collected, namespace: ${NS}}\nspec:\n${spec
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n')}\n`,
    );
    const cron = await waitFor('the CronJob', () => getObject(cluster, 'cronjob', 'collected-gc', NS));
    const configMap = await waitFor('the ConfigMap', () => getObject(cluster, 'configmap', 'collected-config', NS));
    const deployment = await waitFor('the Deployment', () => getObject(cluster, 'deployment', 'collected', NS));
    const configYml = String((at(configMap, 'data') as Json)['config.yml']);
    const configFile = join(work, 'collected.yml');
    await writeFile(configFile, configYml);
    const pod = at(cron, 'spec.jobTemplate.spec.template.spec') as Json;
    const [container] = pod['containers'] as Json[];
    assert.ok(container !== undefined, 'no CronJob container');
    const args = container['args'] as string[];
    // Where the pod's volumes are mounted: the only paths this test substitutes.
    const mounts = Object.fromEntries(
      (container['volumeMounts'] as Json[]).map((m) => [String(m['name']), String(m['mountPath'])]),
    );
    assert.equal(mounts['config'], '/etc/berth');
    assert.equal(mounts['data'], '/var/lib/registry');
    assert.ok(args.includes('/etc/berth/config.yml'), args.join(' '));
    const data = join(work, 'collected-data');

    // An image pushed and deleted through a registry serving this config leaves its blobs behind.
    registry = await spawnRegistry(
      {
        ...(await containerEnv(deployment as Json)),
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: data,
        REGISTRY_HTTP_ADDR: '127.0.0.1:0',
        REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:0',
      },
      configFile,
    );
    const host = await roundTrip(registry);
    await skopeo(ctx, ['delete', '--tls-verify=false', `docker://${host}/team/app:v1`]);
    const blobsDir = join(data, 'docker/registry/v2/blobs/sha256');
    const countBlobs = async (): Promise<number> => {
      let n = 0;
      for (const prefix of await readdir(blobsDir)) n += (await readdir(join(blobsDir, prefix))).length;
      return n;
    };
    const before = await countBlobs();
    assert.ok(before >= 3, `blobs before: ${before}`);
    const manifest = JSON.parse(
      await readFile(join(image.dir, 'blobs', 'sha256', image.manifestDigest.slice('sha256:'.length)), 'utf8'),
    ) as { layers: { digest: string }[] };
    const layer = manifest.layers[0]?.digest ?? '';
    const headLayer = async (): Promise<number> =>
      (await fetch(`${registry?.url ?? ''}/v2/team/app/blobs/${layer}`, { method: 'HEAD' })).status;
    assert.equal(await headLayer(), 200, 'the layer is still served before collection');
    // Past the one-second grace period.
    await new Promise((r) => setTimeout(r, 1_500));

    // The CronJob's command, run as its pod would run it, while the registry keeps serving.
    const env = await resolveEnv(container);
    const collected = await runCommand(
      process.execPath,
      [CLI, ...args.map((a) => (a === '/etc/berth/config.yml' ? configFile : a))],
      {
        env: { PATH: process.env['PATH'] ?? '', ...env, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: data },
        timeoutMs: 60_000,
      },
    );
    assert.equal(collected.code, 0, collected.stderr);
    assert.match(collected.stdout, new RegExp(`^${before} blobs, .* freed`, 'm'));
    assert.equal(await countBlobs(), 0, 'every blob of the deleted image swept');
    assert.equal(await headLayer(), 404, 'the serving registry no longer has the swept layer');
  });

  describe('the S3 example on SeaweedFS', () => {
    let s3: SeaweedS3 | undefined;
    let redis: RedisServer | undefined;

    after(async () => {
      await registry?.stop();
      registry = undefined;
      await s3?.stop();
      await redis?.dispose();
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

  describe('the secure example: htpasswd, a policy and TLS', () => {
    after(async () => {
      await registry?.stop();
      registry = undefined;
    });

    it('runs examples/secure.yaml as rendered, and skopeo round-trips with --creds over TLS', async () => {
      // The certificate's Secret, as cert-manager would write it (here from a test CA made with openssl).
      const ca = await makeCa(work, 'bridge-ca');
      const server = await issueCert(work, ca, 'bridge-registry', 'server');
      await kubectlOk(cluster, [
        'create',
        'secret',
        'tls',
        'registry-secure-tls',
        '-n',
        NS,
        `--cert=${server.cert}`,
        `--key=${server.key}`,
      ]);
      await kubectlOk(cluster, ['apply', '-f', join(EXAMPLES_DIR, 'secure.yaml')]);
      const deployment = await waitFor('the Deployment', () => getObject(cluster, 'deployment', 'registry-secure', NS));
      const configMap = await getObject(cluster, 'configmap', 'registry-secure-config', NS);
      const configYml = String((at(configMap, 'data') as Json)['config.yml']);
      const configFile = join(work, 'secure-config.yml');
      await writeFile(configFile, configYml);
      const verified = await runCommand(process.execPath, [CLI, 'verify', configFile], { timeoutMs: 30_000 });
      assert.equal(verified.code, 0, verified.stderr);
      assert.doesNotMatch(verified.stdout, /ignored/);

      // What the pod's Secret volumes hold, written where this test can: the config's paths are the mount points.
      const mounted = async (secretName: string, key: string, file: string): Promise<string> => {
        const secret = await getObject(cluster, 'secret', secretName, NS);
        const data = (at(secret, 'data') as Record<string, string>)[key];
        assert.ok(data !== undefined, `${secretName} has ${key}`);
        const path = join(work, 'mounts', file);
        await mkdir(join(path, '..'), { recursive: true });
        await writeFile(path, Buffer.from(data, 'base64'));
        return path;
      };
      const config = configYml;
      assert.match(config, /path: \/etc\/berth\/auth\/htpasswd/);
      assert.match(config, /certificate: \/etc\/berth\/tls\/tls.crt/);
      const env = await containerEnv(deployment as Json);
      registry = await spawnRegistry(
        {
          ...env,
          REGISTRY_AUTH_HTPASSWD_PATH: await mounted('registry-users', 'htpasswd', 'auth/htpasswd'),
          REGISTRY_HTTP_TLS_CERTIFICATE: await mounted('registry-secure-tls', 'tls.crt', 'tls/tls.crt'),
          REGISTRY_HTTP_TLS_KEY: await mounted('registry-secure-tls', 'tls.key', 'tls/tls.key'),
          REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(work, 'secure-data'),
          REGISTRY_HTTP_ADDR: '127.0.0.1:0',
          REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:0',
        },
        configFile,
      );
      const host = `127.0.0.1:${registry.port}`;
      const certDir = join(work, 'secure-certs.d');
      await mkdir(certDir, { recursive: true });
      await copyFile(ca.caCert, join(certDir, 'ca.crt'));
      // alice (team-a) pushes to team-a/ and library/; anyone pulls library/; nobody pushes anonymously.
      await skopeo(ctx, [
        'copy',
        '--dest-creds',
        'alice:CHANGE-ME',
        '--dest-cert-dir',
        certDir,
        `oci:${image.dir}:${image.tag}`,
        `docker://${host}/library/base:v1`,
      ]);
      const anonymous = await skopeo(ctx, ['inspect', '--cert-dir', certDir, `docker://${host}/library/base:v1`]);
      assert.equal((JSON.parse(anonymous.stdout) as Json)['Digest'], image.manifestDigest);
      const refused = await runCommand(
        ctx.bin,
        [
          '--policy',
          ctx.policy,
          'copy',
          '--dest-cert-dir',
          certDir,
          `oci:${image.dir}:${image.tag}`,
          `docker://${host}/library/other:v1`,
        ],
        { env: ctx.env, timeoutMs: 60_000 },
      );
      assert.notEqual(refused.code, 0, 'an anonymous push is refused');
      assert.match(refused.stderr, /unauthorized|authentication required/i);
      const bobPush = await runCommand(
        ctx.bin,
        [
          '--policy',
          ctx.policy,
          'copy',
          '--dest-creds',
          'bob:CHANGE-ME',
          '--dest-cert-dir',
          certDir,
          `oci:${image.dir}:${image.tag}`,
          `docker://${host}/team-a/app:v1`,
        ],
        { env: ctx.env, timeoutMs: 60_000 },
      );
      assert.notEqual(bobPush.code, 0, 'bob, not in team-a, may not push there');
      // Over TLS only: the certificate the example names is the one served.
      const served = await readFile(join(work, 'mounts', 'tls', 'tls.crt'), 'utf8');
      assert.match(served, /BEGIN CERTIFICATE/);
      const plain = await fetch(`http://${host}/v2/`).then(
        (r) => r.status,
        () => 0,
      );
      assert.equal(plain, 0, 'plain HTTP on the TLS port fails');
    });
  });

  describe('the Azure example on Azurite', () => {
    let azurite: Azurite | undefined;
    let redis: RedisServer | undefined;

    after(async () => {
      await registry?.stop();
      registry = undefined;
      await azurite?.stop();
      await redis?.dispose();
    });

    it('serves pushes and pulls with the ConfigMap and environment the operator renders for examples/azure.yaml', async () => {
      azurite = await startAzurite();
      redis = await startRedis();
      const container = await azurite.createContainer();
      // The example as a user fills it in: the account key in the Secret, the account, container and service URL.
      await kubectlOk(cluster, ['apply', '-f', join(EXAMPLES_DIR, 'azure.yaml')]);
      await kubectlOk(cluster, [
        'patch',
        'secret',
        'registry-azure',
        '-n',
        NS,
        '--type=merge',
        '-p',
        JSON.stringify({ stringData: { accountKey: azurite.accountKey } }),
      ]);
      await kubectlOk(cluster, [
        'patch',
        'registry',
        'registry-azure',
        '-n',
        NS,
        '--type=merge',
        '-p',
        JSON.stringify({
          spec: { storage: { azure: { accountName: azurite.accountName, container, serviceURL: azurite.serviceUrl } } },
        }),
      ]);
      const configYml = await waitFor('the ConfigMap with the container', async () => {
        const map = await getObject(cluster, 'configmap', 'registry-azure-config', NS);
        const yml = map === undefined ? '' : String((at(map, 'data') as Json)['config.yml']);
        return yml.includes(container) ? yml : undefined;
      });
      const deployment = await getObject(cluster, 'deployment', 'registry-azure', NS);
      const configFile = join(work, 'azure-config.yml');
      await writeFile(configFile, configYml);
      const verified = await runCommand(process.execPath, [CLI, 'verify', configFile], { timeoutMs: 30_000 });
      assert.equal(verified.code, 0, verified.stderr);
      assert.match(verified.stdout, /storage azure/);
      assert.doesNotMatch(verified.stdout, /ignored/);
      const env = await containerEnv(deployment as Json);
      assert.equal(env['REGISTRY_STORAGE_AZURE_ACCOUNTKEY'], azurite.accountKey);
      assert.doesNotMatch(configYml, new RegExp(azurite.accountKey.replace(/[+/=]/g, '.')));
      registry = await spawnRegistry(
        {
          ...env,
          REGISTRY_REDIS_ADDRS: `[${redis.addr}]`,
          REGISTRY_HTTP_ADDR: '127.0.0.1:0',
          REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:0',
        },
        configFile,
      );
      await roundTrip(registry);
      let blobs = 0;
      for await (const _ of azurite.client.getContainerClient(container).listBlobsFlat()) blobs++;
      assert.ok(blobs > 0, 'blobs in the container');
    });
  });
});
