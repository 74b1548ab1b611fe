// Builds the configured storage driver.
import type { StorageConfig } from '../../config/schema.js';
import type { StorageDriver } from '../driver.js';
import { AzureDriver } from './azure/index.js';
import { FilesystemDriver } from './filesystem/index.js';
import { GcsDriver } from './gcs/index.js';
import { InMemoryDriver } from './inmemory/index.js';
import { S3Driver } from './s3/index.js';

export function createDriver(config: StorageConfig): StorageDriver {
  switch (config.driver) {
    case 'filesystem':
      return new FilesystemDriver(config);
    case 'inmemory':
      return new InMemoryDriver();
    case 's3':
      return new S3Driver(config);
    case 'gcs':
      return new GcsDriver(config);
    case 'azure':
      return new AzureDriver(config);
  }
}
