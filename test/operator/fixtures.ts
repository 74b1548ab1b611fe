// Registries as the API server stores them: a partial spec with every default of the CRD schema filled in the way
// Kubernetes does it, so the operator's units see what they see in a cluster, and fixtures follow schema changes.
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { API_VERSION, KIND, registrySchema, type Schema } from '../../src/operator/api/schema.js';
import type { Registry, RegistrySpec } from '../../src/operator/api/types.js';

/** Every field optional, at every depth; lists stay whole (the API server never merges into a list's items). */
export type DeepPartial<T> = T extends readonly unknown[]
  ? T
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> }
    : T;

type Tree = Record<string, unknown>;

function isTree(value: unknown): value is Tree {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fill(value: unknown, schema: Schema | undefined): void {
  if (schema === undefined) return;
  if (Array.isArray(value)) {
    for (const item of value) fill(item, schema.items);
    return;
  }
  if (!isTree(value)) return;
  for (const [key, prop] of Object.entries(schema.properties ?? {})) {
    if (prop.default === undefined) continue;
    if (!(key in value) || (value[key] === null && prop.nullable !== true)) value[key] = structuredClone(prop.default);
  }
  for (const [key, child] of Object.entries(value))
    fill(child, schema.properties?.[key] ?? schema.additionalProperties);
}

/**
 * Structural defaulting as in apiextensions-apiserver (`structuraldefaulting.Default`): in each object, a property
 * that is absent (or null and not nullable) gets a copy of its default; then every property present, defaulted ones
 * included, is defaulted in turn, so `storage: {filesystem: {}}` gains the filesystem's own defaults. The input is
 * left untouched.
 */
export function applyDefaults(value: unknown, schema: Schema = registrySchema): unknown {
  const copy = structuredClone(value);
  fill(copy, schema);
  return copy;
}

export const NAME = 'reg';
export const NAMESPACE = 'team';
export const UID = '6f1c2c8e-2d5b-4d3e-9a51-0c4f2b7d9e10';

/** A Registry named `reg` in namespace `team`, as stored after defaulting. */
export function registry(spec: DeepPartial<RegistrySpec> = {}, metadata: V1ObjectMeta = {}): Registry {
  const raw = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: NAME, namespace: NAMESPACE, uid: UID, generation: 1, ...metadata },
    spec,
  };
  return applyDefaults(raw) as Registry;
}
