import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { partStream } from '../../../src/storage/drivers/parts.js';

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('partStream', function () {
  it('cuts what is written, after the initial bytes, into parts of the part size, a short one last', async function () {
    const parts: Array<{ index: number; body: string }> = [];
    let running = 0;
    let most = 0;
    const s = partStream({
      partSize: 4,
      concurrency: 2,
      initial: [Buffer.from('ab')],
      upload: async (body, index) => {
        running++;
        most = Math.max(most, running);
        await tick(5);
        parts.push({ index, body: body.toString() });
        running--;
      },
    });
    // Writes no longer than a part: each waits while two uploads are in flight (a longer one may start several).
    await pipeline(Readable.from(['cdef', 'g', 'hijk', 'lmno', 'pqrs', 't'].map((x) => Buffer.from(x))), s.stream);
    assert.equal(s.written(), 18, 'the initial bytes are not counted as written');
    await s.finish();
    assert.deepEqual(
      parts.sort((a, b) => a.index - b.index).map((p) => p.body),
      ['abcd', 'efgh', 'ijkl', 'mnop', 'qrst'],
    );
    assert.equal(s.started(), 5);
    assert.ok(most <= 2, `${most} uploads at once`);
  });

  it('hands everything over whole when nothing filled a part', async function () {
    const s = partStream({ partSize: 100, concurrency: 2, upload: () => Promise.reject(new Error('no part')) });
    await pipeline(Readable.from([Buffer.from('small'), Buffer.from(' file')]), s.stream);
    assert.equal(s.started(), 0);
    assert.equal(s.takePending().toString(), 'small file');
  });

  it('fails the next write, and finish, with the first failed upload', async function () {
    const s = partStream({
      partSize: 2,
      concurrency: 1,
      upload: async (_body, index) => {
        if (index === 0) throw new Error('part 0 refused');
      },
    });
    await assert.rejects(
      pipeline(Readable.from(['ab', 'cd', 'ef'].map((x) => Buffer.from(x))), s.stream),
      /part 0 refused/,
    );
    await assert.rejects(s.finish(), /part 0 refused/);
  });

  it('settles: drops the bytes held and waits for the uploads in flight', async function () {
    let done = 0;
    const s = partStream({
      partSize: 2,
      concurrency: 4,
      upload: async () => {
        await tick(20);
        done++;
      },
    });
    s.stream.write(Buffer.from('abcde'));
    await s.settle();
    assert.equal(done, 2);
    assert.equal(s.takePending().length, 0);
  });
});
