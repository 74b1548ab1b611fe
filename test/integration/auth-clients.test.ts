// Real clients against a Berth with access control: skopeo logs in with --creds to htpasswd over TLS (a test CA made
// by openssl, trusted through --cert-dir), skopeo and crane go through a token issuer (test/helpers/token-issuer.ts),
// and the OCI conformance suite runs all four workflows with credentials (OCI_USERNAME / OCI_PASSWORD), against
// htpasswd and against token auth.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { removeDir, spawnRegistry, tempDir, TOOLS_BIN, type ChildRegistry } from '../helpers/harness.js';
import {
  buildOciLayout,
  describeFailure,
  exists,
  runCommand,
  skopeo,
  skopeoContext,
  type BuiltLayout,
  type SkopeoContext,
} from '../helpers/images.js';
import {
  issueCert,
  makeCa,
  makeSigningKey,
  startTokenIssuer,
  type TestCa,
  type TokenIssuer,
} from '../helpers/token-issuer.js';

const CONFORMANCE_BIN = join(TOOLS_BIN, 'oci-conformance');

/** A client the install script builds into .tools/bin (crane, oras, helm); a missing one fails the test. */
async function findTool(name: string): Promise<string> {
  const path = join(TOOLS_BIN, name);
  assert.ok(await exists(path), `${path} is missing: run scripts/install-test-tools.sh`);
  return path;
}

async function runConformance(url: string, user: string, password: string, reportDir: string) {
  const result = await runCommand(CONFORMANCE_BIN, ['--ginkgo.no-color'], {
    cwd: reportDir,
    timeoutMs: 300_000,
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: reportDir,
      OCI_ROOT_URL: url,
      OCI_NAMESPACE: 'conformance/main',
      OCI_CROSSMOUNT_NAMESPACE: 'conformance/crossmount',
      OCI_USERNAME: user,
      OCI_PASSWORD: password,
      OCI_TEST_PULL: '1',
      OCI_TEST_PUSH: '1',
      OCI_TEST_CONTENT_DISCOVERY: '1',
      OCI_TEST_CONTENT_MANAGEMENT: '1',
      OCI_AUTOMATIC_CROSSMOUNT: '0',
      OCI_HIDE_SKIPPED_WORKFLOWS: '0',
      OCI_REPORT_DIR: reportDir,
    },
  });
  const junit = (await exists(join(reportDir, 'junit.xml')))
    ? await readFile(join(reportDir, 'junit.xml'), 'utf8')
    : '';
  const passed = [...junit.matchAll(/<testcase\s+name="\[It\] [^"]*"[^>]*\sstatus="passed"/g)].length;
  const failed = [
    ...junit.matchAll(/<testcase\s+name="[^"]*"[^>]*\sstatus="(?:failed|panicked|interrupted|aborted)"/g),
  ];
  console.log(`      conformance with auth: ${passed} passed, ${failed.length} failed (report ${reportDir})`);
  assert.equal(result.code, 0, describeFailure(result));
  assert.ok(passed > 50, `only ${passed} specs passed`);
  assert.match(junit, /<testsuites[^>]*\sfailures="0"/);
  // Kept only when a check above failed, for its report.
  await removeDir(reportDir);
}

describe('real clients with access control @integration', function () {
  this.timeout(600_000);
  let work: string;
  let ctx: SkopeoContext;
  let source: BuiltLayout;
  let ca: TestCa;

  before(async function () {
    work = await tempDir('berth-auth-clients-');
    ctx = await skopeoContext(work);
    source = await buildOciLayout(work, 'source', 'v1', [
      { 'etc/motd': 'pushed with credentials\n' },
      { 'data/random.bin': randomBytes(256 * 1024) },
    ]);
    ca = await makeCa(work);
  });
  after(async function () {
    if (work !== undefined) await removeDir(work);
  });

  describe('htpasswd over TLS', function () {
    let registry: ChildRegistry | undefined;
    let host: string;
    let certDir: string;

    before(async function () {
      const server = await issueCert(work, ca, 'registry', 'server');
      // skopeo (containers/image) reads a directory: *.crt are CAs, *.cert/*.key a client pair.
      certDir = join(work, 'certs.d');
      await mkdir(certDir);
      await copyFile(ca.caCert, join(certDir, 'ca.crt'));
      const htpasswd = join(work, 'htpasswd');
      await writeFile(
        htpasswd,
        `alice:${await bcrypt.hash('wonderland', 5)}\nbob:${await bcrypt.hash('builder', 5)}\n`,
      );
      const config = join(work, 'htpasswd-tls.yml');
      await writeFile(
        config,
        [
          'storage:',
          `  filesystem: { rootdirectory: ${join(work, 'storage-htpasswd')} }`,
          '  delete: { enabled: true }',
          'http:',
          '  secret: a-shared-secret',
          `  tls: { certificate: ${server.cert}, key: ${server.key} }`,
          'auth:',
          `  htpasswd: { realm: berth-test, path: ${htpasswd} }`,
          '  policy:',
          '    rules:',
          '      - repository: "team-a/**"',
          '        access: { alice: ["*"], bob: [pull] }',
          '',
        ].join('\n'),
      );
      registry = await spawnRegistry({}, config);
      host = `127.0.0.1:${registry.port}`;
    });
    after(async function () {
      await registry?.stop();
    });

    it('skopeo pushes with --creds, verifying the certificate with --cert-dir, and pulls it back', async function () {
      await skopeo(ctx, [
        'copy',
        '--dest-creds',
        'alice:wonderland',
        '--dest-cert-dir',
        certDir,
        `oci:${source.dir}:${source.tag}`,
        `docker://${host}/team-a/app:v1`,
      ]);
      const out = join(work, 'pulled-htpasswd');
      await skopeo(ctx, [
        'copy',
        '--src-creds',
        'bob:builder',
        '--src-cert-dir',
        certDir,
        `docker://${host}/team-a/app:v1`,
        `oci:${out}:v1`,
      ]);
      const inspect = await skopeo(ctx, [
        'inspect',
        '--creds',
        'bob:builder',
        '--cert-dir',
        certDir,
        `docker://${host}/team-a/app:v1`,
      ]);
      assert.equal((JSON.parse(inspect.stdout) as { Digest: string }).Digest, source.manifestDigest);
    });

    it('skopeo fails with a wrong password, without credentials, and where the policy denies', async function () {
      const attempt = (args: string[]) =>
        runCommand(ctx.bin, ['--policy', ctx.policy, ...args], { env: ctx.env, timeoutMs: 60_000 });
      const wrong = await attempt([
        'inspect',
        '--creds',
        'alice:nope',
        '--cert-dir',
        certDir,
        `docker://${host}/team-a/app:v1`,
      ]);
      assert.notEqual(wrong.code, 0);
      assert.match(wrong.stderr, /401|unauthorized|authentication required/i);
      const anonymous = await attempt(['inspect', '--cert-dir', certDir, `docker://${host}/team-a/app:v1`]);
      assert.notEqual(anonymous.code, 0);
      const denied = await attempt([
        'copy',
        '--dest-creds',
        'bob:builder',
        '--dest-cert-dir',
        certDir,
        `oci:${source.dir}:${source.tag}`,
        `docker://${host}/team-a/bob:v1`,
      ]);
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, /denied|403/i);
    });

    it('oras logs in, pushes and pulls', async function () {
      const oras = await findTool('oras');
      const home = join(work, 'oras-home');
      await mkdir(home, { recursive: true });
      const env = { PATH: process.env['PATH'] ?? '', HOME: home, XDG_CONFIG_HOME: join(home, '.config') };
      const run = async (bin: string, args: string[], cwd = home) => {
        const r = await runCommand(bin, args, { env, cwd, timeoutMs: 120_000 });
        assert.equal(r.code, 0, describeFailure(r));
        return r;
      };
      const caFile = ca.caCert;
      await run(oras, ['login', host, '-u', 'alice', '-p', 'wonderland', '--ca-file', caFile]);
      await writeFile(join(home, 'artifact.txt'), 'an artifact pushed by oras\n');
      await run(oras, ['push', '--ca-file', caFile, `${host}/team-a/artifact:v1`, 'artifact.txt']);
      const pulled = join(home, 'pulled');
      await mkdir(pulled);
      await run(oras, ['pull', '--ca-file', caFile, `${host}/team-a/artifact:v1`], pulled);
      assert.equal(await readFile(join(pulled, 'artifact.txt'), 'utf8'), 'an artifact pushed by oras\n');

      const refused = await runCommand(oras, ['login', host, '-u', 'alice', '-p', 'wrong', '--ca-file', caFile], {
        env,
        cwd: home,
        timeoutMs: 60_000,
      });
      assert.notEqual(refused.code, 0);
    });

    it('skopeo refuses the registry without the test CA', async function () {
      const r = await runCommand(
        ctx.bin,
        ['--policy', ctx.policy, 'inspect', '--creds', 'alice:wonderland', `docker://${host}/team-a/app:v1`],
        { env: ctx.env, timeoutMs: 60_000 },
      );
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /certificate|x509/i);
    });
  });

  describe('token auth through a token issuer', function () {
    let issuer: TokenIssuer;
    let registry: ChildRegistry | undefined;
    let host: string;

    before(async function () {
      const key = await makeSigningKey(work, 'ES256', 'issuer');
      issuer = await startTokenIssuer({
        key,
        service: 'berth-clients',
        issuer: 'berth-test-issuer',
        users: {
          alice: { password: 'wonderland', grant: (repo) => (repo.startsWith('team-a/') ? ['*'] : []) },
          ci: { password: 'pipeline', grant: () => ['pull', 'push', 'delete'] },
        },
        anonymous: (repo) => (repo.startsWith('public/') ? ['pull'] : []),
      });
      const config = join(work, 'token.yml');
      await writeFile(
        config,
        [
          'storage:',
          `  filesystem: { rootdirectory: ${join(work, 'storage-token')} }`,
          '  delete: { enabled: true }',
          'http:',
          '  secret: another-secret',
          'auth:',
          '  token:',
          `    realm: ${issuer.realm}`,
          '    service: berth-clients',
          '    issuer: berth-test-issuer',
          `    rootcertbundle: ${key.certPath}`,
          '',
        ].join('\n'),
      );
      registry = await spawnRegistry({}, config);
      host = `127.0.0.1:${registry.port}`;
    });
    after(async function () {
      await registry?.stop();
      await issuer?.close();
    });

    it('skopeo logs in through the issuer, pushes and pulls', async function () {
      await skopeo(ctx, [
        'copy',
        '--dest-tls-verify=false',
        '--dest-creds',
        'alice:wonderland',
        `oci:${source.dir}:${source.tag}`,
        `docker://${host}/team-a/app:v1`,
      ]);
      const inspect = await skopeo(ctx, [
        'inspect',
        '--tls-verify=false',
        '--creds',
        'alice:wonderland',
        `docker://${host}/team-a/app:v1`,
      ]);
      assert.equal((JSON.parse(inspect.stdout) as { Digest: string }).Digest, source.manifestDigest);
      assert.ok(
        issuer.issued.some((t) => t.user === 'alice' && t.scopes.some((s) => /^repository:team-a\/app:.*push/.test(s))),
        `the issuer was asked for push: ${JSON.stringify(issuer.issued)}`,
      );
    });

    it('skopeo is refused where the issuer grants nothing', async function () {
      const r = await runCommand(
        ctx.bin,
        [
          '--policy',
          ctx.policy,
          'copy',
          '--dest-tls-verify=false',
          '--dest-creds',
          'alice:wonderland',
          `oci:${source.dir}:${source.tag}`,
          `docker://${host}/team-b/app:v1`,
        ],
        { env: ctx.env, timeoutMs: 60_000 },
      );
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /401|unauthorized|denied|authentication required/i);
    });

    it('helm logs in through the issuer, pushes a chart and shows it', async function () {
      // Plain HTTP here: helm 3.17's resolver talks plain HTTP to loopback addresses whatever TLS they serve.
      const helm = await findTool('helm');
      assert.ok(helm !== undefined, 'helm is installed by scripts/install-test-tools.sh');
      const home = join(work, 'helm-home');
      await mkdir(home, { recursive: true });
      const env = { PATH: process.env['PATH'] ?? '', HOME: home, XDG_CONFIG_HOME: join(home, '.config') };
      const run = async (bin: string, args: string[]) => {
        const r = await runCommand(bin, args, { env, cwd: home, timeoutMs: 120_000 });
        assert.equal(r.code, 0, describeFailure(r));
        return r;
      };
      await run(helm, ['registry', 'login', host, '-u', 'alice', '-p', 'wonderland', '--insecure']);
      await run(helm, ['create', 'berthchart']);
      await run(helm, ['package', 'berthchart']);
      await run(helm, ['push', 'berthchart-0.1.0.tgz', `oci://${host}/team-a/charts`, '--plain-http']);
      const shown = await run(helm, [
        'show',
        'chart',
        `oci://${host}/team-a/charts/berthchart`,
        '--version',
        '0.1.0',
        '--plain-http',
      ]);
      assert.match(shown.stdout, /name: berthchart/);
    });

    it('crane logs in through the issuer, copies and lists tags', async function () {
      const crane = await findTool('crane');
      const env = { PATH: process.env['PATH'] ?? '', HOME: join(work, 'crane-home') };
      await mkdir(env.HOME, { recursive: true });
      const run = async (args: string[]) => {
        const r = await runCommand(crane, args, { env, timeoutMs: 120_000 });
        assert.equal(r.code, 0, describeFailure(r));
        return r;
      };
      await run(['auth', 'login', host, '-u', 'ci', '-p', 'pipeline', '--insecure']);
      await run(['copy', '--insecure', `${host}/team-a/app:v1`, `${host}/ci/app:v2`]);
      const tags = await run(['ls', '--insecure', `${host}/ci/app`]);
      assert.deepEqual(tags.stdout.trim().split('\n'), ['v2']);
      const digest = await run(['digest', '--insecure', `${host}/ci/app:v2`]);
      assert.equal(digest.stdout.trim(), source.manifestDigest);
    });

    it('passes the OCI conformance suite with credentials', async function () {
      if (!(await exists(CONFORMANCE_BIN))) assert.fail(`the conformance suite is not built at ${CONFORMANCE_BIN}`);
      const reportDir = await tempDir('berth-conformance-token-');
      await runConformance(`http://${host}`, 'ci', 'pipeline', reportDir);
    });
  });

  describe('the OCI conformance suite with htpasswd', function () {
    let registry: ChildRegistry | undefined;

    before(async function () {
      const htpasswd = join(work, 'htpasswd-conformance');
      await writeFile(htpasswd, `conformance:${await bcrypt.hash('s3cret-pass', 5)}\n`);
      registry = await spawnRegistry({
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(work, 'storage-conformance'),
        REGISTRY_STORAGE_DELETE_ENABLED: 'true',
        REGISTRY_HTTP_SECRET: 'conformance-secret',
        REGISTRY_AUTH_HTPASSWD_REALM: 'conformance',
        REGISTRY_AUTH_HTPASSWD_PATH: htpasswd,
      });
    });
    after(async function () {
      await registry?.stop();
    });

    it('passes all four workflows', async function () {
      if (!(await exists(CONFORMANCE_BIN))) assert.fail(`the conformance suite is not built at ${CONFORMANCE_BIN}`);
      assert.ok(registry !== undefined);
      const reportDir = await tempDir('berth-conformance-htpasswd-');
      await runConformance(registry.url, 'conformance', 's3cret-pass', reportDir);
    });
  });
});
