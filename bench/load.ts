// Fixed-concurrency request load through autocannon's programmatic API, with exact latency percentiles and the
// server's CPU time per completed request.
import autocannon from 'autocannon';
import { cpuSeconds } from './proc.js';

export interface LoadSpec {
  readonly url: URL;
  readonly method: 'GET' | 'HEAD';
  readonly headers?: Record<string, string>;
}

export interface LoadSettings {
  readonly connections: number;
  readonly durationS: number;
  /** The server process, whose CPU time is read before and after the run. */
  readonly pid: number;
}

export interface LoadResult {
  readonly requests: number;
  readonly durationS: number;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Answers outside 2xx, connection errors and timeouts: all should be 0; the report flags any that are not. */
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly serverCpuSeconds: number;
  readonly serverCpuMicrosPerRequest: number;
}

/** http-parser-js's slot for the headers-complete callback (`HTTPParser.kOnHeadersComplete`). */
const ON_HEADERS_COMPLETE = 2;

/**
 * autocannon's parser waits for Content-Length bytes after a HEAD answer, which never come, so every HEAD request
 * would end in a timeout. Registries answer HEAD blob with the blob's length, as they must. This makes the parser's
 * headers-complete callback report "no body follows" (what Node's own client does for HEAD), whatever autocannon
 * installs there after this hook runs. Returns a check that the hook was in fact used.
 */
function skipBodiesOfHeadAnswers(): { setupClient: (client: autocannon.Client) => void; used: () => boolean } {
  let installs = 0;
  const setupClient = (client: autocannon.Client): void => {
    let handler: ((...args: unknown[]) => unknown) | undefined;
    Object.defineProperty(client.parser, ON_HEADERS_COMPLETE, {
      configurable: true,
      get: () => handler,
      set: (fn: unknown) => {
        if (typeof fn !== 'function') throw new Error('autocannon installed a non-function parser callback');
        installs += 1;
        handler = (...args: unknown[]): boolean => {
          (fn as (...a: unknown[]) => unknown)(...args);
          return true;
        };
      },
    });
  };
  return { setupClient, used: () => installs > 0 };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

/** Runs `spec` at `settings.connections` for `settings.durationS` seconds. */
export function runLoad(spec: LoadSpec, settings: LoadSettings): Promise<LoadResult> {
  const head = spec.method === 'HEAD' ? skipBodiesOfHeadAnswers() : undefined;
  const options: autocannon.Options = {
    url: spec.url.href,
    method: spec.method,
    connections: settings.connections,
    duration: settings.durationS,
    timeout: 10,
    headers: { ...spec.headers },
    ...(head === undefined ? {} : { setupClient: head.setupClient }),
  };
  // autocannon's histogram has 1 ms resolution, too coarse for sub-millisecond answers, so keep every 2xx latency.
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  const cpuBefore = cpuSeconds(settings.pid);
  return new Promise<LoadResult>((resolve, reject) => {
    const instance = autocannon(options, (err, result) => {
      if (err !== null) {
        reject(err);
        return;
      }
      const cpu = cpuSeconds(settings.pid) - cpuBefore;
      if (head !== undefined && !head.used()) {
        reject(
          new Error('autocannon no longer installs its parser callback where expected; HEAD loads cannot be measured'),
        );
        return;
      }
      const sorted = latencies.slice(0, count).sort();
      const requests = result.requests.total;
      resolve({
        requests,
        durationS: result.duration,
        requestsPerSecond: result.duration > 0 ? requests / result.duration : 0,
        p50Ms: percentile(sorted, 0.5),
        p99Ms: percentile(sorted, 0.99),
        non2xx: result.non2xx,
        errors: result.errors,
        timeouts: result.timeouts,
        serverCpuSeconds: cpu,
        serverCpuMicrosPerRequest: requests > 0 ? (cpu * 1e6) / requests : Number.NaN,
      });
    });
    instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      if (status < 200 || status > 299) return;
      if (count === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[count++] = ms;
    });
  });
}
