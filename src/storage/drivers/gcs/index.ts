// The GCS driver: files are objects under `rootdirectory` in one bucket, and directories are implied by the names
// below them. A writer holds up to `chunksize` bytes, then streams the rest into a resumable upload of a temporary
// object; commit composes it into place on the server (after the existing object, for an append), so nothing is
// visible before commit and an append never downloads what is already there.
import { randomBytes } from 'node:crypto';
import { addAbortSignal, Readable, Transform, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import {
  CRC32C,
  IdempotencyStrategy,
  Storage,
  type Bucket,
  type File,
  type GetFilesOptions,
  type StorageOptions,
} from '@google-cloud/storage';
import type { GcsStorageConfig } from '../../../config/schema.js';
import {
  checkPath,
  checkReadRange,
  StorageError,
  type FileInfo,
  type FileWriter,
  type ReadOptions,
  type RedirectOptions,
  type StorageDriver,
} from '../../driver.js';
import { forEachLimit } from '../limit.js';

/** The `storage.gcs` settings the driver acts on (defaults applied by the config schema). */
export type GcsDriverOptions = Omit<GcsStorageConfig, 'driver' | 'maxconcurrency'>;

/** Names per listing page: GCS's largest. */
const LIST_MAX = 1000;
/** Deletes of one directory's objects in flight at once (the JSON API deletes one object per request). */
const DELETE_CONCURRENCY = 16;
const CONTENT_TYPE = 'application/octet-stream';
/**
 * Retries of one request, with the SDK's exponential backoff and jitter, within a bounded time. Every call here is
 * safe to repeat (uploads go to fresh names or replace whole objects; an append's compose carries a generation
 * precondition), so all are retried, not only those the SDK can prove idempotent.
 */
const RETRY_OPTIONS = {
  autoRetry: true,
  maxRetries: 4,
  retryDelayMultiplier: 2,
  /** Seconds. */
  maxRetryDelay: 8,
  /** Seconds, across the attempts of one request. */
  totalTimeout: 60,
  idempotencyStrategy: IdempotencyStrategy.RetryAlways,
} as const;

/** What a path segment may be (src/storage/driver.ts): names that are not, such as temporaries, are never listed. */
const SEGMENT = /^[A-Za-z0-9._:-]+$/;
/** Separates a temporary object's name from the path it is written for; no path segment contains it. */
const TEMP_MARK = '~';

interface ObjectMeta {
  readonly size: number;
  readonly modTime: Date;
  readonly generation: string;
}

/** Waits before retry `attempt` (0-based): exponential, capped, with full jitter, as the SDK's retries do. */
function backoff(attempt: number): Promise<void> {
  const ceiling = Math.min(RETRY_OPTIONS.maxRetryDelay, RETRY_OPTIONS.retryDelayMultiplier ** attempt) * 1000;
  return new Promise((r) => setTimeout(r, Math.random() * ceiling));
}

/** The CRC32C in an `x-goog-hash` header (`crc32c=<base64>,md5=<base64>`), if it has one. */
function crc32cOf(header: string | null): string | undefined {
  return /(?:^|,)\s*crc32c=([A-Za-z0-9+/=]+)/.exec(header ?? '')?.[1];
}

function emptyStream(): Readable {
  return new Readable({
    read() {
      this.push(null);
    },
  });
}

/** The HTTP status of an SDK failure (ApiError.code, or a Gaxios response's status), if it has one. */
function httpStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; status?: unknown; response?: { status?: unknown } };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.status === 'number') return e.status;
  if (typeof e.response?.status === 'number') return e.response.status;
  return undefined;
}

/** The `prefixes` of a listing page's raw response. */
function pagePrefixes(raw: unknown): string[] {
  if (typeof raw !== 'object' || raw === null) return [];
  const prefixes = (raw as { prefixes?: unknown }).prefixes;
  return Array.isArray(prefixes) ? prefixes.filter((p): p is string => typeof p === 'string') : [];
}

export class GcsDriver implements StorageDriver {
  readonly name = 'gcs';
  readonly #bucket: Bucket;
  readonly #bucketName: string;
  /** Base URL of the JSON API (`…/storage/v1`) as the SDK resolved it, for the reads the driver makes itself. */
  readonly #api: string;
  /** Whether requests carry credentials (not to an emulator without a key). */
  readonly #authenticated: boolean;
  /** Object name prefix of the root directory: `` or `some/dir/`. */
  readonly #root: string;
  readonly #chunkSize: number;
  /** Where requests go, for error messages. */
  readonly #where: string;
  readonly #credentials: string;
  /** Whether redirectURL can sign: with a service-account key, against Google's own endpoint. */
  readonly #signs: boolean;

  constructor(options: GcsDriverOptions) {
    const root = options.rootdirectory.replace(/^\/+|\/+$/g, '');
    this.#root = root === '' ? '' : `${root}/`;
    this.#chunkSize = options.chunksize;
    this.#where = `bucket ${options.bucket} at ${options.endpoint === '' ? 'Google Cloud Storage' : options.endpoint}`;
    const keyGiven = options.keyfile !== '' || options.credentials !== undefined;
    this.#credentials =
      options.keyfile !== ''
        ? `the key file storage.gcs.keyfile (${options.keyfile})`
        : options.credentials !== undefined
          ? 'the key in storage.gcs.credentials'
          : 'the Application Default Credentials (workload identity), or set storage.gcs.keyfile';
    const config: StorageOptions = {
      retryOptions: { ...RETRY_OPTIONS },
      // Without a key, Application Default Credentials: GKE workload identity, the metadata server, or
      // GOOGLE_APPLICATION_CREDENTIALS.
      ...(options.keyfile === '' ? {} : { keyFilename: options.keyfile }),
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      // An emulator takes no credentials; another endpoint gets them only along with a key.
      ...(options.endpoint === '' ? {} : { apiEndpoint: options.endpoint, useAuthWithCustomEndpoint: keyGiven }),
      ...(options.useragent === '' ? {} : { userAgent: options.useragent }),
    };
    const storage = new Storage(config);
    this.#bucket = storage.bucket(options.bucket);
    this.#bucketName = options.bucket;
    // As the SDK's own requests go (STORAGE_EMULATOR_HOST included), with credentials when they carry them.
    this.#api = storage.baseUrl.replace(/\/+$/, '');
    this.#authenticated = !storage.customEndpoint || storage.useAuthWithCustomEndpoint === true;
    this.#signs = keyGiven && !storage.customEndpoint;
  }

  #key(path: string): string {
    return path === '/' ? this.#root : this.#root + path.slice(1);
  }

  /** Name prefix of a directory's children. */
  #dirPrefix(path: string): string {
    return path === '/' ? this.#root : `${this.#root}${path.slice(1)}/`;
  }

  #path(key: string): string {
    return `/${key.slice(this.#root.length)}`;
  }

  #file(key: string, generation?: string): File {
    return this.#bucket.file(key, generation === undefined ? {} : { generation });
  }

  /**
   * Turns an SDK failure into PathNotFound, or an error that says which setting to check. A listing or an upload
   * (`bucketCall`) finds no object missing, so its 404 can only mean the bucket; elsewhere GCS's message says which.
   */
  #fail(err: unknown, path: string, bucketCall = false): Error {
    const status = httpStatus(err);
    const message = err instanceof Error ? err.message : String(err);
    if (status === 404 && (bucketCall || (/bucket/i.test(message) && !/no such object/i.test(message)))) {
      return new Error(`gcs: ${this.#where}: the bucket does not exist (storage.gcs.bucket)`, { cause: err });
    }
    if (status === 404) return new StorageError('PathNotFound', path);
    if (/could not load the default credentials/i.test(message)) {
      return new Error(`gcs: ${this.#where}: found no credentials (${message}); check ${this.#credentials}`, {
        cause: err,
      });
    }
    if (status === 401 || status === 403 || /invalid_grant|unauthorized_client/i.test(message)) {
      return new Error(`gcs: ${this.#where} refused the credentials (${message}); check ${this.#credentials}`, {
        cause: err,
      });
    }
    if (err instanceof Error) {
      // Network failures name the endpoint, so that a wrong endpoint is plain in the log.
      if (!message.startsWith('gcs: ')) err.message = `gcs: ${this.#where}: ${message}`;
      return err;
    }
    return new Error(`gcs: ${this.#where}: ${message}`);
  }

  async #send<T>(path: string, call: () => Promise<T>, bucketCall = false): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw this.#fail(err, path, bucketCall);
    }
  }

  /** Size, time and generation of the object at `path`, or undefined when there is none. */
  async #meta(path: string): Promise<ObjectMeta | undefined> {
    try {
      const [meta] = await this.#file(this.#key(path)).getMetadata();
      return {
        size: Number(meta.size ?? 0),
        modTime: new Date(meta.updated ?? meta.timeCreated ?? 0),
        generation: String(meta.generation ?? ''),
      };
    } catch (err) {
      const failure = this.#fail(err, path);
      if (failure instanceof StorageError) return undefined;
      throw failure;
    }
  }

  /** Whether any object lies below the directory `path`; a listing, so a missing bucket shows here. */
  async #hasChildren(path: string): Promise<boolean> {
    const [files, , raw] = await this.#send(
      path,
      () => this.#bucket.getFiles({ prefix: this.#dirPrefix(path), maxResults: 1, autoPaginate: false }),
      true,
    );
    return files.length > 0 || pagePrefixes(raw).length > 0;
  }

  /** Deletes one object; resolves whether it was there. */
  async #deleteObject(path: string, key: string): Promise<boolean> {
    try {
      await this.#file(key).delete();
      return true;
    } catch (err) {
      const failure = this.#fail(err, path);
      if (failure instanceof StorageError) return false;
      throw failure;
    }
  }

  async getContent(path: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.reader(path)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async putContent(path: string, content: Uint8Array): Promise<void> {
    checkPath(path);
    // One request that replaces the object whole: readers see the old or the new content.
    await this.#send(
      path,
      () => this.#file(this.#key(path)).save(Buffer.from(content), { resumable: false, contentType: CONTENT_TYPE }),
      true,
    );
  }

  async reader(path: string, options: ReadOptions = {}): Promise<Readable> {
    checkPath(path);
    // The whole-number checks now; the size check once GCS has answered, so a read costs one request.
    const offset = checkReadRange(path, options, Number.MAX_SAFE_INTEGER);
    const { length, signal } = options;
    const atEnd = async (): Promise<Readable> => {
      const meta = await this.#meta(path);
      if (meta === undefined) throw new StorageError('PathNotFound', path);
      checkReadRange(path, options, meta.size);
      return emptyStream();
    };
    if (length === 0) return atEnd();
    const range =
      offset === 0 && length === undefined
        ? undefined
        : `bytes=${offset}-${length === undefined ? '' : offset + length - 1}`;
    const res = await this.#download(path, range, signal);
    // 416: the range starts at or past the end. At the end it is an empty read, past it InvalidOffset.
    if (res === 'unsatisfiable') return atEnd();
    if (res.body === null) return emptyStream();
    const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
    const expected = range === undefined ? crc32cOf(res.headers.get('x-goog-hash')) : undefined;
    const stream = expected === undefined ? body : body.pipe(this.#crc32cCheck(path, expected, body));
    return signal === undefined ? stream : addAbortSignal(signal, stream);
  }

  /**
   * GETs an object's bytes (`alt=media`) with the SDK's credentials. Not the SDK's read stream: this one gives the
   * status before the body, passes the abort signal to the request, and does not trip Node's listener-leak warning
   * on every read (googleapis/google-cloud-node#9185). Failures before the body are retried like the SDK's.
   */
  async #download(path: string, range: string | undefined, signal?: AbortSignal): Promise<Response | 'unsatisfiable'> {
    const url = `${this.#api}/b/${encodeURIComponent(this.#bucketName)}/o/${encodeURIComponent(this.#key(path))}?alt=media`;
    const deadline = Date.now() + RETRY_OPTIONS.totalTimeout * 1000;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      // A token (cached by the auth client until it expires); failing to get one is no reason to retry.
      const headers = new Headers(
        this.#authenticated
          ? await this.#bucket.storage.authClient.getRequestHeaders(url).catch((err: unknown) => {
              throw this.#fail(err, path);
            })
          : {},
      );
      headers.set('accept-encoding', 'identity');
      if (range !== undefined) headers.set('range', range);
      try {
        res = await fetch(url, { headers, ...(signal === undefined ? {} : { signal }) });
      } catch (err) {
        if ((err instanceof Error && err.name === 'AbortError') || signal?.aborted === true) throw err;
        if (attempt < RETRY_OPTIONS.maxRetries && Date.now() < deadline) {
          await backoff(attempt);
          continue;
        }
        throw this.#fail(err, path);
      }
      if (res.ok) return res;
      if (res.status === 416) {
        await res.body?.cancel();
        return 'unsatisfiable';
      }
      const text = (await res.text().catch(() => '')).slice(0, 500);
      if (
        (res.status === 429 || res.status === 408 || res.status >= 500) &&
        attempt < RETRY_OPTIONS.maxRetries &&
        Date.now() < deadline
      ) {
        await backoff(attempt);
        continue;
      }
      throw this.#fail(Object.assign(new Error(text || `HTTP ${res.status}`), { code: res.status }), path);
    }
  }

  /** Passes a whole object's bytes through and fails the stream at its end when they miss GCS's CRC32C. */
  #crc32cCheck(path: string, expected: string, source: Readable): Transform {
    const crc = new CRC32C();
    const where = this.#where;
    const check = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        crc.update(chunk);
        cb(null, chunk);
      },
      flush(cb) {
        cb(crc.validate(expected) ? null : new Error(`gcs: ${where}: ${path} does not match its CRC32C (${expected})`));
      },
    });
    // pipe() does not pass errors along: a failed download fails the check stream too.
    source.once('error', (err) => check.destroy(err));
    check.once('close', () => source.destroy());
    return check;
  }

  async writer(path: string, append: boolean): Promise<FileWriter> {
    checkPath(path);
    const key = this.#key(path);
    const base = append ? await this.#meta(path) : undefined;
    const baseSize = base?.size ?? 0;
    // Next to the file, so that deleting its directory (an abandoned upload's, say) also deletes a leftover.
    const tempKey = `${key}${TEMP_MARK}${randomBytes(8).toString('hex')}`;
    const tempFile = this.#file(tempKey);
    const chunkSize = this.#chunkSize;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let written = 0;
    let upload: Writable | undefined;
    let uploadFailure: Error | undefined;
    /** Whether the temporary object may exist, and so must be deleted whatever happens. */
    let tempUsed = false;
    let finishedWriter = false;

    const takePending = (): Buffer => {
      const all = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      return all;
    };
    const forward = (target: Writable, chunk: Buffer): Promise<void> =>
      new Promise((resolve, reject) => {
        target.write(chunk, (err) => (err ? reject(uploadFailure ?? err) : resolve()));
      });
    const fail = (err: unknown): Error => this.#fail(err, path, true);

    const stream = new Writable({
      highWaterMark: 1 << 20,
      write(chunk: Buffer, _enc, cb) {
        written += chunk.length;
        if (upload === undefined) {
          pending.push(chunk);
          pendingBytes += chunk.length;
          if (pendingBytes <= chunkSize) {
            cb();
            return;
          }
          // More than one chunk: the rest streams into a resumable upload of the temporary object, which sends
          // (and retries) a chunk at a time, so the writer holds at most about two chunks.
          tempUsed = true;
          upload = tempFile.createWriteStream({ resumable: true, chunkSize, contentType: CONTENT_TYPE });
          upload.on('error', (err: unknown) => {
            uploadFailure ??= fail(err);
          });
          forward(upload, takePending()).then(
            () => cb(),
            (err: unknown) => cb(fail(err)),
          );
          return;
        }
        forward(upload, chunk).then(
          () => cb(),
          (err: unknown) => cb(fail(err)),
        );
      },
      final(cb) {
        if (upload === undefined) {
          cb();
          return;
        }
        upload.end();
        finished(upload).then(
          () => cb(),
          (err: unknown) => cb(uploadFailure ?? fail(err)),
        );
      },
    });

    const dropTemp = async (): Promise<void> => {
      if (!tempUsed) return;
      if (upload !== undefined && !upload.writableFinished) {
        // The session is left unfinished; GCS discards it after a week.
        upload.destroy();
        await finished(upload).catch(() => undefined);
      }
      await this.#deleteObject(path, tempKey).catch(() => undefined);
    };

    const commit = async (): Promise<void> => {
      if (finishedWriter) throw new Error('writer already finished');
      finishedWriter = true;
      try {
        if (!stream.writableEnded) throw new Error(`gcs: commit of ${path} before its stream ended`);
        await finished(stream);
        // Appending nothing leaves the file as it is.
        if (base !== undefined && written === 0) return;
        if (upload === undefined && base === undefined) {
          // Everything fits one request, which replaces the object at once.
          const body = takePending();
          await this.#send(
            path,
            () => this.#file(key).save(body, { resumable: false, contentType: CONTENT_TYPE }),
            true,
          );
          return;
        }
        if (upload === undefined) {
          tempUsed = true;
          const body = takePending();
          await this.#send(path, () => tempFile.save(body, { resumable: false, contentType: CONTENT_TYPE }), true);
        }
        // Server-side: the existing object (exactly the generation this writer continued) and the new bytes become
        // one object, which replaces the old one only if nobody replaced it meanwhile. Each append adds one to the
        // object's component count. GCS once refused a composite of more than 1,024 components (and a rewrite in
        // the same location and storage class keeps the count, so only a download and upload would reset it); that
        // limit is gone, the count now saturating at 2^31 - 1, so an upload of any number of chunks composes on.
        // What remains is 32 sources per compose request, of which this uses two.
        const sources = base === undefined ? [tempFile] : [this.#file(key, base.generation), tempFile];
        await this.#send(path, () =>
          this.#bucket.combine(sources, this.#file(key), {
            ...(base === undefined ? {} : { ifGenerationMatch: base.generation }),
          }),
        );
      } finally {
        await dropTemp();
      }
    };

    return {
      stream,
      size: () => baseSize + written,
      commit,
      cancel: async () => {
        finishedWriter = true;
        if (!stream.destroyed) stream.destroy();
        pending = [];
        await dropTemp();
      },
    };
  }

  async stat(path: string): Promise<FileInfo> {
    checkPath(path);
    if (path !== '/') {
      const meta = await this.#meta(path);
      if (meta !== undefined) return { path, size: meta.size, modTime: meta.modTime, isDir: false };
    }
    // The root too makes a request, so that /readyz's stat of it proves the bucket and the credentials.
    if (await this.#hasChildren(path)) return { path, size: 0, modTime: new Date(0), isDir: true };
    throw new StorageError('PathNotFound', path);
  }

  async list(path: string): Promise<string[]> {
    checkPath(path);
    const prefix = this.#dirPrefix(path);
    const files: string[] = [];
    // A set: a listing's prefixes may repeat across its pages (fake-gcs-server repeats them).
    const dirs = new Set<string>();
    let query: GetFilesOptions | undefined = { prefix, delimiter: '/', maxResults: LIST_MAX, autoPaginate: false };
    while (query !== undefined) {
      const current: GetFilesOptions = query;
      const [page, next, raw] = await this.#send(path, () => this.#bucket.getFiles(current), true);
      for (const p of pagePrefixes(raw)) {
        const name = p.slice(prefix.length, -1);
        if (SEGMENT.test(name)) dirs.add(this.#path(p.slice(0, -1)));
      }
      for (const f of page) {
        // Temporaries of writers in progress, and `/`-ended folder markers some tools write, are not files.
        if (SEGMENT.test(f.name.slice(prefix.length))) files.push(this.#path(f.name));
      }
      const token = (next as { pageToken?: unknown } | null)?.pageToken;
      query = typeof token === 'string' && token !== '' ? { ...current, pageToken: token } : undefined;
    }
    const children = [...files, ...dirs];
    if (children.length === 0 && path !== '/') throw new StorageError('PathNotFound', path);
    return children;
  }

  async move(source: string, destination: string): Promise<void> {
    checkPath(source);
    checkPath(destination);
    const meta = await this.#meta(source);
    if (meta === undefined) throw new StorageError('PathNotFound', source);
    if (destination === '/' || (await this.#hasChildren(destination))) {
      throw new StorageError('InvalidPath', destination, `${destination} is a directory`);
    }
    // A rewrite on the server (the SDK repeats it until done, for objects too big for one call), of exactly the
    // generation statted, which replaces the destination at once; then the source goes.
    await this.#send(source, () =>
      this.#file(this.#key(source), meta.generation).copy(this.#file(this.#key(destination))),
    );
    await this.#deleteObject(source, this.#key(source));
  }

  async delete(path: string): Promise<void> {
    checkPath(path);
    const [file, removed] = await Promise.all([
      path === '/' ? Promise.resolve(false) : this.#deleteObject(path, this.#key(path)),
      this.#deletePrefix(path, this.#dirPrefix(path)),
    ]);
    if (!file && removed === 0 && path !== '/') throw new StorageError('PathNotFound', path);
  }

  /** Deletes every object under `prefix`, a listing page (up to 1,000 names) at a time; resolves how many. */
  async #deletePrefix(path: string, prefix: string): Promise<number> {
    let removed = 0;
    let query: GetFilesOptions | undefined = { prefix, maxResults: LIST_MAX, autoPaginate: false };
    while (query !== undefined) {
      const current: GetFilesOptions = query;
      const [page, next] = await this.#send(path, () => this.#bucket.getFiles(current), true);
      await forEachLimit(page, DELETE_CONCURRENCY, async (f) => {
        if (await this.#deleteObject(path, f.name)) removed++;
      });
      const token = (next as { pageToken?: unknown } | null)?.pageToken;
      query = typeof token === 'string' && token !== '' ? { ...current, pageToken: token } : undefined;
    }
    return removed;
  }

  /**
   * A V4 signed URL on Google's endpoint (storage.redirect), signed locally with the service-account key. Undefined,
   * so the registry streams instead, without a key (Application Default Credentials would sign through the IAM API,
   * one more round trip and one more permission per pull), against an emulator (which would be handed Google's host),
   * and for HEAD (the SDK signs reads as GET only).
   */
  async redirectURL(path: string, options: RedirectOptions): Promise<string | undefined> {
    checkPath(path);
    if (!this.#signs || options.method !== 'GET') return undefined;
    // V4 signed URLs live at most seven days.
    const seconds = Math.min(7 * 24 * 3600, Math.max(1, Math.floor(options.expiresInSeconds)));
    const [url] = await this.#send(path, () =>
      this.#file(this.#key(path)).getSignedUrl({ version: 'v4', action: 'read', expires: Date.now() + seconds * 1000 }),
    );
    return url;
  }

  async close(): Promise<void> {
    // The SDK keeps no connections or timers of its own beyond Node's global agent.
  }
}
