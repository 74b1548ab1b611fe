// Builds the configured storage driver. The object-store drivers are loaded only when configured: their SDKs take
// about half a second of CPU to import, which every `berth` command (verify, gc on a disk, serve on a disk) would
// otherwise pay.
import type { StorageConfig } from '../../config/schema.js';
import type { StorageDriver } from '../driver.js';
import { FilesystemDriver } from './filesystem/index.js';
import { InMemoryDriver } from './inmemory/index.js';

export async function createDriver(config: StorageConfig): Promise<StorageDriver> {
  switch (config.driver) {
    case 'filesystem':
      return new FilesystemDriver(config);
    case 'inmemory':
      return new InMemoryDriver();
    case 's3':
      return new (await import('./s3/index.js')).S3Driver(config);
    case 'gcs':
      return new (await import('./gcs/index.js')).GcsDriver(config);
    case 'azure':
      return new (await import('./azure/index.js')).AzureDriver(config);
  }
}
