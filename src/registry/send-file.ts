// Sends a byte range of a file as the response body through a few buffers reused for every chunk: reading into a
// buffer only after the socket has taken the previous bytes from it. Streams allocate a fresh buffer per chunk,
// which costs a page fault per 4 KiB on every pull; this is the registry's answer to Go's sendfile.
import type { ServerResponse } from 'node:http';
import type { PositionalFile } from '../storage/driver.js';

const CHUNK = 1 << 20;
/** Buffers per response: enough to keep a read in flight while the socket drains the others. */
const BUFFERS = 4;
/** A client that takes nothing for this long is dropped, so it can't hold the buffers and the file forever. */
export const IDLE_MS = 60_000;

/**
 * Writes `length` bytes of `file` from `start` to `res` and ends it, then closes the file. The status and headers
 * must be set already. The first read happens before anything is written, so a failing file rejects while an error
 * response can still be sent; a failure later destroys the response (the client sees a short body). A client that
 * leaves stops the reads.
 */
export async function sendFile(
  res: ServerResponse,
  file: PositionalFile,
  start: number,
  length: number,
): Promise<void> {
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
      if (n === 0) throw new Error(`file ended ${length - sent} bytes early`);
      sent += n;
      wroteAny = true;
      const more = res.write(n === buffer.length ? buffer : buffer.subarray(0, n), () => {
        free.push(buffer);
        signal();
      });
      if (!more && !res.destroyed) await new Promise<void>((resolve) => (wake = resolve));
    }
    res.end();
  } catch (err) {
    if (!wroteAny) throw err;
    res.destroy(err instanceof Error ? err : new Error(String(err)));
  } finally {
    res.setTimeout(0);
    res.off('close', signal);
    res.off('drain', signal);
    await file.close().catch(() => undefined);
  }
}
