// Small pieces both benchmark suites (run.ts's registry comparison and cache.ts) share: progress output, environment
// parsing, statistics, and the OCI media types they push.
import { createHash } from 'node:crypto';
import { REGISTRY_IDS, type RegistryId } from './registries.js';

export const MIB = 1024 * 1024;

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** Progress goes to stderr, so stdout carries nothing but the result table. */
export function progress(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export function envNumber(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new Error(`${name}=${raw}: expected a number from ${min} to ${max}`);
  return n;
}

/** BENCH_REGISTRIES as a subset of the known registries, in their usual order. */
export function registriesFromEnv(): RegistryId[] {
  const only = (process.env['BENCH_REGISTRIES'] ?? REGISTRY_IDS.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const registries = REGISTRY_IDS.filter((id) => only.includes(id));
  const unknown = only.filter((s) => !(REGISTRY_IDS as readonly string[]).includes(s));
  if (unknown.length > 0 || registries.length === 0)
    throw new Error(`BENCH_REGISTRIES: choose from ${REGISTRY_IDS.join(', ')}`);
  return registries;
}

export function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? Number.NaN) : ((s[mid - 1] ?? Number.NaN) + (s[mid] ?? Number.NaN)) / 2;
}

/** Nearest-rank percentile (`p` from 0 to 1); with few samples the high percentiles are the largest values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1));
  return s[i] ?? Number.NaN;
}

/** The order registries take a step in: rotated each step, so no registry always goes first on a drifting machine. */
export function rotated<T>(items: readonly T[], by: number): T[] {
  const k = items.length === 0 ? 0 : by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}
