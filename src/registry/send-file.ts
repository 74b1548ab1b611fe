// Sends a byte range of a file as the response body through a few buffers reused for every chunk: reading into a
// buffer only after the socket has taken the previous bytes from it. Streams allocate a fresh buffer per chunk,
// which costs a page fault per 4 KiB on every pull; this is the registry's answer to Go's sendfile.
import type { ServerResponse } from 'node:http';
import type { ReadCheck } from '../storage/blobs.js';
import type { PositionalFile } from '../storage/driver.js';

const CHUNK = 1 << 20;
/** Buffers per response: enough to keep a read in flight while the socket drains the others. */
const BUFFERS = 4;
/** A client that takes nothing for this long is dropped, so it can't hold the buffers and the file forever. */
export const IDLE_MS = 60_000;

export interface SendFileOptions {
  /**
   * Checks the bytes as they are read; the chunk that completes the response is written only once the check has
   * passed, so wrong bytes never make a complete response.
   */
  readonly check?: ReadCheck;
  /** Told of a failure after bytes went out, when the response has been destroyed (nothing is thrown then). */
  readonly onCut?: (err: Error) => void;
}

/**
 * Writes `length` bytes of `file` from `start` to `res` and ends it, then closes the file. The status and headers
 * must be set already. The first read happens before anything is written, so a failing file (or a failed check of a
 * response that fits in one chunk) rejects while an error response can still be sent; a failure later destroys the
 * response (the client sees a short body) and goes to `onCut`. A client that leaves stops the reads.
 */
export async function sendFile(
  res: ServerResponse,
  file: PositionalFile,
  start: number,
  length: number,
  options: SendFileOptions = {},
): Promise<void> {
  const { check } = options;
  const size = Math.min(CHUNK, Math.max(length, 1));
  const free: Buffer[] = [];
  let allocated = 0;
  let wake: (() => void) | undefined;
  const signal = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  res.on('close', signal);
  res.on('drain', signal);
  res.setTimeout(IDLE_MS, () => res.destroy(new Error(`client took nothing for ${IDLE_MS} ms`)));
  const takeBuffer = async (): Promise<Buffer | undefined> => {
    for (;;) {
      if (res.destroyed) return undefined;
      const buffer = free.pop();
      if (buffer !== undefined) return buffer;
      if (allocated < BUFFERS) {
        allocated++;
        return Buffer.allocUnsafeSlow(size);
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  let sent = 0;
  let wroteAny = false;
  try {
    while (sent < length) {
      const buffer = await takeBuffer();
      if (buffer === undefined) return; // the client left
      const n = await file.read(buffer, Math.min(size, length - sent), start + sent);
      if (n === 0) {
        check?.finish(); // throws the length mismatch, which a check counts as such
        throw new Error(`file ended ${length - sent} bytes early`);
      }
      const chunk = n === buffer.length ? buffer : buffer.subarray(0, n);
      // Hashed before the write: the buffer is refilled once the socket has taken it.
      check?.update(chunk);
      sent += n;
      if (sent === length) check?.finish();
      wroteAny = true;
      const more = res.write(chunk, () => {
        free.push(buffer);
        signal();
      });
      if (!more && !res.destroyed) await new Promise<void>((resolve) => (wake = resolve));
    }
    res.end();
  } catch (err) {
    if (!wroteAny) throw err;
    const error = err instanceof Error ? err : new Error(String(err));
    res.destroy(error);
    options.onCut?.(error);
  } finally {
    res.setTimeout(0);
    res.off('close', signal);
    res.off('drain', signal);
    await file.close().catch(() => undefined);
  }
}
