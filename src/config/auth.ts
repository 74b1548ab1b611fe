// The `auth:` section (CNCF Distribution's `htpasswd` and `token` keys) with Berth's own `policy`, and `http.tls`
// (Distribution's key names). Only the shapes live here; src/auth reads the files they name.
import { z } from 'zod';

/** Actions a token's `access` claim or a policy rule grants on a repository. */
export const REPOSITORY_ACTIONS = ['pull', 'push', 'delete', '*'] as const;
export type RepositoryAction = (typeof REPOSITORY_ACTIONS)[number];

/**
 * Signature algorithms Berth verifies tokens with. HMAC algorithms are left out on purpose: verifying them needs the
 * issuer's signing secret on every registry, and allowing them next to public keys invites algorithm confusion.
 */
export const TOKEN_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
export type TokenAlgorithm = (typeof TOKEN_ALGORITHMS)[number];

const HtpasswdSchema = z.strictObject({
  /** The realm in the `WWW-Authenticate: Basic` challenge. */
  realm: z.string().min(1).default('Berth Registry'),
  /** An htpasswd file of bcrypt entries (`htpasswd -B`), re-read whenever it changes. */
  path: z.string().min(1, { message: 'the htpasswd file path is required' }),
});

const TokenSchema = z
  .strictObject({
    /** The token endpoint clients are sent to (the challenge's realm). */
    realm: z.url({ message: 'expected the URL of the token endpoint' }),
    /** The name of this registry at the token service: the challenge's `service`, and the token's required `aud`. */
    service: z.string().min(1),
    /** The token's required `iss`. */
    issuer: z.string().min(1),
    /** PEM certificates: a token is trusted when its x5c chain ends in one, or its `kid` names one's key. */
    rootcertbundle: z.string().optional(),
    /** A JWK Set: a file, or an http(s) URL fetched (and refetched for an unknown `kid`). */
    jwks: z.string().optional(),
    signingalgorithms: z
      .array(
        z.string().refine((a): a is TokenAlgorithm => (TOKEN_ALGORITHMS as readonly string[]).includes(a), {
          error: (issue) =>
            /^HS/.test(String(issue.input))
              ? 'HMAC algorithms are refused: the registry would need the issuer’s signing secret'
              : `expected one of ${TOKEN_ALGORITHMS.join(', ')}`,
        }),
      )
      .min(1)
      .optional(),
    /** Send clients to this registry's own `autoredirectpath` (behind an ingress that routes it to the issuer). */
    autoredirect: z.boolean().default(false),
    autoredirectpath: z.string().startsWith('/').default('/auth/token'),
  })
  .superRefine((t, ctx) => {
    if ((t.rootcertbundle ?? '') === '' && (t.jwks ?? '') === '') {
      ctx.addIssue({
        code: 'custom',
        path: ['rootcertbundle'],
        message: 'token auth needs the issuer’s keys: a rootcertbundle, a jwks, or both',
      });
    }
  });

const actions = z.array(z.enum(REPOSITORY_ACTIONS)).min(1);

const PolicyRuleSchema = z.strictObject({
  /**
   * Repository globs: `*` matches within one path segment, `**` across segments, `?` one character. The first rule
   * with a matching glob decides; a repository no rule matches is open to nobody.
   */
  repository: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  /** Principal → actions. Principals: a user name, `@group`, `authenticated` (any user) or `anonymous` (anyone). */
  access: z.record(z.string().min(1), actions),
});

const PolicySchema = z.strictObject({
  /** Group name → user names. */
  groups: z
    .record(z.string().regex(/^[^@\s]+$/, 'a group name has no @ and no spaces'), z.array(z.string()))
    .default({}),
  /** Who may list /v2/_catalog (principals as in rules). */
  catalog: z.array(z.string().min(1)).default(['authenticated']),
  rules: z.array(PolicyRuleSchema).default([]),
});

export const AuthSchema = z
  .strictObject({
    htpasswd: HtpasswdSchema.optional(),
    token: TokenSchema.optional(),
    policy: PolicySchema.optional(),
    /** Distribution's test-only scheme. */
    silly: z.unknown().optional(),
  })
  .superRefine((a, ctx) => {
    if (a.silly !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['silly'], message: 'silly auth is a test scheme Berth does not offer' });
    }
    if (a.htpasswd !== undefined && a.token !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['token'], message: 'configure htpasswd or token auth, not both' });
    }
    if (a.token !== undefined && a.policy !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['policy'],
        message: 'a policy applies to htpasswd users; with token auth the token’s access claims decide',
      });
    }
  });

export type AuthConfig = z.output<typeof AuthSchema>;
export type HtpasswdConfig = z.output<typeof HtpasswdSchema>;
export type TokenConfig = z.output<typeof TokenSchema>;
export type PolicyConfig = z.output<typeof PolicySchema>;

/** Go's names of TLS 1.2 cipher suites (Distribution's `ciphersuites`) and OpenSSL's names for them. */
export const CIPHER_SUITES: Readonly<Record<string, string>> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  // TLS 1.3 suites keep their names.
  TLS_AES_128_GCM_SHA256: 'TLS_AES_128_GCM_SHA256',
  TLS_AES_256_GCM_SHA384: 'TLS_AES_256_GCM_SHA384',
  TLS_CHACHA20_POLY1305_SHA256: 'TLS_CHACHA20_POLY1305_SHA256',
};

export const TlsSchema = z.strictObject({
  /** PEM certificate chain (leaf first) and its key; both re-read when they change. */
  certificate: z.string().min(1, { message: 'the certificate file is required' }),
  key: z.string().min(1, { message: 'the key file is required' }),
  /** PEM CA files: when set, clients must present a certificate one of them issued (mutual TLS). */
  clientcas: z.array(z.string().min(1)).default([]),
  minimumversion: z
    .enum(['tls1.0', 'tls1.1', 'tls1.2', 'tls1.3'])
    .refine((v) => v === 'tls1.2' || v === 'tls1.3', {
      message: 'TLS 1.0 and 1.1 are refused; use tls1.2 or tls1.3',
    })
    .default('tls1.2'),
  ciphersuites: z
    .array(
      z.string().refine((s) => CIPHER_SUITES[s] !== undefined, {
        error: (issue) => `unknown or unsupported cipher suite ${String(issue.input)}`,
      }),
    )
    .default([]),
});

export type TlsConfig = z.output<typeof TlsSchema>;
