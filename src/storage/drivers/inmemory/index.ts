// The in-memory driver: for tests and throwaway registries. Files are lists of chunks; directories are implied
// by the files below them and kept in a child index so listing is cheap.
import { Readable, Writable } from 'node:stream';
import {
  checkPath,
  checkReadRange,
  StorageError,
  type FileInfo,
  type FileWriter,
  type PositionalFile,
  type ReadOptions,
  type StorageDriver,
} from '../../driver.js';

interface MemFile {
  chunks: Buffer[];
  size: number;
  modTime: Date;
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export class InMemoryDriver implements StorageDriver {
  readonly name = 'inmemory';
  readonly #files = new Map<string, MemFile>();
  /** directory → its direct children (files and directories). */
  readonly #children = new Map<string, Set<string>>([['/', new Set()]]);

  #link(path: string): void {
    let child = path;
    let parent = parentOf(child);
    for (;;) {
      let set = this.#children.get(parent);
      const fresh = set === undefined;
      if (set === undefined) {
        set = new Set();
        this.#children.set(parent, set);
      }
      set.add(child);
      if (!fresh || parent === '/') return;
      child = parent;
      parent = parentOf(child);
    }
  }

  #unlink(path: string): void {
    let child = path;
    while (child !== '/') {
      const parent = parentOf(child);
      const set = this.#children.get(parent);
      set?.delete(child);
      if (set === undefined || set.size > 0 || parent === '/') return;
      this.#children.delete(parent);
      child = parent;
    }
  }

  #file(path: string): MemFile {
    const f = this.#files.get(checkPath(path));
    if (f === undefined) throw new StorageError('PathNotFound', path);
    return f;
  }

  #set(path: string, file: MemFile): void {
    if (this.#children.has(path)) throw new StorageError('InvalidPath', path, `${path} is a directory`);
    if (!this.#files.has(path)) this.#link(path);
    this.#files.set(path, file);
  }

  async getContent(path: string): Promise<Buffer> {
    const f = this.#file(path);
    return Buffer.concat(f.chunks, f.size);
  }

  async putContent(path: string, content: Uint8Array): Promise<void> {
    checkPath(path);
    const copy = Buffer.from(content);
    this.#set(path, { chunks: [copy], size: copy.length, modTime: new Date() });
  }

  async reader(path: string, options: ReadOptions = {}): Promise<Readable> {
    const f = this.#file(path);
    const offset = checkReadRange(path, options, f.size);
    const end = options.length === undefined ? f.size : Math.min(f.size, offset + options.length);
    const chunks = f.chunks.slice();
    function* slices(): Generator<Buffer> {
      let pos = 0;
      for (const c of chunks) {
        const from = Math.max(offset, pos);
        const to = Math.min(end, pos + c.length);
        if (to > from) yield c.subarray(from - pos, to - pos);
        pos += c.length;
        if (pos >= end) return;
      }
    }
    return Readable.from(slices(), {
      objectMode: false,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  }

  async open(path: string): Promise<PositionalFile> {
    const f = this.#file(path);
    // The file as it is now: a later replace swaps the chunk list, never the chunks.
    const chunks = f.chunks.slice();
    let closed = false;
    return {
      size: f.size,
      read: async (buffer, length, position) => {
        if (closed) throw new Error(`${path}: read after close`);
        let copied = 0;
        let pos = 0;
        for (const c of chunks) {
          const end = pos + c.length;
          if (copied < length && end > position + copied) {
            const from = position + copied - pos;
            copied += c.copy(buffer, copied, from, Math.min(c.length, from + length - copied));
          }
          pos = end;
          if (copied >= length) break;
        }
        return copied;
      },
      close: async () => {
        closed = true;
      },
    };
  }

  async writer(path: string, append: boolean): Promise<FileWriter> {
    checkPath(path);
    const existing = append ? this.#files.get(path) : undefined;
    const base = existing === undefined ? [] : existing.chunks.slice();
    const baseSize = existing?.size ?? 0;
    const pending: Buffer[] = [];
    let written = 0;
    let finished = false;
    const stream = new Writable({
      highWaterMark: 1 << 20,
      write(chunk: Buffer, _enc, cb) {
        pending.push(Buffer.from(chunk));
        written += chunk.length;
        cb();
      },
    });
    return {
      stream,
      size: () => baseSize + written,
      commit: async () => {
        if (finished) throw new Error('writer already finished');
        finished = true;
        this.#set(path, { chunks: [...base, ...pending], size: baseSize + written, modTime: new Date() });
      },
      cancel: async () => {
        finished = true;
        if (!stream.destroyed) stream.destroy();
      },
    };
  }

  async stat(path: string): Promise<FileInfo> {
    checkPath(path);
    const f = this.#files.get(path);
    if (f !== undefined) return { path, size: f.size, modTime: f.modTime, isDir: false };
    if (this.#children.has(path)) return { path, size: 0, modTime: new Date(0), isDir: true };
    throw new StorageError('PathNotFound', path);
  }

  async list(path: string): Promise<string[]> {
    checkPath(path);
    const set = this.#children.get(path);
    if (set === undefined) throw new StorageError('PathNotFound', path);
    return [...set];
  }

  async move(source: string, destination: string): Promise<void> {
    checkPath(destination);
    const f = this.#file(source);
    // Checked before the source is unlinked, so a refused move loses nothing.
    if (this.#children.has(destination))
      throw new StorageError('InvalidPath', destination, `${destination} is a directory`);
    this.#files.delete(source);
    this.#unlink(source);
    this.#set(destination, f);
  }

  async delete(path: string): Promise<void> {
    checkPath(path);
    if (this.#files.delete(path)) {
      this.#unlink(path);
      return;
    }
    if (!this.#children.has(path) || path === '/') {
      if (path === '/') {
        this.#files.clear();
        this.#children.clear();
        this.#children.set('/', new Set());
        return;
      }
      throw new StorageError('PathNotFound', path);
    }
    const prefix = `${path}/`;
    for (const key of [...this.#files.keys()]) if (key.startsWith(prefix)) this.#files.delete(key);
    for (const key of [...this.#children.keys()])
      if (key.startsWith(prefix) || key === path) this.#children.delete(key);
    this.#unlink(path);
  }

  async close(): Promise<void> {}
}
