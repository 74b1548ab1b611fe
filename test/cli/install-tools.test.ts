// scripts/install-test-tools.sh checks its prerequisites before it changes anything, and names what is missing. It
// runs here with a PATH of stubs and a few read-only tools: no apt-get, sudo or mkdir, so it can install nothing.
import assert from 'node:assert/strict';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT, removeDir, tempDir } from '../helpers/harness.js';
import { requireTool, runCommand, type CommandResult } from '../helpers/images.js';

const SCRIPT = join(REPO_ROOT, 'scripts', 'install-test-tools.sh');

interface Machine {
  /** What `go version` prints; no go at all when undefined. */
  readonly go?: string;
  /** Where the go stub goes: on PATH, or only in the folder the script also looks in. */
  readonly goWhere?: 'path' | 'fallback';
  readonly packagesInstalled: boolean;
  readonly uid: number;
}

describe('install-test-tools.sh prerequisites', function () {
  this.timeout(30_000);
  let dir: string;

  beforeEach(async () => {
    dir = await tempDir('berth-install-tools-');
  });

  afterEach(async () => {
    await removeDir(dir);
  });

  async function stub(folder: string, name: string, body: string): Promise<void> {
    await writeFile(join(folder, name), `#!/bin/sh\n${body}\n`);
    await chmod(join(folder, name), 0o755);
  }

  async function run(machine: Machine): Promise<CommandResult> {
    const bin = join(dir, 'bin');
    const fallback = join(dir, 'go', 'bin');
    await mkdir(bin, { recursive: true });
    await mkdir(fallback, { recursive: true });
    for (const tool of ['dirname', 'grep', 'sed']) await symlink(await requireTool(tool), join(bin, tool));
    await stub(bin, 'id', `echo ${machine.uid}`);
    await stub(bin, 'dpkg-query', machine.packagesInstalled ? "printf 'install ok installed'" : 'exit 1');
    if (machine.go !== undefined)
      await stub(machine.goWhere === 'fallback' ? fallback : bin, 'go', `echo '${machine.go}'`);
    const result = await runCommand(await requireTool('bash'), [SCRIPT], {
      timeoutMs: 20_000,
      env: { PATH: bin, BERTH_GO_DIR: fallback },
    });
    // It stopped at the check: no step after it ran.
    assert.doesNotMatch(result.stderr, /\[tools\] (apt|oci-conformance|kube-apiserver|kubectl)/, result.stderr);
    return result;
  }

  it('refuses a Go older than 1.26, naming the version it found and where to get a newer one', async () => {
    const r = await run({ go: 'go version go1.20 linux/amd64', packagesInstalled: true, uid: 0 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /cannot install the test tools/);
    assert.match(r.stderr, /Go >= 1\.26 .*says "go version go1\.20 linux\/amd64".*https:\/\/go\.dev\/dl\//);
    assert.equal(r.stderr.trim().split('\n').length, 2, r.stderr);
  });

  it('says there is no Go, rather than exiting 127 without a word', async () => {
    const r = await run({ packagesInstalled: true, uid: 0 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`there is no go on PATH nor in ${join(dir, 'go', 'bin')}: get it from`));
  });

  it('also looks for Go in the fallback folder when it is not on PATH', async () => {
    const r = await run({
      go: 'go version go1.25.3 linux/amd64',
      goWhere: 'fallback',
      packagesInstalled: true,
      uid: 0,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`${join(dir, 'go', 'bin', 'go')} says "go version go1\\.25\\.3`));
  });

  it('needs apt-get, and root or sudo, only to install missing packages, and says so', async () => {
    const good = 'go version go1.26.8 linux/amd64';
    const r = await run({ go: good, packagesInstalled: false, uid: 1000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /apt-get installs skopeo umoci .*, and there is none/);
    assert.match(r.stderr, /apt-get must run as root .*: run this as root, or install sudo/);
    assert.doesNotMatch(r.stderr, /Go >= 1\.26/);
  });
});
