// Generated from src/operator/api/schema.ts by `npm run generate`; do not edit.
// Fields with a default in the schema are required here: the API server fills them in.
import type {
  V1Affinity,
  V1ObjectMeta,
  V1ResourceRequirements,
  V1Toleration,
  V1TopologySpreadConstraint,
} from '@kubernetes/client-node';

/**
 * A Berth container registry: its pods, storage, cache and Service, run by the Berth operator.
 */
export interface Registry {
  /**
   * APIVersion of this object.
   */
  apiVersion?: string;
  /**
   * Kind of this object.
   */
  kind?: string;
  metadata?: V1ObjectMeta;
  spec: RegistrySpec;
  status?: RegistryStatus;
}
/**
 * The desired registry (`spec: {}` gives a one-replica registry on a 10Gi PVC with an in-memory cache).
 */
export interface RegistrySpec {
  /**
   * Registry pods to run (ignored while autoscaling is enabled).
   */
  replicas: number;
  /**
   * Berth container image. When absent, the operator’s default (the Helm chart’s image); set it to pin this registry to one image.
   */
  image?: string;
  /**
   * When the kubelet pulls the image; the operator’s default (the chart’s) when absent.
   */
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  storage: RegistryStorage;
  cache: RegistryCache;
  /**
   * Client authentication: htpasswd users (with an optional policy) or tokens from an issuer. Unauthenticated when absent.
   */
  auth?: {
    /**
     * Secret holding an htpasswd file (bcrypt entries, `htpasswd -B`); an edit reaches the pods without a restart.
     */
    htpasswd?: {
      /**
       * Name of the Secret, in the Registry’s namespace.
       */
      name: string;
      /**
       * Key within the Secret.
       */
      key: string;
    };
    /**
     * Bearer tokens from an issuer that implements the Docker registry token protocol.
     */
    token?: {
      /**
       * The token endpoint clients are sent to.
       */
      realm: string;
      /**
       * This registry’s name at the issuer (the tokens’ audience).
       */
      service: string;
      /**
       * The tokens’ issuer (`iss`).
       */
      issuer: string;
      /**
       * Secret holding the PEM certificates that sign tokens.
       */
      rootCertBundle?: {
        /**
         * Name of the Secret, in the Registry’s namespace.
         */
        name: string;
        /**
         * Key within the Secret.
         */
        key: string;
      };
      /**
       * URL of the issuer’s JWK Set.
       */
      jwksUrl?: string;
      /**
       * Algorithms accepted; every asymmetric one when absent (HMAC is never accepted).
       *
       * Items: An algorithm.
       */
      signingAlgorithms?: (
        'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA'
      )[];
    };
    /**
     * Who may do what, by repository, for htpasswd users. Without a policy every htpasswd user may do everything and anonymous clients nothing.
     */
    policy?: {
      /**
       * Group name → user names; rules name a group as `@name`.
       */
      groups?: Record<string, string[]>;
      /**
       * Principals that may list /v2/_catalog (`authenticated` when absent).
       *
       * Items: A principal: a user, `@group`, `authenticated` or `anonymous`.
       */
      catalog?: string[];
      /**
       * Rules in order; the first whose repository glob matches decides.
       *
       * Items: One rule.
       */
      rules?: {
        /**
         * Repository globs: `*` within a path segment, `**` across segments.
         *
         * Items: A glob.
         */
        repository: string[];
        /**
         * Principal (a user, `@group`, `authenticated`, `anonymous`) → actions.
         */
        access: Record<string, string[]>;
      }[];
    };
  };
  /**
   * Serve HTTPS with the certificate in a Secret (as cert-manager writes it); a renewal reaches the pods without a restart.
   */
  tls?: {
    /**
     * A Secret with `tls.crt` and `tls.key`, in the Registry’s namespace.
     */
    secretName: string;
    /**
     * Secret holding the CA certificates clients must present a certificate from (mutual TLS).
     */
    clientCA?: {
      /**
       * Name of the Secret, in the Registry’s namespace.
       */
      name: string;
      /**
       * Key within the Secret.
       */
      key: string;
    };
    /**
     * Oldest TLS version accepted.
     */
    minimumVersion: 'tls1.2' | 'tls1.3';
  };
  /**
   * Secret that signs upload locations, shared by all replicas. When absent, the operator generates one and keeps it in a Secret named <registry>-http-secret.
   */
  httpSecret?: {
    /**
     * An existing Secret to use instead.
     */
    secretRef?: {
      /**
       * Name of the Secret, in the Registry’s namespace.
       */
      name: string;
      /**
       * Key within the Secret.
       */
      key: string;
    };
  };
  /**
   * Allow deleting blobs and manifests through the API.
   */
  deleteEnabled: boolean;
  /**
   * Refuse pushes (maintenance mode).
   */
  readOnly: boolean;
  /**
   * Registry log level.
   */
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /**
   * Compute resources of the registry container.
   */
  resources?: V1ResourceRequirements;
  /**
   * Node labels the pods must match.
   */
  nodeSelector: Record<string, string>;
  /**
   * Pod tolerations.
   */
  tolerations: V1Toleration[];
  /**
   * Pod affinity rules.
   */
  affinity?: V1Affinity;
  /**
   * How pods spread across topology domains.
   */
  topologySpreadConstraints: V1TopologySpreadConstraint[];
  /**
   * Extra annotations on the pods.
   */
  podAnnotations: Record<string, string>;
  /**
   * Extra labels on the pods.
   */
  podLabels: Record<string, string>;
  /**
   * Webhook endpoints that receive registry events (push, pull, delete, mount) as Distribution sends them.
   */
  notifications?: {
    /**
     * Where events go; each endpoint has its own bounded queue and retries.
     *
     * Items: One endpoint.
     */
    endpoints: {
      /**
       * Name of the endpoint, in logs and metrics.
       */
      name: string;
      /**
       * URL events are POSTed to.
       */
      url: string;
      /**
       * Extra request headers, in the clear (use headerSecrets for credentials).
       */
      headers: Record<string, string>;
      /**
       * Request headers whose values come from Secrets (an Authorization token, say).
       *
       * Items: One header.
       */
      headerSecrets: {
        /**
         * Header name.
         */
        header: string;
        /**
         * Name of the Secret, in the Registry’s namespace.
         */
        name: string;
        /**
         * Key within the Secret.
         */
        key: string;
      }[];
      /**
       * Bound on one delivery attempt (a Go duration).
       */
      timeout: string;
      /**
       * Failed attempts in a row before the endpoint backs off.
       */
      threshold: number;
      /**
       * How long to wait after threshold failures (a Go duration).
       */
      backoff: string;
      /**
       * Actions not sent to this endpoint.
       *
       * Items: An action.
       */
      ignoredActions: ('push' | 'pull' | 'delete' | 'mount')[];
      /**
       * Events about targets of these media types are not sent to this endpoint.
       *
       * Items: A media type.
       */
      ignoredMediaTypes: string[];
    }[];
  };
  /**
   * Garbage collection of blobs and manifests no tag reaches, while the registry serves: online inside the registry pods every interval, or from a CronJob on a schedule. Off when absent.
   */
  gc?: {
    /**
     * Collect online inside the registry pods, one replica at a time (ignored with schedule).
     */
    enabled: boolean;
    /**
     * How often online collection runs (a Go duration).
     */
    interval: string;
    /**
     * Nothing written more recently than this is swept, so pushes in flight keep their blobs (a Go duration; 1h is safe).
     */
    gracePeriod: string;
    /**
     * Also delete manifests that no tag and no other manifest references.
     */
    deleteUntagged: boolean;
    /**
     * Cron schedule of a CronJob running `berth gc --online` instead of online collection in the pods (which then stays off whatever enabled says). Needs object storage or a ReadWriteMany volume, and a cache the CronJob can reach (redis or none).
     */
    schedule?: string;
  };
  /**
   * The ServiceAccount the registry pods run as, for workload identity to the object store (IRSA, Azure workload identity, GKE workload identity). The namespace’s default account when absent.
   */
  serviceAccount?: {
    /**
     * An existing ServiceAccount to run the pods as; the operator neither creates nor changes it.
     */
    name?: string;
    /**
     * Annotations of a ServiceAccount the operator creates and owns, named after the Registry (eks.amazonaws.com/role-arn, azure.workload.identity/client-id, iam.gke.io/gcp-service-account).
     */
    annotations?: Record<string, string>;
  };
  /**
   * The Service in front of the registry pods.
   */
  service: {
    /**
     * Service type.
     */
    type: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
    /**
     * Port of the registry API on the Service.
     */
    port: number;
    /**
     * Extra annotations on the Service.
     */
    annotations: Record<string, string>;
  };
  /**
   * Prometheus metrics on the debug port (5001, /metrics).
   */
  metrics: {
    /**
     * Expose metrics.
     */
    enabled: boolean;
    /**
     * A prometheus-operator ServiceMonitor, created only when that API exists in the cluster.
     */
    serviceMonitor: {
      /**
       * Create the ServiceMonitor.
       */
      enabled: boolean;
      /**
       * Extra labels, for the Prometheus that selects ServiceMonitors by label.
       */
      labels: Record<string, string>;
      /**
       * Scrape interval.
       */
      interval: string;
    };
  };
  /**
   * A PodDisruptionBudget for the registry pods.
   */
  podDisruptionBudget: {
    /**
     * Create the PodDisruptionBudget.
     */
    enabled: boolean;
    /**
     * Pods that may be down at once during voluntary disruptions (a number or a percentage).
     */
    maxUnavailable: number | string;
  };
  /**
   * A HorizontalPodAutoscaler on CPU; replicas is ignored while it is enabled.
   */
  autoscaling: {
    /**
     * Create the HorizontalPodAutoscaler.
     */
    enabled: boolean;
    /**
     * Fewest replicas.
     */
    minReplicas: number;
    /**
     * Most replicas.
     */
    maxReplicas: number;
    /**
     * Average CPU use, in percent of requests, to aim for.
     */
    targetCPUUtilizationPercentage: number;
  };
  /**
   * Managed: the operator keeps the objects as specified. Unmanaged: it leaves them alone. Removed: it deletes them, keeping the PVC.
   */
  managementState: 'Managed' | 'Unmanaged' | 'Removed';
  /**
   * Raw registry config.yml keys, merged last over what the operator renders.
   */
  configOverrides?: Record<string, unknown>;
}
/**
 * Where images are stored. Exactly one backend may be set; the default is a filesystem on a new PVC.
 */
export interface RegistryStorage {
  /**
   * A filesystem on a PersistentVolumeClaim: one the operator creates, or an existing claim.
   */
  filesystem?: {
    /**
     * Requested size of the claim the operator creates.
     */
    size: string;
    /**
     * StorageClass of the claim the operator creates; the cluster default when absent.
     */
    storageClassName?: string;
    /**
     * Access mode of the claim. ReadWriteOnce allows one replica; ReadWriteMany lets replicas share the volume.
     */
    accessMode: 'ReadWriteOnce' | 'ReadWriteMany' | 'ReadWriteOncePod';
    /**
     * Use this existing PersistentVolumeClaim instead of creating one.
     */
    existingClaim?: string;
  };
  /**
   * A scratch volume that lives as long as the pod: for tests and caches only; allows one replica.
   */
  emptyDir?: {
    /**
     * Upper bound of the volume.
     */
    sizeLimit: string;
  };
  /**
   * An S3 or S3-compatible bucket.
   */
  s3?: {
    /**
     * Bucket name.
     */
    bucket: string;
    /**
     * Region of the bucket.
     */
    region: string;
    /**
     * Endpoint URL of an S3-compatible service; AWS when absent.
     */
    endpoint?: string;
    /**
     * Address the bucket in the path rather than the host name.
     */
    forcePathStyle: boolean;
    /**
     * Prefix under which the registry keeps its files in the bucket or container.
     */
    rootDirectory: string;
    /**
     * Secret with the access key id and secret key; workload identity when absent.
     */
    credentialsSecret?: {
      /**
       * Name of the Secret, in the Registry’s namespace.
       */
      name: string;
      /**
       * Key holding the access key id.
       */
      accessKeyIdKey: string;
      /**
       * Key holding the secret access key.
       */
      secretAccessKeyKey: string;
    };
  };
  /**
   * An Azure Blob Storage container.
   */
  azure?: {
    /**
     * Storage account name.
     */
    accountName: string;
    /**
     * Container name.
     */
    container: string;
    /**
     * Blob service URL (a sovereign cloud, a private endpoint, Azurite); https://<account>.blob.core.windows.net when absent.
     */
    serviceURL?: string;
    /**
     * Prefix under which the registry keeps its files in the bucket or container.
     */
    rootDirectory: string;
    /**
     * Secret with the account key; workload identity when absent.
     */
    credentialsSecret?: {
      /**
       * Name of the Secret, in the Registry’s namespace.
       */
      name: string;
      /**
       * Key within the Secret.
       */
      key: string;
    };
  };
  /**
   * A Google Cloud Storage bucket.
   */
  gcs?: {
    /**
     * Bucket name.
     */
    bucket: string;
    /**
     * Base URL of the JSON API of a GCS-compatible service or emulator; Google’s when absent.
     */
    endpoint?: string;
    /**
     * Prefix under which the registry keeps its files in the bucket or container.
     */
    rootDirectory: string;
    /**
     * Secret with a service-account key file; workload identity when absent.
     */
    credentialsSecret?: {
      /**
       * Name of the Secret, in the Registry’s namespace.
       */
      name: string;
      /**
       * Key within the Secret.
       */
      key: string;
    };
  };
}
/**
 * The blob-descriptor cache that answers blob existence checks without touching storage.
 */
export interface RegistryCache {
  /**
   * none, an in-process LRU per replica (inmemory), or Redis shared by all replicas (redis).
   */
  type: 'none' | 'inmemory' | 'redis';
  /**
   * Entries in the in-process LRU (inmemory, and the first tier of twoTier).
   */
  size: number;
  /**
   * Redis settings when type is redis.
   */
  redis?: {
    /**
     * host:port of an external Redis.
     */
    address?: string;
    /**
     * Let the operator run a Redis Deployment and Service for this registry.
     */
    managed: boolean;
    /**
     * Secret holding the Redis password.
     */
    passwordSecret?: {
      /**
       * Name of the Secret, in the Registry’s namespace.
       */
      name: string;
      /**
       * Key within the Secret.
       */
      key: string;
    };
    /**
     * Redis database number.
     */
    db: number;
    /**
     * Keep an in-process LRU in front of Redis, invalidated over pub/sub.
     */
    twoTier: boolean;
    /**
     * Image of the managed Redis.
     */
    image: string;
  };
}
/**
 * What the operator observed.
 */
export interface RegistryStatus {
  /**
   * The spec generation last reconciled.
   */
  observedGeneration?: number;
  /**
   * Ready, Progressing, Degraded, StorageReady, CacheReady.
   */
  conditions?: RegistryCondition[];
  /**
   * Registry pods that exist.
   */
  replicas?: number;
  /**
   * Registry pods that are ready.
   */
  readyReplicas?: number;
  /**
   * Label selector of the registry pods, for the scale subresource.
   */
  selector?: string;
  /**
   * In-cluster address of the registry API.
   */
  endpoint?: string;
  /**
   * The storage backend in use.
   */
  storage?: string;
  /**
   * The descriptor cache in use.
   */
  cache?: string;
  /**
   * Hash of the rendered registry config; pods roll when it changes.
   */
  configHash?: string;
  /**
   * The image of the registry pods the operator last applied (spec.image, or the operator’s default).
   */
  image?: string;
}
/**
 * One aspect of the registry’s state.
 */
export interface RegistryCondition {
  /**
   * Ready, Progressing, Degraded, StorageReady or CacheReady.
   */
  type: string;
  /**
   * True, False or Unknown.
   */
  status: 'True' | 'False' | 'Unknown';
  /**
   * The generation this condition was computed from.
   */
  observedGeneration?: number;
  /**
   * When status last changed.
   */
  lastTransitionTime: string;
  /**
   * CamelCase reason.
   */
  reason: string;
  /**
   * What happened, and what to do about it.
   */
  message: string;
}
