// Pure status computation: what the reconciler saw in, the Registry's status conditions out. Conditions keep their
// lastTransitionTime while their status stays the same, as metav1.Condition requires.
import type { V1Deployment } from '@kubernetes/client-node';
import type { Registry, RegistryCondition, RegistryStatus } from './api/types.js';

export const CONDITION_TYPES = ['Ready', 'Progressing', 'Degraded', 'StorageReady', 'CacheReady'] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

/** Something wrong with a Registry that the user must fix; reported in Degraded. */
export interface Problem {
  readonly area: 'storage' | 'cache' | 'auth' | 'config' | 'apply';
  readonly reason: string;
  readonly message: string;
  /** Whether the registry must not be deployed until it is fixed. */
  readonly blocksDeployment?: boolean;
}

export interface Observed {
  readonly problems: readonly Problem[];
  readonly deployment?: V1Deployment;
  readonly redisDeployment?: V1Deployment;
  /** Phase of the operator-made or existing PVC, when storage is a filesystem claim. */
  readonly claimPhase?: string;
  readonly claimName?: string;
}

type Draft = Pick<RegistryCondition, 'type' | 'status' | 'reason' | 'message'>;

/** Merges fresh condition drafts into the previous list, keeping lastTransitionTime where status did not change. */
export function mergeConditions(
  previous: readonly RegistryCondition[] | undefined,
  drafts: readonly Draft[],
  generation: number,
  now: Date,
): RegistryCondition[] {
  return drafts.map((d) => {
    const old = previous?.find((c) => c.type === d.type);
    return {
      ...d,
      observedGeneration: generation,
      lastTransitionTime:
        old !== undefined && old.status === d.status
          ? old.lastTransitionTime
          : now.toISOString().replace(/\.\d+Z$/, 'Z'),
    };
  });
}

function rollout(
  registry: Registry,
  d: V1Deployment | undefined,
): { done: boolean; desired: number; ready: number; available: number; message: string } {
  const desired =
    d?.spec?.replicas ??
    (registry.spec.autoscaling.enabled ? registry.spec.autoscaling.minReplicas : registry.spec.replicas);
  const s = d?.status;
  const ready = s?.readyReplicas ?? 0;
  const available = s?.availableReplicas ?? 0;
  if (d === undefined) return { done: false, desired, ready, available, message: 'the Deployment does not exist yet' };
  const generation = d.metadata?.generation ?? 0;
  if ((s?.observedGeneration ?? 0) < generation) {
    return {
      done: false,
      desired,
      ready,
      available,
      message: 'the Deployment controller has not seen the newest spec yet',
    };
  }
  const updated = s?.updatedReplicas ?? 0;
  const total = s?.replicas ?? 0;
  if (updated < desired)
    return { done: false, desired, ready, available, message: `${updated} of ${desired} pods updated` };
  if (total > updated)
    return { done: false, desired, ready, available, message: `${total - updated} old pods still terminating` };
  if (available < desired)
    return { done: false, desired, ready, available, message: `${available} of ${desired} pods available` };
  return { done: true, desired, ready, available, message: `${available} of ${desired} pods available` };
}

function problemsIn(observed: Observed, areas: readonly Problem['area'][]): Problem[] {
  return observed.problems.filter((p) => areas.includes(p.area));
}

function storageCondition(registry: Registry, observed: Observed): Draft {
  const [problem] = problemsIn(observed, ['storage']);
  if (problem !== undefined)
    return { type: 'StorageReady', status: 'False', reason: problem.reason, message: problem.message };
  if (registry.spec.storage.filesystem !== undefined) {
    if (observed.claimPhase === 'Bound') {
      return {
        type: 'StorageReady',
        status: 'True',
        reason: 'ClaimBound',
        message: `PersistentVolumeClaim ${observed.claimName ?? ''} is bound`,
      };
    }
    return {
      type: 'StorageReady',
      status: 'False',
      reason: 'ClaimPending',
      message: `PersistentVolumeClaim ${observed.claimName ?? ''} is ${observed.claimPhase ?? 'not created yet'}: waiting for a volume (with a WaitForFirstConsumer storage class, until a pod is scheduled)`,
    };
  }
  if (registry.spec.storage.emptyDir !== undefined) {
    return {
      type: 'StorageReady',
      status: 'True',
      reason: 'EmptyDir',
      message: 'pod-local scratch storage: images are lost when the pod goes',
    };
  }
  return {
    type: 'StorageReady',
    status: 'True',
    reason: 'Configured',
    message: 'object storage is configured; the registry checks it at /readyz',
  };
}

function cacheCondition(registry: Registry, observed: Observed): Draft {
  const [problem] = problemsIn(observed, ['cache']);
  if (problem !== undefined)
    return { type: 'CacheReady', status: 'False', reason: problem.reason, message: problem.message };
  const { cache } = registry.spec;
  if (cache.type === 'none')
    return {
      type: 'CacheReady',
      status: 'True',
      reason: 'Disabled',
      message: 'no descriptor cache: every check goes to storage',
    };
  if (cache.type === 'inmemory')
    return {
      type: 'CacheReady',
      status: 'True',
      reason: 'InProcess',
      message: `an in-process LRU of ${cache.size} descriptors per replica`,
    };
  if (cache.redis?.managed === true) {
    const available = observed.redisDeployment?.status?.availableReplicas ?? 0;
    return available > 0
      ? { type: 'CacheReady', status: 'True', reason: 'RedisAvailable', message: 'the managed Redis is available' }
      : {
          type: 'CacheReady',
          status: 'False',
          reason: 'RedisStarting',
          message:
            'the managed Redis has no available pod yet; the registry serves from storage meanwhile (the cache fails open)',
        };
  }
  return {
    type: 'CacheReady',
    status: 'True',
    reason: 'Configured',
    message: `external Redis ${cache.redis?.address ?? ''}; its health shows on the registry's /readyz (the cache fails open)`,
  };
}

/** The image of the registry container in the Deployment's pod template: what its pods run once rolled out. */
function imageOf(d: V1Deployment | undefined): Pick<RegistryStatus, 'image'> {
  const image = d?.spec?.template.spec?.containers.find((c) => c.name === 'registry')?.image;
  return image === undefined ? {} : { image };
}

/** The status the operator writes for a Managed Registry. */
export function computeStatus(
  registry: Registry,
  observed: Observed,
  extra: Pick<RegistryStatus, 'endpoint' | 'storage' | 'cache' | 'configHash' | 'selector'>,
  now: Date,
): RegistryStatus {
  const generation = registry.metadata?.generation ?? 0;
  const r = rollout(registry, observed.deployment);
  const degraded = observed.problems;
  const drafts: Draft[] = [];
  const blocked = degraded.some((p) => p.blocksDeployment === true);
  if (degraded.length > 0) {
    drafts.push({
      type: 'Degraded',
      status: 'True',
      reason: degraded[0]?.reason ?? 'Problem',
      message: degraded.map((p) => p.message).join('; '),
    });
  } else {
    drafts.push({ type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'every owned object is applied' });
  }
  if (blocked) {
    drafts.push({
      type: 'Progressing',
      status: 'False',
      reason: 'Blocked',
      message: 'not deployed until the Degraded problem is fixed',
    });
    drafts.push({
      type: 'Ready',
      status: 'False',
      reason: 'Blocked',
      message: 'not deployed until the Degraded problem is fixed',
    });
  } else {
    drafts.push(
      r.done
        ? { type: 'Progressing', status: 'False', reason: 'RolloutComplete', message: r.message }
        : { type: 'Progressing', status: 'True', reason: 'RollingOut', message: r.message },
    );
    if (r.desired === 0)
      drafts.push({ type: 'Ready', status: 'False', reason: 'ScaledToZero', message: 'replicas is 0' });
    else if (r.done) drafts.push({ type: 'Ready', status: 'True', reason: 'Available', message: r.message });
    else drafts.push({ type: 'Ready', status: 'False', reason: 'RollingOut', message: r.message });
  }
  drafts.push(storageCondition(registry, observed), cacheCondition(registry, observed));
  const order = new Map(CONDITION_TYPES.map((t, i) => [t, i]));
  drafts.sort((a, b) => (order.get(a.type as ConditionType) ?? 0) - (order.get(b.type as ConditionType) ?? 0));
  return {
    observedGeneration: generation,
    conditions: mergeConditions(registry.status?.conditions, drafts, generation, now),
    replicas: observed.deployment?.status?.replicas ?? 0,
    readyReplicas: observed.deployment?.status?.readyReplicas ?? 0,
    ...extra,
    ...imageOf(observed.deployment),
  };
}

/** Status for a Registry the operator does not manage right now (Unmanaged or Removed). */
export function idleStatus(
  registry: Registry,
  state: 'Unmanaged' | 'Removed',
  deployment: V1Deployment | undefined,
  now: Date,
): RegistryStatus {
  const generation = registry.metadata?.generation ?? 0;
  const message =
    state === 'Unmanaged'
      ? 'managementState is Unmanaged: the operator leaves the objects alone'
      : 'managementState is Removed: the registry’s objects are deleted (the PVC is kept)';
  const drafts: Draft[] = [
    { type: 'Ready', status: state === 'Removed' ? 'False' : 'Unknown', reason: state, message },
    { type: 'Progressing', status: 'False', reason: state, message },
    { type: 'Degraded', status: 'False', reason: state, message },
  ];
  // Without a Deployment (Removed) no image runs, so the previous one is not carried over.
  const { image: _previous, ...previous } = registry.status ?? {};
  return {
    ...previous,
    ...imageOf(deployment),
    observedGeneration: generation,
    conditions: mergeConditions(registry.status?.conditions, drafts, generation, now),
    replicas: deployment?.status?.replicas ?? 0,
    readyReplicas: deployment?.status?.readyReplicas ?? 0,
  };
}
