// Names and labels of the objects the operator makes for one Registry: in one place so builders, the reconciler and
// tests agree.
import type { Registry } from './api/types.js';

export const FIELD_MANAGER = 'berth-operator';
export const CONFIG_HASH_ANNOTATION = 'berth.dev/config-hash';
export const MANAGED_BY = 'app.kubernetes.io/managed-by';
export const INSTANCE = 'app.kubernetes.io/instance';
export const COMPONENT = 'app.kubernetes.io/component';

export interface OwnedNames {
  readonly deployment: string;
  readonly service: string;
  readonly config: string;
  readonly httpSecret: string;
  readonly pvc: string;
  readonly pdb: string;
  readonly hpa: string;
  readonly serviceMonitor: string;
  readonly redis: string;
  readonly serviceAccount: string;
  readonly gc: string;
}

export function names(registry: Registry): OwnedNames {
  const name = registry.metadata?.name ?? '';
  return {
    deployment: name,
    service: name,
    config: `${name}-config`,
    httpSecret: `${name}-http-secret`,
    pvc: `${name}-data`,
    pdb: name,
    hpa: name,
    serviceMonitor: name,
    redis: `${name}-redis`,
    serviceAccount: name,
    gc: `${name}-gc`,
  };
}

/** Labels that select one registry's pods (never change: a Deployment's selector is immutable). */
/** What a pod of a Registry does: serve, run its managed Redis, or collect garbage (the CronJob's). */
export type Component = 'registry' | 'redis' | 'gc';

export function selectorLabels(registry: Registry, component: Component = 'registry'): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'berth',
    [INSTANCE]: registry.metadata?.name ?? '',
    [COMPONENT]: component,
  };
}

/** Labels on every owned object: the selector labels plus who manages it. */
export function commonLabels(registry: Registry, component: Component = 'registry'): Record<string, string> {
  return { ...selectorLabels(registry, component), [MANAGED_BY]: FIELD_MANAGER, 'app.kubernetes.io/part-of': 'berth' };
}

/** `key=value,…`, as a label selector string. */
export function selectorString(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
