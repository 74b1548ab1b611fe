// The debug listener: liveness, readiness and Prometheus metrics, kept off the registry port.
import { createServer, type Server } from 'node:http';
import type { StorageDriver } from '../storage/driver.js';
import { isNotFound } from '../storage/driver.js';
import type { DescriptorCache } from '../cache/index.js';
import type { HttpMetrics } from './metrics.js';

export interface DebugOptions {
  readonly driver: StorageDriver;
  /** Reported on /readyz but never fatal: the cache fails open. */
  readonly cache?: Pick<DescriptorCache, 'check'>;
  readonly metrics: HttpMetrics;
  readonly metricsPath: string | undefined;
}

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
      void Promise.all([storageReachable(options.driver), options.cache?.check()]).then(([storage, cache]) => {
        const checks = { storage: storage ?? 'ok', ...(options.cache === undefined ? {} : { cache: cache ?? 'ok' }) };
        json(storage === undefined ? 200 : 503, { status: storage === undefined ? 'ok' : 'unavailable', checks });
      });
    } else if (options.metricsPath !== undefined && path === options.metricsPath) {
      void options.metrics.registry.metrics().then((text) => {
        res.writeHead(200, { 'Content-Type': options.metrics.registry.contentType });
        res.end(text);
      });
    } else {
      json(404, { errors: [{ code: 'UNSUPPORTED', message: `no such endpoint: ${path}` }] });
    }
  });
}
