// The S3 driver: files are objects under `rootdirectory` in one bucket, and directories are implied by the keys
// below them. A writer streams its bytes into a multipart upload (or one PutObject when they are few), so nothing is
// visible before commit; an appending writer continues the existing object through a server-side copy.
import { Agent as HttpsAgent } from 'node:https';
import { addAbortSignal, Readable, Writable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type S3ClientConfig,
  type ServerSideEncryption,
  type StorageClass,
} from '@aws-sdk/client-s3';
import type { S3StorageConfig } from '../../../config/schema.js';
import {
  checkPath,
  checkReadRange,
  StorageError,
  type FileInfo,
  type FileWriter,
  type ReadOptions,
  type StorageDriver,
} from '../../driver.js';

/** S3's smallest part (all but the last of a multipart upload): a smaller object cannot be continued by a copy part. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
/** Parts of one writer in flight at once: memory per writer stays below (this + 1) × chunksize. */
const PART_CONCURRENCY = 3;
/** The most keys ListObjectsV2 returns and DeleteObjects takes in one request. */
const LIST_MAX = 1000;
/** Directory probes of one listing in flight at once. */
const PROBE_CONCURRENCY = 16;
/** Attempts per request, with the SDK's standard retry strategy (exponential backoff with full jitter). */
const MAX_ATTEMPTS = 5;

/** The `storage.s3` settings the driver acts on (defaults applied by the config schema). */
export type S3DriverOptions = Omit<S3StorageConfig, 'driver' | 'v4auth'>;

interface Range {
  readonly start: number;
  /** Inclusive, as HTTP ranges are. */
  readonly end: number;
}

/**
 * Splits `size` bytes into ranges of `chunk` bytes where the last one, when shorter than S3's smallest part, joins
 * the one before it: every range can then be a part that is not the last of a multipart upload.
 */
export function copyRanges(size: number, chunk: number): Range[] {
  const ranges: Range[] = [];
  for (let start = 0; start < size; start += chunk) ranges.push({ start, end: Math.min(size, start + chunk) - 1 });
  const last = ranges.at(-1);
  const before = ranges.at(-2);
  if (last !== undefined && before !== undefined && last.end - last.start + 1 < MIN_PART_SIZE) {
    ranges.splice(-2, 2, { start: before.start, end: last.end });
  }
  return ranges;
}

/** Runs `fn` over `items` with at most `limit` calls in flight; rejects with the first failure once all settled. */
async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.err;
}

function emptyStream(): Readable {
  return new Readable({
    read() {
      this.push(null);
    },
  });
}

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : '';
}

function httpStatus(err: unknown): number | undefined {
  return err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
}

const AUTH_ERRORS: ReadonlySet<string> = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'InvalidToken',
  'ExpiredToken',
  'CredentialsProviderError',
]);

export class S3Driver implements StorageDriver {
  readonly name = 's3';
  readonly #client: S3Client;
  readonly #bucket: string;
  /** Key prefix of the root directory: `` or `some/dir/`. */
  readonly #root: string;
  readonly #options: S3DriverOptions;
  /** Where requests go, for error messages. */
  readonly #where: string;
  readonly #agent: HttpsAgent | undefined;

  constructor(options: S3DriverOptions) {
    this.#options = options;
    this.#bucket = options.bucket;
    const root = options.rootdirectory.replace(/^\/+|\/+$/g, '');
    this.#root = root === '' ? '' : `${root}/`;
    const endpoint = S3Driver.endpoint(options);
    this.#where = `bucket ${options.bucket} at ${endpoint ?? `AWS S3 (${options.region})`}`;
    this.#agent = options.skipverify ? new HttpsAgent({ keepAlive: true, rejectUnauthorized: false }) : undefined;
    const config: S3ClientConfig = {
      region: options.region,
      forcePathStyle: options.forcepathstyle,
      tls: options.secure,
      maxAttempts: MAX_ATTEMPTS,
      retryMode: 'standard',
      // Checksums only where S3 requires them (DeleteObjects): S3-compatible servers differ in the newer ones.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...(endpoint === undefined ? {} : { endpoint }),
      // Without keys the SDK's default chain applies: environment, web identity (IRSA), profiles, instance roles.
      ...(options.accesskey !== '' && options.secretkey !== ''
        ? {
            credentials: { accessKeyId: options.accesskey, secretAccessKey: options.secretkey },
          }
        : {}),
      ...(options.useragent === '' ? {} : { customUserAgent: options.useragent }),
      ...(this.#agent === undefined ? {} : { requestHandler: { httpsAgent: this.#agent } }),
    };
    this.#client = new S3Client(config);
  }

  /** The endpoint URL: `regionendpoint`, given a scheme by `secure` when it has none. */
  static endpoint(options: Pick<S3DriverOptions, 'regionendpoint' | 'secure'>): string | undefined {
    const e = options.regionendpoint;
    if (e === '') return undefined;
    return /^[a-z][a-z0-9+.-]*:\/\//i.test(e) ? e : `${options.secure ? 'https' : 'http'}://${e}`;
  }

  #key(path: string): string {
    return path === '/' ? this.#root : this.#root + path.slice(1);
  }

  /** Key prefix of a directory's children. */
  #dirPrefix(path: string): string {
    return path === '/' ? this.#root : `${this.#root}${path.slice(1)}/`;
  }

  #path(key: string): string {
    return `/${key.slice(this.#root.length)}`;
  }

  /** Settings every new object gets: storage class and server-side encryption. */
  #objectParams(): { StorageClass?: StorageClass; ServerSideEncryption?: ServerSideEncryption; SSEKMSKeyId?: string } {
    const o = this.#options;
    return {
      ...(o.storageclass === 'NONE' ? {} : { StorageClass: o.storageclass as StorageClass }),
      ...(!o.encrypt
        ? {}
        : o.keyid === ''
          ? { ServerSideEncryption: 'AES256' }
          : { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: o.keyid }),
    };
  }

  /** Turns an SDK failure into PathNotFound, or an error that says which setting to check. */
  #fail(err: unknown, path: string): Error {
    const name = errorName(err);
    const status = httpStatus(err);
    if (name === 'NoSuchBucket') {
      return new Error(`s3: ${this.#where}: the bucket does not exist (storage.s3.bucket)`, { cause: err });
    }
    if (name === 'NoSuchKey' || name === 'NotFound' || (status === 404 && name !== 'NoSuchUpload')) {
      return new StorageError('PathNotFound', path);
    }
    if (AUTH_ERRORS.has(name) || status === 403) {
      const message = err instanceof Error ? err.message : String(err);
      return new Error(
        `s3: ${this.#where} refused the credentials (${name}: ${message}); check storage.s3.accesskey and ` +
          'storage.s3.secretkey, or the credentials the default chain found',
        { cause: err },
      );
    }
    if (err instanceof Error) {
      // Network failures name the endpoint, so that a wrong regionendpoint is plain in the log.
      if (!(err instanceof S3ServiceException)) err.message = `s3: ${this.#where}: ${err.message}`;
      return err;
    }
    return new Error(String(err));
  }

  async #send<T>(path: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw this.#fail(err, path);
    }
  }

  async #head(path: string): Promise<{ size: number; modTime: Date } | undefined> {
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#key(path) }));
      return { size: head.ContentLength ?? 0, modTime: head.LastModified ?? new Date(0) };
    } catch (err) {
      const failure = this.#fail(err, path);
      if (failure instanceof StorageError) return undefined;
      throw failure;
    }
  }

  /** Whether any object lies below the directory `path`. */
  async #hasChildren(path: string): Promise<boolean> {
    const page = await this.#send(path, () =>
      this.#client.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: this.#dirPrefix(path), MaxKeys: 1 })),
    );
    return (page.Contents?.length ?? 0) > 0;
  }

  async getContent(path: string): Promise<Buffer> {
    checkPath(path);
    return this.#send(path, async () => {
      const res = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(path) }));
      if (res.Body === undefined) return Buffer.alloc(0);
      return Buffer.from(await res.Body.transformToByteArray());
    });
  }

  async putContent(path: string, content: Uint8Array): Promise<void> {
    checkPath(path);
    await this.#send(path, () =>
      this.#client.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: this.#key(path),
          Body: content,
          ContentLength: content.length,
          ...this.#objectParams(),
        }),
      ),
    );
  }

  async reader(path: string, options: ReadOptions = {}): Promise<Readable> {
    checkPath(path);
    // The whole-number checks now; the size check once S3 has answered, so a read costs one request.
    const offset = checkReadRange(path, options, Number.MAX_SAFE_INTEGER);
    const { length, signal } = options;
    if (length === 0) {
      const head = await this.#head(path);
      if (head === undefined) throw new StorageError('PathNotFound', path);
      checkReadRange(path, options, head.size);
      return emptyStream();
    }
    const range =
      offset === 0 && length === undefined
        ? undefined
        : `bytes=${offset}-${length === undefined ? '' : offset + length - 1}`;
    let body: unknown;
    try {
      const res = await this.#client.send(
        new GetObjectCommand({
          Bucket: this.#bucket,
          Key: this.#key(path),
          ...(range === undefined ? {} : { Range: range }),
        }),
        signal === undefined ? {} : { abortSignal: signal },
      );
      body = res.Body;
    } catch (err) {
      // 416: the range starts at or past the end. At the end it is an empty read, past it InvalidOffset.
      if (httpStatus(err) !== 416 && errorName(err) !== 'InvalidRange') throw this.#fail(err, path);
      const head = await this.#head(path);
      if (head === undefined) throw new StorageError('PathNotFound', path);
      checkReadRange(path, options, head.size);
      return emptyStream();
    }
    if (body === undefined) return emptyStream();
    if (!(body instanceof Readable)) throw new Error(`s3: ${this.#where}: GetObject gave no Node stream for ${path}`);
    return signal === undefined ? body : addAbortSignal(signal, body);
  }

  async writer(path: string, append: boolean): Promise<FileWriter> {
    checkPath(path);
    const key = this.#key(path);
    const { chunksize, multipartcopychunksize, multipartcopymaxconcurrency } = this.#options;
    let base = append ? await this.#head(path) : undefined;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    // A small existing object is read and sent again: UploadPartCopy takes no source under S3's smallest part.
    if (base !== undefined && base.size < MIN_PART_SIZE) {
      const existing = await this.getContent(path).catch((err: unknown) => {
        if (err instanceof StorageError && err.kind === 'PathNotFound') return undefined;
        throw err;
      });
      base = existing === undefined ? undefined : { size: existing.length, modTime: base.modTime };
      if (existing !== undefined && existing.length > 0) {
        pending.push(existing);
        pendingBytes = existing.length;
      }
    }
    const baseSize = base?.size ?? 0;
    // A large one is continued on the server: its bytes become the first parts, copied, never downloaded.
    const copies =
      base !== undefined && base.size >= MIN_PART_SIZE ? copyRanges(base.size, multipartcopychunksize) : [];
    let nextPart = copies.length + 1;
    const parts: CompletedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    let failure: { err: unknown } | undefined;
    let uploadId: Promise<string> | undefined;
    let written = 0;
    let finished = false;

    const send = <T>(call: () => Promise<T>): Promise<T> => this.#send(path, call);
    const start = (): Promise<string> =>
      (uploadId ??= (async () => {
        const created = await send(() =>
          this.#client.send(
            new CreateMultipartUploadCommand({ Bucket: this.#bucket, Key: key, ...this.#objectParams() }),
          ),
        );
        const id = created.UploadId;
        if (id === undefined) throw new Error(`s3: ${this.#where}: CreateMultipartUpload gave no upload id`);
        await forEachLimit(
          copies.map((range, i) => ({ range, number: i + 1 })),
          multipartcopymaxconcurrency,
          async ({ range, number }) => {
            const res = await send(() =>
              this.#client.send(
                new UploadPartCopyCommand({
                  Bucket: this.#bucket,
                  Key: key,
                  UploadId: id,
                  PartNumber: number,
                  CopySource: this.#copySource(path),
                  CopySourceRange: `bytes=${range.start}-${range.end}`,
                }),
              ),
            );
            parts.push({ PartNumber: number, ETag: res.CopyPartResult?.ETag });
          },
        );
        return id;
      })());
    const uploadPart = (body: Buffer): void => {
      const number = nextPart++;
      const part = (async () => {
        const id = await start();
        const res = await send(() =>
          this.#client.send(
            new UploadPartCommand({
              Bucket: this.#bucket,
              Key: key,
              UploadId: id,
              PartNumber: number,
              Body: body,
              ContentLength: body.length,
            }),
          ),
        );
        parts.push({ PartNumber: number, ETag: res.ETag });
      })();
      const tracked: Promise<void> = part
        .catch((err: unknown) => {
          failure ??= { err };
        })
        .finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    };
    const takePending = (): Buffer => {
      const all = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      return all;
    };
    const abort = async (): Promise<void> => {
      await Promise.allSettled(inFlight);
      const id = await uploadId?.catch(() => undefined);
      if (id === undefined) return;
      await this.#client
        .send(new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: key, UploadId: id }))
        .catch(() => undefined);
    };

    const stream = new Writable({
      highWaterMark: 1 << 20,
      write(chunk: Buffer, _enc, cb) {
        if (failure !== undefined) {
          cb(failure.err instanceof Error ? failure.err : new Error(String(failure.err)));
          return;
        }
        pending.push(chunk);
        pendingBytes += chunk.length;
        written += chunk.length;
        // Whole parts of chunksize go up as they fill; a few at a time, so memory stays bounded.
        while (pendingBytes >= chunksize) {
          const all = takePending();
          uploadPart(Buffer.from(all.subarray(0, chunksize)));
          if (all.length > chunksize) {
            pending = [all.subarray(chunksize)];
            pendingBytes = all.length - chunksize;
          }
        }
        const wait = async (): Promise<void> => {
          while (inFlight.size >= PART_CONCURRENCY) await Promise.race(inFlight);
        };
        wait().then(
          () => cb(failure === undefined ? null : (failure.err as Error)),
          (err: unknown) => cb(err as Error),
        );
      },
    });

    const commit = async (): Promise<void> => {
      if (finished) throw new Error('writer already finished');
      finished = true;
      if (uploadId === undefined && copies.length === 0) {
        // Everything fits one request: PutObject replaces the object at once.
        if (base !== undefined && written === 0) return;
        const body = takePending();
        await send(() =>
          this.#client.send(
            new PutObjectCommand({
              Bucket: this.#bucket,
              Key: key,
              Body: body,
              ContentLength: body.length,
              ...this.#objectParams(),
            }),
          ),
        );
        return;
      }
      if (written === 0) return;
      try {
        // The last part may be short.
        if (pendingBytes > 0) uploadPart(takePending());
        while (inFlight.size > 0) await Promise.all(inFlight);
        if (failure !== undefined) throw failure.err;
        const id = await start();
        parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
        await send(() =>
          this.#client.send(
            new CompleteMultipartUploadCommand({
              Bucket: this.#bucket,
              Key: key,
              UploadId: id,
              MultipartUpload: { Parts: parts },
            }),
          ),
        );
      } catch (err) {
        await abort();
        throw err;
      }
    };

    return {
      stream,
      size: () => baseSize + written,
      commit,
      cancel: async () => {
        finished = true;
        if (!stream.destroyed) stream.destroy();
        pending = [];
        await abort();
      },
    };
  }

  async stat(path: string): Promise<FileInfo> {
    checkPath(path);
    if (path !== '/') {
      const head = await this.#head(path);
      if (head !== undefined) return { path, size: head.size, modTime: head.modTime, isDir: false };
    }
    // The root too makes a request, so that /readyz's stat of it proves the bucket and the credentials.
    if (await this.#hasChildren(path)) return { path, size: 0, modTime: new Date(0), isDir: true };
    throw new StorageError('PathNotFound', path);
  }

  async list(path: string): Promise<string[]> {
    checkPath(path);
    const prefix = this.#dirPrefix(path);
    const children: string[] = [];
    const dirs: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.#send(path, () =>
        this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: prefix,
            Delimiter: '/',
            MaxKeys: LIST_MAX,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        ),
      );
      for (const p of page.CommonPrefixes ?? []) {
        if (p.Prefix !== undefined && p.Prefix.length > prefix.length + 1) dirs.push(this.#path(p.Prefix.slice(0, -1)));
      }
      for (const o of page.Contents ?? []) {
        // A key ending in `/` is a folder marker some tools write, not a file.
        if (o.Key !== undefined && o.Key.length > prefix.length && !o.Key.endsWith('/'))
          children.push(this.#path(o.Key));
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    // S3 derives common prefixes from keys, but servers that keep real folders (SeaweedFS) also list folders whose
    // objects are gone until they clean them up, minutes later: a directory is listed only with an object below it.
    const live = new Set<string>();
    await forEachLimit(dirs, PROBE_CONCURRENCY, async (dir) => {
      if (await this.#hasChildren(dir)) live.add(dir);
    });
    children.push(...dirs.filter((d) => live.has(d)));
    if (children.length === 0 && path !== '/') throw new StorageError('PathNotFound', path);
    return children;
  }

  async move(source: string, destination: string): Promise<void> {
    checkPath(source);
    checkPath(destination);
    const head = await this.#head(source);
    if (head === undefined) throw new StorageError('PathNotFound', source);
    if (destination === '/' || (await this.#hasChildren(destination))) {
      throw new StorageError('InvalidPath', destination, `${destination} is a directory`);
    }
    if (head.size <= this.#options.multipartcopythresholdsize) {
      await this.#send(source, () =>
        this.#client.send(
          new CopyObjectCommand({
            Bucket: this.#bucket,
            Key: this.#key(destination),
            CopySource: this.#copySource(source),
            ...this.#objectParams(),
          }),
        ),
      );
    } else {
      await this.#multipartCopy(source, destination, head.size);
    }
    await this.#send(source, () =>
      this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(source) })),
    );
  }

  /** `bucket/key`, URL-encoded, as CopyObject and UploadPartCopy take their source. */
  #copySource(path: string): string {
    return `${this.#bucket}/${this.#key(path).split('/').map(encodeURIComponent).join('/')}`;
  }

  /** Copies a large object in parts on the server, `multipartcopymaxconcurrency` at a time. */
  async #multipartCopy(source: string, destination: string, size: number): Promise<void> {
    const key = this.#key(destination);
    const { UploadId } = await this.#send(destination, () =>
      this.#client.send(new CreateMultipartUploadCommand({ Bucket: this.#bucket, Key: key, ...this.#objectParams() })),
    );
    if (UploadId === undefined) throw new Error(`s3: ${this.#where}: CreateMultipartUpload gave no upload id`);
    try {
      const ranges = copyRanges(size, this.#options.multipartcopychunksize);
      const parts: CompletedPart[] = [];
      await forEachLimit(
        ranges.map((range, i) => ({ range, number: i + 1 })),
        this.#options.multipartcopymaxconcurrency,
        async ({ range, number }) => {
          const res = await this.#send(source, () =>
            this.#client.send(
              new UploadPartCopyCommand({
                Bucket: this.#bucket,
                Key: key,
                UploadId,
                PartNumber: number,
                CopySource: this.#copySource(source),
                CopySourceRange: `bytes=${range.start}-${range.end}`,
              }),
            ),
          );
          parts.push({ PartNumber: number, ETag: res.CopyPartResult?.ETag });
        },
      );
      parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      await this.#send(destination, () =>
        this.#client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.#bucket,
            Key: key,
            UploadId,
            MultipartUpload: { Parts: parts },
          }),
        ),
      );
    } catch (err) {
      await this.#client
        .send(new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: key, UploadId }))
        .catch(() => undefined);
      throw err;
    }
  }

  async delete(path: string): Promise<void> {
    checkPath(path);
    const prefix = this.#dirPrefix(path);
    const [file, removed] = await Promise.all([
      path === '/' ? Promise.resolve(undefined) : this.#head(path),
      this.#deletePrefix(path, prefix),
    ]);
    if (file !== undefined) {
      await this.#send(path, () =>
        this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(path) })),
      );
    } else if (removed === 0 && path !== '/') {
      throw new StorageError('PathNotFound', path);
    }
  }

  /** Deletes every object under `prefix`, a listing page (up to 1,000 keys) per DeleteObjects; resolves how many. */
  async #deletePrefix(path: string, prefix: string): Promise<number> {
    let removed = 0;
    for (;;) {
      // Always the first page: the keys of the page before are gone, so no continuation token is needed.
      const page = await this.#send(path, () =>
        this.#client.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: prefix, MaxKeys: LIST_MAX })),
      );
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ Key: o.Key }]));
      if (keys.length === 0) return removed;
      const res = await this.#send(path, () =>
        this.#client.send(new DeleteObjectsCommand({ Bucket: this.#bucket, Delete: { Objects: keys, Quiet: true } })),
      );
      const failed = res.Errors ?? [];
      if (failed.length > 0) {
        const first = failed[0];
        throw new Error(
          `s3: ${this.#where}: could not delete ${failed.length} objects under ${path} (${first?.Key}: ${first?.Code} ${first?.Message})`,
        );
      }
      removed += keys.length;
    }
  }

  async close(): Promise<void> {
    this.#client.destroy();
    this.#agent?.destroy();
  }
}
