// The user's path on a real node: `helm install` of the chart with the image built from the Dockerfile, a Registry
// from examples/ reaching Ready through real pod readiness, a push through its Service, and the node's containerd
// pulling a pod's image from Berth.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT, TOOLS_BIN, removeDir, tempDir } from '../helpers/harness.js';
import { runChecked, skopeo, skopeoContext } from '../helpers/images.js';
import { sleep } from '../helpers/kube.js';
import { buildRootfsLayout, startKubeNode, type KubeNode, kubectlOk } from '../helpers/node.js';

const IMAGE_INFO = join(REPO_ROOT, '.tools', 'images', 'berth.json');
const SYSTEM = 'berth-system';
const EXAMPLES = 'berth-examples';

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
  const timings: string[] = [];

  before(async function () {
    built = JSON.parse(await readFile(IMAGE_INFO, 'utf8')) as BuiltImage;
    work = await tempDir('berth-e2e-');
    let t = Date.now();
    node = await startKubeNode();
    timings.push(`node Ready ${Date.now() - t} ms`);
    t = Date.now();
    // The image as the cluster would pull it from a registry: here imported into the node's containerd.
    const layout = join(work, 'berth-image');
    await runChecked('mkdir', ['-p', layout], { timeoutMs: 10_000 });
    await runChecked('tar', ['-xf', built.archive, '-C', layout], { timeoutMs: 120_000 });
    const repository = built.image.slice(0, built.image.lastIndexOf(':'));
    await node.importLayout(layout, repository, built.tag);
    timings.push(`image imported ${Date.now() - t} ms`);
  });

  after(async function () {
    console.log(`      ${timings.join('; ')}`);
    await node?.stop();
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

  it('installs the chart: two operator pods Ready, one holding the Lease, the CRD from the chart', async function () {
    const t = Date.now();
    const repository = built.image.slice(0, built.image.lastIndexOf(':'));
    await helm([
      'install',
      'berth',
      join(REPO_ROOT, 'charts', 'berth'),
      '-n',
      SYSTEM,
      '--create-namespace',
      '--set',
      `image.repository=${repository}`,
      '--set',
      `image.tag=${built.tag}`,
      '--set',
      'image.pullPolicy=Never',
      '--wait',
      '--timeout',
      '5m',
    ]);
    timings.push(`helm install ${Date.now() - t} ms`);
    const ready = await kubectl([
      'get',
      'pods',
      '-n',
      SYSTEM,
      '-l',
      'app.kubernetes.io/component=operator',
      '-o',
      'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
    ]);
    const pods = ready.trim().split('\n').filter(Boolean);
    assert.equal(pods.length, 2, ready);
    for (const p of pods) assert.match(p, /=True$/, ready);
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
      pods.some((p) => holder.startsWith(p.split('=')[0] ?? '?')),
      `the Lease holder ${holder} is one of ${pods.join(', ')}`,
    );
    const crd = await kubectl(['get', 'crd', 'registries.berth.dev', '-o', 'jsonpath={.metadata.name}']);
    assert.equal(crd, 'registries.berth.dev');
  });

  it('brings examples/filesystem-pvc.yaml to Ready through real pod readiness', async function () {
    const t = Date.now();
    await kubectl(['create', 'namespace', EXAMPLES]);
    await kubectl(['apply', '-f', join(REPO_ROOT, 'examples', 'filesystem-pvc.yaml')]);
    const waited = await live().cluster.kubectl([
      'wait',
      '--for=condition=Ready',
      'registry/registry',
      '-n',
      EXAMPLES,
      '--timeout=300s',
    ]);
    assert.equal(
      waited.code,
      0,
      `${waited.stderr}\n${await kubectl(['describe', 'registry', 'registry', '-n', EXAMPLES])}\n${await kubectl([
        'get',
        'pods,pvc',
        '-n',
        EXAMPLES,
        '-o',
        'wide',
      ])}`,
    );
    timings.push(`Registry Ready ${Date.now() - t} ms`);
    const table = await kubectl(['get', 'registries', '-n', EXAMPLES, '-o', 'wide']);
    const [header, row] = table.trim().split('\n');
    assert.match(header ?? '', /NAME\s+READY\s+STORAGE\s+CACHE\s+ENDPOINT\s+IMAGE\s+AGE/);
    assert.match(row ?? '', /^registry\s+True\s+/);
    assert.ok(row?.includes(built.image), row);
    assert.equal(await kubectl(['get', 'pvc', '-n', EXAMPLES, '-o', 'jsonpath={.items[0].status.phase}']), 'Bound');
  });

  it('takes a push through its Service, and the node’s containerd pulls a pod’s image from it', async function () {
    const clusterIp = await kubectl(['get', 'service', 'registry', '-n', EXAMPLES, '-o', 'jsonpath={.spec.clusterIP}']);
    const forward = await live().forward(clusterIp, 5000);
    try {
      const layout = await buildRootfsLayout(work, 'sleeper', '1', [{ path: 'bin/busybox', source: '/bin/busybox' }]);
      const ctx = await skopeoContext(work);
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
    } finally {
      await forward.close();
      await prometheus.stop();
    }
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
