// Wires the reconciler to the cluster: informers on Registries and on every kind the operator owns (in every
// namespace, or one set per watched namespace), each event mapped to its Registry's key on one work queue, plus a
// periodic resync of every Registry.
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { API_VERSION, PLURAL } from './api/schema.js';
import type { Registry } from './api/types.js';
import type { RegistryImage } from './builders.js';
import { Kube, apiMessage, collectionPath, ResilientInformer, type WatchedKind } from './kube.js';
import type { OperatorMetrics } from './metrics.js';
import { FIELD_MANAGER, INSTANCE, MANAGED_BY } from './names.js';
import { WorkQueue } from './queue.js';
import { Reconciler } from './reconciler.js';

/** The kinds the operator owns, watched by the label it puts on all of them. */
const OWNED_KINDS = [
  { name: 'deployments', apiVersion: 'apps/v1', kind: 'Deployment' },
  { name: 'services', apiVersion: 'v1', kind: 'Service' },
  { name: 'configmaps', apiVersion: 'v1', kind: 'ConfigMap' },
  { name: 'persistentvolumeclaims', apiVersion: 'v1', kind: 'PersistentVolumeClaim' },
  { name: 'poddisruptionbudgets', apiVersion: 'policy/v1', kind: 'PodDisruptionBudget' },
  { name: 'secrets', apiVersion: 'v1', kind: 'Secret' },
  { name: 'horizontalpodautoscalers', apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler' },
  { name: 'serviceaccounts', apiVersion: 'v1', kind: 'ServiceAccount' },
  { name: 'cronjobs', apiVersion: 'batch/v1', kind: 'CronJob' },
] as const;

const SERVICE_MONITORS = { name: 'servicemonitors', apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor' };

export interface ControllerOptions {
  readonly resyncMs?: number;
  readonly relistMs?: number;
  readonly concurrency?: number;
  /** What Registries without spec.image run (the chart's image). */
  readonly defaultImage: RegistryImage;
  /**
   * Namespaces to watch, each with its own informers, for RBAC granted by Roles in those namespaces only; every
   * namespace (one cluster-wide informer per kind) when empty or absent.
   */
  readonly watchNamespaces?: readonly string[];
}

export class Controller {
  readonly #kube: Kube;
  readonly #log: Logger;
  readonly #metrics: OperatorMetrics;
  readonly #queue: WorkQueue;
  readonly #informers: ResilientInformer<KubernetesObject>[] = [];
  readonly #registries: ResilientInformer<Registry>[] = [];
  /** `undefined` stands for every namespace. */
  readonly #scopes: readonly (string | undefined)[];
  readonly #resyncMs: number;
  readonly #kc: KubeConfig;
  readonly #relistMs: number;
  #resyncTimer: NodeJS.Timeout | undefined;
  #monitorTimer: NodeJS.Timeout | undefined;
  /** Watches ServiceMonitors once the cluster serves their API (it may be installed after the operator starts). */
  #serviceMonitors: ResilientInformer<KubernetesObject>[] | undefined;
  #started = false;
  /** Between start() and stop(): what late callbacks check before starting anything. */
  #active = false;

  constructor(kc: KubeConfig, log: Logger, metrics: OperatorMetrics, options: ControllerOptions) {
    this.#kube = new Kube(kc);
    this.#log = log;
    this.#metrics = metrics;
    this.#resyncMs = options.resyncMs ?? 300_000;
    this.#kc = kc;
    this.#relistMs = options.relistMs ?? 300_000;
    const reconciler = new Reconciler(this.#kube, log, options.defaultImage);
    const namespaces = options.watchNamespaces ?? [];
    this.#scopes = namespaces.length === 0 ? [undefined] : [...new Set(namespaces)];
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
    const kube = this.#kube;
    for (const namespace of this.#scopes) {
      const registryKind: WatchedKind<Registry> = {
        name: 'registries',
        path: collectionPath(API_VERSION, PLURAL, namespace),
        list: () => kube.listRegistries(namespace),
      };
      const registries = new ResilientInformer(
        kc,
        registryKind,
        (r) => this.#enqueue(r.metadata?.namespace, r.metadata?.name),
        log,
        this.#relistMs,
      );
      registries.onDelete = (r) => this.#queue.forget(`${r.metadata?.namespace}/${r.metadata?.name}`);
      registries.onRestart = (kind) => metrics.informerRestarts.inc({ kind });
      this.#registries.push(registries);
      for (const kind of OWNED_KINDS) this.#informers.push(this.#ownedInformer(kind, namespace));
    }
  }

  /** An informer on a kind the operator owns: each event queues the Registry named by the instance label. */
  #ownedInformer(
    owned: { readonly name: string; readonly apiVersion: string; readonly kind: string },
    namespace: string | undefined,
  ): ResilientInformer<KubernetesObject> {
    const labelSelector = `${MANAGED_BY}=${FIELD_MANAGER}`;
    const kube = this.#kube;
    const kind: WatchedKind<KubernetesObject> = {
      name: owned.name,
      path: collectionPath(owned.apiVersion, owned.name, namespace),
      labelSelector,
      list: () => kube.list(owned.apiVersion, owned.kind, namespace, labelSelector),
    };
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
    const informers = this.#scopes.map((ns) => this.#ownedInformer(SERVICE_MONITORS, ns));
    this.#serviceMonitors = informers;
    await Promise.all(informers.map((i) => i.start()));
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
    await Promise.all([...this.#registries.map((i) => i.start()), ...this.#informers.map((i) => i.start())]);
    await this.#watchServiceMonitors();
    this.#monitorTimer = setInterval(() => void this.#watchServiceMonitors(), 15_000);
    this.#monitorTimer.unref();
    this.#started = true;
    this.#resyncTimer = setInterval(() => {
      for (const informer of this.#registries)
        for (const r of informer.cache.list()) this.#enqueue(r.metadata?.namespace, r.metadata?.name);
    }, this.#resyncMs);
    this.#resyncTimer.unref();
    this.#log.info(
      {
        informers: this.#informers.length + this.#registries.length,
        namespaces: this.#scopes.includes(undefined) ? 'all' : this.#scopes,
      },
      'controller started',
    );
  }

  async #stop(): Promise<void> {
    this.#active = false;
    clearInterval(this.#resyncTimer);
    clearInterval(this.#monitorTimer);
    const monitors = this.#serviceMonitors;
    this.#serviceMonitors = undefined;
    await Promise.all([
      ...this.#registries.map((i) => i.stop()),
      ...this.#informers.map((i) => i.stop()),
      ...(monitors ?? []).map((i) => i.stop()),
    ]);
    await this.#queue.stop();
    this.#started = false;
    this.#log.info('controller stopped');
  }
}
