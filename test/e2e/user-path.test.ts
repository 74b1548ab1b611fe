// The user's path on a real node: the README's walkthrough (the image built from the Dockerfile, pushed to a
// registry, `helm install`, a Registry from examples/ reaching Ready through real pod readiness, `helm test`), a push
// through its Service, the node's containerd pulling a pod's image from Berth, Prometheus and the dashboard, the
// managed-Redis and HPA examples, `kubectl scale`, a `helm upgrade` rollout under a loop of pulls, and uninstall.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { REPO_ROOT, TOOLS_BIN, removeDir, spawnRegistry, tempDir, type ChildRegistry } from '../helpers/harness.js';
import { runChecked, skopeo, skopeoContext, type SkopeoContext } from '../helpers/images.js';
import { sleep } from '../helpers/kube.js';
import { scrape, sumOf } from '../helpers/prometheus.js';
import {
  SHARED_STORAGE_CLASS,
  buildRootfsLayout,
  debianProgramEntries,
  startKubeNode,
  type KubeNode,
  kubectlOk,
} from '../helpers/node.js';

const IMAGE_INFO = join(REPO_ROOT, '.tools', 'images', 'berth.json');
const SYSTEM = 'berth-system';
const EXAMPLES = 'berth-examples';
const REDIS_IMAGE = 'library/redis:bookworm';
const SELECTOR = 'app.kubernetes.io/instance=registry,app.kubernetes.io/component=registry';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** The README's walkthrough: the first `sh` block after its heading, run as written. */
async function readmeWalkthrough(): Promise<string> {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('### Walkthrough:');
  assert.ok(start >= 0, 'README has no walkthrough');
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(start));
  assert.ok(block?.[1], 'the walkthrough has no sh block');
  return block[1];
}

/** The Ready pods of a selector in a namespace, by name. */
function readyPods(table: string): string[] {
  return table
    .trim()
    .split('\n')
    .filter((line) => line.endsWith('=True'))
    .map((line) => line.split('=')[0] ?? '');
}
const READY_JSONPATH =
  'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}';

/** The parts of an example's spec that a user adapts to their cluster. */
interface ExampleSpec {
  storage: { filesystem: { storageClassName?: string } };
  cache: { redis: { image?: string } };
}

interface BuiltImage {
  readonly image: string;
  readonly tag: string;
  readonly archive: string;
}

// Also tagged @integration: `npm run test:unit` (`--grep @integration --invert`) must not start a node.
describe('the user’s path on a real node: helm install, a Registry, push, pull by containerd @e2e @integration', function () {
  this.timeout(900_000);
  let node: KubeNode | undefined;
  let work: string;
  let built: BuiltImage;
  let upstream: ChildRegistry | undefined;
  let upstreamInNode: string;
  let ctx: SkopeoContext;
  const timings: string[] = [];

  before(async function () {
    built = JSON.parse(await readFile(IMAGE_INFO, 'utf8')) as BuiltImage;
    work = await tempDir('berth-e2e-');
    let t = Date.now();
    node = await startKubeNode();
    timings.push(`node Ready ${Date.now() - t} ms`);
    // "A registry your nodes pull from": a Berth on this machine, which the node reaches at <node IP>:<port>.
    upstream = await spawnRegistry({ REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(work, 'upstream') });
    upstreamInNode = await node.exposeHost(upstream.port);
    await node.allowHttpRegistry(upstreamInNode);
    ctx = await skopeoContext(work);
    t = Date.now();
  });

  after(async function () {
    console.log(`      ${timings.join('; ')}`);
    await node?.stop();
    await upstream?.stop();
    await removeDir(work);
  });

  const live = (): KubeNode => {
    assert.ok(node, 'the node did not start');
    return node;
  };

  const kubectl = (args: readonly string[], input?: string): Promise<string> => kubectlOk(node, args, input);

  const helm = async (args: readonly string[]): Promise<string> => {
    const r = await runChecked(join(TOOLS_BIN, 'helm'), ['--kubeconfig', live().cluster.kubeconfig, ...args], {
      timeoutMs: 300_000,
      // HOME keeps helm's caches and kubectl's discovery cache in the test's directory, not the working directory.
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: work },
    });
    return r.stdout;
  };

  it('follows the README walkthrough: image pushed, helm install, a Registry Ready, helm test passes', async function () {
    const t = Date.now();
    const script = [
      'set -euo pipefail',
      `export REGISTRY=${upstreamInNode}`,
      `export KUBECONFIG=${live().cluster.kubeconfig}`,
      `export PATH=${TOOLS_BIN}:$PATH`,
      `cd ${REPO_ROOT}`,
      await readmeWalkthrough(),
    ].join('\n');
    const r = await live().exec('/bin/bash', ['-c', script], 900_000);
    timings.push(`README walkthrough ${Date.now() - t} ms`);
    assert.equal(r.code, 0, `the walkthrough failed:\n${r.stdout}\n${r.stderr}\n${live().output()}`);
    // helm test ran `berth check` in a pod of the chart's image, against the Registry's Service (by DNS name).
    assert.match(r.stdout, /Phase:\s+Succeeded/);
    assert.match(r.stdout, /pulled berth-check\/probe:check-\d+: manifest, config and layer match/);
    // The image came from the registry the walkthrough pushed it to.
    assert.ok(upstream?.logs.some((l) => String(l['path'] ?? '').startsWith('/v2/berth/berth/manifests/')));
  });

  it('runs two operator pods, one holding the Lease, with the CRD from the chart', async function () {
    const ready = await kubectl([
      'get',
      'pods',
      '-n',
      SYSTEM,
      '-l',
      'app.kubernetes.io/component=operator',
      '-o',
      READY_JSONPATH,
    ]);
    const pods = readyPods(ready);
    assert.equal(pods.length, 2, ready);
    let holder = '';
    for (let i = 0; i < 60 && holder === ''; i++) {
      if (i > 0) await sleep(1000);
      holder = (
        await live().cluster.kubectl([
          'get',
          'lease',
          'berth-operator',
          '-n',
          SYSTEM,
          '-o',
          'jsonpath={.spec.holderIdentity}',
        ])
      ).stdout.trim();
    }
    assert.ok(
      pods.some((p) => holder.startsWith(p)),
      `the Lease holder ${holder} is one of ${pods.join(', ')}`,
    );
    const crd = await kubectl(['get', 'crd', 'registries.berth.dev', '-o', 'jsonpath={.metadata.name}']);
    assert.equal(crd, 'registries.berth.dev');
  });

  it('shows the Registry Ready with its printer columns, its image, and a bound PVC', async function () {
    const table = await kubectl(['get', 'registries', '-n', EXAMPLES, '-o', 'wide']);
    const [header, row] = table.trim().split('\n');
    assert.match(header ?? '', /NAME\s+READY\s+STORAGE\s+CACHE\s+ENDPOINT\s+IMAGE\s+AGE/);
    assert.match(row ?? '', /^registry\s+True\s+/);
    assert.ok(row?.includes(`${upstreamInNode}/berth/berth:${built.tag}`), row);
    assert.equal(await kubectl(['get', 'pvc', '-n', EXAMPLES, '-o', 'jsonpath={.items[0].status.phase}']), 'Bound');
  });

  it('takes a push through its Service, and the node’s containerd pulls a pod’s image from it', async function () {
    const clusterIp = await kubectl(['get', 'service', 'registry', '-n', EXAMPLES, '-o', 'jsonpath={.spec.clusterIP}']);
    const forward = await live().forward(clusterIp, 5000);
    try {
      const layout = await buildRootfsLayout(work, 'sleeper', '1', [{ path: 'bin/busybox', source: '/bin/busybox' }]);
      await skopeo(ctx, [
        'copy',
        '--dest-tls-verify=false',
        `oci:${layout}:1`,
        `docker://127.0.0.1:${forward.port}/app/sleeper:1`,
      ]);
    } finally {
      await forward.close();
    }
    await live().allowHttpRegistry(`${clusterIp}:5000`);
    await kubectl([
      'run',
      'sleeper',
      '-n',
      EXAMPLES,
      `--image=${clusterIp}:5000/app/sleeper:1`,
      '--image-pull-policy=Always',
      '--command',
      '--',
      '/bin/busybox',
      'sleep',
      '3600',
    ]);
    const ready = await live().cluster.kubectl([
      'wait',
      '--for=condition=Ready',
      'pod/sleeper',
      '-n',
      EXAMPLES,
      '--timeout=180s',
    ]);
    assert.equal(ready.code, 0, `${ready.stderr}\n${await kubectl(['describe', 'pod', 'sleeper', '-n', EXAMPLES])}`);
    // The registry's own access log shows containerd's pull: the manifest, then the layer.
    const logs = await kubectl([
      'logs',
      '-n',
      EXAMPLES,
      '-l',
      'app.kubernetes.io/instance=registry,app.kubernetes.io/component=registry',
      '--tail=500',
    ]);
    assert.match(logs, /"route":"manifest","path":"\/v2\/app\/sleeper\/manifests\//);
    assert.match(logs, /"method":"GET","route":"blob","path":"\/v2\/app\/sleeper\/blobs\/sha256:/);
  });

  it('comes back with its images when its pod is deleted (the PVC keeps them)', async function () {
    const selector = 'app.kubernetes.io/instance=registry,app.kubernetes.io/component=registry';
    const before = (
      await kubectl(['get', 'pods', '-n', EXAMPLES, '-l', selector, '-o', 'jsonpath={.items[*].metadata.name}'])
    ).trim();
    assert.notEqual(before, '');
    await kubectl(['delete', 'pod', '-n', EXAMPLES, before, '--wait=true']);
    let after = '';
    for (let i = 0; i < 120 && (after === '' || after === before); i++) {
      if (i > 0) await sleep(1000);
      after = (
        await kubectl(['get', 'pods', '-n', EXAMPLES, '-l', selector, '-o', 'jsonpath={.items[*].metadata.name}'])
      ).trim();
    }
    assert.ok(after !== '' && after !== before, `a new pod replaces ${before} (got ${after})`);
    const waited = await live().cluster.kubectl([
      'wait',
      '--for=condition=Ready',
      `pod/${after}`,
      '-n',
      EXAMPLES,
      '--timeout=180s',
    ]);
    assert.equal(waited.code, 0, waited.stderr);
    const clusterIp = await kubectl(['get', 'service', 'registry', '-n', EXAMPLES, '-o', 'jsonpath={.spec.clusterIP}']);
    const inside = await live().exec('/bin/busybox', [
      'wget',
      '-q',
      '-O',
      '-',
      '--header',
      'Accept: application/vnd.oci.image.manifest.v1+json',
      `http://${clusterIp}:5000/v2/app/sleeper/manifests/1`,
    ]);
    assert.equal(inside.code, 0, inside.stderr);
    assert.match(inside.stdout, /"layers"/);
  });

  it('is scraped by Prometheus through kubernetes_sd_configs, and every dashboard query answers there', async function () {
    const dir = join(work, 'prometheus');
    await runChecked('mkdir', ['-p', join(dir, 'data')], { timeoutMs: 10_000 });
    // Prometheus finds the registry pods through the API server, as on a cluster without prometheus-operator, and
    // scrapes each pod's debug port (named `debug`, 5001) inside the node's network. Debian's Prometheus is built
    // without Kubernetes discovery, so this is upstream's, built by the install script.
    const config = [
      'global: { scrape_interval: 1s, scrape_timeout: 1s }',
      'scrape_configs:',
      '  - job_name: berth-registries',
      '    kubernetes_sd_configs:',
      `      - { role: pod, kubeconfig_file: ${JSON.stringify(live().cluster.kubeconfig)} }`,
      '    relabel_configs:',
      '      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_component, __meta_kubernetes_pod_container_port_name]',
      '        regex: registry;debug',
      '        action: keep',
      '      - source_labels: [__meta_kubernetes_namespace]',
      '        target_label: namespace',
      '      - source_labels: [__meta_kubernetes_pod_name]',
      '        target_label: pod',
      '',
    ].join('\n');
    await writeFile(join(dir, 'prometheus.yml'), config);
    const prometheus = live().start('prometheus', join(TOOLS_BIN, 'prometheus'), [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=${live().nodeIp}:9090`,
      '--log.level=warn',
    ]);
    const forward = await live().forward(live().nodeIp, 9090);
    try {
      const query = async (promql: string): Promise<Array<{ metric: Record<string, string> }>> => {
        const res = await fetch(`http://127.0.0.1:${forward.port}/api/v1/query?query=${encodeURIComponent(promql)}`);
        const body = (await res.json()) as { status: string; error?: string; data?: { result: [] } };
        assert.equal(body.status, 'success', `${promql}: ${body.error ?? ''}`);
        return body.data?.result ?? [];
      };
      let up: Array<{ metric: Record<string, string> }> = [];
      for (let i = 0; i < 60 && up.length === 0; i++) {
        if (i > 0) await sleep(1000);
        up = await query('up{job="berth-registries"} == 1').catch(() => []);
      }
      assert.equal(up.length, 1, `one registry pod up: ${JSON.stringify(up)}\n${prometheus.output()}`);
      assert.equal(up[0]?.metric['namespace'], EXAMPLES);
      const clusterIp = await kubectl([
        'get',
        'service',
        'registry',
        '-n',
        EXAMPLES,
        '-o',
        'jsonpath={.spec.clusterIP}',
      ]);
      for (let i = 0; i < 5; i++) {
        const r = await live().exec('/bin/busybox', ['wget', '-q', '-O', '/dev/null', `http://${clusterIp}:5000/v2/`]);
        assert.equal(r.code, 0, r.stderr);
      }
      await sleep(3000);
      const dashboard = JSON.parse(
        await readFile(join(REPO_ROOT, 'charts', 'berth', 'dashboards', 'berth-registry.json'), 'utf8'),
      ) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
      const busy = ['Requests per second', 'HTTP requests by route and code', 'Process memory and CPU'];
      for (const panel of dashboard.panels) {
        for (const target of panel.targets) {
          const expr = target.expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', 'berth-registries');
          const result = await query(expr);
          if (busy.includes(panel.title)) assert.ok(result.length > 0, `panel "${panel.title}" has data: ${expr}`);
        }
      }

      // The hit-ratio panel against a known workload: GETs of one layer. The pod is new (the previous test replaced
      // it), so its counters started at zero, and Prometheus has scraped it since before its first lookup.
      const podIp = await kubectl([
        'get',
        'pods',
        '-n',
        EXAMPLES,
        '-l',
        SELECTOR,
        '-o',
        'jsonpath={.items[0].status.podIP}',
      ]);
      const metrics = await live().forward(podIp, 5001);
      try {
        const counts = async (): Promise<{ hits: number; lookups: number }> => {
          const samples = await scrape(`http://127.0.0.1:${metrics.port}`);
          const tiers = ['memory', 'redis'].map((tier) =>
            sumOf(samples, 'registry_storage_cache_requests_total', { tier }),
          );
          return { hits: sumOf(samples, 'registry_storage_cache_hits_total'), lookups: Math.max(...tiers) };
        };
        const manifest = await live().exec('/bin/busybox', [
          'wget',
          '-q',
          '-O',
          '-',
          '--header',
          `Accept: ${OCI_MANIFEST}`,
          `http://${clusterIp}:5000/v2/app/sleeper/manifests/1`,
        ]);
        assert.equal(manifest.code, 0, manifest.stderr);
        const layer = (JSON.parse(manifest.stdout) as { layers: Array<{ digest: string }> }).layers[0]?.digest ?? '';
        const before = await counts();
        const GETS = 20;
        for (let i = 0; i < GETS; i++) {
          const r = await live().exec('/bin/busybox', [
            'wget',
            '-q',
            '-O',
            '/dev/null',
            `http://${clusterIp}:5000/v2/app/sleeper/blobs/${layer}`,
          ]);
          assert.equal(r.code, 0, r.stderr);
        }
        const after = await counts();
        // Every GET looks its descriptor up, and all but the first find it.
        const moved = JSON.stringify({ before, after });
        assert.ok(after.lookups - before.lookups >= GETS, `a lookup per blob GET: ${moved}`);
        assert.ok(after.hits - before.hits >= GETS - 1, `at most the first GET misses: ${moved}`);
        let seen: { hits?: number; lookups?: number } = {};
        for (let i = 0; i < 30 && (seen.hits !== after.hits || seen.lookups !== after.lookups); i++) {
          if (i > 0) await sleep(1000);
          const hits = (await query('sum(registry_storage_cache_hits_total{job="berth-registries"})'))[0];
          const lookups = (
            await query('max(sum by (tier) (registry_storage_cache_requests_total{job="berth-registries"}))')
          )[0];
          seen = {
            hits: Number((hits as { value?: [number, string] } | undefined)?.value?.[1]),
            lookups: Number((lookups as { value?: [number, string] } | undefined)?.value?.[1]),
          };
        }
        assert.deepEqual(seen, after, 'Prometheus scraped the workload');
        const panel = dashboard.panels.find((p) => p.title === 'Cache hit ratio (all tiers)');
        assert.ok(panel?.targets[0], 'the dashboard has a hit-ratio panel');
        const expr = panel.targets[0].expr.replaceAll('$__rate_interval', '10m').replaceAll('$job', 'berth-registries');
        const shown = Number((((await query(expr))[0] as { value?: [number, string] } | undefined)?.value ?? [])[1]);
        const expected = after.hits / after.lookups;
        assert.ok(
          Math.abs(shown - expected) < 1e-9,
          `the panel shows ${shown}; the pod counted ${after.hits} hits ÷ ${after.lookups} lookups = ${expected}`,
        );
        timings.push(`hit ratio ${shown.toFixed(4)} (${after.hits}/${after.lookups})`);
      } finally {
        await metrics.close();
      }
    } finally {
      await forward.close();
      await prometheus.stop();
    }
  });

  /** An example as the user adapts it: the YAML of examples/NAME, with `edit` applied to its Registry's spec. */
  const adapted = async (name: string, edit: (spec: ExampleSpec) => void): Promise<string> => {
    const doc = parse(await readFile(join(REPO_ROOT, 'examples', name), 'utf8')) as { spec: ExampleSpec };
    edit(doc.spec);
    return stringify(doc);
  };

  const waitReady = async (name: string, seconds = 300): Promise<void> => {
    const waited = await live().cluster.kubectl([
      'wait',
      '--for=condition=Ready',
      `registry/${name}`,
      '-n',
      EXAMPLES,
      `--timeout=${seconds}s`,
    ]);
    assert.equal(
      waited.code,
      0,
      `${waited.stderr}\n${await kubectl(['describe', 'registry', name, '-n', EXAMPLES])}\n${await kubectl(['get', 'pods,pvc,hpa', '-n', EXAMPLES, '-o', 'wide'])}`,
    );
  };

  /** Waits until the Deployment of Registry `name` has exactly `n` pods, all updated and Ready. */
  const waitReplicas = async (name: string, n: number): Promise<void> => {
    let last = '';
    for (let i = 0; i < 240; i++) {
      if (i > 0) await sleep(1000);
      const r = await live().cluster.kubectl([
        'get',
        'deployment',
        name,
        '-n',
        EXAMPLES,
        '-o',
        'jsonpath={.spec.replicas}/{.status.replicas}/{.status.updatedReplicas}/{.status.readyReplicas}',
      ]);
      last = r.code === 0 ? r.stdout : r.stderr.trim();
      if (last === `${n}/${n}/${n}/${n}`) return;
    }
    assert.fail(
      `${name}: spec/status/updated/ready replicas ${last}, not ${n}\n${await kubectl(['describe', 'registry', name, '-n', EXAMPLES])}\n${await kubectl(['get', 'pods,pvc,hpa', '-n', EXAMPLES, '-o', 'wide'])}`,
    );
  };

  it('runs examples/redis-managed.yaml with a Redis image built the same local way, set through the spec', async function () {
    // Debian's redis-server and its libraries as an image, pushed to the registry the nodes pull from.
    const layout = await buildRootfsLayout(
      work,
      'redis',
      'bookworm',
      await debianProgramEntries('/usr/bin/redis-server'),
      '/usr/bin/redis-server',
    );
    assert.ok(upstream);
    await skopeo(ctx, [
      'copy',
      '--dest-tls-verify=false',
      `oci:${layout}:bookworm`,
      `docker://127.0.0.1:${upstream.port}/${REDIS_IMAGE}`,
    ]);
    const manifest = await adapted('redis-managed.yaml', (spec) => {
      spec.cache.redis.image = `${upstreamInNode}/${REDIS_IMAGE}`;
    });
    await kubectl(['apply', '-f', '-'], manifest);
    await waitReady('registry-managed');
    const redis = await kubectl([
      'get',
      'pods',
      '-n',
      EXAMPLES,
      '-l',
      'app.kubernetes.io/instance=registry-managed,app.kubernetes.io/component=redis',
      '-o',
      READY_JSONPATH,
    ]);
    assert.equal(readyPods(redis).length, 1, redis);
    assert.equal(
      await kubectl([
        'get',
        'deployment',
        'registry-managed-redis',
        '-n',
        EXAMPLES,
        '-o',
        'jsonpath={.spec.template.spec.containers[0].image}',
      ]),
      `${upstreamInNode}/${REDIS_IMAGE}`,
    );
    // The registry uses it: a pushed blob's descriptor is looked up in Redis.
    const clusterIp = await kubectl([
      'get',
      'service',
      'registry-managed',
      '-n',
      EXAMPLES,
      '-o',
      'jsonpath={.spec.clusterIP}',
    ]);
    const podIp = await kubectl([
      'get',
      'pods',
      '-n',
      EXAMPLES,
      '-l',
      'app.kubernetes.io/instance=registry-managed,app.kubernetes.io/component=registry',
      '-o',
      'jsonpath={.items[0].status.podIP}',
    ]);
    const metrics = await live().forward(podIp, 5001);
    const redisCounts = async (): Promise<{ lookups: number; errors: number }> => {
      const samples = await scrape(`http://127.0.0.1:${metrics.port}`);
      return {
        lookups: sumOf(samples, 'registry_storage_cache_requests_total', { tier: 'redis' }),
        errors: sumOf(samples, 'registry_storage_cache_errors_total'),
      };
    };
    // The registry pod may start before its Redis: it serves from storage meanwhile and reconnects. Its readiness
    // report says when the cache is connected; errors before then are those tries.
    let cacheCheck = '';
    for (let i = 0; i < 60 && cacheCheck !== 'ok'; i++) {
      if (i > 0) await sleep(1000);
      const ready = await fetch(`http://127.0.0.1:${metrics.port}/readyz`).catch(() => undefined);
      cacheCheck =
        ready === undefined
          ? 'no answer'
          : (((await ready.json()) as { checks?: { cache?: string } }).checks?.cache ?? '');
    }
    assert.equal(cacheCheck, 'ok', 'the registry connects to its managed Redis');
    const before = await redisCounts();
    const forward = await live().forward(clusterIp, 5000);
    try {
      const small = await buildRootfsLayout(work, 'tiny', '1', [{ path: 'etc/hostname', source: '/etc/hostname' }]);
      await skopeo(ctx, [
        'copy',
        '--dest-tls-verify=false',
        `oci:${small}:1`,
        `docker://127.0.0.1:${forward.port}/app/tiny:1`,
      ]);
      const back = await skopeo(ctx, [
        'inspect',
        '--tls-verify=false',
        `docker://127.0.0.1:${forward.port}/app/tiny:1`,
      ]);
      assert.match(back.stdout, /"Layers"/);
      const after = await redisCounts();
      assert.ok(
        after.lookups > before.lookups,
        `the push looked descriptors up in Redis: ${JSON.stringify({ before, after })}`,
      );
      const logs = await kubectl([
        'logs',
        '-n',
        EXAMPLES,
        '-l',
        'app.kubernetes.io/instance=registry-managed,app.kubernetes.io/component=registry',
        '--tail=40',
      ]);
      assert.equal(after.errors, before.errors, `no Redis errors during the push:\n${logs}`);
    } finally {
      await forward.close();
      await metrics.close();
    }
    // Its CPU goes back to the node for the examples that follow.
    await kubectl(['delete', 'registry', 'registry-managed', '-n', EXAMPLES, '--wait=true']);
  });

  it('scales examples/autoscaling.yaml with its HPA on a ReadWriteMany volume, and follows kubectl scale', async function () {
    const manifest = await adapted('autoscaling.yaml', (spec) => {
      spec.storage.filesystem.storageClassName = SHARED_STORAGE_CLASS;
      spec.cache.redis.image = `${upstreamInNode}/${REDIS_IMAGE}`;
    });
    await kubectl(['apply', '-f', '-'], manifest);
    // The Deployment starts at one pod; the controller-manager's HPA controller raises it to minReplicas (2).
    await waitReplicas('registry-hpa', 2);
    await waitReady('registry-hpa');
    assert.equal(
      await kubectl([
        'get',
        'hpa',
        'registry-hpa',
        '-n',
        EXAMPLES,
        '-o',
        'jsonpath={.spec.minReplicas}/{.spec.maxReplicas}',
      ]),
      '2/10',
    );
    assert.equal(
      await kubectl([
        'get',
        'pvc',
        '-n',
        EXAMPLES,
        '-l',
        'app.kubernetes.io/instance=registry-hpa',
        '-o',
        'jsonpath={.items[0].status.phase}/{.items[0].spec.accessModes[0]}',
      ]),
      'Bound/ReadWriteMany',
    );

    // A ReadWriteOnce Registry refuses a second replica, with the rule's message.
    const refused = await live().cluster.kubectl(['scale', 'registry', 'registry', '-n', EXAMPLES, '--replicas=2']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /a ReadWriteOnce or emptyDir volume allows at most one replica/);

    // Without the HPA, the scale subresource drives the Deployment.
    await kubectl([
      'patch',
      'registry',
      'registry-hpa',
      '-n',
      EXAMPLES,
      '--type=merge',
      '-p',
      '{"spec":{"autoscaling":{"enabled":false},"replicas":2}}',
    ]);
    await kubectl(['scale', 'registry', 'registry-hpa', '-n', EXAMPLES, '--replicas=3']);
    await waitReplicas('registry-hpa', 3);
    assert.equal(
      await kubectl(['get', 'registry', 'registry-hpa', '-n', EXAMPLES, '-o', 'jsonpath={.status.replicas}']),
      '3',
    );
    await kubectl(['scale', 'registry', 'registry-hpa', '-n', EXAMPLES, '--replicas=2']);
    await waitReplicas('registry-hpa', 2);
    let hpa = 'x';
    for (let i = 0; i < 60 && hpa !== ''; i++) {
      if (i > 0) await sleep(1000);
      hpa = (await kubectl(['get', 'hpa', '-n', EXAMPLES, '-o', 'name'])).trim();
    }
    assert.equal(hpa, '', 'the HPA goes when autoscaling is disabled');
  });

  it('rolls a new image with helm upgrade under a loop of pulls, failing none; Berth serves its own image', async function () {
    const t = Date.now();
    const clusterIp = await kubectl([
      'get',
      'service',
      'registry-hpa',
      '-n',
      EXAMPLES,
      '-o',
      'jsonpath={.spec.clusterIP}',
    ]);
    const hosted = `${clusterIp}:5000`;
    await live().allowHttpRegistry(hosted);
    const forward = await live().forward(clusterIp, 5000);
    let layer = '';
    try {
      // Berth's image into the Registry it will run: the nodes pull the new pods' image from the old pods.
      await skopeo(ctx, [
        'copy',
        '--dest-tls-verify=false',
        `oci-archive:${built.archive}`,
        `docker://127.0.0.1:${forward.port}/berth/berth:${built.tag}`,
      ]);
      const sleeper = await buildRootfsLayout(work, 'pulled', '1', [{ path: 'bin/busybox', source: '/bin/busybox' }]);
      await skopeo(ctx, [
        'copy',
        '--dest-tls-verify=false',
        `oci:${sleeper}:1`,
        `docker://127.0.0.1:${forward.port}/app/pulled:1`,
      ]);
      const m = await fetch(`http://127.0.0.1:${forward.port}/v2/app/pulled/manifests/1`, {
        headers: { accept: OCI_MANIFEST },
      });
      layer = ((await m.json()) as { layers: Array<{ digest: string }> }).layers[0]?.digest ?? '';
    } finally {
      await forward.close();
    }
    // Pulls from inside the node, through the Service, one after another: a manifest, then its layer.
    const stop = join(live().dir, 'stop-pulls');
    const loop = [
      'ok=0; failed=0; n=0; get="/bin/busybox timeout 10 /bin/busybox wget -q -O /dev/null"',
      `while [ ! -e ${stop} ] && [ $n -lt 100000 ]; do`,
      '  n=$((n+1))',
      // (Debian's static busybox wget crashes with its own -T, hence the timeout applet.)
      `  if $get --header 'Accept: ${OCI_MANIFEST}' http://${hosted}/v2/app/pulled/manifests/1 && $get http://${hosted}/v2/app/pulled/blobs/${layer}; then ok=$((ok+1)); else failed=$((failed+1)); fi`,
      'done',
      'echo "ok=$ok failed=$failed"',
    ].join('\n');
    const pulls = live().exec('/bin/busybox', ['sh', '-c', loop], 900_000);
    const oldPods = readyPods(
      await kubectl([
        'get',
        'pods',
        '-n',
        EXAMPLES,
        '-l',
        'app.kubernetes.io/instance=registry-hpa,app.kubernetes.io/component=registry',
        '-o',
        READY_JSONPATH,
      ]),
    );
    const image = `${hosted}/berth/berth:${built.tag}`;
    try {
      await helm([
        'upgrade',
        'berth',
        join(REPO_ROOT, 'charts', 'berth'),
        '-n',
        SYSTEM,
        '--reuse-values',
        '--set',
        `image.repository=${hosted}/berth/berth`,
        '--wait',
        '--timeout',
        '5m',
      ]);
      // The operator rolls every unpinned Registry to the chart's new image; status says which each runs.
      let status = '';
      for (let i = 0; i < 180 && status !== image; i++) {
        if (i > 0) await sleep(1000);
        status = await kubectl(['get', 'registry', 'registry-hpa', '-n', EXAMPLES, '-o', 'jsonpath={.status.image}']);
      }
      assert.equal(status, image);
      await waitReplicas('registry-hpa', 2);
      let pods: string[] = [];
      for (let i = 0; i < 120; i++) {
        if (i > 0) await sleep(1000);
        pods = (
          await kubectl([
            'get',
            'pods',
            '-n',
            EXAMPLES,
            '-l',
            'app.kubernetes.io/instance=registry-hpa,app.kubernetes.io/component=registry',
            '-o',
            'jsonpath={.items[*].metadata.name}',
          ])
        )
          .trim()
          .split(/\s+/);
        if (pods.length === 2 && !pods.some((p) => oldPods.includes(p))) break;
      }
      assert.ok(
        pods.length === 2 && !pods.some((p) => oldPods.includes(p)),
        `new pods ${pods.join(' ')} replace ${oldPods.join(' ')}`,
      );
      await sleep(3000);
    } finally {
      await writeFile(stop, '');
    }
    const r = await pulls;
    const counted = /ok=(\d+) failed=(\d+)/.exec(r.stdout);
    assert.ok(counted, `the pull loop: ${r.stdout} ${r.stderr}`);
    const [ok, failed] = [Number(counted[1]), Number(counted[2])];
    timings.push(`helm upgrade rollout ${Date.now() - t} ms: ${ok} pulls, ${failed} failed`);
    assert.equal(failed, 0, `failed pulls during the rollout (${ok} succeeded): ${r.stderr.slice(-2000)}`);
    assert.ok(ok > 50, `the loop pulled throughout (${ok})`);
    for (const name of ['registry', 'registry-hpa']) {
      assert.equal(await kubectl(['get', 'registry', name, '-n', EXAMPLES, '-o', 'jsonpath={.status.image}']), image);
    }
    const operators = await kubectl([
      'get',
      'pods',
      '-n',
      SYSTEM,
      '-l',
      'app.kubernetes.io/component=operator',
      '-o',
      'jsonpath={.items[*].spec.containers[0].image}',
    ]);
    for (const running of operators.trim().split(/\s+/)) assert.equal(running, image);
  });

  it('helm uninstall removes the operator; a deleted Registry’s objects go with the garbage collector, its PVC stays', async function () {
    await helm(['uninstall', 'berth', '-n', SYSTEM, '--wait', '--timeout', '3m']);
    let operators = 'x';
    for (let i = 0; i < 120 && operators !== ''; i++) {
      if (i > 0) await sleep(1000);
      operators = (
        await kubectl(['get', 'pods', '-n', SYSTEM, '-l', 'app.kubernetes.io/component=operator', '-o', 'name'])
      ).trim();
    }
    assert.equal(operators, '', 'the operator pods go');
    // The CRD is not the release's to delete (helm keeps crds/), so the Registry is still there, now unmanaged.
    await kubectl(['delete', 'registry', 'registry', '-n', EXAMPLES, '--wait=true']);
    let left = 'x';
    for (let i = 0; i < 120 && left !== ''; i++) {
      if (i > 0) await sleep(1000);
      left = (
        await kubectl([
          'get',
          'deployments,services,configmaps',
          '-n',
          EXAMPLES,
          '-l',
          'app.kubernetes.io/instance=registry',
          '-o',
          'name',
        ])
      ).trim();
    }
    assert.equal(left, '', 'the controller-manager deletes what the Registry owned');
    assert.equal(await kubectl(['get', 'pvc', '-n', EXAMPLES, '-o', 'jsonpath={.items[0].status.phase}']), 'Bound');
  });
});
