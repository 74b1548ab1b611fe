// Parsing of the HTTP pieces the distribution API relies on: Range, Content-Range, pagination and bounded bodies.
import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../oci/errors.js';
import type { ChunkRange } from '../storage/uploads.js';

export interface ByteRange {
  readonly start: number;
  /** Inclusive. */
  readonly end: number;
}

/**
 * Resolves a `Range` request header against a size. Absent, malformed or multi-range headers give undefined (serve
 * the whole blob, as RFC 9110 allows); a well-formed range past the end throws 416.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/i.exec(header.trim());
  if (m === null || (m[1] === '' && m[2] === '')) return undefined;
  const unsatisfiable = (): RegistryError =>
    new RegistryError('RANGE_INVALID', {
      message: `range ${header} not satisfiable for ${size} bytes`,
      headers: { 'Content-Range': `bytes */${size}` },
    });
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) throw unsatisfiable();
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) throw unsatisfiable();
  return { start, end };
}

/** Parses a chunk's `Content-Range` (`0-1023`, or `bytes 0-1023/*` as some clients write it). */
export function parseContentRange(header: string | undefined): ChunkRange | undefined {
  if (header === undefined || header === '') return undefined;
  const m = /^(?:bytes )?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (m === null)
    throw new RegistryError('BLOB_UPLOAD_INVALID', {
      message: `malformed Content-Range ${JSON.stringify(header.slice(0, 100))}`,
    });
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start || !Number.isSafeInteger(end)) {
    throw new RegistryError('RANGE_INVALID', { message: `Content-Range ${header} ends before it starts` });
  }
  return { start, end };
}

/**
 * Whether an `If-None-Match` header matches a content-addressed resource: a list of entity tags compared weakly
 * (RFC 9110), where `*`, the quoted digest or the bare digest (as some clients send it) all match.
 */
export function noneMatch(header: string, digest: string): boolean {
  if (header === '') return false;
  return header.split(',').some((raw) => {
    const tag = raw.trim().replace(/^W\//, '');
    return tag === '*' || tag === `"${digest}"` || tag === digest;
  });
}

/** The `Content-Length` of a request, when it has a valid one. */
export function contentLength(req: IncomingMessage): number | undefined {
  const raw = req.headers['content-length'];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** Whether a request carries a body (a non-zero Content-Length or chunked transfer encoding). */
export function hasBody(req: IncomingMessage): boolean {
  const length = contentLength(req);
  return (length !== undefined && length > 0) || req.headers['transfer-encoding'] !== undefined;
}

/** Parses the `n` pagination parameter. */
export function parseCount(raw: unknown, fallback: number | undefined, max: number): number | undefined {
  if (raw === undefined) return fallback;
  if (typeof raw !== 'string' || !/^\d{1,9}$/.test(raw)) {
    throw new RegistryError('PAGINATION_NUMBER_INVALID', {
      detail: { n: typeof raw === 'string' ? raw.slice(0, 50) : raw },
    });
  }
  return Math.min(Number(raw), max);
}

/** A query parameter given once, as a string. */
export function queryString(raw: unknown): string | undefined {
  if (Array.isArray(raw)) return typeof raw[0] === 'string' ? raw[0] : undefined;
  return typeof raw === 'string' ? raw : undefined;
}

/** Reads a request body of at most `limit` bytes; a larger one is refused with 413 before or as it arrives. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = (): RegistryError =>
    new RegistryError('SIZE_INVALID', {
      message: `body exceeds the ${limit}-byte limit`,
      status: 413,
      detail: { limit },
    });
  const declared = contentLength(req);
  if (declared !== undefined && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  // Leaving the loop early must not destroy the request: the boundary still answers on its connection.
  for await (const chunk of req.iterator({ destroyOnReturn: false })) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > limit) throw tooLarge();
    chunks.push(buf);
  }
  return Buffer.concat(chunks, total);
}
