// The composition root: builds the driver, the descriptor cache, storage and the HTTP app from a resolved config,
// starts the registry and debug listeners, and stops them gracefully. `berth serve` and the tests start Berth here.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { ResolvedConfig } from './config/schema.js';
import { createDriver } from './storage/drivers/factory.js';
import { FilesystemDriver } from './storage/drivers/filesystem/index.js';
import { InstrumentedDriver } from './storage/instrumented.js';
import { isNotFound, type StorageDriver } from './storage/driver.js';
import { purgeUploads } from './storage/purge.js';
import { RegistryStorage } from './storage/registry.js';
import { createDescriptorCache } from './cache/index.js';
import { createAccessController, createAuthMetrics, type AccessController } from './auth/index.js';
import { createNotifier } from './notifications/index.js';
import { createApp } from './registry/app.js';
import { createDebugServer } from './registry/debug.js';
import { createMetrics } from './registry/metrics.js';
import { createTlsServer, type TlsListener } from './registry/tls.js';
import { gcConfigNotes, startOnlineGc, type OnlineGc } from './gc/online.js';

export interface RunningRegistry {
  /** Where the registry API listens. */
  readonly address: AddressInfo;
  /** Where health and metrics listen. */
  readonly debugAddress: AddressInfo | undefined;
  readonly storage: RegistryStorage;
  /** Stops accepting, lets in-flight requests finish (up to http.draintimeout), then closes everything. */
  close(): Promise<void>;
}

/** Splits `host:port`, `:port` or `port`; an empty host listens on every interface. */
export function parseListen(addr: string): { host: string | undefined; port: number } {
  const i = addr.lastIndexOf(':');
  const host = i < 0 ? '' : addr.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host: host === '' ? undefined : host, port: Number(i < 0 ? addr : addr.slice(i + 1)) };
}

/** A listener that could not open: the address and the reason, for one clear line at start-up. */
export class ListenError extends Error {
  readonly addr: string;
  readonly code: string | undefined;

  constructor(what: string, addr: string, cause: unknown) {
    const code =
      typeof cause === 'object' && cause !== null && 'code' in cause && typeof cause.code === 'string'
        ? cause.code
        : undefined;
    const reason =
      code === undefined ? (cause instanceof Error ? cause.message : String(cause)) : (LISTEN_REASONS[code] ?? code);
    super(`cannot listen on ${addr} (${what}): ${reason}`);
    this.name = 'ListenError';
    this.addr = addr;
    this.code = code;
  }
}

const LISTEN_REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the address is already in use (another registry or process listens there)',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'no interface of this machine has that address',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name does not resolve',
};

function listen(server: Server, addr: string, what: string): Promise<AddressInfo> {
  const { host, port } = parseListen(addr);
  return new Promise((resolve, reject) => {
    const failed = (err: unknown): void => reject(new ListenError(what, addr, err));
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve(server.address() as AddressInfo);
    });
  });
}

export interface StartOptions {
  /** A driver to use instead of the configured one (tests). */
  readonly driver?: StorageDriver;
  /** How often the htpasswd, key and certificate files are statted besides fs.watch (tests shorten it). */
  readonly filePollMs?: number;
}

export async function startRegistry(
  config: ResolvedConfig,
  log: Logger,
  options: StartOptions = {},
): Promise<RunningRegistry> {
  const metrics = createMetrics();
  const base = options.driver ?? (await createDriver(config.storage));
  if (base instanceof FilesystemDriver) {
    void base.eventLoop.then((report) =>
      log.info(
        report,
        report.eventLoop
          ? 'filesystem: stats and small reads run on the event loop while they are fast'
          : 'filesystem: every call runs on the thread pool',
      ),
    );
  }
  // Every storage action is timed and counted (registry_storage_action_seconds), the cache's savings made visible.
  const driver = new InstrumentedDriver(base, metrics.registry);
  const cache = await createDescriptorCache(config, log, metrics.registry);
  const storage = new RegistryStorage(driver, {
    verifyReads: config.verifyReads,
    ...(cache === undefined ? {} : { wrapStatter: (s, scope) => cache.wrap(s, scope), invalidate: cache.invalidate }),
  });
  const events = createNotifier(config.notifications, metrics.registry, log);
  const poll = options.filePollMs === undefined ? {} : { pollMs: options.filePollMs };
  let auth: AccessController | undefined;
  let tls: TlsListener | undefined;
  let server: Server;
  try {
    auth = await createAccessController(config.auth, { log, metrics: createAuthMetrics(metrics.registry), ...poll });
    const app = createApp(
      { config, storage, log, ...(events === undefined ? {} : { events }), ...(auth === undefined ? {} : { auth }) },
      metrics,
    );
    if (config.http.tls !== undefined) tls = await createTlsServer(config.http.tls, app.callback(), log, poll.pollMs);
    server = tls?.server ?? createServer(app.callback());
  } catch (err) {
    auth?.close();
    await events?.close(0);
    await cache?.close();
    await driver.close();
    throw err;
  }
  // Big pushes may take long; idle and header timeouts still guard against clients that stall.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  let address: AddressInfo;
  let debug: Server | undefined;
  let debugAddress: AddressInfo | undefined;
  try {
    address = await listen(server, config.http.addr, 'http.addr');
    if (config.http.debug.addr !== '') {
      debug = createDebugServer({
        driver,
        metrics,
        log,
        ...(cache === undefined ? {} : { cache }),
        metricsPath: config.http.debug.prometheus.enabled ? config.http.debug.prometheus.path : undefined,
        reports: {
          ...(auth === undefined ? {} : { auth: () => auth?.status() }),
          ...(tls === undefined ? {} : { tls: () => tls?.status() }),
        },
      });
      debugAddress = await listen(debug, config.http.debug.addr, 'http.debug.addr');
    }
  } catch (err) {
    // Nothing may keep the process alive after a failed start: a Redis client, say, would reconnect forever.
    server.close();
    debug?.close();
    auth?.close();
    tls?.close();
    await events?.close(0);
    await cache?.close();
    await driver.close();
    throw err;
  }
  for (const section of config.ignored)
    log.warn({ section }, 'config setting is not supported by Berth and is ignored');

  let purgeTimer: NodeJS.Timeout | undefined;
  const purging = config.uploadPurging;
  if (purging.enabled && !config.readOnly) {
    const run = (): void => {
      purgeUploads(driver, new Date(Date.now() - purging.age), purging.dryrun, log).then(
        (r) => log.info(r, 'upload purge finished'),
        (err: unknown) => log.warn({ err }, 'upload purge failed'),
      );
    };
    // First pass soon after start (jittered so replicas don't walk storage together), then every interval.
    purgeTimer = setTimeout(
      () => {
        run();
        purgeTimer = setInterval(run, Math.max(purging.interval, 60_000)).unref();
      },
      5_000 + Math.random() * 25_000,
    ).unref();
  }

  // Online garbage collection: one replica of a shared store at a time, by a lease in storage (src/gc/lease.ts).
  let onlineGc: OnlineGc | undefined;
  for (const note of gcConfigNotes(config)) log.warn({ section: 'storage.maintenance.gc' }, note);
  if (config.gc.enabled && !config.readOnly) {
    onlineGc = startOnlineGc({
      driver,
      config: config.gc,
      log,
      registry: metrics.registry,
      ...(cache === undefined ? {} : { invalidate: cache.invalidate }),
    });
  }

  log.info(
    {
      addr: `${address.address}:${address.port}`,
      debugAddr: debugAddress && `${debugAddress.address}:${debugAddress.port}`,
      tls: tls !== undefined,
      auth: config.auth?.token !== undefined ? 'token' : config.auth?.htpasswd !== undefined ? 'htpasswd' : 'none',
      storage: driver.name,
    },
    'listening',
  );
  // Bad credentials, a missing bucket or a wrong endpoint: said once, in one line, at start; /readyz keeps saying it.
  // The registry serves on (the store may come back), as it would after losing the store later.
  void driver.stat('/').then(
    () => undefined,
    (err: unknown) => {
      if (isNotFound(err)) return;
      log.error(
        { storage: driver.name, err: err instanceof Error ? err.message : String(err) },
        'storage is not reachable',
      );
    },
  );

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      if (purgeTimer !== undefined) clearTimeout(purgeTimer);
      // A running collection stops at its next storage call and frees its lease, while requests drain.
      const gcStopped = onlineGc?.stop();
      const drained = new Promise<void>((resolve) => server.close(() => resolve()));
      // Keep-alive connections go idle as their last request ends; close them as they do.
      const sweeper = setInterval(() => server.closeIdleConnections(), 50);
      server.closeIdleConnections();
      void drained.then(() => clearInterval(sweeper));
      const deadline = new Promise<'timeout'>((resolve) =>
        setTimeout(() => resolve('timeout'), config.http.draintimeout).unref(),
      );
      if ((await Promise.race([drained.then(() => 'drained' as const), deadline])) === 'timeout') {
        log.warn('drain timeout reached; closing remaining connections');
        server.closeAllConnections();
        await drained;
      }
      if (debug !== undefined) {
        debug.closeAllConnections();
        await new Promise<void>((resolve) => debug.close(() => resolve()));
      }
      auth?.close();
      tls?.close();
      // Events of the requests that just finished get a moment to go out.
      await events?.close(2_000);
      await gcStopped;
      await cache?.close();
      await driver.close();
    })();
    return closing;
  };
  return { address, debugAddress, storage, close };
}
