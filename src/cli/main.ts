#!/usr/bin/env node
// The one entry point: `berth serve [--config FILE]`, `berth operator`, `berth verify FILE`.
import { isAbsolute } from 'node:path';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { ConfigError, loadConfig } from '../config/load.js';
import { createLogger } from '../log.js';
import { ListenError, startRegistry } from '../compose.js';
import { gcFlags } from './gc.js';

const USAGE = `usage:
  berth serve [--config FILE]   run the registry (REGISTRY_* environment variables override the file)
  berth operator [--kubeconfig FILE] [--lease-namespace NS] [--identity ID] [--health-addr ADDR] [--no-leader-elect]
                                run the Kubernetes operator (in-cluster config when no kubeconfig is given)
  berth verify FILE             check a configuration file and name every bad field
  berth check URL [--repository NAME] [--timeout SECONDS]
                                push a tiny image to the registry at URL and pull it back, checking every digest
  berth gc [--config FILE] [--dry-run] [--delete-untagged] [--json] [--grace DURATION] [--online]
                                sweep blobs (and, with --delete-untagged, manifests) no tag reaches, while
                                registries serve; nothing newer than --grace (default 1h) is swept
`;

/**
 * Makes sure this process started with V8's `flags` and a thread pool of `threads`: V8 reads its heap settings when
 * the VM starts (Node documents setting flags later as unreliable), and libuv sizes its pool on first use. So the
 * process replaces itself once (execve: the same pid, signals and parent) with one started with both. A pool size
 * already in the environment is the operator's choice and stays. Only a Node without process.execve (before 22.15),
 * or one that does not know its own path, falls back to setting the flags late, with the default pool.
 */
function restartWith(flags: readonly string[], threads: number | undefined): void {
  const missing = flags.filter((flag) => !process.execArgv.includes(flag));
  const pool =
    threads === undefined || process.env['UV_THREADPOOL_SIZE'] !== undefined
      ? {}
      : { UV_THREADPOOL_SIZE: String(threads) };
  if (missing.length === 0 && Object.keys(pool).length === 0) return;
  // Without /proc (a bare chroot) Node knows its own path only as `node`, and a failed execve ends the process.
  const execve = isAbsolute(process.execPath) ? process.execve : undefined;
  if (execve !== undefined && process.env['BERTH_EXECED'] === undefined) {
    execve(process.execPath, [process.execPath, ...process.execArgv, ...missing, ...process.argv.slice(1)], {
      ...process.env,
      ...pool,
      BERTH_EXECED: '1',
    });
  }
  if (missing.length === 0) return;
  process.stderr.write(`berth: this Node cannot restart itself with ${missing.join(' ')}; setting them late\n`);
  for (const flag of missing) setFlagsFromString(flag);
}

async function serve(args: string[]): Promise<number> {
  const flags = gcFlags(process.env['BERTH_GC']);
  if (flags instanceof Error) {
    process.stderr.write(`berth: ${flags.message}\n`);
    return 2;
  }
  const { values, positionals } = parseArgs({
    args,
    options: { config: { type: 'string', short: 'c' } },
    allowPositionals: true,
  });
  const file = values.config ?? positionals[0] ?? process.env['BERTH_CONFIG'];
  const config = await loadConfig(file);
  restartWith(flags, config.storage.driver === 'filesystem' ? config.storage.maxthreads : undefined);
  const log = createLogger(config.log);
  let registry;
  try {
    registry = await startRegistry(config, log);
  } catch (err) {
    if (!(err instanceof ListenError)) throw err;
    log.fatal({ addr: err.addr, code: err.code }, err.message);
    return 1;
  }
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      // Ctrl-C on `npm start` reaches the registry twice (from the terminal, and passed on by npm): a repeat must not
      // cut the drain short, which http.draintimeout bounds anyway.
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down: finishing in-flight requests');
      registry.close().then(resolve, (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        resolve();
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  log.info('stopped');
  return 0;
}

/** Resolves on the first SIGTERM or SIGINT. */
function shutdownSignal(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}

async function operator(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      kubeconfig: { type: 'string' },
      'lease-namespace': { type: 'string' },
      identity: { type: 'string' },
      'health-addr': { type: 'string' },
      'no-leader-elect': { type: 'boolean', default: false },
      'log-level': { type: 'string' },
    },
  });
  const env = process.env;
  const log = createLogger({
    level: values['log-level'] ?? env['BERTH_LOG_LEVEL'] ?? 'info',
    fields: { component: 'operator' },
  });
  const kubeconfig = values.kubeconfig ?? env['KUBECONFIG'];
  const identity = values.identity ?? env['POD_NAME'];
  // Loaded only here: the Kubernetes client is large, and `berth serve` has no use for it (a smaller heap to scan).
  const { startOperator } = await import('../operator/main.js');
  const running = await startOperator(
    {
      ...(kubeconfig === undefined ? {} : { kubeconfig }),
      ...(identity === undefined ? {} : { identity }),
      leaseNamespace: values['lease-namespace'] ?? env['POD_NAMESPACE'] ?? 'berth-system',
      leaderElection: !values['no-leader-elect'],
      healthAddr: values['health-addr'] ?? ':8081',
      // Set by the chart: its image, the default of every Registry without spec.image, and the namespaces to watch.
      registryImage: env['BERTH_REGISTRY_IMAGE'],
      registryImagePullPolicy: env['BERTH_REGISTRY_IMAGE_PULL_POLICY'],
      watchNamespaces: (env['BERTH_WATCH_NAMESPACES'] ?? '')
        .split(',')
        .map((ns) => ns.trim())
        .filter((ns) => ns !== ''),
    },
    log,
  );
  const signal = await shutdownSignal();
  log.info({ signal }, 'shutting down: releasing the lease');
  await running.stop();
  // Everything is stopped and the lease released; a watch socket the client library still holds must not keep the
  // process (and its pod) alive.
  setTimeout(() => process.exit(0), 2_000).unref();
  return 0;
}

async function verify(args: string[]): Promise<number> {
  const file = args[0];
  if (file === undefined) {
    process.stderr.write(USAGE);
    return 2;
  }
  const config = await loadConfig(file, {});
  // The files auth and TLS name: checked where they exist, noted where they do not.
  const { checkAuthFiles } = await import('../auth/verify.js');
  const files = await checkAuthFiles(config.auth);
  const tls = config.http.tls;
  if (tls !== undefined) {
    const { readTlsContext } = await import('../registry/tls.js');
    const { access } = await import('node:fs/promises');
    const paths = [tls.certificate, tls.key, ...tls.clientcas];
    const missing = (
      await Promise.all(
        paths.map((p) =>
          access(p).then(
            () => '',
            () => p,
          ),
        ),
      )
    ).filter((p) => p !== '');
    if (missing.length > 0) files.notes.push(`http.tls: ${missing.join(', ')} not found here; berth serve needs them`);
    else
      await readTlsContext(tls).catch((err: unknown) =>
        files.problems.push(err instanceof Error ? err.message : String(err)),
      );
  }
  if (files.problems.length > 0) {
    process.stderr.write(`${file}: invalid configuration\n${files.problems.map((p) => `  - ${p}`).join('\n')}\n`);
    return 1;
  }
  const security = [
    config.auth?.token !== undefined ? 'token auth' : config.auth?.htpasswd !== undefined ? 'htpasswd auth' : '',
    config.auth?.policy !== undefined ? 'policy' : '',
    tls !== undefined ? 'TLS' : '',
  ].filter((s) => s !== '');
  process.stdout.write(
    `${file}: ok (storage ${config.storage.driver}, listening on ${config.http.addr}${security.length > 0 ? `, ${security.join(', ')}` : ''})\n`,
  );
  for (const note of files.notes) process.stdout.write(`${file}: note: ${note}\n`);
  for (const section of config.ignored)
    process.stdout.write(`${file}: note: ${section} is not supported by Berth and is ignored\n`);
  const { gcConfigNotes } = await import('../gc/online.js');
  for (const note of gcConfigNotes(config)) process.stdout.write(`${file}: note: ${note}\n`);
  return 0;
}

async function check(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      repository: { type: 'string', default: 'berth-check/probe' },
      timeout: { type: 'string', default: '30' },
    },
  });
  const url = positionals[0];
  const seconds = Number(values.timeout);
  if (url === undefined || positionals.length > 1 || !/^https?:\/\//.test(url) || !(seconds > 0)) {
    process.stderr.write(USAGE);
    return 2;
  }
  const { checkRegistry, isCheckFailure } = await import('./check.js');
  try {
    await checkRegistry({
      url,
      repository: values.repository,
      timeoutMs: seconds * 1000,
      say: (line) => process.stdout.write(`${line}\n`),
    });
  } catch (err) {
    if (!isCheckFailure(err)) throw err;
    process.stderr.write(`berth check: ${err.message}\n`);
    return 1;
  }
  process.stdout.write(`${url}: ok\n`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        return await serve(rest);
      case 'verify':
        return await verify(rest);
      case 'check':
        return await check(rest);
      case 'gc':
        return await (await import('./gc-command.js')).gcCommand(rest);
      case 'operator':
        return await operator(rest);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        process.stderr.write(`berth: unknown command ${command}\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

process.exitCode = await main(process.argv.slice(2));
