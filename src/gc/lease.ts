// The lease that lets one replica of a shared store collect garbage at a time: a small JSON file in storage itself,
// so it works on every driver (filesystem, inmemory, S3, GCS, Azure) with no Redis and no Kubernetes API.
//
// The driver interface has no compare-and-swap, so taking the lease is "read, write if free, wait, read again":
// whoever's record is there after the settle delay holds it. Writes replace the file atomically and every backend
// Berth supports reads its own and others' writes back at once (S3, GCS and Azure are strongly consistent), so two
// replicas that race both see the last writer's record, and only that one goes on.
//
// What remains: a rival that read the lease as free, then stalled for longer than the settle delay (a long pause,
// a slow request) before writing, overwrites a lease already confirmed. The first holder notices at its next renewal
// (the record is no longer its own) and aborts its run; until then two collectors may run at once. That is wasted
// work, never lost data: the collector sweeps only what is unreferenced and older than the grace period, re-checks
// each candidate just before deleting it, and treats "already gone" as done, so two collectors delete the same old,
// unreferenced things. Expiry is compared with this machine's clock, so clocks must agree to well within the TTL.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { isNotFound, type StorageDriver } from '../storage/driver.js';

/** Outside the registry's tree (`/docker/registry/v2`), so nothing that walks repositories or blobs meets it. */
export const GC_LEASE_PATH = '/_gc/lease';

/** How the last run that held the lease ended: replicas skip their turn when one finished within the interval. */
export interface LastRun {
  readonly holder: string;
  readonly token: number;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly result: string;
}

/** What the lease file holds. Times are epoch milliseconds. */
export interface LeaseRecord {
  readonly holder: string;
  /** Fencing token: one more than the previous holder's, so runs are numbered in the order they took the lease. */
  readonly token: number;
  /** Tells apart two acquisitions that computed the same token in a race. */
  readonly nonce: string;
  readonly acquiredAt: number;
  /** The lease is free from then on; 0 once released. */
  readonly expiresAt: number;
  readonly lastRun?: LastRun;
}

export interface LeaseOptions {
  readonly driver: StorageDriver;
  /** Who this replica is: in logs and in the file. Defaults to host name, pid and a random suffix. */
  readonly holder?: string;
  /** How long a lease lasts without renewal: how long a crashed holder keeps others waiting. */
  readonly ttlMs: number;
  /** How long a writer waits before reading its record back; bounds how late a racing rival's write may land. */
  readonly settleMs: number;
  readonly path?: string;
  /** The clock (tests). */
  readonly now?: () => number;
}

export type SkipReason = 'leased' | 'race' | 'recent';

export type Acquisition =
  | { readonly acquired: true; readonly record: LeaseRecord }
  | { readonly acquired: false; readonly reason: SkipReason; readonly record: LeaseRecord | undefined };

export function defaultHolder(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

const same = (a: LeaseRecord | undefined, b: LeaseRecord | undefined): boolean =>
  a !== undefined && b !== undefined && a.holder === b.holder && a.token === b.token && a.nonce === b.nonce;

function parseRecord(content: Buffer): LeaseRecord | undefined {
  let json: unknown;
  try {
    json = JSON.parse(content.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const r = json as Record<string, unknown>;
  if (
    typeof r['holder'] !== 'string' ||
    typeof r['nonce'] !== 'string' ||
    !Number.isSafeInteger(r['token']) ||
    typeof r['acquiredAt'] !== 'number' ||
    typeof r['expiresAt'] !== 'number'
  )
    return undefined;
  return json as LeaseRecord;
}

export class GcLease {
  readonly holder: string;
  readonly ttlMs: number;
  readonly #driver: StorageDriver;
  readonly #settleMs: number;
  readonly #path: string;
  readonly #now: () => number;
  #held: LeaseRecord | undefined;

  constructor(options: LeaseOptions) {
    this.#driver = options.driver;
    this.holder = options.holder ?? defaultHolder();
    this.ttlMs = options.ttlMs;
    this.#settleMs = options.settleMs;
    this.#path = options.path ?? GC_LEASE_PATH;
    this.#now = options.now ?? Date.now;
  }

  /** The record this replica holds, while it believes it holds the lease. */
  get held(): LeaseRecord | undefined {
    return this.#held;
  }

  /** The lease file as it is now; undefined when there is none, or it is unreadable (then it counts as free). */
  async read(): Promise<LeaseRecord | undefined> {
    try {
      return parseRecord(await this.#driver.getContent(this.#path));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async #write(record: LeaseRecord): Promise<void> {
    await this.#driver.putContent(this.#path, Buffer.from(JSON.stringify(record)));
  }

  /**
   * Takes the lease if it is free (absent, released or expired) and, with `skipWithinMs`, no run finished that
   * recently; resolves acquired only once the record read back after the settle delay is this one. Throws on
   * storage failures, and with the signal's reason when aborted during the settle delay (the record written is
   * released first).
   */
  async acquire(options: { skipWithinMs?: number; signal?: AbortSignal } = {}): Promise<Acquisition> {
    const current = await this.read();
    const now = this.#now();
    if (current !== undefined && current.expiresAt > now && !same(current, this.#held))
      return { acquired: false, reason: 'leased', record: current };
    const last = current?.lastRun;
    if (
      options.skipWithinMs !== undefined &&
      last !== undefined &&
      (last.result === 'success' || last.result === 'dry_run') &&
      now - last.finishedAt < options.skipWithinMs
    )
      return { acquired: false, reason: 'recent', record: current };
    const mine: LeaseRecord = {
      holder: this.holder,
      token: (current?.token ?? 0) + 1,
      nonce: randomBytes(8).toString('hex'),
      acquiredAt: now,
      expiresAt: now + this.ttlMs,
      ...(last === undefined ? {} : { lastRun: last }),
    };
    await this.#write(mine);
    try {
      await sleep(this.#settleMs, undefined, options.signal === undefined ? {} : { signal: options.signal });
    } catch (err) {
      // Stopped while settling: leave the lease free at once rather than at its expiry.
      if (same(await this.read(), mine)) await this.#write({ ...mine, expiresAt: 0 });
      throw options.signal?.aborted === true ? (options.signal.reason as unknown) : err;
    }
    const confirmed = await this.read();
    if (!same(confirmed, mine) || this.#now() >= mine.expiresAt)
      return { acquired: false, reason: 'race', record: confirmed };
    this.#held = mine;
    return { acquired: true, record: mine };
  }

  /**
   * Extends the lease by the TTL from now. Resolves false, and forgets the lease, when it is no longer this
   * replica's: expired before the renewal, or the file holds another record. The holder must then stop.
   */
  async renew(): Promise<boolean> {
    const held = this.#held;
    if (held === undefined) return false;
    if (this.#now() >= held.expiresAt) {
      this.#held = undefined;
      return false;
    }
    const current = await this.read();
    if (!same(current, held)) {
      this.#held = undefined;
      return false;
    }
    const renewed: LeaseRecord = { ...held, expiresAt: this.#now() + this.ttlMs };
    await this.#write(renewed);
    this.#held = renewed;
    return true;
  }

  /**
   * Renews the lease every third of its TTL until `stop`, which waits for a renewal in flight (so none writes the
   * lease back after a release). `lost` is told once the lease is no longer this holder's; `failed`, of a renewal
   * that could not reach storage (the next tick tries again; if none gets through, the lease expires and the next
   * renewal or the release finds that out).
   */
  keepRenewed(handlers: { lost: () => void; failed: (err: unknown) => void }): { stop(): Promise<void> } {
    let renewing: Promise<void> | undefined;
    let lost = false;
    const timer = setInterval(() => {
      renewing ??= this.renew()
        .then((ok) => {
          if (ok || lost) return;
          lost = true;
          handlers.lost();
        }, handlers.failed)
        .finally(() => (renewing = undefined));
    }, this.ttlMs / 3);
    timer.unref();
    return {
      stop: async () => {
        clearInterval(timer);
        await renewing;
      },
    };
  }

  /**
   * Frees the lease (expiry 0), keeping the token so the next holder's is higher, and records how the run ended.
   * Leaves the file alone, and resolves false, when another replica's record is there.
   */
  async release(lastRun?: LastRun): Promise<boolean> {
    const held = this.#held;
    this.#held = undefined;
    if (held === undefined) return false;
    const current = await this.read();
    if (!same(current, held)) return false;
    await this.#write({ ...held, expiresAt: 0, ...(lastRun === undefined ? {} : { lastRun }) });
    return true;
  }
}
