// The Helm chart: it lints clean under its values schema, renders the operator as the operator runs, rejects bad
// values, and installs the same CRD as crds/.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT, TOOLS_BIN } from '../helpers/harness.js';
import { runCommand } from '../helpers/images.js';

const CHART = join(REPO_ROOT, 'charts', 'berth');
const HELM = join(TOOLS_BIN, 'helm');

type Json = Record<string, unknown>;

async function helm(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runCommand(HELM, args, { timeoutMs: 60_000, env: { PATH: process.env['PATH'] ?? '', HOME: '/tmp' } });
  return { code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function render(extra: readonly string[] = []): Promise<Json[]> {
  const r = await helm(['template', 'berth', CHART, '-n', 'berth-system', ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Json | null)
    .filter((d): d is Json => d !== null);
}

describe('charts/berth @integration', function () {
  this.timeout(60_000);

  it('passes helm lint --strict', async () => {
    const r = await helm(['lint', CHART, '--strict']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('renders the operator Deployment, its RBAC and the Grafana dashboard', async () => {
    const docs = await render();
    const kinds = docs.map((d) => `${String(d['kind'])}`).sort();
    for (const k of [
      'ClusterRole',
      'ClusterRoleBinding',
      'ConfigMap',
      'Deployment',
      'Role',
      'RoleBinding',
      'Service',
      'ServiceAccount',
    ]) {
      assert.ok(kinds.includes(k), `no ${k} in ${kinds.join(', ')}`);
    }
    const deployment = docs.find((d) => d['kind'] === 'Deployment') as Json;
    const spec = (((deployment['spec'] as Json)['template'] as Json)['spec'] as Json)['containers'] as Json[];
    assert.deepEqual(spec[0]?.['args'], ['operator', '--health-addr', ':8081']);
    const dashboard = docs.find((d) => d['kind'] === 'ConfigMap') as Json;
    const data = dashboard['data'] as Record<string, string>;
    const shipped = await readFile(join(CHART, 'dashboards', 'berth-registry.json'), 'utf8');
    assert.ok(
      Object.values(data).some((v) => v.trim() === shipped.trim()),
      'the dashboard ConfigMap differs from the file',
    );
  });

  it('hands the chart’s image to the operator as the registries’ default, by tag or by digest', async () => {
    const env = async (extra: readonly string[]): Promise<Record<string, string>> => {
      const docs = await render(extra);
      const deployment = docs.find((d) => d['kind'] === 'Deployment') as Json;
      const [c] = (((deployment['spec'] as Json)['template'] as Json)['spec'] as Json)['containers'] as Json[];
      const vars = (c?.['env'] ?? []) as { name: string; value?: string }[];
      // The operator runs the very image it hands on.
      assert.equal(vars.find((v) => v.name === 'BERTH_REGISTRY_IMAGE')?.value, c?.['image']);
      return Object.fromEntries(vars.filter((v) => v.value !== undefined).map((v) => [v.name, v.value ?? '']));
    };
    const version = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const byDefault = await env([]);
    assert.equal(byDefault['BERTH_REGISTRY_IMAGE'], `ghcr.io/berth-dev/berth:${version.version}`);
    assert.equal(byDefault['BERTH_REGISTRY_IMAGE_PULL_POLICY'], 'IfNotPresent');
    assert.equal(byDefault['BERTH_WATCH_NAMESPACES'], undefined);
    const tagged = await env([
      '--set',
      'image.repository=mirror.example.com/berth',
      '--set',
      'image.tag=1.2.3',
      '--set',
      'image.pullPolicy=Always',
    ]);
    assert.equal(tagged['BERTH_REGISTRY_IMAGE'], 'mirror.example.com/berth:1.2.3');
    assert.equal(tagged['BERTH_REGISTRY_IMAGE_PULL_POLICY'], 'Always');
    const digest = `sha256:${'ab'.repeat(32)}`;
    const pinned = await env(['--set', 'image.tag=1.2.3', '--set', `image.digest=${digest}`]);
    assert.equal(pinned['BERTH_REGISTRY_IMAGE'], `ghcr.io/berth-dev/berth@${digest}`);
  });

  it('renders a helm test pod that runs berth check on the chart’s image against test.registry', async () => {
    const docs = await render(['--set', 'image.tag=1.2.3', '--set', 'test.registry=http://reg.team-a:5000']);
    const pod = docs.find((d) => d['kind'] === 'Pod') as Json;
    assert.ok(pod, 'no test pod');
    const meta = pod['metadata'] as Json;
    assert.equal((meta['annotations'] as Json)['helm.sh/hook'], 'test');
    // It must not look like an operator pod to the Deployment, the PDB or the Service.
    assert.equal((meta['labels'] as Json)['app.kubernetes.io/component'], 'test');
    const [c] = (pod['spec'] as Json)['containers'] as Json[];
    assert.equal(c?.['image'], 'ghcr.io/berth-dev/berth:1.2.3');
    assert.deepEqual(c?.['args'], ['check', 'http://reg.team-a:5000', '--repository', 'berth-check/probe']);
    assert.ok(!(await render(['--set', 'test.registry='])).some((d) => d['kind'] === 'Pod'));
    const bad = await helm(['template', 'berth', CHART, '--set', 'test.registry=reg.team-a:5000']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /test\.registry/);
  });

  it('ships a dashboard that Grafana’s sidecar loads and that type-checks as @grafana/schema’s Dashboard', async () => {
    const docs = await render();
    const map = docs.find((d) => d['kind'] === 'ConfigMap') as Json;
    assert.equal(((map['metadata'] as Json)['labels'] as Json)['grafana_dashboard'], '1');
    const [name, text] = Object.entries(map['data'] as Record<string, string>)[0] ?? [];
    assert.match(name ?? '', /\.json$/, 'the sidecar loads keys ending in .json');
    const dashboard = JSON.parse(text ?? '') as Json;
    assert.equal(typeof dashboard['uid'], 'string');
    // Grafana publishes its dashboard schema as TypeScript types in @grafana/schema. Assigning the JSON to that type
    // as an object literal makes the compiler check every field's type and flag every field the schema lacks.
    const file = join(REPO_ROOT, 'test', 'charts', '__dashboard_check__.ts');
    const source = `import type { Dashboard } from '@grafana/schema';\nexport const dashboard: Dashboard = ${text ?? ''};\n`;
    const options: ts.CompilerOptions = {
      strict: true,
      noEmit: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2023,
      skipLibCheck: true,
      types: [],
    };
    const host = ts.createCompilerHost(options);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (path, language, ...rest) =>
      path === file ? ts.createSourceFile(path, source, language) : getSourceFile(path, language, ...rest);
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (path) => path === file || fileExists(path);
    const program = ts.createProgram([file], options, host);
    const problems = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    assert.deepEqual(problems, []);
    // The check can fail: a misspelled field is caught.
    const misspelled = ts.createProgram([file], options, {
      ...host,
      getSourceFile: (path, language, ...rest) =>
        path === file
          ? ts.createSourceFile(path, source.replace('"schemaVersion"', '"schemaVersoin"'), language)
          : getSourceFile(path, language, ...rest),
    });
    assert.match(
      ts
        .getPreEmitDiagnostics(misspelled)
        .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))
        .join('\n'),
      /schemaVersoin/,
    );
  });

  it('grants namespaced rights only through Roles in watchNamespaces, and tells the operator which', async () => {
    const docs = await render(['--set', 'watchNamespaces={team-a,team-b}']);
    const roles = docs.filter((d) => d['kind'] === 'Role').map((d) => d['metadata'] as Json);
    assert.deepEqual(roles.map((m) => `${String(m['namespace'])}/${String(m['name'])}`).sort(), [
      'berth-system/berth-operator',
      'team-a/berth-operator-registries',
      'team-b/berth-operator-registries',
    ]);
    const bindings = docs.filter((d) => d['kind'] === 'RoleBinding').map((d) => (d['metadata'] as Json)['namespace']);
    assert.deepEqual(bindings.sort(), ['berth-system', 'team-a', 'team-b']);
    const clusterRole = docs.find((d) => d['kind'] === 'ClusterRole') as Json;
    const resources = (clusterRole['rules'] as { resources: string[] }[]).flatMap((r) => r.resources);
    assert.deepEqual(resources, ['storageclasses']);
    const deployment = docs.find((d) => d['kind'] === 'Deployment') as Json;
    const [c] = (((deployment['spec'] as Json)['template'] as Json)['spec'] as Json)['containers'] as Json[];
    const vars = (c?.['env'] ?? []) as { name: string; value?: string }[];
    assert.equal(vars.find((v) => v.name === 'BERTH_WATCH_NAMESPACES')?.value, 'team-a,team-b');
  });

  it('grants update only where the operator sends one: the Lease and Registries’ finalizers', async () => {
    const docs = await render();
    const updates = docs
      .filter((d) => d['kind'] === 'ClusterRole' || d['kind'] === 'Role')
      .flatMap((d) => d['rules'] as { resources: string[]; verbs: string[] }[])
      .filter((r) => r.verbs.includes('update'))
      .flatMap((r) => r.resources);
    assert.deepEqual(updates.sort(), ['leases', 'registries/finalizers']);
  });

  it('renders a ServiceMonitor only where the monitoring API exists', async () => {
    const without = await render(['--set', 'metrics.serviceMonitor.enabled=true']);
    assert.ok(!without.some((d) => d['kind'] === 'ServiceMonitor'));
    const withApi = await render([
      '--set',
      'metrics.serviceMonitor.enabled=true',
      '--api-versions',
      'monitoring.coreos.com/v1',
    ]);
    assert.ok(withApi.some((d) => d['kind'] === 'ServiceMonitor'));
  });

  it('rejects values its schema does not allow, naming them', async () => {
    const r = await helm(['template', 'berth', CHART, '--set', 'logLevel=loud']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /logLevel/);
  });

  it('installs the same CRD as crds/', async () => {
    const name = 'berth.dev_registries.yaml';
    assert.equal(
      await readFile(join(CHART, 'crds', name), 'utf8'),
      await readFile(join(REPO_ROOT, 'crds', name), 'utf8'),
    );
  });
});
