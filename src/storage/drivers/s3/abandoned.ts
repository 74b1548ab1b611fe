// Abandoned multipart uploads: a writer that dies between CreateMultipartUpload and Complete (a crashed or killed
// process, a lost connection) leaves its parts on the server, stored and billed, though no listing of objects shows
// them. Upload purging finds them with ListMultipartUploads and aborts those started before its cut-off, as
// Distribution's purge does for its own upload directories.
import { AbortMultipartUploadCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';

/** An upload listing's largest page. */
const PAGE = 1000;

export interface AbandonedSweep {
  readonly client: S3Client;
  readonly bucket: string;
  /** Only keys under this prefix (the driver's root directory) are looked at. */
  readonly prefix: string;
  readonly olderThan: Date;
  readonly dryRun: boolean;
  /** Wraps each request as the driver does (its errors name the setting to check). */
  readonly send: <T>(call: () => Promise<T>) => Promise<T>;
  /** Told of each upload found old enough, before it is aborted. */
  readonly onAbandoned?: (key: string, initiated: Date) => void;
}

/** Aborts the multipart uploads under `prefix` initiated before `olderThan`; resolves how many it found. */
export async function abortAbandonedUploads(sweep: AbandonedSweep): Promise<number> {
  const { client, bucket, prefix, olderThan, dryRun, send } = sweep;
  let found = 0;
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  // Pages are bounded by S3's markers; the loop ends when a page says it is the last.
  for (;;) {
    const page = await send(() =>
      client.send(
        new ListMultipartUploadsCommand({
          Bucket: bucket,
          Prefix: prefix,
          MaxUploads: PAGE,
          ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
          ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
        }),
      ),
    );
    for (const upload of page.Uploads ?? []) {
      const { Key: key, UploadId: id, Initiated: initiated } = upload;
      if (key === undefined || id === undefined || initiated === undefined || initiated >= olderThan) continue;
      found++;
      sweep.onAbandoned?.(key, initiated);
      if (!dryRun) {
        await send(() => client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: id })));
      }
    }
    if (page.IsTruncated !== true) return found;
    const nextKey = page.NextKeyMarker;
    const nextId = page.NextUploadIdMarker;
    // A server that says "truncated" without markers would loop on the first page for ever.
    if (nextKey === undefined || (nextKey === keyMarker && nextId === uploadIdMarker)) return found;
    keyMarker = nextKey;
    uploadIdMarker = nextId;
  }
}
