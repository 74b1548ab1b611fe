import { InMemoryDriver } from '../../../src/storage/drivers/inmemory/index.js';
import { runDriverSuite } from '../../suites/driver-suite.js';

runDriverSuite('inmemory', async () => ({ driver: new InMemoryDriver(), cleanup: async () => {} }));
