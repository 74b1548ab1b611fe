// Go-style durations (`10s`, `1h30m`, `168h`), as CNCF Distribution's config uses them.
import { z } from 'zod';

export const GO_DURATION = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/;
const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses a Go-style duration (`10s`, `1h30m`, `168h`) into milliseconds. */
export function parseDuration(text: string): number {
  if (!GO_DURATION.test(text))
    throw new Error(`invalid duration ${JSON.stringify(text)} (use Go form, such as 30s or 1h30m)`);
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g))
    total += Number(m[1]) * (UNIT_MS[m[2] ?? 's'] ?? 0);
  return total;
}

/** A Go duration string, or a number of seconds; parsed to milliseconds. */
// The union carries its own message: with transforms inside, zod reports a failed union only as "Invalid input".
export const duration = z.union(
  [
    z
      .number()
      .nonnegative()
      .transform((n) => n * 1000),
    z
      .string()
      .refine((s) => GO_DURATION.test(s), { message: 'expected a duration such as 30s, 10m or 168h' })
      .transform(parseDuration),
  ],
  { error: 'expected a duration such as 30s, 10m or 168h, or a number of seconds' },
);
