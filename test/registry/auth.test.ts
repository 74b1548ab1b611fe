// Access control over HTTP against the real Koa app: htpasswd with a policy, token auth with every hostile token of
// issue 15's table, signed upload locations (http.secret), and the auth failure metric. Each refusal is a clear
// 401/403/429 with an OCI error body, never a 500.
import assert from 'node:assert/strict';
import { createHash, createHmac, createPublicKey, randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { InMemoryDriver } from '../../src/storage/drivers/inmemory/index.js';
import { removeDir, startInProcess, tempDir, type InProcessRegistry } from '../helpers/harness.js';
import { makeSigningKey, sign, writeJwks, type SigningKey } from '../helpers/token-issuer.js';

const basic = (user: string, password: string): string =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const bearer = (token: string): string => `Bearer ${token}`;

function sha256(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Asserts an OCI error answer: its status, its code, and (unless HEAD) a JSON envelope. */
async function expectError(res: Response, status: number, code: string): Promise<string> {
  const text = await res.text();
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status}: ${text}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const body = JSON.parse(text) as { errors?: Array<{ code: string; message: string }> };
  assert.equal(body.errors?.[0]?.code, code, text);
  return body.errors?.[0]?.message ?? '';
}

async function get(url: string, authorization?: string, method = 'GET'): Promise<Response> {
  return fetch(url, { method, headers: authorization === undefined ? {} : { Authorization: authorization } });
}

/** Pushes a blob in one POST; returns the response. */
async function pushBlob(url: string, name: string, data: Uint8Array, authorization?: string): Promise<Response> {
  return fetch(`${url}/v2/${name}/blobs/uploads/?digest=${sha256(data)}`, {
    method: 'POST',
    body: data,
    headers: authorization === undefined ? {} : { Authorization: authorization },
  });
}

async function metricValue(debugUrl: string, reason: string): Promise<number | undefined> {
  const text = await (await fetch(`${debugUrl}/metrics`)).text();
  const m = new RegExp(`^registry_auth_failures_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(text);
  return m === null ? undefined : Number(m[1]);
}

describe('registry access control @integration', function () {
  this.timeout(60_000);
  let dir: string;

  before(async function () {
    dir = await tempDir('berth-auth-http-');
  });
  after(async function () {
    await removeDir(dir);
  });

  describe('htpasswd with a policy', function () {
    let reg: InProcessRegistry;
    let htpasswd: string;
    const users = { alice: 'wonderland', bob: 'builder', root: 'toor' };

    before(async function () {
      htpasswd = join(dir, 'htpasswd');
      const lines = await Promise.all(Object.entries(users).map(async ([u, p]) => `${u}:${await bcrypt.hash(p, 5)}`));
      await writeFile(htpasswd, `${lines.join('\n')}\n`);
      reg = await startInProcess(
        {
          auth: {
            htpasswd: { realm: 'Berth test', path: htpasswd },
            policy: {
              groups: { 'team-a': ['alice'], admins: ['root'] },
              catalog: ['@admins'],
              rules: [
                { repository: 'library/*', access: { anonymous: ['pull'], '@admins': ['*'] } },
                { repository: 'team-a/**', access: { '@team-a': ['pull', 'push'], '@admins': ['*'] } },
                { repository: 'team-b/**', access: { bob: ['pull', 'push'], '@admins': ['*'] } },
              ],
            },
          },
        },
        undefined,
        { filePollMs: 100 },
      );
    });
    after(async function () {
      await reg?.close();
    });

    it('challenges an anonymous /v2/ even where some access is anonymous, so clients know to send credentials', async function () {
      // containers/image and Docker send credentials only after a challenge on /v2/; an anonymous client goes on
      // without them, and the policy decides each request.
      const anonymous = await get(`${reg.url}/v2/`);
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.headers.get('www-authenticate'), 'Basic realm="Berth test"');
      await anonymous.body?.cancel();
      assert.equal((await get(`${reg.url}/v2/`, basic('alice', users.alice))).status, 200);
    });

    it('lets anonymous clients pull a public repository, and asks them to log in to push', async function () {
      const data = randomBytes(64);
      assert.equal((await pushBlob(reg.url, 'library/base', data, basic('root', users.root))).status, 201);
      assert.equal((await get(`${reg.url}/v2/library/base/blobs/${sha256(data)}`)).status, 200);
      const refused = await pushBlob(reg.url, 'library/base', randomBytes(64));
      await expectError(refused, 401, 'UNAUTHORIZED');
      assert.equal(refused.headers.get('www-authenticate'), 'Basic realm="Berth test"');
    });

    it('lets alice push to team-a/* and not to team-b/*', async function () {
      assert.equal((await pushBlob(reg.url, 'team-a/app', randomBytes(64), basic('alice', users.alice))).status, 201);
      const denied = await pushBlob(reg.url, 'team-b/app', randomBytes(64), basic('alice', users.alice));
      assert.match(await expectError(denied, 403, 'DENIED'), /alice may not repository:team-b\/app:pull,push/);
      assert.equal((await pushBlob(reg.url, 'team-b/app', randomBytes(64), basic('bob', users.bob))).status, 201);
      await expectError(await get(`${reg.url}/v2/team-b/app/tags/list`, basic('alice', users.alice)), 403, 'DENIED');
    });

    it('keeps the catalog to admins', async function () {
      await expectError(await get(`${reg.url}/v2/_catalog`, basic('alice', users.alice)), 403, 'DENIED');
      await expectError(await get(`${reg.url}/v2/_catalog`), 401, 'UNAUTHORIZED');
      assert.equal((await get(`${reg.url}/v2/_catalog`, basic('root', users.root))).status, 200);
    });

    it('does not mount from a repository the user cannot pull: it opens a session instead', async function () {
      const data = randomBytes(64);
      assert.equal((await pushBlob(reg.url, 'team-b/app', data, basic('bob', users.bob))).status, 201);
      const res = await fetch(`${reg.url}/v2/team-a/app/blobs/uploads/?mount=${sha256(data)}&from=team-b/app`, {
        method: 'POST',
        headers: { Authorization: basic('alice', users.alice) },
      });
      assert.equal(res.status, 202, 'a new session, not a mount');
      const root = await fetch(`${reg.url}/v2/team-a/app/blobs/uploads/?mount=${sha256(data)}&from=team-b/app`, {
        method: 'POST',
        headers: { Authorization: basic('root', users.root) },
      });
      assert.equal(root.status, 201, 'root may pull team-b: mounted');
    });

    for (const [what, header] of [
      ['a wrong password', basic('alice', 'nope')],
      ['an unknown user', basic('mallory', 'wonderland')],
      ['an empty header', ''],
      ['an overlong header', basic('alice', 'x'.repeat(10_000))],
      ['a non-UTF-8 header', `Basic ${Buffer.from([0x61, 0x6c, 0x3a, 0xc3, 0x28]).toString('base64')}`],
      ['a bearer token', 'Bearer aaa.bbb.ccc'],
    ] as const) {
      it(`answers ${what} with 401 and the Basic challenge`, async function () {
        const res = await get(`${reg.url}/v2/library/base/tags/list`, header);
        await expectError(res, 401, 'UNAUTHORIZED');
        assert.equal(res.headers.get('www-authenticate'), 'Basic realm="Berth test"');
      });
    }

    it('answers a HEAD without credentials with 401 and the challenge', async function () {
      const res = await get(`${reg.url}/v2/team-a/app/manifests/latest`, undefined, 'HEAD');
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), 'Basic realm="Berth test"');
    });

    it('counts failures by reason, without user names', async function () {
      assert.ok(((await metricValue(reg.debugUrl, 'bad_credentials')) ?? 0) >= 2);
      assert.ok(((await metricValue(reg.debugUrl, 'malformed')) ?? 0) >= 3);
      assert.ok(((await metricValue(reg.debugUrl, 'denied')) ?? 0) >= 1);
      const text = await (await fetch(`${reg.debugUrl}/metrics`)).text();
      const series = text.split('\n').filter((l) => l.startsWith('registry_auth_failures_total'));
      assert.ok(!series.some((l) => /alice|bob|mallory|root/.test(l)), series.join('\n'));
    });

    it('keeps serving the last good file when the file is deleted, and /readyz says why', async function () {
      await rm(htpasswd);
      let ready: { checks: Record<string, string> } | undefined;
      for (let i = 0; i < 100; i++) {
        ready = (await (await fetch(`${reg.debugUrl}/readyz`)).json()) as { checks: Record<string, string> };
        if (ready.checks['auth'] !== 'ok') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.match(ready?.checks['auth'] ?? '', /cannot read .*htpasswd.*serving the last good htpasswd file/);
      assert.equal((await get(`${reg.url}/v2/team-a/app/tags/list`, basic('alice', users.alice))).status, 200);
    });
  });

  describe('htpasswd without a policy', function () {
    let reg: InProcessRegistry;

    before(async function () {
      const path = join(dir, 'htpasswd-only');
      await writeFile(path, `carol:${await bcrypt.hash('secret', 5)}\n`);
      reg = await startInProcess({ auth: { htpasswd: { realm: 'r', path } } });
    });
    after(async function () {
      await reg?.close();
    });

    it('asks for credentials at /v2/ and gives a valid user everything', async function () {
      await expectError(await get(`${reg.url}/v2/`), 401, 'UNAUTHORIZED');
      assert.equal((await get(`${reg.url}/v2/`, basic('carol', 'secret'))).status, 200);
      assert.equal((await pushBlob(reg.url, 'any/repo', randomBytes(10), basic('carol', 'secret'))).status, 201);
    });

    it('has every failure reason at 0 before the first failure', async function () {
      const fresh = await startInProcess({ auth: { htpasswd: { realm: 'r', path: join(dir, 'htpasswd-only') } } });
      try {
        for (const reason of ['missing', 'malformed', 'bad_credentials', 'throttled', 'invalid_token', 'denied']) {
          assert.equal(await metricValue(fresh.debugUrl, reason), 0, reason);
        }
      } finally {
        await fresh.close();
      }
    });

    it('backs off an address after repeated failures with 429, even for the right password', async function () {
      let throttled: Response | undefined;
      for (let i = 0; i < 10 && throttled === undefined; i++) {
        const res = await get(`${reg.url}/v2/`, basic('carol', `guess-${i}`));
        if (res.status === 429) throttled = res;
        else await expectError(res, 401, 'UNAUTHORIZED');
      }
      assert.ok(throttled !== undefined, 'no 429 after 10 failures');
      await expectError(throttled, 429, 'TOOMANYREQUESTS');
      assert.ok(Number(throttled.headers.get('retry-after')) >= 1);
      await expectError(await get(`${reg.url}/v2/`, basic('carol', 'secret')), 429, 'TOOMANYREQUESTS');
      assert.ok(((await metricValue(reg.debugUrl, 'throttled')) ?? 0) >= 2);
    });
  });

  describe('token auth', function () {
    let reg: InProcessRegistry;
    let rsa: SigningKey;
    let ec: SigningKey;
    let ed: SigningKey;
    let stranger: SigningKey;
    const realm = 'https://auth.example.com/token';

    const pull = (name: string) => [{ type: 'repository', name, actions: ['pull'] }];

    before(async function () {
      [rsa, ec, ed, stranger] = await Promise.all([
        makeSigningKey(dir, 'RS256'),
        makeSigningKey(dir, 'ES256'),
        makeSigningKey(dir, 'EdDSA'),
        makeSigningKey(dir, 'ES256', 'stranger'),
      ]);
      const bundle = join(dir, 'bundle.pem');
      await writeFile(bundle, rsa.certPem + ed.certPem);
      const jwks = join(dir, 'jwks.json');
      await writeJwks(jwks, [ec]);
      reg = await startInProcess({
        storage: { delete: { enabled: true } },
        auth: {
          token: { realm, service: 'berth-test', issuer: 'test-issuer', rootcertbundle: bundle, jwks },
        },
      });
      const push = await sign(rsa, { access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }] });
      assert.equal((await pushBlob(reg.url, 'team/app', Buffer.from('hello'), bearer(push))).status, 201);
    });
    after(async function () {
      await reg?.close();
    });

    const blobUrl = (): string => `${reg.url}/v2/team/app/blobs/${sha256(Buffer.from('hello'))}`;

    it('challenges with the realm, the service and the scope the request needs', async function () {
      const res = await get(blobUrl());
      await expectError(res, 401, 'UNAUTHORIZED');
      assert.equal(
        res.headers.get('www-authenticate'),
        `Bearer realm="${realm}",service="berth-test",scope="repository:team/app:pull"`,
      );
      const push = await fetch(`${reg.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
      assert.match(push.headers.get('www-authenticate') ?? '', /scope="repository:team\/app:pull,push"$/);
      await push.body?.cancel();
      const base = await get(`${reg.url}/v2/`);
      assert.equal(base.headers.get('www-authenticate'), `Bearer realm="${realm}",service="berth-test"`);
      await base.body?.cancel();
    });

    it('asks for pull on the source of a cross-repository mount too', async function () {
      const res = await fetch(
        `${reg.url}/v2/other/app/blobs/uploads/?mount=${sha256(Buffer.from('hello'))}&from=team/app`,
        {
          method: 'POST',
        },
      );
      assert.match(
        res.headers.get('www-authenticate') ?? '',
        /scope="repository:other\/app:pull,push repository:team\/app:pull"/,
      );
      await res.body?.cancel();
    });

    for (const [what, key, keyRef] of [
      ['an RS256 token naming a bundle certificate by kid', () => rsa, 'kid'],
      ['an EdDSA token carrying its bundle certificate in x5c', () => ed, 'x5c'],
      ['an ES256 token naming a JWKS key', () => ec, 'kid'],
    ] as const) {
      it(`accepts ${what}`, async function () {
        const token = await sign(key(), { access: pull('team/app'), keyRef });
        assert.equal((await get(blobUrl(), bearer(token))).status, 200);
      });
    }

    it('accepts a token naming its bundle key by libtrust key id (docker_auth)', async function () {
      const { libtrustKeyId } = await import('../../src/auth/token.js');
      const kid = libtrustKeyId(createPublicKey(rsa.certPem));
      assert.match(kid, /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
      const token = await sign(rsa, { access: pull('team/app'), kid });
      assert.equal((await get(blobUrl(), bearer(token))).status, 200);
    });

    it('lets a catalog token list the catalog', async function () {
      const token = await sign(rsa, { access: [{ type: 'registry', name: 'catalog', actions: ['*'] }] });
      assert.equal((await get(`${reg.url}/v2/_catalog`, bearer(token))).status, 200);
    });

    const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
    const now = (): number => Math.floor(Date.now() / 1000);
    const claims = (): Record<string, unknown> => ({
      iss: 'test-issuer',
      aud: 'berth-test',
      exp: now() + 300,
      nbf: now(),
      access: pull('team/app'),
    });

    const hostile: ReadonlyArray<readonly [string, () => Promise<string>, RegExp]> = [
      ['alg: none', async () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`, /algorithm "none"/],
      [
        'HS256 signed with the public key (algorithm confusion)',
        async () => {
          const head = `${b64({ alg: 'HS256', typ: 'JWT', kid: rsa.kid })}.${b64(claims())}`;
          const pem = createPublicKey(rsa.certPem).export({ format: 'pem', type: 'spki' });
          return `${head}.${createHmac('sha256', pem).update(head).digest('base64url')}`;
        },
        /algorithm "HS256"/,
      ],
      ['an expired token', () => sign(rsa, { access: pull('team/app'), expiresIn: -3600 }), /expired/],
      [
        'a token not yet valid',
        () => sign(rsa, { access: pull('team/app'), notBefore: 3600, expiresIn: 7200 }),
        /not valid yet/,
      ],
      ['a token of another issuer', () => sign(rsa, { access: pull('team/app'), issuer: 'evil' }), /another issuer/],
      [
        'a token for another audience',
        () => sign(rsa, { access: pull('team/app'), audience: 'other-registry' }),
        /another service/,
      ],
      ['an unknown kid', () => sign(rsa, { access: pull('team/app'), kid: 'no-such-key' }), /unknown key/],
      [
        'a key the registry does not trust, named in x5c',
        () => sign(stranger, { access: pull('team/app'), keyRef: 'x5c' }),
        /does not lead to a certificate of rootcertbundle/,
      ],
      [
        'a trusted kid with another key’s signature',
        () => sign(stranger, { access: pull('team/app'), kid: ec.kid }),
        /signature/,
      ],
      [
        'a tampered payload',
        async () => {
          const [h, , s] = (await sign(rsa, { access: pull('other/repo') })).split('.');
          return `${h}.${b64(claims())}.${s}`;
        },
        /signature/,
      ],
      ['a token that names no key', () => sign(rsa, { access: pull('team/app'), keyRef: 'none' }), /names no key/],
    ];

    for (const [what, make, message] of hostile) {
      it(`refuses ${what} with 401 invalid_token`, async function () {
        const res = await get(blobUrl(), bearer(await make()));
        assert.match(await expectError(res, 401, 'UNAUTHORIZED'), message);
        assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
      });
    }

    const scoped: ReadonlyArray<readonly [string, () => Promise<Response>]> = [
      [
        'a valid token for another repository',
        async () => get(blobUrl(), bearer(await sign(rsa, { access: pull('team/other') }))),
      ],
      [
        'push with a pull-only token',
        async () =>
          pushBlob(reg.url, 'team/app', randomBytes(8), bearer(await sign(rsa, { access: pull('team/app') }))),
      ],
      [
        'delete without delete',
        async () => {
          const token = await sign(rsa, {
            access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }],
          });
          return fetch(blobUrl(), { method: 'DELETE', headers: { Authorization: bearer(token) } });
        },
      ],
      [
        'the catalog without registry:catalog:*',
        async () => get(`${reg.url}/v2/_catalog`, bearer(await sign(rsa, { access: pull('team/app') }))),
      ],
    ];
    for (const [what, send] of scoped) {
      it(`refuses ${what} with 401 insufficient_scope`, async function () {
        const res = await send();
        assert.match(await expectError(res, 401, 'DENIED'), /the token does not grant/);
        assert.match(res.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
      });
    }

    it('deletes with a token that grants delete (or *)', async function () {
      const data = Buffer.from('to delete');
      const push = await sign(rsa, { access: [{ type: 'repository', name: 'team/app', actions: ['*'] }] });
      assert.equal((await pushBlob(reg.url, 'team/app', data, bearer(push))).status, 201);
      const res = await fetch(`${reg.url}/v2/team/app/blobs/${sha256(data)}`, {
        method: 'DELETE',
        headers: { Authorization: bearer(push) },
      });
      assert.equal(res.status, 202);
    });

    it('does not read a token from the query string', async function () {
      const token = await sign(rsa, { access: pull('team/app') });
      const res = await get(`${blobUrl()}?access_token=${token}&token=${token}`);
      await expectError(res, 401, 'UNAUTHORIZED');
      assert.doesNotMatch(res.headers.get('www-authenticate') ?? '', /error=/);
    });

    it('refuses Basic credentials', async function () {
      await expectError(await get(blobUrl(), basic('a', 'b')), 401, 'UNAUTHORIZED');
    });

    it('counts token failures by reason', async function () {
      assert.ok(((await metricValue(reg.debugUrl, 'invalid_token')) ?? 0) >= 5);
      assert.ok(((await metricValue(reg.debugUrl, 'expired_token')) ?? 0) >= 2);
      assert.ok(((await metricValue(reg.debugUrl, 'wrong_claims')) ?? 0) >= 2);
      assert.ok(((await metricValue(reg.debugUrl, 'insufficient_scope')) ?? 0) >= 4);
    });
  });

  describe('signed upload locations (http.secret)', function () {
    let driver: InMemoryDriver;
    let a: InProcessRegistry;
    let b: InProcessRegistry;
    let path: string;

    before(async function () {
      path = join(dir, 'htpasswd-secret');
      await writeFile(path, `alice:${await bcrypt.hash('a', 5)}\nbob:${await bcrypt.hash('b', 5)}\n`);
      driver = new InMemoryDriver();
      const config = { http: { secret: 'shared-by-replicas' }, auth: { htpasswd: { realm: 'r', path } } };
      a = await startInProcess(config, driver);
      b = await startInProcess(config, driver);
    });
    after(async function () {
      await a?.close();
      await b?.close();
    });

    async function start(user: string, password: string): Promise<string> {
      const res = await fetch(`${a.url}/v2/shared/app/blobs/uploads/`, {
        method: 'POST',
        headers: { Authorization: basic(user, password) },
      });
      assert.equal(res.status, 202);
      const location = res.headers.get('location') ?? '';
      assert.match(location, /^\/v2\/shared\/app\/blobs\/uploads\/[0-9a-f-]{36}\?_state=\d+\.[A-Za-z0-9_-]{43}$/);
      return location;
    }

    it('hands out signed locations that another replica with the same secret accepts', async function () {
      const location = await start('alice', 'a');
      const data = randomBytes(100);
      const patch = await fetch(`${b.url}${location}`, {
        method: 'PATCH',
        body: data,
        headers: { Authorization: basic('alice', 'a') },
      });
      assert.equal(patch.status, 202);
      const next = patch.headers.get('location') ?? '';
      assert.match(next, /_state=/);
      const put = await fetch(`${a.url}${next}&digest=${sha256(data)}`, {
        method: 'PUT',
        headers: { Authorization: basic('alice', 'a') },
      });
      assert.equal(put.status, 201);
    });

    it('refuses an upload id without its state, with another repository or by another user', async function () {
      const location = await start('alice', 'a');
      const bare = location.split('?')[0] ?? '';
      const auth = { Authorization: basic('alice', 'a') };
      await expectError(await fetch(`${a.url}${bare}`, { headers: auth }), 404, 'BLOB_UPLOAD_UNKNOWN');
      await expectError(
        await fetch(`${a.url}${location.replace('/shared/app/', '/shared/other/')}`, { headers: auth }),
        404,
        'BLOB_UPLOAD_UNKNOWN',
      );
      await expectError(
        await fetch(`${a.url}${location}`, { headers: { Authorization: basic('bob', 'b') } }),
        404,
        'BLOB_UPLOAD_UNKNOWN',
      );
      const forged = location.replace(/_state=(\d+)\./, (_m, t: string) => `_state=${Number(t) + 1}.`);
      await expectError(await fetch(`${a.url}${forged}`, { headers: auth }), 404, 'BLOB_UPLOAD_UNKNOWN');
      assert.equal((await fetch(`${a.url}${location}`, { headers: auth })).status, 204);
    });

    it('refuses a location signed with another secret', async function () {
      const other = await startInProcess(
        { http: { secret: 'a-different-secret' }, auth: { htpasswd: { realm: 'r', path } } },
        driver,
      );
      try {
        const location = await start('alice', 'a');
        await expectError(
          await fetch(`${other.url}${location}`, { headers: { Authorization: basic('alice', 'a') } }),
          404,
          'BLOB_UPLOAD_UNKNOWN',
        );
      } finally {
        await other.close();
      }
    });
  });
});
