import assert from 'node:assert/strict';
import { StorageError } from '../../../src/storage/driver.js';
import { FilesystemDriver } from '../../../src/storage/drivers/filesystem/index.js';
import { SyncMode } from '../../../src/storage/drivers/filesystem/sync-mode.js';
import { removeDir, tempDir } from '../../helpers/harness.js';
import { runDriverSuite } from '../../suites/driver-suite.js';

runDriverSuite('filesystem', async () => {
  const dir = await tempDir('berth-fs-driver-');
  return { driver: new FilesystemDriver({ rootdirectory: dir }), cleanup: () => removeDir(dir) };
});

// What a slow disk gets: every stat and read on the thread pool.
runDriverSuite('filesystem (thread pool)', async () => {
  const dir = await tempDir('berth-fs-driver-');
  const io = { stats: new SyncMode({ allowed: false }), reads: new SyncMode({ allowed: false }) };
  return { driver: new FilesystemDriver({ rootdirectory: dir }, io), cleanup: () => removeDir(dir) };
});

describe('filesystem driver: small-file cache', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('berth-fs-cache-');
  });
  afterEach(() => removeDir(dir));

  it('sees every replacement another process makes, even of the same size', async function () {
    this.timeout(10_000);
    const reader = new FilesystemDriver({ rootdirectory: dir });
    const writer = new FilesystemDriver({ rootdirectory: dir });
    await writer.putContent('/tag/link', Buffer.from('value-000'));
    // Old enough to be cached by the reader.
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await reader.getContent('/tag/link')).toString(), 'value-000');
    for (let i = 1; i <= 50; i++) {
      const value = `value-${String(i).padStart(3, '0')}`;
      await writer.putContent('/tag/link', Buffer.from(value));
      assert.equal((await reader.getContent('/tag/link')).toString(), value);
    }
  });

  it('reports a cached file deleted by another process as missing', async function () {
    this.timeout(10_000);
    const reader = new FilesystemDriver({ rootdirectory: dir });
    const writer = new FilesystemDriver({ rootdirectory: dir });
    await writer.putContent('/a/link', Buffer.from('x'));
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await reader.getContent('/a/link')).toString(), 'x');
    await writer.delete('/a/link');
    await assert.rejects(
      reader.getContent('/a/link'),
      (err: unknown) => err instanceof StorageError && err.kind === 'PathNotFound',
    );
  });
});
