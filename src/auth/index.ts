// Access control for the registry API: htpasswd (with an optional policy) or token auth, behind one interface the
// HTTP layer calls with the scopes a request needs. Every refusal is a RegistryError the boundary renders as the
// OCI envelope: 401 with the challenge, 403 for a user the policy does not allow, 429 for an address backing off.
import type { Logger } from 'pino';
import type { AuthConfig, TokenConfig } from '../config/auth.js';
import { RegistryError } from '../oci/errors.js';
import { FailureBackoff, type BackoffOptions } from './backoff.js';
import { parseAuthorization } from './credentials.js';
import { HtpasswdFile } from './htpasswd.js';
import type { AuthMetrics, FailureReason } from './metrics.js';
import { Policy } from './policy.js';
import { allowsAll, formatScope, type Grant, type Scope } from './scope.js';
import { TokenError, TokenVerifier } from './token.js';

export { CATALOG_SCOPE, OPEN_GRANT, repositoryScope, type Grant, type Scope } from './scope.js';
export { createAuthMetrics, FAILURE_REASONS, type AuthMetrics } from './metrics.js';

/** What access control reads of a request. */
export interface AuthRequest {
  readonly authorization: string | undefined;
  /** The client's address, for backing off failed logins. */
  readonly address: string;
  /** The Host header and whether the connection is TLS (token auth's autoredirect builds its realm from them). */
  readonly host: string;
  readonly secure: boolean;
}

export interface AccessController {
  /**
   * Resolves with the client's grant when it has every action of `needed` (an empty list: any valid login, or
   * anonymous access where some exists); otherwise throws a RegistryError (401 with the challenge, 403, 429). The
   * challenge asks for `needed` and `wanted`: scopes a handler uses when granted (a mount's source) and can do
   * without.
   */
  authorize(req: AuthRequest, needed: readonly Scope[], wanted?: readonly Scope[]): Promise<Grant>;
  /** Undefined when healthy; else what is wrong (a bad htpasswd file or key file, the last good one serving). */
  status(): string | undefined;
  close(): void;
}

export interface AccessControllerOptions {
  readonly log?: Logger;
  readonly metrics: AuthMetrics;
  /** How often watched files are statted besides fs.watch. */
  readonly pollMs?: number;
  readonly backoff?: BackoffOptions;
}

/** The access controller of a config; undefined when the registry is open to everyone. */
export async function createAccessController(
  config: AuthConfig | undefined,
  options: AccessControllerOptions,
): Promise<AccessController | undefined> {
  if (config === undefined) return undefined;
  const files = {
    ...(options.log === undefined ? {} : { log: options.log }),
    ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
  };
  if (config.token !== undefined) {
    return new TokenAccess(config.token, await TokenVerifier.open(config.token, files), options.metrics);
  }
  if (config.htpasswd === undefined && config.policy === undefined) return undefined;
  const htpasswd = config.htpasswd === undefined ? undefined : await HtpasswdFile.open(config.htpasswd.path, files);
  return new BasicAccess(
    config.htpasswd?.realm ?? 'Berth Registry',
    htpasswd,
    config.policy === undefined ? undefined : new Policy(config.policy),
    new FailureBackoff(options.backoff),
    options.metrics,
  );
}

/** A challenge parameter value, quoted as RFC 7235 wants it. */
function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

function unauthorized(challenge: string, message: string, code: 'UNAUTHORIZED' | 'DENIED' = 'UNAUTHORIZED') {
  return new RegistryError(code, { status: 401, message, headers: { 'WWW-Authenticate': challenge } });
}

/** Basic auth against an htpasswd file, and the policy (or, without one, full access for every valid user). */
class BasicAccess implements AccessController {
  readonly #challenge: string;
  readonly #htpasswd: HtpasswdFile | undefined;
  readonly #policy: Policy | undefined;
  readonly #backoff: FailureBackoff;
  readonly #metrics: AuthMetrics;

  constructor(
    realm: string,
    htpasswd: HtpasswdFile | undefined,
    policy: Policy | undefined,
    backoff: FailureBackoff,
    metrics: AuthMetrics,
  ) {
    this.#challenge = `Basic realm=${quote(realm)}`;
    this.#htpasswd = htpasswd;
    this.#policy = policy;
    this.#backoff = backoff;
    this.#metrics = metrics;
  }

  #fail(reason: FailureReason, message: string): never {
    this.#metrics.failed(reason);
    throw unauthorized(this.#challenge, message);
  }

  async authorize(req: AuthRequest, needed: readonly Scope[]): Promise<Grant> {
    const creds = parseAuthorization(req.authorization);
    let user: string | undefined;
    if (creds.kind === 'malformed') this.#fail('malformed', creds.why);
    if (creds.kind === 'bearer') this.#fail('malformed', 'this registry takes Basic credentials');
    if (creds.kind === 'basic') {
      const wait = this.#backoff.retryAfter(req.address);
      if (wait > 0) {
        this.#metrics.failed('throttled');
        const seconds = Math.ceil(wait / 1000);
        throw new RegistryError('TOOMANYREQUESTS', {
          message: `too many failed logins from this address; try again in ${seconds} s`,
          headers: { 'Retry-After': String(seconds) },
        });
      }
      if (this.#htpasswd === undefined || !(await this.#htpasswd.verify(creds.user, creds.password))) {
        this.#backoff.failed(req.address);
        this.#fail('bad_credentials', 'invalid user name or password');
      }
      this.#backoff.succeeded(req.address);
      user = creds.user;
    }
    const grant: Grant =
      this.#policy?.grant(user) ?? (user === undefined ? { user, allows: () => false } : { user, allows: () => true });
    if (needed.length === 0) {
      // The API base answers 200 to a valid login only. Clients learn from this ping whether to send credentials at
      // all: containers/image (skopeo, podman, buildah) and Docker never send them after a 200, so a user allowed to
      // push could not. A client without credentials takes the 401 and goes on anonymously, which a policy may allow.
      if (user !== undefined) return grant;
      this.#fail('missing', 'authentication required');
    }
    if (allowsAll(grant, needed)) return grant;
    if (user === undefined) this.#fail('missing', `authentication required for ${needed.map(formatScope).join(' ')}`);
    this.#metrics.failed('denied');
    throw new RegistryError('DENIED', {
      message: `${user} may not ${needed.map(formatScope).join(' ')}`,
    });
  }

  status(): string | undefined {
    return this.#htpasswd?.status();
  }

  close(): void {
    this.#htpasswd?.close();
  }
}

/** Bearer tokens of the Docker registry token specification. */
class TokenAccess implements AccessController {
  readonly #config: TokenConfig;
  readonly #verifier: TokenVerifier;
  readonly #metrics: AuthMetrics;

  constructor(config: TokenConfig, verifier: TokenVerifier, metrics: AuthMetrics) {
    this.#config = config;
    this.#verifier = verifier;
    this.#metrics = metrics;
  }

  #challenge(req: AuthRequest, scopes: readonly Scope[], error?: string): string {
    const realm = this.#config.autoredirect
      ? `${req.secure ? 'https' : 'http'}://${req.host}${this.#config.autoredirectpath}`
      : this.#config.realm;
    let value = `Bearer realm=${quote(realm)},service=${quote(this.#config.service)}`;
    if (scopes.length > 0) value += `,scope=${quote(mergeScopes(scopes).map(formatScope).join(' '))}`;
    if (error !== undefined) value += `,error=${quote(error)}`;
    return value;
  }

  async authorize(req: AuthRequest, needed: readonly Scope[], wanted: readonly Scope[] = []): Promise<Grant> {
    const scopes = [...needed, ...wanted];
    const creds = parseAuthorization(req.authorization);
    if (creds.kind === 'none') {
      this.#metrics.failed('missing');
      throw unauthorized(this.#challenge(req, scopes), 'authentication required');
    }
    if (creds.kind !== 'bearer') {
      this.#metrics.failed('malformed');
      const why = creds.kind === 'malformed' ? creds.why : 'this registry takes bearer tokens';
      throw unauthorized(this.#challenge(req, scopes, 'invalid_token'), why);
    }
    let grant: Grant;
    try {
      grant = await this.#verifier.verify(creds.token);
    } catch (err) {
      const e = err instanceof TokenError ? err : new TokenError('invalid_token', 'the token cannot be verified');
      this.#metrics.failed(e.reason);
      throw unauthorized(this.#challenge(req, scopes, 'invalid_token'), e.message);
    }
    if (allowsAll(grant, needed)) return grant;
    // 401, not 403: clients answer it by asking the issuer for a token with the scope of the challenge.
    this.#metrics.failed('insufficient_scope');
    const missing = needed.filter((s) => !allowsAll(grant, [s]));
    throw unauthorized(
      this.#challenge(req, scopes, 'insufficient_scope'),
      `the token does not grant ${missing.map(formatScope).join(' ')}`,
      'DENIED',
    );
  }

  status(): string | undefined {
    return this.#verifier.status();
  }

  close(): void {
    this.#verifier.close();
  }
}

/** Scopes with their actions merged per resource, in first-seen order. */
function mergeScopes(scopes: readonly Scope[]): Scope[] {
  const merged = new Map<string, Scope>();
  for (const s of scopes) {
    const key = `${s.type}:${s.name}`;
    const prior = merged.get(key);
    merged.set(key, prior === undefined ? s : { ...s, actions: [...new Set([...prior.actions, ...s.actions])] });
  }
  return [...merged.values()];
}
