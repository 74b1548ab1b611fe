// The slow-volume block of `npm run bench`: each registry's storage root on its own slowfs mount (test/tools/slowfs, a
// FUSE loopback that delays every filesystem operation), loaded with HEAD blob and GET manifest by tag. Needs root.
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SlowFs } from '../test/helpers/slowfs.js';
import { RegistryClient } from './client.js';
import { loadSummary, progress, rotated } from './common.js';
import { runLoad, type LoadSpec } from './load.js';
import { REPO_ROOT, startRegistry, type RegistryId, type RunningRegistry } from './registries.js';
import { SLOW_VOLUME_KINDS, type SlowVolumeKind, type SlowVolumeResult } from './report.js';

/** Added latency per filesystem operation while measuring: about one network round trip. */
export const SLOW_VOLUME_DELAY_MS = 1;

export interface SlowVolumeOptions {
  readonly registries: readonly RegistryId[];
  /** The run's temp directory: each registry's config and log go in a directory of its own there. */
  readonly work: string;
  readonly connections: number;
  readonly durationS: number;
  readonly warmupS: number;
  /** Puts the run's seed image into a freshly started registry and checks that it answers for it. */
  readonly seed: (client: RegistryClient) => Promise<void>;
  readonly spec: (kind: SlowVolumeKind, base: URL) => LoadSpec;
}

export type SlowVolumeResults = Partial<Record<RegistryId, Partial<Record<SlowVolumeKind, SlowVolumeResult>>>>;

export type SlowVolumeOutcome =
  | {
      readonly ran: true;
      readonly results: SlowVolumeResults;
      /** What Berth's filesystem driver logged about where its calls run on the mount, if it did. */
      readonly berthFilesystem: string | undefined;
      /** Mounts that could not be removed afterwards (each message names its mount point). */
      readonly cleanupFailures: readonly string[];
    }
  | { readonly ran: false; readonly reason: string };

/** Why the block cannot run here, or undefined when it can. */
function whyNot(): string | undefined {
  if (process.env['BENCH_SLOW_VOLUME'] === '0') return 'BENCH_SLOW_VOLUME=0';
  if (process.getuid?.() !== 0) return 'slowfs mounts a FUSE volume, which needs root';
  if (!existsSync(join(REPO_ROOT, '.tools/bin/slowfs')))
    return '.tools/bin/slowfs is missing (scripts/install-test-tools.sh builds it)';
  if (!existsSync('/dev/fuse')) return '/dev/fuse is missing';
  return undefined;
}

/** The driver's line on where its calls run (`filesystem: ...`), which it logs at info once statfs(2) has answered. */
async function filesystemLine(logFile: string, waitMs = 3000): Promise<string | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      let entry: unknown;
      try {
        entry = JSON.parse(line);
      } catch {
        continue;
      }
      if (typeof entry !== 'object' || entry === null || !('msg' in entry)) continue;
      const msg = entry.msg;
      if (typeof msg === 'string' && msg.startsWith('filesystem:')) return msg;
    }
    if (Date.now() >= deadline) return undefined;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Starts each registry on a slowfs mount of its own (no delay while starting and seeding), sets every mount's delay
 * to SLOW_VOLUME_DELAY_MS, runs each load against each registry in rotated order, and always stops the registries,
 * then slowfs, which unmounts (test/helpers/slowfs.ts's close: SIGTERM, then `umount -l` if still mounted).
 */
export async function runSlowVolume(o: SlowVolumeOptions): Promise<SlowVolumeOutcome> {
  const reason = whyNot();
  if (reason !== undefined) {
    progress(`slow volume: skipped: ${reason}`);
    return { ran: false, reason };
  }
  // Loaded only here: the helper brings the test harness (and Berth's composition module) along.
  const { startSlowFs } = await import('../test/helpers/slowfs.js');
  const mounts: SlowFs[] = [];
  const running: { readonly reg: RunningRegistry; readonly client: RegistryClient; readonly volume: SlowFs }[] = [];
  // Ctrl-C ends the bench through process.exit (common.ts's stopOnSignals): slowfs unmounts itself on SIGTERM.
  const onExit = (): void => {
    for (const m of mounts) {
      try {
        process.kill(m.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  };
  process.on('exit', onExit);
  const results: SlowVolumeResults = {};
  let berthFilesystem: string | undefined;
  const cleanupFailures: string[] = [];
  try {
    for (const id of o.registries) {
      const volume = await startSlowFs();
      mounts.push(volume);
      const dir = join(o.work, `${id}-slow-volume`);
      await mkdir(dir);
      const reg = await startRegistry(id, {
        dir,
        cache: 'none',
        root: volume.mountpoint,
        ...(id === 'berth' ? { logLevel: 'info' as const } : {}),
      });
      const client = new RegistryClient(reg.baseUrl);
      running.push({ reg, client, volume });
      progress(`  ${reg.label}: pid ${reg.pid}, storage on slowfs ${volume.mountpoint} (pid ${volume.pid})`);
      await o.seed(client);
      if (id === 'berth') {
        berthFilesystem = await filesystemLine(reg.logFile);
        progress(`  ${reg.label}: ${berthFilesystem ?? 'logged nothing on where its filesystem calls run'}`);
      }
    }
    for (const m of mounts) await m.setDelay(SLOW_VOLUME_DELAY_MS);

    for (const [n, kind] of SLOW_VOLUME_KINDS.entries()) {
      for (const { reg, volume } of rotated(running, n)) {
        progress(`${reg.label}: ${kind} on the slow volume at ${o.connections} connections`);
        const spec = o.spec(kind, reg.baseUrl);
        const settings = { connections: o.connections, pid: reg.pid };
        if (o.warmupS > 0) await runLoad(spec, { ...settings, durationS: o.warmupS });
        const before = await volume.stats();
        const load = await runLoad(spec, { ...settings, durationS: o.durationS });
        const after = await volume.stats();
        const fsOpsPerRequest = load.requests > 0 ? (after.total - before.total) / load.requests : Number.NaN;
        (results[reg.id] ??= {})[kind] = { load, fsOpsPerRequest };
        progress(`  ${reg.label}: ${loadSummary(load, `, ${fsOpsPerRequest.toFixed(1)} filesystem ops/req`)}`);
      }
    }
  } finally {
    for (const { client } of running) client.close();
    // Registries first: a mount still in use could only be detached lazily.
    await Promise.allSettled(running.map(({ reg }) => reg.stop()));
    const closed = await Promise.allSettled(mounts.map((m) => m.close()));
    for (const c of closed) {
      if (c.status === 'rejected') {
        const message = c.reason instanceof Error ? c.reason.message : String(c.reason);
        cleanupFailures.push(message);
        progress(`WARNING: slow volume: ${message}`);
      }
    }
    process.off('exit', onExit);
  }
  return { ran: true, results, berthFilesystem, cleanupFailures };
}
