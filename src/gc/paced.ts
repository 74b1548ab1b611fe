// A storage driver that lets calls through at a bounded rate: online collection shares its process, its CPU and its
// disk with the requests the registry serves, so it walks the store at a pace those requests hardly notice.
import type { Readable } from 'node:stream';
import type { FileInfo, FileWriter, ReadOptions, StorageDriver } from '../storage/driver.js';

/** `driver` with every storage call (but close) started no sooner than 1/`perSecond` s after the one before. */
export function pacedDriver(driver: StorageDriver, perSecond: number): StorageDriver {
  const gapMs = 1000 / perSecond;
  let next = 0;
  const turn = async (): Promise<void> => {
    const now = performance.now();
    const at = Math.max(now, next);
    next = at + gapMs;
    if (at > now) await new Promise((resolve) => setTimeout(resolve, at - now));
  };
  const paced =
    <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      await turn();
      return call(...args);
    };
  const abortIncomplete = driver.abortIncomplete?.bind(driver);
  return {
    name: driver.name,
    getContent: paced((path: string): Promise<Buffer> => driver.getContent(path)),
    putContent: paced((path: string, content: Uint8Array): Promise<void> => driver.putContent(path, content)),
    reader: paced((path: string, options?: ReadOptions): Promise<Readable> => driver.reader(path, options)),
    writer: paced((path: string, append: boolean): Promise<FileWriter> => driver.writer(path, append)),
    stat: paced((path: string): Promise<FileInfo> => driver.stat(path)),
    list: paced((path: string): Promise<string[]> => driver.list(path)),
    move: paced((source: string, destination: string): Promise<void> => driver.move(source, destination)),
    delete: paced((path: string): Promise<void> => driver.delete(path)),
    ...(abortIncomplete === undefined ? {} : { abortIncomplete }),
    close: () => driver.close(),
  };
}
