// Malformed requests, one table: each row names what is wrong, the status and OCI error code it must get, and is
// checked to leave the filesystem storage exactly as it was (paths, sizes and contents).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join, relative } from 'node:path';
import { removeDir, startInProcess, tempDir, type InProcessRegistry } from '../helpers/harness.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

const REPO = 'seed/app';
const OTHER = 'other/repo';
const CONFIG = Buffer.from('{"architecture":"amd64","os":"linux"}');
const LAYER = Buffer.from('layer bytes of the seeded image');
const ONLY_IN_OTHER = Buffer.from('a blob linked only into other/repo');
const CHUNK = Buffer.from('abcd');

function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

const UNKNOWN_ID = '0b5e3e4a-1111-4222-8333-944455556666';
const GOOD_HEX = createHash('sha256').update('anything').digest('hex');

function manifestOf(
  layers: ReadonlyArray<{ digest: string; size: number; mediaType?: string }>,
  extra: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: sha256(CONFIG), size: CONFIG.length },
    layers: layers.map((l) => ({ mediaType: OCI_LAYER, ...l })),
    ...extra,
  });
}

const SEED_MANIFEST = manifestOf([{ digest: sha256(LAYER), size: LAYER.length }]);

/** What a row may set up before the 'before' snapshot; its value replaces `{session}` in the row's path. */
type Setup = 'empty-session' | 'session-with-chunk' | 'other-repo-session';

interface Row {
  /** What is wrong with the request. */
  readonly wrong: string;
  readonly method: string;
  /** The raw request path, sent as is (no normalisation of `..` or `//`). `{session}` is the upload's path. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Buffer;
  readonly setup?: Setup;
  readonly status: number;
  readonly code: string;
  /** A repository the row touches that must still be unknown (404 NAME_UNKNOWN on its tag list) afterwards. */
  readonly stillUnknown?: string;
}

const manifestPut = (
  wrong: string,
  body: string | Buffer,
  status: number,
  code: string,
  contentType = OCI_MANIFEST,
  tag = 'v2',
): Row => ({
  wrong,
  method: 'PUT',
  path: `/v2/${REPO}/manifests/${tag}`,
  headers: { 'Content-Type': contentType },
  body,
  status,
  code,
});

const ROWS: readonly Row[] = [
  // Repository names.
  { wrong: 'name ../x', method: 'GET', path: '/v2/../x/tags/list', status: 400, code: 'NAME_INVALID' },
  {
    wrong: 'name seed/../../x on an upload',
    method: 'POST',
    path: '/v2/seed/../../x/blobs/uploads/',
    status: 400,
    code: 'NAME_INVALID',
  },
  { wrong: 'upper-case name A/B', method: 'GET', path: '/v2/A/B/manifests/v1', status: 400, code: 'NAME_INVALID' },
  { wrong: 'empty component a//b', method: 'POST', path: '/v2/a//b/blobs/uploads/', status: 400, code: 'NAME_INVALID' },
  {
    wrong: 'a 256-character name',
    method: 'GET',
    path: `/v2/${'a'.repeat(256)}/tags/list`,
    status: 400,
    code: 'NAME_INVALID',
  },
  {
    wrong: 'a 256-character name of several components',
    method: 'POST',
    path: `/v2/${`${'b'.repeat(63)}/`.repeat(4)}bbb/blobs/uploads/`,
    status: 400,
    code: 'NAME_INVALID',
  },
  {
    wrong: 'name starting with a separator -a',
    method: 'PUT',
    path: '/v2/-a/manifests/v1',
    headers: { 'Content-Type': OCI_MANIFEST },
    body: SEED_MANIFEST,
    status: 400,
    code: 'NAME_INVALID',
  },
  {
    wrong: 'name ending with a separator a-',
    method: 'POST',
    path: '/v2/a-/blobs/uploads/',
    status: 400,
    code: 'NAME_INVALID',
  },
  {
    wrong: 'component starting with a dot a/.b',
    method: 'GET',
    path: `/v2/a/.b/blobs/${sha256(LAYER)}`,
    status: 400,
    code: 'NAME_INVALID',
  },
  {
    wrong: 'percent-encoded dots %2e%2e/x',
    method: 'GET',
    path: '/v2/%2e%2e/x/tags/list',
    status: 400,
    code: 'NAME_INVALID',
  },
  {
    wrong: 'trailing slash in the name',
    method: 'GET',
    path: `/v2/${REPO}//manifests/v1`,
    status: 400,
    code: 'NAME_INVALID',
  },

  // Digests.
  {
    wrong: 'digest sha256:xyz',
    method: 'GET',
    path: `/v2/${REPO}/blobs/sha256:xyz`,
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'unsupported algorithm md5',
    method: 'GET',
    path: `/v2/${REPO}/blobs/md5:d41d8cd98f00b204e9800998ecf8427e`,
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'upper-case hex',
    method: 'GET',
    path: `/v2/${REPO}/blobs/sha256:${GOOD_HEX.toUpperCase()}`,
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'short hex',
    method: 'GET',
    path: `/v2/${REPO}/blobs/sha256:${GOOD_HEX.slice(0, 20)}`,
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'digest without a colon',
    method: 'GET',
    path: `/v2/${REPO}/blobs/${GOOD_HEX}`,
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'malformed digest on a blob DELETE',
    method: 'DELETE',
    path: `/v2/${REPO}/blobs/sha256:xyz`,
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'malformed digest as a manifest reference',
    method: 'GET',
    path: `/v2/${REPO}/manifests/sha256:xyz`,
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'malformed digest on a manifest DELETE',
    method: 'DELETE',
    path: `/v2/${REPO}/manifests/md5:d41d8cd98f00b204e9800998ecf8427e`,
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'malformed referrers subject',
    method: 'GET',
    path: `/v2/${REPO}/referrers/sha256:${GOOD_HEX.slice(1)}`,
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'malformed ?digest= on a monolithic POST',
    method: 'POST',
    path: `/v2/${REPO}/blobs/uploads/?digest=sha256:xyz`,
    body: 'data',
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'monolithic POST whose body does not match ?digest=',
    method: 'POST',
    path: `/v2/${REPO}/blobs/uploads/?digest=${sha256('other')}`,
    body: 'data',
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'monolithic POST of sha512 whose body does not match',
    method: 'POST',
    path: `/v2/${REPO}/blobs/uploads/?digest=sha512:${'ab'.repeat(64)}`,
    body: 'data',
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'monolithic POST to a new repository whose body does not match',
    method: 'POST',
    path: `/v2/brand/new/blobs/uploads/?digest=${sha256('other')}`,
    body: 'data',
    status: 400,
    code: 'DIGEST_INVALID',
    stillUnknown: 'brand/new',
  },
  {
    wrong: 'PUT that finishes an upload with a digest that does not match',
    method: 'PUT',
    path: `{session}?digest=${sha256('not abcd')}`,
    setup: 'session-with-chunk',
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'PUT with a final chunk and a digest that does not match',
    method: 'PUT',
    path: `{session}?digest=${sha256('not abcdefgh')}`,
    body: 'efgh',
    setup: 'session-with-chunk',
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'PUT without ?digest=',
    method: 'PUT',
    path: '{session}',
    setup: 'session-with-chunk',
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'PUT with an empty ?digest=',
    method: 'PUT',
    path: '{session}?digest=',
    setup: 'session-with-chunk',
    status: 400,
    code: 'DIGEST_INVALID',
  },
  {
    wrong: 'PUT with ?digest=md5:...',
    method: 'PUT',
    path: '{session}?digest=md5:d41d8cd98f00b204e9800998ecf8427e',
    body: 'efgh',
    setup: 'session-with-chunk',
    status: 400,
    code: 'DIGEST_INVALID',
  },

  // Chunks.
  {
    wrong: 'Content-Range that leaves a gap',
    method: 'PATCH',
    path: '{session}',
    headers: { 'Content-Range': '8-11' },
    body: 'ijkl',
    setup: 'session-with-chunk',
    status: 416,
    code: 'RANGE_INVALID',
  },
  {
    wrong: 'Content-Range that overlaps what was received',
    method: 'PATCH',
    path: '{session}',
    headers: { 'Content-Range': '2-5' },
    body: 'cdef',
    setup: 'session-with-chunk',
    status: 416,
    code: 'RANGE_INVALID',
  },
  {
    wrong: 'Content-Range that restarts at 0',
    method: 'PATCH',
    path: '{session}',
    headers: { 'Content-Range': '0-3' },
    body: 'abcd',
    setup: 'session-with-chunk',
    status: 416,
    code: 'RANGE_INVALID',
  },
  {
    wrong: 'Content-Range that ends before it starts',
    method: 'PATCH',
    path: '{session}',
    headers: { 'Content-Range': '7-4' },
    body: 'efgh',
    setup: 'session-with-chunk',
    status: 416,
    code: 'RANGE_INVALID',
  },
  {
    wrong: 'malformed Content-Range bytes=4-7',
    method: 'PATCH',
    path: '{session}',
    headers: { 'Content-Range': 'bytes=4-7' },
    body: 'efgh',
    setup: 'session-with-chunk',
    status: 400,
    code: 'BLOB_UPLOAD_INVALID',
  },
  {
    wrong: 'malformed Content-Range abc',
    method: 'PATCH',
    path: '{session}',
    headers: { 'Content-Range': 'abc' },
    body: 'efgh',
    setup: 'session-with-chunk',
    status: 400,
    code: 'BLOB_UPLOAD_INVALID',
  },
  {
    wrong: 'negative Content-Range',
    method: 'PATCH',
    path: '{session}',
    headers: { 'Content-Range': '-4-7' },
    body: 'efgh',
    setup: 'session-with-chunk',
    status: 400,
    code: 'BLOB_UPLOAD_INVALID',
  },
  {
    wrong: 'chunk shorter than its Content-Range',
    method: 'PATCH',
    path: '{session}',
    headers: { 'Content-Range': '4-13' },
    body: 'efgh',
    setup: 'session-with-chunk',
    status: 416,
    code: 'BLOB_UPLOAD_INVALID',
  },
  {
    wrong: 'chunk longer than its Content-Range',
    method: 'PATCH',
    path: '{session}',
    headers: { 'Content-Range': '4-5' },
    body: 'efgh',
    setup: 'session-with-chunk',
    status: 416,
    code: 'BLOB_UPLOAD_INVALID',
  },
  {
    wrong: 'first chunk that does not start at 0',
    method: 'PATCH',
    path: '{session}',
    headers: { 'Content-Range': '1-4' },
    body: 'abcd',
    setup: 'empty-session',
    status: 416,
    code: 'RANGE_INVALID',
  },
  {
    wrong: 'final chunk of a PUT that leaves a gap',
    method: 'PUT',
    path: `{session}?digest=${sha256('abcdijkl')}`,
    headers: { 'Content-Range': '8-11' },
    body: 'ijkl',
    setup: 'session-with-chunk',
    status: 416,
    code: 'RANGE_INVALID',
  },
  {
    wrong: 'final chunk of a PUT with a malformed Content-Range',
    method: 'PUT',
    path: `{session}?digest=${sha256('abcdefgh')}`,
    headers: { 'Content-Range': '4_7' },
    body: 'efgh',
    setup: 'session-with-chunk',
    status: 400,
    code: 'BLOB_UPLOAD_INVALID',
  },
  {
    wrong: 'final chunk of a PUT shorter than its Content-Range',
    method: 'PUT',
    path: `{session}?digest=${sha256('abcdefgh')}`,
    headers: { 'Content-Range': '4-9' },
    body: 'efgh',
    setup: 'session-with-chunk',
    status: 416,
    code: 'BLOB_UPLOAD_INVALID',
  },

  // Upload ids.
  {
    wrong: 'unknown upload id (status)',
    method: 'GET',
    path: `/v2/${REPO}/blobs/uploads/${UNKNOWN_ID}`,
    status: 404,
    code: 'BLOB_UPLOAD_UNKNOWN',
  },
  {
    wrong: 'unknown upload id (chunk)',
    method: 'PATCH',
    path: `/v2/${REPO}/blobs/uploads/${UNKNOWN_ID}`,
    body: 'data',
    status: 404,
    code: 'BLOB_UPLOAD_UNKNOWN',
  },
  {
    wrong: 'unknown upload id (finish)',
    method: 'PUT',
    path: `/v2/${REPO}/blobs/uploads/${UNKNOWN_ID}?digest=${sha256('data')}`,
    body: 'data',
    status: 404,
    code: 'BLOB_UPLOAD_UNKNOWN',
  },
  {
    wrong: 'unknown upload id (cancel)',
    method: 'DELETE',
    path: `/v2/${REPO}/blobs/uploads/${UNKNOWN_ID}`,
    status: 404,
    code: 'BLOB_UPLOAD_UNKNOWN',
  },
  {
    wrong: 'upload id ..%2F..%2Fx',
    method: 'PATCH',
    path: `/v2/${REPO}/blobs/uploads/..%2F..%2Fx`,
    body: 'data',
    status: 404,
    code: 'BLOB_UPLOAD_UNKNOWN',
  },
  {
    wrong: 'upload id ..',
    method: 'DELETE',
    path: `/v2/${REPO}/blobs/uploads/..`,
    status: 404,
    code: 'BLOB_UPLOAD_UNKNOWN',
  },
  {
    wrong: 'upload id _uploads',
    method: 'GET',
    path: `/v2/${REPO}/blobs/uploads/_uploads`,
    status: 404,
    code: 'BLOB_UPLOAD_UNKNOWN',
  },
  {
    wrong: 'upload path ../../x',
    method: 'PATCH',
    path: `/v2/${REPO}/blobs/uploads/../../x`,
    body: 'data',
    status: 404,
    code: 'UNSUPPORTED',
  },
  {
    wrong: 'upload id of another repository (chunk)',
    method: 'PATCH',
    path: `/v2/${REPO}/blobs/uploads/{id}`,
    body: 'data',
    setup: 'other-repo-session',
    status: 404,
    code: 'BLOB_UPLOAD_UNKNOWN',
  },
  {
    wrong: 'upload id of another repository (finish)',
    method: 'PUT',
    path: `/v2/${REPO}/blobs/uploads/{id}?digest=${sha256('')}`,
    setup: 'other-repo-session',
    status: 404,
    code: 'BLOB_UPLOAD_UNKNOWN',
  },
  {
    wrong: 'upload id of another repository (cancel)',
    method: 'DELETE',
    path: `/v2/${REPO}/blobs/uploads/{id}`,
    setup: 'other-repo-session',
    status: 404,
    code: 'BLOB_UPLOAD_UNKNOWN',
  },

  // Manifests.
  manifestPut(
    'manifest over 4 MiB',
    manifestOf([], { annotations: { pad: 'x'.repeat(4 * 1024 * 1024) } }),
    413,
    'SIZE_INVALID',
  ),
  manifestPut('manifest that is not JSON', 'this is not json', 400, 'MANIFEST_INVALID'),
  manifestPut('empty manifest body', '', 400, 'MANIFEST_INVALID'),
  manifestPut('manifest that is JSON null', 'null', 400, 'MANIFEST_INVALID'),
  manifestPut('manifest that is a JSON array', '[]', 400, 'MANIFEST_INVALID'),
  manifestPut(
    'schemaVersion 1',
    JSON.stringify({ schemaVersion: 1, name: REPO, tag: 'v2', fsLayers: [] }),
    400,
    'MANIFEST_INVALID',
  ),
  manifestPut(
    'image manifest without config',
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] }),
    400,
    'MANIFEST_INVALID',
  ),
  manifestPut(
    'image manifest without layers',
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: sha256(CONFIG), size: CONFIG.length },
    }),
    400,
    'MANIFEST_INVALID',
  ),
  manifestPut(
    'index without manifests',
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX }),
    400,
    'MANIFEST_INVALID',
    OCI_INDEX,
  ),
  manifestPut('mediaType that does not match Content-Type', SEED_MANIFEST, 400, 'MANIFEST_INVALID', DOCKER_MANIFEST),
  manifestPut(
    'Docker manifest without its mediaType field',
    JSON.stringify({ ...JSON.parse(SEED_MANIFEST), mediaType: undefined }),
    400,
    'MANIFEST_INVALID',
    DOCKER_MANIFEST,
  ),
  manifestPut(
    'Docker manifest list without its mediaType field',
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(SEED_MANIFEST), size: SEED_MANIFEST.length }],
    }),
    400,
    'MANIFEST_INVALID',
    'application/vnd.docker.distribution.manifest.list.v2+json',
  ),
  manifestPut(
    'unsupported manifest mediaType',
    manifestOf([], { mediaType: 'application/json' }),
    400,
    'MANIFEST_INVALID',
    'application/json',
  ),
  manifestPut(
    'layer with a malformed digest',
    manifestOf([{ digest: 'sha256:xyz', size: 3 }]),
    400,
    'MANIFEST_INVALID',
  ),
  manifestPut('layer with a negative size', manifestOf([{ digest: sha256(LAYER), size: -1 }]), 400, 'MANIFEST_INVALID'),
  manifestPut(
    'manifest that references a missing blob',
    manifestOf([{ digest: sha256('missing'), size: 7 }]),
    400,
    'MANIFEST_BLOB_UNKNOWN',
  ),
  manifestPut(
    'manifest that references a blob of another repository',
    manifestOf([{ digest: sha256(ONLY_IN_OTHER), size: ONLY_IN_OTHER.length }]),
    400,
    'MANIFEST_BLOB_UNKNOWN',
  ),
  manifestPut(
    'index that references a missing child manifest',
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: sha256('no such manifest'), size: 16 }],
    }),
    400,
    'MANIFEST_BLOB_UNKNOWN',
    OCI_INDEX,
  ),
  manifestPut(
    'subject with a malformed digest',
    manifestOf([], { subject: { mediaType: OCI_MANIFEST, digest: 'sha256:123', size: 10 } }),
    400,
    'MANIFEST_INVALID',
  ),
  manifestPut(
    'descriptor without a mediaType',
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { digest: sha256(CONFIG), size: CONFIG.length },
      layers: [],
    }),
    400,
    'MANIFEST_INVALID',
  ),
  manifestPut(
    'index whose entry is a blob, not a manifest',
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(LAYER), size: LAYER.length }],
    }),
    400,
    'MANIFEST_BLOB_UNKNOWN',
    OCI_INDEX,
  ),
  manifestPut(
    'PUT by digest whose body does not match',
    SEED_MANIFEST,
    400,
    'DIGEST_INVALID',
    OCI_MANIFEST,
    sha256('something else'),
  ),
  manifestPut('tag starting with a dot', SEED_MANIFEST, 400, 'TAG_INVALID', OCI_MANIFEST, '.hidden'),
  manifestPut('tag starting with a dash', SEED_MANIFEST, 400, 'TAG_INVALID', OCI_MANIFEST, '-v1'),
  manifestPut('tag of 129 characters', SEED_MANIFEST, 400, 'TAG_INVALID', OCI_MANIFEST, `v${'1'.repeat(128)}`),
  manifestPut('tag with an encoded space', SEED_MANIFEST, 400, 'TAG_INVALID', OCI_MANIFEST, 'v%201'),
  {
    wrong: 'GET of a malformed tag',
    method: 'GET',
    path: `/v2/${REPO}/manifests/.hidden`,
    status: 404,
    code: 'MANIFEST_UNKNOWN',
  },
  {
    wrong: 'DELETE of an unknown tag',
    method: 'DELETE',
    path: `/v2/${REPO}/manifests/nope`,
    status: 404,
    code: 'MANIFEST_UNKNOWN',
  },
  {
    wrong: 'DELETE of an unknown manifest digest',
    method: 'DELETE',
    path: `/v2/${REPO}/manifests/${sha256('nope')}`,
    status: 404,
    code: 'MANIFEST_UNKNOWN',
  },
  {
    wrong: 'DELETE of a blob the repository does not have',
    method: 'DELETE',
    path: `/v2/${REPO}/blobs/${sha256(ONLY_IN_OTHER)}`,
    status: 404,
    code: 'BLOB_UNKNOWN',
  },

  // Unknown repositories.
  {
    wrong: 'tag list of an unknown repository',
    method: 'GET',
    path: '/v2/no/such/repo/tags/list',
    status: 404,
    code: 'NAME_UNKNOWN',
  },
  {
    wrong: 'manifest of an unknown repository',
    method: 'GET',
    path: '/v2/no/such/repo/manifests/latest',
    status: 404,
    code: 'NAME_UNKNOWN',
  },
  {
    wrong: 'blob of an unknown repository',
    method: 'GET',
    path: `/v2/no/such/repo/blobs/${sha256(LAYER)}`,
    status: 404,
    code: 'NAME_UNKNOWN',
  },
  {
    wrong: 'referrers of an unknown repository',
    method: 'GET',
    path: `/v2/no/such/repo/referrers/${sha256(SEED_MANIFEST)}`,
    status: 404,
    code: 'NAME_UNKNOWN',
  },
  {
    wrong: 'tag list of the parent directory of a repository',
    method: 'GET',
    path: '/v2/seed/tags/list',
    status: 404,
    code: 'NAME_UNKNOWN',
  },
  {
    wrong: 'manifest of the parent directory of a repository',
    method: 'GET',
    path: '/v2/seed/manifests/v1',
    status: 404,
    code: 'NAME_UNKNOWN',
  },
  {
    wrong: 'referrers of the parent directory of a repository',
    method: 'GET',
    path: `/v2/seed/referrers/${sha256(SEED_MANIFEST)}`,
    status: 404,
    code: 'NAME_UNKNOWN',
  },
  {
    wrong: 'manifest DELETE in an unknown repository',
    method: 'DELETE',
    path: `/v2/no/such/repo/manifests/${sha256(SEED_MANIFEST)}`,
    status: 404,
    code: 'NAME_UNKNOWN',
  },
  {
    wrong: 'upload status in an unknown repository',
    method: 'GET',
    path: `/v2/no/such/repo/blobs/uploads/${UNKNOWN_ID}`,
    status: 404,
    code: 'BLOB_UPLOAD_UNKNOWN',
  },

  // Endpoints and methods.
  { wrong: 'unknown endpoint under /v2', method: 'GET', path: `/v2/${REPO}/nothing`, status: 404, code: 'UNSUPPORTED' },
  { wrong: 'unknown API version', method: 'GET', path: '/v1/_ping', status: 404, code: 'UNSUPPORTED' },
  { wrong: 'root path', method: 'GET', path: '/', status: 404, code: 'UNSUPPORTED' },
  {
    wrong: 'POST on a manifest',
    method: 'POST',
    path: `/v2/${REPO}/manifests/v1`,
    body: SEED_MANIFEST,
    status: 405,
    code: 'UNSUPPORTED',
  },
  {
    wrong: 'PUT on a blob',
    method: 'PUT',
    path: `/v2/${REPO}/blobs/${sha256('data')}`,
    body: 'data',
    status: 405,
    code: 'UNSUPPORTED',
  },
  { wrong: 'DELETE on the catalog', method: 'DELETE', path: '/v2/_catalog', status: 405, code: 'UNSUPPORTED' },
  {
    wrong: 'PATCH on the upload-start endpoint',
    method: 'PATCH',
    path: `/v2/${REPO}/blobs/uploads/`,
    body: 'data',
    status: 405,
    code: 'UNSUPPORTED',
  },
  { wrong: 'POST on the base endpoint', method: 'POST', path: '/v2/', status: 405, code: 'UNSUPPORTED' },
  {
    wrong: 'DELETE on the tag list',
    method: 'DELETE',
    path: `/v2/${REPO}/tags/list`,
    status: 405,
    code: 'UNSUPPORTED',
  },
  {
    wrong: 'GET on the upload-start endpoint',
    method: 'GET',
    path: `/v2/${REPO}/blobs/uploads/`,
    status: 405,
    code: 'UNSUPPORTED',
  },
  {
    wrong: 'POST on an upload session',
    method: 'POST',
    path: '{session}',
    setup: 'session-with-chunk',
    status: 405,
    code: 'UNSUPPORTED',
  },

  // Pagination.
  {
    wrong: 'tag list n=-1',
    method: 'GET',
    path: `/v2/${REPO}/tags/list?n=-1`,
    status: 400,
    code: 'PAGINATION_NUMBER_INVALID',
  },
  {
    wrong: 'tag list n=abc',
    method: 'GET',
    path: `/v2/${REPO}/tags/list?n=abc`,
    status: 400,
    code: 'PAGINATION_NUMBER_INVALID',
  },
  {
    wrong: 'tag list n=1.5',
    method: 'GET',
    path: `/v2/${REPO}/tags/list?n=1.5`,
    status: 400,
    code: 'PAGINATION_NUMBER_INVALID',
  },
  {
    wrong: 'tag list n given twice',
    method: 'GET',
    path: `/v2/${REPO}/tags/list?n=1&n=2`,
    status: 400,
    code: 'PAGINATION_NUMBER_INVALID',
  },
  { wrong: 'catalog n=-1', method: 'GET', path: '/v2/_catalog?n=-1', status: 400, code: 'PAGINATION_NUMBER_INVALID' },
  { wrong: 'catalog n=abc', method: 'GET', path: '/v2/_catalog?n=abc', status: 400, code: 'PAGINATION_NUMBER_INVALID' },
  {
    wrong: 'tag list n with a broken escape',
    method: 'GET',
    path: `/v2/${REPO}/tags/list?n=%zz`,
    status: 400,
    code: 'PAGINATION_NUMBER_INVALID',
  },
  { wrong: 'catalog n empty', method: 'GET', path: '/v2/_catalog?n=', status: 400, code: 'PAGINATION_NUMBER_INVALID' },
];

interface RawResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

/** Sends a request with this exact path (fetch would normalise `..` and encoded dots away). */
function send(
  base: string,
  method: string,
  path: string,
  headers: Readonly<Record<string, string>> = {},
  body?: string | Buffer,
): Promise<RawResponse> {
  const { hostname, port } = new URL(base);
  const payload = body === undefined ? undefined : Buffer.from(body);
  const allHeaders = { ...headers, ...(payload === undefined ? {} : { 'Content-Length': String(payload.length) }) };
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, method, path, headers: allHeaders }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * Every file under `root`: relative path → size and sha256 of the contents. Empty directories are left out: they
 * hold no state (the in-memory driver has none), and the filesystem driver leaves them behind as Distribution's
 * does; rows that could leave one in a new repository check that the repository is still unknown instead.
 */
async function snapshot(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  for (const e of entries) {
    if (e.isDirectory()) continue;
    const full = join(e.parentPath, e.name);
    const content = await readFile(full);
    out.set(relative(root, full), `${content.length} ${createHash('sha256').update(content).digest('hex')}`);
  }
  return new Map([...out.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
}

async function startSession(base: string, name: string, chunk?: Buffer): Promise<string> {
  const res = await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  assert.equal(res.status, 202);
  const location = res.headers.get('location');
  assert.ok(location !== null);
  if (chunk !== undefined) {
    const patch = await fetch(`${base}${location}`, { method: 'PATCH', body: chunk });
    assert.equal(patch.status, 202);
  }
  return location;
}

async function pushBlob(base: string, name: string, data: Buffer): Promise<void> {
  const res = await fetch(`${base}/v2/${name}/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: data });
  assert.equal(res.status, 201);
}

describe('malformed requests', function () {
  let dir: string;
  let reg: InProcessRegistry;

  before(async function () {
    dir = await tempDir();
    reg = await startInProcess({ storage: { filesystem: { rootdirectory: dir }, delete: { enabled: true } } });
    await pushBlob(reg.url, REPO, CONFIG);
    await pushBlob(reg.url, REPO, LAYER);
    const put = await fetch(`${reg.url}/v2/${REPO}/manifests/v1`, {
      method: 'PUT',
      body: SEED_MANIFEST,
      headers: { 'Content-Type': OCI_MANIFEST },
    });
    assert.equal(put.status, 201);
    await pushBlob(reg.url, OTHER, ONLY_IN_OTHER);
  });

  after(async function () {
    await reg.close();
    await removeDir(dir);
  });

  it('has at least 40 rows, each with a distinct description', function () {
    assert.ok(ROWS.length >= 40, `${ROWS.length} rows`);
    assert.equal(new Set(ROWS.map((r) => r.wrong)).size, ROWS.length);
  });

  for (const row of ROWS) {
    it(`answers ${row.status} ${row.code} to ${row.wrong} and changes nothing in storage`, async function () {
      let session = '';
      if (row.setup === 'empty-session') session = await startSession(reg.url, REPO);
      if (row.setup === 'session-with-chunk') session = await startSession(reg.url, REPO, CHUNK);
      if (row.setup === 'other-repo-session') session = await startSession(reg.url, OTHER, CHUNK);
      const id = session.slice(session.lastIndexOf('/') + 1);
      const path = row.path.replace('{session}', session).replace('{id}', id);

      const before = await snapshot(dir);
      const res = await send(reg.url, row.method, path, row.headers, row.body);
      const text = res.body.toString('utf8');

      assert.ok(res.status < 500, `no 5xx (got ${res.status}: ${text.slice(0, 300)})`);
      assert.equal(res.status, row.status, `status for ${row.method} ${path.slice(0, 120)}: ${text.slice(0, 300)}`);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      const json = JSON.parse(text) as { errors?: Array<{ code?: unknown; message?: unknown }> };
      assert.ok(Array.isArray(json.errors) && json.errors.length > 0, 'an OCI error envelope');
      assert.equal(json.errors[0]?.code, row.code);
      assert.equal(typeof json.errors[0]?.message, 'string');
      assert.doesNotMatch(
        text,
        /\n\s+at |\bat .*\(.*:\d+:\d+\)|node:internal|\/dist\/|\.[jt]s:\d+/,
        'no stack trace in the body',
      );

      const after = await snapshot(dir);
      assert.deepEqual(after, before, 'storage is unchanged');
      if (row.stillUnknown !== undefined) {
        const tags = await fetch(`${reg.url}/v2/${row.stillUnknown}/tags/list`);
        assert.equal(tags.status, 404);
        assert.equal(((await tags.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'NAME_UNKNOWN');
      }
      if (session !== '') {
        // The session the row used is as it was: same size, still usable.
        const owner = row.setup === 'other-repo-session' ? OTHER : REPO;
        const status = await fetch(`${reg.url}${session}`);
        assert.equal(status.status, 204);
        assert.equal(status.headers.get('range'), row.setup === 'empty-session' ? '0-0' : `0-${CHUNK.length - 1}`);
        assert.ok(session.startsWith(`/v2/${owner}/`));
      }
    });
  }

  it('still serves the seeded image intact after every row', async function () {
    const res = await fetch(`${reg.url}/v2/${REPO}/manifests/v1`);
    assert.equal(await res.text(), SEED_MANIFEST);
    const tags = await fetch(`${reg.url}/v2/${REPO}/tags/list`);
    assert.deepEqual(await tags.json(), { name: REPO, tags: ['v1'] });
    const layer = await fetch(`${reg.url}/v2/${REPO}/blobs/${sha256(LAYER)}`);
    assert.deepEqual(Buffer.from(await layer.arrayBuffer()), LAYER);
    const catalog = await fetch(`${reg.url}/v2/_catalog`);
    assert.deepEqual(await catalog.json(), { repositories: [OTHER, REPO] });
  });
});
