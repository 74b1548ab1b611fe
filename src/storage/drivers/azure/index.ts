// The Azure Blob driver: files are block blobs under `rootdirectory` in one container, and directories are implied by
// the names below them. A writer stages its bytes as uncommitted blocks, which no reader sees, and commit makes them
// the blob's block list at once; an appending writer commits the blob's existing blocks followed by its own, so the
// bytes already there are never downloaded again.
import { randomBytes } from 'node:crypto';
import { addAbortSignal, Readable } from 'node:stream';
import {
  BlobSASPermissions,
  BlobServiceClient,
  RestError,
  StorageRetryPolicyType,
  StorageSharedKeyCredential,
  type BlobBeginCopyFromUrlPollState,
  type BlockBlobClient,
  type ContainerClient,
  type StoragePipelineOptions,
} from '@azure/storage-blob';
import type { TokenCredential } from '@azure/identity';
import type { AzureStorageConfig } from '../../../config/schema.js';
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

/** The `storage.azure` settings the driver acts on (defaults applied by the config schema). */
export type AzureDriverOptions = Omit<AzureStorageConfig, 'driver' | 'skipverify'>;

export interface AzureTuning {
  /** Bytes per staged block: what one writer holds in memory per block in flight. */
  readonly blockSize?: number;
  /** Names per listing page (the service's largest by default); smaller in tests, to cross pages cheaply. */
  readonly listPageSize?: number;
  /** The first wait between polls of a pending copy (it doubles up to 5 s). */
  readonly copyPollMs?: number;
  /** The longest a move waits for a pending copy before it stops it and fails. */
  readonly copyTimeoutMs?: number;
}

/** 4 MiB blocks: Distribution's chunk, and 50,000 of them (a block blob's most) make 195 GiB. */
export const DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024;
/** Blocks of one writer in flight at once: memory per writer stays below (this + 1) × block size. */
const BLOCK_CONCURRENCY = 4;
/** Names per listing page: the service's largest. */
const LIST_MAX = 5000;
/** Deletes of one directory's blobs in flight at once. */
const DELETE_CONCURRENCY = 16;
/*
 * Moves. A move is one Copy Blob within the account, which S3's size thresholds have no counterpart for: Copy Blob
 * takes a block blob of any size (the synchronous Copy Blob From URL is the one limited to 256 MiB, and the driver
 * does not use it), and it replaces the destination at once. The service may answer it `pending` and finish in the
 * background; the move then polls the destination until the copy ends, and stops it when it takes too long, so that
 * no half-copied destination stays behind.
 */
/** The longest a move waits for a pending copy (a copy within one account is usually done at once). */
const COPY_TIMEOUT_MS = 10 * 60_000;
/** The first wait between polls of a pending copy. */
const COPY_POLL_MS = 500;
/** The longest wait between polls of a pending copy. */
const COPY_POLL_MAX_MS = 5_000;
/** Azure accepts SAS lifetimes of any length; Berth keeps to what S3 and GCS allow. */
const MAX_SAS_SECONDS = 7 * 24 * 3600;
/** Bytes before base64 of every block id this driver stages: all ids of one blob must have one length. */
const BLOCK_ID_BYTES = 24;

/** How requests are authorised, for error messages that name the settings to check. */
type AuthMode = 'connectionstring' | 'sharedkey' | 'clientsecret' | 'default';

/** A block id: the writer's random tag, what the block holds (`d` new data, `c` copied bytes) and its index. */
function blockId(tag: string, kind: 'd' | 'c', index: number): string {
  return Buffer.from(`${tag}${kind}${String(index).padStart(BLOCK_ID_BYTES - tag.length - 1, '0')}`).toString('base64');
}

function emptyStream(): Readable {
  return new Readable({
    read() {
      this.push(null);
    },
  });
}

/** The service's error code: from the body, or from x-ms-error-code where there is no body (HEAD). */
function errorCode(err: unknown): string {
  if (!(err instanceof RestError)) return err instanceof Error ? err.name : '';
  const details = err.details as { errorCode?: unknown } | undefined;
  return typeof details?.errorCode === 'string' ? details.errorCode : (err.code ?? '');
}

function httpStatus(err: unknown): number | undefined {
  return err instanceof RestError ? err.statusCode : undefined;
}

/** Failures of the credential itself (no identity found, a token refused), before any request reaches storage. */
const CREDENTIAL_ERRORS: ReadonlySet<string> = new Set([
  'CredentialUnavailableError',
  'AuthenticationError',
  'AuthenticationRequiredError',
  'AggregateAuthenticationError',
]);

/** A credential that loads @azure/identity on first use: only configurations without a key pay for it. */
function lazyCredential(create: (identity: typeof import('@azure/identity')) => TokenCredential): TokenCredential {
  let credential: Promise<TokenCredential> | undefined;
  return {
    getToken: async (scopes, options) => {
      credential ??= import('@azure/identity').then(create);
      return (await credential).getToken(scopes, options);
    },
  };
}

export class AzureDriver implements StorageDriver {
  readonly name = 'azure';
  readonly #container: ContainerClient;
  /** Blob name prefix of the root directory: `` or `some/dir/`. */
  readonly #root: string;
  readonly #blockSize: number;
  readonly #pageSize: number;
  readonly #copyPollMs: number;
  readonly #copyTimeoutMs: number;
  readonly #auth: AuthMode;
  /** Where requests go, for error messages. */
  readonly #where: string;

  constructor(options: AzureDriverOptions, tuning: AzureTuning = {}) {
    const root = options.rootdirectory.replace(/^\/+|\/+$/g, '');
    this.#root = root === '' ? '' : `${root}/`;
    this.#blockSize = tuning.blockSize ?? DEFAULT_BLOCK_SIZE;
    this.#pageSize = tuning.listPageSize ?? LIST_MAX;
    this.#copyPollMs = tuning.copyPollMs ?? COPY_POLL_MS;
    this.#copyTimeoutMs = tuning.copyTimeoutMs ?? COPY_TIMEOUT_MS;
    const pipeline: StoragePipelineOptions = {
      retryOptions: {
        retryPolicyType: StorageRetryPolicyType.EXPONENTIAL,
        maxTries: Math.max(1, options.max_retries + 1),
        retryDelayInMs: options.retry_delay,
        maxRetryDelayInMs: Math.max(options.retry_delay, 10_000),
      },
      userAgentOptions: { userAgentPrefix: 'berth' },
    };
    let service: BlobServiceClient;
    const type = options.credentials?.type;
    if (options.connectionstring !== '') {
      this.#auth = 'connectionstring';
      service = BlobServiceClient.fromConnectionString(options.connectionstring, pipeline);
    } else {
      const url =
        options.serviceurl !== '' ? options.serviceurl : `https://${options.accountname}.blob.${options.realm}`;
      if (type === 'client_secret') {
        this.#auth = 'clientsecret';
        const { tenantid, clientid, secret } = options.credentials ?? { tenantid: '', clientid: '', secret: '' };
        service = new BlobServiceClient(
          url,
          lazyCredential((identity) => new identity.ClientSecretCredential(tenantid, clientid, secret)),
          pipeline,
        );
      } else if (options.accountkey !== '' && type !== 'default_credentials') {
        this.#auth = 'sharedkey';
        service = new BlobServiceClient(
          url,
          new StorageSharedKeyCredential(options.accountname, options.accountkey),
          pipeline,
        );
      } else {
        // No key: workload identity on AKS (its federated token in the pod), managed identity, the environment.
        this.#auth = 'default';
        service = new BlobServiceClient(
          url,
          lazyCredential((identity) => new identity.DefaultAzureCredential()),
          pipeline,
        );
      }
    }
    this.#container = service.getContainerClient(options.container);
    this.#where = `container ${options.container} at ${service.url.split('?')[0]?.replace(/\/+$/, '')}`;
  }

  #name(path: string): string {
    return path === '/' ? this.#root : this.#root + path.slice(1);
  }

  /** Name prefix of a directory's children. */
  #dirPrefix(path: string): string {
    return path === '/' ? this.#root : `${this.#root}${path.slice(1)}/`;
  }

  #path(name: string): string {
    return `/${name.slice(this.#root.length)}`;
  }

  #blob(path: string): BlockBlobClient {
    return this.#container.getBlockBlobClient(this.#name(path));
  }

  /** The settings that choose the credential, for messages about a refused one. */
  #credentialSettings(): string {
    switch (this.#auth) {
      case 'connectionstring':
        return 'storage.azure.connectionstring';
      case 'sharedkey':
        return 'storage.azure.accountname and storage.azure.accountkey';
      case 'clientsecret':
        return 'storage.azure.credentials (tenantid, clientid, secret) and the role assignment';
      case 'default':
        return 'the identity DefaultAzureCredential found (workload identity: the service account and its role on the account), or set storage.azure.accountkey';
    }
  }

  /** Turns an SDK failure into PathNotFound, or an error that says which setting to check. */
  #fail(err: unknown, path: string): Error {
    const code = errorCode(err);
    const status = httpStatus(err);
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
    if (code === 'ContainerNotFound') {
      return new Error(`azure: ${this.#where}: the container does not exist (storage.azure.container)`, {
        cause: err,
      });
    }
    if (status === 404) return new StorageError('PathNotFound', path);
    if (CREDENTIAL_ERRORS.has(code)) {
      // No request was made: the credential found no identity, or Entra ID refused it. An aggregate (the default
      // chain) says why each source failed.
      const errors = (err as { errors?: unknown }).errors;
      const why = Array.isArray(errors)
        ? errors.map((e) => (e instanceof Error ? e.message : String(e)).split('\n')[0]).join('; ')
        : message;
      return new Error(
        `azure: ${this.#where}: no token for the storage account (${code}: ${why.slice(0, 1000)}); check ` +
          this.#credentialSettings(),
        { cause: err },
      );
    }
    if (status === 403) {
      return new Error(
        `azure: ${this.#where} refused the credentials (${code}: ${message}); check ${this.#credentialSettings()}`,
        { cause: err },
      );
    }
    if (err instanceof Error) {
      // Network failures name the endpoint, so that a wrong serviceurl or realm is plain in the log.
      if (status === undefined && err.name !== 'AbortError') err.message = `azure: ${this.#where}: ${err.message}`;
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

  /** A blob's size, time and etag, or undefined when there is none at the path. */
  async #head(path: string): Promise<{ size: number; modTime: Date; etag: string | undefined } | undefined> {
    try {
      const props = await this.#blob(path).getProperties();
      return { size: props.contentLength ?? 0, modTime: props.lastModified ?? new Date(0), etag: props.etag };
    } catch (err) {
      const failure = this.#fail(err, path);
      if (failure instanceof StorageError) return undefined;
      throw failure;
    }
  }

  /** Whether any blob lies below the directory `path`. */
  async #hasChildren(path: string): Promise<boolean> {
    const pages = this.#container.listBlobsFlat({ prefix: this.#dirPrefix(path) }).byPage({ maxPageSize: 1 });
    const page = await this.#send(path, () => pages.next());
    return !page.done && page.value.segment.blobItems.length > 0;
  }

  async getContent(path: string): Promise<Buffer> {
    checkPath(path);
    return this.#send(path, async () => {
      const res = await this.#blob(path).download(0);
      const chunks: Buffer[] = [];
      for await (const chunk of res.readableStreamBody ?? emptyStream()) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    });
  }

  async putContent(path: string, content: Uint8Array): Promise<void> {
    checkPath(path);
    // One Put Blob replaces the blob at once; the SDK takes it from the buffer as it is now.
    const body = Buffer.from(content);
    await this.#send(path, () => this.#blob(path).upload(body, body.length));
  }

  async reader(path: string, options: ReadOptions = {}): Promise<Readable> {
    checkPath(path);
    // The whole-number checks now; the size check once the service has answered, so a read costs one request.
    const offset = checkReadRange(path, options, Number.MAX_SAFE_INTEGER);
    const { length, signal } = options;
    const atEnd = async (): Promise<Readable> => {
      const head = await this.#head(path);
      if (head === undefined) throw new StorageError('PathNotFound', path);
      checkReadRange(path, options, head.size);
      return emptyStream();
    };
    if (length === 0) return atEnd();
    let body: NodeJS.ReadableStream | undefined;
    try {
      // The SDK resumes a broken download where it stopped, on the same etag: never bytes of another version.
      const res = await this.#blob(path).download(offset, length, {
        ...(signal === undefined ? {} : { abortSignal: signal }),
      });
      body = res.readableStreamBody;
    } catch (err) {
      // 416: the range starts at or past the end. At the end it is an empty read, past it InvalidOffset.
      if (httpStatus(err) !== 416) throw this.#fail(err, path);
      return atEnd();
    }
    if (body === undefined) return emptyStream();
    if (!(body instanceof Readable)) throw new Error(`azure: ${this.#where}: download gave no Node stream for ${path}`);
    return signal === undefined ? body : addAbortSignal(signal, body);
  }

  async writer(path: string, append: boolean): Promise<FileWriter> {
    checkPath(path);
    const blob = this.#blob(path);
    const blockSize = this.#blockSize;
    const tag = randomBytes(8).toString('hex');
    const head = append ? await this.#head(path) : undefined;
    const baseSize = head?.size ?? 0;
    // An append keeps the blob's committed blocks when this driver wrote them (ids of our length, and all the bytes);
    // else its bytes are copied into blocks of our own at commit (a blob from putContent, or from another tool).
    let kept: string[] = [];
    let copyBase = false;
    if (head !== undefined && head.size > 0) {
      const list = await this.#send(path, () => blob.getBlockList('committed'));
      const blocks = list.committedBlocks ?? [];
      const ours = blockId(tag, 'd', 0).length;
      const total = blocks.reduce((n, b) => n + b.size, 0);
      if (blocks.length > 0 && total === head.size && blocks.every((b) => b.name.length === ours)) {
        kept = blocks.map((b) => b.name);
      } else {
        copyBase = true;
      }
    }
    const abort = new AbortController();
    let finished = false;

    const send = <T>(call: () => Promise<T>): Promise<T> => this.#send(path, call);
    // Blocks of blockSize go up as they fill; their ids, in order, are what commit makes the blob of.
    const staged: string[] = [];
    const body = partStream({
      partSize: blockSize,
      concurrency: BLOCK_CONCURRENCY,
      upload: async (block, index) => {
        const id = blockId(tag, 'd', index);
        staged[index] = id;
        await send(() => blob.stageBlock(id, block, block.length, { abortSignal: abort.signal }));
      },
    });
    /** Stages the blob's current bytes, a block at a time, as blocks of this writer. */
    const copyExisting = async (): Promise<string[]> => {
      const ids: string[] = [];
      for (let offset = 0; offset < baseSize; offset += blockSize) {
        const count = Math.min(blockSize, baseSize - offset);
        const chunk = await send(() =>
          blob.downloadToBuffer(offset, count, {
            abortSignal: abort.signal,
            ...(head?.etag === undefined ? {} : { conditions: { ifMatch: head.etag } }),
          }),
        );
        const id = blockId(tag, 'c', ids.length);
        await send(() => blob.stageBlock(id, chunk, chunk.length, { abortSignal: abort.signal }));
        ids.push(id);
      }
      return ids;
    };

    const commit = async (): Promise<void> => {
      if (finished) throw new Error('writer already finished');
      finished = true;
      // Nothing to add to a blob that is there: it stays as it is.
      if (head !== undefined && body.written() === 0) return;
      await body.finish();
      const base = copyBase ? await copyExisting() : kept;
      // The etag condition makes an append fail, rather than splice, when the blob changed since it was opened.
      await send(() =>
        blob.commitBlockList(
          [...base, ...staged],
          head?.etag === undefined ? {} : { conditions: { ifMatch: head.etag } },
        ),
      );
    };

    return {
      stream: body.stream,
      size: () => baseSize + body.written(),
      commit,
      // Staged blocks that are never committed are not part of the blob; the service drops them (at the next commit
      // of the blob, or after a week).
      cancel: async () => {
        finished = true;
        abort.abort();
        if (!body.stream.destroyed) body.stream.destroy();
        await body.settle();
      },
    };
  }

  async stat(path: string): Promise<FileInfo> {
    checkPath(path);
    if (path !== '/') {
      const head = await this.#head(path);
      if (head !== undefined) return { path, size: head.size, modTime: head.modTime, isDir: false };
    }
    // The root too makes a request, so that /readyz's stat of it proves the container and the credentials.
    if (await this.#hasChildren(path)) return { path, size: 0, modTime: new Date(0), isDir: true };
    throw new StorageError('PathNotFound', path);
  }

  async list(path: string): Promise<string[]> {
    checkPath(path);
    const prefix = this.#dirPrefix(path);
    const children: string[] = [];
    const pages = this.#container.listBlobsByHierarchy('/', { prefix }).byPage({ maxPageSize: this.#pageSize });
    for (;;) {
      const page = await this.#send(path, () => pages.next());
      if (page.done) break;
      const { blobPrefixes = [], blobItems } = page.value.segment;
      // A prefix of `a//` (a name with an empty segment) is no directory of ours.
      for (const p of blobPrefixes)
        if (p.name.length > prefix.length + 1) children.push(this.#path(p.name.slice(0, -1)));
      for (const b of blobItems)
        if (b.name.length > prefix.length && !b.name.endsWith('/')) children.push(this.#path(b.name));
    }
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
    const from = this.#blob(source);
    const to = this.#blob(destination);
    // Exactly the version statted: a source replaced meanwhile fails the copy rather than moving other bytes.
    // The SDK's poller only starts the copy: it would poll without end (and never notice a copy aborted by someone
    // else), so the loop below polls instead.
    const poller = await this.#send(source, () =>
      to.beginCopyFromURL(from.url, head.etag === undefined ? {} : { sourceConditions: { ifMatch: head.etag } }),
    );
    // The copy poller's state (its public type omits the copy id, which stopping the copy needs).
    const started = poller.getOperationState() as BlobBeginCopyFromUrlPollState;
    let status: string | undefined = started.isCompleted ? started.result?.copyStatus : 'pending';
    let description: string | undefined;
    const deadline = Date.now() + this.#copyTimeoutMs;
    for (let wait = this.#copyPollMs; status === 'pending'; wait = Math.min(2 * wait, COPY_POLL_MAX_MS)) {
      if (Date.now() + wait > deadline) {
        await this.#stopCopy(to, started.copyId);
        throw new Error(
          `azure: ${this.#where}: copying ${source} to ${destination} was still pending after ` +
            `${this.#copyTimeoutMs / 1000} s; stopped it`,
        );
      }
      await new Promise((r) => setTimeout(r, wait));
      const props = await this.#send(destination, () => to.getProperties());
      if (props.copyId !== started.copyId) {
        throw new Error(`azure: ${this.#where}: ${destination} was replaced while ${source} was copied onto it`);
      }
      status = props.copyStatus;
      description = props.copyStatusDescription;
    }
    if (status !== undefined && status !== 'success') {
      throw new Error(
        `azure: ${this.#where}: copying ${source} to ${destination} ended ${status}` +
          (description === undefined ? '' : ` (${description})`),
      );
    }
    await this.#send(source, () => from.deleteIfExists());
  }

  /**
   * Stops a pending copy and deletes what it left (a stopped copy leaves an empty destination), unless the copy
   * finished or another write replaced the destination meanwhile. Best effort: the move fails either way.
   */
  async #stopCopy(to: BlockBlobClient, copyId: string | undefined): Promise<void> {
    if (copyId === undefined) return;
    await to.abortCopyFromURL(copyId).catch(() => undefined);
    const props = await to.getProperties().catch(() => undefined);
    if (props?.copyId === copyId && props.copyStatus !== 'success') {
      await to
        .deleteIfExists(props.etag === undefined ? {} : { conditions: { ifMatch: props.etag } })
        .catch(() => undefined);
    }
  }

  async delete(path: string): Promise<void> {
    checkPath(path);
    const [file, removed] = await Promise.all([
      path === '/'
        ? Promise.resolve(false)
        : this.#send(path, async () => (await this.#blob(path).deleteIfExists()).succeeded),
      this.#deletePrefix(path),
    ]);
    if (!file && removed === 0 && path !== '/') throw new StorageError('PathNotFound', path);
  }

  /** Deletes every blob under the directory `path`, a listing page at a time; resolves how many. */
  async #deletePrefix(path: string): Promise<number> {
    let removed = 0;
    const pages = this.#container
      .listBlobsFlat({ prefix: this.#dirPrefix(path) })
      .byPage({ maxPageSize: this.#pageSize });
    for (;;) {
      const page = await this.#send(path, () => pages.next());
      if (page.done) return removed;
      const names = page.value.segment.blobItems.map((b) => b.name);
      await forEachLimit(names, DELETE_CONCURRENCY, async (name) => {
        await this.#send(path, () => this.#container.getBlobClient(name).deleteIfExists());
      });
      removed += names.length;
    }
  }

  /**
   * A read-only SAS URL for the blob, signed locally with the account key. Without a key (a token credential) it
   * resolves undefined, and the caller streams: a user-delegation SAS would cost a request.
   */
  async redirectURL(path: string, { expiresInSeconds }: RedirectOptions): Promise<string | undefined> {
    checkPath(path);
    const blob = this.#blob(path);
    if (!(blob.credential instanceof StorageSharedKeyCredential)) return undefined;
    const seconds = Math.min(MAX_SAS_SECONDS, Math.max(1, Math.floor(expiresInSeconds)));
    return blob.generateSasUrl({
      permissions: BlobSASPermissions.parse('r'),
      expiresOn: new Date(Date.now() + seconds * 1000),
    });
  }

  async close(): Promise<void> {
    // The SDK's pipeline keeps no timers, and its keep-alive sockets do not hold the process open.
  }
}
