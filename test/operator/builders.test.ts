import assert from 'node:assert/strict';
import type { KubernetesObject, V1Container, V1CronJob, V1Deployment, V1PodSpec } from '@kubernetes/client-node';
import type { RegistrySpec } from '../../src/operator/api/types.js';
import {
  PRE_STOP_SECONDS,
  buildHttpSecret,
  buildOwnedObjects,
  describeBackends,
  endpoint,
  ownerReference,
  type BuildInputs,
  type OwnedObjects,
} from '../../src/operator/builders.js';
import { CONFIG_HASH_ANNOTATION, commonLabels, selectorLabels } from '../../src/operator/names.js';
import {
  CONFIG_DIR,
  CONFIG_FILE,
  DATA_DIR,
  DEBUG_PORT,
  GCS_KEY_DIR,
  HTPASSWD_DIR,
  REDIS_PORT,
} from '../../src/operator/render-config.js';
import { NAME, NAMESPACE, UID, registry, type DeepPartial } from './fixtures.js';

const DEFAULT_IMAGE = { image: 'mirror.example.com/berth:1.2.3', pullPolicy: 'IfNotPresent' } as const;
const INPUTS: BuildInputs = {
  defaultImage: DEFAULT_IMAGE,
  httpSecret: { name: `${NAME}-http-secret`, key: 'secret' },
  serviceMonitorApi: true,
};

function build(spec: DeepPartial<RegistrySpec> = {}, inputs: Partial<BuildInputs> = {}): OwnedObjects {
  return buildOwnedObjects(registry(spec), { ...INPUTS, ...inputs });
}

/** Every Kubernetes object of a build, by role. */
function objectsOf(owned: OwnedObjects): [string, KubernetesObject][] {
  return Object.entries(owned).filter(
    (e): e is [string, KubernetesObject] => e[0] !== 'rendered' && e[1] !== undefined,
  );
}

function podSpec(d: V1Deployment | undefined): V1PodSpec {
  const spec = d?.spec?.template.spec;
  assert.ok(spec, 'no pod spec');
  return spec;
}

function container(owned: OwnedObjects): V1Container {
  const [c] = podSpec(owned.deployment).containers;
  assert.ok(c, 'no container');
  return c;
}

/** Whether every label of `selector` is on `labels`. */
function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
}

/** A spec that makes every optional object: managed Redis, PDB, HPA, ServiceMonitor and a new PVC. */
const EVERYTHING: DeepPartial<RegistrySpec> = {
  storage: { filesystem: { accessMode: 'ReadWriteMany' } },
  cache: { type: 'redis', redis: { managed: true } },
  podDisruptionBudget: { enabled: true },
  autoscaling: { enabled: true },
  gc: { schedule: '30 3 * * *' },
};

describe('operator/builders', function () {
  describe('ownership', function () {
    it('makes every optional object for a spec that asks for all of them', function () {
      assert.deepEqual(
        objectsOf(build(EVERYTHING))
          .map(([role]) => role)
          .sort(),
        [
          'config',
          'deployment',
          'gcCronJob',
          'hpa',
          'pdb',
          'pvc',
          'redisDeployment',
          'redisService',
          'service',
          'serviceMonitor',
        ],
      );
    });

    it('gives everything but the PVC a controlling owner reference with the Registry’s uid', function () {
      const expected = {
        apiVersion: 'berth.dev/v1alpha1',
        kind: 'Registry',
        name: NAME,
        uid: UID,
        controller: true,
        blockOwnerDeletion: true,
      };
      for (const [role, object] of objectsOf(build(EVERYTHING))) {
        if (role === 'pvc') continue;
        assert.deepEqual(object.metadata?.ownerReferences, [expected], role);
      }
      assert.deepEqual(ownerReference(registry()), expected);
      assert.deepEqual(buildHttpSecret(registry(), 'x').metadata?.ownerReferences, [expected]);
    });

    it('leaves the PVC unowned, so deleting the Registry keeps the images', function () {
      assert.equal(build(EVERYTHING).pvc?.metadata?.ownerReferences, undefined);
    });

    it('puts every object in the Registry’s namespace with the common labels', function () {
      const r = registry(EVERYTHING);
      for (const [role, object] of objectsOf(buildOwnedObjects(r, INPUTS))) {
        assert.equal(object.metadata?.namespace, NAMESPACE, role);
        const component = role.startsWith('redis') ? 'redis' : role === 'gcCronJob' ? 'gc' : 'registry';
        assert.ok(
          selects(commonLabels(r, component), object.metadata?.labels),
          `${role}: ${JSON.stringify(object.metadata?.labels)}`,
        );
      }
    });

    it('keeps the generated HTTP secret in <name>-http-secret under the key the config reads', function () {
      const secret = buildHttpSecret(registry(), 'abc');
      assert.equal(secret.metadata?.name, INPUTS.httpSecret.name);
      assert.deepEqual(secret.stringData, { [INPUTS.httpSecret.key]: 'abc' });
    });
  });

  describe('storage', function () {
    it('claims a new 10Gi ReadWriteOnce PVC by default and mounts it at the data directory', function () {
      const owned = build();
      assert.equal(owned.pvc?.metadata?.name, `${NAME}-data`);
      assert.deepEqual(owned.pvc?.spec, {
        accessModes: ['ReadWriteOnce'],
        resources: { requests: { storage: '10Gi' } },
      });
      assert.deepEqual(
        podSpec(owned.deployment).volumes?.find((v) => v.name === 'data'),
        { name: 'data', persistentVolumeClaim: { claimName: `${NAME}-data` } },
      );
      assert.ok(container(owned).volumeMounts?.some((m) => m.name === 'data' && m.mountPath === DATA_DIR));
    });

    it('asks for the given storage class, size and access mode', function () {
      const { pvc } = build({
        storage: { filesystem: { size: '1Ti', storageClassName: 'fast', accessMode: 'ReadWriteMany' } },
      });
      assert.deepEqual(pvc?.spec, {
        accessModes: ['ReadWriteMany'],
        resources: { requests: { storage: '1Ti' } },
        storageClassName: 'fast',
      });
    });

    it('makes no PVC for an existing claim, and mounts that claim', function () {
      const owned = build({ storage: { filesystem: { existingClaim: 'images' } } });
      assert.equal(owned.pvc, undefined);
      assert.deepEqual(
        podSpec(owned.deployment).volumes?.find((v) => v.name === 'data'),
        { name: 'data', persistentVolumeClaim: { claimName: 'images' } },
      );
    });

    it('makes no PVC for an emptyDir, and bounds the volume by its sizeLimit', function () {
      const owned = build({ storage: { emptyDir: { sizeLimit: '2Gi' } } });
      assert.equal(owned.pvc, undefined);
      assert.deepEqual(
        podSpec(owned.deployment).volumes?.find((v) => v.name === 'data'),
        { name: 'data', emptyDir: { sizeLimit: '2Gi' } },
      );
    });

    for (const [kind, storage] of Object.entries({
      s3: { s3: { bucket: 'images' } },
      azure: { azure: { accountName: 'acct', container: 'images' } },
      gcs: { gcs: { bucket: 'images' } },
    })) {
      it(`makes no PVC and no data volume for ${kind}`, function () {
        const owned = build({ storage });
        assert.equal(owned.pvc, undefined);
        assert.equal(
          podSpec(owned.deployment).volumes?.find((v) => v.name === 'data'),
          undefined,
        );
        assert.equal(
          container(owned).volumeMounts?.find((m) => m.name === 'data'),
          undefined,
        );
      });
    }

    it('mounts the GCS key Secret where the config’s keyfile points', function () {
      const owned = build({ storage: { gcs: { bucket: 'images', credentialsSecret: { name: 'sa' } } } });
      assert.deepEqual(
        podSpec(owned.deployment).volumes?.find((v) => v.name === 'gcs-key'),
        { name: 'gcs-key', secret: { secretName: 'sa' } },
      );
      assert.ok(container(owned).volumeMounts?.some((m) => m.name === 'gcs-key' && m.mountPath === GCS_KEY_DIR));
      assert.match(owned.rendered.yaml, new RegExp(`keyfile: ${GCS_KEY_DIR}/key.json`));
    });
  });

  describe('Deployment strategy', function () {
    for (const [title, storage] of Object.entries({
      'a ReadWriteOnce claim': { filesystem: { accessMode: 'ReadWriteOnce' } },
      'a ReadWriteOncePod claim': { filesystem: { accessMode: 'ReadWriteOncePod' } },
      'an existing ReadWriteOnce claim': { filesystem: { existingClaim: 'images' } },
    } satisfies Record<string, DeepPartial<RegistrySpec['storage']>>)) {
      it(`recreates pods on ${title}, which one pod at a time can mount`, function () {
        assert.deepEqual(build({ storage }).deployment.spec?.strategy, { type: 'Recreate' });
      });
    }

    for (const [title, storage] of Object.entries({
      'a ReadWriteMany claim': { filesystem: { accessMode: 'ReadWriteMany' } },
      s3: { s3: { bucket: 'images' } },
      azure: { azure: { accountName: 'acct', container: 'images' } },
      gcs: { gcs: { bucket: 'images' } },
      'an emptyDir (pod-local)': { emptyDir: {} },
    } satisfies Record<string, DeepPartial<RegistrySpec['storage']>>)) {
      it(`rolls pods without losing capacity on ${title}`, function () {
        assert.deepEqual(build({ storage }).deployment.spec?.strategy, {
          type: 'RollingUpdate',
          rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
        });
      });
    }
  });

  describe('replicas and autoscaling', function () {
    const rwx = { filesystem: { accessMode: 'ReadWriteMany' } } as const;

    it('sets the Deployment’s replicas and makes no HPA while autoscaling is off', function () {
      const owned = build({ storage: rwx, replicas: 3 });
      assert.equal(owned.deployment.spec?.replicas, 3);
      assert.equal(owned.hpa, undefined);
    });

    it('keeps replicas 0 (scaled to zero) rather than dropping it', function () {
      const owned = build({ replicas: 0 });
      assert.equal(owned.deployment.spec?.replicas, 0);
    });

    it('leaves replicas out and makes an HPA on the Deployment while autoscaling is on', function () {
      const owned = build({
        storage: rwx,
        replicas: 3,
        autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 9, targetCPUUtilizationPercentage: 60 },
      });
      assert.ok(owned.deployment.spec !== undefined && !('replicas' in owned.deployment.spec));
      assert.equal(owned.hpa?.metadata?.name, NAME);
      assert.deepEqual(owned.hpa?.spec, {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: owned.deployment.metadata?.name },
        minReplicas: 2,
        maxReplicas: 9,
        metrics: [
          { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } } },
        ],
      });
    });
  });

  describe('PodDisruptionBudget', function () {
    it('is absent by default', function () {
      assert.equal(build().pdb, undefined);
    });

    it('selects the registry pods with the given maxUnavailable when enabled', function () {
      const { pdb, deployment } = build({ podDisruptionBudget: { enabled: true, maxUnavailable: '50%' } });
      assert.equal(pdb?.spec?.maxUnavailable, '50%');
      assert.deepEqual(pdb?.spec?.selector?.matchLabels, deployment.spec?.selector.matchLabels);
    });
  });

  describe('ServiceMonitor', function () {
    for (const metrics of [true, false]) {
      for (const monitor of [true, false]) {
        for (const api of [true, false]) {
          const made = metrics && monitor && api;
          it(`is ${made ? 'made' : 'absent'} with metrics ${metrics}, serviceMonitor ${monitor}, API ${api ? 'served' : 'absent'}`, function () {
            const owned = build(
              { metrics: { enabled: metrics, serviceMonitor: { enabled: monitor } } },
              { serviceMonitorApi: api },
            );
            assert.equal(owned.serviceMonitor !== undefined, made);
          });
        }
      }
    }

    it('scrapes the Service’s metrics port at the given interval, with the extra labels', function () {
      const owned = build({ metrics: { serviceMonitor: { interval: '15s', labels: { release: 'prom' } } } });
      const monitor = owned.serviceMonitor;
      assert.equal(monitor?.apiVersion, 'monitoring.coreos.com/v1');
      assert.equal(monitor?.metadata?.labels?.['release'], 'prom');
      assert.deepEqual(monitor?.spec['endpoints'], [{ port: 'metrics', path: '/metrics', interval: '15s' }]);
      const selector = (monitor?.spec['selector'] as { matchLabels: Record<string, string> }).matchLabels;
      assert.ok(selects(selector, owned.service.metadata?.labels), 'selects the registry Service');
      assert.ok(owned.service.spec?.ports?.some((p) => p.name === 'metrics'));
    });

    it('does not select the managed Redis Service', function () {
      const owned = build({ cache: { type: 'redis', redis: { managed: true } } });
      const selector = (owned.serviceMonitor?.spec['selector'] as { matchLabels: Record<string, string> }).matchLabels;
      assert.equal(selects(selector, owned.redisService?.metadata?.labels), false);
    });
  });

  describe('managed Redis', function () {
    it('runs a Redis Deployment and Service named <name>-redis for a managed Redis', function () {
      const owned = build({ cache: { type: 'redis', redis: { managed: true, image: 'redis:8' } } });
      const { redisDeployment, redisService } = owned;
      assert.equal(redisDeployment?.metadata?.name, `${NAME}-redis`);
      assert.equal(redisService?.metadata?.name, `${NAME}-redis`);
      assert.equal(podSpec(redisDeployment).containers[0]?.image, 'redis:8');
      // Reached through its Service, so never in protected mode, whatever the image's default.
      const args = podSpec(redisDeployment).containers[0]?.args ?? [];
      assert.equal(args[args.indexOf('--protected-mode') + 1], 'no');
      assert.deepEqual(redisService?.spec?.ports, [
        { name: 'redis', port: REDIS_PORT, targetPort: 'redis', protocol: 'TCP' },
      ]);
      assert.ok(selects(redisService?.spec?.selector, redisDeployment?.spec?.template.metadata?.labels));
      assert.ok(!selects(redisService?.spec?.selector, owned.deployment.spec?.template.metadata?.labels));
      assert.ok(!selects(owned.service.spec?.selector, redisDeployment?.spec?.template.metadata?.labels));
    });

    it('makes no Redis for an external Redis or another cache', function () {
      for (const cache of [
        { type: 'redis', redis: { address: 'redis:6379' } },
        { type: 'inmemory' },
        { type: 'none' },
      ] satisfies DeepPartial<RegistrySpec['cache']>[]) {
        const owned = build({ cache });
        assert.equal(owned.redisDeployment, undefined, JSON.stringify(cache));
        assert.equal(owned.redisService, undefined, JSON.stringify(cache));
      }
    });

    it('requires the password from its Secret, never writing it into the pod spec', function () {
      const owned = build({
        cache: { type: 'redis', redis: { managed: true, passwordSecret: { name: 'redis-auth' } } },
      });
      const c = podSpec(owned.redisDeployment).containers[0];
      assert.deepEqual(c?.env, [
        { name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'redis-auth', key: 'password' } } },
      ]);
      assert.deepEqual(c?.args?.slice(-2), ['--requirepass', '$(REDIS_PASSWORD)']);
    });

    it('runs Redis as non-root on a read-only root filesystem with no capabilities', function () {
      const spec = podSpec(build({ cache: { type: 'redis', redis: { managed: true } } }).redisDeployment);
      assert.equal(spec.securityContext?.runAsNonRoot, true);
      const sc = spec.containers[0]?.securityContext;
      assert.equal(sc?.readOnlyRootFilesystem, true);
      assert.equal(sc?.allowPrivilegeEscalation, false);
      assert.deepEqual(sc?.capabilities?.drop, ['ALL']);
    });
  });

  describe('registry pod', function () {
    it('annotates the pods with the rendered config’s hash, which podAnnotations cannot override', function () {
      const owned = build({ podAnnotations: { [CONFIG_HASH_ANNOTATION]: 'forged', note: 'hi' } });
      const annotations = owned.deployment.spec?.template.metadata?.annotations;
      assert.equal(annotations?.[CONFIG_HASH_ANNOTATION], owned.rendered.hash);
      assert.equal(annotations?.['note'], 'hi');
    });

    it('rolls the pods when the config changes', function () {
      const hash = (r: OwnedObjects) => r.deployment.spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION];
      assert.notEqual(hash(build({ readOnly: true })), hash(build({ readOnly: false })));
    });

    it('mounts the ConfigMap holding the rendered config where the container reads it', function () {
      const owned = build();
      assert.deepEqual(owned.config.data, { 'config.yml': owned.rendered.yaml });
      const volume = podSpec(owned.deployment).volumes?.find((v) => v.name === 'config');
      assert.equal(volume?.configMap?.name, owned.config.metadata?.name);
      assert.ok(
        container(owned).volumeMounts?.some((m) => m.name === 'config' && m.mountPath === CONFIG_DIR && m.readOnly),
      );
      assert.ok(CONFIG_FILE.startsWith(`${CONFIG_DIR}/`) && CONFIG_FILE.endsWith('/config.yml'));
      assert.deepEqual(container(owned).args, ['serve', '--config', CONFIG_FILE]);
    });

    it('passes the rendered Secret-backed environment to the container', function () {
      const owned = build({ cache: { type: 'redis', redis: { address: 'r:6379', passwordSecret: { name: 'pw' } } } });
      const env = container(owned).env ?? [];
      for (const e of owned.rendered.env)
        assert.ok(
          env.some((x) => JSON.stringify(x) === JSON.stringify(e)),
          e.name,
        );
    });

    it('runs as non-root on a read-only root filesystem with every capability dropped', function () {
      const owned = build();
      const pod = podSpec(owned.deployment);
      assert.equal(pod.securityContext?.runAsNonRoot, true);
      const sc = container(owned).securityContext;
      assert.equal(sc?.runAsNonRoot, true);
      assert.equal(sc?.readOnlyRootFilesystem, true);
      assert.equal(sc?.allowPrivilegeEscalation, false);
      assert.deepEqual(sc?.capabilities?.drop, ['ALL']);
      assert.equal(pod.automountServiceAccountToken, false);
      // A read-only root needs a writable /tmp.
      const tmp = container(owned).volumeMounts?.find((m) => m.mountPath === '/tmp');
      assert.ok(tmp && pod.volumes?.find((v) => v.name === tmp.name)?.emptyDir !== undefined);
    });

    it('probes /healthz and /readyz on the debug port', function () {
      const c = container(build());
      assert.deepEqual(c.livenessProbe?.httpGet, { path: '/healthz', port: 'debug' });
      assert.deepEqual(c.readinessProbe?.httpGet, { path: '/readyz', port: 'debug' });
      assert.deepEqual(c.startupProbe?.httpGet, { path: '/healthz', port: 'debug' });
      assert.equal(c.ports?.find((p) => p.name === 'debug')?.containerPort, DEBUG_PORT);
    });

    it('keeps serving for a few seconds after deletion, inside the grace period, before SIGTERM', function () {
      const owned = build();
      assert.deepEqual(container(owned).lifecycle?.preStop?.sleep, { seconds: PRE_STOP_SECONDS });
      const grace = owned.deployment.spec?.template.spec?.terminationGracePeriodSeconds ?? 0;
      // The sleep, then http.draintimeout (10 s by default) to finish in-flight requests.
      assert.ok(grace >= PRE_STOP_SECONDS + 10, `grace ${grace} s`);
    });

    it('keeps probing the debug port when metrics are off', function () {
      const c = container(build({ metrics: { enabled: false } }));
      assert.equal(c.ports?.find((p) => p.name === 'debug')?.containerPort, DEBUG_PORT);
    });

    it('applies podLabels and podAnnotations, but never lets them override the selector labels', function () {
      const r = registry({
        podLabels: { team: 'a', 'app.kubernetes.io/instance': 'other', 'app.kubernetes.io/component': 'redis' },
        podAnnotations: { 'example.com/owner': 'ops' },
      });
      const { deployment, service } = buildOwnedObjects(r, INPUTS);
      const labels = deployment.spec?.template.metadata?.labels;
      assert.equal(labels?.['team'], 'a');
      assert.deepEqual(deployment.spec?.selector.matchLabels, selectorLabels(r));
      assert.ok(selects(selectorLabels(r), labels), JSON.stringify(labels));
      assert.ok(selects(service.spec?.selector, labels));
      assert.equal(deployment.spec?.template.metadata?.annotations?.['example.com/owner'], 'ops');
    });

    it('passes scheduling and resources through to the pod', function () {
      const spec: DeepPartial<RegistrySpec> = {
        nodeSelector: { disk: 'ssd' },
        tolerations: [{ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }],
        affinity: { nodeAffinity: {} },
        resources: { requests: { cpu: '100m' } },
        image: 'example.com/berth:dev',
        imagePullPolicy: 'Always',
      };
      const owned = build(spec);
      const pod = podSpec(owned.deployment);
      assert.deepEqual(pod.nodeSelector, { disk: 'ssd' });
      assert.deepEqual(pod.tolerations, spec.tolerations);
      assert.deepEqual(pod.affinity, { nodeAffinity: {} });
      assert.deepEqual(container(owned).resources, { requests: { cpu: '100m' } });
      assert.equal(container(owned).image, 'example.com/berth:dev');
      assert.equal(container(owned).imagePullPolicy, 'Always');
    });

    it('runs the operator’s default image and pull policy when the spec pins none', function () {
      const c = container(
        build({}, { defaultImage: { image: 'mirror.example.com/berth@sha256:ab', pullPolicy: 'Always' } }),
      );
      assert.equal(c.image, 'mirror.example.com/berth@sha256:ab');
      assert.equal(c.imagePullPolicy, 'Always');
    });

    it('changes the pod template with the operator’s default, so unpinned registries roll to a new one', function () {
      const before = build().deployment.spec?.template;
      const after = build({}, { defaultImage: { ...DEFAULT_IMAGE, image: 'mirror.example.com/berth:1.2.4' } })
        .deployment.spec?.template;
      assert.notDeepEqual(after, before);
      assert.equal(after?.spec?.containers[0]?.image, 'mirror.example.com/berth:1.2.4');
    });

    it('keeps a pinned image whatever the operator’s default, with the default pull policy unless one is set', function () {
      const pinned = (defaultImage: BuildInputs['defaultImage']): V1Container =>
        container(build({ image: 'example.com/berth:pinned' }, { defaultImage }));
      const a = pinned(DEFAULT_IMAGE);
      const b = pinned({ image: 'mirror.example.com/berth:9.9.9', pullPolicy: 'Always' });
      assert.equal(a.image, 'example.com/berth:pinned');
      assert.equal(b.image, 'example.com/berth:pinned');
      assert.equal(b.imagePullPolicy, 'Always');
      assert.equal(container(build({ image: 'x:1', imagePullPolicy: 'Never' })).imagePullPolicy, 'Never');
    });

    it('mounts the htpasswd Secret where the config’s auth path points', function () {
      const owned = build({ auth: { htpasswd: { name: 'users', key: 'file' } } });
      assert.deepEqual(
        podSpec(owned.deployment).volumes?.find((v) => v.name === 'htpasswd'),
        { name: 'htpasswd', secret: { secretName: 'users' } },
      );
      assert.ok(container(owned).volumeMounts?.some((m) => m.name === 'htpasswd' && m.mountPath === HTPASSWD_DIR));
      assert.match(owned.rendered.yaml, new RegExp(`path: ${HTPASSWD_DIR}/file`));
    });

    it('mounts the TLS, client CA and token bundle Secrets whole (not subPath, so renewals reach the pod)', function () {
      const owned = build({
        auth: {
          token: { realm: 'https://a/t', service: 's', issuer: 'i', rootCertBundle: { name: 'signer', key: 'b.pem' } },
        },
        tls: { secretName: 'cert', clientCA: { name: 'cas' } },
      });
      const volumes = podSpec(owned.deployment).volumes ?? [];
      for (const [volume, secret] of [
        ['tls', 'cert'],
        ['client-ca', 'cas'],
        ['token-bundle', 'signer'],
      ] as const) {
        assert.deepEqual(volumes.find((v) => v.name === volume)?.secret, { secretName: secret });
        const mount = container(owned).volumeMounts?.find((m) => m.name === volume);
        assert.ok(mount !== undefined && mount.subPath === undefined && mount.readOnly === true, volume);
      }
      assert.equal(endpoint(registry({ tls: { secretName: 'cert' } })), `https://${NAME}.${NAMESPACE}.svc:5000`);
      assert.equal(endpoint(registry({})), `${NAME}.${NAMESPACE}.svc:5000`);
    });
  });

  describe('garbage-collection CronJob', function () {
    /** Object storage with a cache the CronJob can reach, as the CRD requires for a schedule. */
    const SCHEDULED: DeepPartial<RegistrySpec> = {
      storage: { s3: { bucket: 'images', credentialsSecret: { name: 's3-keys' } } },
      cache: { type: 'redis', redis: { address: 'redis.shared:6379', passwordSecret: { name: 'redis' } } },
      gc: { schedule: '0 4 * * 0', gracePeriod: '2h', deleteUntagged: true },
    };

    function cronJob(owned: OwnedObjects): V1CronJob {
      assert.ok(owned.gcCronJob, 'no CronJob');
      return owned.gcCronJob;
    }

    function jobPod(owned: OwnedObjects): V1PodSpec {
      const spec = cronJob(owned).spec?.jobTemplate.spec?.template.spec;
      assert.ok(spec, 'no job pod spec');
      return spec;
    }

    it('is absent without gc.schedule, whether online collection is on or off', function () {
      assert.equal(build().gcCronJob, undefined);
      assert.equal(build({ gc: {} }).gcCronJob, undefined);
      assert.equal(build({ gc: { enabled: true } }).gcCronJob, undefined);
    });

    it('runs `berth gc --online` on the schedule, never two at once, keeping little history', function () {
      const owned = build(SCHEDULED);
      const job = cronJob(owned);
      assert.equal(job.metadata?.name, `${NAME}-gc`);
      assert.equal(job.spec?.schedule, '0 4 * * 0');
      assert.equal(job.spec?.concurrencyPolicy, 'Forbid');
      assert.ok((job.spec?.successfulJobsHistoryLimit ?? 99) <= 3);
      assert.ok((job.spec?.failedJobsHistoryLimit ?? 99) <= 3);
      const [c, ...others] = jobPod(owned).containers;
      assert.equal(others.length, 0);
      assert.deepEqual(c?.args, ['gc', '--online', '--config', CONFIG_FILE, '--delete-untagged', '--grace', '2h']);
      assert.equal(c?.image, container(owned).image);
      assert.equal(c?.imagePullPolicy, container(owned).imagePullPolicy);
      assert.equal(jobPod(owned).restartPolicy, 'Never');
      const plain = cronJob(build({ ...SCHEDULED, gc: { schedule: '@daily' } }));
      assert.deepEqual(plain.spec?.jobTemplate.spec?.template.spec?.containers[0]?.args, [
        'gc',
        '--online',
        '--config',
        CONFIG_FILE,
        '--grace',
        '1h',
      ]);
    });

    it('gives the collector the registry pods’ environment, volumes, mounts, account and security context', function () {
      for (const spec of [
        SCHEDULED,
        {
          ...SCHEDULED,
          storage: { gcs: { bucket: 'images', credentialsSecret: { name: 'gcs-key' } } },
          serviceAccount: { annotations: { 'iam.gke.io/gcp-service-account': 'gc@p.iam.gserviceaccount.com' } },
          auth: { htpasswd: { name: 'users' } },
          tls: { secretName: 'registry-tls' },
          nodeSelector: { pool: 'system' },
        },
        { ...SCHEDULED, storage: { filesystem: { accessMode: 'ReadWriteMany' } }, cache: { type: 'none' } },
      ] as DeepPartial<RegistrySpec>[]) {
        const owned = build(spec, { secretVersions: ['s3-keys@7'] });
        const pod = podSpec(owned.deployment);
        const job = jobPod(owned);
        const [c] = job.containers;
        assert.deepEqual(c?.env, container(owned).env);
        assert.deepEqual(c?.volumeMounts, container(owned).volumeMounts);
        assert.deepEqual(c?.securityContext, container(owned).securityContext);
        assert.deepEqual(c?.resources, container(owned).resources);
        for (const key of [
          'volumes',
          'securityContext',
          'serviceAccountName',
          'automountServiceAccountToken',
          'nodeSelector',
          'tolerations',
        ] as const)
          assert.deepEqual(job[key], pod[key], key);
      }
      const filesystem = build({ ...SCHEDULED, storage: { filesystem: { accessMode: 'ReadWriteMany' } } });
      assert.deepEqual(
        jobPod(filesystem).volumes?.find((v) => v.name === 'data'),
        { name: 'data', persistentVolumeClaim: { claimName: `${NAME}-data` } },
        'the same claim as the registry',
      );
    });

    it('labels its pods so that the Service and the Deployment never select them', function () {
      const owned = build({ ...SCHEDULED, podLabels: { team: 'images' } });
      const labels = cronJob(owned).spec?.jobTemplate.spec?.template.metadata?.labels;
      assert.equal(labels?.['team'], 'images');
      assert.equal(selects(owned.service.spec?.selector, labels), false);
      assert.equal(selects(owned.deployment.spec?.selector.matchLabels, labels), false);
      assert.deepEqual(cronJob(owned).metadata?.ownerReferences, [ownerReference(registry(SCHEDULED))]);
    });

    it('leaves the registry pods alone when only the schedule or the CronJob’s settings change', function () {
      const hash = (spec: DeepPartial<RegistrySpec>): unknown =>
        build(spec).deployment.spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION];
      const base = hash(SCHEDULED);
      assert.equal(hash({ ...SCHEDULED, gc: { schedule: '@hourly', gracePeriod: '3h', deleteUntagged: false } }), base);
      assert.equal(hash({ ...SCHEDULED, gc: { schedule: '0 4 * * 0', interval: '1h', enabled: true } }), base);
      // Online collection is in the config the pods read: turning it on rolls them.
      assert.notEqual(hash({ ...SCHEDULED, gc: { enabled: true } }), base);
    });
  });

  describe('Service', function () {
    it('exposes the registry port, and the metrics port only while metrics are on', function () {
      const on = build({ service: { port: 443 } }).service.spec?.ports;
      assert.deepEqual(on, [
        { name: 'registry', port: 443, targetPort: 'registry', protocol: 'TCP' },
        { name: 'metrics', port: DEBUG_PORT, targetPort: 'debug', protocol: 'TCP' },
      ]);
      const off = build({ metrics: { enabled: false } }).service.spec?.ports;
      assert.deepEqual(
        off?.map((p) => p.name),
        ['registry'],
      );
    });

    it('has the given type and annotations and selects the registry pods', function () {
      const { service, deployment } = build({
        service: { type: 'LoadBalancer', annotations: { 'example.com/lb': 'internal' } },
      });
      assert.equal(service.spec?.type, 'LoadBalancer');
      assert.deepEqual(service.metadata?.annotations, { 'example.com/lb': 'internal' });
      assert.deepEqual(service.spec?.selector, deployment.spec?.selector.matchLabels);
    });

    it('targets container ports that exist', function () {
      const owned = build();
      const names = new Set(container(owned).ports?.map((p) => p.name));
      for (const p of owned.service.spec?.ports ?? []) assert.ok(names.has(String(p.targetPort)), String(p.targetPort));
    });
  });

  describe('endpoint and describeBackends', function () {
    it('gives the in-cluster address <service>.<namespace>.svc:<port>', function () {
      assert.equal(endpoint(registry({ service: { port: 8080 } })), `${NAME}.${NAMESPACE}.svc:8080`);
    });

    it('describes the storage backend and the cache', function () {
      const backends = (spec: DeepPartial<RegistrySpec>): ReturnType<typeof describeBackends> =>
        describeBackends(registry(spec));
      assert.deepEqual(backends({}), { storage: 'filesystem', cache: 'inmemory' });
      assert.deepEqual(backends({ storage: { s3: { bucket: 'b' } }, cache: { type: 'none' } }), {
        storage: 's3',
        cache: 'none',
      });
      assert.deepEqual(backends({ cache: { type: 'redis', redis: { managed: true } } }).cache, 'redis (managed)');
      assert.deepEqual(backends({ cache: { type: 'redis', redis: { address: 'r:6379' } } }).cache, 'redis r:6379');
    });
  });
});
