// Noticing that files changed: a mounted Kubernetes Secret or ConfigMap is updated by swapping a symlink in its
// directory (`..data`), so the directory is watched, not the file; fs.watch can miss events (network filesystems,
// some container runtimes), so a stat poll backs it up.
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

export interface FileWatcher {
  /** Stops watching and polling. */
  close(): void;
}

export interface WatchOptions {
  /** How often the files are statted, whatever fs.watch reports. */
  readonly pollMs?: number;
  /** How long events are gathered before one `onChange` (a rotation writes several files). */
  readonly debounceMs?: number;
}

/** What a stat says about a file's content: identity, size and times, or that it cannot be statted. */
async function fingerprint(path: string): Promise<string> {
  try {
    const s = await stat(path, { bigint: true });
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch (err) {
    return `error:${typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : String(err)}`;
  }
}

/**
 * Calls `onChange` after any of `paths` may have changed (replaced, rewritten, deleted, or its symlink swapped).
 * Calls never overlap: a change seen while `onChange` runs leads to one more call after it.
 */
export function watchFiles(
  paths: readonly string[],
  onChange: () => Promise<void> | void,
  options: WatchOptions = {},
): FileWatcher {
  const pollMs = options.pollMs ?? 5_000;
  const debounceMs = options.debounceMs ?? 100;
  const last = new Map<string, string>();
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;

  const fire = (): void => {
    if (closed) return;
    if (running !== undefined) {
      again = true;
      return;
    }
    running = (async () => {
      try {
        await onChange();
      } catch {
        // onChange reports its own failures; a watcher must not die of one.
      }
    })().finally(() => {
      running = undefined;
      if (again) {
        again = false;
        schedule();
      }
    });
  };
  const schedule = (): void => {
    if (closed) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      fire();
    }, debounceMs);
    timer.unref();
  };

  const poll = async (): Promise<void> => {
    let changed = false;
    for (const path of paths) {
      const now = await fingerprint(path);
      if (last.has(path) && last.get(path) !== now) changed = true;
      last.set(path, now);
    }
    if (changed) schedule();
  };
  void poll();
  const poller = setInterval(() => void poll(), pollMs);
  poller.unref();

  const watchers: FSWatcher[] = [];
  for (const dir of new Set(paths.map((p) => dirname(p)))) {
    const names = new Set(paths.filter((p) => dirname(p) === dir).map((p) => basename(p)));
    try {
      const w = watch(dir, { persistent: false }, (_event, file) => {
        // Kubernetes swaps `..data`; editors write a temporary file and rename it over ours.
        if (file === null || names.has(String(file)) || String(file).startsWith('..')) schedule();
      });
      w.on('error', () => undefined);
      watchers.push(w);
    } catch {
      // A directory that does not exist (yet) or cannot be watched: the poll still notices.
    }
  }

  return {
    close: () => {
      closed = true;
      clearInterval(poller);
      if (timer !== undefined) clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
