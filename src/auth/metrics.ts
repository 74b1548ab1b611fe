// registry_auth_failures_total{reason}: every refused authentication or authorization, by a reason from a fixed
// list (never a user name, which would let anyone grow the series without bound).
import { Counter, type Registry } from 'prom-client';

export const FAILURE_REASONS = [
  /** No credentials where they are needed (most clients' first request: they retry with them). */
  'missing',
  /** An Authorization header that cannot be read: empty, overlong, not base64 or not UTF-8, a wrong scheme. */
  'malformed',
  /** A wrong password or an unknown user (one reason, so the metric does not tell which). */
  'bad_credentials',
  /** Refused without checking because this address failed too often lately. */
  'throttled',
  /** A token whose signature, algorithm or key is not trusted, or that cannot be parsed. */
  'invalid_token',
  /** A token past its `exp` or before its `nbf`. */
  'expired_token',
  /** A token of another issuer or audience. */
  'wrong_claims',
  /** A valid token that does not grant what the request needs. */
  'insufficient_scope',
  /** An authenticated user the policy does not allow. */
  'denied',
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

export interface AuthMetrics {
  /** Counts one refused request. */
  failed(reason: FailureReason): void;
}

export function createAuthMetrics(registry: Registry | undefined): AuthMetrics {
  if (registry === undefined) return { failed: () => undefined };
  const existing = registry.getSingleMetric('registry_auth_failures_total');
  const counter =
    existing instanceof Counter
      ? (existing as Counter<'reason'>)
      : new Counter({
          name: 'registry_auth_failures_total',
          help: 'Requests refused by authentication or authorization, by reason.',
          labelNames: ['reason'] as const,
          registers: [registry],
        });
  // Every series exists from the start, so rate() sees the first failure.
  for (const reason of FAILURE_REASONS) counter.inc({ reason }, 0);
  return { failed: (reason) => counter.inc({ reason }) };
}
