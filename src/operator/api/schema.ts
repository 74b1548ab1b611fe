// The Registry custom resource's OpenAPI schema: the single source from which `crds/` and `./types.ts` are generated
// (`npm run generate`; a test fails when either drifts). Keys starting with `x-berth-` steer the TypeScript output only
// and are stripped from the CRD.

/** The subset of a CRD's JSONSchemaProps that Berth's schema uses. */
export interface Schema {
  readonly type?: 'object' | 'array' | 'string' | 'integer' | 'boolean';
  readonly description?: string;
  readonly default?: unknown;
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly required?: readonly string[];
  readonly items?: Schema;
  readonly additionalProperties?: Schema;
  readonly enum?: readonly string[];
  readonly format?: string;
  readonly pattern?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly maxItems?: number;
  readonly maxProperties?: number;
  readonly nullable?: boolean;
  readonly 'x-kubernetes-preserve-unknown-fields'?: boolean;
  readonly 'x-kubernetes-int-or-string'?: boolean;
  readonly 'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  readonly 'x-kubernetes-list-map-keys'?: readonly string[];
  readonly 'x-kubernetes-map-type'?: 'atomic' | 'granular';
  readonly 'x-kubernetes-validations'?: readonly {
    readonly rule: string;
    readonly message: string;
    readonly fieldPath?: string;
    readonly reason?: string;
  }[];
  /** TypeScript type to use instead of the generated one (a Kubernetes core type from @kubernetes/client-node). */
  readonly 'x-berth-ts-type'?: string;
  /** Name of the generated TypeScript interface for this object. */
  readonly 'x-berth-ts-name'?: string;
}

export const GROUP = 'berth.dev';
export const VERSION = 'v1alpha1';
export const KIND = 'Registry';
export const PLURAL = 'registries';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** A Kubernetes quantity such as `10Gi` or `500M`. */
const QUANTITY = '^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$';
const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const SECRET_KEY = '^[-._a-zA-Z0-9]+$';
/** A Go duration as Berth's config takes it (`500ms`, `1m30s`). */
const DURATION = '^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$';

/** Berth's config refuses gc durations under a second. */
const atLeastOneSecond = {
  rule: "duration(self) >= duration('1s')",
  message: 'must be at least 1s',
  reason: 'FieldValueInvalid',
} as const;

const str = (description: string, extra: Partial<Schema> = {}): Schema => ({ type: 'string', description, ...extra });
const bool = (description: string, dflt: boolean): Schema => ({ type: 'boolean', description, default: dflt });
const int = (description: string, dflt: number | undefined, min: number, max: number): Schema => ({
  type: 'integer',
  description,
  ...(dflt === undefined ? {} : { default: dflt }),
  minimum: min,
  maximum: max,
});
const stringMap = (description: string): Schema => ({
  type: 'object',
  description,
  default: {},
  maxProperties: 64,
  additionalProperties: { type: 'string', description: 'A value.', maxLength: 4096 },
});
const opaque = (description: string, tsType: string): Schema => ({
  type: 'object',
  description,
  'x-kubernetes-preserve-unknown-fields': true,
  'x-berth-ts-type': tsType,
});
const opaqueList = (description: string, tsType: string): Schema => ({
  type: 'array',
  description,
  default: [],
  maxItems: 64,
  'x-kubernetes-list-type': 'atomic',
  items: { type: 'object', description: 'One entry.', 'x-kubernetes-preserve-unknown-fields': true },
  'x-berth-ts-type': `${tsType}[]`,
});
const quantity = (description: string, dflt?: string): Schema => ({
  type: 'string',
  description,
  pattern: QUANTITY,
  ...(dflt === undefined ? {} : { default: dflt }),
  'x-kubernetes-validations': [
    {
      rule: "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",
      message: 'must be a positive quantity such as 10Gi',
      reason: 'FieldValueInvalid',
    },
  ],
});
/** A reference to one key of a Secret in the Registry's namespace. */
const secretKeyRef = (description: string, defaultKey: string): Schema => ({
  type: 'object',
  description,
  required: ['name'],
  properties: {
    name: str('Name of the Secret, in the Registry’s namespace.', { pattern: DNS_SUBDOMAIN, maxLength: 253 }),
    key: str('Key within the Secret.', { default: defaultKey, pattern: SECRET_KEY, maxLength: 253 }),
  },
});
const rootDirectory = str('Prefix under which the registry keeps its files in the bucket or container.', {
  default: '/',
  maxLength: 1024,
});

const storage: Schema = {
  'x-berth-ts-name': 'RegistryStorage',
  type: 'object',
  description: 'Where images are stored. Exactly one backend may be set; the default is a filesystem on a new PVC.',
  default: { filesystem: {} },
  'x-kubernetes-validations': [
    {
      rule: '[has(self.filesystem), has(self.emptyDir), has(self.s3), has(self.azure), has(self.gcs)].filter(x, x).size() == 1',
      message: 'exactly one storage backend must be set: filesystem, emptyDir, s3, azure or gcs',
      reason: 'FieldValueInvalid',
    },
  ],
  properties: {
    filesystem: {
      type: 'object',
      description: 'A filesystem on a PersistentVolumeClaim: one the operator creates, or an existing claim.',
      'x-kubernetes-validations': [
        {
          rule: '!has(self.existingClaim) || !has(self.storageClassName)',
          message: 'storageClassName applies only to a claim the operator creates; remove it or existingClaim',
          reason: 'FieldValueForbidden',
        },
      ],
      properties: {
        size: quantity('Requested size of the claim the operator creates.', '10Gi'),
        storageClassName: str('StorageClass of the claim the operator creates; the cluster default when absent.', {
          pattern: DNS_SUBDOMAIN,
          maxLength: 253,
        }),
        accessMode: str(
          'Access mode of the claim. ReadWriteOnce allows one replica; ReadWriteMany lets replicas share the volume.',
          { enum: ['ReadWriteOnce', 'ReadWriteMany', 'ReadWriteOncePod'], default: 'ReadWriteOnce' },
        ),
        existingClaim: str('Use this existing PersistentVolumeClaim instead of creating one.', {
          pattern: DNS_SUBDOMAIN,
          maxLength: 253,
        }),
      },
    },
    emptyDir: {
      type: 'object',
      description: 'A scratch volume that lives as long as the pod: for tests and caches only; allows one replica.',
      properties: { sizeLimit: quantity('Upper bound of the volume.', '10Gi') },
    },
    s3: {
      type: 'object',
      description: 'An S3 or S3-compatible bucket.',
      required: ['bucket'],
      properties: {
        bucket: str('Bucket name.', { minLength: 3, maxLength: 63 }),
        region: str('Region of the bucket.', { default: 'us-east-1', maxLength: 64 }),
        endpoint: str('Endpoint URL of an S3-compatible service; AWS when absent.', {
          pattern: '^https?://',
          maxLength: 2048,
        }),
        forcePathStyle: bool('Address the bucket in the path rather than the host name.', false),
        rootDirectory,
        credentialsSecret: {
          type: 'object',
          description: 'Secret with the access key id and secret key; workload identity when absent.',
          required: ['name'],
          properties: {
            name: str('Name of the Secret, in the Registry’s namespace.', { pattern: DNS_SUBDOMAIN, maxLength: 253 }),
            accessKeyIdKey: str('Key holding the access key id.', { default: 'accessKeyId', pattern: SECRET_KEY }),
            secretAccessKeyKey: str('Key holding the secret access key.', {
              default: 'secretAccessKey',
              pattern: SECRET_KEY,
            }),
          },
        },
      },
    },
    azure: {
      type: 'object',
      description: 'An Azure Blob Storage container.',
      required: ['accountName', 'container'],
      properties: {
        accountName: str('Storage account name.', { pattern: '^[a-z0-9]{3,24}$' }),
        container: str('Container name.', { pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', minLength: 3, maxLength: 63 }),
        serviceURL: str(
          'Blob service URL (a sovereign cloud, a private endpoint, Azurite); https://<account>.blob.core.windows.net when absent.',
          { pattern: '^https?://', maxLength: 2048 },
        ),
        rootDirectory,
        credentialsSecret: secretKeyRef('Secret with the account key; workload identity when absent.', 'accountKey'),
      },
    },
    gcs: {
      type: 'object',
      description: 'A Google Cloud Storage bucket.',
      required: ['bucket'],
      properties: {
        bucket: str('Bucket name.', { minLength: 3, maxLength: 222 }),
        endpoint: str('Base URL of the JSON API of a GCS-compatible service or emulator; Google’s when absent.', {
          pattern: '^https?://',
          maxLength: 2048,
        }),
        rootDirectory,
        credentialsSecret: secretKeyRef(
          'Secret with a service-account key file; workload identity when absent.',
          'key.json',
        ),
      },
    },
  },
};

const cache: Schema = {
  'x-berth-ts-name': 'RegistryCache',
  type: 'object',
  description: 'The blob-descriptor cache that answers blob existence checks without touching storage.',
  default: {},
  'x-kubernetes-validations': [
    {
      rule: "!has(self.type) || self.type != 'redis' || (has(self.redis) && ((has(self.redis.managed) && self.redis.managed) || has(self.redis.address)))",
      message: 'cache.type redis needs cache.redis.address (an external Redis) or cache.redis.managed: true',
      fieldPath: '.redis',
      reason: 'FieldValueRequired',
    },
    {
      rule: '!has(self.redis) || !has(self.redis.managed) || !self.redis.managed || !has(self.redis.address)',
      message: 'cache.redis.address and cache.redis.managed: true exclude each other',
      fieldPath: '.redis.address',
      reason: 'FieldValueForbidden',
    },
  ],
  properties: {
    type: str('none, an in-process LRU per replica (inmemory), or Redis shared by all replicas (redis).', {
      enum: ['none', 'inmemory', 'redis'],
      default: 'inmemory',
    }),
    size: int('Entries in the in-process LRU (inmemory, and the first tier of twoTier).', 10000, 1, 10000000),
    redis: {
      type: 'object',
      description: 'Redis settings when type is redis.',
      properties: {
        address: str('host:port of an external Redis.', { pattern: '^[^\\s:]+:[0-9]{1,5}$', maxLength: 512 }),
        managed: bool('Let the operator run a Redis Deployment and Service for this registry.', false),
        passwordSecret: secretKeyRef('Secret holding the Redis password.', 'password'),
        db: int('Redis database number.', 0, 0, 15),
        twoTier: bool('Keep an in-process LRU in front of Redis, invalidated over pub/sub.', true),
        image: str('Image of the managed Redis.', { default: 'redis:7.4-alpine', minLength: 1 }),
      },
    },
  },
};

const spec: Schema = {
  'x-berth-ts-name': 'RegistrySpec',
  type: 'object',
  description: 'The desired registry (`spec: {}` gives a one-replica registry on a 10Gi PVC with an in-memory cache).',
  'x-kubernetes-validations': [
    {
      rule: "!(has(self.storage.emptyDir) || (has(self.storage.filesystem) && self.storage.filesystem.accessMode != 'ReadWriteMany')) || (self.replicas <= 1 && (!self.autoscaling.enabled || self.autoscaling.maxReplicas <= 1))",
      message:
        'a ReadWriteOnce or emptyDir volume allows at most one replica: set replicas (and autoscaling.maxReplicas) to 1, or use ReadWriteMany or object storage',
      fieldPath: '.replicas',
      reason: 'FieldValueInvalid',
    },
    {
      rule: "!has(self.gc) || !has(self.gc.schedule) || !(has(self.storage.emptyDir) || (has(self.storage.filesystem) && self.storage.filesystem.accessMode != 'ReadWriteMany'))",
      message:
        'gc.schedule runs garbage collection in a CronJob pod, which cannot mount an emptyDir or a ReadWriteOnce volume the registry pod holds: remove gc.schedule (online GC inside the pod, gc.enabled, works there) or use ReadWriteMany or object storage',
      fieldPath: '.gc.schedule',
      reason: 'FieldValueForbidden',
    },
    {
      rule: "!has(self.gc) || !has(self.gc.schedule) || self.cache.type != 'inmemory'",
      message:
        'gc.schedule runs garbage collection in a CronJob pod, which cannot tell the registry pods’ in-memory caches what it swept (they would answer for deleted blobs): use cache.type redis or none, or remove gc.schedule for online GC inside the pods',
      fieldPath: '.gc.schedule',
      reason: 'FieldValueForbidden',
    },
  ],
  properties: {
    replicas: int('Registry pods to run (ignored while autoscaling is enabled).', 1, 0, 1000),
    // No defaults: an absent image follows the operator's (the chart's `image`), so a `helm upgrade` rolls the registry.
    image: str(
      'Berth container image. When absent, the operator’s default (the Helm chart’s image); set it to pin this registry to one image.',
      { minLength: 1, maxLength: 1024 },
    ),
    imagePullPolicy: str('When the kubelet pulls the image; the operator’s default (the chart’s) when absent.', {
      enum: ['Always', 'IfNotPresent', 'Never'],
    }),
    storage,
    cache,
    auth: {
      type: 'object',
      description:
        'Client authentication: htpasswd users (with an optional policy) or tokens from an issuer. Unauthenticated when absent.',
      'x-kubernetes-validations': [
        {
          rule: '!(has(self.htpasswd) && has(self.token))',
          message: 'configure htpasswd or token auth, not both',
          reason: 'FieldValueInvalid',
        },
        {
          rule: '!(has(self.token) && has(self.policy))',
          message: 'a policy applies to htpasswd users; with token auth the token’s access claims decide',
          reason: 'FieldValueInvalid',
        },
      ],
      properties: {
        htpasswd: secretKeyRef(
          'Secret holding an htpasswd file (bcrypt entries, `htpasswd -B`); an edit reaches the pods without a restart.',
          'htpasswd',
        ),
        token: {
          type: 'object',
          description: 'Bearer tokens from an issuer that implements the Docker registry token protocol.',
          required: ['realm', 'service', 'issuer'],
          'x-kubernetes-validations': [
            {
              rule: 'has(self.rootCertBundle) || has(self.jwksUrl)',
              message: 'token auth needs the issuer’s keys: rootCertBundle, jwksUrl, or both',
              reason: 'FieldValueRequired',
            },
          ],
          properties: {
            realm: str('The token endpoint clients are sent to.', { pattern: '^https?://', maxLength: 2048 }),
            service: str('This registry’s name at the issuer (the tokens’ audience).', {
              minLength: 1,
              maxLength: 253,
            }),
            issuer: str('The tokens’ issuer (`iss`).', { minLength: 1, maxLength: 253 }),
            rootCertBundle: secretKeyRef('Secret holding the PEM certificates that sign tokens.', 'ca.crt'),
            jwksUrl: str('URL of the issuer’s JWK Set.', { pattern: '^https?://', maxLength: 2048 }),
            signingAlgorithms: {
              type: 'array',
              description: 'Algorithms accepted; every asymmetric one when absent (HMAC is never accepted).',
              maxItems: 10,
              'x-kubernetes-list-type': 'set',
              items: str('An algorithm.', {
                enum: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'],
              }),
            },
          },
        },
        policy: {
          type: 'object',
          description:
            'Who may do what, by repository, for htpasswd users. Without a policy every htpasswd user may do everything and anonymous clients nothing.',
          properties: {
            groups: {
              type: 'object',
              description: 'Group name → user names; rules name a group as `@name`.',
              maxProperties: 256,
              additionalProperties: {
                type: 'array',
                description: 'User names.',
                maxItems: 1024,
                items: str('A user name.', { maxLength: 253 }),
              },
            },
            catalog: {
              type: 'array',
              description: 'Principals that may list /v2/_catalog (`authenticated` when absent).',
              maxItems: 64,
              items: str('A principal: a user, `@group`, `authenticated` or `anonymous`.', { maxLength: 253 }),
            },
            rules: {
              type: 'array',
              description: 'Rules in order; the first whose repository glob matches decides.',
              maxItems: 256,
              'x-kubernetes-list-type': 'atomic',
              items: {
                type: 'object',
                description: 'One rule.',
                required: ['repository', 'access'],
                properties: {
                  repository: {
                    type: 'array',
                    description: 'Repository globs: `*` within a path segment, `**` across segments.',
                    maxItems: 64,
                    items: str('A glob.', { minLength: 1, maxLength: 255 }),
                  },
                  access: {
                    type: 'object',
                    description: 'Principal (a user, `@group`, `authenticated`, `anonymous`) → actions.',
                    maxProperties: 64,
                    additionalProperties: {
                      type: 'array',
                      description: 'Actions.',
                      maxItems: 4,
                      items: str('An action.', { enum: ['pull', 'push', 'delete', '*'] }),
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
    tls: {
      type: 'object',
      description:
        'Serve HTTPS with the certificate in a Secret (as cert-manager writes it); a renewal reaches the pods without a restart.',
      required: ['secretName'],
      properties: {
        secretName: str('A Secret with `tls.crt` and `tls.key`, in the Registry’s namespace.', {
          pattern: DNS_SUBDOMAIN,
          maxLength: 253,
        }),
        clientCA: secretKeyRef(
          'Secret holding the CA certificates clients must present a certificate from (mutual TLS).',
          'ca.crt',
        ),
        minimumVersion: str('Oldest TLS version accepted.', { enum: ['tls1.2', 'tls1.3'], default: 'tls1.2' }),
      },
    },
    httpSecret: {
      type: 'object',
      description:
        'Secret that signs upload locations, shared by all replicas. When absent, the operator generates one and keeps it in a Secret named <registry>-http-secret.',
      properties: { secretRef: secretKeyRef('An existing Secret to use instead.', 'secret') },
    },
    deleteEnabled: bool('Allow deleting blobs and manifests through the API.', false),
    readOnly: bool('Refuse pushes (maintenance mode).', false),
    logLevel: str('Registry log level.', {
      enum: ['trace', 'debug', 'info', 'warn', 'error'],
      default: 'info',
    }),
    resources: opaque('Compute resources of the registry container.', 'V1ResourceRequirements'),
    nodeSelector: stringMap('Node labels the pods must match.'),
    tolerations: opaqueList('Pod tolerations.', 'V1Toleration'),
    affinity: opaque('Pod affinity rules.', 'V1Affinity'),
    topologySpreadConstraints: opaqueList('How pods spread across topology domains.', 'V1TopologySpreadConstraint'),
    podAnnotations: stringMap('Extra annotations on the pods.'),
    podLabels: stringMap('Extra labels on the pods.'),
    notifications: {
      type: 'object',
      description:
        'Webhook endpoints that receive registry events (push, pull, delete, mount) as Distribution sends them.',
      properties: {
        endpoints: {
          type: 'array',
          description: 'Where events go; each endpoint has its own bounded queue and retries.',
          default: [],
          maxItems: 16,
          'x-kubernetes-list-type': 'map',
          'x-kubernetes-list-map-keys': ['name'],
          items: {
            type: 'object',
            description: 'One endpoint.',
            required: ['name', 'url'],
            properties: {
              name: str('Name of the endpoint, in logs and metrics.', { pattern: '^[-._a-zA-Z0-9]+$', maxLength: 128 }),
              url: str('URL events are POSTed to.', { pattern: '^https?://', maxLength: 2048 }),
              headers: stringMap('Extra request headers, in the clear (use headerSecrets for credentials).'),
              headerSecrets: {
                type: 'array',
                description: 'Request headers whose values come from Secrets (an Authorization token, say).',
                default: [],
                maxItems: 16,
                'x-kubernetes-list-type': 'atomic',
                items: {
                  type: 'object',
                  description: 'One header.',
                  required: ['header', 'name'],
                  properties: {
                    header: str('Header name.', { pattern: '^[A-Za-z0-9][-A-Za-z0-9]*$', maxLength: 128 }),
                    name: str('Name of the Secret, in the Registry’s namespace.', {
                      pattern: DNS_SUBDOMAIN,
                      maxLength: 253,
                    }),
                    key: str('Key within the Secret.', { default: 'value', pattern: SECRET_KEY, maxLength: 253 }),
                  },
                },
              },
              timeout: str('Bound on one delivery attempt (a Go duration).', { default: '1s', pattern: DURATION }),
              threshold: int('Failed attempts in a row before the endpoint backs off.', 10, 1, 1000),
              backoff: str('How long to wait after threshold failures (a Go duration).', {
                default: '1s',
                pattern: DURATION,
              }),
              ignoredActions: {
                type: 'array',
                description: 'Actions not sent to this endpoint.',
                default: [],
                'x-kubernetes-list-type': 'set',
                items: { type: 'string', description: 'An action.', enum: ['push', 'pull', 'delete', 'mount'] },
              },
              ignoredMediaTypes: {
                type: 'array',
                description: 'Events about targets of these media types are not sent to this endpoint.',
                default: [],
                maxItems: 64,
                'x-kubernetes-list-type': 'set',
                items: { type: 'string', description: 'A media type.', maxLength: 255 },
              },
            },
          },
        },
      },
    },
    gc: {
      type: 'object',
      description:
        'Garbage collection of blobs and manifests no tag reaches, while the registry serves: online inside the registry pods every interval, or from a CronJob on a schedule. Off when absent.',
      properties: {
        enabled: bool('Collect online inside the registry pods, one replica at a time (ignored with schedule).', false),
        interval: str('How often online collection runs (a Go duration).', {
          default: '24h',
          pattern: DURATION,
          maxLength: 64,
          'x-kubernetes-validations': [atLeastOneSecond],
        }),
        gracePeriod: str(
          'Nothing written more recently than this is swept, so pushes in flight keep their blobs (a Go duration; 1h is safe).',
          { default: '1h', pattern: DURATION, maxLength: 64, 'x-kubernetes-validations': [atLeastOneSecond] },
        ),
        deleteUntagged: bool('Also delete manifests that no tag and no other manifest references.', false),
        schedule: str(
          'Cron schedule of a CronJob running `berth gc --online` instead of online collection in the pods (which then stays off whatever enabled says). Needs object storage or a ReadWriteMany volume, and a cache the CronJob can reach (redis or none).',
          {
            pattern: '^(@(annually|yearly|monthly|weekly|daily|midnight|hourly)|\\S+( +\\S+){4})$',
            maxLength: 256,
          },
        ),
      },
    },
    serviceAccount: {
      type: 'object',
      description:
        'The ServiceAccount the registry pods run as, for workload identity to the object store (IRSA, Azure workload identity, GKE workload identity). The namespace’s default account when absent.',
      'x-kubernetes-validations': [
        {
          rule: '!(has(self.name) && has(self.annotations) && size(self.annotations) > 0)',
          message: 'annotations apply to the ServiceAccount the operator creates; annotate an existing one yourself',
          reason: 'FieldValueInvalid',
        },
      ],
      properties: {
        name: str('An existing ServiceAccount to run the pods as; the operator neither creates nor changes it.', {
          pattern: DNS_SUBDOMAIN,
          maxLength: 253,
        }),
        annotations: {
          type: 'object',
          description:
            'Annotations of a ServiceAccount the operator creates and owns, named after the Registry (eks.amazonaws.com/role-arn, azure.workload.identity/client-id, iam.gke.io/gcp-service-account).',
          maxProperties: 64,
          additionalProperties: { type: 'string', description: 'A value.', maxLength: 4096 },
        },
      },
    },
    service: {
      type: 'object',
      description: 'The Service in front of the registry pods.',
      default: {},
      properties: {
        type: str('Service type.', { enum: ['ClusterIP', 'NodePort', 'LoadBalancer'], default: 'ClusterIP' }),
        port: int('Port of the registry API on the Service.', 5000, 1, 65535),
        annotations: stringMap('Extra annotations on the Service.'),
      },
    },
    metrics: {
      type: 'object',
      description: 'Prometheus metrics on the debug port (5001, /metrics).',
      default: {},
      properties: {
        enabled: bool('Expose metrics.', true),
        serviceMonitor: {
          type: 'object',
          description: 'A prometheus-operator ServiceMonitor, created only when that API exists in the cluster.',
          default: {},
          properties: {
            enabled: bool('Create the ServiceMonitor.', true),
            labels: stringMap('Extra labels, for the Prometheus that selects ServiceMonitors by label.'),
            interval: str('Scrape interval.', { default: '30s', pattern: '^[0-9]+(ms|s|m|h)$' }),
          },
        },
      },
    },
    podDisruptionBudget: {
      type: 'object',
      description: 'A PodDisruptionBudget for the registry pods.',
      default: {},
      properties: {
        enabled: bool('Create the PodDisruptionBudget.', false),
        maxUnavailable: {
          description: 'Pods that may be down at once during voluntary disruptions (a number or a percentage).',
          default: 1,
          'x-kubernetes-int-or-string': true,
          'x-berth-ts-type': 'number | string',
        },
      },
    },
    autoscaling: {
      type: 'object',
      description: 'A HorizontalPodAutoscaler on CPU; replicas is ignored while it is enabled.',
      default: {},
      'x-kubernetes-validations': [
        {
          rule: '!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas',
          message: 'autoscaling.minReplicas must not exceed autoscaling.maxReplicas',
          fieldPath: '.minReplicas',
          reason: 'FieldValueInvalid',
        },
      ],
      properties: {
        enabled: bool('Create the HorizontalPodAutoscaler.', false),
        minReplicas: int('Fewest replicas.', 1, 1, 1000),
        maxReplicas: int('Most replicas.', 5, 1, 1000),
        targetCPUUtilizationPercentage: int('Average CPU use, in percent of requests, to aim for.', 80, 1, 100),
      },
    },
    managementState: str(
      'Managed: the operator keeps the objects as specified. Unmanaged: it leaves them alone. Removed: it deletes them, keeping the PVC.',
      { enum: ['Managed', 'Unmanaged', 'Removed'], default: 'Managed' },
    ),
    configOverrides: opaque(
      'Raw registry config.yml keys, merged last over what the operator renders.',
      'Record<string, unknown>',
    ),
  },
};

const condition: Schema = {
  'x-berth-ts-name': 'RegistryCondition',
  type: 'object',
  description: 'One aspect of the registry’s state.',
  required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
  properties: {
    type: str('Ready, Progressing, Degraded, StorageReady or CacheReady.', { maxLength: 316 }),
    status: str('True, False or Unknown.', { enum: ['True', 'False', 'Unknown'] }),
    observedGeneration: int('The generation this condition was computed from.', undefined, 0, Number.MAX_SAFE_INTEGER),
    lastTransitionTime: str('When status last changed.', { format: 'date-time' }),
    reason: str('CamelCase reason.', { maxLength: 1024, pattern: '^([A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?)?$' }),
    message: str('What happened, and what to do about it.', { maxLength: 32768 }),
  },
};

const status: Schema = {
  'x-berth-ts-name': 'RegistryStatus',
  type: 'object',
  description: 'What the operator observed.',
  properties: {
    observedGeneration: int('The spec generation last reconciled.', undefined, 0, Number.MAX_SAFE_INTEGER),
    conditions: {
      type: 'array',
      description: 'Ready, Progressing, Degraded, StorageReady, CacheReady.',
      maxItems: 16,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
      items: condition,
    },
    replicas: int('Registry pods that exist.', undefined, 0, 100000),
    readyReplicas: int('Registry pods that are ready.', undefined, 0, 100000),
    selector: str('Label selector of the registry pods, for the scale subresource.'),
    endpoint: str('In-cluster address of the registry API.'),
    storage: str('The storage backend in use.'),
    cache: str('The descriptor cache in use.'),
    configHash: str('Hash of the rendered registry config; pods roll when it changes.'),
    image: str('The image of the registry pods the operator last applied (spec.image, or the operator’s default).'),
  },
};

/** The schema of one Registry object. */
export const registrySchema: Schema = {
  type: 'object',
  description: 'A Berth container registry: its pods, storage, cache and Service, run by the Berth operator.',
  properties: {
    apiVersion: str('APIVersion of this object.'),
    kind: str('Kind of this object.'),
    metadata: { type: 'object', 'x-berth-ts-type': 'V1ObjectMeta' },
    spec,
    status,
  },
  required: ['spec'],
  'x-kubernetes-validations': [
    {
      // The name becomes Service names (<name>, <name>-redis: DNS-1035 labels of at most 63 characters) and label values.
      rule: "self.metadata.name.size() <= 57 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && !self.metadata.name.endsWith('-redis')",
      message:
        'metadata.name must be at most 57 characters of lowercase letters, digits and dashes, start with a letter, and not end in -redis (the managed Redis takes <name>-redis)',
      reason: 'FieldValueInvalid',
    },
    {
      // A CronJob's name is at most 52 characters (its Jobs add 11), and the collector's is <name>-gc.
      rule: '!has(self.spec.gc) || !has(self.spec.gc.schedule) || self.metadata.name.size() <= 49',
      message:
        'with gc.schedule, metadata.name must be at most 49 characters: the CronJob <name>-gc may have at most 52',
      reason: 'FieldValueInvalid',
    },
  ],
  'x-berth-ts-name': 'Registry',
};

/** Printer columns for `kubectl get registries`. */
export const printerColumns = [
  { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
  { name: 'Storage', type: 'string', jsonPath: '.status.storage' },
  { name: 'Cache', type: 'string', jsonPath: '.status.cache' },
  { name: 'Endpoint', type: 'string', jsonPath: '.status.endpoint' },
  { name: 'Image', type: 'string', jsonPath: '.status.image', priority: 1 },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
] as const;
