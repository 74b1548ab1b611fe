// `berth check URL`: pushes a tiny image (a config, a layer, a manifest) to a registry and pulls it back, checking
// every byte by digest. It is what `helm test` runs against a Registry, and a quick probe for people.
import { randomBytes } from 'node:crypto';
import { digestBuffer } from '../oci/digest.js';
import { MediaTypes } from '../oci/manifest.js';

export interface CheckOptions {
  /** The registry's base URL, `http://host:port` (https when it serves TLS). */
  readonly url: string;
  /** The repository to push to. */
  readonly repository: string;
  /** Bounds each request. */
  readonly timeoutMs: number;
  /** One line per step. */
  readonly say: (line: string) => void;
}

class CheckFailed extends Error {}

async function request(
  options: CheckOptions,
  method: string,
  path: string,
  init: { body?: Uint8Array; headers?: Record<string, string> } = {},
): Promise<Response> {
  const url = new URL(path, options.url);
  try {
    return await fetch(url, {
      method,
      headers: init.headers,
      ...(init.body === undefined ? {} : { body: init.body }),
      redirect: 'follow',
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    throw new CheckFailed(`${method} ${url.href}: ${err instanceof Error ? err.message : String(err)}${cause}`);
  }
}

async function expect(res: Response, what: string, ...statuses: number[]): Promise<Response> {
  if (statuses.includes(res.status)) return res;
  const body = (await res.text()).slice(0, 300);
  throw new CheckFailed(`${what}: HTTP ${res.status}, expected ${statuses.join(' or ')}: ${body}`);
}

/** A monolithic upload: POST then PUT with the digest (the two-request form every registry takes). */
async function pushBlob(options: CheckOptions, bytes: Uint8Array): Promise<string> {
  const digest = digestBuffer(bytes).value;
  const started = await expect(
    await request(options, 'POST', `/v2/${options.repository}/blobs/uploads/`),
    'start an upload',
    202,
  );
  const location = started.headers.get('location');
  if (location === null) throw new CheckFailed('start an upload: no Location header');
  const target = new URL(location, options.url);
  target.searchParams.set('digest', digest);
  await expect(
    await request(options, 'PUT', target.href, {
      body: bytes,
      headers: { 'content-type': 'application/octet-stream' },
    }),
    `finish the upload of ${digest}`,
    201,
  );
  return digest;
}

async function pullAndCompare(options: CheckOptions, path: string, expected: Uint8Array, accept?: string) {
  const res = await expect(
    await request(options, 'GET', path, accept === undefined ? {} : { headers: { accept } }),
    `GET ${path}`,
    200,
  );
  const got = new Uint8Array(await res.arrayBuffer());
  if (Buffer.compare(Buffer.from(got), Buffer.from(expected)) !== 0) {
    throw new CheckFailed(`GET ${path}: ${got.length} bytes that differ from the ${expected.length} pushed`);
  }
}

/** Runs the check; resolves the manifest digest, throws with the failing step's answer. */
export async function checkRegistry(options: CheckOptions): Promise<string> {
  const { say } = options;
  await expect(await request(options, 'GET', '/v2/'), 'GET /v2/', 200);
  say(`${options.url}: /v2/ answers`);
  const layer = randomBytes(1024);
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
  );
  const layerDigest = await pushBlob(options, layer);
  const configDigest = await pushBlob(options, config);
  say(`pushed blobs ${layerDigest} and ${configDigest}`);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layer.length }],
    }),
  );
  const tag = `check-${Date.now()}`;
  const put = await expect(
    await request(options, 'PUT', `/v2/${options.repository}/manifests/${tag}`, {
      body: manifest,
      headers: { 'content-type': MediaTypes.ociManifest },
    }),
    `PUT the manifest ${tag}`,
    201,
  );
  const manifestDigest = digestBuffer(manifest).value;
  const answered = put.headers.get('docker-content-digest');
  if (answered !== null && answered !== manifestDigest) {
    throw new CheckFailed(`PUT the manifest: the registry says ${answered}, the bytes are ${manifestDigest}`);
  }
  say(`pushed ${options.repository}:${tag} (${manifestDigest})`);
  await pullAndCompare(options, `/v2/${options.repository}/manifests/${tag}`, manifest, MediaTypes.ociManifest);
  await pullAndCompare(options, `/v2/${options.repository}/blobs/${configDigest}`, config);
  await pullAndCompare(options, `/v2/${options.repository}/blobs/${layerDigest}`, layer);
  say(`pulled ${options.repository}:${tag}: manifest, config and layer match`);
  // Tidy up where the registry allows deletes; a 405 (deletes disabled) is not a failure of the check.
  const deleted = await request(options, 'DELETE', `/v2/${options.repository}/manifests/${manifestDigest}`);
  await deleted.arrayBuffer();
  say(deleted.status === 202 ? 'deleted the manifest' : `left the manifest (DELETE answered ${deleted.status})`);
  return manifestDigest;
}

export function isCheckFailure(err: unknown): err is Error {
  return err instanceof CheckFailed;
}
