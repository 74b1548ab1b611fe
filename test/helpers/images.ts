// Helpers for integration tests that drive real clients: running tools with a timeout, building OCI layouts offline
// with umoci, a hermetic environment for skopeo, plain HTTP requests (streamed or whole) and registry-level checks.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { access, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { request as httpRequestRaw, type IncomingHttpHeaders, type ClientRequest } from 'node:http';
import { dirname, join } from 'node:path';
import { once } from 'node:events';

// ---------------------------------------------------------------------------------------------------------------
// Child processes

export interface CommandResult {
  readonly command: string;
  /** Exit code, or null when the process died of a signal (for example our timeout). */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  readonly durationMs: number;
}

export interface CommandOptions {
  readonly cwd?: string;
  readonly env?: Record<string, string>;
  /** The process is SIGKILLed after this long. */
  readonly timeoutMs: number;
}

/** Runs a command to completion (or to its timeout, when it is SIGKILLed) and captures its output. */
export function runCommand(file: string, args: readonly string[], options: CommandOptions): Promise<CommandResult> {
  const started = Date.now();
  const command = [file, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env ?? { PATH: process.env['PATH'] ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ command, code, signal, stdout, stderr, timedOut, durationMs: Date.now() - started });
    });
  });
}

/** Like runCommand, but throws (with the output) unless the command exits 0. */
export async function runChecked(
  file: string,
  args: readonly string[],
  options: CommandOptions,
): Promise<CommandResult> {
  const result = await runCommand(file, args, options);
  if (result.code !== 0) throw new Error(describeFailure(result));
  return result;
}

export function describeFailure(result: CommandResult): string {
  const how = result.timedOut
    ? `timed out after ${result.durationMs} ms`
    : `exited with ${result.code ?? result.signal}`;
  return `${result.command} ${how}\n--- stdout\n${result.stdout.slice(-4000)}\n--- stderr\n${result.stderr.slice(-4000)}`;
}

const INSTALL_HINT = 'run `bash scripts/install-test-tools.sh` to install the test tools';

/** Resolves an executable (an absolute path, or a name looked up on PATH); fails with an install hint when missing. */
export async function requireTool(nameOrPath: string): Promise<string> {
  const candidates = nameOrPath.includes('/')
    ? [nameOrPath]
    : (process.env['PATH'] ?? '')
        .split(':')
        .filter(Boolean)
        .map((dir) => join(dir, nameOrPath));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw new Error(
    `${nameOrPath} is not installed (looked in ${nameOrPath.includes('/') ? nameOrPath : 'PATH'}); ${INSTALL_HINT}`,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Digests and OCI layouts

export function sha256(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** One layer: file paths (relative, `/`-separated) and their contents. */
export type LayerFiles = Readonly<Record<string, Uint8Array | string>>;

export interface BuiltLayout {
  readonly dir: string;
  readonly tag: string;
  readonly manifestDigest: string;
}

/**
 * Builds an image offline as an OCI layout with umoci: `init`, `new`, one `raw add-layer` per layer (tarred with
 * GNU tar, deterministically), then `gc` so the layout holds only the blobs of the tagged image.
 */
export async function buildOciLayout(
  workDir: string,
  layoutName: string,
  tag: string,
  layers: readonly LayerFiles[],
): Promise<BuiltLayout> {
  const umoci = await requireTool('umoci');
  const tar = await requireTool('tar');
  const dir = join(workDir, layoutName);
  const opts = { cwd: workDir, timeoutMs: 60_000 };
  await runChecked(umoci, ['init', '--layout', dir], opts);
  await runChecked(umoci, ['new', '--image', `${dir}:${tag}`], opts);
  for (const [i, files] of layers.entries()) {
    const root = join(workDir, `${layoutName}-layer${i}`);
    for (const [path, content] of Object.entries(files)) {
      const full = join(root, path);
      await mkdir(dirname(full), { recursive: true });
      await writeFile(full, content);
    }
    const archive = `${root}.tar`;
    await runChecked(
      tar,
      ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', root, '-cf', archive, '.'],
      opts,
    );
    await runChecked(
      umoci,
      ['raw', 'add-layer', '--image', `${dir}:${tag}`, '--history.created_by', `layer ${i}`, archive],
      opts,
    );
  }
  await runChecked(umoci, ['gc', '--layout', dir], opts);
  const index = await readLayoutIndex(dir);
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (entry === undefined) throw new Error(`umoci wrote no index entry for ${tag} in ${dir}`);
  return { dir, tag, manifestDigest: entry.digest };
}

export interface LayoutDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface ImageManifest {
  readonly schemaVersion: number;
  readonly mediaType?: string;
  readonly config: LayoutDescriptor;
  readonly layers: readonly LayoutDescriptor[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function toDescriptor(v: unknown, where: string): LayoutDescriptor {
  if (
    !isRecord(v) ||
    typeof v['mediaType'] !== 'string' ||
    typeof v['digest'] !== 'string' ||
    typeof v['size'] !== 'number'
  ) {
    throw new Error(`${where}: not a descriptor: ${JSON.stringify(v)}`);
  }
  const annotations = isRecord(v['annotations']) ? (v['annotations'] as Record<string, string>) : undefined;
  return {
    mediaType: v['mediaType'],
    digest: v['digest'],
    size: v['size'],
    ...(annotations === undefined ? {} : { annotations }),
  };
}

/** Parses an image manifest (OCI or Docker schema 2), checking the fields the tests use. */
export function parseImageManifest(body: Buffer | string): ImageManifest {
  const json: unknown = JSON.parse(body.toString());
  if (!isRecord(json) || typeof json['schemaVersion'] !== 'number' || !Array.isArray(json['layers'])) {
    throw new Error(`not an image manifest: ${body.toString().slice(0, 300)}`);
  }
  return {
    schemaVersion: json['schemaVersion'],
    ...(typeof json['mediaType'] === 'string' ? { mediaType: json['mediaType'] } : {}),
    config: toDescriptor(json['config'], 'config'),
    layers: json['layers'].map((l, i) => toDescriptor(l, `layers[${i}]`)),
  };
}

export async function readLayoutIndex(dir: string): Promise<{ manifests: LayoutDescriptor[] }> {
  const json: unknown = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
  if (!isRecord(json) || !Array.isArray(json['manifests'])) throw new Error(`${dir}/index.json has no manifests`);
  return { manifests: json['manifests'].map((m, i) => toDescriptor(m, `index.json manifests[${i}]`)) };
}

/** Every blob file of an OCI layout: digest → bytes. */
export async function readLayoutBlobs(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const algorithm of await readdir(join(dir, 'blobs'))) {
    for (const hex of await readdir(join(dir, 'blobs', algorithm))) {
      out.set(`${algorithm}:${hex}`, await readFile(join(dir, 'blobs', algorithm, hex)));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// skopeo

export interface SkopeoContext {
  readonly bin: string;
  readonly policy: string;
  readonly env: Record<string, string>;
}

/**
 * A skopeo that reads nothing from the user's configuration: its own HOME, an empty registries.conf, and a
 * signature policy that accepts anything.
 */
export async function skopeoContext(dir: string): Promise<SkopeoContext> {
  const bin = await requireTool('skopeo');
  const home = join(dir, 'home');
  await mkdir(home, { recursive: true });
  const policy = join(dir, 'policy.json');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const registries = join(dir, 'registries.conf');
  await writeFile(registries, '');
  return {
    bin,
    policy,
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: home,
      XDG_RUNTIME_DIR: home,
      XDG_CONFIG_HOME: join(home, '.config'),
      CONTAINERS_REGISTRIES_CONF: registries,
      REGISTRY_AUTH_FILE: join(home, 'auth.json'),
    },
  };
}

/** Runs `skopeo --policy P <args>`; throws with the output unless it exits 0. */
export function skopeo(ctx: SkopeoContext, args: readonly string[], timeoutMs = 120_000): Promise<CommandResult> {
  return runChecked(ctx.bin, ['--policy', ctx.policy, ...args], { env: ctx.env, timeoutMs });
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP

export interface HttpResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string | number>;
  readonly body?: Uint8Array | string;
  readonly timeoutMs?: number;
}

/** A streamed request body: write pieces when the test wants, then end it or abandon it. */
export interface StreamingRequest {
  readonly request: ClientRequest;
  /** Writes a piece, waiting for the socket to drain; rejects when the connection failed. */
  write(chunk: Uint8Array): Promise<void>;
  /** Ends the body and waits for the response. */
  finish(): Promise<HttpResponse>;
  /** The response; already marked handled, so a crash of the server is no unhandled rejection. */
  readonly response: Promise<HttpResponse>;
}

/** Opens a request on its own connection (no keep-alive agent) and returns before sending the body. */
export function openRequest(url: string, options: Omit<RequestOptions, 'body'> = {}): StreamingRequest {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const request = httpRequestRaw(url, {
    method: options.method ?? 'GET',
    headers: options.headers ?? {},
    agent: false,
  });
  const response = new Promise<HttpResponse>((resolve, reject) => {
    const timer = setTimeout(
      () => request.destroy(new Error(`${options.method ?? 'GET'} ${url} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    request.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    request.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      res.once('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
    });
  });
  response.catch(() => undefined);
  return {
    request,
    response,
    write: async (chunk) => {
      if (request.destroyed) throw new Error(`${url}: the connection is gone`);
      if (!request.write(chunk)) {
        await Promise.race([once(request, 'drain'), response.then(() => undefined)]);
      }
    },
    finish: async () => {
      request.end();
      return response;
    },
  };
}

/** One request with a whole body; resolves with status, headers and the whole response body. */
export function httpRequest(url: string, options: RequestOptions = {}): Promise<HttpResponse> {
  const body =
    options.body === undefined
      ? undefined
      : typeof options.body === 'string'
        ? Buffer.from(options.body)
        : options.body;
  const headers = { ...(body === undefined ? {} : { 'Content-Length': body.length }), ...options.headers };
  const req = openRequest(url, { ...options, headers });
  if (body !== undefined) req.request.write(body);
  return req.finish();
}

export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

// ---------------------------------------------------------------------------------------------------------------
// Registry operations over plain HTTP

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';

/** Pushes a blob in one monolithic POST; throws unless the registry answers 201. */
export async function pushBlob(base: string, repo: string, data: Uint8Array): Promise<string> {
  const digest = sha256(data);
  const res = await httpRequest(`${base}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: data,
  });
  if (res.status !== 201) throw new Error(`pushing blob ${digest} to ${repo}: ${res.status} ${res.body.toString()}`);
  return digest;
}

export interface SmallImage {
  readonly manifest: Buffer;
  readonly manifestDigest: string;
  readonly blobs: ReadonlyMap<string, Buffer>;
}

/** A small OCI image (a config and `layerCount` layers of `layerSize` bytes), unique through `label`. */
export function makeSmallImage(label: string, layerCount = 2, layerSize = 4096): SmallImage {
  const blobs = new Map<string, Buffer>();
  const layers: LayoutDescriptor[] = [];
  for (let i = 0; i < layerCount; i++) {
    const data = Buffer.alloc(layerSize);
    // Deterministic but distinct content: a label-derived hash stream.
    let block = createHash('sha256').update(`${label}/${i}`).digest();
    for (let off = 0; off < layerSize; off += block.length) {
      block.copy(data, off);
      block = createHash('sha256').update(block).digest();
    }
    const digest = sha256(data);
    blobs.set(digest, data);
    layers.push({ mediaType: OCI_LAYER, digest, size: data.length });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      author: label,
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    }),
  );
  const configDigest = sha256(config);
  blobs.set(configDigest, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
      layers,
    }),
  );
  return { manifest, manifestDigest: sha256(manifest), blobs };
}

/** Pushes every blob of an image, then its manifest under `tag`; throws on any unexpected answer. */
export async function pushSmallImage(base: string, repo: string, tag: string, image: SmallImage): Promise<void> {
  for (const data of image.blobs.values()) await pushBlob(base, repo, data);
  const res = await httpRequest(`${base}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'Content-Type': OCI_MANIFEST },
    body: image.manifest,
  });
  if (res.status !== 201) throw new Error(`pushing manifest ${tag} to ${repo}: ${res.status} ${res.body.toString()}`);
}

/** The tags of a repository, or `null` when the registry says the repository is unknown (404). */
export async function listTags(base: string, repo: string): Promise<string[] | null> {
  const res = await httpRequest(`${base}/v2/${repo}/tags/list`);
  if (res.status === 404) return null;
  if (res.status !== 200) throw new Error(`tags/list of ${repo}: ${res.status} ${res.body.toString()}`);
  const json: unknown = JSON.parse(res.body.toString());
  if (!isRecord(json)) throw new Error(`tags/list of ${repo}: ${res.body.toString()}`);
  const tags = json['tags'];
  return Array.isArray(tags) ? tags.map(String).sort() : [];
}

// ---------------------------------------------------------------------------------------------------------------
// Storage on disk (the filesystem driver's layout, which is CNCF Distribution's)

export function blobDataPath(root: string, digest: string): string {
  const [algorithm = '', hex = ''] = digest.split(':');
  return join(root, 'docker', 'registry', 'v2', 'blobs', algorithm, hex.slice(0, 2), hex, 'data');
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The filesystem driver's write-to-temp-then-rename files (`<name>.tmp-<hex>`); a crash may leave them behind. */
const TEMP_FILE = /\.tmp-[0-9a-f]+$/;

/**
 * Every blob data file under the storage root whose bytes do not hash to the digest its path names, and every file
 * that is neither a blob's `data` nor a temporary file of the driver (which the driver never reads as content).
 */
export async function corruptBlobs(root: string): Promise<string[]> {
  const bad: string[] = [];
  const blobs = join(root, 'docker', 'registry', 'v2', 'blobs');
  if (!(await exists(blobs))) return bad;
  for (const algorithm of await readdir(blobs)) {
    for (const prefix of await readdir(join(blobs, algorithm))) {
      for (const hex of await readdir(join(blobs, algorithm, prefix))) {
        const dir = join(blobs, algorithm, prefix, hex);
        for (const name of await readdir(dir)) {
          const file = join(dir, name);
          if (TEMP_FILE.test(name)) continue;
          if (name !== 'data') {
            bad.push(`${file} (unexpected file next to a blob)`);
            continue;
          }
          const actual = await sha256File(file);
          if (actual !== `${algorithm}:${hex}`) bad.push(`${file} hashes to ${actual}`);
        }
      }
    }
  }
  return bad;
}

/** Temporary files of the filesystem driver left anywhere under the storage root (for example by a crash). */
export async function leftoverTempFiles(root: string): Promise<string[]> {
  const found: string[] = [];
  const visit = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) await visit(full);
      else if (TEMP_FILE.test(entry.name)) found.push(full);
    }
  };
  if (await exists(root)) await visit(root);
  return found;
}
