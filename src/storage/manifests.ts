// Manifests of one repository: verified on the way in (every referenced blob and child manifest must exist there),
// stored as blobs, and made visible by their revision link. Order of writes: bytes, revision link (the commit
// point), referrers index, tag; a crash between steps leaves a complete manifest or none, and tags untouched.
import { LRUCache } from 'lru-cache';
import { RegistryError } from '../oci/errors.js';
import { digestBuffer, parseDigest, type Digest } from '../oci/digest.js';
import { inferMediaType, parseManifest, type Descriptor, type ParsedManifest } from '../oci/manifest.js';
import { isNotFound, type StorageDriver } from './driver.js';
import { paths } from './paths.js';
import { noInvalidate, type BlobStatter, type GlobalBlobs, type Invalidate } from './blobs.js';
import type { Tags } from './tags.js';

export interface StoredManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly content: Buffer;
}

/** Manifest bytes by digest. They never change, so the cache can never be stale; deletion is checked by link. */
export type ManifestContentCache = LRUCache<string, StoredManifest>;

export function newManifestContentCache(maxBytes = 32 * 1024 * 1024): ManifestContentCache {
  return new LRUCache({ maxSize: maxBytes, sizeCalculation: (m) => Math.max(1, m.content.length) });
}

/** What the referrers API lists for one referrer. */
export interface ReferrerDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface PutResult {
  readonly digest: Digest;
  /** The manifest's media type, as stored. */
  readonly mediaType: string;
  readonly subject?: Descriptor;
}

function manifestUnknown(reference: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', { detail: { reference } });
}

export class Manifests {
  readonly #driver: StorageDriver;
  readonly #name: string;
  readonly #blobs: BlobStatter;
  readonly #global: GlobalBlobs;
  readonly #tags: Tags;
  readonly #cache: ManifestContentCache;
  readonly #invalidate: Invalidate;

  constructor(
    driver: StorageDriver,
    name: string,
    blobs: BlobStatter,
    global: GlobalBlobs,
    tags: Tags,
    cache: ManifestContentCache,
    invalidate: Invalidate = noInvalidate,
  ) {
    this.#driver = driver;
    this.#name = name;
    this.#blobs = blobs;
    this.#global = global;
    this.#tags = tags;
    this.#cache = cache;
    this.#invalidate = invalidate;
  }

  /** Whether the manifest is in this repository. */
  async exists(digest: Digest): Promise<boolean> {
    try {
      await this.#driver.stat(paths.revisionLink(this.#name, digest));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** A manifest of this repository; throws MANIFEST_UNKNOWN. */
  async get(digest: Digest): Promise<StoredManifest> {
    if (!(await this.exists(digest))) throw manifestUnknown(digest.value);
    const cached = this.#cache.get(digest.value);
    if (cached !== undefined) return cached;
    let content: Buffer;
    try {
      content = await this.#global.getContent(digest);
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'BLOB_UNKNOWN') throw manifestUnknown(digest.value);
      throw err;
    }
    let mediaType: string;
    try {
      mediaType = inferMediaType(JSON.parse(content.toString('utf8')) as { mediaType?: unknown });
    } catch {
      mediaType = 'application/vnd.oci.image.manifest.v1+json';
    }
    const stored = { digest, mediaType, content };
    this.#cache.set(digest.value, stored);
    return stored;
  }

  /**
   * Verifies and stores a manifest under a tag or its digest. Throws MANIFEST_INVALID, DIGEST_INVALID (the body does
   * not hash to the digest in the URL) or MANIFEST_BLOB_UNKNOWN naming the first missing reference.
   */
  async put(
    body: Buffer,
    contentType: string | undefined,
    reference: { tag: string } | { digest: Digest },
  ): Promise<PutResult> {
    const parsed = parseManifest(body, contentType);
    // The media type is read back from the bytes (a push's Content-Type is not stored), so a manifest that leaves
    // out its mediaType must be one whose type the bytes imply, as CNCF Distribution requires of Docker manifests.
    if (inferMediaType(JSON.parse(body.toString('utf8')) as { mediaType?: unknown }) !== parsed.mediaType) {
      throw new RegistryError('MANIFEST_INVALID', {
        message: `a ${parsed.mediaType} manifest must name its mediaType`,
        detail: { field: 'mediaType' },
      });
    }
    const algorithm = 'digest' in reference ? reference.digest.algorithm : 'sha256';
    const digest = digestBuffer(body, algorithm);
    if ('digest' in reference && reference.digest.value !== digest.value) {
      throw new RegistryError('DIGEST_INVALID', {
        message: 'manifest digest does not match the body',
        detail: { expected: reference.digest.value, actual: digest.value },
      });
    }
    await this.#verify(parsed);
    await this.#global.putContent(digest, body);
    await this.#driver.putContent(paths.revisionLink(this.#name, digest), Buffer.from(digest.value));
    if (parsed.subject !== undefined) {
      const entry: ReferrerDescriptor = {
        mediaType: parsed.mediaType,
        digest: digest.value,
        size: body.length,
        ...(parsed.artifactType === undefined ? {} : { artifactType: parsed.artifactType }),
        ...(parsed.annotations === undefined ? {} : { annotations: parsed.annotations }),
      };
      await this.#driver.putContent(
        paths.referrer(this.#name, parsed.subject.digest, digest),
        Buffer.from(JSON.stringify(entry)),
      );
    }
    // Again, now that the revision is there: garbage collection running meanwhile (online, or `berth gc` beside the
    // registries) may have swept a blob this manifest references after the first check. A collection sweeps nothing
    // that a revision written before this check references (it looks for new revisions after it sweeps, and gives
    // back what they use), so passing this check means the manifest stays whole; failing it, the manifest goes and
    // the client is told which blob to push again.
    try {
      await this.#verify(parsed);
      await this.#global.stat(digest);
    } catch (err) {
      if (parsed.subject !== undefined) {
        await this.#driver.delete(paths.referrer(this.#name, parsed.subject.digest, digest)).catch(() => undefined);
      }
      try {
        await this.#driver.delete(paths.revisionDir(this.#name, digest)).catch(() => undefined);
      } finally {
        await this.#invalidate(this.#name, digest);
      }
      if (err instanceof RegistryError && err.code === 'BLOB_UNKNOWN') {
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', {
          message: `manifest blob ${digest.value} went while it was stored; push it again`,
          detail: { digest: digest.value },
        });
      }
      throw err;
    }
    if ('tag' in reference) {
      await this.#tags.tag(reference.tag, digest);
      // And the revision, now that the tag is there: a collection that swept this manifest as untagged (it may have
      // been here before, untagged) puts back whatever a tag written before this check points to.
      if (!(await this.exists(digest))) {
        await this.#tags.untag(reference.tag).catch(() => undefined);
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', {
          message: `manifest ${digest.value} was collected while it was tagged; push it again`,
          detail: { digest: digest.value },
        });
      }
    }
    this.#cache.set(digest.value, { digest, mediaType: parsed.mediaType, content: body });
    return {
      digest,
      mediaType: parsed.mediaType,
      ...(parsed.subject === undefined ? {} : { subject: parsed.subject }),
    };
  }

  async #verify(parsed: ParsedManifest): Promise<void> {
    const missing = (d: Descriptor): RegistryError =>
      new RegistryError('MANIFEST_BLOB_UNKNOWN', {
        message: `manifest references ${d.digest.value}, which is not in the repository`,
        detail: { digest: d.digest.value },
      });
    const checks: Array<Promise<void>> = [];
    for (const d of parsed.blobs) {
      checks.push(
        this.#blobs.stat(d.digest).then(
          () => undefined,
          (err: unknown) => {
            throw err instanceof RegistryError && err.code === 'BLOB_UNKNOWN' ? missing(d) : err;
          },
        ),
      );
    }
    for (const d of parsed.manifests) {
      checks.push(
        this.exists(d.digest).then((ok) => {
          if (!ok) throw missing(d);
        }),
      );
    }
    const results = await Promise.allSettled(checks);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
  }

  /** Deletes a manifest from this repository with the tags that point to it; throws MANIFEST_UNKNOWN. */
  async delete(digest: Digest): Promise<void> {
    if (!(await this.exists(digest))) throw manifestUnknown(digest.value);
    let subject: Digest | undefined;
    try {
      const content = await this.#global.getContent(digest);
      const json = JSON.parse(content.toString('utf8')) as { subject?: { digest?: unknown } };
      if (typeof json.subject?.digest === 'string') subject = parseDigest(json.subject.digest);
    } catch {
      subject = undefined;
    }
    for (const tag of await this.#tags.pointingTo(digest)) await this.#tags.untag(tag).catch(() => undefined);
    if (subject !== undefined)
      await this.#driver.delete(paths.referrer(this.#name, subject, digest)).catch(() => undefined);
    try {
      await this.#driver.delete(paths.revisionDir(this.#name, digest));
    } finally {
      await this.#invalidate(this.#name, digest);
    }
  }

  /** Manifests of this repository whose subject is `subject`, optionally only those of one artifact type. */
  async referrers(subject: Digest, artifactType?: string): Promise<ReferrerDescriptor[]> {
    let entries: string[];
    try {
      entries = await this.#driver.list(paths.referrersDir(this.#name, subject));
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
    entries.sort();
    const out: ReferrerDescriptor[] = [];
    for (const entry of entries) {
      let descriptor: ReferrerDescriptor;
      try {
        descriptor = JSON.parse((await this.#driver.getContent(entry)).toString('utf8')) as ReferrerDescriptor;
      } catch (err) {
        if (isNotFound(err) || err instanceof SyntaxError) continue;
        throw err;
      }
      if (artifactType === undefined || descriptor.artifactType === artifactType) out.push(descriptor);
    }
    return out;
  }
}
