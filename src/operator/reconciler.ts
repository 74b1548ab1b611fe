// Reconciles one Registry: reads it fresh, checks what it references, applies the builders' objects with server-side
// apply, removes the optional objects it no longer wants, and writes the status. Level-triggered and idempotent: it
// never looks at what changed, only at what should be.
import { randomBytes } from 'node:crypto';
import type { KubernetesObject, V1Deployment, V1PersistentVolumeClaim, V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from './api/types.js';
import { buildHttpSecret, buildOwnedObjects, describeBackends, endpoint, type RegistryImage } from './builders.js';
import { Kube, apiMessage, isConflict, type ObjectRef } from './kube.js';
import { FIELD_MANAGER, names, selectorLabels, selectorString } from './names.js';
import type { RunResult } from './queue.js';
import { computeStatus, idleStatus, type Problem } from './status.js';

/** Optional owned objects: deleted when the spec stops asking for them (and by `Removed`). */
const OPTIONAL = [
  { role: 'pdb', apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', name: (r: Registry) => names(r).pdb },
  { role: 'hpa', apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', name: (r: Registry) => names(r).hpa },
  {
    role: 'serviceMonitor',
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    name: (r: Registry) => names(r).serviceMonitor,
  },
  { role: 'redisDeployment', apiVersion: 'apps/v1', kind: 'Deployment', name: (r: Registry) => names(r).redis },
  { role: 'redisService', apiVersion: 'v1', kind: 'Service', name: (r: Registry) => names(r).redis },
  {
    role: 'serviceAccount',
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    name: (r: Registry) => names(r).serviceAccount,
  },
  { role: 'gcCronJob', apiVersion: 'batch/v1', kind: 'CronJob', name: (r: Registry) => names(r).gc },
] as const;

/** Always-present owned objects (deleted only by `Removed`; the PVC never). */
const CORE = [
  { apiVersion: 'apps/v1', kind: 'Deployment', name: (r: Registry) => names(r).deployment },
  { apiVersion: 'v1', kind: 'Service', name: (r: Registry) => names(r).service },
  { apiVersion: 'v1', kind: 'ConfigMap', name: (r: Registry) => names(r).config },
  { apiVersion: 'v1', kind: 'Secret', name: (r: Registry) => names(r).httpSecret },
] as const;

/** What one reconcile learns on the way: problems for Degraded, and the versions of Secrets the pods read. */
interface Findings {
  readonly problems: Problem[];
  readonly versions: string[];
}

/** Holds `replicas` for the moment between the operator letting go of it and an HPA taking it. */
const HANDOVER_MANAGER = 'berth-operator-handover';

/** How often a registry that is not settled is looked at again without events (missing Secrets, rollouts). */
export const RECHECK_MS = 10_000;

export class Reconciler {
  readonly #kube: Kube;
  readonly #log: Logger;
  readonly #defaultImage: RegistryImage;

  /** `defaultImage` is what Registries without spec.image run; a new one (an operator upgrade) rolls them all. */
  constructor(kube: Kube, log: Logger, defaultImage: RegistryImage) {
    this.#kube = kube;
    this.#log = log;
    this.#defaultImage = defaultImage;
  }

  async reconcile(namespace: string, name: string): Promise<RunResult> {
    const registry = await this.#kube.readRegistry(namespace, name);
    if (registry === undefined || registry.metadata?.deletionTimestamp !== undefined) return {};
    const log = this.#log.child({ registry: `${namespace}/${name}`, generation: registry.metadata?.generation });
    const now = new Date();
    switch (registry.spec.managementState) {
      case 'Unmanaged': {
        const deployment = await this.#kube.read<V1Deployment>(
          this.#ref(registry, 'apps/v1', 'Deployment', names(registry).deployment),
        );
        await this.#kube.applyStatus(registry, idleStatus(registry, 'Unmanaged', deployment, now));
        return {};
      }
      case 'Removed': {
        for (const o of [...CORE, ...OPTIONAL])
          await this.#removeOwned(registry, this.#ref(registry, o.apiVersion, o.kind, o.name(registry)));
        await this.#kube.applyStatus(registry, idleStatus(registry, 'Removed', undefined, now));
        log.info('removed the registry’s objects (kept the PVC)');
        return {};
      }
      default:
        return this.#reconcileManaged(registry, log, now);
    }
  }

  #ref(registry: Registry, apiVersion: string, kind: string, name: string): ObjectRef {
    return { apiVersion, kind, name, namespace: registry.metadata?.namespace ?? 'default' };
  }

  /** Deletes an object only when this Registry owns it (a same-named object of someone else's is left alone). */
  async #removeOwned(registry: Registry, ref: ObjectRef): Promise<void> {
    let existing: KubernetesObject | undefined;
    try {
      existing = await this.#kube.read(ref);
    } catch (err) {
      if (ref.kind === 'ServiceMonitor') return; // the API is not installed
      throw err;
    }
    const uid = registry.metadata?.uid;
    if (existing?.metadata?.ownerReferences?.some((o) => o.uid === uid) === true) await this.#kube.remove(ref);
  }

  /**
   * Checks that a referenced Secret exists and holds every key; what is missing becomes a problem for the Degraded
   * condition. One read per Secret, however many keys it must hold.
   */
  async #checkSecret(
    registry: Registry,
    found: Findings,
    area: Problem['area'],
    field: string,
    name: string | undefined,
    keys: readonly string[],
    /** Berth re-reads the mounted files when they change: the Secret's version stays out of the pod template. */
    reloaded = false,
  ): Promise<void> {
    if (name === undefined) return;
    const ns = registry.metadata?.namespace ?? 'default';
    const secret = await this.#kube.read<V1Secret>(this.#ref(registry, 'v1', 'Secret', name));
    if (secret === undefined) {
      found.problems.push({
        area,
        reason: 'SecretNotFound',
        message: `${field}: Secret ${ns}/${name} does not exist; create it with the key${keys.length > 1 ? 's' : ''} ${keys.join(', ')}`,
      });
      return;
    }
    if (!reloaded) found.versions.push(`${name}@${secret.metadata?.resourceVersion ?? ''}`);
    for (const key of keys) {
      if (secret.data?.[key] === undefined && secret.stringData?.[key] === undefined) {
        found.problems.push({
          area,
          reason: 'SecretKeyNotFound',
          message: `${field}: Secret ${ns}/${name} has no key ${key}`,
        });
      }
    }
  }

  /** The shared HTTP secret: the user's Secret, or one generated once and kept. */
  async #httpSecret(registry: Registry, found: Findings): Promise<{ name: string; key: string }> {
    const user = registry.spec.httpSecret?.secretRef;
    if (user !== undefined) {
      await this.#checkSecret(registry, found, 'config', 'spec.httpSecret.secretRef', user.name, [user.key]);
      return user;
    }
    const name = names(registry).httpSecret;
    const existing = await this.#kube.read<V1Secret>(this.#ref(registry, 'v1', 'Secret', name));
    if (existing !== undefined) found.versions.push(`${name}@${existing.metadata?.resourceVersion ?? ''}`);
    else {
      try {
        const created = await this.#kube.create(buildHttpSecret(registry, randomBytes(32).toString('base64url')));
        found.versions.push(`${name}@${created.metadata?.resourceVersion ?? ''}`);
      } catch (err) {
        // A concurrent create (another reconcile after a leader change) is fine; anything else is a problem.
        if (!isConflict(err)) throw err;
        const winner = await this.#kube.read<V1Secret>(this.#ref(registry, 'v1', 'Secret', name));
        found.versions.push(`${name}@${winner?.metadata?.resourceVersion ?? ''}`);
      }
    }
    return { name, key: 'secret' };
  }

  async #checkStorage(registry: Registry, found: Findings): Promise<{ skipPvc: boolean }> {
    const { problems } = found;
    const { storage } = registry.spec;
    const s3 = storage.s3?.credentialsSecret;
    const check = (field: string, name: string | undefined, keys: readonly string[]): Promise<void> =>
      this.#checkSecret(registry, found, 'storage', `spec.storage.${field}.credentialsSecret`, name, keys);
    await check('s3', s3?.name, s3 === undefined ? [] : [s3.accessKeyIdKey, s3.secretAccessKeyKey]);
    const azure = storage.azure?.credentialsSecret;
    await check('azure', azure?.name, azure === undefined ? [] : [azure.key]);
    const gcs = storage.gcs?.credentialsSecret;
    await check('gcs', gcs?.name, gcs === undefined ? [] : [gcs.key]);
    const account = registry.spec.serviceAccount?.name;
    if (account !== undefined) {
      // Pods naming a missing account are refused by the API server: said here, where the user looks.
      const found = await this.#kube.read(this.#ref(registry, 'v1', 'ServiceAccount', account));
      if (found === undefined) {
        problems.push({
          area: 'storage',
          reason: 'ServiceAccountNotFound',
          message: `spec.serviceAccount.name: ServiceAccount ${registry.metadata?.namespace}/${account} does not exist; the pods cannot start until it does`,
        });
      }
    }
    const fs = storage.filesystem;
    if (fs?.existingClaim !== undefined) {
      const claim = await this.#kube.read(this.#ref(registry, 'v1', 'PersistentVolumeClaim', fs.existingClaim));
      if (claim === undefined) {
        problems.push({
          area: 'storage',
          reason: 'ClaimNotFound',
          message: `spec.storage.filesystem.existingClaim: PersistentVolumeClaim ${registry.metadata?.namespace}/${fs.existingClaim} does not exist`,
        });
      }
    } else if (fs?.storageClassName !== undefined) {
      const cls = await this.#kube.read({
        apiVersion: 'storage.k8s.io/v1',
        kind: 'StorageClass',
        namespace: '',
        name: fs.storageClassName,
      });
      if (cls === undefined) {
        problems.push({
          area: 'storage',
          reason: 'StorageClassNotFound',
          message: `spec.storage.filesystem.storageClassName: StorageClass ${fs.storageClassName} does not exist (kubectl get storageclass lists those that do); the PVC is created once it does`,
        });
        // A claim's storage class can't be changed later, so make none until the class is right.
        return { skipPvc: true };
      }
    }
    return { skipPvc: false };
  }

  /**
   * Before the operator's apply drops `replicas` (an HPA now owns it), a second field manager takes the current value,
   * so the field is never left without an owner and reset to 1 between our apply and the HPA's first scale.
   */
  async #handOverReplicas(registry: Registry): Promise<void> {
    const ref = this.#ref(registry, 'apps/v1', 'Deployment', names(registry).deployment);
    const live = await this.#kube.read<V1Deployment>(ref);
    const replicas = live?.spec?.replicas;
    if (replicas === undefined) return;
    const ours = live?.metadata?.managedFields?.some(
      (m) =>
        m.manager === FIELD_MANAGER &&
        m.operation === 'Apply' &&
        JSON.stringify(m.fieldsV1 ?? {}).includes('"f:replicas"'),
    );
    if (ours !== true) return;
    await this.#kube.apply(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: ref.name, namespace: ref.namespace },
        spec: { replicas },
      },
      HANDOVER_MANAGER,
    );
  }

  async #reconcileManaged(registry: Registry, log: Logger, now: Date): Promise<RunResult> {
    const found: Findings = { problems: [], versions: [] };
    const { problems } = found;
    const httpSecret = await this.#httpSecret(registry, found);
    const { skipPvc } = await this.#checkStorage(registry, found);
    const password = registry.spec.cache.type === 'redis' ? registry.spec.cache.redis?.passwordSecret : undefined;
    await this.#checkSecret(registry, found, 'cache', 'spec.cache.redis.passwordSecret', password?.name, [
      password?.key ?? '',
    ]);
    const { auth, tls } = registry.spec;
    if (auth?.htpasswd !== undefined) {
      await this.#checkSecret(
        registry,
        found,
        'auth',
        'spec.auth.htpasswd',
        auth.htpasswd.name,
        [auth.htpasswd.key],
        true,
      );
    }
    const bundle = auth?.token?.rootCertBundle;
    await this.#checkSecret(registry, found, 'auth', 'spec.auth.token.rootCertBundle', bundle?.name, [
      bundle?.key ?? '',
    ]);
    await this.#checkSecret(
      registry,
      found,
      'auth',
      'spec.tls.secretName',
      tls?.secretName,
      ['tls.crt', 'tls.key'],
      true,
    );
    const clientCA = tls?.clientCA;
    await this.#checkSecret(registry, found, 'auth', 'spec.tls.clientCA', clientCA?.name, [clientCA?.key ?? ''], true);
    for (const e of registry.spec.notifications?.endpoints ?? []) {
      for (const h of e.headerSecrets) {
        await this.#checkSecret(
          registry,
          found,
          'config',
          `spec.notifications.endpoints[${e.name}].headerSecrets`,
          h.name,
          [h.key],
        );
      }
    }
    const blocked = problems.some((p) => p.blocksDeployment === true);
    const objects = buildOwnedObjects(registry, {
      defaultImage: this.#defaultImage,
      httpSecret,
      serviceMonitorApi: await this.#kube.hasServiceMonitorApi(),
      secretVersions: found.versions,
    });

    const wanted: KubernetesObject[] = [objects.config];
    // Before the Deployment, so that its pods find their account.
    if (objects.serviceAccount !== undefined) wanted.push(objects.serviceAccount);
    if (objects.pvc !== undefined && !skipPvc) wanted.push(objects.pvc);
    if (objects.redisService !== undefined) wanted.push(objects.redisService);
    if (objects.redisDeployment !== undefined) wanted.push(objects.redisDeployment);
    if (!blocked) {
      if (registry.spec.autoscaling.enabled) await this.#handOverReplicas(registry);
      wanted.push(objects.deployment);
      // Its pods need what the registry's need: held back, and so removed, while the Deployment is.
      if (objects.gcCronJob !== undefined) wanted.push(objects.gcCronJob);
    }
    wanted.push(objects.service);
    for (const o of [objects.pdb, objects.hpa, objects.serviceMonitor]) if (o !== undefined) wanted.push(o);
    let applyFailed = false;
    for (const object of wanted) {
      try {
        await this.#kube.apply(object);
      } catch (err) {
        applyFailed = true;
        const message = `${object.kind} ${object.metadata?.name}: ${apiMessage(err)}`;
        log.warn({ kind: object.kind, name: object.metadata?.name, err: message }, 'apply failed');
        problems.push({ area: 'apply', reason: 'ApplyFailed', message });
      }
    }
    const present = new Set(wanted.map((o) => `${o.kind}/${o.metadata?.name}`));
    for (const o of OPTIONAL) {
      const name = o.name(registry);
      if (!present.has(`${o.kind}/${name}`))
        await this.#removeOwned(registry, this.#ref(registry, o.apiVersion, o.kind, name));
    }
    if (blocked)
      await this.#removeOwned(registry, this.#ref(registry, 'apps/v1', 'Deployment', names(registry).deployment));

    const n = names(registry);
    const deployment = blocked
      ? undefined
      : await this.#kube.read<V1Deployment>(this.#ref(registry, 'apps/v1', 'Deployment', n.deployment));
    const redisDeployment =
      objects.redisDeployment === undefined
        ? undefined
        : await this.#kube.read<V1Deployment>(this.#ref(registry, 'apps/v1', 'Deployment', n.redis));
    const claimName = registry.spec.storage.filesystem?.existingClaim ?? n.pvc;
    const claim =
      registry.spec.storage.filesystem === undefined
        ? undefined
        : await this.#kube.read<V1PersistentVolumeClaim>(this.#ref(registry, 'v1', 'PersistentVolumeClaim', claimName));
    const status = computeStatus(
      registry,
      { problems, deployment, redisDeployment, claimPhase: claim?.status?.phase, claimName },
      {
        ...describeBackends(registry),
        endpoint: endpoint(registry),
        configHash: objects.rendered.hash,
        selector: selectorString(selectorLabels(registry)),
      },
      now,
    );
    await this.#kube.applyStatus(registry, status);
    if (applyFailed)
      throw new Error(
        `apply failed: ${problems
          .filter((p) => p.area === 'apply')
          .map((p) => p.message)
          .join('; ')}`,
      );
    const settled =
      problems.length === 0 &&
      status.conditions?.every((c) => c.type !== 'Progressing' || c.status === 'False') === true;
    return settled ? {} : { requeueAfterMs: RECHECK_MS };
  }
}
