// A small registry client for the cache tests: push a blob and an image manifest, HEAD and delete, as a client
// such as docker or skopeo does it (HEAD first, and skip the upload when the registry says the blob exists).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface Blob {
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
  readonly bytes: Buffer;
}

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function blobOf(bytes: Buffer, mediaType = OCI_LAYER): Blob {
  return { digest: sha256(bytes), size: bytes.length, mediaType, bytes };
}

export function randomBlob(size = 1024, mediaType = OCI_LAYER): Blob {
  return blobOf(randomBytes(size), mediaType);
}

/** HEAD of a blob; the status. */
export async function headBlob(url: string, name: string, digest: string): Promise<number> {
  const res = await fetch(`${url}/v2/${name}/blobs/${digest}`, { method: 'HEAD' });
  return res.status;
}

/** A monolithic upload (POST with ?digest=); asserts 201. */
export async function uploadBlob(url: string, name: string, blob: Blob): Promise<void> {
  const res = await fetch(`${url}/v2/${name}/blobs/uploads/?digest=${blob.digest}`, {
    method: 'POST',
    body: blob.bytes,
  });
  assert.equal(res.status, 201, `upload of ${blob.digest} to ${name}: ${await res.text()}`);
}

/** What a client does: HEAD, and upload only when the registry does not have the blob. Returns whether it uploaded. */
export async function pushBlob(url: string, name: string, blob: Blob): Promise<boolean> {
  const status = await headBlob(url, name, blob.digest);
  if (status === 200) return false;
  assert.equal(status, 404, `HEAD ${blob.digest} in ${name}`);
  await uploadBlob(url, name, blob);
  return true;
}

export function imageManifest(config: Blob, layers: readonly Blob[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    }),
  );
}

/** PUT of a manifest; the response. */
export async function putManifest(url: string, name: string, reference: string, manifest: Buffer): Promise<Response> {
  return fetch(`${url}/v2/${name}/manifests/${reference}`, {
    method: 'PUT',
    body: manifest,
    headers: { 'Content-Type': OCI_MANIFEST },
  });
}

export interface Image {
  readonly config: Blob;
  readonly layers: readonly Blob[];
  readonly manifest: Buffer;
  readonly digest: string;
}

export function randomImage(layers = 1, layerSize = 2048): Image {
  const config = blobOf(
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', nonce: randomBytes(8).toString('hex') })),
    OCI_CONFIG,
  );
  const ls = Array.from({ length: layers }, () => randomBlob(layerSize));
  const manifest = imageManifest(config, ls);
  return { config, layers: ls, manifest, digest: sha256(manifest) };
}

/** Pushes an image as a client does (HEAD before each upload); asserts the manifest PUT succeeds. */
export async function pushImage(url: string, name: string, tag: string, image: Image): Promise<void> {
  for (const blob of [...image.layers, image.config]) await pushBlob(url, name, blob);
  const res = await putManifest(url, name, tag, image.manifest);
  assert.equal(res.status, 201, `manifest PUT to ${name}:${tag}: ${await res.text()}`);
}

export async function deleteBlob(url: string, name: string, digest: string): Promise<void> {
  const res = await fetch(`${url}/v2/${name}/blobs/${digest}`, { method: 'DELETE' });
  assert.equal(res.status, 202, `DELETE blob ${digest}: ${await res.text()}`);
}

export async function deleteManifest(url: string, name: string, digest: string): Promise<void> {
  const res = await fetch(`${url}/v2/${name}/manifests/${digest}`, { method: 'DELETE' });
  assert.equal(res.status, 202, `DELETE manifest ${digest}: ${await res.text()}`);
}
