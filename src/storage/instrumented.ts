// A driver wrapper that measures storage: the time of every action (Distribution 3's
// registry_storage_action_seconds{driver,action}, whose _count is the number of operations), bytes pushed into
// uploads and pulled from the blob store, and upload writes in progress. Answers and errors pass through unchanged.
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream';
import { Counter, Gauge, type Registry } from 'prom-client';
import { AggregatedHistogram } from '../metrics/aggregated.js';
import type { FileInfo, FileWriter, PositionalFile, ReadOptions, RedirectOptions, StorageDriver } from './driver.js';
import { ROOT } from './paths.js';

export const STORAGE_ACTIONS = [
  'GetContent',
  'PutContent',
  'Reader',
  'Writer',
  'Stat',
  'List',
  'Move',
  'Delete',
] as const;
export type StorageAction = (typeof STORAGE_ACTIONS)[number];

export interface StorageMetrics {
  readonly actions: AggregatedHistogram<'driver' | 'action'>;
  /** Bytes committed into upload sessions. */
  readonly pushed: Counter<'driver'>;
  /** Bytes read out of the blob store (layers, configs and manifests). */
  readonly pulled: Counter<'driver'>;
  /** Upload writers open now: chunks being received. */
  readonly uploads: Gauge<'driver'>;
}

function existing<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** The storage metrics in `registry` (created once per registry). */
export function storageMetrics(registry: Registry): StorageMetrics {
  return {
    actions: existing(
      registry,
      'registry_storage_action_seconds',
      () =>
        new AggregatedHistogram({
          name: 'registry_storage_action_seconds',
          help: 'Time of storage driver actions, by driver and action.',
          labelNames: ['driver', 'action'] as const,
          buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
          registers: [registry],
        }),
    ),
    pushed: existing(
      registry,
      'registry_storage_bytes_pushed_total',
      () =>
        new Counter({
          name: 'registry_storage_bytes_pushed_total',
          help: 'Bytes committed into blob uploads.',
          labelNames: ['driver'] as const,
          registers: [registry],
        }),
    ),
    pulled: existing(
      registry,
      'registry_storage_bytes_pulled_total',
      () =>
        new Counter({
          name: 'registry_storage_bytes_pulled_total',
          help: 'Bytes read from the blob store (layers, configs and manifests).',
          labelNames: ['driver'] as const,
          registers: [registry],
        }),
    ),
    uploads: existing(
      registry,
      'registry_storage_uploads_in_progress',
      () =>
        new Gauge({
          name: 'registry_storage_uploads_in_progress',
          help: 'Blob upload writes in progress (chunks being received into storage).',
          labelNames: ['driver'] as const,
          registers: [registry],
        }),
    ),
  };
}

const BLOB_DATA = new RegExp(`^${ROOT}/blobs/[^/]+/[^/]+/[^/]+/data$`);
const UPLOAD_DATA = /\/_uploads\/[^/]+\/data$/;

/** Counts bytes that flow through, without changing them. */
class ByteCounter extends Transform {
  readonly #count: (n: number) => void;

  constructor(count: (n: number) => void) {
    // As large as the drivers' read chunks, so counting adds no extra backpressure round per chunk.
    super({ highWaterMark: 1 << 20 });
    this.#count = count;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#count(chunk.length);
    callback(null, chunk);
  }
}

export class InstrumentedDriver implements StorageDriver {
  readonly name: string;
  readonly #inner: StorageDriver;
  readonly #metrics: StorageMetrics;

  constructor(inner: StorageDriver, registry: Registry) {
    this.#inner = inner;
    this.name = inner.name;
    this.#metrics = storageMetrics(registry);
    const driver = { driver: inner.name };
    this.#metrics.pushed.inc(driver, 0);
    this.#metrics.pulled.inc(driver, 0);
    this.#metrics.uploads.set(driver, 0);
    for (const action of STORAGE_ACTIONS) this.#metrics.actions.series([this.name, action]);
  }

  /** The wrapped driver. */
  get inner(): StorageDriver {
    return this.#inner;
  }

  async #timed<T>(action: StorageAction, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await run();
    } finally {
      this.#metrics.actions.record([this.name, action], (performance.now() - started) / 1000);
    }
  }

  async getContent(path: string): Promise<Buffer> {
    const content = await this.#timed('GetContent', () => this.#inner.getContent(path));
    if (BLOB_DATA.test(path)) this.#metrics.pulled.inc({ driver: this.name }, content.length);
    return content;
  }

  putContent(path: string, content: Uint8Array): Promise<void> {
    return this.#timed('PutContent', () => this.#inner.putContent(path, content));
  }

  async reader(path: string, options?: ReadOptions): Promise<Readable> {
    const stream = await this.#timed('Reader', () => this.#inner.reader(path, options));
    if (!BLOB_DATA.test(path)) return stream;
    const counter = new ByteCounter((n) => this.#metrics.pulled.inc({ driver: this.name }, n));
    // Destroying the returned stream (a client that leaves) destroys the driver's stream too.
    return pipeline(stream, counter, () => undefined);
  }

  /** Present exactly when the wrapped driver has it. */
  get open(): ((path: string) => Promise<PositionalFile>) | undefined {
    const open = this.#inner.open?.bind(this.#inner);
    if (open === undefined) return undefined;
    return async (path: string): Promise<PositionalFile> => {
      const file = await this.#timed('Reader', () => open(path));
      if (!BLOB_DATA.test(path)) return file;
      const driver = { driver: this.name };
      return {
        size: file.size,
        read: async (buffer, length, position) => {
          const n = await file.read(buffer, length, position);
          this.#metrics.pulled.inc(driver, n);
          return n;
        },
        close: () => file.close(),
      };
    };
  }

  /** Present exactly when the wrapped driver has it; signing a URL is local work, so it is not timed as an action. */
  get redirectURL(): ((path: string, options: RedirectOptions) => Promise<string | undefined>) | undefined {
    return this.#inner.redirectURL?.bind(this.#inner);
  }

  /** Present exactly when the wrapped driver has it (upload purging and garbage collection call it). */
  get abortIncomplete(): ((olderThan: Date, dryRun: boolean) => Promise<number>) | undefined {
    return this.#inner.abortIncomplete?.bind(this.#inner);
  }

  async writer(path: string, append: boolean): Promise<FileWriter> {
    const inner = await this.#timed('Writer', () => this.#inner.writer(path, append));
    if (!UPLOAD_DATA.test(path)) return inner;
    const driver = { driver: this.name };
    const initial = inner.size();
    let open = true;
    this.#metrics.uploads.inc(driver);
    const finish = (): void => {
      if (!open) return;
      open = false;
      this.#metrics.uploads.dec(driver);
    };
    return {
      stream: inner.stream,
      size: () => inner.size(),
      commit: async () => {
        try {
          const written = inner.size() - initial;
          await inner.commit();
          this.#metrics.pushed.inc(driver, Math.max(0, written));
        } finally {
          finish();
        }
      },
      cancel: async () => {
        try {
          await inner.cancel();
        } finally {
          finish();
        }
      },
    };
  }

  stat(path: string): Promise<FileInfo> {
    return this.#timed('Stat', () => this.#inner.stat(path));
  }

  list(path: string): Promise<string[]> {
    return this.#timed('List', () => this.#inner.list(path));
  }

  move(source: string, destination: string): Promise<void> {
    return this.#timed('Move', () => this.#inner.move(source, destination));
  }

  delete(path: string): Promise<void> {
    return this.#timed('Delete', () => this.#inner.delete(path));
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
