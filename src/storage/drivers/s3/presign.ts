// Presigned URLs for storage.redirect: a client reads the object straight from S3 (or the S3-compatible server
// named by regionendpoint) with the driver's own signature in the query string, so blob bytes bypass the registry.
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { RedirectOptions } from '../../driver.js';

/** Signature V4 refuses presigned URLs that live longer than seven days. */
export const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

/**
 * A presigned URL for `key` in `bucket`, built from the client's own settings: its endpoint and path style
 * (forcepathstyle, as SeaweedFS needs), region and credentials. Signing is local work, with no request to the server;
 * it resolves the credentials first, so it fails as a read would when there are none.
 */
export function presignedURL(
  client: S3Client,
  bucket: string,
  key: string,
  { method, expiresInSeconds }: RedirectOptions,
): Promise<string> {
  const expiresIn = Math.min(MAX_PRESIGN_SECONDS, Math.max(1, Math.floor(expiresInSeconds)));
  const command =
    method === 'HEAD'
      ? new HeadObjectCommand({ Bucket: bucket, Key: key })
      : new GetObjectCommand({ Bucket: bucket, Key: key });
  return getSignedUrl(client, command, { expiresIn });
}
