// Turns per-registry measurements into the comparison table: values, ratios oriented so that > 1 favours Berth,
// and the (informative) targets next to them.
import type { LoadResult } from './load.js';
import type { RegistryId } from './registries.js';

export const LOAD_KINDS = ['headBlob', 'getManifest', 'getBase'] as const;
export type LoadKind = (typeof LOAD_KINDS)[number];

export const LOAD_LABELS: Readonly<Record<LoadKind, string>> = {
  headBlob: 'HEAD blob',
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

export interface RegistryResults {
  pushMonolithic?: TransferResult;
  pushChunked?: TransferResult;
  pull?: TransferResult;
  load: Partial<Record<LoadKind, LoadResult>>;
  memory?: MemoryResult;
}

export type Better = 'higher' | 'lower';

interface Target {
  /** Minimum ratio (oriented, > 1 favours Berth) against Distribution 3 and 2.8. */
  readonly dist3?: number;
  readonly dist28?: number;
  /** An absolute ceiling on Berth's own value. */
  readonly berthMax?: number;
}

interface MetricDef {
  readonly name: string;
  readonly unit: string;
  readonly better: Better;
  readonly digits: number;
  readonly value: (r: RegistryResults) => number | undefined;
  /** Why a value is suspect (errors during its run), if it is. */
  readonly warning?: (r: RegistryResults) => string | undefined;
  readonly target?: Target;
}

function loadWarning(kind: LoadKind): (r: RegistryResults) => string | undefined {
  return (r) => {
    const l = r.load[kind];
    if (l === undefined) return undefined;
    const bad = l.non2xx + l.errors + l.timeouts;
    return bad > 0 ? `${l.non2xx} non-2xx, ${l.errors} errors, ${l.timeouts} timeouts` : undefined;
  };
}

export function metricDefs(sizes: { blobMiB: number; chunkMiB: number; bigMiB: number }): MetricDef[] {
  const defs: MetricDef[] = [
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
    },
    {
      name: `pull ${sizes.blobMiB} MiB`,
      unit: 'MiB/s',
      better: 'higher',
      digits: 1,
      value: (r) => r.pull?.mibPerSecond,
      target: { dist3: 1, dist28: 1 },
    },
    {
      name: 'server CPU, monolithic push',
      unit: 'CPU s/GiB',
      better: 'lower',
      digits: 2,
      value: (r) => r.pushMonolithic?.serverCpuSecondsPerGiB,
    },
    {
      name: 'server CPU, chunked push',
      unit: 'CPU s/GiB',
      better: 'lower',
      digits: 2,
      value: (r) => r.pushChunked?.serverCpuSecondsPerGiB,
    },
    {
      name: 'server CPU, pull',
      unit: 'CPU s/GiB',
      better: 'lower',
      digits: 2,
      value: (r) => r.pull?.serverCpuSecondsPerGiB,
    },
  ];
  for (const kind of LOAD_KINDS) {
    const label = LOAD_LABELS[kind];
    const warning = loadWarning(kind);
    const rpsTarget: Target | undefined = kind === 'getBase' ? undefined : { dist3: 2, dist28: 5 };
    defs.push(
      {
        name: `${label}`,
        unit: 'req/s',
        better: 'higher',
        digits: 0,
        value: (r) => r.load[kind]?.requestsPerSecond,
        warning,
        ...(rpsTarget === undefined ? {} : { target: rpsTarget }),
      },
      {
        name: `${label} p99 latency`,
        unit: 'ms',
        better: 'lower',
        digits: 2,
        value: (r) => r.load[kind]?.p99Ms,
        warning,
      },
      {
        name: `${label} server CPU`,
        unit: 'µs/req',
        better: 'lower',
        digits: 1,
        value: (r) => r.load[kind]?.serverCpuMicrosPerRequest,
      },
    );
  }
  defs.push(
    {
      name: 'RSS baseline (before big push)',
      unit: 'MiB',
      better: 'lower',
      digits: 1,
      value: (r) => r.memory?.baselineMiB,
    },
    {
      name: `RSS peak, ${sizes.bigMiB} MiB push`,
      unit: 'MiB',
      better: 'lower',
      digits: 1,
      value: (r) => r.memory?.pushPeakMiB,
    },
    {
      name: `RSS growth, ${sizes.bigMiB} MiB push`,
      unit: 'MiB',
      better: 'lower',
      digits: 1,
      value: (r) => r.memory?.pushGrowthMiB,
      target: { berthMax: 100 },
    },
    {
      name: `RSS peak, ${sizes.bigMiB} MiB pull`,
      unit: 'MiB',
      better: 'lower',
      digits: 1,
      value: (r) => r.memory?.pullPeakMiB,
    },
    {
      name: `RSS growth, ${sizes.bigMiB} MiB pull`,
      unit: 'MiB',
      better: 'lower',
      digits: 1,
      value: (r) => r.memory?.pullGrowthMiB,
    },
  );
  return defs;
}

export interface Row {
  readonly metric: string;
  readonly unit: string;
  readonly better: Better;
  readonly values: Partial<Record<RegistryId, number>>;
  /** Oriented so that > 1 means Berth is better: Berth/other for throughput, other/Berth for latency, CPU, memory. */
  readonly ratios: { readonly vsDist3?: number; readonly vsDist28?: number };
  readonly target?: string;
  /** Whether the informative target is met; absent when the row has none or a value is missing. */
  readonly targetMet?: boolean;
  readonly warnings: readonly string[];
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

function targetText(t: Target | undefined): string | undefined {
  if (t === undefined) return undefined;
  const parts: string[] = [];
  if (t.dist3 !== undefined) parts.push(`≥${t.dist3}× D3`);
  if (t.dist28 !== undefined) parts.push(`≥${t.dist28}× D2.8`);
  if (t.berthMax !== undefined) parts.push(`Berth < ${t.berthMax}`);
  return parts.join(', ');
}

export function buildRows(
  defs: readonly MetricDef[],
  results: Readonly<Partial<Record<RegistryId, RegistryResults>>>,
): Row[] {
  return defs.map((d) => {
    const values: Partial<Record<RegistryId, number>> = {};
    const warnings: string[] = [];
    for (const [id, r] of Object.entries(results) as [RegistryId, RegistryResults][]) {
      const v = d.value(r);
      if (v !== undefined) values[id] = v;
      const w = d.warning?.(r);
      if (w !== undefined) warnings.push(`${id}: ${w}`);
    }
    const vsDist3 = ratio(values.berth, values.dist3, d.better, d.unit);
    const vsDist28 = ratio(values.berth, values.dist28, d.better, d.unit);
    let targetMet: boolean | undefined;
    const t = d.target;
    if (t !== undefined) {
      const checks: (boolean | undefined)[] = [];
      if (t.dist3 !== undefined) checks.push(vsDist3 === undefined ? undefined : vsDist3 >= t.dist3);
      if (t.dist28 !== undefined) checks.push(vsDist28 === undefined ? undefined : vsDist28 >= t.dist28);
      if (t.berthMax !== undefined) checks.push(values.berth === undefined ? undefined : values.berth < t.berthMax);
      if (!checks.includes(undefined)) targetMet = checks.every((c) => c === true);
    }
    const target = targetText(t);
    return {
      metric: d.name,
      unit: d.unit,
      better: d.better,
      values,
      ratios: { ...(vsDist3 === undefined ? {} : { vsDist3 }), ...(vsDist28 === undefined ? {} : { vsDist28 }) },
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

/** The markdown table; ✓/✗ mark ratios against their target, ⚠ marks values measured with failed requests. */
export function markdownTable(
  defs: readonly MetricDef[],
  rows: readonly Row[],
  labels: Readonly<Record<RegistryId, string>>,
): string {
  const lines = [
    `| metric | unit | ${labels.berth} | ${labels.dist3} | ${labels.dist28} | Berth vs D3 | Berth vs D2.8 | target |`,
    '|---|---|--:|--:|--:|--:|--:|---|',
  ];
  rows.forEach((row, i) => {
    const d = defs[i];
    if (d === undefined) return;
    const cell = (id: RegistryId): string =>
      `${fmt(row.values[id], d.digits)}${row.warnings.some((w) => w.startsWith(`${id}:`)) ? ' ⚠' : ''}`;
    let target = row.target ?? '';
    if (d.target?.berthMax !== undefined && row.targetMet !== undefined) target += row.targetMet ? ' ✓' : ' ✗';
    lines.push(
      `| ${row.metric} | ${row.unit} | ${cell('berth')} | ${cell('dist3')} | ${cell('dist28')} | ` +
        `${fmtRatio(row.ratios.vsDist3, d.target?.dist3)} | ${fmtRatio(row.ratios.vsDist28, d.target?.dist28)} | ${target} |`,
    );
  });
  return lines.join('\n');
}
