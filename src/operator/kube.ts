// The operator's few ways of talking to the API server, on @kubernetes/client-node: server-side apply under our field
// manager, reads and deletes that treat 404 as "absent", the Registry status subresource, and informers that restart
// themselves (the client's informers stop on any error but 410).
import {
  ApiException,
  ApisApi,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  makeInformer,
  setHeaderOptions,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { GROUP, PLURAL, VERSION, API_VERSION, KIND } from './api/schema.js';
import type { Registry, RegistryStatus } from './api/types.js';
import { FIELD_MANAGER } from './names.js';

export function isNotFound(err: unknown): boolean {
  return err instanceof ApiException && err.code === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof ApiException && err.code === 409;
}

/** A short human message from an API error (the Status message when there is one). */
export function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    if (typeof body === 'string') {
      try {
        const parsed: unknown = JSON.parse(body);
        if (typeof parsed === 'object' && parsed !== null && 'message' in parsed && typeof parsed.message === 'string')
          return parsed.message;
      } catch {
        return body;
      }
    }
    if (typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string')
      return body.message;
    return `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}

export interface ObjectRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

export class Kube {
  readonly kc: KubeConfig;
  readonly #objects: KubernetesObjectApi;
  readonly #custom: CustomObjectsApi;
  readonly #apis: ApisApi;
  #monitoringCheckedAt = 0;
  #monitoring = false;

  constructor(kc: KubeConfig) {
    this.kc = kc;
    this.#objects = KubernetesObjectApi.makeApiClient(kc);
    this.#custom = kc.makeApiClient(CustomObjectsApi);
    this.#apis = kc.makeApiClient(ApisApi);
  }

  /** Server-side apply: the object's fields become ours; fields others set and we don't are left alone. */
  async apply<T extends KubernetesObject>(object: T, manager: string = FIELD_MANAGER): Promise<T> {
    return this.#objects.patch(object, undefined, undefined, manager, true, PatchStrategy.ServerSideApply);
  }

  async create<T extends KubernetesObject>(object: T): Promise<T> {
    return this.#objects.create(object, undefined, undefined, FIELD_MANAGER);
  }

  /** The object, or undefined when it does not exist. */
  async read<T extends KubernetesObject>(ref: ObjectRef): Promise<T | undefined> {
    try {
      return (await this.#objects.read({
        apiVersion: ref.apiVersion,
        kind: ref.kind,
        metadata: ref.namespace === '' ? { name: ref.name } : { name: ref.name, namespace: ref.namespace },
      })) as T;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Deletes in the background (dependents go with it); true when something was deleted. */
  async remove(ref: ObjectRef): Promise<boolean> {
    try {
      await this.#objects.delete(
        { apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } },
        undefined,
        undefined,
        undefined,
        undefined,
        'Background',
      );
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async readRegistry(namespace: string, name: string): Promise<Registry | undefined> {
    try {
      const obj: unknown = await this.#custom.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace,
        name,
      });
      return obj as Registry;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Registries in every namespace, or in `namespace` only. */
  async listRegistries(namespace?: string): Promise<KubernetesListObject<Registry>> {
    const list: unknown =
      namespace === undefined
        ? await this.#custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
        : await this.#custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace });
    return list as KubernetesListObject<Registry>;
  }

  /** Objects of a kind in every namespace, or in `namespace` only, matching a label selector. */
  async list(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    labelSelector: string,
  ): Promise<KubernetesListObject<KubernetesObject>> {
    return this.#objects.list(apiVersion, kind, namespace, undefined, undefined, undefined, undefined, labelSelector);
  }

  /** Applies the status subresource (our conditions, observedGeneration, counts). */
  async applyStatus(registry: Registry, status: RegistryStatus): Promise<void> {
    const namespace = registry.metadata?.namespace ?? 'default';
    const name = registry.metadata?.name ?? '';
    await this.#custom.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace,
        name,
        body: { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace }, status },
        fieldManager: FIELD_MANAGER,
        force: true,
      },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    );
  }

  /** Whether the cluster serves prometheus-operator's monitoring.coreos.com/v1 (checked at most every 10 s). */
  async hasServiceMonitorApi(): Promise<boolean> {
    if (Date.now() - this.#monitoringCheckedAt < 10_000) return this.#monitoring;
    const groups = await this.#apis.getAPIVersions();
    this.#monitoring = groups.groups.some(
      (g) => g.name === 'monitoring.coreos.com' && g.versions.some((v) => v.version === 'v1'),
    );
    this.#monitoringCheckedAt = Date.now();
    return this.#monitoring;
  }
}

/** The collection path of a resource: all namespaces', or one namespace's (`/apis/apps/v1/namespaces/a/deployments`). */
export function collectionPath(apiVersion: string, plural: string, namespace: string | undefined): string {
  const root = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return namespace === undefined ? `${root}/${plural}` : `${root}/namespaces/${namespace}/${plural}`;
}

export interface WatchedKind<T extends KubernetesObject> {
  /** For logs and metrics, e.g. `deployments`. */
  readonly name: string;
  /** The watch path, e.g. `/apis/apps/v1/deployments`, or `/apis/apps/v1/namespaces/a/deployments`. */
  readonly path: string;
  readonly list: () => Promise<KubernetesListObject<T>>;
  readonly labelSelector?: string;
}

/**
 * An informer that restarts itself with backoff after errors and relists periodically, so a restarted API server or
 * a dropped watch never leaves the operator blind.
 */
export class ResilientInformer<T extends KubernetesObject> {
  #informer: Informer<T> & ObjectCache<T>;
  readonly #kc: KubeConfig;
  readonly #kind: WatchedKind<T>;
  readonly #onEvent: (obj: T) => void;
  readonly #log: Logger;
  #stopped = false;
  #failures = 0;
  /** Errors seen so far: start() resets the backoff only when its list raised none. */
  #errors = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #relistTimer: NodeJS.Timeout | undefined;
  readonly #relistMs: number;
  onRestart: ((kind: string) => void) | undefined;
  /** Called after onEvent for deletions. */
  onDelete: ((obj: T) => void) | undefined;

  constructor(kc: KubeConfig, kind: WatchedKind<T>, onEvent: (obj: T) => void, log: Logger, relistMs = 300_000) {
    this.#kc = kc;
    this.#kind = kind;
    this.#onEvent = onEvent;
    this.#log = log.child({ informer: kind.name });
    this.#relistMs = relistMs;
    this.#informer = this.#make();
  }

  #make(): Informer<T> & ObjectCache<T> {
    const informer = makeInformer(this.#kc, this.#kind.path, this.#kind.list, this.#kind.labelSelector);
    const event = (obj: T): void => {
      this.#failures = 0; // events flow: the watch works
      this.#onEvent(obj);
    };
    informer.on('add', event);
    informer.on('update', event);
    informer.on('delete', (obj: T) => {
      event(obj);
      this.onDelete?.(obj);
    });
    informer.on('error', (err: unknown) => {
      if (informer !== this.#informer) return; // a replaced informer's last words
      this.#errors++;
      this.#restart(err);
    });
    return informer;
  }

  get cache(): ObjectCache<T> {
    return this.#informer;
  }

  async start(): Promise<void> {
    this.#stopped = false;
    const errors = this.#errors;
    try {
      await this.#informer.start();
      // The client emits 'connect' before it lists, so only a start whose list raised nothing resets the backoff.
      if (this.#errors === errors) this.#failures = 0;
    } catch (err) {
      this.#errors++;
      this.#restart(err);
    }
    this.#scheduleRelist();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#restartTimer);
    clearTimeout(this.#relistTimer);
    await this.#informer.stop();
  }

  /** A fresh informer: it lists from scratch (a restarted one would only resume its watch). */
  async #replace(): Promise<void> {
    const old = this.#informer;
    this.#informer = this.#make();
    await old.stop();
    if (this.#stopped) return;
    await this.start();
  }

  #scheduleRelist(): void {
    clearTimeout(this.#relistTimer);
    this.#relistTimer = setTimeout(() => {
      if (!this.#stopped) void this.#replace();
    }, this.#relistMs);
    this.#relistTimer.unref();
  }

  #restart(err: unknown): void {
    if (this.#stopped) return;
    this.#failures++;
    const delay = Math.min(30_000, 250 * 2 ** Math.min(this.#failures, 8));
    this.#log.warn({ err: apiMessage(err), retryInMs: delay }, 'watch failed; restarting the informer');
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      if (this.#stopped) return;
      this.onRestart?.(this.#kind.name);
      void this.#replace();
    }, delay);
    this.#restartTimer.unref();
  }
}
