// Small pieces both benchmark suites (run.ts's registry comparison and cache.ts) share: progress output, environment
// parsing, statistics, the images they push, and how they write up and save a run.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { format, resolveConfig } from 'prettier';
import type { LoadResult } from './load.js';
import { killAllNow, REGISTRY_IDS, REPO_ROOT, type RegistryId } from './registries.js';

export const MIB = 1024 * 1024;

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** Progress goes to stderr, so stdout carries nothing but the result table. */
export function progress(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export function envNumber(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new Error(`${name}=${raw}: expected a number from ${min} to ${max}`);
  return n;
}

/** BENCH_DURATION, BENCH_WARMUP (seconds) and BENCH_CONNECTIONS: how every load run is shaped. */
export function loadSettings(quick: boolean): { durationS: number; warmupS: number; connections: number } {
  return {
    durationS: envNumber('BENCH_DURATION', quick ? 2 : 10, 1, 600),
    warmupS: envNumber('BENCH_WARMUP', quick ? 1 : 3, 0, 120),
    connections: Math.round(envNumber('BENCH_CONNECTIONS', 32, 1, 1024)),
  };
}

/** BENCH_TMPDIR and BENCH_KEEP: where a suite works, and whether it leaves its files behind. */
export function workSettings(): { tmp: string; keep: boolean } {
  return { tmp: process.env['BENCH_TMPDIR'] ?? tmpdir(), keep: process.env['BENCH_KEEP'] === '1' };
}

/** BENCH_REGISTRIES as a subset of the known registries, in their usual order. */
export function registriesFromEnv(): RegistryId[] {
  const only = (process.env['BENCH_REGISTRIES'] ?? REGISTRY_IDS.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const registries = REGISTRY_IDS.filter((id) => only.includes(id));
  const unknown = only.filter((s) => !(REGISTRY_IDS as readonly string[]).includes(s));
  if (unknown.length > 0 || registries.length === 0)
    throw new Error(`BENCH_REGISTRIES: choose from ${REGISTRY_IDS.join(', ')}`);
  return registries;
}

export function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/** Flushes dirty pages left by the previous transfer, so background writeback does not slow the next one. */
export function settleDisk(): void {
  try {
    execFileSync('sync', [], { timeout: 120_000 });
  } catch {
    // without sync the numbers are only noisier
  }
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? Number.NaN) : ((s[mid - 1] ?? Number.NaN) + (s[mid] ?? Number.NaN)) / 2;
}

/** Nearest-rank percentile (`p` from 0 to 1); with few samples the high percentiles are the largest values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1));
  return s[i] ?? Number.NaN;
}

/** The order registries take a step in: rotated each step, so no registry always goes first on a drifting machine. */
export function rotated<T>(items: readonly T[], by: number): T[] {
  const k = items.length === 0 ? 0 : by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** An image config whose rootfs lists `layers`. */
export function imageConfig(layers: readonly Buffer[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: layers.map(sha256) },
      config: {},
    }),
  );
}

/** An OCI image manifest of `config` and `layers`, with `annotations` when given. */
export function imageManifest(
  config: Buffer,
  layers: readonly Buffer[],
  annotations?: Readonly<Record<string, string>>,
): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: sha256(l), size: l.length })),
      ...(annotations === undefined ? {} : { annotations }),
    }),
  );
}

/** Ctrl-C or a kill must not leave registries (or gigabytes of temp files) behind. `what` names what is stopped. */
export function stopOnSignals(work: string, keep: boolean, what: string): void {
  const abort = (signal: NodeJS.Signals): void => {
    progress(`${signal}: stopping ${what}`);
    killAllNow();
    if (!keep) rmSync(work, { recursive: true, force: true });
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  process.once('exit', killAllNow);
}

/** One load run on a progress line: rate, latency, server CPU, `extra`, and a warning if requests failed. */
export function loadSummary(r: LoadResult, extra = ''): string {
  const bad = r.non2xx + r.errors + r.timeouts;
  return (
    `${Math.round(r.requestsPerSecond)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, ` +
    `${r.serverCpuMicrosPerRequest.toFixed(1)} µs CPU/req${extra}` +
    `${bad > 0 ? `, WARNING ${r.non2xx} non-2xx ${r.errors} errors ${r.timeouts} timeouts` : ''}`
  );
}

/** Load averages as the notes print them. */
export function loadText(load: readonly number[]): string {
  return load.map((l) => l.toFixed(2)).join(' ');
}

/** The machine, for the notes: CPU count and model, kernel. */
export function machineText(): string {
  return `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Linux ${release()}`;
}

/** The machine, for the JSON report. */
export function machineInfo(loadBefore: readonly number[], loadAfter: readonly number[]) {
  return {
    cpus: cpus().length,
    model: cpus()[0]?.model,
    kernel: release(),
    node: process.version,
    loadBefore,
    loadAfter,
  };
}

/** What a suite's run ends with: the markdown it prints, and the fields of its JSON report. */
export interface RunReport {
  /** The heading, without the start time (added). */
  readonly title: string;
  readonly table: string;
  readonly notes: readonly string[];
  readonly startedAt: Date;
  /** The run's settings; its temp dir and keep flag stay out of the report. */
  readonly settings: object;
  readonly loadBefore: readonly number[];
  readonly loadAfter: readonly number[];
  /** The suite's own fields, after the common ones (a `machine` here replaces machineInfo's). */
  readonly extra: Record<string, unknown>;
}

/** Prints a run's markdown (title, table, notes as a list) and writes its JSON report as bench/results/`name`. */
export async function publishReport(name: string, r: RunReport): Promise<void> {
  const markdown = [`${r.title} (${r.startedAt.toISOString()})`, '', r.table, '', ...r.notes.map((n) => `- ${n}`)].join(
    '\n',
  );
  process.stdout.write(`\n${markdown}\n`);
  await writeReport(name, {
    startedAt: r.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    settings: { ...r.settings, tmp: undefined, keep: undefined },
    machine: machineInfo(r.loadBefore, r.loadAfter),
    ...r.extra,
    notes: r.notes,
    markdown,
  });
}

/** Writes `report` as bench/results/`name`. */
async function writeReport(name: string, report: unknown): Promise<void> {
  const resultsDir = join(REPO_ROOT, 'bench', 'results');
  await mkdir(resultsDir, { recursive: true });
  const jsonFile = join(resultsDir, name);
  // Formatted with the repository's prettier and its settings, since `npm run lint` checks everything under bench/.
  const style = (await resolveConfig(jsonFile)) ?? {};
  await writeFile(jsonFile, await format(JSON.stringify(report), { ...style, filepath: jsonFile }));
  progress(`wrote ${jsonFile}`);
}
