// The runtime's floor: the least a Node.js registry could do for the two operations whose targets Berth misses, with
// nothing of a registry around it (no name or digest grammar, no sessions in storage, no logs, no metrics, no error
// envelope). BENCH_SUITE=floor runs it beside Berth and Distribution 3, so a target can be set against what Node
// itself reaches on the machine. Never a registry to use: it trusts every request.
//
//   node dist/bench/floor-server.js <http|http-sync|koa|koa-redis> <port> <root> [redis-port]
//
// - GET /v2/ → 200.
// - POST …/blobs/uploads/ → 202 with a Location; PATCH → appended to a file while a running sha256 follows; PUT
//   ?digest= (optional last chunk) → the digest checked, the file flushed (fsync) and renamed into place, the
//   descriptor remembered. As in Berth's filesystem driver, the file's writeback starts each 32 MiB it grows.
// - HEAD …/blobs/<digest> → the remembered descriptor: from a Map (`http`, `koa`) or one HGETALL (`koa-redis`,
//   whose client gathers each event-loop turn's commands into one write, as Berth's does).
// It runs with Berth's default V8 flags (BERTH_GC=balanced). `http` answers through node:http alone, writing uploads
// through the thread pool; `http-sync` is the same with the writes on the event loop (writevSync); `koa` and
// `koa-redis` answer through one Koa middleware.
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { writevSync } from 'node:fs';
import { mkdir, open, rename, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { pipeline } from 'node:stream/promises';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { coalesceWrites } from '../src/cache/redis-coalesce.js';
import { gcFlags } from '../src/cli/gc.js';
import { DATASYNC, WRITEBACK_STEP } from '../src/storage/drivers/filesystem/index.js';

export const FLOOR_KINDS = ['http', 'http-sync', 'koa', 'koa-redis'] as const;
export type FloorKind = (typeof FLOOR_KINDS)[number];

interface Descriptor {
  readonly digest: string;
  readonly size: number;
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
}

/** Where descriptors live: a Map, or Redis hashes under Distribution's key names. */
interface Descriptors {
  get(digest: string): Promise<Descriptor | undefined> | Descriptor | undefined;
  set(d: Descriptor): Promise<void>;
}

function mapDescriptors(): Descriptors {
  const map = new Map<string, Descriptor>();
  return {
    get: (digest) => map.get(digest),
    set: async (d) => {
      map.set(d.digest, d);
    },
  };
}

function redisDescriptors(port: number): Descriptors {
  const redis = new Redis({ host: '127.0.0.1', port, enableAutoPipelining: false });
  coalesceWrites(redis);
  return {
    get: async (digest) => {
      const h = await redis.hgetall(`blobs::${digest}`);
      return h['digest'] === undefined ? undefined : { digest: h['digest'], size: Number(h['size']) };
    },
    set: async (d) => {
      await redis.hset(`blobs::${d.digest}`, 'digest', d.digest, 'size', String(d.size));
    },
  };
}

interface Session {
  readonly file: string;
  hash: Hash;
  size: number;
  /** The writeback running, if any (at most one per file). */
  writeback?: Promise<void> | undefined;
}

const MIB = 1024 * 1024;
const UPLOADS = /^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/;
const BLOB = /^\/v2\/(.+)\/blobs\/([^/]+)$/;

class Floor {
  readonly #root: string;
  readonly #descriptors: Descriptors;
  readonly #sessions = new Map<string, Session>();

  readonly #syncWrites: boolean;

  constructor(root: string, descriptors: Descriptors, syncWrites: boolean) {
    this.#root = root;
    this.#descriptors = descriptors;
    this.#syncWrites = syncWrites;
  }

  /** The answer to a request whose body (if any) has not been read yet. */
  async handle(req: IncomingMessage): Promise<Answer> {
    const url = new URL(req.url ?? '/', 'http://floor');
    const path = url.pathname;
    if (path === '/v2/' || path === '/v2') return done(req, 200);
    const upload = UPLOADS.exec(path);
    if (upload !== null) {
      const [, name = '', id = ''] = upload;
      if (req.method === 'POST') return this.#start(req, name);
      const session = this.#sessions.get(id);
      if (session === undefined) return done(req, 404);
      await this.#append(req, session);
      if (req.method === 'PATCH') {
        return {
          status: 202,
          headers: { location: `/v2/${name}/blobs/uploads/${id}`, range: `0-${session.size - 1}` },
        };
      }
      return this.#finish(id, session, url.searchParams.get('digest') ?? '');
    }
    const blob = BLOB.exec(path);
    if (blob !== null && req.method === 'HEAD') {
      const d = await this.#descriptors.get(blob[2] ?? '');
      if (d === undefined) return done(req, 404);
      return {
        status: 200,
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(d.size),
          'docker-content-digest': d.digest,
        },
      };
    }
    return done(req, 404);
  }

  async #start(req: IncomingMessage, name: string): Promise<Answer> {
    req.resume();
    const id = randomUUID();
    const file = join(this.#root, 'uploads', id);
    await mkdir(join(this.#root, 'uploads'), { recursive: true });
    await writeFile(file, '');
    this.#sessions.set(id, { file, hash: createHash('sha256'), size: 0 });
    return { status: 202, headers: { location: `/v2/${name}/blobs/uploads/${id}`, range: '0-0' } };
  }

  /**
   * Streams the body onto the session's file, hashing it on the way (a copy of the state, kept only on success):
   * socket chunks are gathered up to 1 MiB and written with one writev on the thread pool, as Berth's driver does.
   */
  async #append(req: IncomingMessage, session: Session): Promise<void> {
    const hash = session.hash.copy();
    let bytes = 0;
    const grown = (): void => {
      const before = Math.floor((session.size + bytes - lastWrite) / WRITEBACK_STEP);
      if (Math.floor((session.size + bytes) / WRITEBACK_STEP) > before && session.writeback === undefined) {
        session.writeback = DATASYNC(session.file)
          .catch(() => undefined)
          .finally(() => (session.writeback = undefined));
      }
    };
    let lastWrite = 0;
    const handle = await open(session.file, 'a');
    try {
      const sink = this.#syncWrites
        ? new Writable({
            highWaterMark: MIB,
            writev(chunks, callback) {
              const buffers = chunks.map((c) => c.chunk as Buffer);
              for (const b of buffers) hash.update(b);
              const total = buffers.reduce((n, b) => n + b.length, 0);
              const written = writevSync(handle.fd, buffers);
              bytes += written;
              lastWrite = written;
              grown();
              callback(written === total ? null : new Error('short write'));
            },
          })
        : new Writable({
            highWaterMark: MIB,
            writev(chunks, callback) {
              const buffers = chunks.map((c) => c.chunk as Buffer);
              for (const b of buffers) hash.update(b);
              const total = buffers.reduce((n, b) => n + b.length, 0);
              handle.writev(buffers).then((r) => {
                bytes += r.bytesWritten;
                lastWrite = r.bytesWritten;
                grown();
                // A short write (never seen on a local disk) fails the chunk rather than leave a hole behind the hash.
                callback(r.bytesWritten === total ? null : new Error('short write'));
              }, callback);
            },
          });
      await pipeline(req, sink);
    } finally {
      await handle.close();
    }
    session.hash = hash;
    session.size += bytes;
  }

  async #finish(id: string, session: Session, digest: string): Promise<Answer> {
    const actual = `sha256:${session.hash.digest('hex')}`;
    this.#sessions.delete(id);
    if (actual !== digest) return { status: 400, headers: {} };
    // Stored means on the disk, as for Berth and Distribution: the data is flushed before the blob becomes visible.
    await session.writeback;
    const handle = await open(session.file, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await mkdir(join(this.#root, 'blobs'), { recursive: true });
    await rename(session.file, join(this.#root, 'blobs', actual.slice('sha256:'.length)));
    await this.#descriptors.set({ digest: actual, size: session.size });
    return { status: 201, headers: { 'docker-content-digest': actual } };
  }
}

function done(req: IncomingMessage, status: number): Answer {
  req.resume();
  return { status, headers: {} };
}

function serveHttp(floor: Floor, port: number): void {
  const answer = (res: ServerResponse, a: Answer): void => {
    res.writeHead(a.status, { 'docker-distribution-api-version': 'registry/2.0', ...a.headers });
    res.end();
  };
  createServer((req, res) => {
    floor.handle(req).then(
      (a) => answer(res, a),
      () => answer(res, { status: 500, headers: {} }),
    );
  }).listen(port, '127.0.0.1');
}

function serveKoa(floor: Floor, port: number): void {
  const app = new Koa();
  app.use(async (ctx) => {
    const a = await floor.handle(ctx.req);
    ctx.set('docker-distribution-api-version', 'registry/2.0');
    for (const [k, v] of Object.entries(a.headers)) ctx.set(k, v);
    ctx.status = a.status;
    // Koa would otherwise answer an empty 200 with 204 semantics; the headers above carry the answer.
    if (a.headers['content-length'] !== undefined) ctx.length = Number(a.headers['content-length']);
    else ctx.body = '';
  });
  app.listen(port, '127.0.0.1');
}

function main(argv: readonly string[]): void {
  const [kind, portText, root, redisPortText] = argv;
  const port = Number(portText);
  if (!(FLOOR_KINDS as readonly string[]).includes(kind ?? '') || !Number.isInteger(port) || root === undefined) {
    process.stderr.write(`usage: floor-server <${FLOOR_KINDS.join('|')}> <port> <root> [redis-port]\n`);
    process.exit(2);
  }
  // Berth's default garbage-collector settings (BERTH_GC=balanced): with V8's own, a push of streamed 64 KiB socket
  // buffers runs a full collection every 10–20 MiB, and the floor would sit below Berth.
  const flags = gcFlags(undefined);
  if (flags instanceof Error) throw flags;
  for (const flag of flags) setFlagsFromString(flag);
  const descriptors = kind === 'koa-redis' ? redisDescriptors(Number(redisPortText)) : mapDescriptors();
  const floor = new Floor(root, descriptors, kind === 'http-sync');
  if (kind === 'http' || kind === 'http-sync') serveHttp(floor, port);
  else serveKoa(floor, port);
  process.once('SIGTERM', () => process.exit(0));
}

if (process.argv[1]?.endsWith('floor-server.js') === true) main(process.argv.slice(2));
