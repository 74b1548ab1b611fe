// What handlers receive: the Koa context with Berth's state, and the registry's shared parts.
import type { ParameterizedContext } from 'koa';
import type { Logger } from 'pino';
import type { AccessController, Grant } from '../auth/index.js';
import type { ResolvedConfig } from '../config/schema.js';
import type { EventSink } from '../notifications/index.js';
import type { RegistryStorage } from '../storage/registry.js';
import type { RouteName } from './routes.js';

export interface RegistryState {
  requestId: string;
  log: Logger;
  route: RouteName | 'unknown';
  /** What the client may do (everything when no auth is configured). */
  grant: Grant;
}

export type Ctx = ParameterizedContext<RegistryState>;

export interface RegistryDeps {
  readonly config: ResolvedConfig;
  readonly storage: RegistryStorage;
  readonly log: Logger;
  /** Where push, pull, delete and mount events go (notifications), when any endpoint is configured. */
  readonly events?: EventSink;
  /** Access control; without it the registry serves everyone. */
  readonly auth?: AccessController;
}

/** Builds the URLs Berth hands out in Location and Link headers. */
export class Urls {
  readonly #base: string;

  constructor(config: ResolvedConfig) {
    const prefix = (config.http.prefix ?? '').replace(/\/+$/, '');
    const host = config.http.host?.replace(/\/+$/, '') ?? '';
    this.#base = config.http.relativeurls ? prefix : `${host}${prefix}`;
  }

  blob(name: string, digest: string): string {
    return `${this.#base}/v2/${name}/blobs/${digest}`;
  }

  /** An upload session's location, with its signed `_state` when `http.secret` is set. */
  upload(name: string, id: string, state?: string): string {
    const url = `${this.#base}/v2/${name}/blobs/uploads/${id}`;
    return state === undefined ? url : `${url}?_state=${state}`;
  }

  manifest(name: string, reference: string): string {
    return `${this.#base}/v2/${name}/manifests/${reference}`;
  }

  tags(name: string, n: number, last: string): string {
    return `${this.#base}/v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(last)}`;
  }

  catalog(n: number, last: string): string {
    return `${this.#base}/v2/_catalog?n=${n}&last=${encodeURIComponent(last)}`;
  }
}

/** Ends a response with a status and no body (Koa would otherwise write the status text). */
export function emptyBody(ctx: Ctx, status: number): void {
  ctx.status = status;
  ctx.body = '';
  ctx.remove('Content-Type');
}
