// Helpers for operator integration tests: the CRD installed into a real API server, the operator run in-process or
// as `berth operator` child processes, polling with bounded waits, and a kubelet's part played by hand (patching a
// Deployment's status subresource).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { startOperator, type OperatorOptions, type RunningOperator } from '../../src/operator/main.js';
import { createLogger } from '../../src/log.js';
import { CLI, REPO_ROOT } from './harness.js';
import { startKubeCluster, type KubeCluster } from './kube.js';

export const CRD_DIR = join(REPO_ROOT, 'crds');
export const EXAMPLES_DIR = join(REPO_ROOT, 'examples');
export const OPERATOR_NAMESPACE = 'berth-system';

type Json = Record<string, unknown>;

/** Runs kubectl and throws, with its stderr, unless it succeeds. */
export async function kubectlOk(cluster: KubeCluster, args: readonly string[], input?: string): Promise<string> {
  const r = await cluster.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** The object as JSON, or undefined when it does not exist. */
export async function getObject(
  cluster: KubeCluster,
  kind: string,
  name: string,
  namespace?: string,
  managedFields = false,
): Promise<Json | undefined> {
  const args = ['get', kind, name, ...(namespace === undefined ? [] : ['-n', namespace]), '-o', 'json'];
  if (managedFields) args.push('--show-managed-fields');
  const r = await cluster.kubectl(args);
  if (r.code !== 0) {
    if (r.stderr.includes('NotFound') || r.stderr.includes('not found')) return undefined;
    throw new Error(`kubectl get ${kind} ${name}: ${r.stderr}`);
  }
  return JSON.parse(r.stdout) as Json;
}

/** Polls `probe` every 200 ms until it returns something other than undefined; fails after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Reads a dotted path out of JSON (`status.conditions`). */
export function at(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const key of path.split('.')) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Json)[key];
  }
  return cur;
}

export interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason: string;
  readonly message: string;
  readonly observedGeneration?: number;
  readonly lastTransitionTime: string;
}

export function condition(registry: Json | undefined, type: string): Condition | undefined {
  const list = at(registry, 'status.conditions');
  return Array.isArray(list) ? (list as Condition[]).find((c) => c.type === type) : undefined;
}

/** Waits until a Registry's condition has the status, and returns the Registry. */
export async function awaitCondition(
  cluster: KubeCluster,
  namespace: string,
  name: string,
  type: string,
  status: 'True' | 'False',
  timeoutMs = 30_000,
): Promise<Json> {
  return waitFor(
    `${namespace}/${name} ${type}=${status}`,
    async () => {
      const registry = await getObject(cluster, 'registry', name, namespace);
      return condition(registry, type)?.status === status ? registry : undefined;
    },
    timeoutMs,
  );
}

/** Applies crds/ and waits until the API server serves registries.berth.dev. */
export async function installCrds(cluster: KubeCluster): Promise<void> {
  await kubectlOk(cluster, ['apply', '--server-side', '-f', CRD_DIR]);
  await kubectlOk(cluster, ['wait', '--for=condition=Established', '--timeout=30s', 'crd/registries.berth.dev']);
}

/** A fresh API server with the CRD installed and the given namespaces (plus the operator's) created. */
export async function startClusterWithCrds(namespaces: readonly string[]): Promise<KubeCluster> {
  const cluster = await startKubeCluster();
  await installCrds(cluster);
  for (const ns of [...namespaces, OPERATOR_NAMESPACE]) await ensureNamespace(cluster, ns);
  return cluster;
}

/** A minimal stand-in for prometheus-operator's CRD: enough for the monitoring.coreos.com/v1 API to exist. */
export async function installServiceMonitorCrd(cluster: KubeCluster): Promise<void> {
  const crd = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`;
  await kubectlOk(cluster, ['apply', '-f', '-'], crd);
  await kubectlOk(cluster, ['wait', '--for=condition=Established', 'crd/servicemonitors.monitoring.coreos.com']);
}

/** Deletes a Deployment and waits for the operator to put back a new one (a different uid). */
export async function deleteAndAwaitRepair(
  cluster: KubeCluster,
  namespace: string,
  name: string,
  timeoutMs = 30_000,
): Promise<Json> {
  const old = await getObject(cluster, 'deployment', name, namespace);
  await kubectlOk(cluster, ['delete', 'deployment', name, '-n', namespace, '--wait=true']);
  return waitFor(
    `deployment ${namespace}/${name} back`,
    async () => {
      const d = await getObject(cluster, 'deployment', name, namespace);
      return d !== undefined && at(d, 'metadata.uid') !== at(old, 'metadata.uid') ? d : undefined;
    },
    timeoutMs,
  );
}

export async function ensureNamespace(cluster: KubeCluster, name: string): Promise<void> {
  const r = await cluster.kubectl(['create', 'namespace', name]);
  if (r.code !== 0 && !r.stderr.includes('AlreadyExists')) throw new Error(r.stderr);
}

const quiet = (): ReturnType<typeof createLogger> => createLogger({ level: process.env['BERTH_TEST_LOG'] ?? 'silent' });

/** The operator in this process, with short leader-election timings. */
export async function runOperator(
  kubeconfig: string,
  options: Partial<OperatorOptions> = {},
): Promise<RunningOperator> {
  return startOperator(
    {
      kubeconfig,
      leaseNamespace: OPERATOR_NAMESPACE,
      healthAddr: '127.0.0.1:0',
      leaseDurationMs: 4_000,
      renewDeadlineMs: 3_000,
      retryPeriodMs: 500,
      ...options,
    },
    quiet(),
  );
}

export interface OperatorProcess {
  readonly child: ChildProcess;
  readonly identity: string;
  output(): string;
  /** SIGTERM (the operator releases its lease) and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL: a crash that leaves the lease to expire. */
  kill(): Promise<void>;
}

/** `berth operator` as a child process, with `env` added to its environment (BERTH_REGISTRY_IMAGE, ...). */
export function spawnOperator(
  kubeconfig: string,
  identity: string,
  env: Readonly<Record<string, string>> = {},
): OperatorProcess {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'operator',
      '--kubeconfig',
      kubeconfig,
      '--identity',
      identity,
      '--lease-namespace',
      OPERATOR_NAMESPACE,
      '--health-addr',
      '127.0.0.1:0',
    ],
    { env: { PATH: process.env['PATH'] ?? '', BERTH_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = once(child, 'exit') as Promise<[number | null]>;
  process.once('exit', () => child.kill('SIGKILL'));
  return {
    child,
    identity,
    output: () => out,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const [code] = await exited;
      return code;
    },
    async kill() {
      if (child.exitCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Plays the kubelet and Deployment controller: reports every desired pod of a Deployment as updated and available. */
export async function markDeploymentAvailable(
  cluster: KubeCluster,
  namespace: string,
  name: string,
  available?: number,
): Promise<void> {
  const d = await waitFor(`deployment ${namespace}/${name}`, () => getObject(cluster, 'deployment', name, namespace));
  const desired = Number(at(d, 'spec.replicas') ?? 1);
  const n = available ?? desired;
  const status = {
    observedGeneration: Number(at(d, 'metadata.generation')),
    replicas: desired,
    updatedReplicas: desired,
    readyReplicas: n,
    availableReplicas: n,
  };
  await kubectlOk(cluster, [
    'patch',
    'deployment',
    name,
    '-n',
    namespace,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status }),
  ]);
}
