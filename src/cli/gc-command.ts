// `berth gc`: registry garbage collection from the command line, against the storage and descriptor cache the
// config names, while registries keep serving. Its metrics go to a registry of its own, printed at the end.
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadConfig } from '../config/load.js';
import { parseDuration } from '../config/duration.js';
import { createDescriptorCache, type DescriptorCache } from '../cache/index.js';
import { createDriver } from '../storage/drivers/factory.js';
import { collectGarbage, type GcReport } from '../gc/collect.js';
import { createGcMetrics } from '../gc/metrics.js';
import { barReporter, jsonReporter, lineReporter, type ProgressReporter } from './gc-progress.js';

export const GC_USAGE = `  berth gc [--config FILE] [--dry-run] [--delete-untagged] [--json] [--grace DURATION]
                                sweep blobs (and, with --delete-untagged, manifests) no tag reaches, while
                                registries serve; nothing newer than --grace (default 1h) is swept
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
      },
    }));
  } catch (err) {
    process.stderr.write(`berth gc: ${err instanceof Error ? err.message : String(err)}\nusage:\n${GC_USAGE}`);
    return 2;
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
  const started = process.hrtime.bigint();
  const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
  try {
    // Only a shared cache can be told from here (Redis, and over its pub/sub every replica's in-process tier).
    if (config.cache.blobdescriptor === 'redis') cache = await createDescriptorCache(config, log, metricsRegistry);
    const report = await collectGarbage({
      driver,
      graceMs,
      dryRun: values['dry-run'],
      deleteUntagged: values['delete-untagged'],
      onProgress: reporter,
      log,
      ...(cache === undefined ? {} : { invalidate: cache.invalidate }),
    });
    stopBar?.();
    metrics.record(report.dryRun ? 'dry_run' : 'success', seconds(), report);
    if (json) {
      out(JSON.stringify({ type: 'summary', ...report, metrics: await metricsRegistry.getMetricsAsJSON() }));
    } else {
      process.stdout.write(formatSummary(report));
      process.stdout.write(await gcMetricsText(metricsRegistry));
    }
    return 0;
  } catch (error) {
    stopBar?.();
    metrics.record('failure', seconds());
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
    await cache?.close();
    await driver.close();
  }
}

/** The registry_gc_* series only (the cache's own metrics stay out of the summary). */
async function gcMetricsText(registry: Registry): Promise<string> {
  const text = await registry.metrics();
  return text
    .split('\n')
    .filter((line) => /^(# (HELP|TYPE) )?registry_gc_/.test(line))
    .map((line) => `${line}\n`)
    .join('');
}
