// Pure builders: one Registry in, the Kubernetes objects that run it out. The reconciler applies exactly these with
// server-side apply; tests check them without an API server.
import type {
  KubernetesObject,
  V1ConfigMap,
  V1Container,
  V1CronJob,
  V1Deployment,
  V1EnvVar,
  V1OwnerReference,
  V1PersistentVolumeClaim,
  V1PodSpec,
  V1PodDisruptionBudget,
  V1Secret,
  V1Service,
  V1ServiceAccount,
  V1Volume,
  V1VolumeMount,
  V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import { API_VERSION, KIND } from './api/schema.js';
import type { Registry, RegistrySpec } from './api/types.js';
import { CONFIG_HASH_ANNOTATION, commonLabels, names, selectorLabels, type Component } from './names.js';
import {
  CONFIG_DIR,
  CONFIG_FILE,
  DATA_DIR,
  DEBUG_PORT,
  GCS_KEY_DIR,
  HTPASSWD_DIR,
  TOKEN_BUNDLE_DIR,
  TLS_DIR,
  CLIENT_CA_DIR,
  REDIS_PORT,
  REGISTRY_PORT,
  gcMode,
  redisAddress,
  renderConfig,
  storageKind,
  type RenderedConfig,
} from './render-config.js';

export type PullPolicy = NonNullable<RegistrySpec['imagePullPolicy']>;
export const PULL_POLICIES: readonly PullPolicy[] = ['Always', 'IfNotPresent', 'Never'];

/** The image a Registry runs unless its spec pins one: the operator's default, which the Helm chart sets. */
export interface RegistryImage {
  readonly image: string;
  readonly pullPolicy: PullPolicy;
}

/** What the builders need besides the Registry: facts the reconciler looked up. */
export interface BuildInputs {
  /** The operator's default image, for a Registry whose spec.image is absent. */
  readonly defaultImage: RegistryImage;
  /** The Secret and key holding the shared HTTP secret (the user's, or the generated one). */
  readonly httpSecret: { readonly name: string; readonly key: string };
  /** Whether the cluster serves monitoring.coreos.com/v1 ServiceMonitors. */
  readonly serviceMonitorApi: boolean;
  /** `name@resourceVersion` of the Secrets the pods read, so a rotated Secret rolls them. */
  readonly secretVersions?: readonly string[];
}

/** Every object of a registry, keyed by a stable role name. Absent roles must not exist in the cluster. */
export interface OwnedObjects {
  readonly config: V1ConfigMap;
  readonly deployment: V1Deployment;
  readonly service: V1Service;
  readonly pvc?: V1PersistentVolumeClaim;
  readonly pdb?: V1PodDisruptionBudget;
  readonly hpa?: V2HorizontalPodAutoscaler;
  readonly serviceMonitor?: KubernetesObject & { spec: Record<string, unknown> };
  readonly redisDeployment?: V1Deployment;
  readonly redisService?: V1Service;
  readonly serviceAccount?: V1ServiceAccount;
  /** Garbage collection on spec.gc.schedule. */
  readonly gcCronJob?: V1CronJob;
  readonly rendered: RenderedConfig;
}

export function ownerReference(registry: Registry): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: registry.metadata?.name ?? '',
    uid: registry.metadata?.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

function meta(registry: Registry, name: string, component: Component = 'registry') {
  return {
    name,
    namespace: registry.metadata?.namespace ?? 'default',
    labels: commonLabels(registry, component),
    ownerReferences: [ownerReference(registry)],
  };
}

/** The Secret holding a generated HTTP secret (built once; the reconciler never rewrites its value). */
export function buildHttpSecret(registry: Registry, value: string): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(registry, names(registry).httpSecret),
    type: 'Opaque',
    stringData: { secret: value },
  };
}

/** Whether the Deployment must replace pods rather than roll (a volume only one pod can mount). */
function singleWriterVolume(registry: Registry): boolean {
  const fs = registry.spec.storage.filesystem;
  return fs !== undefined && fs.accessMode !== 'ReadWriteMany';
}

/** The image and pull policy of a Registry's pods: what its spec pins, else the operator's default. */
export function registryImage(registry: Registry, defaultImage: RegistryImage): RegistryImage {
  return {
    image: registry.spec.image ?? defaultImage.image,
    pullPolicy: registry.spec.imagePullPolicy ?? defaultImage.pullPolicy,
  };
}

/** How long a stopping registry pod keeps serving before SIGTERM: the endpoint removal's trip to every node. */
export const PRE_STOP_SECONDS = 5;

/** Where the registry's volumes are mounted: the rendered config's paths. */
function registryMounts(registry: Registry): V1VolumeMount[] {
  const { spec } = registry;
  const kind = storageKind(spec);
  const mounts: V1VolumeMount[] = [
    { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
    { name: 'tmp', mountPath: '/tmp' },
  ];
  if (kind === 'filesystem' || kind === 'emptyDir') mounts.push({ name: 'data', mountPath: DATA_DIR });
  // Whole-Secret volumes (never subPath), so the kubelet swaps in a changed Secret and Berth re-reads the files.
  if (spec.auth?.htpasswd !== undefined) mounts.push({ name: 'htpasswd', mountPath: HTPASSWD_DIR, readOnly: true });
  if (spec.auth?.token?.rootCertBundle !== undefined) {
    mounts.push({ name: 'token-bundle', mountPath: TOKEN_BUNDLE_DIR, readOnly: true });
  }
  if (spec.tls !== undefined) mounts.push({ name: 'tls', mountPath: TLS_DIR, readOnly: true });
  if (spec.tls?.clientCA !== undefined) mounts.push({ name: 'client-ca', mountPath: CLIENT_CA_DIR, readOnly: true });
  if (spec.storage.gcs?.credentialsSecret !== undefined) {
    mounts.push({ name: 'gcs-key', mountPath: GCS_KEY_DIR, readOnly: true });
  }
  return mounts;
}

/** The rendered environment (Secret references only) that every Berth container of a Registry gets. */
function berthEnv(rendered: RenderedConfig): V1EnvVar[] {
  return [{ name: 'NODE_ENV', value: 'production' }, ...rendered.env];
}

const CONTAINER_SECURITY = {
  runAsNonRoot: true,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
};

/**
 * What every pod running Berth for a Registry shares, the registry's and the collector's alike: account, security
 * context, volumes and placement.
 */
function berthPodSpec(registry: Registry): Omit<V1PodSpec, 'containers'> {
  const { spec } = registry;
  return {
    // Workload identity webhooks (IRSA, Azure) mount their own projected token; the API token is never needed.
    ...serviceAccountOf(registry),
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      fsGroup: 65532,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumes: registryVolumes(registry),
    nodeSelector: spec.nodeSelector,
    tolerations: spec.tolerations,
    ...(spec.affinity === undefined ? {} : { affinity: spec.affinity }),
  };
}

function registryContainer(registry: Registry, rendered: RenderedConfig, image: RegistryImage): V1Container {
  const { spec } = registry;
  return {
    name: 'registry',
    image: image.image,
    imagePullPolicy: image.pullPolicy,
    args: ['serve', '--config', CONFIG_FILE],
    ports: [
      { name: 'registry', containerPort: REGISTRY_PORT, protocol: 'TCP' },
      { name: 'debug', containerPort: DEBUG_PORT, protocol: 'TCP' },
    ],
    env: berthEnv(rendered),
    volumeMounts: registryMounts(registry),
    ...(spec.resources === undefined ? {} : { resources: spec.resources }),
    livenessProbe: {
      httpGet: { path: '/healthz', port: 'debug' },
      periodSeconds: 10,
      timeoutSeconds: 3,
      failureThreshold: 3,
    },
    readinessProbe: {
      httpGet: { path: '/readyz', port: 'debug' },
      periodSeconds: 5,
      timeoutSeconds: 3,
      failureThreshold: 2,
    },
    startupProbe: { httpGet: { path: '/healthz', port: 'debug' }, periodSeconds: 2, failureThreshold: 30 },
    // A deleted pod leaves the Service's endpoints at once, but each node's kube-proxy (and each client's open
    // connection) learns it a moment later. The pod keeps serving for those seconds, and only then gets SIGTERM and
    // drains, so a rollout or a scale-down fails no request.
    lifecycle: { preStop: { sleep: { seconds: PRE_STOP_SECONDS } } },
    securityContext: CONTAINER_SECURITY,
  };
}

function registryVolumes(registry: Registry): V1Volume[] {
  const { spec } = registry;
  const n = names(registry);
  const volumes: V1Volume[] = [
    { name: 'config', configMap: { name: n.config } },
    { name: 'tmp', emptyDir: { sizeLimit: '1Gi' } },
  ];
  const fs = spec.storage.filesystem;
  if (fs !== undefined) {
    volumes.push({ name: 'data', persistentVolumeClaim: { claimName: fs.existingClaim ?? n.pvc } });
  } else if (spec.storage.emptyDir !== undefined) {
    volumes.push({ name: 'data', emptyDir: { sizeLimit: spec.storage.emptyDir.sizeLimit } });
  }
  if (spec.auth?.htpasswd !== undefined) {
    volumes.push({ name: 'htpasswd', secret: { secretName: spec.auth.htpasswd.name } });
  }
  if (spec.auth?.token?.rootCertBundle !== undefined) {
    volumes.push({ name: 'token-bundle', secret: { secretName: spec.auth.token.rootCertBundle.name } });
  }
  if (spec.tls !== undefined) volumes.push({ name: 'tls', secret: { secretName: spec.tls.secretName } });
  if (spec.tls?.clientCA !== undefined) {
    volumes.push({ name: 'client-ca', secret: { secretName: spec.tls.clientCA.name } });
  }
  if (spec.storage.gcs?.credentialsSecret !== undefined) {
    volumes.push({ name: 'gcs-key', secret: { secretName: spec.storage.gcs.credentialsSecret.name } });
  }
  return volumes;
}

/** The ServiceAccount the pods run as: one named in the spec, the operator's own, or the namespace default. */
function serviceAccountOf(registry: Registry): { serviceAccountName?: string } {
  const sa = registry.spec.serviceAccount;
  if (sa?.name !== undefined) return { serviceAccountName: sa.name };
  if (sa?.annotations !== undefined) return { serviceAccountName: names(registry).serviceAccount };
  return {};
}

function buildDeployment(registry: Registry, rendered: RenderedConfig, image: RegistryImage): V1Deployment {
  const { spec } = registry;
  const podLabels = { ...spec.podLabels, ...selectorLabels(registry) };
  const annotations: Record<string, string> = { ...spec.podAnnotations, [CONFIG_HASH_ANNOTATION]: rendered.hash };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(registry, names(registry).deployment),
    spec: {
      // While an HPA scales the Deployment, the operator leaves replicas out so the two never fight over it.
      ...(spec.autoscaling.enabled ? {} : { replicas: spec.replicas }),
      selector: { matchLabels: selectorLabels(registry) },
      strategy: singleWriterVolume(registry)
        ? { type: 'Recreate' }
        : { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      revisionHistoryLimit: 5,
      template: {
        metadata: { labels: podLabels, annotations },
        spec: {
          ...berthPodSpec(registry),
          terminationGracePeriodSeconds: 30,
          containers: [registryContainer(registry, rendered, image)],
          topologySpreadConstraints: spec.topologySpreadConstraints,
        },
      },
    },
  };
}

/** The arguments of the collector's container: `berth gc` under the lease the serving replicas' online GC takes. */
export function gcArgs(registry: Registry): string[] {
  const gc = registry.spec.gc;
  return [
    'gc',
    '--online',
    '--config',
    CONFIG_FILE,
    ...(gc?.deleteUntagged === true ? ['--delete-untagged'] : []),
    '--grace',
    gc?.gracePeriod ?? '1h',
  ];
}

/**
 * spec.gc.schedule: a CronJob whose pods run `berth gc --online` with the registry pods' config, environment, volumes
 * and identity, so they reach the same store and cache. Forbid keeps a slow run from overlapping the next; the lease
 * keeps it from overlapping anything else.
 */
function buildGcCronJob(registry: Registry, rendered: RenderedConfig, image: RegistryImage): V1CronJob | undefined {
  const { spec } = registry;
  const schedule = spec.gc?.schedule;
  if (gcMode(spec) !== 'cronjob' || schedule === undefined) return undefined;
  // Not the registry's selector labels: a collector pod must never join the Service's endpoints.
  const labels = { ...spec.podLabels, ...selectorLabels(registry, 'gc') };
  return {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: meta(registry, names(registry).gc, 'gc'),
    spec: {
      schedule,
      concurrencyPolicy: 'Forbid',
      successfulJobsHistoryLimit: 1,
      failedJobsHistoryLimit: 3,
      // A run missed by more than an hour (the controller down, the cluster busy) waits for the next one.
      startingDeadlineSeconds: 3600,
      jobTemplate: {
        metadata: { labels: selectorLabels(registry, 'gc') },
        spec: {
          backoffLimit: 2,
          template: {
            metadata: { labels, annotations: { ...spec.podAnnotations } },
            spec: {
              ...berthPodSpec(registry),
              restartPolicy: 'Never',
              // SIGTERM aborts the collection and frees the lease; what is left of a sweep is picked up next run.
              terminationGracePeriodSeconds: 30,
              containers: [
                {
                  name: 'gc',
                  image: image.image,
                  imagePullPolicy: image.pullPolicy,
                  args: gcArgs(registry),
                  env: berthEnv(rendered),
                  volumeMounts: registryMounts(registry),
                  ...(spec.resources === undefined ? {} : { resources: spec.resources }),
                  securityContext: CONTAINER_SECURITY,
                },
              ],
            },
          },
        },
      },
    },
  };
}

function buildService(registry: Registry): V1Service {
  const { spec } = registry;
  const ports = [{ name: 'registry', port: spec.service.port, targetPort: 'registry', protocol: 'TCP' }];
  if (spec.metrics.enabled) ports.push({ name: 'metrics', port: DEBUG_PORT, targetPort: 'debug', protocol: 'TCP' });
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { ...meta(registry, names(registry).service), annotations: spec.service.annotations },
    spec: { type: spec.service.type, selector: selectorLabels(registry), ports },
  };
}

function buildPvc(registry: Registry): V1PersistentVolumeClaim | undefined {
  const fs = registry.spec.storage.filesystem;
  if (fs === undefined || fs.existingClaim !== undefined) return undefined;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    // No owner reference: the PVC holds the images, so deleting the Registry (or Removed) never deletes them.
    metadata: {
      name: names(registry).pvc,
      namespace: registry.metadata?.namespace ?? 'default',
      labels: commonLabels(registry),
    },
    spec: {
      accessModes: [fs.accessMode],
      resources: { requests: { storage: fs.size } },
      ...(fs.storageClassName === undefined ? {} : { storageClassName: fs.storageClassName }),
    },
  };
}

function buildRedis(registry: Registry): { deployment: V1Deployment; service: V1Service } | undefined {
  const redis = registry.spec.cache.redis;
  if (registry.spec.cache.type !== 'redis' || redis === undefined || !redis.managed) return undefined;
  const n = names(registry);
  const labels = selectorLabels(registry, 'redis');
  // Protected mode (on in redis-server's own defaults; the official image patches it off) refuses every client not on
  // loopback when no password is set: the registry pods reach Redis through its Service, never on loopback.
  const args = [
    '--save',
    '',
    '--appendonly',
    'no',
    '--maxmemory',
    '256mb',
    '--maxmemory-policy',
    'allkeys-lru',
    '--protected-mode',
    'no',
  ];
  const env: V1EnvVar[] = [];
  if (redis.passwordSecret !== undefined) {
    env.push({
      name: 'REDIS_PASSWORD',
      valueFrom: { secretKeyRef: { name: redis.passwordSecret.name, key: redis.passwordSecret.key } },
    });
    args.push('--requirepass', '$(REDIS_PASSWORD)');
  }
  return {
    deployment: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta(registry, n.redis, 'redis'),
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        strategy: { type: 'Recreate' },
        template: {
          metadata: { labels },
          spec: {
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            securityContext: {
              runAsNonRoot: true,
              runAsUser: 999,
              runAsGroup: 999,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            containers: [
              {
                name: 'redis',
                image: redis.image,
                args,
                env,
                ports: [{ name: 'redis', containerPort: REDIS_PORT, protocol: 'TCP' }],
                readinessProbe: { tcpSocket: { port: 'redis' }, periodSeconds: 5 },
                livenessProbe: { tcpSocket: { port: 'redis' }, periodSeconds: 10 },
                resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '320Mi' } },
                securityContext: {
                  readOnlyRootFilesystem: true,
                  allowPrivilegeEscalation: false,
                  capabilities: { drop: ['ALL'] },
                },
                volumeMounts: [{ name: 'data', mountPath: '/data' }],
              },
            ],
            volumes: [{ name: 'data', emptyDir: {} }],
          },
        },
      },
    },
    service: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(registry, n.redis, 'redis'),
      spec: {
        type: 'ClusterIP',
        selector: labels,
        ports: [{ name: 'redis', port: REDIS_PORT, targetPort: 'redis', protocol: 'TCP' }],
      },
    },
  };
}

/** Everything that runs one Registry. */
export function buildOwnedObjects(registry: Registry, inputs: BuildInputs): OwnedObjects {
  const { spec } = registry;
  const n = names(registry);
  const rendered = renderConfig(registry, inputs.httpSecret, inputs.secretVersions);
  const redis = buildRedis(registry);
  const pvc = buildPvc(registry);
  const image = registryImage(registry, inputs.defaultImage);
  const objects: {
    -readonly [K in keyof OwnedObjects]: OwnedObjects[K];
  } = {
    config: {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: meta(registry, n.config),
      data: { 'config.yml': rendered.yaml },
    },
    deployment: buildDeployment(registry, rendered, image),
    service: buildService(registry),
    rendered,
  };
  if (pvc !== undefined) objects.pvc = pvc;
  const account = spec.serviceAccount;
  if (account?.name === undefined && account?.annotations !== undefined) {
    objects.serviceAccount = {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: {
        ...meta(registry, n.serviceAccount),
        annotations: account.annotations,
      },
      automountServiceAccountToken: false,
    };
  }
  const gcCronJob = buildGcCronJob(registry, rendered, image);
  if (gcCronJob !== undefined) objects.gcCronJob = gcCronJob;
  if (redis !== undefined) {
    objects.redisDeployment = redis.deployment;
    objects.redisService = redis.service;
  }
  if (spec.podDisruptionBudget.enabled) {
    objects.pdb = {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: meta(registry, n.pdb),
      spec: {
        maxUnavailable: spec.podDisruptionBudget.maxUnavailable,
        selector: { matchLabels: selectorLabels(registry) },
      },
    };
  }
  if (spec.autoscaling.enabled) {
    objects.hpa = {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: meta(registry, n.hpa),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: n.deployment },
        minReplicas: spec.autoscaling.minReplicas,
        maxReplicas: spec.autoscaling.maxReplicas,
        metrics: [
          {
            type: 'Resource',
            resource: {
              name: 'cpu',
              target: { type: 'Utilization', averageUtilization: spec.autoscaling.targetCPUUtilizationPercentage },
            },
          },
        ],
      },
    };
  }
  if (spec.metrics.enabled && spec.metrics.serviceMonitor.enabled && inputs.serviceMonitorApi) {
    objects.serviceMonitor = {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: {
        ...meta(registry, n.serviceMonitor),
        labels: { ...spec.metrics.serviceMonitor.labels, ...commonLabels(registry) },
      },
      spec: {
        selector: { matchLabels: selectorLabels(registry) },
        endpoints: [{ port: 'metrics', path: '/metrics', interval: spec.metrics.serviceMonitor.interval }],
      },
    };
  }
  return objects;
}

/** `name.namespace.svc:port`: where pods in the cluster reach the registry. */
/** Where clients reach the registry in the cluster; `https://` in front when it serves TLS. */
export function endpoint(registry: Registry): string {
  const host = `${names(registry).service}.${registry.metadata?.namespace ?? 'default'}.svc:${registry.spec.service.port}`;
  return registry.spec.tls === undefined ? host : `https://${host}`;
}

/** Short descriptions for the status (and `kubectl get reg` columns). */
export function describeBackends(registry: Registry): { storage: string; cache: string } {
  const { spec } = registry;
  const cache =
    spec.cache.type === 'redis'
      ? spec.cache.redis?.managed === true
        ? 'redis (managed)'
        : `redis ${redisAddress(registry) ?? ''}`.trim()
      : spec.cache.type;
  return { storage: storageKind(spec), cache };
}
