// A real etcd and kube-apiserver on loopback for operator integration tests, envtest-style: no kubelet, scheduler or
// controller-manager, so objects are stored and served but nothing runs them (node.ts adds a node, with the `node`
// option). Certificates come from the openssl CLI.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPair, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { get as httpGet } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { removeDir, tempDir, TOOLS_BIN } from './harness.js';
import { requireTool, runChecked } from './images.js';
import { freePort } from './redis.js';

export const ETCD = '/usr/bin/etcd';
export const KUBE_APISERVER = join(TOOLS_BIN, 'kube-apiserver');
export const KUBECTL = join(TOOLS_BIN, 'kubectl');
/** The admin identity of the cluster's own kubeconfig: `system:masters` may do anything, RBAC or not. */
export const ADMIN_USER = 'berth-test-admin';
export const ADMIN_GROUPS = ['system:masters'] as const;
export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

const ETCD_READY_MS = 30_000;
// A first start on a busy 2-core machine takes a while (bootstrap RBAC policy, CRD and aggregation controllers).
const APISERVER_READY_MS = 90_000;
const ETCD_STOP_GRACE_MS = 5_000;
const APISERVER_STOP_GRACE_MS = 10_000;
const KUBECTL_TIMEOUT_MS = 60_000;
const OUTPUT_LIMIT = 256 * 1024;
const START_ATTEMPTS = 3;

export interface KubectlResult {
  /** Exit code; -1 when kubectl died of a signal (or was killed after KUBECTL_TIMEOUT_MS). */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * A cluster with a node (see node.ts): the API server stays on loopback here, while its advertised address, its
 * Service CIDR and its way to kubelets, webhooks and Services belong to the node's network namespace.
 */
export interface NodeNetworkOptions {
  /** The node's address: the `kubernetes` Service's endpoint, and a name in the serving certificate. */
  readonly advertiseAddress: string;
  readonly serviceCidr: string;
  /** The `kubernetes` Service's ClusterIP (the first address of serviceCidr), also in the serving certificate. */
  readonly kubernetesServiceIp: string;
  /** A Unix socket that answers HTTP CONNECT inside the node's network: the API server's egress to the cluster. */
  readonly egressSocket: string;
}

export interface KubeClusterOptions {
  readonly node?: NodeNetworkOptions;
}

export interface KubeCluster {
  /** `https://127.0.0.1:<port>`; the port stays the same across API-server restarts. */
  readonly server: string;
  /** Path of the admin kubeconfig (CN=berth-test-admin, O=system:masters; credentials embedded). */
  readonly kubeconfig: string;
  /** The cluster's temporary directory: certificates, kubeconfigs, etcd data. Removed by dispose(). */
  readonly dir: string;
  /** PEM of the CA that signed the serving and client certificates. */
  readonly caFile: string;
  /**
   * Runs kubectl with the admin kubeconfig (a `--kubeconfig` in `args` overrides it), `input` on stdin. Never throws
   * on a non-zero exit: callers look at `code`.
   */
  kubectl(args: readonly string[], input?: string): Promise<KubectlResult>;
  /**
   * Writes a kubeconfig whose client certificate (signed by the cluster CA) says CN=`user`, O=each of `groups`, and
   * returns its path. The identity has no permissions until a test binds it to a role.
   */
  userKubeconfig(user: string, groups: readonly string[]): Promise<string>;
  /** SIGTERMs the API server (SIGKILL after a grace period) and waits for it to exit; etcd keeps running. */
  stopApiServer(): Promise<void>;
  /** Starts the API server again on the same port against the same etcd and waits until it is ready. */
  startApiServer(): Promise<void>;
  /** etcd's and the API server's output so far (the tail of each), for failure messages. */
  output(): string;
  /** Stops both processes and removes the directory. Safe to call twice. */
  dispose(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Processes

/** Children still running; killed when this process exits, however the test run ends. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

export function trackChild(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // mocha --exit calls process.exit(): only synchronous work runs here, and kill() is synchronous.
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}

export class Log {
  #text = '';
  append(chunk: string): void {
    this.#text += chunk;
    if (this.#text.length > OUTPUT_LIMIT * 2) this.#text = this.#text.slice(-OUTPUT_LIMIT);
  }
  text(): string {
    return this.#text.length > OUTPUT_LIMIT ? this.#text.slice(-OUTPUT_LIMIT) : this.#text;
  }
  tail(chars = 6000): string {
    return this.#text.slice(-chars);
  }
}

export interface Running {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves with a description of how the process ended. */
  readonly exited: Promise<string>;
  hasExited(): boolean;
}

/**
 * Spawns a server with PR_SET_PDEATHSIG (through setpriv), so the kernel kills it should this process die without
 * running its exit handlers (SIGKILL, a crash).
 */
export function launch(name: string, file: string, args: readonly string[], cwd: string, log: Log): Running {
  const child = spawn('/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', file, ...args], {
    cwd,
    // Nothing from the caller's environment (ETCD_*, KUBECONFIG) leaks in.
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: cwd },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child);
  const onData = (d: Buffer): void => log.append(d.toString());
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let done = false;
  const exited = new Promise<string>((resolve) => {
    child.once('error', (err) => {
      done = true;
      resolve(`could not start: ${err.message}`);
    });
    child.once('exit', (code, signal) => {
      done = true;
      resolve(signal === null ? `exited with ${code}` : `killed by ${signal}`);
    });
  });
  return { name, child, exited, hasExited: () => done };
}

/** SIGTERM, SIGKILL after `graceMs`, and wait for the exit. */
export async function stopProcess(running: Running, graceMs: number): Promise<void> {
  if (running.hasExited()) return;
  running.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), graceMs);
  });
  const outcome = await Promise.race([running.exited, grace]);
  clearTimeout(timer);
  if (outcome === 'late') {
    running.child.kill('SIGKILL');
    await running.exited;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` (null: ready; a string: why not) until it says ready. Fails early, with the output, if the process
 * exits, and after `timeoutMs` with the last reason.
 */
export async function waitReady(
  running: Running,
  log: Log,
  probe: () => Promise<string | null>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let reason = 'not probed yet';
  for (;;) {
    if (running.hasExited()) {
      const how = await running.exited;
      throw new Error(`${running.name} ${how} before it was ready (${reason}):\n${log.tail()}`);
    }
    const result = await probe();
    if (result === null) return;
    reason = result;
    if (Date.now() > deadline) {
      throw new Error(`${running.name} not ready in ${timeoutMs} ms (${reason}):\n${log.tail()}`);
    }
    await sleep(250);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Certificates and kubeconfigs

const openSslConfig = (sans: readonly string[]): string => `[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = ${['IP:127.0.0.1', 'DNS:localhost', ...sans].join(',')}
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
`;

interface Pki {
  readonly dir: string;
  readonly config: string;
  readonly caCert: string;
  readonly caKey: string;
}

async function openssl(pki: Pki | { dir: string }, args: readonly string[]): Promise<void> {
  await runChecked('openssl', args, {
    cwd: pki.dir,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
    timeoutMs: 30_000,
  });
}

/** `-subj` syntax: `/`, `+` and `\` inside a value are escaped with a backslash. */
function subject(commonName: string, organizations: readonly string[]): string {
  const escape = (v: string): string => v.replace(/[\\/+]/g, (c) => `\\${c}`);
  return [...organizations.map((o) => `/O=${escape(o)}`), `/CN=${escape(commonName)}`].join('');
}

/** `sans`: names of the API server's certificate beyond loopback. */
async function makeCa(dir: string, sans: readonly string[]): Promise<Pki> {
  const config = join(dir, 'openssl.cnf');
  await writeFile(config, openSslConfig(sans));
  const pki: Pki = { dir, config, caCert: join(dir, 'ca.crt'), caKey: join(dir, 'ca.key') };
  await openssl(pki, [
    'req',
    '-x509',
    '-config',
    config,
    '-extensions',
    'ca',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-noenc',
    '-keyout',
    pki.caKey,
    '-out',
    pki.caCert,
    '-days',
    '3650',
    '-subj',
    '/CN=berth-test-ca',
  ]);
  return pki;
}

/** A key and a CA-signed certificate at `<base>.key` / `<base>.crt`; `profile` is a section of openSslConfig. */
async function issue(pki: Pki, base: string, subj: string, profile: 'server' | 'client'): Promise<void> {
  const csr = `${base}.csr`;
  await openssl(pki, [
    'req',
    '-new',
    '-config',
    pki.config,
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-noenc',
    '-keyout',
    `${base}.key`,
    '-out',
    csr,
    '-subj',
    subj,
  ]);
  await openssl(pki, [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    pki.caCert,
    '-CAkey',
    pki.caKey,
    // Random serials: certificates are issued concurrently, so no shared serial file.
    '-set_serial',
    `0x${randomBytes(16).toString('hex')}`,
    '-days',
    '3650',
    '-extfile',
    pki.config,
    '-extensions',
    profile,
    '-out',
    `${base}.crt`,
  ]);
}

async function writeKubeconfig(path: string, server: string, pki: Pki, user: string, certBase: string): Promise<void> {
  const b64 = async (file: string): Promise<string> => (await readFile(file)).toString('base64');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'berth-test', cluster: { server, 'certificate-authority-data': await b64(pki.caCert) } }],
    users: [
      {
        name: user,
        user: {
          'client-certificate-data': await b64(`${certBase}.crt`),
          'client-key-data': await b64(`${certBase}.key`),
        },
      },
    ],
    contexts: [{ name: 'berth-test', context: { cluster: 'berth-test', user, namespace: 'default' } }],
    'current-context': 'berth-test',
  };
  await writeFile(path, stringify(config), { mode: 0o600 });
}

// ---------------------------------------------------------------------------------------------------------------
// Probes and kubectl

interface ClientTls {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** GET over HTTPS with the admin client certificate: null when the answer is 200, otherwise why not. */
function httpsProbe(port: number, path: string, tls: ClientTls): Promise<string | null> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path, method: 'GET', agent: false, timeout: 5_000, ...tls },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(res.statusCode === 200 ? null : `${path}: ${res.statusCode} ${body.slice(-2000)}`));
        res.on('error', (err) => resolve(`${path}: ${err.message}`));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => resolve(`${path}: ${err.message}`));
    req.end();
  });
}

function etcdProbe(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const req = httpGet({ host: '127.0.0.1', port, path: '/health', agent: false, timeout: 2_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('true') ? null : `/health: ${body}`));
      res.on('error', (err) => resolve(`/health: ${err.message}`));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => resolve(`/health: ${err.message}`));
  });
}

function runKubectl(kubeconfig: string, home: string, args: readonly string[], input?: string): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(KUBECTL, ['--kubeconfig', kubeconfig, ...args], {
      cwd: home,
      // HOME keeps kubectl's discovery cache inside the cluster directory.
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: home },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      stderr += `\n[kube helper] kubectl killed after ${KUBECTL_TIMEOUT_MS} ms`;
      child.kill('SIGKILL');
    }, KUBECTL_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${KUBECTL}: ${err.message}`));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    if (child.stdin !== null) {
      // kubectl may exit before reading all of stdin (a bad flag); that is reported through its exit code.
      child.stdin.on('error', () => undefined);
      child.stdin.end(input);
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The cluster

function etcdArgs(dir: string, clientPort: number, peerPort: number): string[] {
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    '--name=berth-test',
    `--data-dir=${join(dir, 'etcd')}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=berth-test=${peer}`,
    '--initial-cluster-state=new',
    '--initial-cluster-token=berth-test',
    '--logger=zap',
    '--log-outputs=stderr',
    '--log-level=warn',
  ];
}

function apiServerArgs(dir: string, etcdPort: number, port: number, node?: NodeNetworkOptions): string[] {
  const common = [
    `--etcd-servers=http://127.0.0.1:${etcdPort}`,
    `--secure-port=${port}`,
    '--bind-address=127.0.0.1',
    `--cert-dir=${join(dir, 'apiserver-certs')}`,
    `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
    `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
    `--client-ca-file=${join(dir, 'ca.crt')}`,
    '--anonymous-auth=false',
    `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
    `--service-account-key-file=${join(dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
    '--enable-priority-and-fairness=false',
    '--allow-privileged=true',
    '--profiling=false',
    '--v=0',
  ];
  if (node === undefined) {
    return [
      ...common,
      '--advertise-address=127.0.0.1',
      '--authorization-mode=RBAC',
      '--service-cluster-ip-range=10.96.0.0/12',
      // No controller-manager creates the default service accounts that this plugin would require of every pod.
      '--disable-admission-plugins=ServiceAccount',
      // A loopback address is not a valid endpoint for the "kubernetes" service: nothing to reconcile.
      '--endpoint-reconciler-type=none',
    ];
  }
  return [
    ...common,
    `--advertise-address=${node.advertiseAddress}`,
    '--authorization-mode=Node,RBAC',
    '--enable-admission-plugins=NodeRestriction',
    `--service-cluster-ip-range=${node.serviceCidr}`,
    `--egress-selector-config-file=${join(dir, 'egress.yaml')}`,
    // Logs, exec and port-forward: the admin identity (system:masters) may use the kubelet's API.
    `--kubelet-client-certificate=${join(dir, 'admin.crt')}`,
    `--kubelet-client-key=${join(dir, 'admin.key')}`,
    '--kubelet-preferred-address-types=InternalIP',
  ];
}

/** Sends the API server's traffic to the cluster (kubelets, webhooks, Services) through the node's CONNECT proxy. */
function egressConfig(node: NodeNetworkOptions): string {
  return stringify({
    apiVersion: 'apiserver.k8s.io/v1beta1',
    kind: 'EgressSelectorConfiguration',
    egressSelections: [
      {
        name: 'cluster',
        connection: { proxyProtocol: 'HTTPConnect', transport: { uds: { udsName: node.egressSocket } } },
      },
    ],
  });
}

/**
 * Starts etcd and kube-apiserver on free loopback ports and waits until the API server is ready. With `node`, the
 * API server is set up for a cluster with a node (node.ts starts one).
 */
export async function startKubeCluster(options: KubeClusterOptions = {}): Promise<KubeCluster> {
  const { node } = options;
  await Promise.all([requireTool(ETCD), requireTool(KUBE_APISERVER), requireTool(KUBECTL), requireTool('openssl')]);
  const dir = await tempDir('berth-kube-');
  const etcdLog = new Log();
  const apiLog = new Log();
  let etcd: Running | undefined;
  let api: Running | undefined;
  let disposed = false;

  const dispose = async (): Promise<void> => {
    if (disposed) return;
    disposed = true;
    if (api !== undefined) await stopProcess(api, APISERVER_STOP_GRACE_MS);
    if (etcd !== undefined) await stopProcess(etcd, ETCD_STOP_GRACE_MS);
    await removeDir(dir);
  };

  try {
    const sans =
      node === undefined
        ? []
        : [
            `IP:${node.advertiseAddress}`,
            `IP:${node.kubernetesServiceIp}`,
            'DNS:kubernetes',
            'DNS:kubernetes.default',
            'DNS:kubernetes.default.svc',
            'DNS:kubernetes.default.svc.cluster.local',
          ];
    const pki = await makeCa(dir, sans);
    if (node !== undefined) await writeFile(join(dir, 'egress.yaml'), egressConfig(node));
    const [, , saKeys] = await Promise.all([
      issue(pki, join(dir, 'apiserver'), '/CN=berth-test-apiserver', 'server'),
      issue(pki, join(dir, 'admin'), subject(ADMIN_USER, ADMIN_GROUPS), 'client'),
      promisify(generateKeyPair)('rsa', {
        modulusLength: 2048,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      }),
    ]);
    await writeFile(join(dir, 'sa.key'), saKeys.privateKey, { mode: 0o600 });
    await writeFile(join(dir, 'sa.pub'), saKeys.publicKey);
    await mkdir(join(dir, 'users'));
    const tls: ClientTls = {
      ca: await readFile(pki.caCert),
      cert: await readFile(join(dir, 'admin.crt')),
      key: await readFile(join(dir, 'admin.key')),
    };

    // Ports are free when chosen but may be taken before the server binds them: a few attempts.
    let etcdPort = 0;
    for (let attempt = 1; ; attempt++) {
      etcdPort = await freePort();
      const peerPort = await freePort();
      etcd = launch('etcd', ETCD, etcdArgs(dir, etcdPort, peerPort), dir, etcdLog);
      try {
        await waitReady(etcd, etcdLog, () => etcdProbe(etcdPort), ETCD_READY_MS);
        break;
      } catch (err) {
        await stopProcess(etcd, ETCD_STOP_GRACE_MS);
        if (attempt >= START_ATTEMPTS || !/address already in use/i.test(etcdLog.tail())) throw err;
        await removeDir(join(dir, 'etcd'));
      }
    }

    let port = 0;
    const startApi = async (): Promise<void> => {
      if (api !== undefined && !api.hasExited()) return;
      api = launch('kube-apiserver', KUBE_APISERVER, apiServerArgs(dir, etcdPort, port, node), dir, apiLog);
      const running = api;
      await waitReady(
        running,
        apiLog,
        // The bootstrap controller creates "default" shortly after /readyz: tests may rely on it being there.
        async () => (await httpsProbe(port, '/readyz', tls)) ?? httpsProbe(port, '/api/v1/namespaces/default', tls),
        APISERVER_READY_MS,
      );
    };
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        await startApi();
        break;
      } catch (err) {
        if (api !== undefined) await stopProcess(api, APISERVER_STOP_GRACE_MS);
        if (attempt >= START_ATTEMPTS || !/address already in use/i.test(apiLog.tail())) throw err;
      }
    }

    const server = `https://127.0.0.1:${port}`;
    const kubeconfig = join(dir, 'admin.kubeconfig');
    await writeKubeconfig(kubeconfig, server, pki, ADMIN_USER, join(dir, 'admin'));
    let users = 0;

    return {
      server,
      kubeconfig,
      dir,
      caFile: pki.caCert,
      kubectl: (args, input) => runKubectl(kubeconfig, dir, args, input),
      userKubeconfig: async (user, groups) => {
        if (user === '') throw new Error('userKubeconfig: empty user name');
        users += 1;
        const base = join(dir, 'users', `${user.replace(/[^A-Za-z0-9._-]/g, '_')}-${users}`);
        await issue(pki, base, subject(user, groups), 'client');
        const path = `${base}.kubeconfig`;
        await writeKubeconfig(path, server, pki, user, base);
        return path;
      },
      stopApiServer: async () => {
        if (api !== undefined) await stopProcess(api, APISERVER_STOP_GRACE_MS);
      },
      startApiServer: async () => {
        if (disposed) throw new Error('startApiServer: the cluster is disposed');
        apiLog.append('\n[kube helper] starting kube-apiserver again\n');
        await startApi();
      },
      output: () => `--- etcd\n${etcdLog.text()}\n--- kube-apiserver\n${apiLog.text()}`,
      dispose,
    };
  } catch (err) {
    await dispose();
    throw err;
  }
}
