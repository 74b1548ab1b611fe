// A small OCI distribution client on node:http for the benchmark: blob uploads streamed from a file (monolithic or
// chunked), blob downloads streamed to nowhere, and manifest pushes. Every call checks the answer it gets.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Agent, request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** A byte range of a file on disk, so a blob of any size is streamed and never held in memory. */
export interface FileRange {
  readonly file: string;
  readonly start: number;
  readonly length: number;
}

export type Body = Buffer | FileRange;

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

interface SendOptions {
  readonly headers?: Record<string, string>;
  readonly body?: Body;
}

/** Longest silence on a connection before a request is given up: bounds every call without capping slow transfers. */
const IDLE_TIMEOUT_MS = 120_000;
/** Answers we read into memory are small JSON documents; anything larger is drained and cut here. */
const MAX_REPLY_BYTES = 1024 * 1024;

export class RegistryError extends Error {
  constructor(what: string, reply: Pick<Reply, 'status' | 'body'>) {
    super(`${what}: HTTP ${reply.status} ${reply.body.toString('utf8', 0, Math.min(reply.body.length, 400))}`);
  }
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export class RegistryClient {
  readonly #base: URL;
  /** One keep-alive socket, as a single docker or skopeo layer upload would use. */
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 1 });

  constructor(base: URL) {
    this.#base = base;
  }

  close(): void {
    this.#agent.destroy();
  }

  #url(pathOrUrl: string): URL {
    return new URL(pathOrUrl, this.#base);
  }

  /** Sends one request and resolves once the response has started, leaving its body to the caller. */
  #start(method: string, url: URL, options: SendOptions): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const body = options.body;
      const length = body?.length ?? 0;
      const headers: Record<string, string> = { ...options.headers };
      if (method !== 'GET' && method !== 'HEAD') headers['content-length'] = String(length);
      if (length > 0 && headers['content-type'] === undefined) headers['content-type'] = 'application/octet-stream';
      const req = request(url, { method, headers, agent: this.#agent, timeout: IDLE_TIMEOUT_MS }, resolve);
      req.on('timeout', () =>
        req.destroy(new Error(`${method} ${url.pathname}: no progress for ${IDLE_TIMEOUT_MS} ms`)),
      );
      req.on('error', reject);
      if (body === undefined || Buffer.isBuffer(body)) {
        req.end(body);
      } else if (body.length === 0) {
        req.end();
      } else {
        const source = createReadStream(body.file, {
          start: body.start,
          end: body.start + body.length - 1,
          highWaterMark: 1024 * 1024,
        });
        // A server that answers early (an error) may close the socket mid-body; the response still tells us why.
        pipeline(source, req).catch((err: unknown) => reject(err instanceof Error ? err : new Error(String(err))));
      }
    });
  }

  /** Sends a request and reads the (small) answer. */
  async send(method: string, pathOrUrl: string, options: SendOptions = {}): Promise<Reply> {
    const res = await this.#start(method, this.#url(pathOrUrl), options);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res) {
      const b = chunk as Buffer;
      if (size < MAX_REPLY_BYTES) chunks.push(b);
      size += b.length;
    }
    return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
  }

  /** POST /v2/<repo>/blobs/uploads/ and return the session's Location. */
  async #openUpload(repo: string): Promise<string> {
    const reply = await this.send('POST', `/v2/${repo}/blobs/uploads/`);
    const location = header(reply.headers, 'location');
    if (reply.status !== 202 || location === undefined) throw new RegistryError(`open upload in ${repo}`, reply);
    return location;
  }

  async #closeUpload(repo: string, location: string, digest: string, body: Body | undefined): Promise<void> {
    const url = this.#url(location);
    url.searchParams.append('digest', digest);
    const reply = await this.send('PUT', url.href, body === undefined ? {} : { body });
    if (reply.status !== 201) throw new RegistryError(`complete upload of ${digest} in ${repo}`, reply);
    const got = header(reply.headers, 'docker-content-digest');
    if (got !== undefined && got !== digest) throw new Error(`upload of ${digest} in ${repo}: registry says ${got}`);
  }

  /** A monolithic upload: POST a session, then one PUT ?digest= with the whole blob (Distribution 2.8 lacks single-POST). */
  async pushMonolithic(repo: string, body: Body, digest: string): Promise<void> {
    const location = await this.#openUpload(repo);
    await this.#closeUpload(repo, location, digest, body);
  }

  /** A chunked upload: POST, one PATCH with Content-Range per chunk (following each new Location), then PUT ?digest=. */
  async pushChunked(repo: string, source: FileRange, digest: string, chunkSize: number): Promise<void> {
    let location = await this.#openUpload(repo);
    const chunks = Math.ceil(source.length / chunkSize);
    for (let i = 0; i < chunks; i++) {
      const offset = i * chunkSize;
      const length = Math.min(chunkSize, source.length - offset);
      const reply = await this.send('PATCH', location, {
        body: { file: source.file, start: source.start + offset, length },
        headers: { 'content-range': `${offset}-${offset + length - 1}` },
      });
      const next = header(reply.headers, 'location');
      if (reply.status !== 202 || next === undefined)
        throw new RegistryError(`chunk ${i + 1}/${chunks} of ${digest} in ${repo}`, reply);
      location = next;
    }
    await this.#closeUpload(repo, location, digest, undefined);
  }

  /**
   * GETs a blob and throws it away, checking its length and the digest the registry names. With `hash`, the body is
   * also hashed here; that costs this process about a second per GiB, so timed pulls leave it off.
   */
  async pull(repo: string, digest: string, size: number, hash: boolean): Promise<void> {
    const res = await this.#start('GET', this.#url(`/v2/${repo}/blobs/${digest}`), {});
    if (res.statusCode !== 200) {
      const body: Buffer[] = [];
      for await (const chunk of res) body.push(chunk as Buffer);
      throw new RegistryError(`pull ${digest} from ${repo}`, {
        status: res.statusCode ?? 0,
        body: Buffer.concat(body),
      });
    }
    const named = header(res.headers, 'docker-content-digest');
    if (named !== undefined && named !== digest)
      throw new Error(`pull ${digest} from ${repo}: registry names ${named}`);
    const hasher = hash ? createHash('sha256') : undefined;
    let received = 0;
    await pipeline(
      res,
      new Writable({
        highWaterMark: 1024 * 1024,
        write(chunk: Buffer, _encoding, done) {
          received += chunk.length;
          hasher?.update(chunk);
          done();
        },
      }),
    );
    if (received !== size) throw new Error(`pull ${digest} from ${repo}: got ${received} bytes, expected ${size}`);
    if (hasher !== undefined) {
      const got = `sha256:${hasher.digest('hex')}`;
      if (got !== digest) throw new Error(`pull ${digest} from ${repo}: content hashes to ${got}`);
    }
  }

  async putManifest(repo: string, reference: string, mediaType: string, manifest: Buffer): Promise<void> {
    const reply = await this.send('PUT', `/v2/${repo}/manifests/${reference}`, {
      body: manifest,
      headers: { 'content-type': mediaType },
    });
    if (reply.status !== 201) throw new RegistryError(`put manifest ${repo}:${reference}`, reply);
  }
}
