// `berth operator`: leader election, the controller while leading, and /healthz /readyz /metrics on a small HTTP
// server. SIGTERM stops the controller, releases the lease and exits.
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Controller, type ControllerOptions } from './controller.js';
import { LeaderElector } from './leader.js';
import { createOperatorMetrics } from './metrics.js';

export interface OperatorOptions extends ControllerOptions {
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
  const controller = new Controller(kc, log, metrics, options);
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
  log.info({ identity, leaderElection: options.leaderElection !== false, healthPort }, 'operator started');

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
