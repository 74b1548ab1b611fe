// Upload purging: sessions older than the configured age are removed, as Distribution's uploadpurging does.
import type { Logger } from 'pino';
import { isNotFound, type StorageDriver } from './driver.js';
import { REPOSITORIES } from './paths.js';

export interface PurgeResult {
  readonly scanned: number;
  readonly purged: number;
  /** Unfinished backend writes (S3 multipart uploads) found older than the cut-off, and aborted unless a dry run. */
  readonly incomplete: number;
}

/**
 * Deletes upload sessions started before `olderThan`, then has the driver abort what unfinished writers left on the
 * backend before then (see StorageDriver.abortIncomplete).
 */
export async function purgeUploads(
  driver: StorageDriver,
  olderThan: Date,
  dryRun: boolean,
  log?: Logger,
): Promise<PurgeResult> {
  let scanned = 0;
  let purged = 0;
  const visit = async (dir: string): Promise<void> => {
    let children: string[];
    try {
      children = await driver.list(dir);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    for (const child of children) {
      const base = child.slice(child.lastIndexOf('/') + 1);
      if (base === '_uploads') {
        for (const upload of await driver.list(child).catch(() => [] as string[])) {
          scanned++;
          const info = await driver.stat(`${upload}/startedat`).catch(() => driver.stat(upload));
          if (info.modTime < olderThan) {
            purged++;
            log?.info({ upload, startedAt: info.modTime.toISOString(), dryRun }, 'purging stale upload');
            if (!dryRun) await driver.delete(upload).catch(() => undefined);
          }
        }
      } else if (!base.startsWith('_')) {
        await visit(child);
      }
    }
  };
  await visit(REPOSITORIES);
  const incomplete = (await driver.abortIncomplete?.(olderThan, dryRun)) ?? 0;
  if (incomplete > 0) log?.info({ incomplete, dryRun }, 'aborted unfinished writes left on the backend');
  return { scanned, purged, incomplete };
}
