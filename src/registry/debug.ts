// The debug listener: liveness, readiness and Prometheus metrics, kept off the registry port.
// Liveness never touches storage or Redis: a slow or hung volume must not get a serving process restarted, and the
// answer comes from the event loop alone. Readiness asks storage with a deadline, one question at a time.
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import type { DescriptorCache } from '../cache/index.js';
import type { StorageDriver } from '../storage/driver.js';
import { isNotFound } from '../storage/driver.js';
import type { HttpMetrics } from './metrics.js';

export interface DebugOptions {
  readonly driver: StorageDriver;
  /** Reported on /readyz but never fatal: the cache fails open. */
  readonly cache?: Pick<DescriptorCache, 'check'>;
  readonly metrics: HttpMetrics;
  readonly metricsPath: string | undefined;
  readonly log: Logger;
  /** How long /readyz waits for storage before it answers not ready (Kubernetes probes wait 1 s by default). */
  readonly storageTimeoutMs?: number;
  /**
   * More checks shown on /readyz, never fatal: undefined when fine, else what is wrong (an htpasswd file deleted
   * while serving, say, with the last good one still in force).
   */
  readonly reports?: Readonly<Record<string, () => string | undefined>>;
}

/** Storage's answer to one stat of the root: undefined when reachable, else why not. */
async function storageReachable(driver: StorageDriver): Promise<string | undefined> {
  try {
    await driver.stat('/');
    return undefined;
  } catch (err) {
    // An empty store has no root yet; that is reachable.
    if (isNotFound(err)) return undefined;
    return err instanceof Error ? err.message : String(err);
  }
}

export function createDebugServer(options: DebugOptions): Server {
  const timeoutMs = options.storageTimeoutMs ?? 500;
  // At most one storage check runs at a time: on a hung volume each would hold a thread-pool thread for good.
  let checking: Promise<string | undefined> | undefined;
  /** What the last check that finished said was wrong: a slow failure (retries to a closed port) still shows. */
  let lastFailure: string | undefined;
  const checkStorage = (): Promise<string | undefined> => {
    checking ??= storageReachable(options.driver)
      .then((failure) => {
        lastFailure = failure;
        return failure;
      })
      .finally(() => {
        checking = undefined;
      });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<string>((resolve) => {
      timer = setTimeout(() => {
        const last = lastFailure === undefined ? '' : `; the last check that finished said: ${lastFailure}`;
        resolve(`storage did not answer within ${timeoutMs} ms${last}`);
      }, timeoutMs);
    });
    return Promise.race([checking, deadline]).finally(() => clearTimeout(timer));
  };

  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (path === '/healthz' || path === '/debug/health') {
      json(200, { status: 'ok' });
    } else if (path === '/readyz') {
      void Promise.all([checkStorage(), options.cache?.check()]).then(
        ([storage, cache]) => {
          const reports = Object.entries(options.reports ?? {}).map(([k, report]) => [k, report() ?? 'ok'] as const);
          const checks = {
            storage: storage ?? 'ok',
            ...(options.cache === undefined ? {} : { cache: cache ?? 'ok' }),
            ...Object.fromEntries(reports),
          };
          json(storage === undefined ? 200 : 503, { status: storage === undefined ? 'ok' : 'unavailable', checks });
        },
        (err: unknown) => {
          options.log.error({ err }, 'readiness check failed');
          json(500, { status: 'error', error: err instanceof Error ? err.message : String(err) });
        },
      );
    } else if (options.metricsPath !== undefined && path === options.metricsPath) {
      options.metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'Content-Type': options.metrics.registry.contentType });
          res.end(text);
        },
        (err: unknown) => {
          options.log.error({ err }, 'metrics scrape failed');
          json(500, {
            status: 'error',
            error: `collecting metrics failed: ${err instanceof Error ? err.message : String(err)}`,
          });
        },
      );
    } else {
      json(404, { errors: [{ code: 'UNSUPPORTED', message: `no such endpoint: ${path}` }] });
    }
  });
}
