// `berth operator`: leader election, the controller while leading, and /healthz /readyz /metrics on a small HTTP
// server. SIGTERM stops the controller, releases the lease and exits.
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { PULL_POLICIES, type PullPolicy, type RegistryImage } from './builders.js';
import { Controller, type ControllerOptions } from './controller.js';
import { LeaderElector } from './leader.js';
import { createOperatorMetrics } from './metrics.js';

export interface OperatorOptions extends Omit<ControllerOptions, 'defaultImage'> {
  /** The image of Registries without spec.image (the chart's image); {@link builtInImage} when absent. */
  readonly registryImage?: string;
  /** Its pull policy: Always, IfNotPresent (when absent) or Never. */
  readonly registryImagePullPolicy?: string;
  /** A kubeconfig file; in-cluster (or $KUBECONFIG, ~/.kube/config) when absent. */
  readonly kubeconfig?: string;
  readonly leaseNamespace: string;
  readonly leaseName?: string;
  readonly identity?: string;
  readonly leaderElection?: boolean;
  /** host:port of the health and metrics server; empty for none. */
  readonly healthAddr?: string;
  readonly leaseDurationMs?: number;
  readonly renewDeadlineMs?: number;
  readonly retryPeriodMs?: number;
}

export interface RunningOperator {
  /** The health server's port (0 without one). */
  readonly healthPort: number;
  isLeader(): boolean;
  stop(): Promise<void>;
}

/**
 * `ghcr.io/berth-dev/berth:<version of this package>`: the image the chart's defaults name, for an operator run
 * outside the chart. package.json sits three levels above this file in dist/ and in the image alike.
 */
export function builtInImage(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
  const version = typeof pkg === 'object' && pkg !== null && 'version' in pkg ? pkg.version : undefined;
  if (typeof version !== 'string') throw new Error('package.json has no version: set the registry image explicitly');
  return `ghcr.io/berth-dev/berth:${version}`;
}

/** The operator's default registry image from its options, checked. */
export function defaultImage(
  options: Pick<OperatorOptions, 'registryImage' | 'registryImagePullPolicy'>,
): RegistryImage {
  const image =
    options.registryImage === undefined || options.registryImage === '' ? builtInImage() : options.registryImage;
  const policy = options.registryImagePullPolicy ?? '';
  const pullPolicy: PullPolicy | undefined = policy === '' ? 'IfNotPresent' : PULL_POLICIES.find((p) => p === policy);
  if (pullPolicy === undefined)
    throw new Error(`registry image pull policy ${policy}: must be one of ${PULL_POLICIES.join(', ')}`);
  return { image, pullPolicy };
}

function parseAddr(addr: string): { host: string | undefined; port: number } {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i);
  return { host: host === '' ? undefined : host, port: Number(addr.slice(i + 1)) };
}

export async function startOperator(options: OperatorOptions, log: Logger): Promise<RunningOperator> {
  const kc = new KubeConfig();
  if (options.kubeconfig !== undefined) kc.loadFromFile(options.kubeconfig);
  else kc.loadFromDefault();
  const metrics = createOperatorMetrics();
  const image = defaultImage(options);
  const controller = new Controller(kc, log, metrics, { ...options, defaultImage: image });
  const identity = options.identity ?? `${hostname()}-${process.pid}`;
  let leading = false;
  const lead = (): void => {
    leading = true;
    metrics.leader.set(1);
    void controller.start().catch((err: unknown) => log.error({ err: String(err) }, 'controller failed to start'));
  };
  const follow = async (): Promise<void> => {
    leading = false;
    metrics.leader.set(0);
    await controller.stop();
  };
  let elector: LeaderElector | undefined;
  if (options.leaderElection === false) lead();
  else {
    elector = new LeaderElector(
      kc,
      {
        namespace: options.leaseNamespace,
        name: options.leaseName ?? 'berth-operator',
        identity,
        ...(options.leaseDurationMs === undefined ? {} : { leaseDurationMs: options.leaseDurationMs }),
        ...(options.renewDeadlineMs === undefined ? {} : { renewDeadlineMs: options.renewDeadlineMs }),
        ...(options.retryPeriodMs === undefined ? {} : { retryPeriodMs: options.retryPeriodMs }),
      },
      log,
    );
    elector.start({ onStartedLeading: lead, onStoppedLeading: follow });
  }

  let server: Server | undefined;
  let healthPort = 0;
  if (options.healthAddr !== undefined && options.healthAddr !== '') {
    server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        // A standby is ready: it is campaigning. The leader is ready once its informers have listed.
        const ready = !leading || controller.started;
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ok\n' : 'starting\n');
      } else if (path === '/metrics') {
        metrics.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
          () => res.writeHead(500).end(),
        );
      } else {
        res.writeHead(404).end();
      }
    });
    const { host, port } = parseAddr(options.healthAddr);
    server.listen(port, host);
    await once(server, 'listening');
    const address = server.address();
    healthPort = typeof address === 'object' && address !== null ? address.port : 0;
  }
  log.info(
    {
      identity,
      leaderElection: options.leaderElection !== false,
      healthPort,
      registryImage: image.image,
      registryImagePullPolicy: image.pullPolicy,
      watchNamespaces: options.watchNamespaces ?? [],
    },
    'operator started',
  );

  return {
    healthPort,
    isLeader: () => leading,
    async stop() {
      if (elector !== undefined) await elector.stop();
      else await follow();
      if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
      log.info('operator stopped');
    },
  };
}
