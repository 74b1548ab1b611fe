// The write side that the S3 and Azure drivers share: a writable stream that cuts what is written into parts of a fixed
// size and hands each to an upload (an S3 part, an Azure block) as it fills, a few at a time, so that a writer holds
// at most (concurrency + 1) parts in memory whatever the file's size (given writes no longer than a part).
import { Writable } from 'node:stream';

export interface PartStreamOptions {
  /** Bytes of every part but the last. */
  readonly partSize: number;
  /** Uploads in flight at once: a write returns once fewer are (a write longer than a part may start several). */
  readonly concurrency: number;
  /** Bytes to send before anything written (they count toward the first parts, not toward `written`). */
  readonly initial?: readonly Buffer[];
  /** Uploads part `index` (0-based, in file order). Its failure fails the next write, or `finish`. */
  readonly upload: (body: Buffer, index: number) => Promise<void>;
}

export interface PartStream {
  /** What the caller writes the file's bytes into. */
  readonly stream: Writable;
  /** Bytes written into the stream so far. */
  written(): number;
  /** Parts handed to upload so far. */
  started(): number;
  /** Takes the bytes held and not yet handed to upload: for a file small enough to go up in one request. */
  takePending(): Buffer;
  /** Hands the bytes held to upload as a last, short part, waits for every upload, and throws the first failure. */
  finish(): Promise<void>;
  /** Drops the bytes held and waits until no upload is in flight, whatever their outcome. */
  settle(): Promise<void>;
}

export function partStream(options: PartStreamOptions): PartStream {
  const { partSize, concurrency, upload } = options;
  let pending: Buffer[] = [...(options.initial ?? [])];
  let pendingBytes = pending.reduce((n, b) => n + b.length, 0);
  let written = 0;
  let started = 0;
  const inFlight = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;

  const takePending = (): Buffer => {
    const all = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    return all;
  };
  const send = (body: Buffer): void => {
    const tracked: Promise<void> = upload(body, started++)
      .catch((err: unknown) => {
        failure ??= { err };
      })
      .finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };

  const stream = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _enc, cb) {
      if (failure !== undefined) {
        cb(failure.err instanceof Error ? failure.err : new Error(String(failure.err)));
        return;
      }
      pending.push(chunk);
      pendingBytes += chunk.length;
      written += chunk.length;
      // Whole parts go up as they fill; a copy of each, so the caller's buffers are not held.
      while (pendingBytes >= partSize) {
        const all = takePending();
        send(Buffer.from(all.subarray(0, partSize)));
        if (all.length > partSize) {
          pending = [all.subarray(partSize)];
          pendingBytes = all.length - partSize;
        }
      }
      const wait = async (): Promise<void> => {
        while (inFlight.size >= concurrency) await Promise.race(inFlight);
      };
      wait().then(
        () => cb(failure === undefined ? null : (failure.err as Error)),
        (err: unknown) => cb(err as Error),
      );
    },
  });

  return {
    stream,
    written: () => written,
    started: () => started,
    takePending,
    finish: async () => {
      // The last part may be short.
      if (pendingBytes > 0) send(takePending());
      while (inFlight.size > 0) await Promise.all(inFlight);
      if (failure !== undefined) throw failure.err;
    },
    settle: async () => {
      pending = [];
      pendingBytes = 0;
      await Promise.allSettled(inFlight);
    },
  };
}
