// The storage layout, in one place. It is CNCF Distribution's, so a Berth can serve a Distribution's storage:
//
//   /docker/registry/v2/blobs/<alg>/<hex[0:2]>/<hex>/data                        blob and manifest bytes
//   /docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link             blob linked into a repository
//   /docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link manifest in a repository
//   /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link    tag -> manifest digest
//   /docker/registry/v2/repositories/<name>/_uploads/<id>/{data,startedat}        upload in progress
//
// Berth adds one index that Distribution lacks, for the referrers API:
//   /docker/registry/v2/repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>   descriptor (JSON) of a manifest
//                                                                                whose subject is <alg>:<hex>
import type { Digest } from '../oci/digest.js';

export const ROOT = '/docker/registry/v2';
export const REPOSITORIES = `${ROOT}/repositories`;

export const paths = {
  blobData: (d: Digest) => `${ROOT}/blobs/${d.algorithm}/${d.hex.slice(0, 2)}/${d.hex}/data`,
  repository: (name: string) => `${REPOSITORIES}/${name}`,
  layerLink: (name: string, d: Digest) => `${REPOSITORIES}/${name}/_layers/${d.algorithm}/${d.hex}/link`,
  layerLinkDir: (name: string, d: Digest) => `${REPOSITORIES}/${name}/_layers/${d.algorithm}/${d.hex}`,
  revisionLink: (name: string, d: Digest) =>
    `${REPOSITORIES}/${name}/_manifests/revisions/${d.algorithm}/${d.hex}/link`,
  revisionDir: (name: string, d: Digest) => `${REPOSITORIES}/${name}/_manifests/revisions/${d.algorithm}/${d.hex}`,
  tags: (name: string) => `${REPOSITORIES}/${name}/_manifests/tags`,
  tagDir: (name: string, tag: string) => `${REPOSITORIES}/${name}/_manifests/tags/${tag}`,
  tagCurrent: (name: string, tag: string) => `${REPOSITORIES}/${name}/_manifests/tags/${tag}/current/link`,
  uploads: (name: string) => `${REPOSITORIES}/${name}/_uploads`,
  uploadDir: (name: string, id: string) => `${REPOSITORIES}/${name}/_uploads/${id}`,
  uploadData: (name: string, id: string) => `${REPOSITORIES}/${name}/_uploads/${id}/data`,
  uploadStartedAt: (name: string, id: string) => `${REPOSITORIES}/${name}/_uploads/${id}/startedat`,
  referrersDir: (name: string, subject: Digest) =>
    `${REPOSITORIES}/${name}/_referrers/${subject.algorithm}/${subject.hex}`,
  referrer: (name: string, subject: Digest, d: Digest) =>
    `${REPOSITORIES}/${name}/_referrers/${subject.algorithm}/${subject.hex}/${d.algorithm}-${d.hex}`,
} as const;

/** Children that make a directory a repository in the catalog (name components never start with `_`). */
export const REPOSITORY_MARKERS: ReadonlySet<string> = new Set(['_layers', '_manifests']);
