import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { sendFile } from '../../src/registry/send-file.js';
import type { PositionalFile } from '../../src/storage/driver.js';

/** An in-memory PositionalFile that records what happens to it. */
function memoryFile(content: Buffer, options: { failAt?: number; claimSize?: number; delayMs?: number } = {}) {
  const state = { reads: 0, closed: false, buffers: new Set<ArrayBufferLike>() };
  const file: PositionalFile = {
    size: options.claimSize ?? content.length,
    async read(buffer, length, position) {
      if (options.delayMs !== undefined) await new Promise((r) => setTimeout(r, options.delayMs));
      state.reads++;
      state.buffers.add(buffer.buffer);
      if (options.failAt !== undefined && position >= options.failAt) throw new Error('disk on fire');
      return content.copy(buffer, 0, position, Math.min(content.length, position + length));
    },
    async close() {
      state.closed = true;
    },
  };
  return { file, state };
}

async function serve(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { server, url: `http://127.0.0.1:${port}/` };
}

async function get(url: string): Promise<{ status: number; body: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), complete: res.complete }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), complete: false }));
    })
      .on('error', reject)
      .end();
  });
}

describe('registry/send-file', function () {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server === undefined ? r() : server.close(() => r())));
    server = undefined;
  });

  it('sends a multi-megabyte file byte for byte through at most four reused buffers, then closes it', async () => {
    const content = randomBytes(9 * 1024 * 1024 + 123);
    const { file, state } = memoryFile(content);
    let done: Promise<void> | undefined;
    const s = await serve((_req, res) => {
      res.setHeader('Content-Length', String(content.length));
      done = sendFile(res, file, 0, content.length);
    });
    server = s.server;
    const got = await get(s.url);
    await done;
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(content));
    assert.ok(state.buffers.size <= 4, `${state.buffers.size} buffers`);
    assert.ok(state.reads >= 10);
    assert.equal(state.closed, true);
  });

  it('sends exactly the requested range', async () => {
    const content = randomBytes(3 * 1024 * 1024);
    const { file } = memoryFile(content);
    const s = await serve((_req, res) => {
      res.statusCode = 206;
      res.setHeader('Content-Length', '1500000');
      void sendFile(res, file, 1_000_000, 1_500_000);
    });
    server = s.server;
    const got = await get(s.url);
    assert.equal(got.status, 206);
    assert.ok(got.body.equals(content.subarray(1_000_000, 2_500_000)));
  });

  it('rejects before writing anything when the first read fails, so an error response can still be sent', async () => {
    const { file, state } = memoryFile(randomBytes(1000), { failAt: 0 });
    let outcome: unknown;
    const s = await serve((_req, res) => {
      sendFile(res, file, 0, 1000).then(
        () => res.end('sent'),
        (err: unknown) => {
          outcome = err;
          res.statusCode = 500;
          res.end('error');
        },
      );
    });
    server = s.server;
    const got = await get(s.url);
    assert.equal(got.status, 500);
    assert.match(String(outcome), /disk on fire/);
    assert.equal(state.closed, true);
  });

  it('cuts the response short when a later read fails or the file is shorter than claimed', async () => {
    for (const options of [{ failAt: 2 * 1024 * 1024 }, { claimSize: 4 * 1024 * 1024 }]) {
      const content = randomBytes(3 * 1024 * 1024);
      const { file, state } = memoryFile(content, options);
      const length = options.claimSize ?? content.length;
      let done: Promise<void> | undefined;
      const s = await serve((_req, res) => {
        res.setHeader('Content-Length', String(length));
        done = sendFile(res, file, 0, length);
      });
      const got = await get(s.url);
      await done;
      assert.equal(got.complete, false, JSON.stringify(options));
      assert.ok(got.body.length < length);
      assert.equal(state.closed, true);
      s.server.closeAllConnections();
      await new Promise<void>((r) => s.server.close(() => r()));
    }
  });

  it('stops reading when the client leaves', async () => {
    const content = randomBytes(64 * 1024 * 1024);
    const { file, state } = memoryFile(content, { delayMs: 1 });
    let done: Promise<void> | undefined;
    const s = await serve((_req, res) => {
      res.setHeader('Content-Length', String(content.length));
      done = sendFile(res, file, 0, content.length);
    });
    server = s.server;
    await new Promise<void>((resolve) => {
      const req = request(s.url, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.end();
    });
    await done;
    assert.equal(state.closed, true);
    assert.ok(state.reads < 64, `${state.reads} reads of 64 for a client that left after the first chunk`);
  });
});
