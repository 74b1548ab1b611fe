// Leader election on a coordination.k8s.io Lease, the protocol client-go uses: the holder renews the lease; a
// candidate takes it over only after it has gone unrenewed for its duration; writes carry the resourceVersion they
// read, so two candidates can never both win. Stopping releases the lease so a standby takes over at once.
import { ApiException, CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { setTimeout as delay } from 'node:timers/promises';
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

/** Waits `ms`, or less when `signal` aborts; never rejects. */
const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  delay(ms, undefined, { signal }).catch(() => undefined);

/** Resolves like `work`, or to 'timeout' after `ms` (the request itself is left to finish or fail on its own). */
async function within<T>(work: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), Math.max(ms, 0))));
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

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
  /** When this process's last successful renewal was sent (ms). */
  #renewedAt = 0;
  /** Another holder seen in the lease while this process thought it led. */
  #lostTo: string | undefined;
  /** The lease record as last seen and when it was first seen so: expiry is timed by this clock, not the holder's. */
  #observed: { readonly record: string; readonly at: number } | undefined;

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
      // Measured from before the request: the lease records the time the request carried, not when it returned.
      const attemptAt = Date.now();
      // A leader gives an attempt only what is left of its renew deadline, so a hung request can't keep it leading
      // after the lease has expired for everyone else.
      const budget = this.#leading ? this.#o.renewDeadlineMs - (attemptAt - this.#renewedAt) : this.#o.renewDeadlineMs;
      let held = false;
      try {
        const outcome = await within(this.#tryAcquireOrRenew(), budget);
        if (outcome === 'timeout') this.#log.warn({ budgetMs: budget }, 'lease update timed out');
        else held = outcome;
      } catch (err) {
        this.#log.warn({ err: String(err) }, 'lease update failed');
      }
      if (held) {
        this.#renewedAt = attemptAt;
        if (!this.#leading) {
          this.#leading = true;
          this.#log.info('became leader');
          cb.onStartedLeading();
        }
      } else if (
        this.#leading &&
        (this.#lostTo !== undefined || Date.now() - this.#renewedAt >= this.#o.renewDeadlineMs)
      ) {
        this.#leading = false;
        this.#log.warn({ holder: this.#lostTo }, 'lost the lease: stopping work');
        await cb.onStoppedLeading();
      }
      this.#lostTo = undefined;
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
    // As client-go does: a lease counts as expired when its record has not changed for its duration on this
    // process's clock, so clock skew between nodes can't make a live lease look stale.
    const record = `${holder}|${timeMs(spec.renewTime)}|${spec.leaseTransitions ?? 0}`;
    if (this.#observed?.record !== record) this.#observed = { record, at: Date.now() };
    const expired = holder === '' || this.#observed.at + (spec.leaseDurationSeconds ?? seconds) * 1000 < Date.now();
    if (holder !== this.#o.identity && this.#leading) {
      // Someone else took it while we thought we led: stop first, campaign again afterwards.
      this.#lostTo = holder === '' ? '(released)' : holder;
      return false;
    }
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
