// How `berth gc` shows its progress: a bar per phase on a terminal, JSON lines for machines (--json), and otherwise
// a line per phase and per 1,000 items on stderr.
import cliProgress from 'cli-progress';
import type { GcPhase, GcProgress } from '../gc/collect.js';

export type ProgressReporter = (progress: GcProgress) => void;

const LABELS: Readonly<Record<GcPhase, string>> = {
  repositories: 'finding repositories',
  mark: 'marking manifests',
  manifests: 'sweeping untagged manifests',
  blobs: 'scanning blobs',
  links: 'scanning repository links',
  recheck: 'rechecking new manifests',
  sweep: 'sweeping blobs',
  rescan: 'looking for manifests that raced the sweep',
  leftovers: 'removing what interrupted writes left',
};

/** A cli-progress bar per phase, on `stream` (a terminal). */
export function barReporter(stream: NodeJS.WriteStream): ProgressReporter & { stop(): void } {
  let bar: cliProgress.SingleBar | undefined;
  let phase: GcPhase | undefined;
  const stop = (): void => {
    bar?.stop();
    bar = undefined;
    phase = undefined;
  };
  const report = (p: GcProgress): void => {
    if (p.phase !== phase) {
      stop();
      phase = p.phase;
      bar = new cliProgress.SingleBar(
        {
          stream,
          format: `${LABELS[p.phase].padEnd(28)} {bar} {value}/{total}`,
          hideCursor: true,
          clearOnComplete: false,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(p.total ?? 0, p.done);
    }
    if (p.total !== undefined) bar?.setTotal(p.total);
    bar?.update(p.done);
    if (p.end === true) stop();
  };
  return Object.assign(report, { stop });
}

/** One JSON line per phase start and end, and at most one every `intervalMs` in between. */
export function jsonReporter(write: (line: string) => void, intervalMs = 2_000): ProgressReporter {
  let last = 0;
  let phase: GcPhase | undefined;
  return (p) => {
    const now = Date.now();
    if (p.phase === phase && p.end !== true && now - last < intervalMs) return;
    phase = p.phase;
    last = now;
    write(
      JSON.stringify({
        type: 'progress',
        phase: p.phase,
        done: p.done,
        total: p.total ?? null,
        ...(p.end === true ? { end: true } : {}),
      }),
    );
  };
}

/** Plain lines: when a phase starts and ends, and every 1,000 items. */
export function lineReporter(write: (line: string) => void): ProgressReporter {
  let phase: GcPhase | undefined;
  let lastThousand = 0;
  return (p) => {
    if (p.phase !== phase) {
      phase = p.phase;
      lastThousand = 0;
      write(`gc: ${LABELS[p.phase]}${p.total === undefined ? '' : ` (${p.total})`}`);
    }
    const thousands = Math.floor(p.done / 1000);
    if (p.end === true) write(`gc: ${LABELS[p.phase]}: done, ${p.done}`);
    else if (thousands > lastThousand) {
      lastThousand = thousands;
      write(`gc: ${LABELS[p.phase]}: ${p.done}${p.total === undefined ? '' : `/${p.total}`}`);
    }
  };
}
