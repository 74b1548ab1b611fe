// Manifest pulls, pushes and deletes by tag or digest, with content negotiation on Accept.
import { RegistryError } from '../../oci/errors.js';
import { parseDigest, type Digest } from '../../oci/digest.js';
import { accepts, MAX_MANIFEST_BYTES } from '../../oci/manifest.js';
import { checkTag, isValidTag } from '../../oci/names.js';
import type { Repository } from '../../storage/registry.js';
import { emptyBody, type Ctx, type RegistryDeps, type Urls } from '../context.js';
import { recordEvent } from '../events.js';
import { noneMatch, readBody } from '../http.js';
import { explainMissing, writable } from './blobs.js';

type Reference = { readonly tag: string } | { readonly digest: Digest };

/**
 * A reference is a digest when it has the `algorithm:` form, else a tag. A malformed tag is TAG_INVALID when
 * pushing, but on reads and deletes it simply names no manifest (404), as the conformance suite expects.
 */
function parseReference(raw: string, forWrite: boolean): Reference {
  if (raw.includes(':')) return { digest: parseDigest(raw) };
  if (!forWrite && !isValidTag(raw))
    throw new RegistryError('MANIFEST_UNKNOWN', {
      message: 'no manifest has that tag (it is not a valid tag)',
      detail: { tag: raw.slice(0, 200) },
    });
  return { tag: checkTag(raw) };
}

async function resolve(repo: Repository, ref: Reference): Promise<Digest> {
  return 'digest' in ref ? ref.digest : repo.tags.resolve(ref.tag);
}

export function manifestHandlers(deps: RegistryDeps, urls: Urls) {
  const { storage } = deps;

  async function getManifest(ctx: Ctx, name: string, param: string): Promise<void> {
    const ref = parseReference(param, false);
    const repo = storage.repository(name);
    const manifest = await resolve(repo, ref)
      .then((digest) => repo.manifests.get(digest))
      .catch((err: unknown) => explainMissing(repo, err));
    if (!accepts(ctx.get('Accept') || undefined, manifest.mediaType)) {
      throw new RegistryError('MANIFEST_UNKNOWN', {
        message: `the manifest is ${manifest.mediaType}, which the request's Accept header does not allow`,
        detail: { mediaType: manifest.mediaType },
      });
    }
    const etag = `"${manifest.digest.value}"`;
    ctx.set('Docker-Content-Digest', manifest.digest.value);
    ctx.set('ETag', etag);
    if (noneMatch(ctx.get('If-None-Match'), manifest.digest.value)) {
      ctx.status = 304;
      return;
    }
    ctx.status = 200;
    ctx.body = manifest.content;
    ctx.type = manifest.mediaType;
    if (ctx.method === 'GET') {
      recordEvent(deps, ctx, 'pull', {
        repository: name,
        digest: manifest.digest.value,
        mediaType: manifest.mediaType,
        size: manifest.content.length,
        url: urls.manifest(name, manifest.digest.value),
        ...('tag' in ref ? { tag: ref.tag } : {}),
      });
    }
  }

  async function putManifest(ctx: Ctx, name: string, param: string): Promise<void> {
    writable(deps);
    const ref = parseReference(param, true);
    const body = await readBody(ctx.req, MAX_MANIFEST_BYTES);
    const repo = storage.repository(name);
    const result = await repo.manifests.put(body, ctx.get('Content-Type') || undefined, ref);
    ctx.set('Location', urls.manifest(name, result.digest.value));
    ctx.set('Docker-Content-Digest', result.digest.value);
    if (result.subject !== undefined) ctx.set('OCI-Subject', result.subject.digest.value);
    emptyBody(ctx, 201);
    recordEvent(deps, ctx, 'push', {
      repository: name,
      digest: result.digest.value,
      mediaType: result.mediaType,
      size: body.length,
      url: urls.manifest(name, result.digest.value),
      ...('tag' in ref ? { tag: ref.tag } : {}),
    });
  }

  async function deleteManifest(ctx: Ctx, name: string, param: string): Promise<void> {
    writable(deps);
    if (!deps.config.deleteEnabled) {
      throw new RegistryError('UNSUPPORTED', { message: 'deletes are disabled (storage.delete.enabled is false)' });
    }
    const ref = parseReference(param, false);
    const repo = storage.repository(name);
    const op = 'tag' in ref ? repo.tags.untag(ref.tag) : repo.manifests.delete(ref.digest);
    await op.catch((err: unknown) => explainMissing(repo, err));
    emptyBody(ctx, 202);
    // Distribution's shapes: a manifest deleted by digest names the digest; an untag names the tag.
    recordEvent(
      deps,
      ctx,
      'delete',
      'tag' in ref
        ? { repository: name, digest: '', tag: ref.tag, url: urls.manifest(name, ref.tag) }
        : { repository: name, digest: ref.digest.value, url: urls.manifest(name, ref.digest.value) },
    );
  }

  return { getManifest, putManifest, deleteManifest };
}
