// The Koa application: one error boundary that renders every failure as the OCI envelope, request ids and access
// logs, then dispatch through the route table.
import { randomUUID } from 'node:crypto';
import Koa from 'koa';
import type { Logger } from 'pino';
import { OPEN_GRANT, type Grant } from '../auth/index.js';
import { envelope, RegistryError } from '../oci/errors.js';
import { checkName } from '../oci/names.js';
import { ContentMismatch } from '../storage/blobs.js';
import { requiredAccess } from './access.js';
import { Urls, type Ctx, type RegistryDeps, type RegistryState } from './context.js';
import { blobHandlers } from './handlers/blobs.js';
import { listingHandlers } from './handlers/listings.js';
import { manifestHandlers } from './handlers/manifests.js';
import type { HttpMetrics } from './metrics.js';
import { contentLength } from './http.js';
import { ALLOWED_METHODS, matchRoute, type RouteName } from './routes.js';
import { fromStorage } from './storage-errors.js';

type Handler = (ctx: Ctx, name: string, param: string) => Promise<void>;

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Whether the client's own connection failed. Told by its socket, not by the error's code nor the request stream: a
 * store that fails mid-push fails with ECONNRESET or ECONNREFUSED too, and the upload's pipeline then destroys the
 * request stream; that is the store's failure, which the client must get as a 5xx it may retry, not a 400.
 */
function isClientAbort(ctx: Ctx): boolean {
  // The request lets go of its socket when the pipeline destroys it; the response holds on to it until it ends.
  const socket = ctx.res.socket ?? (ctx.req.socket as typeof ctx.req.socket | null);
  return socket === null || socket.destroyed;
}

function render(ctx: Ctx, err: RegistryError): void {
  ctx.status = err.status;
  for (const [k, v] of Object.entries(err.headers)) ctx.set(k, v);
  ctx.body = envelope(err);
  ctx.type = 'application/json';
  // A refused push (too large, or not allowed) may still be sending: let it finish so the client reads the answer.
  if (err.status === 413 || err.status === 401 || err.status === 403 || err.status === 429) discardBody(ctx);
}

/** How much of a refused body is read and dropped so that its client gets the answer; past it the connection goes. */
const DISCARD_LIMIT = 64 * 1024 * 1024;

/**
 * A refused body may still be arriving. Closing at once would reset the connection under a client that is still
 * sending, which then often loses the answer; so read and drop the rest, up to a bound.
 */
function discardBody(ctx: Ctx): void {
  const req = ctx.req;
  if (req.complete || req.destroyed) return;
  const declared = contentLength(req);
  if (declared !== undefined && declared > DISCARD_LIMIT) {
    ctx.set('Connection', 'close');
    return;
  }
  let dropped = 0;
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > DISCARD_LIMIT) req.socket.destroy();
  });
  req.resume();
}

/**
 * A request's state, its logger made on first use: most requests log once at the end, and some not at all. The
 * getter lives on the class, never on the object: an accessor defined per request (Object.defineProperty) gave
 * every request's state a hidden class of its own, holding its closure (and through that the request) from old
 * space, so every request's objects survived the young-generation collections, and the collector copied and
 * promoted them all: long pauses, and a tail latency several times the median (see d7a52eb).
 */
export class RequestState implements RegistryState {
  readonly requestId: string;
  route: RegistryState['route'] = 'unknown';
  grant: Grant = OPEN_GRANT;
  readonly #root: Logger;
  #child: Logger | undefined;

  constructor(root: Logger, requestId: string) {
    this.#root = root;
    this.requestId = requestId;
  }

  get log(): Logger {
    return (this.#child ??= this.#root.child({ reqId: this.requestId }));
  }
}

export function createApp(deps: RegistryDeps, metrics?: HttpMetrics): Koa<RegistryState> {
  const app = new Koa<RegistryState>({ proxy: false });
  const urls = new Urls(deps.config);
  const blobs = blobHandlers(deps, urls);
  const manifests = manifestHandlers(deps, urls);
  const listings = listingHandlers(deps, urls);
  const prefix = (deps.config.http.prefix ?? '').replace(/\/+$/, '');
  const extraHeaders = Object.entries(deps.config.http.headers);
  const accessLog = !deps.config.log.accesslog.disabled;

  const table: Readonly<Record<RouteName, Readonly<Record<string, Handler>>>> = {
    base: { GET: listings.base },
    catalog: { GET: listings.catalog },
    tags: { GET: listings.tags },
    manifest: { GET: manifests.getManifest, PUT: manifests.putManifest, DELETE: manifests.deleteManifest },
    blob: { GET: blobs.getBlob, DELETE: blobs.deleteBlob },
    'upload-start': { POST: blobs.startUpload },
    upload: { GET: blobs.uploadStatus, PATCH: blobs.patchUpload, PUT: blobs.putUpload, DELETE: blobs.cancelUpload },
    referrers: { GET: listings.referrers },
  };

  // Koa reports a failed response twice (its stream pipeline and its on-finished hook), with the same error.
  const reported = new WeakSet<ContentMismatch>();
  /** Logs and counts stored content that is not served; the client gets an error or a cut connection. */
  const contentMismatch = (ctx: Ctx | undefined, err: ContentMismatch): void => {
    if (reported.has(err)) return;
    reported.add(err);
    const kind = ctx?.state.route === 'manifest' ? 'manifest' : 'blob';
    metrics?.contentMismatch(kind, err.reason);
    (ctx?.state.log ?? deps.log).error(
      { kind, path: err.path, digest: err.digest.value, reason: err.reason, detail: err.message },
      'stored content does not match its digest; not served',
    );
  };

  app.on('error', (err: unknown, ctx?: Ctx) => {
    // Stream failures after the headers went out land here; the socket is already gone.
    if (err instanceof ContentMismatch) return contentMismatch(ctx, err);
    const log = ctx?.state.log ?? deps.log;
    log.warn({ err }, 'response stream failed');
  });

  // The boundary: request id, standard headers, OCI error rendering, access log and metrics.
  app.use(async (ctx, next) => {
    const started = process.hrtime.bigint();
    const incoming = ctx.get('X-Request-Id');
    const requestId = REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state = new RequestState(deps.log, requestId);
    ctx.set('X-Request-Id', requestId);
    ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
    for (const [k, v] of extraHeaders) ctx.set(k, v);
    metrics?.started();
    ctx.res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      // A HEAD, a 204 and a 304 announce a length they never send.
      const bodiless = ctx.method === 'HEAD' || ctx.status === 204 || ctx.status === 304;
      const bytes = bodiless ? 0 : Number(ctx.res.getHeader('Content-Length') ?? 0);
      metrics?.finished(ctx.method, ctx.state.route, ctx.status, seconds, bytes);
      if (accessLog) {
        ctx.state.log.info(
          {
            method: ctx.method,
            route: ctx.state.route,
            path: ctx.path,
            status: ctx.status,
            bytes,
            durationMs: Math.round(seconds * 1e6) / 1e3,
            completed: ctx.res.writableFinished,
          },
          'request',
        );
      }
    });
    try {
      await next();
    } catch (thrown) {
      const err = fromStorage(thrown);
      if (thrown instanceof ContentMismatch) {
        contentMismatch(ctx, thrown);
        render(ctx, err as RegistryError);
      } else if (err instanceof RegistryError) {
        if (err.status >= 500) ctx.state.log.error({ err }, 'request failed');
        render(ctx, err);
      } else if (isClientAbort(ctx)) {
        ctx.state.log.info({ err: String(err) }, 'client went away');
        render(ctx, new RegistryError('BLOB_UPLOAD_INVALID', { message: 'the request body ended early', status: 400 }));
      } else {
        ctx.state.log.error({ err }, 'unexpected failure');
        render(ctx, new RegistryError('UNKNOWN', { message: `internal error; quote request id ${requestId}` }));
      }
    }
  });

  app.use(async (ctx) => {
    let path = ctx.path;
    if (prefix !== '') {
      if (!path.startsWith(`${prefix}/`))
        throw new RegistryError('UNSUPPORTED', { status: 404, message: `no such endpoint: ${ctx.method} ${path}` });
      path = path.slice(prefix.length);
    }
    const match = matchRoute(path);
    if (match === undefined)
      throw new RegistryError('UNSUPPORTED', {
        status: 404,
        message: `no such endpoint: ${ctx.method} ${path.slice(0, 200)}`,
      });
    ctx.state.route = match.route;
    const methods = table[match.route];
    const handler = methods[ctx.method] ?? (ctx.method === 'HEAD' ? methods['GET'] : undefined);
    if (handler === undefined) {
      throw new RegistryError('UNSUPPORTED', {
        message: `${ctx.method} is not supported on this endpoint`,
        headers: { Allow: ALLOWED_METHODS[match.route].join(', ') },
      });
    }
    if (match.route !== 'base' && match.route !== 'catalog') checkName(match.name);
    if (deps.auth !== undefined) {
      const { needed, wanted } = requiredAccess(match.route, ctx.method, match.name, ctx.query);
      // Only the header: a token in the query string (access_token) is never read.
      const authorization = ctx.req.headers.authorization;
      ctx.state.grant = await deps.auth.authorize(
        {
          authorization,
          address: ctx.req.socket.remoteAddress ?? '',
          host: ctx.host,
          secure: 'encrypted' in ctx.req.socket && ctx.req.socket.encrypted === true,
        },
        needed,
        wanted,
      );
    }
    await handler(ctx, match.name, match.param);
  });

  return app;
}
