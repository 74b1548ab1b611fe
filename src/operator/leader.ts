// Leader election on a coordination.k8s.io Lease, the protocol client-go uses: the holder renews the lease; a
// candidate takes it over only after it has gone unrenewed for its duration; writes carry the resourceVersion they
// read, so two candidates can never both win. Stopping releases the lease so a standby takes over at once.
import { ApiException, CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';

export interface LeaderOptions {
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationMs?: number;
  readonly renewDeadlineMs?: number;
  readonly retryPeriodMs?: number;
}

export interface LeaderCallbacks {
  /** Called when this process becomes the leader. */
  readonly onStartedLeading: () => void;
  /** Called when it stops being the leader (lost the lease, or stopped). Resolves when the work has stopped. */
  readonly onStoppedLeading: () => Promise<void>;
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

/** A lease time as milliseconds: the client deserialises MicroTime fields as strings, whatever its types say. */
function timeMs(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'string') return Date.parse(value);
  return 0;
}

export class LeaderElector {
  readonly #api: CoordinationV1Api;
  readonly #o: Required<LeaderOptions>;
  readonly #log: Logger;
  readonly #abort = new AbortController();
  #leading = false;
  #loop: Promise<void> | undefined;
  /** When this process last renewed successfully (ms). */
  #renewedAt = 0;

  constructor(kc: KubeConfig, options: LeaderOptions, log: Logger) {
    this.#api = kc.makeApiClient(CoordinationV1Api);
    this.#o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...options };
    this.#log = log.child({ lease: `${options.namespace}/${options.name}`, identity: options.identity });
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  start(callbacks: LeaderCallbacks): void {
    this.#loop = this.#run(callbacks);
  }

  /** Stops campaigning; if leading, stops the work and releases the lease. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  async #run(cb: LeaderCallbacks): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      let held = false;
      try {
        held = await this.#tryAcquireOrRenew();
      } catch (err) {
        this.#log.warn({ err: String(err) }, 'lease update failed');
      }
      if (held) {
        this.#renewedAt = Date.now();
        if (!this.#leading) {
          this.#leading = true;
          this.#log.info('became leader');
          cb.onStartedLeading();
        }
      } else if (this.#leading && Date.now() - this.#renewedAt > this.#o.renewDeadlineMs) {
        this.#leading = false;
        this.#log.warn('lost the lease: stopping work');
        await cb.onStoppedLeading();
      }
      await sleep(this.#o.retryPeriodMs, signal);
    }
    if (this.#leading) {
      this.#leading = false;
      await cb.onStoppedLeading();
      await this.#release().catch((err: unknown) =>
        this.#log.warn({ err: String(err) }, 'could not release the lease'),
      );
      this.#log.info('released the lease');
    }
  }

  async #read(): Promise<V1Lease | undefined> {
    try {
      return await this.#api.readNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace });
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    }
  }

  /** One round: true when this process holds the lease afterwards. */
  async #tryAcquireOrRenew(): Promise<boolean> {
    const now = new V1MicroTime(Date.now());
    const seconds = Math.ceil(this.#o.leaseDurationMs / 1000);
    const lease = await this.#read();
    if (lease === undefined) {
      await this.#api.createNamespacedLease({
        namespace: this.#o.namespace,
        body: {
          metadata: { name: this.#o.name, namespace: this.#o.namespace },
          spec: {
            holderIdentity: this.#o.identity,
            leaseDurationSeconds: seconds,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: 0,
          },
        },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const renewed = timeMs(spec.renewTime);
    const expired = holder === '' || renewed + (spec.leaseDurationSeconds ?? seconds) * 1000 < Date.now();
    if (holder !== this.#o.identity && !expired) return false;
    const takeover = holder !== this.#o.identity;
    lease.spec = {
      ...spec,
      holderIdentity: this.#o.identity,
      leaseDurationSeconds: seconds,
      renewTime: now,
      ...(takeover ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
    };
    try {
      await this.#api.replaceNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace, body: lease });
      return true;
    } catch (err) {
      if (err instanceof ApiException && err.code === 409) return false; // another candidate wrote first
      throw err;
    }
  }

  async #release(): Promise<void> {
    const lease = await this.#read();
    if (lease?.spec?.holderIdentity !== this.#o.identity) return;
    lease.spec = { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: new V1MicroTime(Date.now()) };
    await this.#api.replaceNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace, body: lease });
  }
}
