// Content digests: parsing by the OCI grammar, and incremental hashing of streamed content.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { RegistryError } from './errors.js';

export const Algorithms = { sha256: 64, sha512: 128 } as const;
export type Algorithm = keyof typeof Algorithms;

export interface Digest {
  readonly algorithm: Algorithm;
  readonly hex: string;
  /** `algorithm:hex`, the canonical string form. */
  readonly value: string;
}

// algorithm-component ([+._-] separated) ":" encoded, as the image-spec grammar has it.
const GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

function isAlgorithm(name: string): name is Algorithm {
  return Object.hasOwn(Algorithms, name);
}

/** Parses a digest string; throws DIGEST_INVALID naming what is wrong. */
export function parseDigest(input: string): Digest {
  if (input.length > 256 || !GRAMMAR.test(input)) {
    throw new RegistryError('DIGEST_INVALID', {
      message: 'invalid digest format',
      detail: { digest: input.slice(0, 300) },
    });
  }
  const colon = input.indexOf(':');
  const algorithm = input.slice(0, colon);
  const hex = input.slice(colon + 1);
  if (!isAlgorithm(algorithm)) {
    throw new RegistryError('DIGEST_INVALID', {
      message: `unsupported digest algorithm ${algorithm}`,
      detail: { digest: input },
    });
  }
  if (hex.length !== Algorithms[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw new RegistryError('DIGEST_INVALID', { message: `invalid ${algorithm} digest`, detail: { digest: input } });
  }
  return { algorithm, hex, value: input };
}

/** The digest `text` names, or undefined when it names none. */
export function digestOrUndefined(text: unknown): Digest | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    return parseDigest(text);
  } catch {
    return undefined;
  }
}

export function digestOf(algorithm: Algorithm, hex: string): Digest {
  return { algorithm, hex, value: `${algorithm}:${hex}` };
}

/** Digest of an in-memory buffer (manifests, small bodies). */
export function digestBuffer(data: Uint8Array, algorithm: Algorithm = 'sha256'): Digest {
  return digestOf(algorithm, createHash(algorithm).update(data).digest('hex'));
}

/** A pass-through stream that counts bytes and, given a hash, feeds every byte to it. */
export class HashingStream extends Transform {
  readonly hash: Hash | null;
  bytes = 0;

  constructor(hash: Hash | null) {
    super({ highWaterMark: 1 << 20 });
    this.hash = hash;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash?.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}
