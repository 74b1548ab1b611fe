import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { ConfigError, loadConfig, resolveConfig } from '../../src/config/load.js';
import { CLI, removeDir, tempDir } from '../helpers/harness.js';

function problems(raw: unknown): string[] {
  try {
    resolveConfig(raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return [...err.problems];
  }
  assert.fail('expected the config to be refused');
}

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env['PATH'] ?? '' } }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : Number(err.code ?? 1), stdout, stderr }),
    );
  });
}

const token = { realm: 'https://auth.example.com/token', service: 'registry', issuer: 'auth', jwks: '/keys.json' };

describe('config/auth', function () {
  it('reads htpasswd, token and policy sections with their defaults', function () {
    const c = resolveConfig({
      auth: {
        htpasswd: { path: '/auth/htpasswd' },
        policy: { rules: [{ repository: 'library/*', access: { anonymous: ['pull'] } }] },
      },
    });
    assert.deepEqual(c.auth?.htpasswd, { realm: 'Berth Registry', path: '/auth/htpasswd' });
    assert.deepEqual(c.auth?.policy?.catalog, ['authenticated']);
    assert.deepEqual(c.ignored, []);
    const t = resolveConfig({ auth: { token } }).auth?.token;
    assert.equal(t?.autoredirect, false);
    assert.equal(t?.autoredirectpath, '/auth/token');
  });

  for (const [what, auth, field] of [
    ['an htpasswd without a path', { htpasswd: { realm: 'r' } }, 'auth.htpasswd.path'],
    ['token auth without keys', { token: { ...token, jwks: undefined } }, 'auth.token.rootcertbundle'],
    ['token auth with a realm that is no URL', { token: { ...token, realm: 'token' } }, 'auth.token.realm'],
    [
      'an HMAC signing algorithm',
      { token: { ...token, signingalgorithms: ['HS256'] } },
      'auth.token.signingalgorithms.0',
    ],
    ['htpasswd and token together', { htpasswd: { path: '/p' }, token }, 'auth.token'],
    ['a policy with token auth', { token, policy: { rules: [] } }, 'auth.policy'],
    [
      'a policy action that does not exist',
      { policy: { rules: [{ repository: 'a', access: { bob: ['write'] } }] } },
      'auth.policy.rules.0.access.bob.0',
    ],
    ['silly auth', { silly: { realm: 'r', service: 's' } }, 'auth.silly'],
    ['a misspelt key', { htpasswd: { path: '/p', relm: 'r' } }, 'auth.htpasswd'],
  ] as const) {
    it(`refuses ${what}, naming ${field}`, function () {
      const found = problems({ auth });
      assert.ok(
        found.some((p) => p.startsWith(`${field}:`)),
        `no problem at ${field}:\n${found.join('\n')}`,
      );
    });
  }

  it('refuses HMAC algorithms saying why', function () {
    assert.match(problems({ auth: { token: { ...token, signingalgorithms: ['HS256'] } } }).join('\n'), /HMAC/);
  });

  it("reads http.tls with Distribution's keys, and refuses TLS below 1.2 and unknown suites", function () {
    const tls = resolveConfig({ http: { tls: { certificate: '/c', key: '/k' } } }).http.tls;
    assert.deepEqual(tls, { certificate: '/c', key: '/k', clientcas: [], minimumversion: 'tls1.2', ciphersuites: [] });
    assert.ok(
      problems({ http: { tls: { certificate: '/c', key: '/k', minimumversion: 'tls1.1' } } }).some((p) =>
        p.startsWith('http.tls.minimumversion:'),
      ),
    );
    assert.ok(
      problems({ http: { tls: { certificate: '/c', key: '/k', ciphersuites: ['TLS_RSA_WITH_RC4_128_SHA'] } } }).some(
        (p) => p.startsWith('http.tls.ciphersuites.0:'),
      ),
    );
    assert.ok(problems({ http: { tls: { certificate: '/c', key: '/k', letsencrypt: {} } } }).length > 0);
  });

  it('takes auth keys from the environment, as strings', async function () {
    const c = await loadConfig(undefined, {
      REGISTRY_AUTH_HTPASSWD_PATH: '/secrets/htpasswd',
      REGISTRY_AUTH_HTPASSWD_REALM: '123',
      REGISTRY_HTTP_SECRET: '0042',
    });
    assert.deepEqual(c.auth?.htpasswd, { realm: '123', path: '/secrets/htpasswd' });
    assert.equal(c.http.secret, '0042');
  });

  describe('berth verify', function () {
    this.timeout(30_000);
    let dir: string;
    before(async function () {
      dir = await tempDir('berth-verify-auth-');
    });
    after(async function () {
      await removeDir(dir);
    });

    async function config(name: string, htpasswd: string | undefined): Promise<string> {
      const path = join(dir, `${name}.htpasswd`);
      if (htpasswd !== undefined) await writeFile(path, htpasswd);
      const file = join(dir, `${name}.yml`);
      await writeFile(file, `auth:\n  htpasswd:\n    realm: r\n    path: ${path}\n`);
      return file;
    }

    it('checks the htpasswd file and names a bad line', async function () {
      const good = await runCli(['verify', await config('good', `alice:${await bcrypt.hash('x', 4)}\n`)]);
      assert.equal(good.code, 0, good.stderr);
      assert.match(good.stdout, /ok \(storage filesystem, listening on :5000, htpasswd auth\)/);
      const bad = await runCli(['verify', await config('bad', `alice:${await bcrypt.hash('x', 4)}\nbob:$apr1$a$b\n`)]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /auth\.htpasswd\.path: .*line 2 \(user "bob"\): an Apache MD5/);
    });

    it('notes an htpasswd file that does not exist where it runs', async function () {
      const r = await runCli(['verify', await config('absent', undefined)]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /note: auth\.htpasswd\.path: .* does not exist here/);
    });

    it('checks TLS files: a key that does not match its certificate is an error', async function () {
      const { makeCa, issueCert } = await import('../helpers/token-issuer.js');
      const ca = await makeCa(dir);
      const one = await issueCert(dir, ca, 'one', 'server');
      const two = await issueCert(dir, ca, 'two', 'server');
      const file = join(dir, 'tls.yml');
      await writeFile(file, `http:\n  tls:\n    certificate: ${one.cert}\n    key: ${two.key}\n`);
      const r = await runCli(['verify', file]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /http\.tls: .* cannot be used/);
      await writeFile(file, `http:\n  tls:\n    certificate: ${one.cert}\n    key: ${one.key}\n`);
      const ok = await runCli(['verify', file]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /TLS\)/);
    });
  });
});
