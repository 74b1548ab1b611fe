// The node harness itself: a pod from a locally built image runs, a ClusterIP Service reaches it through kube-proxy
// (by address and by DNS name), a PVC binds through the local-path provisioner, containerd pulls over HTTP from a
// registry inside the node's network, and stop() leaves no processes, mounts, cgroups or files behind.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import {
  BUSYBOX_IMAGE,
  buildRootfsLayout,
  STORAGE_CLASS,
  startKubeNode,
  type KubeNode,
  kubectlOk,
} from '../helpers/node.js';
import { sleep } from '../helpers/kube.js';
import { removeDir, tempDir } from '../helpers/harness.js';
import { skopeo, skopeoContext } from '../helpers/images.js';

const WEB = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: web-data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 16Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
    - name: web
      image: ${BUSYBOX_IMAGE}
      imagePullPolicy: Never
      command: [sh, -c, 'echo "hello from $(cat /proc/sys/kernel/hostname)" > /data/index.html && exec httpd -f -p 8080 -h /data']
      ports:
        - containerPort: 8080
      volumeMounts:
        - name: data
          mountPath: /data
  volumes:
    - name: data
      persistentVolumeClaim:
        claimName: web-data
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
    - port: 80
      targetPort: 8080
`;

/** GET over plain HTTP on loopback: the status and body, or the error message. */
function get(port: number, path: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(`${res.statusCode} ${body.trim()}`));
      res.on('error', (err) => resolve(`error: ${err.message}`));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => resolve(`error: ${err.message}`));
    req.end();
  });
}

// Also tagged @integration: `npm run test:unit` (`--grep @integration --invert`) must not start a node.
describe('a real Kubernetes node started by the harness @e2e @integration', function () {
  this.timeout(900_000);
  let node: KubeNode | undefined;
  let startedMs = 0;

  before(async function () {
    const started = Date.now();
    node = await startKubeNode();
    startedMs = Date.now() - started;
    console.log(`      node Ready in ${startedMs} ms`);
  });

  after(async function () {
    await node?.stop();
  });

  const live = (): KubeNode => {
    assert.ok(node, 'the node did not start');
    return node;
  };

  const kubectl = (args: readonly string[], input?: string): Promise<string> => kubectlOk(node, args, input);

  it('registers a Ready node with the default local-path StorageClass', async function () {
    assert.equal(
      await kubectl(['get', 'node', live().nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']),
      'True',
    );
    assert.equal(
      await kubectl(['get', 'node', live().nodeName, '-o', 'jsonpath={.status.nodeInfo.kubeletVersion}']),
      'v1.36.3',
    );
    const classes = await kubectl(['get', 'storageclass', STORAGE_CLASS, '-o', 'jsonpath={.metadata.annotations}']);
    assert.match(classes, /is-default-class":"true"/);
  });

  it('runs a pod from a local image, binds its PVC and serves it through a ClusterIP Service', async function () {
    await kubectl(['apply', '-f', '-'], WEB);
    const ready = await live().cluster.kubectl(['wait', '--for=condition=Ready', 'pod/web', '--timeout=240s']);
    assert.equal(ready.code, 0, `${ready.stderr}\n${await kubectl(['describe', 'pod', 'web'])}\n${live().output()}`);
    assert.equal(await kubectl(['get', 'pod', 'web', '-o', 'jsonpath={.status.phase}']), 'Running');
    assert.equal(await kubectl(['get', 'pvc', 'web-data', '-o', 'jsonpath={.status.phase}']), 'Bound');
    assert.equal(await kubectl(['get', 'pvc', 'web-data', '-o', 'jsonpath={.spec.storageClassName}']), STORAGE_CLASS);

    const clusterIp = await kubectl(['get', 'service', 'web', '-o', 'jsonpath={.spec.clusterIP}']);
    assert.match(clusterIp, /^198\.19\.\d+\.\d+$/);
    // kube-proxy programs the Service shortly after the endpoints appear: retry for a while.
    const forward = await live().forward(clusterIp, 80);
    let answer = '';
    for (let i = 0; i < 60 && !answer.startsWith('200 '); i++) {
      if (i > 0) await sleep(1000);
      answer = await get(forward.port, '/index.html');
    }
    assert.equal(answer, '200 hello from web', live().output());
    await forward.close();

    // From inside the node's network too, with the node's own busybox.
    const inside = await live().exec('/bin/busybox', ['wget', '-q', '-O', '-', `http://${clusterIp}/index.html`]);
    assert.equal(inside.code, 0, inside.stderr);
    assert.equal(inside.stdout.trim(), 'hello from web');

    // A pod reaches the Service by its DNS name (CoreDNS), even when the Service leads back to itself (hairpin).
    const byName = await live().cluster.kubectl([
      'exec',
      'web',
      '--',
      'wget',
      '-q',
      '-O',
      '-',
      'http://web.default.svc.cluster.local/index.html',
    ]);
    assert.equal(byName.code, 0, `${byName.stderr}\n${live().output()}`);
    assert.equal(byName.stdout.trim(), 'hello from web');

    // The API server reaches the kubelet (logs) through its egress into the node's network.
    const logs = await live().cluster.kubectl(['logs', 'web']);
    assert.equal(logs.code, 0, logs.stderr);
  });

  it("pulls a pod's image over HTTP from a registry inside the node's network", async function () {
    // Debian's Distribution registry as a process on the node's address; skopeo pushes through a loopback forward.
    const work = await tempDir('berth-node-test-');
    try {
      const registryAddress = `${live().nodeIp}:5000`;
      const config = join(work, 'registry.yml');
      await writeFile(
        config,
        `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${join(work, 'data')}\nhttp:\n  addr: ${registryAddress}\n`,
      );
      const registry = live().start('docker-registry', '/usr/bin/docker-registry', ['serve', config]);
      const forward = await live().forward(live().nodeIp, 5000);
      const layout = await buildRootfsLayout(work, 'sleeper', '1', [{ path: 'bin/busybox', source: '/bin/busybox' }]);
      const ctx = await skopeoContext(work);
      let pushed = '';
      for (let i = 0; i < 30 && pushed !== 'ok'; i++) {
        if (i > 0) await sleep(500);
        pushed = await skopeo(ctx, [
          'copy',
          '--dest-tls-verify=false',
          `oci:${layout}:1`,
          `docker://127.0.0.1:${forward.port}/test/sleeper:1`,
        ]).then(
          () => 'ok',
          (err: unknown) => (err as Error).message,
        );
      }
      assert.equal(pushed, 'ok', registry.output());
      await forward.close();

      await live().allowHttpRegistry(registryAddress);
      const image = `${registryAddress}/test/sleeper:1`;
      await kubectl([
        'run',
        'sleeper',
        `--image=${image}`,
        '--image-pull-policy=Always',
        '--command',
        '--',
        '/bin/busybox',
        'sleep',
        '3600',
      ]);
      const ready = await live().cluster.kubectl(['wait', '--for=condition=Ready', 'pod/sleeper', '--timeout=120s']);
      assert.equal(ready.code, 0, `${ready.stderr}\n${await kubectl(['describe', 'pod', 'sleeper'])}`);
      assert.equal(
        await kubectl(['get', 'pod', 'sleeper', '-o', 'jsonpath={.status.containerStatuses[0].image}']),
        image,
      );
      await registry.stop();
    } finally {
      await removeDir(work);
    }
  });

  it('stops without leaving processes, mounts, cgroups or files behind', async function () {
    const running = live();
    await running.stop();
    assert.deepEqual(await running.leftovers(), { processes: [], mounts: [], cgroups: [], paths: [] });
    console.log(`      node start took ${startedMs} ms`);
  });
});
