// The registry's TLS listener: certificate and key (and client CAs) re-read when their files change, so a
// cert-manager rotation needs no restart. Connections already open keep the context they shook hands with; new ones
// get the new certificate (server.setSecureContext). A half-written rotation (the certificate new, the key old)
// does not load and leaves the last good pair in force until the files match again.
import { readFile } from 'node:fs/promises';
import type { RequestListener } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { SecureContextOptions } from 'node:tls';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { watchFiles, type FileWatcher } from '../auth/watch.js';
import { CIPHER_SUITES, type TlsConfig } from '../config/auth.js';

const TLS13_SUITES = ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'];

/** The secure context options of a config, read from its files; throws naming the file that cannot be used. */
export async function readTlsContext(config: TlsConfig): Promise<SecureContextOptions> {
  const read = async (path: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(path);
    } catch (err) {
      throw new Error(`http.tls.${what}: cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const [cert, key, ...cas] = await Promise.all([
    read(config.certificate, 'certificate'),
    read(config.key, 'key'),
    ...config.clientcas.map((p) => read(p, 'clientcas')),
  ]);
  const suites = config.ciphersuites.map((s) => CIPHER_SUITES[s] ?? s);
  // As in Go, the list picks TLS 1.2 suites; TLS 1.3's stay on unless the list names some of them.
  if (suites.length > 0 && !suites.some((s) => s.startsWith('TLS_'))) suites.unshift(...TLS13_SUITES);
  const options: SecureContextOptions = {
    cert,
    key,
    minVersion: config.minimumversion === 'tls1.3' ? 'TLSv1.3' : 'TLSv1.2',
    ...(suites.length === 0 ? {} : { ciphers: suites.join(':') }),
    ...(cas.length === 0 ? {} : { ca: cas }),
  };
  try {
    // Parses and matches key and certificate now, so a bad pair is named here rather than at the first handshake.
    createSecureContext(options);
  } catch (err) {
    throw new Error(
      `http.tls: ${config.certificate} and ${config.key} cannot be used: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  return options;
}

export interface TlsListener {
  readonly server: Server;
  /** Undefined while the files on disk are in force; else why not. */
  status(): string | undefined;
  /** Re-reads the files now. */
  reload(): Promise<void>;
  close(): void;
}

export async function createTlsServer(
  config: TlsConfig,
  handler: RequestListener,
  log: Logger,
  pollMs?: number,
): Promise<TlsListener> {
  const context = await readTlsContext(config);
  const mutual = config.clientcas.length > 0;
  const server = createServer({ ...context, requestCert: mutual, rejectUnauthorized: mutual }, handler);
  let problem: string | undefined;
  const reload = async (): Promise<void> => {
    try {
      server.setSecureContext(await readTlsContext(config));
      if (problem !== undefined) log.info('TLS files are good again');
      problem = undefined;
      log.info({ certificate: config.certificate }, 'TLS certificate loaded');
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (message !== problem) log.warn({ err: message }, 'TLS files not usable; the last good certificate stays');
      problem = message;
    }
  };
  const watcher: FileWatcher = watchFiles(
    [config.certificate, config.key, ...config.clientcas],
    reload,
    pollMs === undefined ? {} : { pollMs },
  );
  return {
    server,
    status: () => (problem === undefined ? undefined : `${problem}; the last good certificate stays in force`),
    reload,
    close: () => watcher.close(),
  };
}
