// Listings: the API base, tags of a repository, the catalog and the referrers of a manifest.
import { RegistryError } from '../../oci/errors.js';
import { parseDigest } from '../../oci/digest.js';
import { MediaTypes } from '../../oci/manifest.js';
import type { Ctx, RegistryDeps, Urls } from '../context.js';
import { parseCount, queryString } from '../http.js';

/** Pages of the catalog hold at most this many names, as CNCF Distribution's default. */
export const CATALOG_MAX = 1000;
const CATALOG_DEFAULT = 100;

export function listingHandlers(deps: RegistryDeps, urls: Urls) {
  const { storage } = deps;

  async function base(ctx: Ctx): Promise<void> {
    ctx.status = 200;
    ctx.body = {};
  }

  async function tags(ctx: Ctx, name: string): Promise<void> {
    const n = parseCount(ctx.query['n'], undefined, Number.MAX_SAFE_INTEGER);
    const last = queryString(ctx.query['last']);
    const repo = storage.repository(name);
    if (!(await repo.exists())) throw new RegistryError('NAME_UNKNOWN', { detail: { name } });
    const all = await repo.tags.all();
    const after = last === undefined ? all : all.filter((t) => t > last);
    const page = n === undefined ? after : after.slice(0, n);
    const lastOnPage = page.at(-1);
    if (n !== undefined && page.length < after.length && lastOnPage !== undefined) {
      ctx.set('Link', `<${urls.tags(name, n, lastOnPage)}>; rel="next"`);
    }
    ctx.status = 200;
    ctx.body = { name, tags: page };
  }

  async function catalog(ctx: Ctx): Promise<void> {
    const n = parseCount(ctx.query['n'], CATALOG_DEFAULT, CATALOG_MAX) ?? CATALOG_DEFAULT;
    const last = queryString(ctx.query['last']);
    // One more than asked tells whether there is a next page.
    const names = await storage.catalog(n + 1, last);
    const page = names.slice(0, n);
    const lastOnPage = page.at(-1);
    if (names.length > n && lastOnPage !== undefined) ctx.set('Link', `<${urls.catalog(n, lastOnPage)}>; rel="next"`);
    ctx.status = 200;
    ctx.body = { repositories: page };
  }

  async function referrers(ctx: Ctx, name: string, param: string): Promise<void> {
    const subject = parseDigest(param);
    const artifactType = queryString(ctx.query['artifactType']);
    const repo = storage.repository(name);
    if (!(await repo.exists())) throw new RegistryError('NAME_UNKNOWN', { detail: { name } });
    const manifests = await repo.manifests.referrers(subject, artifactType === '' ? undefined : artifactType);
    if (artifactType !== undefined && artifactType !== '') ctx.set('OCI-Filters-Applied', 'artifactType');
    ctx.status = 200;
    ctx.body = { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests };
    ctx.type = MediaTypes.ociIndex;
  }

  return { base, tags, catalog, referrers };
}
