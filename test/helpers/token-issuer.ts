// A small token issuer for tests: the token endpoint of the Docker registry token specification
// (GET /token?service=…&scope=…, Basic credentials optional), signing with `jose` under a key whose certificate
// openssl makes, so Berth can trust it through rootcertbundle (x5c or kid) or a JWKS. Tests also use `sign` to forge
// the hostile tokens a real issuer would never make.
import { createHash, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  calculateJwkThumbprint,
  exportJWK,
  importPKCS8,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from 'jose';
import { runChecked } from './images.js';

export type IssuerAlgorithm = 'RS256' | 'ES256' | 'EdDSA';

export interface SigningKey {
  readonly alg: IssuerAlgorithm;
  readonly privateKey: CryptoKey;
  /** The PEM certificate of the key (self-signed). */
  readonly certPem: string;
  readonly certPath: string;
  /** base64 DER of the certificate, as x5c carries it. */
  readonly certDer: string;
  /** The public key as a JWK with its thumbprint as kid. */
  readonly jwk: JWK;
  readonly kid: string;
}

const NEWKEY: Record<IssuerAlgorithm, string[]> = {
  RS256: ['-newkey', 'rsa:2048'],
  ES256: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  EdDSA: ['-newkey', 'ed25519'],
};

/** A key pair and a self-signed certificate for it, made by openssl in `dir`. */
export async function makeSigningKey(dir: string, alg: IssuerAlgorithm, name: string = alg): Promise<SigningKey> {
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.crt`);
  await runChecked(
    'openssl',
    [
      'req',
      '-x509',
      ...NEWKEY[alg],
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '2',
      '-subj',
      `/CN=berth test token issuer ${name}`,
    ],
    { timeoutMs: 30_000 },
  );
  const certPem = await readFile(certPath, 'utf8');
  const privateKey = await importPKCS8(await readFile(keyPath, 'utf8'), alg, { extractable: true });
  const cert = new X509Certificate(certPem);
  const jwk = await exportJWK(cert.publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { alg, privateKey, certPem, certPath, certDer: cert.raw.toString('base64'), jwk: { ...jwk, kid, alg }, kid };
}

/** Writes a JWK Set of the keys' public halves. */
export async function writeJwks(path: string, keys: readonly SigningKey[]): Promise<void> {
  await writeFile(path, JSON.stringify({ keys: keys.map((k) => k.jwk) }));
}

export interface AccessEntry {
  readonly type: string;
  readonly name: string;
  readonly actions: readonly string[];
}

export interface SignOptions {
  readonly issuer?: string;
  readonly audience?: string | string[];
  readonly subject?: string;
  readonly access?: readonly AccessEntry[];
  /** Seconds from now; negative for an expired token. */
  readonly expiresIn?: number;
  readonly notBefore?: number;
  /** How the token names its key. */
  readonly keyRef?: 'kid' | 'x5c' | 'none';
  readonly kid?: string;
  readonly extra?: JWTPayload;
}

/** Signs a token with `key`, as the issuer would (or, with options, as it would not). */
export async function sign(key: SigningKey, options: SignOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const ref = options.keyRef ?? 'kid';
  const header = {
    alg: key.alg,
    typ: 'JWT',
    ...(ref === 'kid' ? { kid: options.kid ?? key.kid } : {}),
    ...(ref === 'x5c' ? { x5c: [key.certDer] } : {}),
  };
  const jwt = new SignJWT({ access: options.access ?? [], ...options.extra })
    .setProtectedHeader(header)
    .setIssuer(options.issuer ?? 'test-issuer')
    .setAudience(options.audience ?? 'berth-test')
    .setIssuedAt(now)
    .setNotBefore(now + (options.notBefore ?? 0))
    .setExpirationTime(now + (options.expiresIn ?? 300))
    .setJti(createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 16));
  if (options.subject !== undefined) jwt.setSubject(options.subject);
  return jwt.sign(key.privateKey);
}

/** Who may do what at the issuer: user → password and a function granting actions per repository. */
export interface IssuerUser {
  readonly password: string;
  readonly grant: (repository: string) => readonly string[];
}

export interface TokenIssuer {
  readonly url: string;
  readonly realm: string;
  /** Tokens handed out, with the scopes they were asked for. */
  readonly issued: Array<{ user: string | undefined; scopes: string[] }>;
  close(): Promise<void>;
}

/**
 * Starts the token endpoint on 127.0.0.1: Basic credentials of `users` (or none, anonymous), each requested scope
 * granted as far as the user's rule allows, a token for `service` signed with `key` (named by x5c or kid).
 */
export async function startTokenIssuer(options: {
  readonly key: SigningKey;
  readonly service: string;
  readonly issuer: string;
  readonly users: Readonly<Record<string, IssuerUser>>;
  readonly anonymous?: (repository: string) => readonly string[];
  readonly keyRef?: 'kid' | 'x5c';
}): Promise<TokenIssuer> {
  const issued: TokenIssuer['issued'] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://issuer');
      if (url.pathname !== '/token') {
        res.writeHead(404).end();
        return;
      }
      let user: string | undefined;
      const auth = req.headers.authorization;
      if (auth !== undefined && /^basic /i.test(auth)) {
        const [name = '', password] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(/:(.*)/s);
        if (options.users[name]?.password !== password) {
          res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"details":"bad credentials"}');
          return;
        }
        user = name;
      }
      if (url.searchParams.get('service') !== options.service) {
        res.writeHead(400).end('{"details":"unknown service"}');
        return;
      }
      const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ').filter(Boolean));
      issued.push({ user, scopes });
      const access: AccessEntry[] = [];
      for (const scope of scopes) {
        const [type, ...rest] = scope.split(':');
        const actions = (rest.pop() ?? '').split(',');
        const name = rest.join(':');
        if (type !== 'repository') continue;
        const rule = user === undefined ? options.anonymous : options.users[user]?.grant;
        const allowed = rule?.(name) ?? [];
        const granted = actions.filter((a) => allowed.includes(a) || allowed.includes('*'));
        if (granted.length > 0) access.push({ type, name, actions: granted });
      }
      const token = await sign(options.key, {
        issuer: options.issuer,
        audience: options.service,
        ...(user === undefined ? {} : { subject: user }),
        access,
        keyRef: options.keyRef ?? 'x5c',
      });
      const body = JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(body);
    })().catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    realm: `http://127.0.0.1:${port}/token`,
    issued,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A test CA and a server certificate for 127.0.0.1 (and localhost) it signed, made with openssl. */
export interface TestCa {
  readonly caCert: string;
  readonly caKey: string;
}

export async function makeCa(dir: string, name = 'ca'): Promise<TestCa> {
  const caKey = join(dir, `${name}.key`);
  const caCert = join(dir, `${name}.crt`);
  await runChecked(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      caKey,
      '-out',
      caCert,
      '-days',
      '2',
      '-subj',
      `/CN=berth test ${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    { timeoutMs: 30_000 },
  );
  return { caCert, caKey };
}

/** A certificate signed by `ca`: for a server (SAN 127.0.0.1, localhost) or a client. Returns [cert, key] paths. */
export async function issueCert(
  dir: string,
  ca: TestCa,
  name: string,
  kind: 'server' | 'client',
): Promise<{ cert: string; key: string }> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  await writeFile(
    ext,
    kind === 'server'
      ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'
      : 'extendedKeyUsage=clientAuth\n',
  );
  const opts = { timeoutMs: 30_000 };
  await runChecked(
    'openssl',
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      csr,
      '-subj',
      `/CN=${name}`,
    ],
    opts,
  );
  await runChecked(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.caCert,
      '-CAkey',
      ca.caKey,
      '-CAcreateserial',
      '-out',
      cert,
      '-days',
      '2',
      '-extfile',
      ext,
    ],
    opts,
  );
  return { cert, key };
}
