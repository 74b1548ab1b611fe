// Starts Berth and the two CNCF Distribution builds on loopback with equivalent configs, waits until each answers,
// and guarantees they are stopped again whatever happens to the benchmark process.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

export const REGISTRY_IDS = ['berth', 'dist3', 'dist28'] as const;
export type RegistryId = (typeof REGISTRY_IDS)[number];

/** `twotier` is Berth's in-process LRU in front of Redis; Distribution has no such mode. */
export const CACHE_MODES = ['none', 'inmemory', 'redis', 'twotier'] as const;
export type CacheMode = (typeof CACHE_MODES)[number];

/**
 * Redis client settings written into every registry's config alike: Berth's default timeouts, and a connection pool
 * for Distribution large enough that 32 concurrent requests never wait for (or keep redialling) a connection.
 * Berth multiplexes one connection, so it has no pool to size.
 */
const REDIS_TIMEOUTS = { dialtimeout: '2s', readtimeout: '200ms', writetimeout: '200ms' } as const;
const REDIS_POOL_SIZE = 64;

interface ConfigInput {
  readonly root: string;
  readonly port: number;
  readonly debugPort: number;
  readonly cache: CacheMode;
  /** The registry's own redis-server, for the `redis` and `twotier` modes. */
  readonly redisPort: number | undefined;
  /** Berth only: fsync every appended chunk before answering its PATCH (`storage.filesystem.flushchunks`). */
  readonly flushChunks: boolean;
  /** Berth only; Distribution stays at warn, since at info it logs every request ("response completed"). */
  readonly logLevel: 'warn' | 'info';
  /** A storage driver section (`{ s3: {...} }`) in place of the filesystem at `root`. */
  readonly storage: object | undefined;
  /** `host:port` of the Redis, when not the local redis-server on redisPort (a proxy in front of one). */
  readonly redisAddr: string | undefined;
  readonly redisDb: number;
  /** Distribution 3's go-redis pool (`poolsize`, `maxidleconns`); REDIS_POOL_SIZE when absent. */
  readonly redisPoolSize: number | undefined;
}

/** The Redis address a config names: redisAddr, else the local redis-server. */
function redisAddrOf(o: ConfigInput): string {
  return o.redisAddr ?? `127.0.0.1:${needRedisPort(o)}`;
}

/** The repository root, found from this file's place in dist/bench/. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Flavour {
  readonly label: string;
  readonly command: string;
  readonly args: (configFile: string) => string[];
  /** The registry's own config for one benchmark run. */
  readonly config: (o: ConfigInput) => object;
  readonly version: () => string;
}

function needRedisPort(o: Pick<ConfigInput, 'cache' | 'redisPort'>): number {
  if (o.redisPort === undefined) throw new Error(`cache mode ${o.cache} needs a redis-server port`);
  return o.redisPort;
}

/**
 * Keys both Distribution versions read the same way; only the blob descriptor cache varies between runs, and the
 * `redis` section, whose keys differ between versions, comes from `redisSection`.
 */
function distributionConfig(o: ConfigInput, redisSection: (addr: string) => object): object {
  if (o.cache === 'twotier') throw new Error('Distribution has no two-tier cache; run it with redis');
  const redis = o.cache === 'redis' ? { redis: { ...redisSection(redisAddrOf(o)), db: o.redisDb } } : {};
  return {
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true } },
    storage: {
      ...(o.storage ?? { filesystem: { rootdirectory: o.root } }),
      // Blob GETs stream through the registry, as Berth's do: no 307 to a presigned URL.
      ...(o.storage === undefined ? {} : { redirect: { disable: true } }),
      delete: { enabled: true },
      // The purger walks the storage tree; no registry should do that in the middle of a measurement.
      maintenance: { uploadpurging: { enabled: false } },
      ...(o.cache === 'none' ? {} : { cache: { blobdescriptor: o.cache } }),
    },
    // A fixed secret only silences the "generated random secret" warning; uploads stay on one instance anyway.
    http: { addr: `127.0.0.1:${o.port}`, secret: 'berth-bench' },
    ...redis,
  };
}

function versionOf(command: string): string {
  try {
    const line =
      execFileSync(command, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim().split('\n')[0] ?? '';
    // Distribution prints its own path first: "<argv0> github.com/distribution/distribution/v3 v3.1.2".
    return line.startsWith(command) ? line.slice(command.length).trim() : line;
  } catch {
    return 'unknown';
  }
}

const FLAVOURS: Readonly<Record<RegistryId, Flavour>> = {
  berth: {
    label: 'Berth',
    command: process.execPath,
    args: (configFile) => [join(REPO_ROOT, 'dist/src/cli/main.js'), 'serve', '--config', configFile],
    config: (o) => {
      const redis = o.cache === 'redis' || o.cache === 'twotier';
      return {
        version: 0.1,
        log: { level: o.logLevel, accesslog: { disabled: true } },
        storage: {
          // `flushchunks` makes Berth fsync each PATCH's bytes before answering, as Distribution always does: only
          // for the chunked-push row that compares equal durability (run.ts's second Berth).
          ...(o.storage ?? { filesystem: { rootdirectory: o.root, ...(o.flushChunks ? { flushchunks: true } : {}) } }),
          // On object storage both stream blob GETs themselves (the pull rows compare registries, not the store).
          ...(o.storage === undefined ? {} : { redirect: { disable: true } }),
          delete: { enabled: true },
          maintenance: { uploadpurging: { enabled: false } },
          cache: redis ? { blobdescriptor: 'redis', twotier: o.cache === 'twotier' } : { blobdescriptor: o.cache },
        },
        // Berth always serves health and metrics on a second port; it gets its own so nothing collides.
        http: { addr: `127.0.0.1:${o.port}`, debug: { addr: `127.0.0.1:${o.debugPort}` } },
        ...(redis ? { redis: { addrs: [redisAddrOf(o)], db: o.redisDb, ...REDIS_TIMEOUTS } } : {}),
      };
    },
    version: () => {
      const pkg: unknown = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
      const v = typeof pkg === 'object' && pkg !== null && 'version' in pkg ? String(pkg.version) : '?';
      let commit = '';
      try {
        commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
      } catch {
        // not a git checkout: the version alone will do
      }
      return `berth ${v}${commit === '' ? '' : ` (${commit})`}, node ${process.version}`;
    },
  },
  dist3: {
    label: 'Distribution 3',
    command: join(REPO_ROOT, '.tools/bin/registry-v3'),
    args: (configFile) => ['serve', configFile],
    // go-redis universal options: a list of addresses, pool sized by `poolsize`.
    config: (o) =>
      distributionConfig(o, (addr) => ({
        addrs: [addr],
        ...REDIS_TIMEOUTS,
        poolsize: o.redisPoolSize ?? REDIS_POOL_SIZE,
        maxidleconns: o.redisPoolSize ?? REDIS_POOL_SIZE,
      })),
    version: () => versionOf(join(REPO_ROOT, '.tools/bin/registry-v3')),
  },
  dist28: {
    label: 'Distribution 2.8',
    command: '/usr/bin/docker-registry',
    args: (configFile) => ['serve', configFile],
    // redigo: one address; without `pool.maxidle` every cache operation would dial a new connection.
    config: (o) =>
      distributionConfig(o, (addr) => ({
        addr,
        ...REDIS_TIMEOUTS,
        pool: { maxidle: REDIS_POOL_SIZE, maxactive: REDIS_POOL_SIZE, idletimeout: '300s' },
      })),
    version: () => versionOf('/usr/bin/docker-registry'),
  },
};

export function labelOf(id: RegistryId): string {
  return FLAVOURS[id].label;
}

export interface RunningRegistry {
  readonly id: RegistryId;
  readonly label: string;
  readonly version: string;
  readonly pid: number;
  readonly baseUrl: URL;
  /** Berth's debug listener (health and /metrics); Distribution runs without one. */
  readonly debugUrl: URL | undefined;
  readonly logFile: string;
  /** SIGTERM, then SIGKILL if the process is still there after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const children = new Set<ChildProcess>();

/** Kills every registry and redis-server still running, synchronously: for process exit, when nothing async runs. */
export function killAllNow(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** Puts a helper process (a redis-server) under the same guarantee as the registries: `killAllNow` ends it too. */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** Ports this process has handed out: registries started side by side must never be given the same one. */
const handedOut = new Set<number>();

/**
 * A port nobody listens on right now: the kernel picks one for port 0, and we release it for the registry. Never one
 * handed out before in this run (the kernel may offer a just-released port again).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await kernelPort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no fresh port from the kernel in 50 tries');
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port from the kernel'))));
    });
  });
}

/** The HTTP status of GET /v2/, or undefined when nothing answered within a second. */
export function probe(url: URL): Promise<number | undefined> {
  return new Promise((resolve) => {
    const send = url.protocol === 'https:' ? httpsRequest : request;
    // A benchmark's own test certificate: the probe only asks whether the server answers.
    const tls = url.protocol === 'https:' ? { rejectUnauthorized: false } : {};
    const req = send(new URL('/v2/', url), { method: 'GET', timeout: 1000, agent: false, ...tls }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy(new Error('probe timeout')));
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** The environment for a registry: ours minus anything that would override its config file. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(REGISTRY_|BERTH_|OTEL_)/.test(k)) env[k] = v;
  // Distribution 3 always traces through OpenTelemetry and by default exports to an OTLP collector on localhost;
  // with no collector that is failed connections and error logs, which no real deployment would run with.
  env['OTEL_TRACES_EXPORTER'] = 'none';
  env['OTEL_METRICS_EXPORTER'] = 'none';
  env['OTEL_LOGS_EXPORTER'] = 'none';
  // BENCH_BERTH_GC runs Berth with that BERTH_GC mode (the others ignore it).
  const gc = process.env['BENCH_BERTH_GC'];
  if (gc !== undefined) env['BERTH_GC'] = gc;
  return env;
}

export interface StartOptions {
  /** A directory of its own for the registry: storage, config and log go in it. */
  readonly dir: string;
  readonly cache: CacheMode;
  /** Port of the registry's own redis-server; required for the `redis` and `twotier` modes. */
  readonly redisPort?: number;
  /** How long to wait for GET /v2/ to answer 200. */
  readonly readyTimeoutMs?: number;
  /** Where the registry keeps its blobs and metadata, when not in `dir/storage` (a slow volume's mount point). */
  readonly root?: string;
  /** Berth only: fsync every PATCH before answering it (Distribution always does); labelled "Berth, flushchunks". */
  readonly flushChunks?: boolean;
  /** Berth only (default warn): at info its log has the filesystem driver's line on where its calls run. */
  readonly logLevel?: 'warn' | 'info';
  /** A storage driver section (`{ s3: {...} }`), the same for every registry, in place of the filesystem. */
  readonly storage?: object;
  /** `host:port` of the Redis (a proxy in front of one), instead of a local redis-server on redisPort. */
  readonly redisAddr?: string;
  /** The Redis database (default 0): registries sharing one Redis keep apart. */
  readonly redisDb?: number;
  /** Distribution 3's Redis pool size (default 64). */
  readonly redisPoolSize?: number;
  /** Sections merged over the registry's config (`auth`, `http.tls`): keys both read the same way. */
  readonly extra?: Readonly<Record<string, unknown>>;
  /** Serves HTTPS (its config's http.tls, in `extra`): the readiness probe and baseUrl use https. */
  readonly tls?: boolean;
}

/** `over` merged into `base` key by key (objects recursively; anything else replaces). */
function merged(base: Record<string, unknown>, over: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    const isObj = (x: unknown): x is Record<string, unknown> =>
      typeof x === 'object' && x !== null && !Array.isArray(x);
    out[k] = isObj(b) && isObj(v) ? merged(b, v) : v;
  }
  return out;
}

/**
 * Starts a registry and waits until it answers. A port taken between our probe and the registry's listen (an
 * outgoing connection of the load generator may be given it) is retried on new ports, at most three times in all.
 */
export async function startRegistry(id: RegistryId, options: StartOptions): Promise<RunningRegistry> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(id, options);
    } catch (err) {
      if (attempt >= 3 || !(err instanceof Error) || !/EADDRINUSE|address already in use/i.test(err.message)) throw err;
    }
  }
}

async function startOnce(id: RegistryId, options: StartOptions): Promise<RunningRegistry> {
  const flavour = FLAVOURS[id];
  if (!existsSync(flavour.command))
    throw new Error(`${flavour.label}: ${flavour.command} not found (run scripts/install-test-tools.sh --bench)`);
  if (id === 'berth' && !existsSync(join(REPO_ROOT, 'dist/src/cli/main.js')))
    throw new Error('Berth is not built: run `npx tsc -p .` first');
  const flushChunks = options.flushChunks ?? false;
  const logLevel = options.logLevel ?? 'warn';
  if (id !== 'berth' && (flushChunks || logLevel !== 'warn'))
    throw new Error(`${flavour.label}: flushChunks and logLevel are Berth settings`);
  const label = flushChunks ? `${flavour.label}, flushchunks` : flavour.label;

  const root = options.root ?? join(options.dir, 'storage');
  await mkdir(root, { recursive: true });
  const port = await freePort();
  const debugPort = await freePort();
  const configFile = join(options.dir, 'config.yml');
  const input: ConfigInput = {
    root,
    port,
    debugPort,
    cache: options.cache,
    redisPort: options.redisPort,
    flushChunks,
    logLevel,
    storage: options.storage,
    redisAddr: options.redisAddr,
    redisDb: options.redisDb ?? 0,
    redisPoolSize: options.redisPoolSize,
  };
  const config = merged(flavour.config(input) as Record<string, unknown>, options.extra ?? {});
  await writeFile(configFile, stringify(config));
  const logFile = join(options.dir, 'registry.log');

  // Output goes straight to a file, so the benchmark's own event loop never spends time relaying registry logs.
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(flavour.command, flavour.args(configFile), {
      cwd: options.dir,
      env: childEnv(),
      stdio: ['ignore', fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => children.delete(child));
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));

  const stop = async (graceMs = 5000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };

  const baseUrl = new URL(`${options.tls === true ? 'https' : 'http'}://127.0.0.1:${port}`);
  const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000);
  let lastStatus: number | undefined;
  for (let attempt = 0; attempt < 400 && Date.now() < deadline; attempt++) {
    const failed = await Promise.race([
      spawnError,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), attempt === 0 ? 50 : 100)),
    ]);
    if (failed !== undefined) throw new Error(`${label}: cannot start ${flavour.command}: ${failed.message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${label} exited (${child.exitCode ?? child.signalCode}) while starting; log:\n${tail(logFile)}`);
    }
    lastStatus = await probe(baseUrl);
    // With auth on, an anonymous /v2/ answers 401 with its challenge: up all the same.
    if (lastStatus === 200 || (lastStatus === 401 && options.extra?.['auth'] !== undefined)) {
      const pid = child.pid;
      if (pid === undefined) break;
      const debugUrl = id === 'berth' ? new URL(`http://127.0.0.1:${debugPort}`) : undefined;
      return { id, label, version: flavour.version(), pid, baseUrl, debugUrl, logFile, stop };
    }
  }
  await stop(1000);
  throw new Error(
    `${label} did not answer GET /v2/ with 200 in time (last: ${lastStatus ?? 'no answer'}); log:\n${tail(logFile)}`,
  );
}
