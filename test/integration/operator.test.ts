// The operator against a real etcd and kube-apiserver: the CRD's schema and CEL rules, every example, the objects the
// operator makes for each, drift repair, status, management states, leader election and an API-server restart.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { builtInImage, type RunningOperator } from '../../src/operator/main.js';
import { REPO_ROOT, TOOLS_BIN } from '../helpers/harness.js';
import { runCommand } from '../helpers/images.js';
import type { KubeCluster } from '../helpers/kube.js';
import {
  EXAMPLES_DIR,
  OPERATOR_NAMESPACE,
  at,
  awaitCondition,
  condition,
  deleteAndAwaitRepair,
  ensureNamespace,
  getObject,
  installServiceMonitorCrd,
  kubectlOk,
  markDeploymentAvailable,
  runOperator,
  spawnOperator,
  startClusterWithCrds,
  waitFor,
} from '../helpers/operator.js';

type Json = Record<string, unknown>;
const NS = 'berth-examples';
const OWNED_KINDS =
  'deployments,services,configmaps,secrets,persistentvolumeclaims,poddisruptionbudgets,horizontalpodautoscalers,serviceaccounts,cronjobs';

/** `Kind/name` of every object the operator made for one Registry. */
async function ownedObjects(cluster: KubeCluster, namespace: string, instance: string): Promise<string[]> {
  const out = await kubectlOk(cluster, [
    'get',
    OWNED_KINDS,
    '-n',
    namespace,
    '-l',
    `app.kubernetes.io/managed-by=berth-operator,app.kubernetes.io/instance=${instance}`,
    '-o',
    'json',
  ]);
  const items = (JSON.parse(out) as { items: Json[] }).items;
  return items.map((i) => `${String(i['kind'])}/${String(at(i, 'metadata.name'))}`).sort();
}

function configYml(configMap: Json | undefined): string {
  const data = at(configMap, 'data') as Json | undefined;
  return String(data?.['config.yml']);
}

/** The image and pull policy of a Deployment's registry container. */
function registryImageOf(deployment: Json | undefined): { image: unknown; pullPolicy: unknown } {
  const containers = (at(deployment, 'spec.template.spec.containers') ?? []) as Json[];
  const c = containers.find((x) => x['name'] === 'registry');
  return { image: c?.['image'], pullPolicy: c?.['imagePullPolicy'] };
}

function registryYaml(name: string, spec: string, namespace = NS): string {
  return `apiVersion: berth.dev/v1alpha1\nkind: Registry\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec:\n${spec
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')}\n`;
}

/** The chart's rbac.yaml as helm renders it, bound also to `user`, with more `--set` values. */
async function renderRbac(release: string, user: string, sets: readonly string[] = []) {
  return runCommand(
    join(TOOLS_BIN, 'helm'),
    [
      'template',
      release,
      join(REPO_ROOT, 'charts', 'berth'),
      '-n',
      OPERATOR_NAMESPACE,
      '--show-only',
      'templates/rbac.yaml',
      ...sets.flatMap((set) => ['--set', set]),
      '--set',
      'rbac.extraSubjects[0].kind=User',
      '--set',
      `rbac.extraSubjects[0].name=${user}`,
      '--set',
      'rbac.extraSubjects[0].apiGroup=rbac.authorization.k8s.io',
    ],
    { timeoutMs: 60_000 },
  );
}

describe('operator against a real API server @integration', function () {
  this.timeout(120_000);
  let cluster: KubeCluster;
  let operator: RunningOperator | undefined;

  before(async function () {
    this.timeout(180_000);
    cluster = await startClusterWithCrds([NS]);
  });

  after(async () => {
    await operator?.stop();
    await cluster?.dispose();
  });

  describe('the CRD', () => {
    it('installs with kubectl apply and serves the short name reg', async () => {
      const crd = await getObject(cluster, 'crd', 'registries.berth.dev');
      assert.deepEqual(at(crd, 'spec.names.shortNames'), ['reg']);
      const r = await cluster.kubectl(['get', 'reg', '-A']);
      assert.equal(r.code, 0, r.stderr);
    });

    it('accepts every example in examples/', async () => {
      const files = (await readdir(EXAMPLES_DIR)).filter((f) => f.endsWith('.yaml'));
      assert.ok(files.length >= 5, `examples: ${files.join(', ')}`);
      for (const f of files) {
        const r = await cluster.kubectl(['apply', '-f', join(EXAMPLES_DIR, f)]);
        assert.equal(r.code, 0, `${f}: ${r.stderr}`);
      }
    });

    const invalid: [string, string, RegExp][] = [
      [
        'two storage backends',
        'storage: {filesystem: {}, emptyDir: {}}',
        /spec\.storage: .*exactly one storage backend/,
      ],
      ['a redis cache without an address', 'cache: {type: redis}', /spec\.cache\.redis: .*cache\.redis\.address/],
      [
        'three replicas on a ReadWriteOnce volume',
        'replicas: 3\nstorage: {filesystem: {accessMode: ReadWriteOnce}}',
        /spec\.replicas: .*ReadWriteOnce/,
      ],
      ['negative replicas', 'replicas: -1', /spec\.replicas: .*greater than or equal to 0/],
      ['an unknown field', 'replica: 2', /unknown field "spec\.replica"/],
      [
        'a zero volume size',
        'storage: {filesystem: {size: 0Gi}}',
        /spec\.storage\.filesystem\.size: .*positive quantity/,
      ],
      [
        'an address and a managed redis at once',
        'cache: {type: redis, redis: {managed: true, address: "r:6379"}}',
        /spec\.cache\.redis\.address: /,
      ],
      [
        'autoscaling with min above max',
        'storage: {s3: {bucket: abc}}\nautoscaling: {enabled: true, minReplicas: 5, maxReplicas: 2}',
        /spec\.autoscaling\.minReplicas: /,
      ],
      ['an unknown cache type', 'cache: {type: memcached}', /spec\.cache\.type: Unsupported value: "memcached"/],
      [
        'a gc schedule on an emptyDir, which a CronJob pod cannot mount',
        'storage: {emptyDir: {}}\ncache: {type: none}\ngc: {schedule: "0 3 * * *"}',
        /spec\.gc\.schedule: .*cannot mount an emptyDir or a ReadWriteOnce volume.*online GC inside the pod/,
      ],
      [
        'a gc schedule on a ReadWriteOnce claim',
        'storage: {filesystem: {accessMode: ReadWriteOnce}}\ncache: {type: none}\ngc: {schedule: "@daily"}',
        /spec\.gc\.schedule: .*cannot mount an emptyDir or a ReadWriteOnce volume/,
      ],
      [
        'a gc schedule with in-memory caches the CronJob cannot reach',
        'storage: {s3: {bucket: abc}}\ngc: {schedule: "@daily"}',
        /spec\.gc\.schedule: .*in-memory caches/,
      ],
      [
        'a gc schedule that is not cron',
        'storage: {s3: {bucket: abc}}\ncache: {type: none}\ngc: {schedule: "daily"}',
        /spec\.gc\.schedule: Invalid value: "daily"/,
      ],
      [
        'a grace period under a second',
        'gc: {enabled: true, gracePeriod: 500ms}',
        /spec\.gc\.gracePeriod: .*at least 1s/,
      ],
    ];
    it('rejects names that cannot become Service names, or that collide with a managed Redis', async () => {
      for (const name of ['my.registry', 'x-redis', `r${'e'.repeat(57)}`]) {
        const r = await cluster.kubectl(['apply', '-f', '-'], registryYaml(name, 'replicas: 1'));
        assert.notEqual(r.code, 0, `accepted ${name}`);
        assert.match(r.stderr, /metadata\.name must be at most 57 characters/, name);
      }
    });

    for (const [what, spec, message] of invalid) {
      it(`rejects ${what}, naming the field`, async () => {
        const r = await cluster.kubectl(['apply', '-f', '-'], registryYaml('invalid', spec));
        assert.notEqual(r.code, 0, `accepted: ${spec}`);
        assert.match(r.stderr, message);
      });
    }
  });

  describe('reconciling', () => {
    before(async () => {
      operator = await runOperator(cluster.kubeconfig);
      await waitFor('leadership', async () => (operator?.isLeader() === true ? true : undefined));
    });

    const expected: Record<string, string[]> = {
      registry: [
        'ConfigMap/registry-config',
        'Deployment/registry',
        'PersistentVolumeClaim/registry-data',
        'Secret/registry-http-secret',
        'Service/registry',
      ],
      'registry-s3': [
        'ConfigMap/registry-s3-config',
        'Deployment/registry-s3',
        'PodDisruptionBudget/registry-s3',
        'Secret/registry-s3-http-secret',
        'Service/registry-s3',
      ],
      'registry-shared': [
        'ConfigMap/registry-shared-config',
        'Deployment/registry-shared',
        'PersistentVolumeClaim/registry-shared-data',
        'Secret/registry-shared-http-secret',
        'Service/registry-shared',
      ],
      'registry-managed': [
        'ConfigMap/registry-managed-config',
        'Deployment/registry-managed',
        'PersistentVolumeClaim/registry-managed-data',
        'Secret/registry-managed-http-secret',
        'Service/registry-managed',
      ],
      'registry-hpa': [
        'ConfigMap/registry-hpa-config',
        'Deployment/registry-hpa',
        'HorizontalPodAutoscaler/registry-hpa',
        'PersistentVolumeClaim/registry-hpa-data',
        'PodDisruptionBudget/registry-hpa',
        'Secret/registry-hpa-http-secret',
        'Service/registry-hpa',
      ],
    };
    // The managed Redis carries the same instance label with component=redis.
    const redisObjects = (name: string): string[] => [`Deployment/${name}-redis`, `Service/${name}-redis`];
    expected['registry-managed']?.push(...redisObjects('registry-managed'));
    expected['registry-hpa']?.push(...redisObjects('registry-hpa'));

    for (const [name, objects] of Object.entries(expected)) {
      it(`creates exactly the expected objects for the ${name} example, each owned by the Registry`, async () => {
        const want = [...objects].sort();
        const got = await waitFor(`objects of ${name}`, async () => {
          const list = await ownedObjects(cluster, NS, name);
          return list.length === want.length ? list : undefined;
        });
        assert.deepEqual(got, want);
        const registry = await getObject(cluster, 'registry', name, NS);
        const uid = at(registry, 'metadata.uid');
        for (const ref of want) {
          const [kind = '', objName = ''] = ref.split('/');
          const obj = await getObject(cluster, kind, objName, NS, true);
          const owners = (at(obj, 'metadata.ownerReferences') ?? []) as Json[];
          if (kind === 'PersistentVolumeClaim') {
            assert.equal(owners.length, 0, 'the PVC outlives its Registry, so it has no owner');
          } else {
            assert.equal(owners.length, 1, `${ref} owners`);
            assert.equal(owners[0]?.['uid'], uid);
            assert.equal(owners[0]?.['kind'], 'Registry');
            assert.equal(owners[0]?.['controller'], true);
          }
          const managers = ((at(obj, 'metadata.managedFields') ?? []) as Json[]).map((m) => m['manager']);
          assert.ok(managers.includes('berth-operator'), `${ref} managed by ${managers.join(',')}`);
        }
        const status = await waitFor(`status of ${name}`, async () => {
          const r = await getObject(cluster, 'registry', name, NS);
          return at(r, 'status.observedGeneration') === at(r, 'metadata.generation') ? r : undefined;
        });
        const deployment = await getObject(cluster, 'deployment', name, NS);
        assert.equal(at(deployment, 'spec.template.metadata.annotations')?.constructor, Object);
        assert.equal(
          (at(deployment, 'spec.template.metadata.annotations') as Json)['berth.dev/config-hash'],
          at(status, 'status.configHash'),
        );
        assert.equal(at(status, 'status.endpoint'), `${name}.${NS}.svc:5000`);
      });
    }

    it('runs an unpinned Registry on the operator’s default image, and reports it in status.image', async () => {
      const image = builtInImage();
      assert.match(image, /^ghcr\.io\/berth-dev\/berth:\d+\.\d+\.\d+/);
      const registry = await waitFor('status.image', async () => {
        const r = await getObject(cluster, 'registry', 'registry', NS);
        return at(r, 'status.image') === undefined ? undefined : r;
      });
      assert.equal(at(registry, 'spec.image'), undefined, 'the CRD no longer defaults spec.image');
      assert.equal(at(registry, 'status.image'), image);
      assert.deepEqual(registryImageOf(await getObject(cluster, 'deployment', 'registry', NS)), {
        image,
        pullPolicy: 'IfNotPresent',
      });
      const wide = await kubectlOk(cluster, ['get', 'registry', 'registry', '-n', NS, '-o', 'wide']);
      assert.match(wide, /IMAGE/);
      assert.ok(wide.includes(image), wide);
      assert.doesNotMatch(await kubectlOk(cluster, ['get', 'registry', 'registry', '-n', NS]), /IMAGE/);
    });

    it('deploys the S3 example and an Azure Registry: object storage is ready, no driver refused', async () => {
      const s3 = await awaitCondition(cluster, NS, 'registry-s3', 'StorageReady', 'True');
      assert.notEqual(condition(s3, 'Degraded')?.status, 'True', JSON.stringify(condition(s3, 'Degraded')));
      const manifest = [
        'apiVersion: berth.dev/v1alpha1',
        'kind: Registry',
        'metadata: {name: registry-azure, namespace: berth-examples}',
        'spec: {storage: {azure: {accountName: berthtest, container: images}}}',
      ].join('\n');
      const applied = await cluster.kubectl(['apply', '-f', '-'], manifest);
      assert.equal(applied.code, 0, applied.stderr);
      try {
        const r = await awaitCondition(cluster, NS, 'registry-azure', 'StorageReady', 'True');
        assert.notEqual(condition(r, 'Degraded')?.status, 'True', JSON.stringify(condition(r, 'Degraded')));
        assert.ok(await getObject(cluster, 'deployment', 'registry-azure', NS), 'the Deployment is made');
      } finally {
        await cluster.kubectl(['delete', 'registry', 'registry-azure', '-n', NS, '--wait=true']);
      }
    });

    it('sets Ready from the Deployment status, as a kubelet reports it', async () => {
      const before = await waitFor('status', async () =>
        condition(await getObject(cluster, 'registry', 'registry', NS), 'Ready'),
      );
      assert.equal(before.status, 'False');
      await markDeploymentAvailable(cluster, NS, 'registry');
      const ready = await awaitCondition(cluster, NS, 'registry', 'Ready', 'True');
      assert.equal(condition(ready, 'Progressing')?.status, 'False');
      assert.equal(condition(ready, 'Degraded')?.status, 'False');
      assert.equal(at(ready, 'status.readyReplicas'), 1);
      await markDeploymentAvailable(cluster, NS, 'registry', 0);
      const notReady = await awaitCondition(cluster, NS, 'registry', 'Ready', 'False');
      assert.notEqual(condition(notReady, 'Ready')?.lastTransitionTime, undefined);
    });

    it('changes the config hash and observedGeneration when the spec changes', async () => {
      const before = await getObject(cluster, 'registry', 'registry', NS);
      const hash = at(before, 'status.configHash');
      await kubectlOk(cluster, [
        'patch',
        'registry',
        'registry',
        '-n',
        NS,
        '--type=merge',
        '-p',
        '{"spec":{"readOnly":true}}',
      ]);
      const after = await waitFor('new generation observed', async () => {
        const obj = await getObject(cluster, 'registry', 'registry', NS);
        const gen = Number(at(obj, 'metadata.generation'));
        return gen > Number(at(before, 'metadata.generation')) && at(obj, 'status.observedGeneration') === gen
          ? obj
          : undefined;
      });
      assert.notEqual(at(after, 'status.configHash'), hash);
      const cm = await getObject(cluster, 'configmap', 'registry-config', NS);
      assert.match(configYml(cm), /readonly:\n\s+enabled: true/);
      const deployment = await getObject(cluster, 'deployment', 'registry', NS);
      assert.equal(
        (at(deployment, 'spec.template.metadata.annotations') as Json)['berth.dev/config-hash'],
        at(after, 'status.configHash'),
      );
      assert.equal(condition(after, 'Ready')?.observedGeneration, at(after, 'metadata.generation'));
    });

    it('puts back a deleted Deployment', async () => {
      const back = await deleteAndAwaitRepair(cluster, NS, 'registry');
      assert.equal(at(back, 'spec.replicas'), 1);
    });

    it('puts back a deleted generated Secret, and rolls the pods to its new value', async () => {
      const before = await getObject(cluster, 'registry', 'registry', NS);
      const old = await getObject(cluster, 'secret', 'registry-http-secret', NS);
      await kubectlOk(cluster, ['delete', 'secret', 'registry-http-secret', '-n', NS]);
      const back = await waitFor('the Secret back', async () => {
        const secret = await getObject(cluster, 'secret', 'registry-http-secret', NS);
        return secret !== undefined && at(secret, 'metadata.uid') !== at(old, 'metadata.uid') ? secret : undefined;
      });
      assert.notEqual((at(back, 'data') as Json)['secret'], (at(old, 'data') as Json)['secret']);
      await waitFor('a new config hash', async () => {
        const r = await getObject(cluster, 'registry', 'registry', NS);
        return at(r, 'status.configHash') !== at(before, 'status.configHash') ? true : undefined;
      });
    });

    it('restores hand-edited replicas and a hand-edited ConfigMap', async () => {
      await kubectlOk(cluster, ['scale', 'deployment', 'registry', '-n', NS, '--replicas=4']);
      await kubectlOk(cluster, [
        'patch',
        'configmap',
        'registry-config',
        '-n',
        NS,
        '--type=merge',
        '-p',
        '{"data":{"config.yml":"version: 0.1\\n"}}',
      ]);
      await waitFor('replicas back to 1', async () =>
        at(await getObject(cluster, 'deployment', 'registry', NS), 'spec.replicas') === 1 ? true : undefined,
      );
      await waitFor('config restored', async () => {
        const cm = await getObject(cluster, 'configmap', 'registry-config', NS);
        return configYml(cm).includes('rootdirectory') ? true : undefined;
      });
    });

    it('scales through the scale subresource', async () => {
      await kubectlOk(cluster, ['scale', 'registry', 'registry-shared', '-n', NS, '--replicas=3']);
      await waitFor('deployment at 3', async () =>
        at(await getObject(cluster, 'deployment', 'registry-shared', NS), 'spec.replicas') === 3 ? true : undefined,
      );
      const scale = JSON.parse(
        await kubectlOk(cluster, [
          'get',
          '--raw',
          `/apis/berth.dev/v1alpha1/namespaces/${NS}/registries/registry-shared/scale`,
        ]),
      ) as Json;
      assert.equal(at(scale, 'spec.replicas'), 3);
      assert.match(String(at(scale, 'status.selector')), /app\.kubernetes\.io\/instance=registry-shared/);
    });

    it('reports a missing Secret as Degraded, naming it, and recovers when it appears', async () => {
      await kubectlOk(
        cluster,
        ['apply', '-f', '-'],
        registryYaml(
          'needs-secret',
          'storage: {emptyDir: {}}\ncache: {type: redis, redis: {address: "redis:6379", passwordSecret: {name: not-yet}}}',
        ),
      );
      const degraded = await awaitCondition(cluster, NS, 'needs-secret', 'Degraded', 'True');
      assert.equal(condition(degraded, 'Degraded')?.reason, 'SecretNotFound');
      assert.match(
        condition(degraded, 'Degraded')?.message ?? '',
        /spec\.cache\.redis\.passwordSecret: Secret berth-examples\/not-yet does not exist/,
      );
      assert.equal(condition(degraded, 'CacheReady')?.status, 'False');
      await kubectlOk(cluster, ['create', 'secret', 'generic', 'not-yet', '-n', NS, '--from-literal=password=x']);
      await awaitCondition(cluster, NS, 'needs-secret', 'Degraded', 'False', 45_000);
    });

    it('reports a missing StorageClass and makes the PVC only once it exists', async () => {
      await kubectlOk(
        cluster,
        ['apply', '-f', '-'],
        registryYaml('needs-class', 'storage: {filesystem: {storageClassName: fast-ssd}}'),
      );
      const degraded = await awaitCondition(cluster, NS, 'needs-class', 'Degraded', 'True');
      assert.equal(condition(degraded, 'StorageReady')?.reason, 'StorageClassNotFound');
      assert.match(condition(degraded, 'Degraded')?.message ?? '', /StorageClass fast-ssd does not exist/);
      assert.equal(await getObject(cluster, 'pvc', 'needs-class-data', NS), undefined);
      await kubectlOk(
        cluster,
        ['apply', '-f', '-'],
        'apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast-ssd}\nprovisioner: example.com/none\n',
      );
      const pvc = await waitFor('the PVC', () => getObject(cluster, 'pvc', 'needs-class-data', NS), 45_000);
      assert.equal(at(pvc, 'spec.storageClassName'), 'fast-ssd');
    });

    it('runs the pods as a ServiceAccount it makes for workload identity, or as a named one it reports missing', async () => {
      const roleArn = 'arn:aws:iam::123456789012:role/berth-images';
      await kubectlOk(
        cluster,
        ['apply', '-f', '-'],
        registryYaml(
          'identity',
          `storage: {s3: {bucket: images, region: eu-west-1}}\nserviceAccount: {annotations: {eks.amazonaws.com/role-arn: "${roleArn}"}}`,
        ),
      );
      const account = await waitFor('the ServiceAccount', () => getObject(cluster, 'serviceaccount', 'identity', NS));
      assert.equal(
        (at(account, 'metadata.annotations') as Record<string, string>)['eks.amazonaws.com/role-arn'],
        roleArn,
      );
      assert.equal(at(account, 'metadata.ownerReferences.0.kind'), 'Registry');
      const deployment = await waitFor('the Deployment', () => getObject(cluster, 'deployment', 'identity', NS));
      assert.equal(at(deployment, 'spec.template.spec.serviceAccountName'), 'identity');
      // No keys given: the rendered config leaves the SDK's default chain (web identity from the annotation) to work.
      const config = configYml(await getObject(cluster, 'configmap', 'identity-config', NS));
      assert.doesNotMatch(config, /accesskey|secretkey/);

      // A named account instead: the operator's own goes, and a missing named one is reported until it exists.
      await kubectlOk(cluster, [
        'patch',
        'registry',
        'identity',
        '-n',
        NS,
        '--type=merge',
        '-p',
        '{"spec":{"serviceAccount":{"annotations":null,"name":"images-reader"}}}',
      ]);
      const degraded = await awaitCondition(cluster, NS, 'identity', 'Degraded', 'True', 60_000);
      assert.equal(condition(degraded, 'StorageReady')?.reason, 'ServiceAccountNotFound');
      assert.match(condition(degraded, 'Degraded')?.message ?? '', /ServiceAccount berth-examples\/images-reader/);
      await waitFor('the operator’s account removed', async () =>
        (await getObject(cluster, 'serviceaccount', 'identity', NS)) === undefined ? true : undefined,
      );
      await kubectlOk(cluster, ['create', 'serviceaccount', 'images-reader', '-n', NS]);
      await awaitCondition(cluster, NS, 'identity', 'Degraded', 'False', 45_000);
      const renamed = await waitFor('the Deployment on the named account', async () => {
        const d = await getObject(cluster, 'deployment', 'identity', NS);
        return at(d, 'spec.template.spec.serviceAccountName') === 'images-reader' ? d : undefined;
      });
      assert.equal(at(renamed, 'spec.template.spec.automountServiceAccountToken'), false);

      // Both at once is refused by the schema.
      const both = await cluster.kubectl(
        ['apply', '-f', '-'],
        registryYaml(
          'identity-both',
          'storage: {emptyDir: {}}\nserviceAccount: {name: x, annotations: {iam.gke.io/gcp-service-account: a@b.iam.gserviceaccount.com}}',
        ),
      );
      assert.notEqual(both.code, 0);
      assert.match(both.stderr, /annotations apply to the ServiceAccount the operator creates/);
    });

    it('collects garbage from a CronJob on gc.schedule, and online in the pods once the schedule goes', async () => {
      await kubectlOk(
        cluster,
        ['apply', '-f', '-'],
        registryYaml(
          'collected',
          'storage: {s3: {bucket: images}}\ncache: {type: none}\ngc: {schedule: "15 2 * * *", gracePeriod: 2h, deleteUntagged: true}',
        ),
      );
      const cron = await waitFor('the CronJob', () => getObject(cluster, 'cronjob', 'collected-gc', NS));
      assert.equal(at(cron, 'spec.schedule'), '15 2 * * *');
      assert.equal(at(cron, 'spec.concurrencyPolicy'), 'Forbid');
      assert.equal(at(cron, 'metadata.ownerReferences.0.kind'), 'Registry');
      const [container] = at(cron, 'spec.jobTemplate.spec.template.spec.containers') as Json[];
      assert.deepEqual(container?.['args'], [
        'gc',
        '--online',
        '--config',
        '/etc/berth/config.yml',
        '--delete-untagged',
        '--grace',
        '2h',
      ]);
      const gcOf = (map: Json | undefined): unknown => at(parse(configYml(map)), 'storage.maintenance.gc');
      assert.deepEqual(gcOf(await getObject(cluster, 'configmap', 'collected-config', NS)), { enabled: false });
      const deployment = await waitFor('the Deployment', () => getObject(cluster, 'deployment', 'collected', NS));
      const hashOf = (d: Json | undefined): unknown =>
        (at(d, 'spec.template.metadata.annotations') as Json | undefined)?.['berth.dev/config-hash'];
      const hash = hashOf(deployment);
      assert.ok(typeof hash === 'string');

      // A new schedule is the CronJob's business alone: the pods keep their config and do not roll.
      await kubectlOk(cluster, [
        'patch',
        'registry',
        'collected',
        '-n',
        NS,
        '--type=merge',
        '-p',
        '{"spec":{"gc":{"schedule":"@weekly"}}}',
      ]);
      await waitFor('the new schedule', async () => {
        const c = await getObject(cluster, 'cronjob', 'collected-gc', NS);
        return at(c, 'spec.schedule') === '@weekly' ? c : undefined;
      });
      const same = await getObject(cluster, 'deployment', 'collected', NS);
      assert.equal(hashOf(same), hash);

      // Without the schedule: the CronJob goes and the pods collect online with the same settings.
      await kubectlOk(cluster, [
        'patch',
        'registry',
        'collected',
        '-n',
        NS,
        '--type=merge',
        '-p',
        '{"spec":{"gc":{"schedule":null,"enabled":true}}}',
      ]);
      await waitFor('the CronJob removed', async () =>
        (await getObject(cluster, 'cronjob', 'collected-gc', NS)) === undefined ? true : undefined,
      );
      const online = await waitFor('online GC in the config', async () => {
        const gc = gcOf(await getObject(cluster, 'configmap', 'collected-config', NS)) as Json | undefined;
        return gc?.['enabled'] === true ? gc : undefined;
      });
      assert.deepEqual(online, { enabled: true, interval: '24h', graceperiod: '2h', deleteuntagged: true });
      await kubectlOk(cluster, ['delete', 'registry', 'collected', '-n', NS, '--wait=true']);
    });

    it('deploys htpasswd auth and TLS from Secrets, and an edit of either does not roll the pods (Berth reloads)', async () => {
      await kubectlOk(cluster, [
        'create',
        'secret',
        'generic',
        'htpasswd',
        '-n',
        NS,
        '--from-literal=htpasswd=u:$2y$05$abc',
      ]);
      await kubectlOk(
        cluster,
        ['apply', '-f', '-'],
        registryYaml(
          'with-auth',
          'storage: {emptyDir: {}}\nauth: {htpasswd: {name: htpasswd}}\ntls: {secretName: with-auth-tls}',
        ),
      );
      // The certificate's Secret is missing: reported, naming the field and the keys it must hold.
      const missing = await awaitCondition(cluster, NS, 'with-auth', 'Degraded', 'True');
      assert.equal(condition(missing, 'Degraded')?.reason, 'SecretNotFound');
      assert.match(
        condition(missing, 'Degraded')?.message ?? '',
        /spec\.tls\.secretName: Secret .*with-auth-tls does not exist.*tls\.crt, tls\.key/,
      );
      await kubectlOk(cluster, [
        'create',
        'secret',
        'generic',
        'with-auth-tls',
        '-n',
        NS,
        '--from-literal=tls.crt=c',
        '--from-literal=tls.key=k',
      ]);
      await kubectlOk(cluster, ['annotate', 'registry', 'with-auth', '-n', NS, `touch=${Date.now()}`, '--overwrite']);
      const ok = await awaitCondition(cluster, NS, 'with-auth', 'Degraded', 'False');
      assert.match(String(at(ok, 'status.endpoint')), /^https:\/\/with-auth\./);
      const deployment = await waitFor('the Deployment', () => getObject(cluster, 'deployment', 'with-auth', NS));
      const volumes = at(deployment, 'spec.template.spec.volumes') as Json[];
      for (const name of ['htpasswd', 'tls'])
        assert.ok(
          volumes.some((v) => v['name'] === name),
          name,
        );
      const hash = (at(deployment, 'spec.template.metadata.annotations') as Json)['berth.dev/config-hash'];
      // New users and a renewed certificate: the kubelet updates the mounted files, and Berth re-reads them.
      await kubectlOk(cluster, [
        'create',
        'secret',
        'generic',
        'htpasswd',
        '-n',
        NS,
        '--from-literal=htpasswd=v:$2y$05$def',
        '--dry-run=client',
        '-o',
        'yaml',
      ]).then((yaml) => kubectlOk(cluster, ['apply', '-f', '-'], yaml));
      await kubectlOk(cluster, [
        'patch',
        'secret',
        'with-auth-tls',
        '-n',
        NS,
        '--type=merge',
        '-p',
        '{"stringData":{"tls.crt":"renewed"}}',
      ]);
      await kubectlOk(cluster, ['annotate', 'registry', 'with-auth', '-n', NS, `touch=${Date.now()}`, '--overwrite']);
      await awaitCondition(cluster, NS, 'with-auth', 'Degraded', 'False');
      await new Promise((r) => setTimeout(r, 2000));
      const after = await getObject(cluster, 'deployment', 'with-auth', NS);
      assert.equal((at(after, 'spec.template.metadata.annotations') as Json)['berth.dev/config-hash'], hash);
    });

    it('makes a ServiceMonitor once the monitoring.coreos.com API exists, and removes objects the spec drops', async () => {
      await installServiceMonitorCrd(cluster);
      await kubectlOk(cluster, [
        'annotate',
        'registry',
        'registry-managed',
        '-n',
        NS,
        `touch=${Date.now()}`,
        '--overwrite',
      ]);
      const sm = await waitFor(
        'ServiceMonitor',
        () => getObject(cluster, 'servicemonitor', 'registry-managed', NS),
        90_000,
      );
      assert.equal((at(sm, 'metadata.labels') as Json)['release'], 'prometheus');
      await kubectlOk(cluster, ['delete', 'servicemonitor', 'registry-managed', '-n', NS]);
      await waitFor('the ServiceMonitor back', async () => {
        const again = await getObject(cluster, 'servicemonitor', 'registry-managed', NS);
        return again !== undefined && at(again, 'metadata.uid') !== at(sm, 'metadata.uid') ? true : undefined;
      });
      await kubectlOk(cluster, [
        'patch',
        'registry',
        'registry-managed',
        '-n',
        NS,
        '--type=merge',
        '-p',
        '{"spec":{"metrics":{"serviceMonitor":{"enabled":false}},"cache":{"type":"inmemory","redis":null}}}',
      ]);
      await waitFor('ServiceMonitor and Redis gone', async () => {
        const left = await Promise.all([
          getObject(cluster, 'servicemonitor', 'registry-managed', NS),
          getObject(cluster, 'deployment', 'registry-managed-redis', NS),
          getObject(cluster, 'service', 'registry-managed-redis', NS),
        ]);
        return left.every((o) => o === undefined) ? true : undefined;
      });
    });

    it('leaves everything alone while Unmanaged, and repairs again when Managed', async () => {
      await kubectlOk(cluster, [
        'patch',
        'registry',
        'registry-shared',
        '-n',
        NS,
        '--type=merge',
        '-p',
        '{"spec":{"managementState":"Unmanaged"}}',
      ]);
      await waitFor('Unmanaged observed', async () =>
        condition(await getObject(cluster, 'registry', 'registry-shared', NS), 'Ready')?.reason === 'Unmanaged'
          ? true
          : undefined,
      );
      await kubectlOk(cluster, ['delete', 'deployment', 'registry-shared', '-n', NS]);
      await new Promise((r) => setTimeout(r, 3_000));
      assert.equal(
        await getObject(cluster, 'deployment', 'registry-shared', NS),
        undefined,
        'an Unmanaged registry was repaired',
      );
      await kubectlOk(cluster, [
        'patch',
        'registry',
        'registry-shared',
        '-n',
        NS,
        '--type=merge',
        '-p',
        '{"spec":{"managementState":"Managed"}}',
      ]);
      await waitFor('Deployment back', () => getObject(cluster, 'deployment', 'registry-shared', NS));
    });

    it('hands replicas to an HPA without scaling the Deployment down first', async () => {
      const before = Number(at(await getObject(cluster, 'deployment', 'registry-shared', NS), 'spec.replicas'));
      assert.ok(before > 1, `registry-shared runs ${before} replicas`);
      await kubectlOk(cluster, [
        'patch',
        'registry',
        'registry-shared',
        '-n',
        NS,
        '--type=merge',
        '-p',
        '{"spec":{"autoscaling":{"enabled":true,"minReplicas":2,"maxReplicas":6}}}',
      ]);
      await waitFor('the HPA', () => getObject(cluster, 'hpa', 'registry-shared', NS));
      await waitFor('the new generation observed', async () => {
        const r = await getObject(cluster, 'registry', 'registry-shared', NS);
        return at(r, 'status.observedGeneration') === at(r, 'metadata.generation') ? true : undefined;
      });
      const d = await getObject(cluster, 'deployment', 'registry-shared', NS, true);
      assert.equal(at(d, 'spec.replicas'), before, 'replicas changed when the HPA took over');
      const owners = ((at(d, 'metadata.managedFields') ?? []) as Json[])
        .filter((m) => JSON.stringify(m['fieldsV1'] ?? {}).includes('"f:replicas"'))
        .map((m) => m['manager']);
      assert.ok(!owners.includes('berth-operator'), `replicas still owned by ${owners.join(', ')}`);
    });

    it('deletes the owned objects but keeps the PVC when Removed', async () => {
      await kubectlOk(cluster, [
        'patch',
        'registry',
        'registry-hpa',
        '-n',
        NS,
        '--type=merge',
        '-p',
        '{"spec":{"managementState":"Removed"}}',
      ]);
      const left = await waitFor('only the PVC left', async () => {
        const list = await ownedObjects(cluster, NS, 'registry-hpa');
        return list.length === 1 ? list : undefined;
      });
      assert.deepEqual(left, ['PersistentVolumeClaim/registry-hpa-data']);
      const obj = await getObject(cluster, 'registry', 'registry-hpa', NS);
      assert.equal(condition(obj, 'Ready')?.reason, 'Removed');
    });

    it('serves its own health and metrics', async () => {
      const port = operator?.healthPort ?? 0;
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const success = /berth_operator_reconciles_total\{result="(success|requeue)"\} (\d+)/.exec(text);
      assert.ok(success !== null && Number(success[2]) > 0, text.slice(0, 500));
      assert.match(text, /berth_operator_reconcile_duration_seconds_count \d+/);
      assert.match(text, /berth_operator_queue_depth \d+/);
      assert.match(text, /berth_operator_leader 1/);
    });

    it('keeps reconciling after the API server restarts', async () => {
      await cluster.stopApiServer();
      await new Promise((r) => setTimeout(r, 2_000));
      await cluster.startApiServer();
      await deleteAndAwaitRepair(cluster, NS, 'registry', 90_000);
    });
  });

  describe('leader election', () => {
    before(async () => {
      await operator?.stop();
      operator = undefined;
    });

    async function holder(): Promise<string | undefined> {
      const lease = await getObject(cluster, 'lease', 'berth-operator', OPERATOR_NAMESPACE);
      const h = at(lease, 'spec.holderIdentity');
      return typeof h === 'string' && h !== '' ? h : undefined;
    }

    it('elects one of two operator processes and fails over when it stops', async () => {
      const a = spawnOperator(cluster.kubeconfig, 'operator-a');
      const b = spawnOperator(cluster.kubeconfig, 'operator-b');
      try {
        const first = await waitFor('a leader', holder, 40_000);
        assert.ok(['operator-a', 'operator-b'].includes(first), first);
        const [leader, standby] = first === 'operator-a' ? [a, b] : [b, a];
        await waitFor('leader log', async () => (leader.output().includes('became leader') ? true : undefined));
        assert.ok(!standby.output().includes('became leader'), 'both processes led at once');
        assert.equal(await leader.stop(), 0);
        assert.match(leader.output(), /released the lease/);
        const second = await waitFor(
          'failover',
          async () => {
            const h = await holder();
            return h === standby.identity ? h : undefined;
          },
          20_000,
        );
        assert.equal(second, standby.identity);
        // The standby took over because the leader released the lease, not because it expired: the new term began
        // well inside the released lease's 15 s, as the lease's own server-side times show.
        const lease = await getObject(cluster, 'lease', 'berth-operator', OPERATOR_NAMESPACE);
        assert.ok(Number(at(lease, 'spec.leaseTransitions')) >= 1);
        const released = leader
          .output()
          .split('\n')
          .filter((l) => l.includes('"released the lease"'))
          .map((l) => Date.parse(String((JSON.parse(l) as Json)['time'])))[0];
        assert.ok(released !== undefined, 'no release logged');
        const acquired = Date.parse(String(at(lease, 'spec.acquireTime')));
        assert.ok(acquired - released < 15_000, `acquired ${acquired - released} ms after the release`);
        await deleteAndAwaitRepair(cluster, NS, 'registry');
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
    });
  });

  describe('the operator’s default image', () => {
    const PINNED = 'example.com/berth:pinned';

    async function images(name: string): Promise<{ image: unknown; pullPolicy: unknown; status: unknown }> {
      const d = await getObject(cluster, 'deployment', name, NS);
      const r = await getObject(cluster, 'registry', name, NS);
      return { ...registryImageOf(d), status: at(r, 'status.image') };
    }

    /** Waits until the Registry's Deployment and status both show `image`. */
    async function awaitImage(name: string, image: string, pullPolicy: string): Promise<void> {
      const want = { image, pullPolicy, status: image };
      await waitFor(
        `${name} on ${image}`,
        async () => {
          const got = await images(name);
          return JSON.stringify(got) === JSON.stringify(want) ? got : undefined;
        },
        40_000,
      );
    }

    it('rolls unpinned Registries to a new default when the operator restarts with one, and leaves pinned ones', async () => {
      await kubectlOk(cluster, ['apply', '-f', '-'], registryYaml('unpinned', 'storage: {emptyDir: {}}'));
      await kubectlOk(
        cluster,
        ['apply', '-f', '-'],
        registryYaml('pinned', `image: ${PINNED}\nstorage: {emptyDir: {}}`),
      );
      // Through `berth operator` and the environment the chart sets.
      const first = spawnOperator(cluster.kubeconfig, 'image-1', {
        BERTH_REGISTRY_IMAGE: 'mirror.example.com/berth:1.0.0',
      });
      let pinnedGeneration: unknown;
      let unpinnedGeneration: unknown;
      try {
        await awaitImage('unpinned', 'mirror.example.com/berth:1.0.0', 'IfNotPresent');
        await awaitImage('pinned', PINNED, 'IfNotPresent');
        pinnedGeneration = at(await getObject(cluster, 'deployment', 'pinned', NS), 'metadata.generation');
        unpinnedGeneration = at(await getObject(cluster, 'deployment', 'unpinned', NS), 'metadata.generation');
      } finally {
        assert.equal(await first.stop(), 0, first.output());
      }
      // A `helm upgrade` to a new image: the operator's pods come back with another default.
      const second = spawnOperator(cluster.kubeconfig, 'image-2', {
        BERTH_REGISTRY_IMAGE: 'mirror.example.com/berth:2.0.0',
      });
      try {
        await awaitImage('unpinned', 'mirror.example.com/berth:2.0.0', 'IfNotPresent');
        const unpinned = await getObject(cluster, 'deployment', 'unpinned', NS);
        assert.ok(Number(at(unpinned, 'metadata.generation')) > Number(unpinnedGeneration), 'the pod template changed');
        // The new operator lists every Registry at start; give the pinned one's reconcile time to have run too.
        await new Promise((r) => setTimeout(r, 3_000));
        const pinned = await getObject(cluster, 'deployment', 'pinned', NS);
        assert.equal(at(pinned, 'metadata.generation'), pinnedGeneration, 'the pinned Deployment was changed');
        assert.deepEqual(await images('pinned'), { image: PINNED, pullPolicy: 'IfNotPresent', status: PINNED });
        // Pinning the unpinned one takes it off the default.
        await kubectlOk(cluster, [
          'patch',
          'registry',
          'unpinned',
          '-n',
          NS,
          '--type=merge',
          '-p',
          JSON.stringify({ spec: { image: PINNED, imagePullPolicy: 'Never' } }),
        ]);
        await awaitImage('unpinned', PINNED, 'Never');
      } finally {
        assert.equal(await second.stop(), 0, second.output());
      }
    });

    it('refuses to start with a pull policy Kubernetes does not know', async () => {
      const bad = spawnOperator(cluster.kubeconfig, 'image-bad', { BERTH_REGISTRY_IMAGE_PULL_POLICY: 'Sometimes' });
      const code = await waitFor('exit', async () => bad.child.exitCode ?? undefined, 20_000);
      assert.notEqual(code, 0);
      assert.match(bad.output(), /pull policy Sometimes: must be one of Always, IfNotPresent, Never/);
    });
  });
});

describe('the chart’s RBAC as the operator’s only permissions @integration', function () {
  this.timeout(120_000);
  let cluster: KubeCluster;
  let operator: RunningOperator | undefined;

  before(async function () {
    this.timeout(180_000);
    cluster = await startClusterWithCrds([NS]);
    await installServiceMonitorCrd(cluster);
  });

  after(async () => {
    await operator?.stop();
    await cluster?.dispose();
  });

  it('reconciles every kind of object with nothing but the rules in charts/berth/templates/rbac.yaml', async () => {
    const rendered = await renderRbac('berth', 'berth-operator-test');
    assert.equal(rendered.code, 0, rendered.stderr);
    await kubectlOk(cluster, ['apply', '-f', '-'], rendered.stdout);
    const kubeconfig = await cluster.userKubeconfig('berth-operator-test', []);
    // The rules are not a blanket grant: what the operator never needs stays forbidden.
    const denied = await cluster.kubectl(['--kubeconfig', kubeconfig, 'get', 'pods', '-n', 'default']);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /forbidden/);

    await kubectlOk(cluster, ['create', 'secret', 'generic', 'redis-auth', '-n', NS, '--from-literal=password=pw']);
    await kubectlOk(
      cluster,
      ['apply', '-f', '-'],
      registryYaml(
        'everything',
        [
          'replicas: 2',
          'storage: {filesystem: {accessMode: ReadWriteMany}}',
          'cache: {type: redis, redis: {managed: true, passwordSecret: {name: redis-auth}}}',
          'podDisruptionBudget: {enabled: true}',
          'autoscaling: {enabled: true, minReplicas: 2, maxReplicas: 4}',
          'serviceAccount: {annotations: {azure.workload.identity/client-id: 00000000-0000-0000-0000-000000000000}}',
          'gc: {schedule: "0 3 * * *"}',
        ].join('\n'),
      ),
    );
    operator = await runOperator(kubeconfig);
    const want = [
      'ConfigMap/everything-config',
      'CronJob/everything-gc',
      'Deployment/everything',
      'Deployment/everything-redis',
      'HorizontalPodAutoscaler/everything',
      'PersistentVolumeClaim/everything-data',
      'PodDisruptionBudget/everything',
      'Secret/everything-http-secret',
      'Service/everything',
      'Service/everything-redis',
      'ServiceAccount/everything',
    ];
    const got = await waitFor('every object', async () => {
      const list = await ownedObjects(cluster, NS, 'everything');
      return list.length === want.length ? list : undefined;
    });
    assert.deepEqual(got, want);
    await waitFor('the ServiceMonitor', () => getObject(cluster, 'servicemonitor', 'everything', NS));
    const registry = await waitFor('status written', async () => {
      const r = await getObject(cluster, 'registry', 'everything', NS);
      return at(r, 'status.observedGeneration') === 1 ? r : undefined;
    });
    assert.equal(condition(registry, 'Degraded')?.status, 'False', condition(registry, 'Degraded')?.message);
    const lease = await getObject(cluster, 'lease', 'berth-operator', OPERATOR_NAMESPACE);
    assert.ok(String(at(lease, 'spec.holderIdentity')).length > 0);
    // Dropping optional objects needs delete rights on them too.
    await kubectlOk(cluster, [
      'patch',
      'registry',
      'everything',
      '-n',
      NS,
      '--type=merge',
      '-p',
      '{"spec":{"autoscaling":{"enabled":false},"podDisruptionBudget":{"enabled":false},"metrics":{"enabled":false},"cache":{"type":"none","redis":null},"serviceAccount":null,"gc":null}}',
    ]);
    await waitFor('optional objects removed', async () => {
      const list = await ownedObjects(cluster, NS, 'everything');
      const sm = await getObject(cluster, 'servicemonitor', 'everything', NS);
      return list.length === 5 && sm === undefined ? list : undefined;
    });
  });

  it('works in watchNamespaces with the namespaced RBAC, and is forbidden everywhere else', async () => {
    // The cluster-wide operator of the test above would reconcile every namespace.
    await operator?.stop();
    operator = undefined;
    const [inside, outside] = ['ns-a', 'ns-b'];
    for (const ns of [inside, outside]) await ensureNamespace(cluster, ns);
    const user = 'berth-operator-namespaced';
    const rendered = await renderRbac('berth-ns', user, [`watchNamespaces={${inside}}`]);
    assert.equal(rendered.code, 0, rendered.stderr);
    assert.doesNotMatch(rendered.stdout, /namespace: ns-b/);
    await kubectlOk(cluster, ['apply', '-f', '-'], rendered.stdout);
    const kubeconfig = await cluster.userKubeconfig(user, []);
    const can = async (args: readonly string[]): Promise<string> =>
      (await cluster.kubectl(['--kubeconfig', kubeconfig, 'auth', 'can-i', ...args])).stdout.trim();
    assert.equal(await can(['patch', 'deployments', '-n', inside]), 'yes');
    assert.equal(await can(['patch', 'deployments', '-n', outside]), 'no');
    assert.equal(await can(['list', 'registries.berth.dev', '--all-namespaces']), 'no');
    assert.equal(await can(['update', 'deployments', '-n', inside]), 'no');
    const denied = await cluster.kubectl(['--kubeconfig', kubeconfig, 'get', 'registries', '-n', outside]);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /forbidden/);

    // The StorageClass check is the one cluster-scoped read left, through the small ClusterRole.
    await kubectlOk(
      cluster,
      ['apply', '-f', '-'],
      'apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: standard}\nprovisioner: example.com/none\n',
    );
    await kubectlOk(
      cluster,
      ['apply', '-f', '-'],
      registryYaml('here', 'storage: {filesystem: {storageClassName: standard}}', inside),
    );
    await kubectlOk(cluster, ['apply', '-f', '-'], registryYaml('there', 'storage: {emptyDir: {}}', outside));
    operator = await runOperator(kubeconfig, { watchNamespaces: [inside] });
    const want = [
      'ConfigMap/here-config',
      'Deployment/here',
      'PersistentVolumeClaim/here-data',
      'Secret/here-http-secret',
      'Service/here',
    ];
    const got = await waitFor('the objects in ns-a', async () => {
      const list = await ownedObjects(cluster, inside, 'here');
      return list.length === want.length ? list : undefined;
    });
    assert.deepEqual(got, want);
    const registry = await waitFor('status in ns-a', async () => {
      const r = await getObject(cluster, 'registry', 'here', inside);
      return at(r, 'status.observedGeneration') === 1 ? r : undefined;
    });
    assert.equal(condition(registry, 'Degraded')?.status, 'False', condition(registry, 'Degraded')?.message);
    assert.equal(at(registry, 'status.image'), builtInImage());
    // Drift in the watched namespace is still seen through the namespaced informers.
    await deleteAndAwaitRepair(cluster, inside, 'here');
    // Time for a stray reconcile elsewhere to have happened, had the operator looked there.
    await new Promise((r) => setTimeout(r, 3_000));
    assert.deepEqual(await ownedObjects(cluster, outside, 'there'), []);
    assert.equal(at(await getObject(cluster, 'registry', 'there', outside), 'status'), undefined);
  });
});
