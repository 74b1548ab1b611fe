// Wires the reconciler to the cluster: informers on Registries and on every kind the operator owns, each event
// mapped to its Registry's key on one work queue, plus a periodic resync of every Registry.
import {
  AppsV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  CustomObjectsApi,
  PolicyV1Api,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { GROUP, PLURAL, VERSION } from './api/schema.js';
import type { Registry } from './api/types.js';
import { Kube, apiMessage, ResilientInformer, type WatchedKind } from './kube.js';
import type { OperatorMetrics } from './metrics.js';
import { FIELD_MANAGER, INSTANCE, MANAGED_BY } from './names.js';
import { WorkQueue } from './queue.js';
import { Reconciler } from './reconciler.js';

export interface ControllerOptions {
  readonly resyncMs?: number;
  readonly relistMs?: number;
  readonly concurrency?: number;
}

export class Controller {
  readonly #kube: Kube;
  readonly #log: Logger;
  readonly #metrics: OperatorMetrics;
  readonly #queue: WorkQueue;
  readonly #informers: ResilientInformer<KubernetesObject>[] = [];
  readonly #registries: ResilientInformer<Registry>;
  readonly #resyncMs: number;
  readonly #kc: KubeConfig;
  readonly #relistMs: number;
  #resyncTimer: NodeJS.Timeout | undefined;
  #monitorTimer: NodeJS.Timeout | undefined;
  /** Watches ServiceMonitors once the cluster serves their API (it may be installed after the operator starts). */
  #serviceMonitors: ResilientInformer<KubernetesObject> | undefined;
  #started = false;
  /** Between start() and stop(): what late callbacks check before starting anything. */
  #active = false;

  constructor(kc: KubeConfig, log: Logger, metrics: OperatorMetrics, options: ControllerOptions = {}) {
    this.#kube = new Kube(kc);
    this.#log = log;
    this.#metrics = metrics;
    this.#resyncMs = options.resyncMs ?? 300_000;
    this.#kc = kc;
    this.#relistMs = options.relistMs ?? 300_000;
    const reconciler = new Reconciler(this.#kube, log);
    this.#queue = new WorkQueue(
      async (key) => {
        const [namespace = '', name = ''] = key.split('/');
        const end = metrics.reconcileSeconds.startTimer();
        try {
          const result = await reconciler.reconcile(namespace, name);
          metrics.reconciles.inc({ result: result.requeueAfterMs === undefined ? 'success' : 'requeue' });
          return result;
        } catch (err) {
          metrics.reconciles.inc({ result: 'error' });
          throw err;
        } finally {
          end();
          metrics.queueDepth.set(this.#queue.depth);
        }
      },
      { concurrency: options.concurrency ?? 4 },
    );
    this.#queue.on('failure', (key: string, err: unknown) =>
      log.warn({ registry: key, err: apiMessage(err) }, 'reconcile failed; retrying with backoff'),
    );
    const relist = options.relistMs ?? 300_000;
    const custom = this.#kube;
    const registryKind: WatchedKind<Registry> = {
      name: 'registries',
      path: `/apis/${GROUP}/${VERSION}/${PLURAL}`,
      list: () => custom.listRegistries(),
    };
    this.#registries = new ResilientInformer(
      kc,
      registryKind,
      (r) => this.#enqueue(r.metadata?.namespace, r.metadata?.name),
      log,
      relist,
    );
    this.#registries.onDelete = (r) => this.#queue.forget(`${r.metadata?.namespace}/${r.metadata?.name}`);
    this.#registries.onRestart = (kind) => metrics.informerRestarts.inc({ kind });
    const selector = `${MANAGED_BY}=${FIELD_MANAGER}`;
    const apps = kc.makeApiClient(AppsV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    const policy = kc.makeApiClient(PolicyV1Api);
    const autoscaling = kc.makeApiClient(AutoscalingV2Api);
    const owned: WatchedKind<KubernetesObject>[] = [
      {
        name: 'deployments',
        path: '/apis/apps/v1/deployments',
        list: () => apps.listDeploymentForAllNamespaces({ labelSelector: selector }),
      },
      {
        name: 'services',
        path: '/api/v1/services',
        list: () => core.listServiceForAllNamespaces({ labelSelector: selector }),
      },
      {
        name: 'configmaps',
        path: '/api/v1/configmaps',
        list: () => core.listConfigMapForAllNamespaces({ labelSelector: selector }),
      },
      {
        name: 'persistentvolumeclaims',
        path: '/api/v1/persistentvolumeclaims',
        list: () => core.listPersistentVolumeClaimForAllNamespaces({ labelSelector: selector }),
      },
      {
        name: 'poddisruptionbudgets',
        path: '/apis/policy/v1/poddisruptionbudgets',
        list: () => policy.listPodDisruptionBudgetForAllNamespaces({ labelSelector: selector }),
      },
      {
        name: 'secrets',
        path: '/api/v1/secrets',
        list: () => core.listSecretForAllNamespaces({ labelSelector: selector }),
      },
      {
        name: 'horizontalpodautoscalers',
        path: '/apis/autoscaling/v2/horizontalpodautoscalers',
        list: () => autoscaling.listHorizontalPodAutoscalerForAllNamespaces({ labelSelector: selector }),
      },
    ].map((k) => ({
      ...k,
      labelSelector: selector,
      list: k.list as () => Promise<KubernetesListObject<KubernetesObject>>,
    }));
    for (const kind of owned) this.#informers.push(this.#ownedInformer(kind));
  }

  /** An informer on a kind the operator owns: each event queues the Registry named by the instance label. */
  #ownedInformer(kind: WatchedKind<KubernetesObject>): ResilientInformer<KubernetesObject> {
    const informer = new ResilientInformer(
      this.#kc,
      kind,
      (o) => this.#enqueue(o.metadata?.namespace, o.metadata?.labels?.[INSTANCE]),
      this.#log,
      this.#relistMs,
    );
    informer.onRestart = (k) => this.#metrics.informerRestarts.inc({ kind: k });
    return informer;
  }

  get started(): boolean {
    return this.#started;
  }

  #enqueue(namespace: string | undefined, name: string | undefined): void {
    if (namespace === undefined || name === undefined || name === '') return;
    this.#queue.add(`${namespace}/${name}`);
    this.#metrics.queueDepth.set(this.#queue.depth);
  }

  async #watchServiceMonitors(): Promise<void> {
    if (this.#serviceMonitors !== undefined || !this.#active) return;
    const served = await this.#kube.hasServiceMonitorApi().catch(() => false);
    // Stopped, or another call got there, while the discovery request ran.
    if (!served || this.#serviceMonitors !== undefined || !this.#active) return;
    const custom = this.#kc.makeApiClient(CustomObjectsApi);
    const labelSelector = `${MANAGED_BY}=${FIELD_MANAGER}`;
    const kind: WatchedKind<KubernetesObject> = {
      name: 'servicemonitors',
      path: '/apis/monitoring.coreos.com/v1/servicemonitors',
      labelSelector,
      list: async () => {
        const list: unknown = await custom.listClusterCustomObject({
          group: 'monitoring.coreos.com',
          version: 'v1',
          plural: 'servicemonitors',
          labelSelector,
        });
        return list as KubernetesListObject<KubernetesObject>;
      },
    };
    const informer = this.#ownedInformer(kind);
    this.#serviceMonitors = informer;
    await informer.start();
    this.#log.info('watching ServiceMonitors');
  }

  /** Starts and stops run one after another, so a stop that arrives mid-start stops everything start made. */
  #transition: Promise<void> = Promise.resolve();

  start(): Promise<void> {
    this.#transition = this.#transition.catch(() => undefined).then(() => this.#start());
    return this.#transition;
  }

  stop(): Promise<void> {
    this.#transition = this.#transition.catch(() => undefined).then(() => this.#stop());
    return this.#transition;
  }

  async #start(): Promise<void> {
    this.#active = true;
    this.#queue.resume();
    await Promise.all([this.#registries.start(), ...this.#informers.map((i) => i.start())]);
    await this.#watchServiceMonitors();
    this.#monitorTimer = setInterval(() => void this.#watchServiceMonitors(), 15_000);
    this.#monitorTimer.unref();
    this.#started = true;
    this.#resyncTimer = setInterval(() => {
      for (const r of this.#registries.cache.list()) this.#enqueue(r.metadata?.namespace, r.metadata?.name);
    }, this.#resyncMs);
    this.#resyncTimer.unref();
    this.#log.info({ informers: this.#informers.length + 1 }, 'controller started');
  }

  async #stop(): Promise<void> {
    this.#active = false;
    clearInterval(this.#resyncTimer);
    clearInterval(this.#monitorTimer);
    const monitors = this.#serviceMonitors;
    this.#serviceMonitors = undefined;
    await Promise.all([
      this.#registries.stop(),
      ...this.#informers.map((i) => i.stop()),
      ...(monitors === undefined ? [] : [monitors.stop()]),
    ]);
    await this.#queue.stop();
    this.#started = false;
    this.#log.info('controller stopped');
  }
}
