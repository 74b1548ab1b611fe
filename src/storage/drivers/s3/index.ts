// The S3 driver: files are objects under `rootdirectory` in one bucket, and directories are implied by the keys
// below them. A writer streams its bytes into a multipart upload (or one PutObject when they are few), so nothing is
// visible before commit. A file that is appended to is kept as segments (see "Segmented files" below), so that a
// chunked upload costs each byte once, however many chunks it takes.
import { randomBytes } from 'node:crypto';
import { Agent as HttpsAgent } from 'node:https';
import { addAbortSignal, Readable } from 'node:stream';
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
  type RedirectOptions,
  type StorageDriver,
} from '../../driver.js';
import { forEachLimit } from '../limit.js';
import { partStream } from '../parts.js';
import { abortAbandonedUploads } from './abandoned.js';
import { presignedURL } from './presign.js';

/** S3's smallest part (all but the last of a multipart upload): a smaller object cannot be continued by a copy part. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
/** Parts of one writer in flight at once: memory per writer stays below (this + 1) × chunksize. */
const PART_CONCURRENCY = 3;
/** The most keys ListObjectsV2 returns and DeleteObjects takes in one request. */
const LIST_MAX = 1000;
/** Directory probes of one listing in flight at once. */
const PROBE_CONCURRENCY = 16;
/** Segments of one file that getContent reads at once. */
const READ_CONCURRENCY = 16;
/** Attempts per request, with the SDK's standard retry strategy (exponential backoff with full jitter). */
const MAX_ATTEMPTS = 5;

/*
 * Segmented files. The first append to a plain object rewrites it once (as before: its bytes read and sent again
 * when small, copied on the server when large) with the metadata `berth-segments: <generation>`, a random id. From
 * then on each committed append is one more object, `<key>~seg~<generation>~<index>`, and the file is the object at
 * the key followed by its generation's segments in index order. `~` occurs in no driver path, so list() skips these
 * keys, and only a completed PutObject or CompleteMultipartUpload makes a segment exist: a crash leaves none
 * half-written (an interrupted multipart upload stays pending until upload purging aborts it).
 *
 * Replacing the file (putContent, a truncating writer, a move onto it) writes a plain object at the key: that one
 * request switches readers from old to new, because segments are only read for the generation the key names. The old
 * segments are then unreachable; delete, a move away and a directory delete remove them. Plain files cost what
 * they always did (one HEAD per stat, one GET per read); a segmented one adds a LIST of its segments.
 */
const SEGMENT_MARK = '~seg~';
/** User metadata (x-amz-meta-berth-segments) naming the generation of a segmented file's segments. */
const SEGMENTS_META = 'berth-segments';
/** Digits of a segment index: keys sort in index order. */
const INDEX_DIGITS = 10;
/** S3's most parts per multipart upload. */
const MAX_PARTS = 10_000;

/** The `storage.s3` settings the driver acts on (defaults applied by the config schema). */
export type S3DriverOptions = Omit<S3StorageConfig, 'driver' | 'v4auth'>;

interface ObjectHead {
  readonly size: number;
  readonly modTime: Date;
  /** The generation of its segments, when the object begins a segmented file. */
  readonly generation?: string | undefined;
}

/** A file as the objects it is read from, in order. */
interface Layout {
  readonly pieces: readonly Piece[];
  readonly size: number;
  readonly modTime: Date;
  /** The index the next segment takes. */
  readonly next: number;
}

/** The segment generation an object's metadata names, if any. */
function generationOf(metadata: Record<string, string> | undefined): string | undefined {
  const value = metadata?.[SEGMENTS_META];
  return value === undefined || value === '' ? undefined : value;
}

/** An object's whole size from a GET's Content-Range (`bytes 0-9/1234`), or its Content-Length without a range. */
function sizeOf(contentRange: string | undefined, contentLength: number | undefined): number {
  const total = /\/(\d+)$/.exec(contentRange ?? '')?.[1];
  return total !== undefined ? Number(total) : (contentLength ?? 0);
}

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

/** One object of a file: the object at the key, or a segment. */
export interface Piece {
  readonly key: string;
  readonly size: number;
}

/** A part of the multipart upload that joins pieces: a server-side copy, or bytes read from pieces and sent. */
export type PartPlan =
  | { readonly kind: 'copy'; readonly key: string; readonly start: number; readonly end: number }
  | {
      readonly kind: 'send';
      readonly ranges: ReadonlyArray<{ readonly key: string; readonly start: number; readonly end: number }>;
      readonly size: number;
    };

/**
 * Plans the parts that join `pieces` into one object, each byte copied at most once on the server. A piece of at
 * least S3's smallest part is copied (in `copyChunk` ranges); a run of smaller ones is read and sent as one part of
 * about `sendTarget` bytes. A short run followed by a large piece takes the piece's first bytes (or the whole piece,
 * when the rest would be too small to copy), since every part but the last must reach the smallest part size.
 */
export function planParts(pieces: readonly Piece[], copyChunk: number, sendTarget: number): PartPlan[] {
  const parts: PartPlan[] = [];
  let run: Array<{ key: string; start: number; end: number }> = [];
  let runBytes = 0;
  const flush = (): void => {
    if (runBytes > 0) parts.push({ kind: 'send', ranges: run, size: runBytes });
    run = [];
    runBytes = 0;
  };
  for (const piece of pieces) {
    if (piece.size === 0) continue;
    let start = 0;
    if (runBytes > 0 && piece.size >= MIN_PART_SIZE) {
      const need = Math.max(0, MIN_PART_SIZE - runBytes);
      if (piece.size - need >= MIN_PART_SIZE) {
        if (need > 0) run.push({ key: piece.key, start: 0, end: need - 1 });
        runBytes += need;
        start = need;
        flush();
      } else {
        run.push({ key: piece.key, start: 0, end: piece.size - 1 });
        runBytes += piece.size;
        flush();
        continue;
      }
    }
    if (piece.size - start >= MIN_PART_SIZE) {
      for (const r of copyRanges(piece.size - start, copyChunk)) {
        parts.push({ kind: 'copy', key: piece.key, start: start + r.start, end: start + r.end });
      }
      continue;
    }
    run.push({ key: piece.key, start, end: piece.size - 1 });
    runBytes += piece.size - start;
    if (runBytes >= sendTarget) flush();
  }
  flush();
  return parts;
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

/** What AWS answers a request signed for, or sent to, the wrong region. */
const REGION_ERRORS: ReadonlySet<string> = new Set([
  'AuthorizationHeaderMalformed',
  'PermanentRedirect',
  'IllegalLocationConstraintException',
]);

/** Failures to reach the endpoint at all (a wrong host or port, a firewall) and requests that went silent. */
const NETWORK_ERRORS: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'TimeoutError',
]);

/** The region S3 says the bucket is in (its `x-amz-bucket-region` header), when it says. */
function bucketRegion(err: unknown): string | undefined {
  const headers = (err as { $response?: { headers?: Record<string, string | undefined> } } | undefined)?.$response
    ?.headers;
  return headers?.['x-amz-bucket-region'];
}

/** Connecting to the store may take this long. */
const CONNECT_TIMEOUT_MS = 10_000;
/**
 * A request whose socket stays silent this long is cut (and retried, when it may be): a store that stops sending in
 * the middle of a body must not hold a pull, or an upload, for ever.
 */
const IDLE_TIMEOUT_MS = 30_000;

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
      requestHandler: {
        connectionTimeout: CONNECT_TIMEOUT_MS,
        socketTimeout: IDLE_TIMEOUT_MS,
        ...(this.#agent === undefined ? {} : { httpsAgent: this.#agent }),
      },
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
    const expected = bucketRegion(err);
    if (
      REGION_ERRORS.has(name) ||
      status === 301 ||
      (expected !== undefined && expected !== '' && expected !== this.#options.region)
    ) {
      const message = err instanceof Error ? err.message : String(err);
      return new Error(
        `s3: ${this.#where}: the bucket is in another region${expected ? ` (${expected})` : ''} than ` +
          `storage.s3.region (${this.#options.region}) (${name}: ${message})`,
        { cause: err },
      );
    }
    if (err instanceof Error) {
      // Network failures name the endpoint and the setting, so that a wrong regionendpoint is plain in the log.
      if (!(err instanceof S3ServiceException)) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        const setting = this.#options.regionendpoint === '' ? 'storage.s3.region' : 'storage.s3.regionendpoint';
        const hint = NETWORK_ERRORS.has(code) || NETWORK_ERRORS.has(name) ? `; check ${setting}` : '';
        err.message = `s3: ${this.#where}: ${err.message}${hint}`;
      }
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

  async #head(path: string): Promise<ObjectHead | undefined> {
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#key(path) }));
      return {
        size: head.ContentLength ?? 0,
        modTime: head.LastModified ?? new Date(0),
        generation: generationOf(head.Metadata),
      };
    } catch (err) {
      const failure = this.#fail(err, path);
      if (failure instanceof StorageError) return undefined;
      throw failure;
    }
  }

  /** Key prefix of the segments of `path`: of one generation, or of all when none is given. */
  #segmentPrefix(path: string, generation?: string): string {
    return `${this.#key(path)}${SEGMENT_MARK}${generation === undefined ? '' : `${generation}~`}`;
  }

  /** The segments of one generation of a file, in order, with the index the next one takes. */
  async #segments(
    path: string,
    generation: string,
  ): Promise<{ pieces: Piece[]; modTime: Date | undefined; next: number }> {
    const prefix = this.#segmentPrefix(path, generation);
    const pieces: Piece[] = [];
    let modTime: Date | undefined;
    let next = 1;
    let token: string | undefined;
    do {
      const page = await this.#send(path, () =>
        this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: prefix,
            MaxKeys: LIST_MAX,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        ),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined) continue;
        const index = Number(o.Key.slice(prefix.length));
        if (!Number.isSafeInteger(index)) continue;
        pieces.push({ key: o.Key, size: o.Size ?? 0 });
        next = Math.max(next, index + 1);
        if (o.LastModified !== undefined && (modTime === undefined || o.LastModified > modTime)) {
          modTime = o.LastModified;
        }
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    // Zero-padded indexes: key order is index order (listings are in key order, but say so rather than trust it).
    pieces.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { pieces, modTime, next };
  }

  /** A file as the pieces it is read from: the object at its key, then the segments it names. */
  async #layout(path: string, head: ObjectHead): Promise<Layout> {
    const first: Piece = { key: this.#key(path), size: head.size };
    if (head.generation === undefined) return { pieces: [first], size: head.size, modTime: head.modTime, next: 1 };
    const { pieces, modTime, next } = await this.#segments(path, head.generation);
    return {
      pieces: [first, ...pieces],
      size: pieces.reduce((n, p) => n + p.size, head.size),
      modTime: modTime !== undefined && modTime > head.modTime ? modTime : head.modTime,
      next,
    };
  }

  /** Whether any object lies below the directory `path`. */
  async #hasChildren(path: string): Promise<boolean> {
    const page = await this.#send(path, () =>
      this.#client.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: this.#dirPrefix(path), MaxKeys: 1 })),
    );
    return (page.Contents?.length ?? 0) > 0;
  }

  /** GETs bytes `start` to `end` (inclusive) of one object of `path`. */
  async #getRange(path: string, key: string, start: number, end: number, signal?: AbortSignal): Promise<Readable> {
    const res = await this.#send(path, () =>
      this.#client.send(
        new GetObjectCommand({ Bucket: this.#bucket, Key: key, Range: `bytes=${start}-${end}` }),
        signal === undefined ? {} : { abortSignal: signal },
      ),
    );
    if (res.Body === undefined) return emptyStream();
    if (!(res.Body instanceof Readable))
      throw new Error(`s3: ${this.#where}: GetObject gave no Node stream for ${path}`);
    return res.Body;
  }

  /**
   * Streams bytes `start` to `end` (exclusive) of a file made of `pieces`, one ranged GET per piece the range
   * touches, one after another. `first`, when given, already streams the first piece's part of the range.
   */
  #streamPieces(
    path: string,
    pieces: readonly Piece[],
    start: number,
    end: number,
    signal: AbortSignal | undefined,
    first?: Readable,
  ): Readable {
    const get = (key: string, from: number, to: number): Promise<Readable> =>
      this.#getRange(path, key, from, to, signal);
    async function* bytes(): AsyncGenerator<Buffer> {
      let at = 0;
      for (const [i, piece] of pieces.entries()) {
        const from = Math.max(start, at);
        const to = Math.min(end, at + piece.size);
        if (from < to) {
          const body = i === 0 && first !== undefined ? first : await get(piece.key, from - at, to - at - 1);
          for await (const chunk of body) yield chunk as Buffer;
        } else if (i === 0) {
          first?.destroy();
        }
        at += piece.size;
      }
    }
    const stream = Readable.from(bytes(), { objectMode: false });
    stream.once('close', () => first?.destroy());
    return signal === undefined ? stream : addAbortSignal(signal, stream);
  }

  async getContent(path: string): Promise<Buffer> {
    checkPath(path);
    return this.#send(path, async () => {
      const res = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(path) }));
      const head = res.Body === undefined ? Buffer.alloc(0) : Buffer.from(await res.Body.transformToByteArray());
      const generation = generationOf(res.Metadata);
      if (generation === undefined) return head;
      const { pieces } = await this.#segments(path, generation);
      // A few segments at a time: a chunked upload may have left thousands.
      const rest = pieces.map(() => Buffer.alloc(0));
      await forEachLimit(
        pieces.map((p, i) => ({ p, i })),
        READ_CONCURRENCY,
        async ({ p, i }) => {
          if (p.size === 0) return;
          const body = await this.#getRange(path, p.key, 0, p.size - 1);
          const chunks: Buffer[] = [];
          for await (const chunk of body) chunks.push(chunk as Buffer);
          rest[i] = Buffer.concat(chunks);
        },
      );
      return Buffer.concat([head, ...rest]);
    });
  }

  async putContent(path: string, content: Uint8Array): Promise<void> {
    checkPath(path);
    // A plain object: it also ends a segmented file's segments, in this one request (see "Segmented files").
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
    // The whole-number checks now; the size check once S3 has answered, so a read of a plain file costs one request.
    const offset = checkReadRange(path, options, Number.MAX_SAFE_INTEGER);
    const { length, signal } = options;
    const fromLayout = async (): Promise<Readable> => {
      const head = await this.#head(path);
      if (head === undefined) throw new StorageError('PathNotFound', path);
      const layout = await this.#layout(path, head);
      checkReadRange(path, options, layout.size);
      const end = length === undefined ? layout.size : Math.min(layout.size, offset + length);
      return offset >= end ? emptyStream() : this.#streamPieces(path, layout.pieces, offset, end, signal);
    };
    if (length === 0) return fromLayout();
    const range =
      offset === 0 && length === undefined
        ? undefined
        : `bytes=${offset}-${length === undefined ? '' : offset + length - 1}`;
    let res: { Body?: unknown; Metadata?: Record<string, string>; ContentLength?: number; ContentRange?: string };
    try {
      res = await this.#client.send(
        new GetObjectCommand({
          Bucket: this.#bucket,
          Key: this.#key(path),
          ...(range === undefined ? {} : { Range: range }),
        }),
        signal === undefined ? {} : { abortSignal: signal },
      );
    } catch (err) {
      // 416: the range starts at or past the end of the object. At the end of a plain file it is an empty read, past
      // it InvalidOffset; a segmented file may go on in its segments.
      if (httpStatus(err) !== 416 && errorName(err) !== 'InvalidRange') throw this.#fail(err, path);
      return fromLayout();
    }
    const body = res.Body;
    if (body !== undefined && !(body instanceof Readable)) {
      throw new Error(`s3: ${this.#where}: GetObject gave no Node stream for ${path}`);
    }
    const generation = generationOf(res.Metadata);
    if (generation === undefined) {
      if (body === undefined) return emptyStream();
      return signal === undefined ? body : addAbortSignal(signal, body);
    }
    // A segmented file: the body streams the range's part in the first object, the segments the rest.
    try {
      const objectSize = sizeOf(res.ContentRange, res.ContentLength);
      const { pieces } = await this.#segments(path, generation);
      const first: Piece = { key: this.#key(path), size: objectSize };
      const size = pieces.reduce((n, p) => n + p.size, objectSize);
      const end = length === undefined ? size : Math.min(size, offset + length);
      return this.#streamPieces(path, [first, ...pieces], offset, end, signal, body ?? emptyStream());
    } catch (err) {
      body?.destroy();
      throw err;
    }
  }

  async writer(path: string, append: boolean): Promise<FileWriter> {
    checkPath(path);
    const key = this.#key(path);
    if (!append) return this.#objectWriter(path, key, { baseSize: 0, pending: [], copies: [], keepIfEmpty: false });
    let base = await this.#head(path);
    if (base?.generation !== undefined) {
      // Segmented already: the new bytes are the next segment, and nothing that is there is sent again.
      const layout = await this.#layout(path, base);
      const segment = `${this.#segmentPrefix(path, base.generation)}${String(layout.next).padStart(INDEX_DIGITS, '0')}`;
      return this.#objectWriter(path, segment, { baseSize: layout.size, pending: [], copies: [], keepIfEmpty: true });
    }
    // A plain file (or none) becomes segmented: rewritten once with its generation, as the first append to it.
    const metadata = { [SEGMENTS_META]: randomBytes(8).toString('hex') };
    const pending: Buffer[] = [];
    // A small existing object is read and sent again: UploadPartCopy takes no source under S3's smallest part.
    if (base !== undefined && base.size < MIN_PART_SIZE) {
      const existing = await this.getContent(path).catch((err: unknown) => {
        if (err instanceof StorageError && err.kind === 'PathNotFound') return undefined;
        throw err;
      });
      base = existing === undefined ? undefined : { size: existing.length, modTime: base.modTime };
      if (existing !== undefined && existing.length > 0) pending.push(existing);
    }
    // A large one is continued on the server: its bytes become the first parts, copied, never downloaded.
    const copies =
      base !== undefined && base.size >= MIN_PART_SIZE
        ? copyRanges(base.size, this.#options.multipartcopychunksize)
        : [];
    return this.#objectWriter(path, key, {
      baseSize: base?.size ?? 0,
      pending,
      copies,
      copySource: path,
      metadata,
      keepIfEmpty: base !== undefined,
    });
  }

  /**
   * A writer of the object at `key`: `pending` bytes and then what is written, after `copies` of `copySource`'s
   * object, as one PutObject when they fit a part, else as a multipart upload with parts going up as they fill.
   * With `keepIfEmpty`, a commit that wrote nothing leaves the object as it is.
   */
  #objectWriter(
    path: string,
    key: string,
    init: {
      baseSize: number;
      pending: Buffer[];
      copies: readonly Range[];
      copySource?: string;
      metadata?: Record<string, string>;
      keepIfEmpty: boolean;
    },
  ): FileWriter {
    const { chunksize, multipartcopymaxconcurrency } = this.#options;
    const { baseSize, copies, keepIfEmpty } = init;
    const objectParams = {
      ...this.#objectParams(),
      ...(init.metadata === undefined ? {} : { Metadata: init.metadata }),
    };
    const parts: CompletedPart[] = [];
    let uploadId: Promise<string> | undefined;
    let finished = false;

    const send = <T>(call: () => Promise<T>): Promise<T> => this.#send(path, call);
    const start = (): Promise<string> =>
      (uploadId ??= (async () => {
        const created = await send(() =>
          this.#client.send(new CreateMultipartUploadCommand({ Bucket: this.#bucket, Key: key, ...objectParams })),
        );
        const id = created.UploadId;
        if (id === undefined) throw new Error(`s3: ${this.#where}: CreateMultipartUpload gave no upload id`);
        const source = init.copySource;
        if (source !== undefined) {
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
                    CopySource: this.#copySource(source),
                    CopySourceRange: `bytes=${range.start}-${range.end}`,
                  }),
                ),
              );
              parts.push({ PartNumber: number, ETag: res.CopyPartResult?.ETag });
            },
          );
        }
        return id;
      })());
    // Parts of chunksize go up as they fill, numbered after the copied ones; the multipart upload starts with the first.
    const body = partStream({
      partSize: chunksize,
      concurrency: PART_CONCURRENCY,
      initial: init.pending,
      upload: async (part, index) => {
        const id = await start();
        const number = copies.length + 1 + index;
        const res = await send(() =>
          this.#client.send(
            new UploadPartCommand({
              Bucket: this.#bucket,
              Key: key,
              UploadId: id,
              PartNumber: number,
              Body: part,
              ContentLength: part.length,
            }),
          ),
        );
        parts.push({ PartNumber: number, ETag: res.ETag });
      },
    });
    const abort = async (): Promise<void> => {
      await body.settle();
      const id = await uploadId?.catch(() => undefined);
      if (id === undefined) return;
      await this.#client
        .send(new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: key, UploadId: id }))
        .catch(() => undefined);
    };

    const commit = async (): Promise<void> => {
      if (finished) throw new Error('writer already finished');
      finished = true;
      if (body.started() === 0 && copies.length === 0) {
        // Everything fits one request: PutObject replaces the object at once.
        if (keepIfEmpty && body.written() === 0) return;
        const all = body.takePending();
        await send(() =>
          this.#client.send(
            new PutObjectCommand({
              Bucket: this.#bucket,
              Key: key,
              Body: all,
              ContentLength: all.length,
              ...objectParams,
            }),
          ),
        );
        return;
      }
      if (body.written() === 0) return;
      try {
        await body.finish();
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
      stream: body.stream,
      size: () => baseSize + body.written(),
      commit,
      cancel: async () => {
        finished = true;
        if (!body.stream.destroyed) body.stream.destroy();
        await abort();
      },
    };
  }

  async stat(path: string): Promise<FileInfo> {
    checkPath(path);
    if (path !== '/') {
      const head = await this.#head(path);
      if (head !== undefined) {
        const { size, modTime } = await this.#layout(path, head);
        return { path, size, modTime, isDir: false };
      }
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
        // A key ending in `/` is a folder marker some tools write, not a file; one with `~` is a segment.
        if (o.Key !== undefined && o.Key.length > prefix.length && !o.Key.endsWith('/')) {
          if (!o.Key.slice(prefix.length).includes('~')) children.push(this.#path(o.Key));
        }
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
    if (head.generation !== undefined) {
      // Joined into one plain object by one multipart upload; then the source goes, its key first, so that it
      // disappears at once, and its segments after.
      await this.#join(source, destination, (await this.#layout(source, head)).pieces);
      await this.#send(source, () =>
        this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(source) })),
      );
      await this.#deletePrefix(source, this.#segmentPrefix(source));
      return;
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
    return this.#copySourceKey(this.#key(path));
  }

  #copySourceKey(key: string): string {
    return `${this.#bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }

  /**
   * Writes the pieces of a segmented file, in order, as one plain object at `destination`: a multipart upload whose
   * parts copy large pieces on the server and send runs of small ones (see planParts), so each byte is copied once.
   */
  async #join(source: string, destination: string, pieces: readonly Piece[]): Promise<void> {
    const key = this.#key(destination);
    const { chunksize, multipartcopychunksize, multipartcopymaxconcurrency } = this.#options;
    const plan = planParts(pieces, multipartcopychunksize, chunksize);
    if (plan.length === 0) {
      await this.#send(destination, () =>
        this.#client.send(
          new PutObjectCommand({
            Bucket: this.#bucket,
            Key: key,
            Body: new Uint8Array(),
            ContentLength: 0,
            ...this.#objectParams(),
          }),
        ),
      );
      return;
    }
    if (plan.length > MAX_PARTS) {
      throw new Error(`s3: ${source} would take ${plan.length} parts to move, more than S3's ${MAX_PARTS}`);
    }
    const { UploadId } = await this.#send(destination, () =>
      this.#client.send(new CreateMultipartUploadCommand({ Bucket: this.#bucket, Key: key, ...this.#objectParams() })),
    );
    if (UploadId === undefined) throw new Error(`s3: ${this.#where}: CreateMultipartUpload gave no upload id`);
    try {
      const parts: CompletedPart[] = [];
      const numbered = plan.map((part, i) => ({ part, number: i + 1 }));
      const copy = async ({ part, number }: { part: PartPlan; number: number }): Promise<void> => {
        if (part.kind !== 'copy') return;
        const res = await this.#send(source, () =>
          this.#client.send(
            new UploadPartCopyCommand({
              Bucket: this.#bucket,
              Key: key,
              UploadId,
              PartNumber: number,
              CopySource: this.#copySourceKey(part.key),
              CopySourceRange: `bytes=${part.start}-${part.end}`,
            }),
          ),
        );
        parts.push({ PartNumber: number, ETag: res.CopyPartResult?.ETag });
      };
      // Sent parts are held in memory while they go up: a few at a time, as a writer's are.
      const sendPart = async ({ part, number }: { part: PartPlan; number: number }): Promise<void> => {
        if (part.kind !== 'send') return;
        const body = Buffer.alloc(part.size);
        let at = 0;
        for (const r of part.ranges) {
          for await (const chunk of await this.#getRange(source, r.key, r.start, r.end)) {
            const c = chunk as Buffer;
            c.copy(body, at);
            at += c.length;
          }
        }
        if (at !== part.size) throw new Error(`s3: ${source} changed while it was moved`);
        const res = await this.#send(destination, () =>
          this.#client.send(
            new UploadPartCommand({
              Bucket: this.#bucket,
              Key: key,
              UploadId,
              PartNumber: number,
              Body: body,
              ContentLength: body.length,
            }),
          ),
        );
        parts.push({ PartNumber: number, ETag: res.ETag });
      };
      await Promise.all([
        forEachLimit(
          numbered.filter((n) => n.part.kind === 'copy'),
          multipartcopymaxconcurrency,
          copy,
        ),
        forEachLimit(
          numbered.filter((n) => n.part.kind === 'send'),
          PART_CONCURRENCY,
          sendPart,
        ),
      ]);
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
      // The key first, so the file is gone at once; then its segments, of every generation.
      if (file.generation !== undefined) await this.#deletePrefix(path, this.#segmentPrefix(path));
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

  /** Aborts multipart uploads under the root directory that writers began before `olderThan` and never finished. */
  async abortIncomplete(olderThan: Date, dryRun: boolean): Promise<number> {
    return abortAbandonedUploads({
      client: this.#client,
      bucket: this.#bucket,
      prefix: this.#root,
      olderThan,
      dryRun,
      send: (call) => this.#send('/', call),
    });
  }

  /** A presigned URL on the bucket's endpoint (storage.redirect); see presign.ts. */
  async redirectURL(path: string, options: RedirectOptions): Promise<string> {
    checkPath(path);
    return this.#send(path, () => presignedURL(this.#client, this.#bucket, this.#key(path), options));
  }

  async close(): Promise<void> {
    this.#client.destroy();
    this.#agent?.destroy();
  }
}
