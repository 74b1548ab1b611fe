import { FilesystemDriver } from '../../../src/storage/drivers/filesystem/index.js';
import { removeDir, tempDir } from '../../helpers/harness.js';
import { runDriverSuite } from '../../suites/driver-suite.js';

runDriverSuite('filesystem', async () => {
  const dir = await tempDir('berth-fs-driver-');
  return { driver: new FilesystemDriver({ rootdirectory: dir }), cleanup: () => removeDir(dir) };
});
