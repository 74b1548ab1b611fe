// Online garbage collection inside `berth serve` (storage.maintenance.gc): about every interval, jittered, this
// replica tries to take the lease in storage (lease.ts); the one that holds it collects, renewing the lease as it
// goes, and the others count a skip. The collector needs no read-only window (see collect.ts); the lease only keeps
// replicas of one store from doing the same work at once. Shutdown aborts a running collection and frees the lease.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ResolvedConfig } from '../config/schema.js';
import type { Invalidate } from '../storage/blobs.js';
import type { StorageDriver } from '../storage/driver.js';
import { collectGarbage, type GcReport } from './collect.js';
import { GcLease, type SkipReason } from './lease.js';
import { pacedDriver } from './paced.js';
import { createGcLeaseMetrics, createGcMetrics, type GcResult } from './metrics.js';

/** Storage calls in flight at once in an online collection (`berth gc` makes 16). */
const ONLINE_CONCURRENCY = 2;
/**
 * Storage calls per second of an online collection: about a tenth of a core of this process's CPU on a local disk,
 * so serving keeps most of its rate (BENCH_SUITE=gc measures it); a store of 50,000 blobs takes a few minutes.
 */
const ONLINE_CALLS_PER_SECOND = 500;

export type OnlineGcConfig = ResolvedConfig['gc'];

/** Lease defaults: a crashed holder blocks others for at most a minute; a racing write may land up to 1 s late. */
export const DEFAULT_LEASE_TTL_MS = 60_000;
export const DEFAULT_SETTLE_MS = 1_000;
/** Each replica's timer fires every interval ±10%, so replicas of one store do not try in lockstep. */
const JITTER = 0.1;
/**
 * A replica skips its turn when another's run finished less than this much of the interval ago: the store is
 * collected about once per interval, not once per replica per interval.
 */
const RECENT_FRACTION = 0.8;
/** Below this grace period a slow push (blobs uploaded, manifest not yet PUT) can lose its blobs. */
const SAFE_GRACE_MS = 10 * 60_000;

export interface OnlineGcOptions {
  readonly driver: StorageDriver;
  readonly config: OnlineGcConfig;
  readonly log: Logger;
  /** Where the registry_gc_* metrics go: the registry's /metrics. */
  readonly registry: Registry;
  /** The descriptor cache's invalidation, told of every swept blob and manifest. */
  readonly invalidate?: Invalidate;
  readonly holder?: string;
  readonly leaseTtlMs?: number;
  readonly settleMs?: number;
  /** When the first attempt is due; one jittered interval after start when absent. */
  readonly firstDelayMs?: number;
  /** Whether attempts are scheduled at all; tests call runOnce instead. */
  readonly schedule?: boolean;
}

export type OnlineGcOutcome =
  | { readonly ran: true; readonly result: GcResult; readonly token: number; readonly report?: GcReport }
  | { readonly ran: false; readonly reason: SkipReason | 'busy' | 'stopped' | 'error' };

export interface OnlineGc {
  /** This replica's name in the lease. */
  readonly holder: string;
  /** One attempt now: take the lease and collect, or say why not. Never rejects. */
  runOnce(): Promise<OnlineGcOutcome>;
  /** Stops the schedule, aborts a running collection and frees the lease; resolves once all that is done. */
  stop(): Promise<void>;
}

/** What `berth verify` notes and `berth serve` warns about in the online-GC settings; nothing when it is off. */
export function gcConfigNotes(config: ResolvedConfig): string[] {
  const gc = config.gc;
  if (!gc.enabled) return [];
  const notes: string[] = [];
  if (config.readOnly)
    notes.push(
      'storage.maintenance.gc: the registry is read-only (storage.maintenance.readonly), so it does not collect',
    );
  if (config.cache.blobdescriptor === 'inmemory' && config.storage.driver !== 'inmemory')
    notes.push(
      'storage.maintenance.gc with the inmemory blob descriptor cache: a collecting replica cannot tell other ' +
        "replicas' caches what it swept; with several replicas on this storage use blobdescriptor redis (or none)",
    );
  if (gc.graceperiod < SAFE_GRACE_MS)
    notes.push(
      `storage.maintenance.gc.graceperiod is ${gc.graceperiod / 1000}s: a push whose manifest comes later than ` +
        'that after its blobs loses them and must be pushed again; 1h is safe',
    );
  return notes;
}

const jittered = (ms: number): number => ms * (1 - JITTER + 2 * JITTER * Math.random());
const message = (reason: unknown): string => (reason instanceof Error ? reason.message : String(reason));

export function startOnlineGc(options: OnlineGcOptions): OnlineGc {
  const { driver, config } = options;
  const lease = new GcLease({
    driver,
    ttlMs: options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS,
    settleMs: options.settleMs ?? DEFAULT_SETTLE_MS,
    ...(options.holder === undefined ? {} : { holder: options.holder }),
  });
  const log = options.log.child({ component: 'gc', holder: lease.holder });
  const metrics = createGcMetrics(options.registry);
  const leaseMetrics = createGcLeaseMetrics(options.registry);
  const stopping = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<OnlineGcOutcome> | undefined;

  const collect = async (token: number): Promise<OnlineGcOutcome> => {
    const run = new AbortController();
    const onStop = (): void => run.abort(new Error('shutting down'));
    stopping.signal.addEventListener('abort', onStop, { once: true });
    leaseMetrics.holding(true);
    const startedAt = Date.now();
    const started = process.hrtime.bigint();
    log.info(
      { token, graceMs: config.graceperiod, dryRun: config.dryrun, deleteUntagged: config.deleteuntagged },
      'garbage collection started',
    );
    const renewal = lease.keepRenewed({
      lost: () => {
        if (run.signal.aborted) return;
        leaseMetrics.lost();
        log.warn({ token }, 'garbage collection: lost the lease (expired or taken over); stopping');
        run.abort(new Error('lost the garbage-collection lease'));
      },
      failed: (err) => log.warn({ token, err: message(err) }, 'garbage collection: cannot renew the lease'),
    });
    let result: GcResult;
    let report: GcReport | undefined;
    try {
      report = await collectGarbage({
        driver: pacedDriver(driver, ONLINE_CALLS_PER_SECOND),
        graceMs: config.graceperiod,
        dryRun: config.dryrun,
        deleteUntagged: config.deleteuntagged,
        log,
        signal: run.signal,
        // A few storage calls at a time: the requests this registry serves meanwhile come first.
        concurrency: ONLINE_CONCURRENCY,
        ...(options.invalidate === undefined ? {} : { invalidate: options.invalidate }),
      });
      result = report.dryRun ? 'dry_run' : 'success';
    } catch (err) {
      if (run.signal.aborted) {
        result = 'aborted';
        log.warn({ token, reason: message(run.signal.reason) }, 'garbage collection stopped before the end');
      } else {
        result = 'failure';
        log.error({ token, err }, 'garbage collection failed');
      }
    } finally {
      stopping.signal.removeEventListener('abort', onStop);
    }
    await renewal.stop();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    metrics.record(result, seconds, report);
    try {
      await lease.release({ holder: lease.holder, token, startedAt, finishedAt: Date.now(), result });
    } catch (err) {
      log.warn({ token, err: message(err) }, 'garbage collection: cannot release the lease; it expires by itself');
    }
    leaseMetrics.holding(false);
    const summary =
      report === undefined
        ? {}
        : {
            repositories: report.repositories,
            manifestsKept: report.manifestsKept,
            manifestsSwept: report.manifestsSwept,
            blobsKept: report.blobsKept,
            blobsInGrace: report.blobsInGrace,
            blobsSwept: report.blobsSwept,
            linksSwept: report.linksSwept,
            bytesFreed: report.bytesFreed,
            problems: report.problems.length,
          };
    log.info({ token, result, durationMs: Math.round(seconds * 1000), ...summary }, 'garbage collection finished');
    return { ran: true, result, token, ...(report === undefined ? {} : { report }) };
  };

  const attempt = async (): Promise<OnlineGcOutcome> => {
    if (stopping.signal.aborted) return { ran: false, reason: 'stopped' };
    let acquisition;
    try {
      acquisition = await lease.acquire({
        skipWithinMs: config.interval * RECENT_FRACTION,
        signal: stopping.signal,
      });
    } catch (err) {
      if (stopping.signal.aborted) return { ran: false, reason: 'stopped' };
      log.warn({ err: message(err) }, 'garbage collection: cannot take the lease; trying again next interval');
      return { ran: false, reason: 'error' };
    }
    if (!acquisition.acquired) {
      leaseMetrics.skipped(acquisition.reason);
      const other = acquisition.record;
      log.info(
        {
          reason: acquisition.reason,
          ...(other === undefined
            ? {}
            : { leaseHolder: other.holder, leaseToken: other.token, lastRun: other.lastRun?.finishedAt }),
        },
        'garbage collection skipped: another replica collects',
      );
      return { ran: false, reason: acquisition.reason };
    }
    return collect(acquisition.record.token);
  };

  const runOnce = (): Promise<OnlineGcOutcome> => {
    if (running !== undefined) return Promise.resolve({ ran: false, reason: 'busy' });
    const current = attempt().catch((err: unknown): OnlineGcOutcome => {
      log.error({ err }, 'garbage collection: unexpected failure');
      return { ran: false, reason: 'error' };
    });
    running = current.finally(() => (running = undefined));
    return running;
  };

  const scheduleNext = (delayMs: number): void => {
    if (stopping.signal.aborted) return;
    timer = setTimeout(() => void runOnce().then(() => scheduleNext(jittered(config.interval))), delayMs);
    timer.unref();
  };
  if (options.schedule ?? true) {
    const first = options.firstDelayMs ?? jittered(config.interval);
    log.info({ intervalMs: config.interval, firstInMs: Math.round(first) }, 'online garbage collection scheduled');
    scheduleNext(first);
  }

  return {
    holder: lease.holder,
    runOnce,
    stop: async () => {
      stopping.abort(new Error('shutting down'));
      if (timer !== undefined) clearTimeout(timer);
      await running;
    },
  };
}
