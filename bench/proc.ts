// Reads a registry process's CPU time and resident memory from /proc (Linux only), the same way for every registry.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const MIB = 1024 * 1024;

/** Kernel clock ticks per second, in which /proc/<pid>/stat counts CPU time; 100 on nearly every Linux. */
const CLOCK_TICKS = ((): number => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

/** Seconds of CPU (user + system, all threads) the process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces and parentheses, so fields are counted from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line, so 11 and 12 after the command name.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`cannot parse /proc/${pid}/stat`);
  return (utime + stime) / CLOCK_TICKS;
}

/** The process's resident set size in MiB (VmRSS). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (m?.[1] === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return (Number(m[1]) * 1024) / MIB;
}

export interface RssSummary {
  readonly startMiB: number;
  readonly peakMiB: number;
  readonly endMiB: number;
  readonly samples: number;
}

/**
 * Samples VmRSS every `intervalMs` until stopped. Reads are synchronous on purpose: a /proc read takes microseconds,
 * and a timer that fires late under load still sees the memory that was resident then.
 */
export class RssSampler {
  readonly #pid: number;
  readonly #timer: NodeJS.Timeout;
  readonly #start: number;
  #peak: number;
  #last: number;
  #samples = 1;
  #stopped = false;

  constructor(pid: number, intervalMs = 50) {
    this.#pid = pid;
    this.#start = rssMiB(pid);
    this.#peak = this.#start;
    this.#last = this.#start;
    this.#timer = setInterval(() => this.#sample(), intervalMs);
  }

  #sample(): void {
    try {
      this.#last = rssMiB(this.#pid);
    } catch {
      return; // the process exited; the caller notices when its request fails
    }
    this.#samples += 1;
    if (this.#last > this.#peak) this.#peak = this.#last;
  }

  /** Stops sampling, taking one last sample so a peak right at the end is not missed; later calls do nothing. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#sample();
  }

  summary(): RssSummary {
    return { startMiB: this.#start, peakMiB: this.#peak, endMiB: this.#last, samples: this.#samples };
  }
}
