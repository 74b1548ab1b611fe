// Types for the parts of autocannon's programmatic API the benchmark uses; the package ships none.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';

  namespace autocannon {
    /** autocannon's summary of one statistic (latency in ms, requests per second, bytes per second). */
    interface Histogram {
      readonly average: number;
      readonly stddev: number;
      readonly min: number;
      readonly max: number;
      readonly total: number;
      readonly p50: number;
      readonly p90: number;
      readonly p99: number;
    }

    interface Result {
      /** Seconds the run took. */
      readonly duration: number;
      readonly errors: number;
      readonly timeouts: number;
      readonly non2xx: number;
      readonly '2xx': number;
      readonly requests: Histogram;
      readonly latency: Histogram;
      readonly statusCodeStats: Readonly<Record<string, { readonly count: number }>>;
    }

    /** One connection; `parser` is its http-parser-js response parser. */
    interface Client extends EventEmitter {
      readonly parser: object;
    }

    interface Options {
      url: string;
      method?: string;
      connections?: number;
      /** Seconds. */
      duration?: number;
      /** Seconds to wait for a response before counting a timeout. */
      timeout?: number;
      pipelining?: number;
      headers?: Record<string, string>;
      setupClient?: (client: Client) => void;
    }

    /** A running load test; emits `response` (client, statusCode, resBytes, responseTimeMs) per completed request. */
    interface Instance extends EventEmitter {
      stop(): void;
    }
  }

  function autocannon(
    opts: autocannon.Options,
    cb: (err: Error | null, result: autocannon.Result) => void,
  ): autocannon.Instance;
  export = autocannon;
}
