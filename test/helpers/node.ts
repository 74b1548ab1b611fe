// A real Kubernetes node for the @e2e tests: kubelet, containerd, runc, CNI and kube-proxy in namespaces of their own,
// beside the loopback etcd and kube-apiserver of kube.ts, plus kube-controller-manager, kube-scheduler and a
// local-path provisioner as the default StorageClass.
//
// One holder process owns a new network, mount and PID namespace. Everything of the node runs in those namespaces, so
// killing the holder (PID 1 of its namespace) kills every process of the node, containers and shims included, and
// their mounts, interfaces and iptables rules vanish with the namespaces. Addresses come from 198.18.0.0/15, the
// benchmarking range, and never leave the namespace: it has no default route. The API server stays on loopback here;
// a relay inside the namespace serves it there on the same port, and it reaches the node (logs, exec, Services)
// through an HTTP CONNECT proxy on a Unix socket, the way it would use konnectivity.
import assert from 'node:assert/strict';
import { chmod, copyFile, mkdir, readdir, readFile, readlink, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { stringify } from 'yaml';
import { removeDir, tempDir, TOOLS_BIN } from './harness.js';
import { readLayoutIndex, requireTool, runChecked, runCommand, type CommandResult } from './images.js';
import {
  launch,
  Log,
  sleep,
  startKubeCluster,
  stopProcess,
  waitReady,
  type KubeCluster,
  type NodeNetworkOptions,
  type Running,
} from './kube.js';

export const KUBELET = join(TOOLS_BIN, 'kubelet');
export const KUBE_CONTROLLER_MANAGER = join(TOOLS_BIN, 'kube-controller-manager');
export const KUBE_SCHEDULER = join(TOOLS_BIN, 'kube-scheduler');
export const KUBE_PROXY = join(TOOLS_BIN, 'kube-proxy');
export const LOCAL_PATH_PROVISIONER = join(TOOLS_BIN, 'local-path-provisioner');
export const COREDNS = join(TOOLS_BIN, 'coredns');
const CONTAINERD = '/usr/bin/containerd';
const CTR = '/usr/bin/ctr';
const UNSHARE = '/usr/bin/unshare';
const NSENTER = '/usr/bin/nsenter';
const BUSYBOX = '/bin/busybox';

/** The node's addresses: all inside its network namespace. */
export const NODE_NETWORK = {
  nodeIp: '198.18.0.2',
  nodePrefix: 24,
  podCidr: '198.18.128.0/24',
  serviceCidr: '198.19.0.0/16',
  kubernetesServiceIp: '198.19.0.1',
} as const;
export const NODE_NAME = 'berth-node';
/** The CRI sandbox image, built here from a few lines of C. */
export const PAUSE_IMAGE = 'berth.test/pause:1';
/** Debian's static busybox as an image: sh, httpd, wget and the coreutils; the local-path helper pods run it. */
export const BUSYBOX_IMAGE = 'berth.test/busybox:1';
export const STORAGE_CLASS = 'local-path';
/** A StorageClass whose volumes take ReadWriteMany: folders of one shared path, as an NFS class would give. */
export const SHARED_STORAGE_CLASS = 'shared-path';

const PATH_IN_NODE = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const HOLDER_READY_MS = 15_000;
const CONTAINERD_READY_MS = 60_000;
const NODE_READY_MS = 180_000;
const STOP_GRACE_MS = 5_000;
const NAMESPACE_GONE_MS = 30_000;
const COMMAND_MS = 60_000;

export interface Forward {
  /** The loopback port in this process's network. */
  readonly port: number;
  close(): Promise<void>;
}

/** A process that a test started inside the node's namespaces. */
export interface NodeProcess {
  hasExited(): boolean;
  /** The tail of its output. */
  output(): string;
  /** SIGTERM, SIGKILL after a grace period; waits for the exit. */
  stop(): Promise<void>;
}

export interface KubeNode {
  /** The control plane (loopback etcd and kube-apiserver): kubeconfig, kubectl, user identities. */
  readonly cluster: KubeCluster;
  readonly nodeName: string;
  readonly nodeIp: string;
  /** The node's temporary directory (containerd, kubelet, CNI, images). Removed by stop(). */
  readonly dir: string;
  /** containerd's `hosts.toml` tree (`<dir>/<host:port>/hosts.toml`): how the node pulls from a registry. */
  readonly registryConfigDir: string;
  /** Runs a command inside the node's namespaces (network, mounts, PIDs), SIGKILLed after `timeoutMs`. */
  exec(file: string, args: readonly string[], timeoutMs?: number): Promise<CommandResult>;
  /**
   * Starts a long-running process inside the node's namespaces, where pod and Service addresses are reachable (a
   * registry, Prometheus). stop() of the node ends it at the latest.
   */
  start(name: string, file: string, args: readonly string[]): NodeProcess;
  /**
   * Imports an OCI layout (a directory, or an OCI archive: a tar of one) whose index tags the image `tag` into the
   * node's containerd (namespace k8s.io) as `<repository>:<tag>`, so that pods can run it without a pull.
   */
  importLayout(layout: string, repository: string, tag: string): Promise<void>;
  /**
   * Lets the node's containerd pull from `hostPort` (a ClusterIP and port, say) over plain HTTP, through a
   * `hosts.toml` in registryConfigDir; containerd reads it at each pull.
   */
  allowHttpRegistry(hostPort: string): Promise<void>;
  /**
   * Opens a loopback port here that leads to `host:port` inside the node's network (a ClusterIP, a pod IP), through
   * the node's CONNECT proxy. Closed by close() or stop().
   */
  forward(host: string, port: number): Promise<Forward>;
  /**
   * The other way: makes a loopback port of this machine (a registry a test started) reachable inside the node's
   * network as `<node IP>:<port>`, through a Unix socket relay; returns that address. stop() ends it.
   */
  exposeHost(port: number): Promise<string>;
  /** The tail of every component's output, for failure messages. */
  output(): string;
  /**
   * Kills every process of the node, waits until its namespaces are gone, removes its cgroups and directory, and
   * stops the control plane. Safe to call twice, and after a failed start.
   */
  stop(): Promise<void>;
  /** What is left of the node: processes of its PID namespace or naming its directory, mounts, cgroups, files. */
  leftovers(): Promise<Leftovers>;
}

/** What a stopped node may have left behind; all empty when stop() did its job. */
export interface Leftovers {
  readonly processes: readonly number[];
  readonly mounts: readonly string[];
  readonly cgroups: readonly string[];
  /** The node's directory, and components' default paths (/var/lib/kubelet, /run/containerd...) that appeared. */
  readonly paths: readonly string[];
}

// ---------------------------------------------------------------------------------------------------------------
// Programs and images built here

// PID 1 of the node's namespaces and of every pod sandbox: reaps orphans, waits for a signal, exits on SIGTERM/SIGINT.
const PAUSE_C = `#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
static void quit(int sig) { _exit(128 + sig); }
int main(void) {
  struct sigaction on_chld = {0}, on_quit = {0};
  sigset_t all;
  sigfillset(&all);
  on_chld.sa_handler = reap;
  on_chld.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  on_chld.sa_mask = all;
  on_quit.sa_handler = quit;
  on_quit.sa_mask = all;
  sigaction(SIGCHLD, &on_chld, 0);
  sigaction(SIGTERM, &on_quit, 0);
  sigaction(SIGINT, &on_quit, 0);
  for (;;) pause();
}
`;

// Sets up the namespaces' network and mounts, then becomes PID 1 (the pause program). /run, /var/lib and /var/log
// get fresh tmpfs mounts: what the components keep at fixed paths there (shim sockets, the kubelet's device-plugin
// socket, CNI's result cache, log links) stays inside the mount namespace and goes with it.
const HOLDER_SH = `set -eu
mount --make-rshared /
mount -t tmpfs -o mode=0755 berth-node-run /run
mount -t tmpfs -o mode=0755 berth-node-lib /var/lib
mount -t tmpfs -o mode=0755 berth-node-log /var/log
ip link set lo up
ip link add node0 type veth peer name node0-peer
ip link set node0-peer up
ip addr add "$NODE_IP/$NODE_PREFIX" dev node0
ip link set node0 up
ip route add "$SERVICE_CIDR" dev node0
sysctl -qw net.ipv4.ip_forward=1
if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then sysctl -qw net.bridge.bridge-nf-call-iptables=1; fi
: > "$READY_FILE"
exec "$PAUSE"
`;

// Runs inside the namespace: `connect SOCKET` answers HTTP CONNECT on a Unix socket (the API server's egress, and
// forward()); `forward LISTEN[,LISTEN] TARGET` relays connections (`tcp:HOST:PORT` or `unix:PATH`).
const RELAY_MJS = `import { createServer, connect } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
const address = (spec) => {
  if (spec.startsWith('unix:')) return { path: spec.slice(5) };
  const i = spec.lastIndexOf(':');
  return { host: spec.slice(4, i), port: Number(spec.slice(i + 1)) };
};
const join = (a, b) => {
  const end = () => { a.destroy(); b.destroy(); };
  for (const s of [a, b]) { s.on('error', end); s.on('close', end); }
  a.pipe(b);
  b.pipe(a);
};
const [mode, ...rest] = process.argv.slice(2);
if (mode === 'connect') {
  const server = createHttpServer((req, res) => res.writeHead(405).end());
  server.on('connect', (req, socket, head) => {
    const i = req.url.lastIndexOf(':');
    const upstream = connect({ host: req.url.slice(0, i).replace(/^\\[|\\]$/g, ''), port: Number(req.url.slice(i + 1)) });
    socket.on('error', () => upstream.destroy());
    upstream.once('error', (err) => socket.end('HTTP/1.1 502 Bad Gateway\\r\\n\\r\\n' + err.message));
    upstream.once('connect', () => {
      socket.write('HTTP/1.1 200 Connection established\\r\\n\\r\\n');
      if (head.length > 0) upstream.write(head);
      join(socket, upstream);
    });
  });
  server.listen(rest[0], () => console.log('connect proxy on ' + rest[0]));
} else if (mode === 'forward') {
  const target = address(rest[1]);
  for (const spec of rest[0].split(',')) {
    createServer((c) => join(c, connect(target))).listen(address(spec), () => console.log('forwarding ' + spec));
  }
} else {
  console.error('usage: relay.mjs connect SOCKET | forward LISTEN[,LISTEN] TARGET');
  process.exit(2);
}
`;

async function compilePause(dir: string): Promise<string> {
  const source = join(dir, 'pause.c');
  const out = join(dir, 'pause');
  await writeFile(source, PAUSE_C);
  await runChecked(await requireTool('gcc'), ['-static', '-Os', '-s', '-o', out, source], {
    env: { PATH: PATH_IN_NODE },
    timeoutMs: COMMAND_MS,
  });
  return out;
}

export interface RootfsEntry {
  /** Path inside the image. */
  readonly path: string;
  /** A file to copy, or `{ link }` for a symbolic link. */
  readonly source: string | { readonly link: string };
}

/**
 * An OCI layout with one layer made from `entries` (files keep their mode), built offline with umoci and tagged `tag`;
 * returns the layout directory, `<work>/<name>-layout`.
 */
export async function buildRootfsLayout(
  work: string,
  name: string,
  tag: string,
  entries: readonly RootfsEntry[],
  entrypoint?: string,
): Promise<string> {
  const umoci = await requireTool('umoci');
  const rootfs = join(work, `${name}-rootfs`);
  for (const entry of entries) {
    const target = join(rootfs, entry.path);
    await mkdir(join(target, '..'), { recursive: true });
    if (typeof entry.source === 'string') await copyFile(entry.source, target);
    else await symlink(entry.source.link, target);
  }
  await mkdir(join(rootfs, 'tmp'), { recursive: true });
  await chmod(join(rootfs, 'tmp'), 0o1777);
  const layer = join(work, `${name}-layer.tar`);
  const opts = { cwd: work, timeoutMs: COMMAND_MS };
  await runChecked(
    await requireTool('tar'),
    ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', rootfs, '-cf', layer, '.'],
    opts,
  );
  const layout = join(work, `${name}-layout`);
  const image = `${layout}:${tag}`;
  await runChecked(umoci, ['init', '--layout', layout], opts);
  await runChecked(umoci, ['new', '--image', image], opts);
  await runChecked(umoci, ['raw', 'add-layer', '--image', image, layer], opts);
  if (entrypoint !== undefined) {
    await runChecked(umoci, ['config', '--image', image, '--config.entrypoint', entrypoint], opts);
  }
  await runChecked(umoci, ['gc', '--layout', layout], opts);
  return layout;
}

/**
 * The entries for a dynamically linked Debian program: the file behind `path` (symbolic links followed, and kept as
 * links in the image, since some programs pick their mode by name) and every library `ldd` names, with the loader.
 */
export async function debianProgramEntries(path: string): Promise<RootfsEntry[]> {
  const entries: RootfsEntry[] = [];
  let current = path;
  for (let hops = 0; hops < 8; hops++) {
    const target = await readlink(current).catch(() => undefined);
    if (target === undefined) break;
    const next = target.startsWith('/') ? target : join(current, '..', target);
    entries.push({ path: current.slice(1), source: { link: target } });
    current = next;
  }
  entries.push({ path: current.slice(1), source: current });
  const ldd = await runChecked(await requireTool('ldd'), [current], { timeoutMs: COMMAND_MS });
  for (const line of ldd.stdout.split('\n')) {
    // "libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const lib = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line)?.[1];
    if (lib !== undefined) entries.push({ path: lib.slice(1), source: lib });
  }
  return entries;
}

const BUSYBOX_APPLETS = [
  'sh',
  'mkdir',
  'rm',
  'rmdir',
  'chmod',
  'cat',
  'echo',
  'ls',
  'sleep',
  'httpd',
  'wget',
  'nc',
  'env',
];

// ---------------------------------------------------------------------------------------------------------------
// Configuration files

function containerdConfig(dir: string, cniConfDir: string, registryConfigDir: string): string {
  const q = (s: string): string => JSON.stringify(s);
  return `version = 2
root = ${q(join(dir, 'containerd', 'root'))}
state = ${q(join(dir, 'containerd', 'state'))}
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = ${q(join(dir, 'containerd.sock'))}

[plugins."io.containerd.internal.v1.opt"]
  path = ${q(join(dir, 'containerd', 'opt'))}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${q(PAUSE_IMAGE)}
  # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this machine's container lacks.
  restrict_oom_score_adj = true
  # Pod network namespaces are bind-mounted here rather than in /run/netns.
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
        Root = ${q(join(dir, 'runc'))}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = ${q(cniConfDir)}
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ${q(registryConfigDir)}
`;
}

function cniConfig(dir: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'berth-node',
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: NODE_NETWORK.podCidr }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: join(dir, 'cni-ipam'),
        },
      },
    ],
  });
}

function kubeletConfig(dir: string, caFile: string, cgroupRoot: string): string {
  return stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // This machine: cgroup v1 without systemd, swap allowed.
    cgroupDriver: 'cgroupfs',
    failCgroupV1: false,
    failSwapOn: false,
    cgroupRoot,
    containerRuntimeEndpoint: `unix://${join(dir, 'containerd.sock')}`,
    address: NODE_NETWORK.nodeIp,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: caFile },
    },
    authorization: { mode: 'Webhook' },
    // CoreDNS runs on the node's address: pods reach it through their gateway, without a Service.
    clusterDNS: [NODE_NETWORK.nodeIp],
    clusterDomain: 'cluster.local',
    resolvConf: join(dir, 'resolv.conf'),
    podLogsDir: join(dir, 'pod-logs'),
    serializeImagePulls: false,
    // A shared disk may be fuller than a node's: evict only when it is really full.
    evictionHard: {
      'memory.available': '100Mi',
      'nodefs.available': '2%',
      'imagefs.available': '2%',
      'nodefs.inodesFree': '2%',
    },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    nodeStatusUpdateFrequency: '5s',
    syncFrequency: '10s',
    fileCheckFrequency: '10s',
    rotateCertificates: false,
    serverTLSBootstrap: false,
  });
}

function kubeProxyConfig(kubeconfig: string): string {
  return stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    mode: 'iptables',
    clientConnection: { kubeconfig },
    hostnameOverride: NODE_NAME,
    clusterCIDR: NODE_NETWORK.podCidr,
    healthzBindAddress: '127.0.0.1:10256',
    metricsBindAddress: '127.0.0.1:10249',
    // 0: leave the (machine-wide) conntrack table size and timeouts alone.
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    iptables: { syncPeriod: '30s', minSyncPeriod: '1s' },
  });
}

// Cluster DNS only: with no `forward`, names outside cluster.local are refused, and nothing leaves the namespace.
function corefile(kubeconfig: string): string {
  return `.:53 {
    bind ${NODE_NETWORK.nodeIp}
    errors
    ready 127.0.0.1:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig ${kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
}
`;
}

function localPathManifests(dataDir: string): string {
  const objects = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'local-path-storage' } },
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'local-path-provisioner-service-account', namespace: 'local-path-storage' },
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'local-path-config', namespace: 'local-path-storage' },
      data: {
        // Two classes: local-path (the default, ReadWriteOnce, node-local as on most clusters), and shared-path,
        // whose volumes are folders of one shared path and so take ReadWriteMany, as NFS, EFS or CephFS do.
        'config.json': JSON.stringify({
          storageClassConfigs: {
            [STORAGE_CLASS]: {
              nodePathMap: [{ node: 'DEFAULT_PATH_FOR_NON_LISTED_NODES', paths: [join(dataDir, 'local')] }],
            },
            [SHARED_STORAGE_CLASS]: { sharedFileSystemPath: join(dataDir, 'shared') },
          },
        }),
        setup: '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
        teardown: '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n',
        'helperPod.yaml': stringify({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'helper-pod' },
          spec: { containers: [{ name: 'helper-pod', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never' }] },
        }),
      },
    },
    {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: {
        name: STORAGE_CLASS,
        annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' },
      },
      provisioner: 'rancher.io/local-path',
      volumeBindingMode: 'WaitForFirstConsumer',
      reclaimPolicy: 'Delete',
    },
    {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: SHARED_STORAGE_CLASS },
      provisioner: 'rancher.io/local-path',
      volumeBindingMode: 'Immediate',
      reclaimPolicy: 'Delete',
    },
  ];
  return objects.map((o) => stringify(o)).join('---\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Namespaces, cgroups and cleanup

/** The host PID of PID 1 in the holder's namespaces (the child that `unshare --fork` made). */
async function holderInit(holder: Running): Promise<number | undefined> {
  const pid = holder.child.pid;
  if (pid === undefined) return undefined;
  try {
    const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/);
    const first = Number(children[0]);
    return Number.isInteger(first) && first > 0 ? first : undefined;
  } catch {
    return undefined;
  }
}

/** Host PIDs of the processes in the PID namespace `pidNs` (a `pid:[inode]` link). */
async function processesIn(pidNs: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if ((await readlink(`/proc/${entry}/ns/pid`)) === pidNs) found.push(Number(entry));
    } catch {
      // gone, or a kernel thread
    }
  }
  return found;
}

async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((point) => point === dir || point.startsWith(`${dir}/`));
}

const CGROUP_FS = '/sys/fs/cgroup';

/** Where the components keep things by default: none of them may appear on the machine because of a node. */
const DEFAULT_PATHS = [
  '/var/lib/kubelet',
  '/var/lib/cni',
  '/var/lib/containerd',
  '/run/containerd',
  '/var/run/netns',
  '/var/log/pods',
  '/var/log/containers',
  '/opt/cni',
  '/opt/containerd',
  '/etc/kubernetes',
] as const;

async function cgroupHierarchies(): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(CGROUP_FS)) {
    const path = join(CGROUP_FS, entry);
    if ((await stat(path)).isDirectory()) out.push(path);
  }
  return out;
}

/** Creates the kubelet's cgroup root in every hierarchy; cpuset needs its CPUs and memory nodes before use. */
async function createCgroupRoot(cgroupRoot: string): Promise<void> {
  for (const hierarchy of await cgroupHierarchies()) {
    const path = join(hierarchy, cgroupRoot);
    await mkdir(path, { recursive: true });
    if (basename(hierarchy) === 'cpuset') {
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        await writeFile(join(path, file), await readFile(join(hierarchy, file)));
      }
    }
  }
}

/** Removes the cgroup tree depth-first; an empty cgroup may stay busy for a moment after its last process died. */
async function removeCgroupTree(path: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(path);
  } catch {
    return;
  }
  for (const entry of entries) {
    const child = join(path, entry);
    try {
      if ((await stat(child)).isDirectory()) await removeCgroupTree(child);
    } catch {
      // raced with its removal
    }
  }
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(path);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (attempt >= 40) throw err;
      await sleep(250);
    }
  }
}

const NODE_DIR_NAME = /^berth-node-[A-Za-z0-9]+$/;
/** A node directory that nothing has touched for this long, and that no process names, is a dead run's. */
const STALE_MS = 5 * 60_000;

/**
 * Removes what a SIGKILLed test run left: its processes and mounts died with the namespaces, but its directory and
 * its (empty) cgroups stay. A directory that a process still names, or that changed recently, belongs to a live node.
 */
async function sweepStaleNodes(): Promise<void> {
  const hierarchies = await cgroupHierarchies();
  const names = new Set<string>();
  for (const parent of [tmpdir(), ...hierarchies]) {
    for (const entry of await readdir(parent)) if (NODE_DIR_NAME.test(entry)) names.add(entry);
  }
  for (const name of names) {
    const dir = join(tmpdir(), name);
    if (await exists(dir)) {
      const left = await leftoversOf(dir);
      if (left.processes.length > 0 || left.mounts.length > 0) continue;
      if (Date.now() - (await stat(dir)).mtimeMs < STALE_MS) continue;
      await removeDir(dir);
    }
    for (const hierarchy of hierarchies) await removeCgroupTree(join(hierarchy, name)).catch(() => undefined);
  }
}

async function existingCgroups(cgroupRoot: string): Promise<string[]> {
  const out: string[] = [];
  for (const hierarchy of await cgroupHierarchies()) {
    const path = join(hierarchy, cgroupRoot);
    try {
      await stat(path);
      out.push(path);
    } catch {
      // removed
    }
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Loopback forwards through the CONNECT proxy

function openForward(proxySocket: string, host: string, port: number): Promise<Forward> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    const upstream = connect({ path: proxySocket });
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    const fail = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', fail);
    upstream.on('error', fail);
    client.pause();
    upstream.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 8192) fail();
        return;
      }
      upstream.off('data', onData);
      if (!/^HTTP\/1\.[01] 200/.test(head.toString('latin1'))) return fail();
      const rest = head.subarray(end + 4);
      if (rest.length > 0) client.write(rest);
      upstream.pipe(client);
      client.pipe(upstream);
      client.resume();
      upstream.once('close', () => client.destroy());
      client.once('close', () => upstream.destroy());
    };
    upstream.on('data', onData);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') return reject(new Error('forward: no port'));
      resolve({
        port: address.port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The node

/**
 * Starts a control plane and one node (root only), waits until the node is Ready and the local-path StorageClass is
 * served, and returns it. On failure everything started so far is stopped before the error is thrown.
 */
/** kubectl against a node's cluster that must succeed: its stdout, or a failure with the node's recent output. */
export async function kubectlOk(node: KubeNode | undefined, args: readonly string[], input?: string): Promise<string> {
  assert.ok(node, 'the node did not start');
  const r = await node.cluster.kubectl(args, input);
  assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}\n${node.output()}`);
  return r.stdout;
}

export async function startKubeNode(): Promise<KubeNode> {
  if (process.getuid?.() !== 0) throw new Error('startKubeNode: the node needs root (namespaces, mounts, cgroups)');
  const tools = [
    KUBELET,
    KUBE_CONTROLLER_MANAGER,
    KUBE_SCHEDULER,
    KUBE_PROXY,
    LOCAL_PATH_PROVISIONER,
    COREDNS,
    CONTAINERD,
    CTR,
    UNSHARE,
    NSENTER,
    BUSYBOX,
    '/usr/sbin/runc',
    '/usr/lib/cni/bridge',
    '/usr/lib/cni/host-local',
    '/usr/lib/cni/loopback',
    '/usr/sbin/iptables',
    '/usr/sbin/conntrack',
  ];
  await Promise.all(tools.map((t) => requireTool(t)));

  const presentBefore = new Set<string>();
  for (const path of DEFAULT_PATHS) if (await exists(path)) presentBefore.add(path);
  const dir = await tempDir('berth-node-');
  // The directory's name (berth-node-XXXXXX) names the cgroup root too, which lets a later start tell stale ones.
  const cgroupRoot = `/${basename(dir)}`;
  const registryConfigDir = join(dir, 'certs.d');
  const logs = new Map<string, Log>();
  const logOf = (name: string): Log => {
    let log = logs.get(name);
    if (log === undefined) {
      log = new Log();
      logs.set(name, log);
    }
    return log;
  };
  const processes: Running[] = [];
  const forwards = new Set<Forward>();
  let cluster: KubeCluster | undefined;
  let holder: Running | undefined;
  let init: number | undefined;
  let pidNs: string | undefined;
  let cgroupsMade = false;
  let stopped = false;

  /** Starts `file` inside the namespaces, through nsenter (which forks into the PID namespace). */
  const launchInNode = (name: string, file: string, args: readonly string[]): Running => {
    if (init === undefined || stopped) throw new Error(`${name}: the node is not running`);
    const running = launch(
      name,
      NSENTER,
      [
        `--target=${init}`,
        '--mount',
        '--net',
        '--pid',
        '--',
        '/usr/bin/setpriv',
        '--pdeathsig',
        'KILL',
        '--',
        '/usr/bin/env',
        `PATH=${PATH_IN_NODE}`,
        file,
        ...args,
      ],
      dir,
      logOf(name),
    );
    processes.push(running);
    return running;
  };
  const exec = (file: string, args: readonly string[], timeoutMs = COMMAND_MS): Promise<CommandResult> => {
    if (init === undefined || stopped) throw new Error('exec: the node is not running');
    return runCommand(NSENTER, [`--target=${init}`, '--mount', '--net', '--pid', '--', file, ...args], {
      env: { PATH: PATH_IN_NODE, HOME: dir },
      timeoutMs,
    });
  };

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const problems: string[] = [];
    for (const f of forwards) await f.close();
    // PID 1 of the namespace dies, and the kernel kills every other process in it: components, shims, containers.
    // (Once the holder has exited, its PID 1 is gone too: --kill-child.)
    if (init !== undefined && holder !== undefined && !holder.hasExited()) {
      try {
        process.kill(init, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (holder !== undefined) await stopProcess(holder, STOP_GRACE_MS);
    for (const p of processes) await stopProcess(p, STOP_GRACE_MS);
    if (pidNs !== undefined) {
      const deadline = Date.now() + NAMESPACE_GONE_MS;
      let left = await processesIn(pidNs);
      while (left.length > 0 && Date.now() < deadline) {
        await sleep(200);
        left = await processesIn(pidNs);
      }
      if (left.length > 0) problems.push(`processes still in the node's PID namespace: ${left.join(' ')}`);
    }
    // Nothing of the node is mounted in this mount namespace; should anything be, it goes lazily.
    for (const point of (await mountsUnder(dir)).reverse()) {
      await runCommand('/usr/bin/umount', ['-l', point], { timeoutMs: COMMAND_MS });
    }
    if (cgroupsMade) {
      for (const hierarchy of await cgroupHierarchies()) {
        try {
          await removeCgroupTree(join(hierarchy, cgroupRoot));
        } catch (err) {
          problems.push(`cgroup ${join(hierarchy, cgroupRoot)}: ${(err as Error).message}`);
        }
      }
    }
    if (cluster !== undefined) await cluster.dispose();
    await removeDir(dir);
    if (problems.length > 0) throw new Error(`the node did not stop cleanly:\n${problems.join('\n')}`);
  };

  const output = (): string =>
    [
      ...(cluster === undefined ? [] : [cluster.output()]),
      ...[...logs].map(([n, l]) => `--- ${n}\n${l.tail(4000)}`),
    ].join('\n');

  try {
    // Namespaces first: the API server's egress socket lives inside.
    const pause = await compilePause(dir);
    const readyFile = join(dir, 'namespaces.ready');
    await writeFile(join(dir, 'holder.sh'), HOLDER_SH);
    holder = launch(
      'namespaces',
      '/usr/bin/env',
      [
        `PATH=${PATH_IN_NODE}`,
        `NODE_IP=${NODE_NETWORK.nodeIp}`,
        `NODE_PREFIX=${NODE_NETWORK.nodePrefix}`,
        `SERVICE_CIDR=${NODE_NETWORK.serviceCidr}`,
        `READY_FILE=${readyFile}`,
        `PAUSE=${pause}`,
        UNSHARE,
        '--net',
        '--mount',
        '--pid',
        '--fork',
        '--kill-child',
        '--mount-proc',
        '--propagation',
        'private',
        '--',
        '/bin/sh',
        join(dir, 'holder.sh'),
      ],
      dir,
      logOf('namespaces'),
    );
    const holding = holder;
    await waitReady(
      holding,
      logOf('namespaces'),
      async () => {
        if (!(await exists(readyFile))) return 'setting up';
        init = await holderInit(holding);
        return init === undefined ? 'no PID 1 yet' : null;
      },
      HOLDER_READY_MS,
    );
    pidNs = await readlink(`/proc/${init}/ns/pid`);

    const egressSocket = join(dir, 'egress.sock');
    const relay = join(dir, 'relay.mjs');
    await writeFile(relay, RELAY_MJS);
    const proxy = launchInNode('connect-proxy', process.execPath, [relay, 'connect', egressSocket]);
    await waitReady(
      proxy,
      logOf('connect-proxy'),
      async () => ((await exists(egressSocket)) ? null : 'starting'),
      15_000,
    );

    const network: NodeNetworkOptions = {
      advertiseAddress: NODE_NETWORK.nodeIp,
      serviceCidr: NODE_NETWORK.serviceCidr,
      kubernetesServiceIp: NODE_NETWORK.kubernetesServiceIp,
      egressSocket,
    };
    cluster = await startKubeCluster({ node: network });
    const port = Number(new URL(cluster.server).port);

    // The API server inside the namespace, on the same port: loopback for the components, the node's address for
    // the `kubernetes` Service's endpoint.
    const apiSocket = join(dir, 'api.sock');
    const hostRelay = launch(
      'api-relay (host)',
      process.execPath,
      [relay, 'forward', `unix:${apiSocket}`, `tcp:127.0.0.1:${port}`],
      dir,
      logOf('api-relay'),
    );
    processes.push(hostRelay);
    await waitReady(hostRelay, logOf('api-relay'), async () => ((await exists(apiSocket)) ? null : 'starting'), 15_000);
    launchInNode('api-relay (node)', process.execPath, [relay, 'forward', `tcp:0.0.0.0:${port}`, `unix:${apiSocket}`]);

    const kubeletKubeconfig = await cluster.userKubeconfig(`system:node:${NODE_NAME}`, ['system:nodes']);
    const proxyKubeconfig = await cluster.userKubeconfig('system:kube-proxy', []);
    const admin = cluster.kubeconfig;
    const clusterDir = cluster.dir;

    launchInNode('kube-controller-manager', KUBE_CONTROLLER_MANAGER, [
      `--kubeconfig=${admin}`,
      `--authentication-kubeconfig=${admin}`,
      `--authorization-kubeconfig=${admin}`,
      '--bind-address=127.0.0.1',
      '--leader-elect=false',
      `--service-account-private-key-file=${join(clusterDir, 'sa.key')}`,
      `--root-ca-file=${cluster.caFile}`,
      `--service-cluster-ip-range=${NODE_NETWORK.serviceCidr}`,
      '--v=0',
    ]);
    const corefilePath = join(dir, 'Corefile');
    await writeFile(corefilePath, corefile(admin));
    const dns = launchInNode('coredns', COREDNS, ['-conf', corefilePath]);
    launchInNode('kube-scheduler', KUBE_SCHEDULER, [
      `--kubeconfig=${admin}`,
      `--authentication-kubeconfig=${admin}`,
      `--authorization-kubeconfig=${admin}`,
      '--bind-address=127.0.0.1',
      '--leader-elect=false',
      '--v=0',
    ]);

    // containerd, with the images the node needs before any pull.
    const cniConfDir = join(dir, 'cni');
    await mkdir(cniConfDir, { recursive: true });
    await mkdir(registryConfigDir, { recursive: true });
    await writeFile(join(cniConfDir, '10-berth-node.conflist'), cniConfig(dir));
    const containerdToml = join(dir, 'containerd.toml');
    await writeFile(containerdToml, containerdConfig(dir, cniConfDir, registryConfigDir));
    const containerd = launchInNode('containerd', CONTAINERD, ['--config', containerdToml]);
    const address = join(dir, 'containerd.sock');
    await waitReady(
      containerd,
      logOf('containerd'),
      async () => {
        const r = await runCommand(CTR, ['--address', address, 'version'], { timeoutMs: 10_000 });
        return r.code === 0 ? null : r.stderr.trim();
      },
      CONTAINERD_READY_MS,
    );

    const images = join(dir, 'images');
    await mkdir(images);
    let imports = 0;
    const importLayout = async (layout: string, repository: string, tag: string): Promise<void> => {
      const tar = await requireTool('tar');
      imports += 1;
      const ours = join(images, `import-${imports}`);
      // ctr names each tagged manifest of the layout `<base-name>:<tag>`.
      let archive = layout;
      let indexDir = layout;
      if ((await stat(layout)).isFile()) {
        await mkdir(ours);
        await runChecked(tar, ['-C', ours, '-xf', layout, 'index.json'], { timeoutMs: COMMAND_MS });
        indexDir = ours;
      } else {
        archive = `${ours}.tar`;
        await runChecked(tar, ['-C', layout, '-cf', archive, '.'], { timeoutMs: COMMAND_MS });
      }
      const index = await readLayoutIndex(indexDir);
      if (!index.manifests.some((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag)) {
        throw new Error(`importLayout: ${layout} has no image tagged ${tag}`);
      }
      const ctr = ['--address', address, '--namespace', 'k8s.io', 'images'];
      await runChecked(CTR, [...ctr, 'import', '--base-name', repository, archive], { timeoutMs: 300_000 });
      await removeDir(ours);
      await removeDir(`${ours}.tar`);
      const listed = await runChecked(CTR, [...ctr, 'ls', '-q'], { timeoutMs: COMMAND_MS });
      if (!listed.stdout.split('\n').includes(`${repository}:${tag}`)) {
        throw new Error(`importLayout: containerd has no ${repository}:${tag} after the import:\n${listed.stdout}`);
      }
    };
    const [pauseRepo, pauseTag] = PAUSE_IMAGE.split(':') as [string, string];
    const [busyboxRepo, busyboxTag] = BUSYBOX_IMAGE.split(':') as [string, string];
    await importLayout(
      await buildRootfsLayout(images, 'pause', pauseTag, [{ path: 'pause', source: pause }], '/pause'),
      pauseRepo,
      pauseTag,
    );
    await importLayout(
      await buildRootfsLayout(images, 'busybox', busyboxTag, [
        { path: 'bin/busybox', source: BUSYBOX },
        ...BUSYBOX_APPLETS.map((a) => ({ path: `bin/${a}`, source: { link: 'busybox' } })),
      ]),
      busyboxRepo,
      busyboxTag,
    );

    // The kubelet, in its own cgroup root so that nothing it creates mixes with anything else on the machine.
    await sweepStaleNodes();
    cgroupsMade = true;
    await createCgroupRoot(cgroupRoot);
    await writeFile(join(dir, 'resolv.conf'), '');
    const kubeletYaml = join(dir, 'kubelet.yaml');
    await writeFile(kubeletYaml, kubeletConfig(dir, cluster.caFile, cgroupRoot));
    launchInNode('kubelet', KUBELET, [
      `--config=${kubeletYaml}`,
      `--kubeconfig=${kubeletKubeconfig}`,
      `--root-dir=${join(dir, 'kubelet')}`,
      `--cert-dir=${join(dir, 'kubelet', 'pki')}`,
      `--node-ip=${NODE_NETWORK.nodeIp}`,
      `--hostname-override=${NODE_NAME}`,
      '--v=0',
    ]);
    const proxyYaml = join(dir, 'kube-proxy.yaml');
    await writeFile(proxyYaml, kubeProxyConfig(proxyKubeconfig));
    launchInNode('kube-proxy', KUBE_PROXY, [`--config=${proxyYaml}`, '--v=0']);

    await waitReady(
      dns,
      logOf('coredns'),
      async () => {
        const r = await exec(BUSYBOX, ['wget', '-q', '-O', '-', 'http://127.0.0.1:8181/ready'], 10_000);
        return r.code === 0 ? null : `ready: ${r.stderr.trim()}`;
      },
      NODE_READY_MS,
    );
    const deadline = Date.now() + NODE_READY_MS;
    for (;;) {
      const r = await cluster.kubectl([
        'get',
        'node',
        NODE_NAME,
        '-o',
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
      ]);
      if (r.code === 0 && r.stdout === 'True') break;
      const dead = processes.find((p) => p.hasExited());
      if (dead !== undefined) throw new Error(`${dead.name} ${await dead.exited} before the node was Ready`);
      if (Date.now() > deadline) {
        throw new Error(`node ${NODE_NAME} not Ready in ${NODE_READY_MS} ms (${r.stdout}${r.stderr})`);
      }
      await sleep(1000);
    }

    // The default StorageClass: local-path-provisioner as a process, its helper pods on the busybox image.
    const applied = await cluster.kubectl(['apply', '-f', '-'], localPathManifests(join(dir, 'local-path')));
    if (applied.code !== 0) throw new Error(`local-path manifests: ${applied.stderr}`);
    launchInNode('local-path-provisioner', LOCAL_PATH_PROVISIONER, [
      'start',
      `--kubeconfig=${admin}`,
      '--namespace=local-path-storage',
      '--provisioner-name=rancher.io/local-path',
      `--helper-image=${BUSYBOX_IMAGE}`,
      '--configmap-name=local-path-config',
      '--service-account-name=local-path-provisioner-service-account',
    ]);

    const control = cluster;
    return {
      cluster: control,
      nodeName: NODE_NAME,
      nodeIp: NODE_NETWORK.nodeIp,
      dir,
      registryConfigDir,
      exec,
      start: (name, file, args) => {
        const running = launchInNode(name, file, args);
        return {
          hasExited: () => running.hasExited(),
          output: () => logOf(name).tail(),
          stop: () => stopProcess(running, STOP_GRACE_MS),
        };
      },
      allowHttpRegistry: async (hostPort) => {
        const hostDir = join(registryConfigDir, hostPort);
        await mkdir(hostDir, { recursive: true });
        const url = JSON.stringify(`http://${hostPort}`);
        await writeFile(
          join(hostDir, 'hosts.toml'),
          `server = ${url}\n\n[host.${url}]\n  capabilities = ["pull", "resolve", "push"]\n  skip_verify = true\n`,
        );
      },
      importLayout,
      forward: async (host, targetPort) => {
        const f = await openForward(egressSocket, host, targetPort);
        const tracked: Forward = {
          port: f.port,
          close: async () => {
            forwards.delete(tracked);
            await f.close();
          },
        };
        forwards.add(tracked);
        return tracked;
      },
      exposeHost: async (hostPort) => {
        const name = `expose-${hostPort}`;
        const socket = join(dir, `${name}.sock`);
        const host = launch(
          `${name} (host)`,
          process.execPath,
          [relay, 'forward', `unix:${socket}`, `tcp:127.0.0.1:${hostPort}`],
          dir,
          logOf(name),
        );
        processes.push(host);
        await waitReady(host, logOf(name), async () => ((await exists(socket)) ? null : 'starting'), 15_000);
        const address = `${NODE_NETWORK.nodeIp}:${hostPort}`;
        const inside = launchInNode(`${name} (node)`, process.execPath, [
          relay,
          'forward',
          `tcp:${address}`,
          `unix:${socket}`,
        ]);
        // The relay says `forwarding <address>` once it listens.
        await waitReady(
          inside,
          logOf(`${name} (node)`),
          async () =>
            logOf(`${name} (node)`).text().includes(`forwarding tcp:${address}`) ? null : 'not listening yet',
          15_000,
        );
        return address;
      },
      output,
      stop,
      leftovers: async () => {
        const found = await leftoversOf(dir);
        const inNamespace = pidNs === undefined ? [] : await processesIn(pidNs);
        const appeared: string[] = [];
        for (const path of DEFAULT_PATHS) if (!presentBefore.has(path) && (await exists(path))) appeared.push(path);
        return {
          ...found,
          processes: [...new Set([...found.processes, ...inNamespace])],
          paths: [...found.paths, ...appeared],
        };
      },
    };
  } catch (err) {
    const message = `${(err as Error).message}\n${output()}`;
    await stop().catch((e: unknown) => console.error(`[node helper] ${(e as Error).message}`));
    throw new Error(message, { cause: err });
  }
}

/** What a node with directory `dir` left behind: processes naming it, mounts under it, its cgroups, itself. */
export async function leftoversOf(dir: string): Promise<Leftovers> {
  const processes: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if ((await readFile(`/proc/${entry}/cmdline`, 'utf8')).includes(dir)) processes.push(Number(entry));
    } catch {
      // gone
    }
  }
  return {
    processes,
    mounts: await mountsUnder(dir),
    cgroups: await existingCgroups(`/${basename(dir)}`),
    paths: (await exists(dir)) ? [dir] : [],
  };
}
