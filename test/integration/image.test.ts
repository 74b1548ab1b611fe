// Berth's container image as scripts/build-image.sh builds it from the Dockerfile: pushed into a running Berth (Berth
// hosts its own image), read back with skopeo, unpacked with umoci, and its entrypoint run from the unpacked root
// filesystem as the image's user, the way a container runtime would (chroot, with /proc mounted, and the image's
// environment, working directory, entrypoint and command).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT, removeDir, spawnRegistry, tempDir, type ChildRegistry } from '../helpers/harness.js';
import {
  blobDataPath,
  header,
  httpRequest,
  listTags,
  makeSmallImage,
  pushSmallImage,
  readLayoutIndex,
  requireTool,
  runChecked,
  runCommand,
  skopeo,
  skopeoContext,
  type SkopeoContext,
} from '../helpers/images.js';

const IMAGES = join(REPO_ROOT, '.tools', 'images');
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** What scripts/build-image.sh says it built (.tools/images/berth.json). */
interface BuiltImage {
  readonly image: string;
  readonly tag: string;
  readonly buildTag: string;
  readonly archive: string;
  readonly manifestDigest: string;
}

/** The runtime part of an OCI image config, as `skopeo inspect --config` prints it. */
interface ImageConfig {
  readonly User?: string;
  readonly Env?: string[];
  readonly Entrypoint?: string[];
  readonly Cmd?: string[];
  readonly WorkingDir?: string;
  readonly ExposedPorts?: Record<string, unknown>;
  readonly Volumes?: Record<string, unknown>;
}

async function readBuiltImage(): Promise<BuiltImage> {
  const file = join(IMAGES, 'berth.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new Error(`${file} is missing: run \`bash scripts/build-image.sh\` (npm cit runs it) to build the image`);
  }
  const built = JSON.parse(text) as BuiltImage;
  await stat(built.archive);
  return built;
}

async function isMounted(path: string): Promise<boolean> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  return mountinfo.split('\n').some((line) => line.split(' ')[4] === path);
}

describe('the Berth image, built from the Dockerfile and hosted by Berth @e2e @integration', function () {
  this.timeout(600_000);

  let built: BuiltImage;
  let work: string;
  let registry: ChildRegistry | undefined;
  let ctx: SkopeoContext;
  let chroot: string;
  let ref: string;
  let config: ImageConfig;
  let rootfs: string | undefined;
  const children: ChildProcess[] = [];

  before(async function () {
    built = await readBuiltImage();
    chroot = await requireTool('chroot');
    await requireTool('umoci');
    // Unpacking with owners and running as another user from a root filesystem is what a container runtime does
    // as root; so does this test.
    assert.equal(process.getuid?.(), 0, 'this test runs as root: it unpacks the image and chroots into it');
    work = await tempDir('berth-image-');
    ctx = await skopeoContext(join(work, 'skopeo'));
    registry = await spawnRegistry({ REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(work, 'storage') });
    ref = `127.0.0.1:${registry.port}/berth/berth:${built.tag}`;
  });

  after(async function () {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    }
    if (registry !== undefined) await registry.stop();
    if (rootfs !== undefined && (await isMounted(join(rootfs, 'proc')))) {
      const umount = await runCommand('umount', [join(rootfs, 'proc')], { timeoutMs: 30_000 });
      if (umount.code !== 0) await runCommand('umount', ['-l', join(rootfs, 'proc')], { timeoutMs: 30_000 });
    }
    // Never remove a tree with /proc still mounted in it.
    if (rootfs !== undefined && (await isMounted(join(rootfs, 'proc')))) {
      throw new Error(`${rootfs}/proc is still mounted: unmount it and remove ${work}`);
    }
    if (work !== undefined) await removeDir(work);
  });

  /** The image's entrypoint with `args` (its Cmd when none), from the unpacked root filesystem, as its user. */
  function entrypoint(args: readonly string[] = config.Cmd ?? []): string[] {
    assert.ok(rootfs !== undefined && config.User !== undefined && config.WorkingDir !== undefined);
    // sh resolves the entrypoint's `node` on the image's PATH, as a runtime does, after entering its working dir.
    return [
      `--userspec=${config.User}`,
      rootfs,
      '/bin/sh',
      '-c',
      'cd "$0" && exec "$@"',
      config.WorkingDir,
      ...(config.Entrypoint ?? []),
      ...args,
    ];
  }

  /** The image's environment (its Env), plus `extra`: nothing of this machine's. */
  function imageEnv(extra: Record<string, string> = {}): Record<string, string> {
    const env: Record<string, string> = {};
    for (const entry of config.Env ?? []) {
      const eq = entry.indexOf('=');
      env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    return { ...env, ...extra };
  }

  it("is tagged with the chart's appVersion, the chart's default image tag", async function () {
    const chart = parseYaml(await readFile(join(REPO_ROOT, 'charts', 'berth', 'Chart.yaml'), 'utf8')) as {
      appVersion?: unknown;
    };
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(built.tag, pkg.version);
    assert.equal(built.tag, String(chart.appVersion));
    assert.match(built.buildTag, new RegExp(`^${built.tag.replaceAll('.', '\\.')}-[0-9a-f]{12}$`));
  });

  it('is pushed into a running Berth with skopeo, which serves back the same manifest', async function () {
    await skopeo(ctx, ['copy', '--dest-tls-verify=false', `oci-archive:${built.archive}`, `docker://${ref}`], 300_000);
    assert.deepEqual(await listTags(registry!.url, 'berth/berth'), [built.tag]);
    const res = await httpRequest(`${registry!.url}/v2/berth/berth/manifests/${built.tag}`, {
      method: 'HEAD',
      headers: { Accept: OCI_MANIFEST },
    });
    assert.equal(res.status, 200);
    assert.equal(header(res, 'docker-content-digest'), built.manifestDigest);
  });

  it('says in its config that it runs `berth serve` as 65532 from /app, with port 5000, 5001 and a volume', async function () {
    config = (
      JSON.parse((await skopeo(ctx, ['inspect', '--config', '--tls-verify=false', `docker://${ref}`])).stdout) as {
        config: ImageConfig;
      }
    ).config;
    assert.equal(config.User, '65532:65532');
    assert.deepEqual(config.Entrypoint, ['node', 'dist/src/cli/main.js']);
    assert.deepEqual(config.Cmd, ['serve', '--config', '/etc/berth/config.yml']);
    assert.equal(config.WorkingDir, '/app');
    assert.ok(config.Env?.includes('NODE_ENV=production'), `Env: ${JSON.stringify(config.Env)}`);
    assert.deepEqual(Object.keys(config.ExposedPorts ?? {}).sort(), ['5000/tcp', '5001/tcp']);
    assert.deepEqual(Object.keys(config.Volumes ?? {}), ['/var/lib/registry']);
  });

  it('pulls back from Berth and unpacks to a root filesystem with Node 24 and a data dir 65532 owns', async function () {
    const layout = join(work, 'layout');
    await skopeo(ctx, ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:${built.tag}`], 300_000);
    const index = await readLayoutIndex(layout);
    assert.equal(index.manifests[0]?.digest, built.manifestDigest);
    const bundle = join(work, 'bundle');
    await runChecked('umoci', ['unpack', '--image', `${layout}:${built.tag}`, bundle], { timeoutMs: 300_000 });
    rootfs = join(bundle, 'rootfs');
    const data = await stat(join(rootfs, 'var', 'lib', 'registry'));
    assert.deepEqual([data.uid, data.gid], [65532, 65532]);
    // A runtime gives every container a /proc; Node finds its own executable there (process.execPath), which
    // `berth serve` re-executes with its V8 flags.
    await runChecked('mount', ['-t', 'proc', 'proc', join(rootfs, 'proc')], { timeoutMs: 30_000 });
    const node = await runChecked(chroot, [rootfs, '/usr/local/bin/node', '--version'], {
      env: imageEnv(),
      timeoutMs: 60_000,
    });
    assert.match(node.stdout, /^v24\./);
  });

  it('verifies its baked-in config through its entrypoint, as uid 65532', async function () {
    const res = await runChecked(chroot, entrypoint(['verify', '/etc/berth/config.yml']), {
      env: imageEnv(),
      timeoutMs: 120_000,
    });
    assert.match(res.stdout, /\/etc\/berth\/config\.yml: ok/);
  });

  it('serves with its own command as uid 65532, started with its V8 flags, and stores in its volume', async function () {
    assert.ok(rootfs !== undefined);
    // Loopback ports the OS picks: the image's :5000 and :5001 may be taken on this machine.
    const child = spawn(chroot, entrypoint(), {
      env: imageEnv({ REGISTRY_HTTP_ADDR: '127.0.0.1:0', REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:0' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = once(child, 'exit');
    const addr = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`berth serve did not listen in 60 s: ${stderr}`)), 60_000);
      void exited.then(([code]) => reject(new Error(`berth serve exited with ${String(code)}: ${stderr}`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (!line.includes('"listening"')) return;
        clearTimeout(timer);
        resolve(String((JSON.parse(line) as { addr: unknown }).addr));
      });
    });
    const base = `http://127.0.0.1:${addr.slice(addr.lastIndexOf(':') + 1)}`;
    const res = await httpRequest(`${base}/v2/`);
    assert.equal(res.status, 200);

    // The same process (chroot → sh → node, then execve with the flags) runs as the image's user.
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
    const argv = (await readFile(`/proc/${child.pid}/cmdline`, 'utf8')).split('\0');
    assert.ok(argv.includes('--heap-growing-percent=300'), `argv: ${argv.join(' ')}`);
    assert.equal(argv[0], '/usr/local/bin/node');

    const image = makeSmallImage('berth image test', 1, 2048);
    await pushSmallImage(base, 'inside/image', 'v1', image);
    const volume = join(rootfs, 'var', 'lib', 'registry');
    for (const digest of image.blobs.keys()) {
      const file = await stat(blobDataPath(volume, digest));
      assert.equal(file.uid, 65532);
    }

    child.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0, stderr);
  });

  it('runs `berth operator` with the same entrypoint, as uid 65532', async function () {
    assert.ok(rootfs !== undefined);
    // An API server nobody listens at: the operator starts its informers, and says that their watches fail.
    await writeFile(
      join(rootfs, 'tmp', 'kubeconfig'),
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]',
        'users: [{name: none, user: {token: none}}]',
        'contexts: [{name: none, context: {cluster: none, user: none}}]',
        'current-context: none',
        '',
      ].join('\n'),
    );
    const child = spawn(
      chroot,
      entrypoint(['operator', '--kubeconfig', '/tmp/kubeconfig', '--no-leader-elect', '--health-addr', '127.0.0.1:0']),
      { env: imageEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = once(child, 'exit');
    const line = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`berth operator logged nothing in 60 s: ${stderr}`)), 60_000);
      void exited.then(([code]) => reject(new Error(`berth operator exited with ${String(code)}: ${stderr}`)));
      createInterface({ input: child.stdout }).on('line', (text) => {
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(text) as Record<string, unknown>;
        } catch {
          return;
        }
        if (entry['informer'] === undefined) return;
        clearTimeout(timer);
        resolve(entry);
      });
    });
    assert.equal(line['component'], 'operator');
    assert.equal(line['msg'], 'watch failed; restarting the informer');
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
    child.kill('SIGTERM');
    await exited;
  });
});
