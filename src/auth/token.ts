// Verifying bearer tokens of the Docker registry token specification with `jose`: the key comes from the token's
// x5c chain (which must end in a certificate of rootcertbundle), from its `kid` (a bundle certificate's JWK
// thumbprint or libtrust key id, as Distribution and docker_auth name them, or a JWKS key), then the signature,
// `iss`, `aud` (= service), `exp` and `nbf` are checked with a minute of leeway. Verified tokens are cached until
// they expire, so a client's every request costs a lookup rather than a signature check.
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  calculateJwkThumbprint,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  exportJWK,
  jwtVerify,
  type JWK,
  type JWTVerifyGetKey,
  type ProtectedHeaderParameters,
} from 'jose';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { TOKEN_ALGORITHMS, type TokenConfig } from '../config/auth.js';
import type { FailureReason } from './metrics.js';
import { covers, type Grant } from './scope.js';
import { watchFiles, type FileWatcher } from './watch.js';

/** Clock skew allowed on `exp` and `nbf`, as in Distribution. */
export const LEEWAY_SECONDS = 60;
const MAX_TOKEN_LENGTH = 8192;

/** A token refused, with the metric's reason and a message for the client. */
export class TokenError extends Error {
  readonly reason: Extract<FailureReason, 'invalid_token' | 'expired_token' | 'wrong_claims'>;

  constructor(reason: TokenError['reason'], message: string) {
    super(message);
    this.name = 'TokenError';
    this.reason = reason;
  }
}

/** What a verified token says. */
export interface TokenGrant extends Grant {
  /** Milliseconds since the epoch after which the token (with leeway) is no longer good. */
  readonly expiresAt: number;
}

/** The trusted keys: root certificates for x5c chains and keys by id. */
export interface Keys {
  readonly roots: readonly X509Certificate[];
  readonly byKid: ReadonlyMap<string, KeyObject>;
}

/** Certificates of a PEM bundle. */
export function parsePemCertificates(pem: string, source: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new Error(`${source}: certificate ${i + 1} cannot be parsed: ${err instanceof Error ? err.message : err}`);
    }
  });
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** libtrust's key id (docker_auth's and Distribution 2's `kid`): base32 of the first 30 bytes of SHA-256(SPKI DER). */
export function libtrustKeyId(key: KeyObject): string {
  const digest = createHash('sha256')
    .update(key.export({ format: 'der', type: 'spki' }))
    .digest()
    .subarray(0, 30);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return (out.match(/.{1,4}/g) ?? []).join(':');
}

/** Reads the keys rootcertbundle and jwks name; throws naming the file that cannot be used. */
export async function loadKeys(config: TokenConfig): Promise<Keys> {
  const roots: X509Certificate[] = [];
  const byKid = new Map<string, KeyObject>();
  const bundle = config.rootcertbundle ?? '';
  if (bundle !== '') {
    const certs = parsePemCertificates(await readFile(bundle, 'utf8'), bundle);
    if (certs.length === 0) throw new Error(`${bundle}: no PEM certificate in the bundle`);
    for (const cert of certs) {
      roots.push(cert);
      const key = cert.publicKey;
      byKid.set(await calculateJwkThumbprint((await exportJWK(key)) as JWK), key);
      byKid.set(libtrustKeyId(key), key);
    }
  }
  const jwks = config.jwks ?? '';
  if (jwks !== '' && !isUrl(jwks)) {
    const parsed: unknown = JSON.parse(await readFile(jwks, 'utf8'));
    const keys = typeof parsed === 'object' && parsed !== null && 'keys' in parsed ? parsed.keys : undefined;
    if (!Array.isArray(keys) || keys.length === 0) throw new Error(`${jwks}: not a JWK Set with keys`);
    for (const [i, jwk] of keys.entries()) {
      const kid = typeof jwk === 'object' && jwk !== null && 'kid' in jwk ? jwk.kid : undefined;
      if (typeof kid !== 'string' || kid === '') throw new Error(`${jwks}: key ${i + 1} has no kid`);
      if ('d' in jwk) throw new Error(`${jwks}: key ${kid} is a private key; give the registry public keys only`);
      byKid.set(kid, createPublicKey({ key: jwk as JWK & import('node:crypto').JsonWebKey, format: 'jwk' }));
    }
  }
  return { roots, byKid };
}

function isUrl(s: string): boolean {
  return /^https?:\/\//.test(s);
}

function validNow(cert: X509Certificate, now: number): boolean {
  return Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
}

/** The leaf's key of an x5c chain that ends in one of `roots`; throws when it does not. */
function chainKey(x5c: unknown, roots: readonly X509Certificate[]): KeyObject {
  if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > 10 || !x5c.every((c) => typeof c === 'string')) {
    throw new TokenError('invalid_token', 'the x5c header is not a certificate chain');
  }
  const certs = x5c.map((b64: string) => {
    try {
      return new X509Certificate(Buffer.from(b64, 'base64'));
    } catch {
      throw new TokenError('invalid_token', 'a certificate of the x5c chain cannot be parsed');
    }
  });
  const now = Date.now();
  const leaf = certs[0] as X509Certificate;
  let current = leaf;
  for (let depth = 0; depth < certs.length; depth++) {
    if (!validNow(current, now))
      throw new TokenError('invalid_token', 'a certificate of the x5c chain is not valid now');
    if (roots.some((r) => r.fingerprint256 === current.fingerprint256)) return leaf.publicKey;
    const root = roots.find((r) => current.checkIssued(r) && current.verify(r.publicKey) && validNow(r, now));
    if (root !== undefined) return leaf.publicKey;
    const next = certs.find((c) => c !== current && c.ca && current.checkIssued(c) && current.verify(c.publicKey));
    if (next === undefined) break;
    current = next;
  }
  throw new TokenError('invalid_token', 'the x5c chain does not lead to a certificate of rootcertbundle');
}

export interface TokenVerifierOptions {
  readonly log?: Logger;
  readonly pollMs?: number;
}

export class TokenVerifier {
  readonly #config: TokenConfig;
  readonly #algorithms: readonly string[];
  readonly #remote: JWTVerifyGetKey | undefined;
  readonly #cache = new LRUCache<string, TokenGrant>({ max: 10_000 });
  readonly #log: Logger | undefined;
  readonly #watcher: FileWatcher;
  #keys: Keys;
  #problem: string | undefined;

  private constructor(config: TokenConfig, keys: Keys, options: TokenVerifierOptions) {
    this.#config = config;
    this.#keys = keys;
    this.#log = options.log;
    this.#algorithms = config.signingalgorithms ?? TOKEN_ALGORITHMS;
    const jwks = config.jwks ?? '';
    this.#remote = isUrl(jwks) ? createRemoteJWKSet(new URL(jwks), { cooldownDuration: 30_000 }) : undefined;
    const files = [config.rootcertbundle ?? '', isUrl(jwks) ? '' : jwks].filter((f) => f !== '');
    this.#watcher = watchFiles(
      files,
      () => this.reload(),
      options.pollMs === undefined ? {} : { pollMs: options.pollMs },
    );
  }

  /** Loads the keys (throwing when a file is missing or bad) and follows changes of their files. */
  static async open(config: TokenConfig, options: TokenVerifierOptions = {}): Promise<TokenVerifier> {
    return new TokenVerifier(config, await loadKeys(config), options);
  }

  async reload(): Promise<void> {
    try {
      this.#keys = await loadKeys(this.#config);
      this.#cache.clear();
      this.#problem = undefined;
      this.#log?.info('token auth keys loaded');
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (message !== this.#problem)
        this.#log?.warn({ err: message }, 'token auth keys not usable; the last good stay');
      this.#problem = message;
    }
  }

  status(): string | undefined {
    return this.#problem === undefined ? undefined : `${this.#problem}; the last good token keys stay in force`;
  }

  /** The grant of a token; throws TokenError when it is not good. */
  async verify(token: string): Promise<TokenGrant> {
    const cached = this.#cache.get(token);
    if (cached !== undefined) {
      if (cached.expiresAt > Date.now()) return cached;
      this.#cache.delete(token);
    }
    if (token.length > MAX_TOKEN_LENGTH) throw new TokenError('invalid_token', 'the token is too long');
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new TokenError('invalid_token', 'the token cannot be parsed');
    }
    const alg = typeof header.alg === 'string' ? header.alg : '';
    if (!this.#algorithms.includes(alg)) {
      throw new TokenError('invalid_token', `signing algorithm ${JSON.stringify(alg.slice(0, 20))} is not accepted`);
    }
    const key = this.#keyFor(header);
    let payload: Record<string, unknown>;
    try {
      const options = {
        algorithms: [...this.#algorithms],
        issuer: this.#config.issuer,
        audience: this.#config.service,
        clockTolerance: LEEWAY_SECONDS,
        requiredClaims: ['exp'],
      };
      payload = (
        key === 'remote' && this.#remote !== undefined
          ? await jwtVerify(token, this.#remote, options)
          : await jwtVerify(token, key as KeyObject, options)
      ).payload;
    } catch (err) {
      throw fromJose(err);
    }
    const grant = grantOf(payload);
    // Cached for as long as it stays good, so a request with it costs a lookup.
    const ttl = grant.expiresAt - Date.now();
    if (ttl > 0) this.#cache.set(token, grant, { ttl });
    return grant;
  }

  #keyFor(header: ProtectedHeaderParameters): KeyObject | 'remote' {
    const { roots, byKid } = this.#keys;
    if (header.x5c !== undefined) return chainKey(header.x5c, roots);
    const jwk = header.jwk;
    if (jwk !== undefined) {
      // An embedded key is trusted only through its chain or as a key we already hold; never by itself.
      if (Array.isArray(jwk.x5c) && jwk.x5c.length > 0) return chainKey(jwk.x5c, roots);
      const known = typeof jwk.kid === 'string' ? byKid.get(jwk.kid) : undefined;
      if (known === undefined) throw new TokenError('invalid_token', 'the token embeds a key that is not trusted');
      return known;
    }
    const kid = typeof header.kid === 'string' ? header.kid : undefined;
    if (kid === undefined) throw new TokenError('invalid_token', 'the token names no key (no x5c, jwk or kid)');
    const known = byKid.get(kid);
    if (known !== undefined) return known;
    if (this.#remote !== undefined) return 'remote';
    throw new TokenError(
      'invalid_token',
      `the token is signed by an unknown key (kid ${JSON.stringify(kid.slice(0, 80))})`,
    );
  }

  close(): void {
    this.#watcher.close();
  }
}

function fromJose(err: unknown): TokenError {
  if (err instanceof TokenError) return err;
  if (err instanceof errors.JWTExpired) return new TokenError('expired_token', 'the token has expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return new TokenError('expired_token', 'the token is not valid yet');
    if (err.claim === 'iss') return new TokenError('wrong_claims', 'the token was issued by another issuer');
    if (err.claim === 'aud') return new TokenError('wrong_claims', 'the token is meant for another service');
    return new TokenError('invalid_token', `the token's ${err.claim} claim is not acceptable`);
  }
  if (err instanceof errors.JWKSNoMatchingKey)
    return new TokenError('invalid_token', 'the token is signed by an unknown key');
  if (err instanceof errors.JOSEError) return new TokenError('invalid_token', 'the token signature is not valid');
  return new TokenError('invalid_token', 'the token cannot be verified');
}

/** The `access` claim as a grant: `type:name` → actions; malformed entries grant nothing. */
function grantOf(payload: Record<string, unknown>): TokenGrant {
  const access = new Map<string, Set<string>>();
  const claims = Array.isArray(payload['access']) ? (payload['access'] as unknown[]) : [];
  for (const entry of claims) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { type, name, actions } = entry as Record<string, unknown>;
    if (typeof type !== 'string' || typeof name !== 'string' || !Array.isArray(actions)) continue;
    const key = `${type}:${name}`;
    const set = access.get(key) ?? new Set<string>();
    for (const a of actions) if (typeof a === 'string') set.add(a);
    access.set(key, set);
  }
  const exp = typeof payload['exp'] === 'number' ? payload['exp'] : 0;
  const sub = typeof payload['sub'] === 'string' && payload['sub'] !== '' ? payload['sub'] : undefined;
  return {
    user: sub,
    expiresAt: (exp + LEEWAY_SECONDS) * 1000,
    allows: (type, name, action) => covers(access.get(`${type}:${name}`), action),
  };
}
