// When the filesystem driver may run a kind of operation (stat, read) synchronously. On a local disk a stat of a
// cached entry takes a microsecond or two on the event loop, where the thread pool's round trip costs tens, and a
// read from the page cache lands in a buffer still warm in this core's cache when it goes out on the socket. But a
// synchronous call that waits on a disk stops every request, the health endpoints and the Redis heartbeats with it,
// so three guards keep the event loop from ever waiting long:
// - Where: only on filesystems known to be local (see `eventLoopAllowed`): never on NFS, CIFS, FUSE, Ceph and the
//   like, whose calls are network round trips or can hang for as long as a server does.
// - How fast: while the operations' moving average stays within a budget; once it does not, they go to the thread
//   pool for a while. A moving average, not a single sample: on a busy machine the scheduler preempts the process in
//   the middle of an operation now and then, and one such pause says nothing about the disk. A single operation ten
//   times over the budget, or a run of slow ones, still sends them to the thread pool at once.
// - How much: at most `turnBudgetMs` of synchronous calls per turn of the event loop; the rest of the turn's calls go
//   to the thread pool, so a burst of requests on a disk that is only a little slow cannot serialise behind it.

export interface SyncModeOptions {
  /** The moving average (ms) above which operations leave the event loop. */
  readonly budgetMs?: number;
  /** How long they stay on the thread pool before the event loop is tried again. */
  readonly asyncForMs?: number;
  /** Weight of the newest sample in the average. */
  readonly weight?: number;
  /** Synchronous time (ms) allowed in one turn of the event loop. */
  readonly turnBudgetMs?: number;
  readonly now?: () => number;
  /** False: never synchronous (everything on the thread pool) until `allow` says otherwise. */
  readonly allowed?: boolean;
}

export class SyncMode {
  readonly #budgetMs: number;
  readonly #asyncForMs: number;
  readonly #weight: number;
  readonly #turnBudgetMs: number;
  readonly #now: () => number;
  #allowed: boolean;
  #averageMs = 0;
  #asyncUntil = Number.NEGATIVE_INFINITY;
  /** Synchronous time spent in the current turn of the event loop. */
  #turnMs = 0;
  #turnEnds = false;

  constructor(options: SyncModeOptions = {}) {
    this.#budgetMs = options.budgetMs ?? 1;
    this.#asyncForMs = options.asyncForMs ?? 10_000;
    this.#weight = options.weight ?? 0.1;
    this.#turnBudgetMs = options.turnBudgetMs ?? 2;
    this.#now = options.now ?? (() => performance.now());
    this.#allowed = options.allowed ?? true;
  }

  /** Lets operations run synchronously (subject to the budgets), or forbids it. */
  allow(allowed: boolean): void {
    this.#allowed = allowed;
  }

  /** Whether the next operation may run on the event loop (through `run`). */
  get synchronous(): boolean {
    return this.#allowed && this.#turnMs < this.#turnBudgetMs && this.#now() >= this.#asyncUntil;
  }

  /** Runs a synchronous operation and judges the disk by how long it took, whether it returned or threw. */
  run<T>(operation: () => T): T {
    const started = this.#now();
    try {
      return operation();
    } finally {
      this.#took(this.#now() - started);
    }
  }

  #took(ms: number): void {
    this.#turnMs += ms;
    if (!this.#turnEnds) {
      this.#turnEnds = true;
      setImmediate(() => {
        this.#turnMs = 0;
        this.#turnEnds = false;
      });
    }
    this.#averageMs += (ms - this.#averageMs) * this.#weight;
    if (this.#averageMs > this.#budgetMs) {
      this.#asyncUntil = this.#now() + this.#asyncForMs;
      // Back on the event loop, the disk is judged afresh.
      this.#averageMs = 0;
    }
  }
}

/** Magic numbers (statfs(2) f_type) of filesystems whose calls are served by this machine's kernel and disks. */
const LOCAL_FILESYSTEMS: Readonly<Record<number, string>> = {
  0xef53: 'ext4',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
  0x01021994: 'tmpfs',
  0x858458f6: 'ramfs',
  0x794c7630: 'overlay',
  0x2fc12fc1: 'zfs',
  0xf2f52010: 'f2fs',
};

/** Some that are not, by name, for the log line that says why the event loop is not used. */
const REMOTE_FILESYSTEMS: Readonly<Record<number, string>> = {
  0x6969: 'nfs',
  0x65735546: 'fuse',
  0xff534d42: 'cifs',
  0xfe534d42: 'smb2',
  0x517b: 'smb',
  0x00c36400: 'ceph',
  0x01021997: '9p',
  0x5346414f: 'afs',
  0x0bd00bd0: 'lustre',
  0x01161970: 'gfs2',
  0x7461636f: 'ocfs2',
};

/** The name of a filesystem type, and whether it is one whose calls may run on the event loop. */
export function eventLoopAllowed(type: number): { readonly filesystem: string; readonly local: boolean } {
  const local = LOCAL_FILESYSTEMS[type];
  if (local !== undefined) return { filesystem: local, local: true };
  return { filesystem: REMOTE_FILESYSTEMS[type] ?? `0x${type.toString(16)}`, local: false };
}
