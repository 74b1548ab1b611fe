// prom-client metrics for the per-request hot path. prom-client's own inc() and observe() validate and hash their
// label object on every call, which cost a small request (a HEAD answered from the cache) about a sixth of its CPU.
// These keep one plain record per combination of label values, found by a string key, and hand prom-client the
// totals when the registry is scraped: the same names, types and exposition, a fraction of the work per event.
import {
  Counter,
  Histogram,
  type LabelValues,
  type MetricObjectWithValues,
  type MetricValue,
  type MetricValueWithName,
  type Registry,
} from 'prom-client';

interface Definition<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly registers: Registry[];
}

function keyOf(values: readonly string[]): string {
  return values.length === 1 ? (values[0] ?? '') : values.join('\u0000');
}

function labelsOf<L extends string>(names: readonly L[], values: readonly string[]): LabelValues<L> {
  const labels: Partial<Record<L, string>> = {};
  names.forEach((name, i) => {
    labels[name] = values[i] ?? '';
  });
  return labels;
}

/** A counter whose increments add up in place and reach prom-client's series when it is read. */
export class AggregatedCounter<L extends string> extends Counter<L> {
  readonly #names: readonly L[];
  readonly #pending = new Map<string, { labels: LabelValues<L>; count: number }>();

  constructor(definition: Definition<L>) {
    super(definition);
    this.#names = definition.labelNames;
  }

  /** Adds `by` (default 1) for these label values, given in the order of `labelNames`; 0 creates the series. */
  add(values: readonly string[], by = 1): void {
    const key = keyOf(values);
    const entry = this.#pending.get(key);
    if (entry !== undefined) entry.count += by;
    else this.#pending.set(key, { labels: labelsOf(this.#names, values), count: by });
  }

  override async get(): Promise<MetricObjectWithValues<MetricValue<L>>> {
    for (const entry of this.#pending.values()) {
      // inc() with 0 still creates the series, so a combination seen once is exported from then on.
      this.inc(entry.labels, entry.count);
      entry.count = 0;
    }
    return super.get();
  }
}

export interface Series {
  readonly labels: Readonly<Record<string, string>>;
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/** One exported line: prom-client's own exporter reads the series' labels from `sharedLabels`. */
interface Line {
  readonly labels: Record<string, string | number>;
  readonly sharedLabels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly metricName: string;
}

/** A histogram whose observations land in per-series bucket arrays, exported as prom-client would export them. */
export class AggregatedHistogram<L extends string> extends Histogram<L> {
  readonly #name: string;
  readonly #help: string;
  readonly #names: readonly L[];
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, Series>();

  constructor(definition: Definition<L> & { readonly buckets: readonly number[] }) {
    super({ ...definition, buckets: [...definition.buckets] });
    this.#name = definition.name;
    this.#help = definition.help;
    this.#names = definition.labelNames;
    this.#bounds = [...definition.buckets].sort((a, b) => a - b);
  }

  /** Records `value` for these label values, given in the order of `labelNames`. */
  record(values: readonly string[], value: number): void {
    if (!Number.isFinite(value)) return;
    const series = this.series(values);
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] ?? Number.POSITIVE_INFINITY)) i++;
    series.counts[i] = (series.counts[i] ?? 0) + 1;
    series.sum += value;
    series.count += 1;
  }

  /** The series of these label values, created (at zero, and exported from then on) if it is new. */
  series(values: readonly string[]): Series {
    const key = keyOf(values);
    let series = this.#series.get(key);
    if (series === undefined) {
      const labels = Object.fromEntries(this.#names.map((n, i) => [n, values[i] ?? '']));
      series = { labels, counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    return series;
  }

  override reset(): void {
    // The base constructor calls reset() before this class's fields exist.
    if (#series in this) this.#series.clear();
  }

  #lines(): Line[] {
    const name = this.#name;
    const lines: Line[] = [];
    for (const s of this.#series.values()) {
      const shared = s.labels;
      let cumulative = 0;
      this.#bounds.forEach((le, i) => {
        cumulative += s.counts[i] ?? 0;
        lines.push({ labels: { le }, sharedLabels: shared, value: cumulative, metricName: `${name}_bucket` });
      });
      lines.push(
        { labels: { le: '+Inf' }, sharedLabels: shared, value: s.count, metricName: `${name}_bucket` },
        { labels: {}, sharedLabels: shared, value: s.sum, metricName: `${name}_sum` },
        { labels: {}, sharedLabels: shared, value: s.count, metricName: `${name}_count` },
      );
    }
    return lines;
  }

  /** What the registry renders as text (prom-client calls this in preference to get()). */
  async getForPromString(): Promise<{ name: string; help: string; type: 'histogram'; values: Line[] }> {
    return { name: this.#name, help: this.#help, type: 'histogram', values: this.#lines() };
  }

  override async get(): Promise<MetricObjectWithValues<MetricValueWithName<L>>> {
    const values = this.#lines().map((line): MetricValueWithName<L> => ({
      labels: { ...line.sharedLabels, ...line.labels } as LabelValues<L>,
      value: line.value,
      metricName: line.metricName,
    }));
    // The base class supplies the rest of the object (type, aggregator, collect); its own series are always empty.
    return { ...(await super.get()), values };
  }
}
