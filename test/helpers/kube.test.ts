// The kube helper itself: a real API server that answers the admin, refuses an unbound user, and keeps its data in
// etcd across an API-server restart.
import assert from 'node:assert/strict';
import { startKubeCluster, type KubeCluster } from './kube.js';

describe('kube test cluster (etcd + kube-apiserver) @integration', function () {
  this.timeout(180_000);
  let cluster: KubeCluster | undefined;

  before(async function () {
    this.timeout(180_000);
    cluster = await startKubeCluster();
  });

  after(async function () {
    await cluster?.dispose();
  });

  const kube = (): KubeCluster => {
    assert.ok(cluster, 'the cluster did not start');
    return cluster;
  };

  it('serves the default namespace to the admin over loopback', async function () {
    assert.match(kube().server, /^https:\/\/127\.0\.0\.1:\d+$/);
    const result = await kube().kubectl(['get', 'namespace', 'default', '-o', 'jsonpath={.metadata.name}']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'default');
  });

  it('refuses a user without RBAC bindings, and lets it in once bound to a role', async function () {
    const user = 'system:serviceaccount:berth:operator';
    const config = await kube().userKubeconfig(user, ['system:serviceaccounts', 'berth-test']);
    const who = await kube().kubectl(['--kubeconfig', config, 'auth', 'whoami', '-o', 'jsonpath={.status.userInfo}']);
    assert.equal(who.code, 0, who.stderr);
    const info = JSON.parse(who.stdout) as { username?: string; groups?: string[] };
    assert.equal(info.username, user);
    assert.ok(info.groups?.includes('system:serviceaccounts') && info.groups.includes('berth-test'), who.stdout);

    const denied = await kube().kubectl(['--kubeconfig', config, 'get', 'secrets', '-A']);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /Forbidden/);

    const bind = await kube().kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'ClusterRole',
            metadata: { name: 'berth-test-configmap-reader' },
            rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }],
          },
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'ClusterRoleBinding',
            metadata: { name: 'berth-test-configmap-reader' },
            roleRef: {
              apiGroup: 'rbac.authorization.k8s.io',
              kind: 'ClusterRole',
              name: 'berth-test-configmap-reader',
            },
            subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
          },
        ],
      }),
    );
    assert.equal(bind.code, 0, bind.stderr);
    const allowed = await kube().kubectl(['--kubeconfig', config, 'get', 'configmaps', '-A']);
    assert.equal(allowed.code, 0, allowed.stderr);
    const stillDenied = await kube().kubectl(['--kubeconfig', config, 'get', 'secrets', '-A']);
    assert.match(stillDenied.stderr, /Forbidden/);
  });

  it('keeps objects across an API-server restart on the same port', async function () {
    const create = await kube().kubectl(
      ['create', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'survives-restart', namespace: 'default' },
        data: { answer: '42' },
      }),
    );
    assert.equal(create.code, 0, create.stderr);
    const server = kube().server;

    await kube().stopApiServer();
    const down = await kube().kubectl(['get', 'configmap', 'survives-restart', '--request-timeout=5s']);
    assert.notEqual(down.code, 0, 'the API server still answers after stopApiServer()');

    await kube().startApiServer();
    assert.equal(kube().server, server);
    const read = await kube().kubectl(['get', 'configmap', 'survives-restart', '-o', 'jsonpath={.data.answer}']);
    assert.equal(read.code, 0, `${read.stderr}\n${kube().output().slice(-4000)}`);
    assert.equal(read.stdout, '42');
  });
});
