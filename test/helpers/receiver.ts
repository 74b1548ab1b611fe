// A real HTTP receiver for notification tests: records every envelope posted to it, and can answer slowly, with an
// error status, or not at all (closed).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  readonly headers: IncomingMessage['headers'];
  readonly body: { events: Array<Record<string, unknown> & { action: string; target: Record<string, unknown> }> };
}

export interface Receiver {
  readonly url: string;
  readonly received: Received[];
  /** Every event received so far, in order. */
  events(): Received['body']['events'];
  /** How the next requests are answered: a status, after a delay. */
  behave(status: number, delayMs?: number): void;
  /** Requests seen, including refused ones. */
  attempts: number;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  let status = 200;
  let delayMs = 0;
  const received: Received[] = [];
  const state = { attempts: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.attempts++;
      const answer = status;
      const respond = (): void => {
        if (answer >= 200 && answer < 400) {
          received.push({
            headers: req.headers,
            body: JSON.parse(Buffer.concat(chunks).toString()) as Received['body'],
          });
        }
        res.writeHead(answer).end();
      };
      if (delayMs > 0) setTimeout(respond, delayMs);
      else respond();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
  return {
    url,
    received,
    events: () => received.flatMap((r) => r.body.events),
    behave(s, d = 0) {
      status = s;
      delayMs = d;
    },
    get attempts() {
      return state.attempts;
    },
    set attempts(n) {
      state.attempts = n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Waits until `probe` holds, at most `ms`. */
export async function eventually(what: string, probe: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
