// Builds the configured storage driver.
import type { StorageConfig } from '../../config/schema.js';
import type { StorageDriver } from '../driver.js';
import { FilesystemDriver } from './filesystem/index.js';
import { InMemoryDriver } from './inmemory/index.js';

export function createDriver(config: StorageConfig): StorageDriver {
  switch (config.driver) {
    case 'filesystem':
      return new FilesystemDriver(config);
    case 'inmemory':
      return new InMemoryDriver();
  }
}
