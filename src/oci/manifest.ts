// Manifest media types and validation: what a manifest references, what it is about (subject), and what kind of
// artifact it is. The storage layer uses the result to check references and maintain the referrers index.
import { z } from 'zod';
import { RegistryError } from './errors.js';
import { parseDigest, type Digest } from './digest.js';

export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociArtifact: 'application/vnd.oci.artifact.manifest.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

export const MANIFEST_MEDIA_TYPES: ReadonlySet<string> = new Set(Object.values(MediaTypes));
const INDEX_TYPES: ReadonlySet<string> = new Set([MediaTypes.ociIndex, MediaTypes.dockerList]);

/** Layers that live elsewhere (their `urls`) and so are not required to be in the registry. */
const FOREIGN_LAYER_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

/** Manifests larger than this are refused with 413, as CNCF Distribution does. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

const DescriptorSchema = z.looseObject({
  mediaType: z.string().min(1).max(255),
  digest: z.string(),
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  artifactType: z.string().optional(),
});

const ManifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: DescriptorSchema.optional(),
  layers: z.array(DescriptorSchema).optional(),
  blobs: z.array(DescriptorSchema).optional(),
  manifests: z.array(DescriptorSchema).optional(),
  subject: DescriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface ParsedManifest {
  readonly mediaType: string;
  /** Blobs that must exist in the repository (config and layers, foreign layers excepted). */
  readonly blobs: readonly Descriptor[];
  /** Manifests that must exist in the repository (the entries of an index). */
  readonly manifests: readonly Descriptor[];
  readonly subject?: Descriptor;
  /** What the referrers API reports: `artifactType`, else the config's media type. */
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

function invalid(message: string, detail?: unknown): RegistryError {
  return new RegistryError('MANIFEST_INVALID', { message, detail });
}

function toDescriptor(raw: z.infer<typeof DescriptorSchema>, where: string): Descriptor {
  let digest: Digest;
  try {
    digest = parseDigest(raw.digest);
  } catch {
    throw invalid(`${where}: invalid digest`, { digest: raw.digest.slice(0, 300) });
  }
  return {
    mediaType: raw.mediaType,
    digest,
    size: raw.size,
    ...(raw.artifactType === undefined ? {} : { artifactType: raw.artifactType }),
    ...(raw.annotations === undefined ? {} : { annotations: raw.annotations }),
  };
}

/** The media type of a stored manifest, which umoci and helm may leave out of the JSON. */
export function inferMediaType(json: { mediaType?: unknown; manifests?: unknown; blobs?: unknown }): string {
  if (typeof json.mediaType === 'string' && json.mediaType !== '') return json.mediaType;
  if (Array.isArray(json.manifests)) return MediaTypes.ociIndex;
  if (Array.isArray(json.blobs)) return MediaTypes.ociArtifact;
  return MediaTypes.ociManifest;
}

/**
 * Parses and validates a manifest body. `contentType` is the request's Content-Type; it decides the type of a
 * manifest without a `mediaType` field and must agree with the field when both are present.
 */
export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('manifest is not valid JSON');
  }
  const result = ManifestSchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = issue === undefined ? '' : issue.path.join('.');
    throw invalid(`manifest invalid at ${path || 'top level'}: ${issue?.message ?? 'bad shape'}`, { field: path });
  }
  const m = result.data;
  const headerType = contentType?.split(';')[0]?.trim().toLowerCase();
  const declared = headerType !== undefined && MANIFEST_MEDIA_TYPES.has(headerType) ? headerType : undefined;
  if (m.mediaType !== undefined && declared !== undefined && m.mediaType !== declared) {
    throw invalid(`manifest mediaType ${m.mediaType} does not match Content-Type ${declared}`);
  }
  const mediaType = m.mediaType ?? declared ?? inferMediaType(m);
  if (!MANIFEST_MEDIA_TYPES.has(mediaType)) throw invalid(`unsupported manifest media type ${mediaType}`);

  const subject = m.subject === undefined ? undefined : toDescriptor(m.subject, 'subject');
  const annotations = m.annotations;
  if (INDEX_TYPES.has(mediaType)) {
    if (m.manifests === undefined) throw invalid('an index needs a manifests array', { field: 'manifests' });
    const manifests = m.manifests.map((d, i) => toDescriptor(d, `manifests[${i}]`));
    return { mediaType, blobs: [], manifests, ...optional(subject, m.artifactType, annotations) };
  }
  if (mediaType === MediaTypes.ociArtifact) {
    const blobs = (m.blobs ?? []).map((d, i) => toDescriptor(d, `blobs[${i}]`));
    return { mediaType, blobs, manifests: [], ...optional(subject, m.artifactType, annotations) };
  }
  if (m.config === undefined) throw invalid('an image manifest needs a config descriptor', { field: 'config' });
  if (m.layers === undefined) throw invalid('an image manifest needs a layers array', { field: 'layers' });
  const config = toDescriptor(m.config, 'config');
  const local = m.layers
    .map((raw, i) => ({
      desc: toDescriptor(raw, `layers[${i}]`),
      foreign: FOREIGN_LAYER_TYPES.has(raw.mediaType) && (raw.urls?.length ?? 0) > 0,
    }))
    .filter((l) => !l.foreign)
    .map((l) => l.desc);
  return {
    mediaType,
    blobs: [config, ...local],
    manifests: [],
    ...optional(subject, m.artifactType ?? config.mediaType, annotations),
  };
}

function optional(
  subject: Descriptor | undefined,
  artifactType: string | undefined,
  annotations: Readonly<Record<string, string>> | undefined,
): { subject?: Descriptor; artifactType?: string; annotations?: Readonly<Record<string, string>> } {
  return {
    ...(subject === undefined ? {} : { subject }),
    ...(artifactType === undefined ? {} : { artifactType }),
    ...(annotations === undefined ? {} : { annotations }),
  };
}

/**
 * Whether a client that sent `accept` can take a manifest of `mediaType`. No Accept header, a wildcard, or an
 * Accept that names no manifest type at all counts as yes; Accept lists that name manifest types must name this one.
 */
export function accepts(accept: string | undefined, mediaType: string): boolean {
  if (accept === undefined || accept === '') return true;
  let namesManifestType = false;
  for (const part of accept.split(',')) {
    const [rawType, ...params] = part.split(';');
    const type = rawType?.trim().toLowerCase() ?? '';
    // q=0 means "not acceptable".
    if (params.some((p) => /^\s*q\s*=\s*0(?:\.0*)?\s*$/i.test(p))) {
      if (MANIFEST_MEDIA_TYPES.has(type)) namesManifestType = true;
      continue;
    }
    if (type === mediaType || type === '*/*' || type === 'application/*') return true;
    if (MANIFEST_MEDIA_TYPES.has(type)) namesManifestType = true;
  }
  return !namesManifestType;
}
