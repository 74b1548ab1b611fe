// Turns per-registry measurements into the comparison table: values, ratios oriented so that > 1 favours Berth,
// and the (informative) targets next to them.
import type { LoadResult } from './load.js';
import type { RegistryId } from './registries.js';

export const LOAD_KINDS = ['headBlob', 'getBlob', 'getManifest', 'getBase'] as const;
export type LoadKind = (typeof LOAD_KINDS)[number];

export const LOAD_LABELS: Readonly<Record<LoadKind, string>> = {
  headBlob: 'HEAD blob',
  getBlob: 'GET blob (2 KiB)',
  getManifest: 'GET manifest by tag',
  getBase: 'GET /v2/',
};

export interface TransferResult {
  /** Median over the repetitions. */
  readonly mibPerSecond: number;
  readonly runsMibPerSecond: readonly number[];
  /** Server CPU seconds per GiB moved, median over the repetitions. */
  readonly serverCpuSecondsPerGiB: number;
}

export interface MemoryResult {
  readonly sizeMiB: number;
  readonly baselineMiB: number;
  readonly pushPeakMiB: number;
  readonly pushGrowthMiB: number;
  readonly pullStartMiB: number;
  readonly pullPeakMiB: number;
  readonly pullGrowthMiB: number;
}

/** The loads the slow-volume block measures (run.ts's last block): storage-bound ones, nothing else. */
export const SLOW_VOLUME_KINDS = ['headBlob', 'getManifest'] as const satisfies readonly LoadKind[];
export type SlowVolumeKind = (typeof SLOW_VOLUME_KINDS)[number];

export interface SlowVolumeResult {
  readonly load: LoadResult;
  /** Operations slowfs served during the measured run ÷ the requests answered in it. */
  readonly fsOpsPerRequest: number;
}

export interface RegistryResults {
  pushMonolithic?: TransferResult;
  pushChunked?: TransferResult;
  /**
   * A chunked push with each PATCH's bytes fsynced before its answer: Berth's from a second Berth with
   * `flushchunks`; the Distributions' is their `pushChunked`, since they always flush each PATCH.
   */
  pushChunkedFlushed?: TransferResult;
  pull?: TransferResult;
  load: Partial<Record<LoadKind, LoadResult>>;
  memory?: MemoryResult;
  /** The loads on a slowfs mount; absent when that block was skipped. */
  slowVolume?: Partial<Record<SlowVolumeKind, SlowVolumeResult>>;
}

export type Better = 'higher' | 'lower';

/** The part of a target both tables share: minimum ratios (oriented, > 1 favours Berth) against D3 and D2.8. */
export interface RatioTarget {
  readonly dist3?: number;
  readonly dist28?: number;
}

interface Target extends RatioTarget {
  /** An absolute ceiling on Berth's own value. */
  readonly berthMax?: number;
}

/** One row of a comparison table: how to read its value out of one registry's results `R`, and how to judge it. */
export interface MetricDef<R, T> {
  readonly name: string;
  readonly unit: string;
  readonly better: Better;
  readonly digits: number;
  readonly value: (r: R) => number | undefined;
  /** Why a value is suspect (errors during its run), if it is. */
  readonly warning?: (r: R) => string | undefined;
  readonly target?: T;
  /** What the row compares besides speed, when that differs between the registries: marked beside it, told below. */
  readonly note?: string;
}

type RegistryMetric = MetricDef<RegistryResults, Target>;

/** The failed requests of a load run, if any. */
export function loadFailures(l: LoadResult | undefined): string | undefined {
  if (l === undefined || l.non2xx + l.errors + l.timeouts === 0) return undefined;
  return `${l.non2xx} non-2xx, ${l.errors} errors, ${l.timeouts} timeouts`;
}

function loadWarning(kind: LoadKind): (r: RegistryResults) => string | undefined {
  return (r) => loadFailures(r.load[kind]);
}

/** Server CPU per GiB moved by one kind of transfer. */
function transferCpu(what: string, transfer: (r: RegistryResults) => TransferResult | undefined): RegistryMetric {
  return {
    name: `server CPU, ${what}`,
    unit: 'CPU s/GiB',
    better: 'lower',
    digits: 2,
    value: (r) => transfer(r)?.serverCpuSecondsPerGiB,
  };
}

/** One of the registry's resident set sizes during the memory test. */
function rss(name: string, value: (m: MemoryResult) => number, target?: Target): RegistryMetric {
  return {
    name,
    unit: 'MiB',
    better: 'lower',
    digits: 1,
    value: (r) => (r.memory === undefined ? undefined : value(r.memory)),
    ...(target === undefined ? {} : { target }),
  };
}

/**
 * Chunked pushes compare different durability. Distribution's filesystem driver flushes at the end of every PATCH
 * (the handler closes the upload's writer, and fileWriter.Close flushes and fsyncs; its hash state goes through
 * PutContent, flushed too), Berth's only when the finished upload moves into place as a blob.
 */
export const CHUNKED_PUSH_NOTE =
  'Not the same durability: Distribution (2.8 and 3) fsyncs the upload file, and writes its hash state with ' +
  'another fsync, at the end of every PATCH, so each acknowledged chunk is on disk; Berth fsyncs once, when the ' +
  'finished upload moves into place as a blob (in between it only starts the writeback every 32 MiB, without ' +
  "waiting for it). Monolithic pushes fsync the blob's data once in all three.";

/** The chunked-push row at equal durability: what differs from the chunked row's setting, and what does not. */
export const FLUSH_EACH_CHUNK_NOTE =
  'Equal durability: a second Berth, started for this row alone with storage.filesystem.flushchunks: true, fsyncs ' +
  'the upload file after each appended chunk before answering its PATCH, as both Distributions always do; their ' +
  'values are those of the chunked row.';

/** What the slow-volume rows run on, and why Berth and Distribution meet it differently. */
export function slowVolumeNote(delayMs: number): string {
  return (
    `Each registry's storage root on its own slowfs mount (a FUSE loopback of a local directory, ` +
    `test/tools/slowfs) that adds ${delayMs} ms to every filesystem operation, with no kernel caching of names or ` +
    `attributes, so the lookup of each path component pays it too: a network volume's round trip per operation, ` +
    `without NFS's attribute cache. Storage only (no descriptor cache) for all three. Berth's filesystem driver ` +
    `sees FUSE in statfs(2) and keeps every call on libuv's thread pool (storage.filesystem.maxthreads threads, 16 ` +
    `by default); Distribution blocks in up to maxthreads OS threads (100 by default). GET manifest by tag still uses ` +
    `Berth's two always-on caches (its tag link costs one stat(2), its manifest no read).`
  );
}

/** Berth's storage-only mode still has two in-process caches that no setting turns off; Distribution has neither. */
export const BERTH_CONTENT_CACHES_NOTE =
  "Berth's numbers include two in-process caches that are always on, even with storage only: the filesystem " +
  "driver's stat-validated cache of files up to 4 KiB (links, tags: one stat(2) instead of open, read and close; " +
  'src/storage/drivers/filesystem/index.ts) and the manifest content LRU (32 MiB of manifests by digest, checked ' +
  'against the revision link; src/storage/manifests.ts). GET manifest by tag uses both; HEAD and GET of a blob ' +
  'use neither (two stat(2)s; the blob is read each time).';

/**
 * The table's rows. The slow-volume rows come last, and only when `slowVolume` says that block ran (with that
 * delay per filesystem operation).
 */
export function metricDefs(
  sizes: { blobMiB: number; chunkMiB: number; bigMiB: number },
  slowVolume?: { delayMs: number },
): RegistryMetric[] {
  const defs: RegistryMetric[] = [
    {
      name: `push ${sizes.blobMiB} MiB, monolithic (POST + PUT)`,
      unit: 'MiB/s',
      better: 'higher',
      digits: 1,
      value: (r) => r.pushMonolithic?.mibPerSecond,
      target: { dist3: 1.5, dist28: 2.5 },
    },
    {
      name: `push ${sizes.blobMiB} MiB, chunked (${sizes.chunkMiB} MiB PATCH)`,
      unit: 'MiB/s',
      better: 'higher',
      digits: 1,
      value: (r) => r.pushChunked?.mibPerSecond,
      target: { dist3: 1.5, dist28: 4 },
      note: CHUNKED_PUSH_NOTE,
    },
    {
      name: `push ${sizes.blobMiB} MiB in ${sizes.chunkMiB} MiB chunks, Berth flushing each chunk`,
      unit: 'MiB/s',
      better: 'higher',
      digits: 1,
      value: (r) => r.pushChunkedFlushed?.mibPerSecond,
      note: FLUSH_EACH_CHUNK_NOTE,
    },
    {
      name: `pull ${sizes.blobMiB} MiB`,
      unit: 'MiB/s',
      better: 'higher',
      digits: 1,
      value: (r) => r.pull?.mibPerSecond,
      target: { dist3: 1, dist28: 1 },
    },
    transferCpu('monolithic push', (r) => r.pushMonolithic),
    { ...transferCpu('chunked push', (r) => r.pushChunked), note: CHUNKED_PUSH_NOTE },
    transferCpu('pull', (r) => r.pull),
  ];
  for (const kind of LOAD_KINDS) {
    const label = LOAD_LABELS[kind];
    const warning = loadWarning(kind);
    const rpsTarget: Target | undefined =
      kind === 'headBlob' || kind === 'getManifest' ? { dist3: 2, dist28: 5 } : undefined;
    const note = kind === 'getManifest' ? { note: BERTH_CONTENT_CACHES_NOTE } : {};
    defs.push(
      {
        name: `${label}`,
        unit: 'req/s',
        better: 'higher',
        digits: 0,
        value: (r) => r.load[kind]?.requestsPerSecond,
        warning,
        ...(rpsTarget === undefined ? {} : { target: rpsTarget }),
        ...note,
      },
      {
        name: `${label} p99 latency`,
        unit: 'ms',
        better: 'lower',
        digits: 2,
        value: (r) => r.load[kind]?.p99Ms,
        warning,
        ...note,
      },
      {
        name: `${label} server CPU`,
        unit: 'µs/req',
        better: 'lower',
        digits: 1,
        value: (r) => r.load[kind]?.serverCpuMicrosPerRequest,
        ...note,
      },
    );
  }
  defs.push(
    rss('RSS baseline (before big push)', (m) => m.baselineMiB),
    rss(`RSS peak, ${sizes.bigMiB} MiB push`, (m) => m.pushPeakMiB),
    rss(`RSS growth, ${sizes.bigMiB} MiB push`, (m) => m.pushGrowthMiB, { berthMax: 100 }),
    rss(`RSS peak, ${sizes.bigMiB} MiB pull`, (m) => m.pullPeakMiB),
    rss(`RSS growth, ${sizes.bigMiB} MiB pull`, (m) => m.pullGrowthMiB),
  );
  if (slowVolume !== undefined) defs.push(...slowVolumeDefs(slowVolume.delayMs));
  return defs;
}

function slowVolumeDefs(delayMs: number): RegistryMetric[] {
  const note = slowVolumeNote(delayMs);
  return SLOW_VOLUME_KINDS.flatMap((kind): RegistryMetric[] => {
    const name = `${LOAD_LABELS[kind]}, slow volume (${delayMs} ms/op)`;
    const load = (r: RegistryResults): LoadResult | undefined => r.slowVolume?.[kind]?.load;
    const warning = (r: RegistryResults): string | undefined => loadFailures(load(r));
    const latency = (which: string, value: (l: LoadResult) => number): RegistryMetric => ({
      name: `${name} ${which} latency`,
      unit: 'ms',
      better: 'lower',
      digits: 2,
      value: (r) => {
        const l = load(r);
        return l === undefined ? undefined : value(l);
      },
      warning,
      note,
    });
    return [
      { name, unit: 'req/s', better: 'higher', digits: 0, value: (r) => load(r)?.requestsPerSecond, warning, note },
      latency('p50', (l) => l.p50Ms),
      latency('p99', (l) => l.p99Ms),
      {
        name: `${name} filesystem ops`,
        unit: 'ops/req',
        better: 'lower',
        digits: 1,
        value: (r) => r.slowVolume?.[kind]?.fsOpsPerRequest,
        note,
      },
    ];
  });
}

/** One metric measured on each registry: what both tables' rows hold. */
export interface Measured {
  readonly values: Partial<Record<RegistryId, number>>;
  /** Oriented so that > 1 means Berth is better: Berth/other for throughput, other/Berth for latency, CPU, memory. */
  readonly ratios: { readonly vsDist3?: number; readonly vsDist28?: number };
  /** `<registry id>: <why>` for each value measured while requests (or cache operations) failed. */
  readonly warnings: readonly string[];
}

export interface Row extends Measured {
  readonly metric: string;
  readonly unit: string;
  readonly better: Better;
  readonly target?: string;
  /** Whether the informative target is met; absent when the row has none or a value is missing. */
  readonly targetMet?: boolean;
}

/**
 * Orients a comparison so that > 1 favours Berth. For memory growth near zero the quotient is meaningless,
 * so a floor of 1 MiB (and of 0.001 for other units) keeps it finite.
 */
export function ratio(
  berth: number | undefined,
  other: number | undefined,
  better: Better,
  unit: string,
): number | undefined {
  if (berth === undefined || other === undefined || !Number.isFinite(berth) || !Number.isFinite(other))
    return undefined;
  const floor = unit === 'MiB' ? 1 : 1e-3;
  return better === 'higher' ? berth / Math.max(other, floor) : Math.max(other, floor) / Math.max(berth, floor);
}

/** The text of a target's ratio parts. */
export function ratioTargetParts(t: RatioTarget): string[] {
  const parts: string[] = [];
  if (t.dist3 !== undefined) parts.push(`≥${t.dist3}× D3`);
  if (t.dist28 !== undefined) parts.push(`≥${t.dist28}× D2.8`);
  return parts;
}

function targetText(t: Target | undefined): string | undefined {
  if (t === undefined) return undefined;
  const parts = ratioTargetParts(t);
  if (t.berthMax !== undefined) parts.push(`Berth < ${t.berthMax}`);
  return parts.join(', ');
}

/** Whether each ratio part of a target is met; undefined where its ratio is missing. */
export function ratioChecks(t: RatioTarget, ratios: Measured['ratios']): (boolean | undefined)[] {
  const checks: (boolean | undefined)[] = [];
  if (t.dist3 !== undefined) checks.push(ratios.vsDist3 === undefined ? undefined : ratios.vsDist3 >= t.dist3);
  if (t.dist28 !== undefined) checks.push(ratios.vsDist28 === undefined ? undefined : ratios.vsDist28 >= t.dist28);
  return checks;
}

/** Met only when every part could be checked; with a registry left out, the target stays open. */
export function allMet(checks: readonly (boolean | undefined)[]): boolean | undefined {
  return checks.includes(undefined) ? undefined : checks.every((c) => c === true);
}

/**
 * One metric measured on each registry: its values, the warnings of the runs they come from, and Berth's ratios
 * against both Distributions (none when `withRatios` is false).
 */
export function measure<R>(
  d: MetricDef<R, unknown>,
  results: Readonly<Partial<Record<RegistryId, R>>>,
  withRatios: (values: Partial<Record<RegistryId, number>>) => boolean = () => true,
): Measured {
  const values: Partial<Record<RegistryId, number>> = {};
  const warnings: string[] = [];
  for (const [id, r] of Object.entries(results) as [RegistryId, R][]) {
    const v = d.value(r);
    if (v !== undefined) values[id] = v;
    const w = d.warning?.(r);
    if (w !== undefined) warnings.push(`${id}: ${w}`);
  }
  const measurable = withRatios(values);
  const vsDist3 = measurable ? ratio(values.berth, values.dist3, d.better, d.unit) : undefined;
  const vsDist28 = measurable ? ratio(values.berth, values.dist28, d.better, d.unit) : undefined;
  return {
    values,
    ratios: { ...(vsDist3 === undefined ? {} : { vsDist3 }), ...(vsDist28 === undefined ? {} : { vsDist28 }) },
    warnings,
  };
}

export function buildRows(
  defs: readonly RegistryMetric[],
  results: Readonly<Partial<Record<RegistryId, RegistryResults>>>,
): Row[] {
  return defs.map((d) => {
    const { values, ratios, warnings } = measure(d, results);
    const t = d.target;
    let targetMet: boolean | undefined;
    if (t !== undefined) {
      const checks = ratioChecks(t, ratios);
      if (t.berthMax !== undefined) checks.push(values.berth === undefined ? undefined : values.berth < t.berthMax);
      targetMet = allMet(checks);
    }
    const target = targetText(t);
    return {
      metric: d.name,
      unit: d.unit,
      better: d.better,
      values,
      ratios,
      ...(target === undefined ? {} : { target }),
      ...(targetMet === undefined ? {} : { targetMet }),
      warnings,
    };
  });
}

export function fmt(v: number | undefined, digits: number): string {
  if (v === undefined || !Number.isFinite(v)) return '—';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtRatio(r: number | undefined, min: number | undefined): string {
  if (r === undefined) return '—';
  const text = `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
  if (min === undefined) return text;
  return `${text} ${r >= min ? '✓' : '✗'}`;
}

/** The table's columns from the registries on: each registry's value, Berth's two ratios, the target. */
export function comparisonHeader(labels: Readonly<Record<RegistryId, string>>): string {
  return `${labels.berth} | ${labels.dist3} | ${labels.dist28} | Berth vs D3 | Berth vs D2.8 | target |`;
}

/** A row's cells under comparisonHeader: ⚠ marks a value measured with failures, ✓/✗ a ratio against its target. */
export function comparisonCells(row: Measured, digits: number, t: RatioTarget | undefined, target: string): string {
  const cell = (id: RegistryId): string =>
    `${fmt(row.values[id], digits)}${row.warnings.some((w) => w.startsWith(`${id}:`)) ? ' ⚠' : ''}`;
  return (
    `${cell('berth')} | ${cell('dist3')} | ${cell('dist28')} | ` +
    `${fmtRatio(row.ratios.vsDist3, t?.dist3)} | ${fmtRatio(row.ratios.vsDist28, t?.dist28)} | ${target} |`
  );
}

/**
 * The markdown table; ✓/✗ mark ratios against their target, ⚠ marks values measured with failed requests, and [n]
 * beside a row points to the note of that number under the table.
 */
export function markdownTable(
  defs: readonly RegistryMetric[],
  rows: readonly Row[],
  labels: Readonly<Record<RegistryId, string>>,
): string {
  const lines = [`| metric | unit | ${comparisonHeader(labels)}`, '|---|---|--:|--:|--:|--:|--:|---|'];
  const notes: string[] = [];
  rows.forEach((row, i) => {
    const d = defs[i];
    if (d === undefined) return;
    let target = row.target ?? '';
    if (d.target?.berthMax !== undefined && row.targetMet !== undefined) target += row.targetMet ? ' ✓' : ' ✗';
    let mark = '';
    if (d.note !== undefined) {
      if (!notes.includes(d.note)) notes.push(d.note);
      mark = ` [${notes.indexOf(d.note) + 1}]`;
    }
    lines.push(`| ${row.metric}${mark} | ${row.unit} | ${comparisonCells(row, d.digits, d.target, target)}`);
  });
  lines.push(...notes.flatMap((n, i) => ['', `[${i + 1}] ${n}`]));
  return lines.join('\n');
}
