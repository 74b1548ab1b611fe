import assert from 'node:assert/strict';
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { HtpasswdError, HtpasswdFile, parseHtpasswd } from '../../src/auth/htpasswd.js';
import { removeDir, tempDir } from '../helpers/harness.js';
import { runChecked } from '../helpers/images.js';

async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('auth/htpasswd', function () {
  this.timeout(30_000);
  let dir: string;
  let alice: string;
  let bob: string;
  const open: HtpasswdFile[] = [];

  before(async function () {
    dir = await tempDir('berth-htpasswd-');
    alice = `alice:${await bcrypt.hash('wonderland', 5)}`;
    bob = `bob:${await bcrypt.hash('builder', 5)}`;
  });
  afterEach(function () {
    for (const f of open.splice(0)) f.close();
  });
  after(async function () {
    await removeDir(dir);
  });

  async function openFile(name: string, text: string): Promise<HtpasswdFile> {
    const path = join(dir, name);
    await writeFile(path, text);
    const f = await HtpasswdFile.open(path, { pollMs: 100 });
    open.push(f);
    return f;
  }

  it('reads bcrypt entries, skipping blank lines and comments', function () {
    const parsed = parseHtpasswd(`# users\n${alice}\n\n${bob}\n`, 'f');
    assert.deepEqual([...parsed.users.keys()], ['alice', 'bob']);
    assert.equal(parsed.cost, 5);
  });

  for (const [kind, hash] of [
    ['Apache MD5', '$apr1$abc$0123456789abcdefghijkl'],
    ['SHA-1', '{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g='],
    ['crypt SHA-512', '$6$salt$hash'],
    ['plain text', 'secret'],
  ] as const) {
    it(`refuses a ${kind} hash, naming the line and user`, function () {
      assert.throws(
        () => parseHtpasswd(`${alice}\ncarol:${hash}\n`, 'users.htpasswd'),
        (err: unknown) =>
          err instanceof HtpasswdError && err.line === 2 && /users\.htpasswd line 2 \(user "carol"\)/.test(err.message),
      );
    });
  }

  it('refuses a line without a colon and a user given twice', function () {
    assert.throws(() => parseHtpasswd('nobody\n', 'f'), /f line 1: expected user:hash/);
    assert.throws(() => parseHtpasswd(`${alice}\n${alice}\n`, 'f'), /f line 2: user "alice" again/);
  });

  it('reads what `htpasswd -B` writes', async function () {
    const path = join(dir, 'apache');
    await runChecked('htpasswd', ['-B', '-b', '-c', path, 'carol', 's3cret'], { timeoutMs: 30_000 });
    const f = await HtpasswdFile.open(path);
    open.push(f);
    assert.equal(await f.verify('carol', 's3cret'), true);
    assert.equal(await f.verify('carol', 'S3cret'), false);
  });

  it('accepts the right password only, and no unknown user', async function () {
    const f = await openFile('basic', `${alice}\n${bob}\n`);
    assert.equal(await f.verify('alice', 'wonderland'), true);
    assert.equal(await f.verify('alice', 'wonderland'), true, 'again, from the cache');
    assert.equal(await f.verify('alice', 'builder'), false);
    assert.equal(await f.verify('mallory', 'wonderland'), false);
    assert.equal(await f.verify('alice', ''), false);
  });

  it('takes as long for an unknown user as for a wrong password', async function () {
    const path = join(dir, 'timing');
    await writeFile(path, `alice:${await bcrypt.hash('wonderland', 8)}\n`);
    const f = await HtpasswdFile.open(path);
    open.push(f);
    const time = async (user: string): Promise<number> => {
      const samples: number[] = [];
      for (let i = 0; i < 7; i++) {
        const t = process.hrtime.bigint();
        await f.verify(user, `wrong-${i}`);
        samples.push(Number(process.hrtime.bigint() - t));
      }
      return samples.sort((a, b) => a - b)[3] ?? 0;
    };
    const wrong = await time('alice');
    const unknown = await time('nobody-at-all');
    const ratio = unknown / wrong;
    assert.ok(ratio > 0.6 && ratio < 1.6, `unknown user ${unknown} ns vs wrong password ${wrong} ns`);
  });

  it('refuses a bad file at start, naming the line', async function () {
    const path = join(dir, 'bad-at-start');
    await writeFile(path, `${alice}\nbob:$apr1$x$y\n`);
    await assert.rejects(HtpasswdFile.open(path), /line 2 \(user "bob"\): an Apache MD5/);
    await assert.rejects(HtpasswdFile.open(join(dir, 'missing')), /cannot read/);
  });

  it('picks up a changed file without a restart', async function () {
    const f = await openFile('changing', `${alice}\n`);
    assert.equal(await f.verify('bob', 'builder'), false);
    await writeFile(join(dir, 'changing'), `${alice}\n${bob}\n`);
    await until(() => f.users.has('bob'));
    assert.equal(await f.verify('bob', 'builder'), true);
    // Removing a user ends its cached logins too.
    await writeFile(join(dir, 'changing'), `${bob}\n`);
    await until(() => !f.users.has('alice'));
    assert.equal(await f.verify('alice', 'wonderland'), false);
  });

  it('keeps the last good file when the file is deleted or broken, and says why', async function () {
    const f = await openFile('fragile', `${alice}\n`);
    assert.equal(f.status(), undefined);
    await rm(join(dir, 'fragile'));
    await until(() => f.status() !== undefined);
    assert.match(f.status() ?? '', /cannot read .*fragile.*serving the last good htpasswd file/);
    assert.equal(await f.verify('alice', 'wonderland'), true);
    await writeFile(join(dir, 'fragile'), 'alice:{SHA}abc\n');
    await until(() => /SHA-1/.test(f.status() ?? ''));
    assert.equal(await f.verify('alice', 'wonderland'), true);
    await writeFile(join(dir, 'fragile'), `${bob}\n`);
    await until(() => f.status() === undefined);
    assert.equal(await f.verify('bob', 'builder'), true);
  });

  it('follows a Kubernetes Secret update (the ..data symlink swapped)', async function () {
    const mount = join(dir, 'secret');
    await mkdir(join(mount, '..v1'), { recursive: true });
    await writeFile(join(mount, '..v1', 'htpasswd'), `${alice}\n`);
    await symlink('..v1', join(mount, '..data'));
    await symlink('..data/htpasswd', join(mount, 'htpasswd'));
    const f = await HtpasswdFile.open(join(mount, 'htpasswd'), { pollMs: 100 });
    open.push(f);
    assert.equal(await f.verify('alice', 'wonderland'), true);
    await mkdir(join(mount, '..v2'));
    await writeFile(join(mount, '..v2', 'htpasswd'), `${bob}\n`);
    await symlink('..v2', join(mount, '..data_tmp'));
    await rename(join(mount, '..data_tmp'), join(mount, '..data'));
    await rm(join(mount, '..v1'), { recursive: true });
    await until(() => f.users.has('bob'));
    assert.equal(await f.verify('alice', 'wonderland'), false);
    assert.equal(f.status(), undefined);
  });
});
