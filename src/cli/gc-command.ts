// `berth gc`: registry garbage collection from the command line, against the storage and descriptor cache the
// config names, while registries keep serving. Its metrics go to a registry of its own, printed at the end. With
// --online it takes the lease in storage that serving replicas' online GC takes (gc/lease.ts), so it never collects
// alongside them or another `berth gc --online` (the operator's CronJob runs it this way).
import { parseArgs } from 'node:util';
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import { loadConfig } from '../config/load.js';
import { parseDuration } from '../config/duration.js';
import { createDescriptorCache, type DescriptorCache } from '../cache/index.js';
import type { StorageDriver } from '../storage/driver.js';
import { createDriver } from '../storage/drivers/factory.js';
import { collectGarbage, type GcReport } from '../gc/collect.js';
import { GcLease, type LeaseRecord } from '../gc/lease.js';
import { createGcMetrics, type GcResult } from '../gc/metrics.js';
import { DEFAULT_LEASE_TTL_MS, DEFAULT_SETTLE_MS } from '../gc/online.js';
import { barReporter, jsonReporter, lineReporter, type ProgressReporter } from './gc-progress.js';

export const GC_USAGE = `  berth gc [--config FILE] [--dry-run] [--delete-untagged] [--json] [--grace DURATION] [--online]
                                sweep blobs (and, with --delete-untagged, manifests) no tag reaches, while
                                registries serve; nothing newer than --grace (default 1h) is swept
                                --online: first take the lease serving replicas' online GC takes; when another
                                holds it, say who and until when, and exit 0 without collecting (a skipped run
                                is not a failure)
`;

const DEFAULT_GRACE = '1h';

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** The summary people read. */
export function formatSummary(report: GcReport): string {
  const would = report.dryRun ? 'would free' : 'freed';
  const lines = [
    `${report.dryRun ? 'dry run: ' : ''}${report.blobsSwept} blobs, ${formatBytes(report.bytesFreed)} ${would}; ` +
      `${report.manifestsSwept} manifests and ${report.linksSwept} links ${report.dryRun ? 'would go' : 'swept'}`,
    `kept: ${report.manifestsKept} manifests, ${report.blobsKept} referenced blobs, ` +
      `${report.blobsInGrace} unreferenced blobs within the grace period; ${report.repositories} repositories, ` +
      `${(report.durationMs / 1000).toFixed(1)}s`,
  ];
  for (const [name, r] of Object.entries(report.perRepository)) {
    lines.push(
      `  ${name === '' ? '(linked nowhere)' : name}: ${r.blobs} blobs, ${formatBytes(r.bytes)}, ` +
        `${r.manifests} manifests, ${r.links} links`,
    );
  }
  if (report.leftoversSwept > 0) {
    lines.push(`${report.leftoversSwept} leftovers of interrupted writes ${report.dryRun ? 'would go' : 'removed'}`);
  }
  for (const p of report.problems) lines.push(`problem: ${p}`);
  return `${lines.join('\n')}\n`;
}

export async function gcCommand(args: string[]): Promise<number> {
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        'dry-run': { type: 'boolean', default: false },
        'delete-untagged': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        grace: { type: 'string', default: DEFAULT_GRACE },
        online: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    process.stderr.write(`berth gc: ${err instanceof Error ? err.message : String(err)}\nusage:\n${GC_USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`usage:\n${GC_USAGE}`);
    return 0;
  }
  let graceMs: number;
  try {
    graceMs = /^\d+(\.\d+)?$/.test(values.grace) ? Number(values.grace) * 1000 : parseDuration(values.grace);
  } catch (err) {
    process.stderr.write(`berth gc: --grace: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  const file = values.config ?? positionals[0] ?? process.env['BERTH_CONFIG'];
  const config = await loadConfig(file);
  // Logs go to stderr: stdout carries the summary (and, with --json, the progress lines).
  const log = pino({ level: config.log.level, base: { service: 'berth', command: 'gc' } }, pino.destination(2));
  const json = values.json;
  const out = (line: string): void => void process.stdout.write(`${line}\n`);
  const err = (line: string): void => void process.stderr.write(`${line}\n`);
  if (config.storage.driver === 'inmemory')
    err('berth gc: the inmemory driver keeps its blobs inside the serving process; there is nothing to collect here');
  if (config.cache.blobdescriptor === 'inmemory')
    err(
      'berth gc: storage.cache.blobdescriptor is inmemory: serving registries keep their own caches, which this ' +
        'process cannot reach; use the redis cache (or restart them) so no replica answers for a swept blob',
    );
  const metricsRegistry = new Registry();
  const metrics = createGcMetrics(metricsRegistry);
  const driver = await createDriver(config.storage);
  let cache: DescriptorCache | undefined;
  let reporter: ProgressReporter;
  let stopBar: (() => void) | undefined;
  if (json) reporter = jsonReporter(out);
  else if (process.stderr.isTTY) {
    const bar = barReporter(process.stderr);
    reporter = bar;
    stopBar = () => bar.stop();
  } else reporter = lineReporter(err);
  let started = process.hrtime.bigint();
  const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
  let online: OnlineRun | undefined;
  let result: GcResult = 'failure';
  try {
    if (values.online) {
      const taken = await takeLease(driver, log);
      if (!taken.acquired) {
        stopBar?.();
        if (json) out(JSON.stringify({ type: 'skipped', reason: taken.reason, ...taken.other }));
        else out(`berth gc: skipped: ${describeHolder(taken.reason, taken.other)}`);
        return 0;
      }
      online = taken.run;
      started = process.hrtime.bigint();
    }
    // Only a shared cache can be told from here (Redis, and over its pub/sub every replica's in-process tier).
    if (config.cache.blobdescriptor === 'redis') cache = await createDescriptorCache(config, log, metricsRegistry);
    const report = await collectGarbage({
      driver,
      graceMs,
      dryRun: values['dry-run'],
      deleteUntagged: values['delete-untagged'],
      onProgress: reporter,
      log,
      ...(online === undefined ? {} : { signal: online.signal }),
      ...(cache === undefined ? {} : { invalidate: cache.invalidate }),
    });
    stopBar?.();
    result = report.dryRun ? 'dry_run' : 'success';
    metrics.record(result, seconds(), report);
    if (json) {
      out(JSON.stringify({ type: 'summary', ...report, metrics: await metricsRegistry.getMetricsAsJSON() }));
    } else {
      process.stdout.write(formatSummary(report));
      process.stdout.write(await gcMetricsText(metricsRegistry));
    }
    return 0;
  } catch (error) {
    stopBar?.();
    if (online?.signal.aborted === true) result = 'aborted';
    metrics.record(result, seconds());
    log.error({ err: error }, 'garbage collection failed');
    if (json)
      out(
        JSON.stringify({
          type: 'error',
          message: error instanceof Error ? error.message : String(error),
          metrics: await metricsRegistry.getMetricsAsJSON(),
        }),
      );
    else err(`berth gc: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    await online?.end(result);
    await cache?.close();
    await driver.close();
  }
}

/** A collection under the lease: aborted when the lease is lost or the process is told to stop. */
interface OnlineRun {
  readonly signal: AbortSignal;
  /** Stops renewing and frees the lease, recording how the run ended for the serving replicas. */
  end(result: GcResult): Promise<void>;
}

type Taken =
  | { readonly acquired: true; readonly run: OnlineRun }
  | {
      readonly acquired: false;
      readonly reason: string;
      readonly other: { readonly holder?: string; readonly token?: number; readonly until?: string };
    };

/** Takes the lease as online GC does, but without its "a run finished recently" skip: this run was asked for. */
async function takeLease(driver: StorageDriver, log: Logger): Promise<Taken> {
  const lease = new GcLease({ driver, ttlMs: DEFAULT_LEASE_TTL_MS, settleMs: DEFAULT_SETTLE_MS });
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => stop.abort(new Error(`stopped by ${signal}`));
  // A CronJob's pod gets SIGTERM when the Job is deleted or times out: free the lease rather than leave it to expire.
  process.once('SIGTERM', onSignal).once('SIGINT', onSignal);
  const unhook = (): void => void process.off('SIGTERM', onSignal).off('SIGINT', onSignal);
  let acquisition;
  try {
    acquisition = await lease.acquire({ signal: stop.signal });
  } catch (err) {
    unhook();
    throw err;
  }
  if (!acquisition.acquired) {
    unhook();
    const other = acquisition.record;
    return { acquired: false, reason: acquisition.reason, other: other === undefined ? {} : holderOf(other) };
  }
  const { token } = acquisition.record;
  const startedAt = Date.now();
  const glog = log.child({ holder: lease.holder, token });
  glog.info('took the garbage-collection lease');
  const renewal = lease.keepRenewed({
    lost: () => {
      if (stop.signal.aborted) return;
      glog.warn('lost the garbage-collection lease (expired or taken over); stopping');
      stop.abort(new Error('lost the garbage-collection lease'));
    },
    failed: (err) => glog.warn({ err: errorText(err) }, 'cannot renew the garbage-collection lease'),
  });
  return {
    acquired: true,
    run: {
      signal: stop.signal,
      end: async (result) => {
        unhook();
        await renewal.stop();
        try {
          await lease.release({ holder: lease.holder, token, startedAt, finishedAt: Date.now(), result });
        } catch (err) {
          glog.warn({ err: errorText(err) }, 'cannot release the garbage-collection lease; it expires by itself');
        }
      },
    },
  };
}

function holderOf(record: LeaseRecord): { holder: string; token: number; until: string } {
  return { holder: record.holder, token: record.token, until: new Date(record.expiresAt).toISOString() };
}

/** The one line a skipped run prints. */
function describeHolder(reason: string, other: { holder?: string; token?: number; until?: string }): string {
  const who = other.holder === undefined ? 'another collector' : `${other.holder} (run ${other.token ?? '?'})`;
  if (reason === 'race') return `${who} took the garbage-collection lease at the same moment; it collects`;
  return `the garbage-collection lease is held by ${who} until ${other.until ?? '?'}; it collects`;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The registry_gc_* series only (the cache's own metrics stay out of the summary). */
async function gcMetricsText(registry: Registry): Promise<string> {
  const text = await registry.metrics();
  return text
    .split('\n')
    .filter((line) => /^(# (HELP|TYPE) )?registry_gc_/.test(line))
    .map((line) => `${line}\n`)
    .join('');
}
