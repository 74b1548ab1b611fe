// Blob reads and deletes, and the upload endpoints: sessions, chunks, monolithic pushes and cross-repository mounts.
import { RegistryError, type ErrorCode } from '../../oci/errors.js';
import { digestOrUndefined, parseDigest, type Digest } from '../../oci/digest.js';
import { isValidName } from '../../oci/names.js';
import { ReadCheck, type BlobDescriptor } from '../../storage/blobs.js';
import type { Repository } from '../../storage/registry.js';
import { emptyBody, type Ctx, type RegistryDeps, type Urls } from '../context.js';
import { contentLength, hasBody, noneMatch, parseContentRange, parseRange, queryString } from '../http.js';
import { recordEvent } from '../events.js';
import { sendFile } from '../send-file.js';
import { UploadSigner } from '../upload-state.js';

/** What storage throws for something a repository does not hold. */
const MISSING: ReadonlySet<ErrorCode> = new Set(['BLOB_UNKNOWN', 'MANIFEST_UNKNOWN', 'BLOB_UPLOAD_UNKNOWN']);

/** Throws NAME_UNKNOWN for a repository nothing was pushed to, else rethrows `err`. */
export async function explainMissing(repo: Repository, err: unknown): Promise<never> {
  if (err instanceof RegistryError && MISSING.has(err.code) && !(await repo.exists())) {
    throw new RegistryError('NAME_UNKNOWN', { detail: { name: repo.name } });
  }
  throw err;
}

/** A blob descriptor's fields as an event target has them. */
function descriptorOf(desc: BlobDescriptor): { digest: string; mediaType: string; size: number } {
  return { digest: desc.digest.value, mediaType: desc.mediaType, size: desc.size };
}

export function writable(deps: RegistryDeps): void {
  if (deps.config.readOnly) throw new RegistryError('UNSUPPORTED', { message: 'the registry is in read-only mode' });
}

function deletable(deps: RegistryDeps): void {
  if (!deps.config.deleteEnabled) {
    throw new RegistryError('UNSUPPORTED', { message: 'deletes are disabled (storage.delete.enabled is false)' });
  }
}

function requireDigest(raw: unknown) {
  const value = queryString(raw);
  if (value === undefined || value === '')
    throw new RegistryError('DIGEST_INVALID', { message: 'the digest query parameter is required' });
  return parseDigest(value);
}

export function blobHandlers(deps: RegistryDeps, urls: Urls) {
  const { storage } = deps;
  const secret = deps.config.http.secret ?? '';
  const signer = secret === '' ? undefined : new UploadSigner(secret);

  /** The request's `_state`, checked against the session when upload locations are signed. */
  function uploadState(ctx: Ctx, name: string, id: string): string | undefined {
    if (signer === undefined) return undefined;
    const state = queryString(ctx.query['_state']);
    signer.verify(state, name, id, ctx.state.grant.user);
    return state;
  }

  /**
   * storage.redirect: answers 307 to the URL the driver hands out for the blob, if it hands one out, and says whether
   * it did. Called only after the blob was found in the repository (and the route checked the client may pull).
   */
  async function redirectBlob(ctx: Ctx, digest: Digest): Promise<boolean> {
    if (!deps.config.redirect) return false;
    const location = await storage.blobs.redirectURL(digest, {
      method: 'GET',
      expiresInSeconds: Math.floor(deps.config.redirectExpiry / 1000),
    });
    if (location === undefined) return false;
    // The URL expires, so no cache may keep the redirect; the blob's own validators belong to the bytes' answer.
    ctx.remove('ETag');
    ctx.remove('Accept-Ranges');
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Location', location);
    emptyBody(ctx, 307);
    ctx.set('Content-Length', '0');
    ctx.state.log.debug({ digest: digest.value }, 'blob read redirected to storage');
    return true;
  }

  async function getBlob(ctx: Ctx, name: string, param: string): Promise<void> {
    const digest = parseDigest(param);
    const repo = storage.repository(name);
    const desc = await repo.statter.stat(digest).catch((err: unknown) => explainMissing(repo, err));
    const etag = `"${digest.value}"`;
    ctx.set('Docker-Content-Digest', digest.value);
    ctx.set('ETag', etag);
    ctx.set('Accept-Ranges', 'bytes');
    ctx.set('Cache-Control', 'max-age=31536000');
    if (noneMatch(ctx.get('If-None-Match'), digest.value)) {
      ctx.status = 304;
      return;
    }
    if (ctx.method === 'GET' && (await redirectBlob(ctx, digest))) {
      recordEvent(deps, ctx, 'pull', { repository: name, ...descriptorOf(desc), url: urls.blob(name, digest.value) });
      return;
    }
    const range = parseRange(ctx.get('Range') || undefined, desc.size);
    const start = range?.start ?? 0;
    const length = range === undefined ? desc.size : range.end - range.start + 1;
    ctx.status = range === undefined ? 200 : 206;
    ctx.type = desc.mediaType;
    if (range !== undefined) ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${desc.size}`);
    ctx.set('Content-Length', String(length));
    if (ctx.method === 'HEAD') return;
    recordEvent(deps, ctx, 'pull', { repository: name, ...descriptorOf(desc), url: urls.blob(name, digest.value) });
    const file = length > 0 ? await storage.blobs.openFile(digest) : undefined;
    if (file !== undefined) {
      // Past this point Koa leaves the response to sendFile; its status and headers are already set.
      ctx.respond = false;
      try {
        await sendFile(ctx.res, file, start, length, {
          check: storage.blobs.readCheck(digest, start, length, desc.size),
          // As Koa does for a stream body that fails once under way: the app's error listener logs and counts it.
          onCut: (err) => ctx.app.emit('error', err, ctx),
        });
      } catch (err) {
        ctx.respond = true;
        throw err;
      }
      return;
    }
    // An empty read has no last chunk to hold back: an empty blob's content is checked before anything is sent.
    if (length === 0 && range === undefined) new ReadCheck(digest, 0, 0, 0).finish();
    ctx.body = await storage.blobs.open(digest, start, length, desc.size);
  }

  async function deleteBlob(ctx: Ctx, name: string, param: string): Promise<void> {
    writable(deps);
    deletable(deps);
    const digest = parseDigest(param);
    const repo = storage.repository(name);
    await repo.blobs.unlink(digest).catch((err: unknown) => explainMissing(repo, err));
    ctx.set('Docker-Content-Digest', digest.value);
    emptyBody(ctx, 202);
    recordEvent(deps, ctx, 'delete', { repository: name, digest: digest.value, url: urls.blob(name, digest.value) });
  }

  function sessionHeaders(ctx: Ctx, name: string, id: string, size: number, state: string | undefined): void {
    ctx.set('Location', urls.upload(name, id, state));
    ctx.set('Range', `0-${Math.max(size - 1, 0)}`);
    ctx.set('Docker-Upload-UUID', id);
  }

  function created(ctx: Ctx, name: string, digest: string): void {
    ctx.set('Location', urls.blob(name, digest));
    ctx.set('Docker-Content-Digest', digest);
    emptyBody(ctx, 201);
  }

  async function startUpload(ctx: Ctx, name: string): Promise<void> {
    writable(deps);
    const repo = storage.repository(name);
    const mount = queryString(ctx.query['mount']);
    if (mount !== undefined) {
      // A malformed digest, like a missing or bad `from`, is simply not mountable (as in CNCF Distribution).
      const digest = digestOrUndefined(mount);
      const from = queryString(ctx.query['from']);
      // Mounting reads the source: without pull on it, the client gets an ordinary session instead (and learns nothing).
      const readable = from !== undefined && ctx.state.grant.allows('repository', from, 'pull');
      if (digest !== undefined && from !== undefined && from !== name && isValidName(from) && readable) {
        try {
          const desc = await storage.repository(from).statter.stat(digest);
          await repo.blobs.link(digest);
          created(ctx, name, digest.value);
          recordEvent(deps, ctx, 'mount', {
            repository: name,
            ...descriptorOf(desc),
            url: urls.blob(name, digest.value),
            fromRepository: from,
          });
          return;
        } catch (err) {
          if (!(err instanceof RegistryError && err.code === 'BLOB_UNKNOWN')) throw err;
        }
      }
      // Not mountable: fall back to an ordinary session, as the spec asks.
    }
    const monolithic = queryString(ctx.query['digest']);
    if (monolithic !== undefined) {
      const digest = parseDigest(monolithic);
      const session = await repo.uploads.create();
      let desc: BlobDescriptor;
      try {
        const length = contentLength(ctx.req);
        desc = await repo.uploads.commit(session.id, digest, ctx.req, length === undefined ? {} : { length });
      } catch (err) {
        await repo.uploads.cancel(session.id).catch(() => undefined);
        throw err;
      }
      created(ctx, name, digest.value);
      recordEvent(deps, ctx, 'push', { repository: name, ...descriptorOf(desc), url: urls.blob(name, digest.value) });
      return;
    }
    const session = await repo.uploads.create();
    const state = signer?.sign(name, session.id, session.startedAt, ctx.state.grant.user);
    sessionHeaders(ctx, name, session.id, 0, state);
    ctx.set('OCI-Chunk-Min-Length', '0');
    emptyBody(ctx, 202);
  }

  async function uploadStatus(ctx: Ctx, name: string, id: string): Promise<void> {
    const state = uploadState(ctx, name, id);
    const status = await storage.repository(name).uploads.status(id);
    sessionHeaders(ctx, name, id, status.size, state);
    emptyBody(ctx, 204);
  }

  async function patchUpload(ctx: Ctx, name: string, id: string): Promise<void> {
    writable(deps);
    const state = uploadState(ctx, name, id);
    const range = parseContentRange(ctx.get('Content-Range') || undefined);
    const length = contentLength(ctx.req);
    const status = await storage.repository(name).uploads.append(id, ctx.req, {
      ...(range === undefined ? {} : { range }),
      ...(length === undefined ? {} : { length }),
    });
    sessionHeaders(ctx, name, id, status.size, state);
    emptyBody(ctx, 202);
  }

  async function putUpload(ctx: Ctx, name: string, id: string): Promise<void> {
    writable(deps);
    uploadState(ctx, name, id);
    const digest = requireDigest(ctx.query['digest']);
    const uploads = storage.repository(name).uploads;
    let desc: BlobDescriptor;
    if (hasBody(ctx.req)) {
      const range = parseContentRange(ctx.get('Content-Range') || undefined);
      const length = contentLength(ctx.req);
      desc = await uploads.commit(id, digest, ctx.req, {
        ...(range === undefined ? {} : { range }),
        ...(length === undefined ? {} : { length }),
      });
    } else {
      desc = await uploads.commit(id, digest);
    }
    created(ctx, name, digest.value);
    recordEvent(deps, ctx, 'push', { repository: name, ...descriptorOf(desc), url: urls.blob(name, digest.value) });
  }

  async function cancelUpload(ctx: Ctx, name: string, id: string): Promise<void> {
    writable(deps);
    uploadState(ctx, name, id);
    await storage.repository(name).uploads.cancel(id);
    emptyBody(ctx, 204);
  }

  return { getBlob, deleteBlob, startUpload, uploadStatus, patchUpload, putUpload, cancelUpload };
}
