// Typed errors of the storage layer, as the HTTP answers clients expect.
import { RegistryError } from '../oci/errors.js';
import { ContentMismatch } from '../storage/blobs.js';
import { ChunkMismatch } from '../storage/uploads.js';

/** `err` as the RegistryError the boundary renders, when storage threw one of its own typed errors; else `err`. */
export function fromStorage(err: unknown): unknown {
  if (err instanceof ChunkMismatch) {
    // The spec's answer to a chunk that does not fit: 416, with the range the upload holds now.
    const headers = { Range: `0-${Math.max(err.size - 1, 0)}` };
    if (err.kind === 'offset') return new RegistryError('RANGE_INVALID', { message: err.message, headers });
    return new RegistryError('BLOB_UPLOAD_INVALID', {
      message: err.message,
      status: err.ranged ? 416 : 400,
      headers,
    });
  }
  if (err instanceof ContentMismatch) {
    // No OCI code says "stored but damaged": DIGEST_INVALID (400) would blame the client's upload, and *_UNKNOWN (404)
    // would deny content that a HEAD still finds; the failure is the registry's own, so UNKNOWN with 500.
    return new RegistryError('UNKNOWN', {
      message: 'the stored content does not match its digest, so the registry will not serve it',
      detail: { digest: err.digest.value },
    });
  }
  return err;
}
