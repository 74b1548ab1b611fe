// An htpasswd file of bcrypt entries (`htpasswd -B`), re-read whenever it changes. A file that goes missing or
// turns bad while serving leaves the last good one in force, and `status()` says why for /readyz.
import { createHmac, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { watchFiles, type FileWatcher } from './watch.js';

/** A file Berth refuses, with the line at fault when there is one. */
export class HtpasswdError extends Error {
  readonly line: number | undefined;

  constructor(message: string, line?: number) {
    super(message);
    this.name = 'HtpasswdError';
    this.line = line;
  }
}

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;

/** Names the kind of a hash Berth does not take, so the message says what to do. */
function hashKind(hash: string): string {
  if (hash.startsWith('$apr1$')) return 'an Apache MD5 ($apr1$) hash';
  if (hash.startsWith('{SHA}')) return 'a SHA-1 ({SHA}) hash';
  if (/^\$[156]\$/.test(hash)) return 'a crypt(3) MD5/SHA hash';
  if (/^\$2[aby]\$/.test(hash)) return 'a malformed bcrypt hash';
  if (hash === '') return 'an empty hash';
  return 'not a bcrypt hash (plain text or DES crypt?)';
}

export interface Htpasswd {
  /** User → bcrypt hash. */
  readonly users: ReadonlyMap<string, string>;
  /** The cost most entries use: an unknown user is checked at this cost, so it takes as long as a wrong password. */
  readonly cost: number;
}

/** Parses an htpasswd file; throws HtpasswdError naming the first bad line. Blank lines and `#` comments are skipped. */
export function parseHtpasswd(text: string, source: string): Htpasswd {
  const users = new Map<string, string>();
  const costs = new Map<number, number>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HtpasswdError(`${source} line ${i + 1}: expected user:hash`, i + 1);
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    const m = BCRYPT.exec(hash);
    if (m === null) {
      throw new HtpasswdError(
        `${source} line ${i + 1} (user ${JSON.stringify(user)}): ${hashKind(hash)}; Berth takes bcrypt entries only (htpasswd -B)`,
        i + 1,
      );
    }
    if (users.has(user)) throw new HtpasswdError(`${source} line ${i + 1}: user ${JSON.stringify(user)} again`, i + 1);
    users.set(user, hash);
    const cost = Number(m[1]);
    costs.set(cost, (costs.get(cost) ?? 0) + 1);
  }
  const cost = [...costs.entries()].sort((a, b) => b[1] - a[1] || b[0] - a[0])[0]?.[0] ?? 10;
  return { users, cost };
}

/** Reads and parses an htpasswd file. */
export async function readHtpasswd(path: string): Promise<Htpasswd> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new HtpasswdError(`cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parseHtpasswd(text, path);
}

export interface HtpasswdFileOptions {
  readonly log?: Logger;
  /** How often the file is statted besides fs.watch. */
  readonly pollMs?: number;
}

interface Loaded extends Htpasswd {
  /** A hash of a random password at `cost`, checked for unknown users. */
  readonly dummy: string;
  readonly loadedAt: Date;
}

export class HtpasswdFile {
  readonly path: string;
  #current: Loaded;
  #problem: string | undefined;
  readonly #log: Logger | undefined;
  readonly #watcher: FileWatcher;
  /**
   * Credentials that checked out, keyed by an HMAC under a key of this process: clients send Basic credentials on
   * every request, and a bcrypt per request would cost more CPU than serving it. Emptied whenever the file changes.
   */
  readonly #good = new LRUCache<string, string>({ max: 1024, ttl: 5 * 60_000 });
  readonly #cacheKey = randomBytes(32);

  private constructor(path: string, loaded: Loaded, options: HtpasswdFileOptions) {
    this.path = path;
    this.#current = loaded;
    this.#log = options.log;
    this.#watcher = watchFiles(
      [path],
      () => this.reload(),
      options.pollMs === undefined ? {} : { pollMs: options.pollMs },
    );
  }

  /** Loads the file (throwing HtpasswdError when it is missing or bad) and follows its changes. */
  static async open(path: string, options: HtpasswdFileOptions = {}): Promise<HtpasswdFile> {
    return new HtpasswdFile(path, await load(path), options);
  }

  /** Re-reads the file now; a bad or missing file keeps the last good one and is reported by `status()`. */
  async reload(): Promise<void> {
    try {
      const loaded = await load(this.path);
      this.#current = loaded;
      this.#good.clear();
      if (this.#problem !== undefined) this.#log?.info({ path: this.path }, 'htpasswd file is good again');
      this.#problem = undefined;
      this.#log?.info({ path: this.path, users: loaded.users.size }, 'htpasswd file loaded');
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (message !== this.#problem) {
        this.#log?.warn({ path: this.path, err: message }, 'htpasswd file not usable; the last good one stays');
      }
      this.#problem = message;
    }
  }

  /** Undefined while the file on disk is the one in force; else why not, and since when the last good one serves. */
  status(): string | undefined {
    if (this.#problem === undefined) return undefined;
    return `${this.#problem}; serving the last good htpasswd file, loaded ${this.#current.loadedAt.toISOString()}`;
  }

  /** The users in force. */
  get users(): ReadonlyMap<string, string> {
    return this.#current.users;
  }

  /**
   * Whether the password is the user's. An unknown user is checked against a dummy hash of the usual cost, so it
   * takes as long as a wrong password; bcrypt compares in constant time.
   */
  async verify(user: string, password: string): Promise<boolean> {
    const current = this.#current;
    const key = createHmac('sha256', this.#cacheKey).update(user).update('\0').update(password).digest('base64');
    if (this.#good.get(key) === user) return true;
    const hash = current.users.get(user);
    const ok = await bcrypt.compare(password, hash ?? current.dummy);
    if (!ok || hash === undefined) return false;
    // A reload while comparing: only cache what the file in force still says.
    if (this.#current === current) this.#good.set(key, user);
    return true;
  }

  close(): void {
    this.#watcher.close();
  }
}

async function load(path: string): Promise<Loaded> {
  const parsed = await readHtpasswd(path);
  const dummy = await bcrypt.hash(randomBytes(18).toString('base64'), parsed.cost);
  return { ...parsed, dummy, loadedAt: new Date() };
}
