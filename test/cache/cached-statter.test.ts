// The cached statter's rules with scripted tiers: hits fill the tiers before them, misses fill every tier that
// missed, failing tiers are skipped and reported, invalid descriptors are never filled. And the rate-limited log.
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { DescriptorTier, Lookup } from '../../src/cache/cache.js';
import { CachedStatter, RateLimitedLog, type CacheOperation } from '../../src/cache/cached-statter.js';
import { digestBuffer, type Digest } from '../../src/oci/digest.js';
import type { BlobDescriptor, BlobStatter } from '../../src/storage/blobs.js';

const silent = pino({ level: 'silent' });
const digest = digestBuffer(Buffer.from('s'));
const good: BlobDescriptor = { digest, size: 5, mediaType: 'a/b' };

class Tier implements DescriptorTier {
  readonly filled: BlobDescriptor[] = [];
  lookups = 0;
  constructor(
    readonly name: 'memory' | 'redis',
    public answer: 'hit' | 'miss' | 'fail',
    public fillFails = false,
  ) {}
  async lookup(): Promise<Lookup> {
    this.lookups++;
    if (this.answer === 'fail') throw new Error(`${this.name} down`);
    if (this.answer === 'hit') return { hit: true, descriptor: good };
    return {
      hit: false,
      fill: async (d) => {
        if (this.fillFails) throw new Error('fill failed');
        this.filled.push(d);
      },
    };
  }
  invalidate = async (): Promise<void> => undefined;
  check = async (): Promise<string | undefined> => undefined;
  close = async (): Promise<void> => undefined;
}

function backend(answer: BlobDescriptor | Error): BlobStatter & { calls: number } {
  const b = {
    calls: 0,
    stat: async (_d: Digest) => {
      b.calls++;
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
  return b;
}

function statter(storage: BlobStatter, tiers: DescriptorTier[]) {
  const errors: Array<[string, CacheOperation]> = [];
  const s = new CachedStatter(storage, 'r', tiers, (tier, op) => errors.push([tier.name, op]), silent);
  return { s, errors };
}

describe('CachedStatter', function () {
  it('answers a hit in the second tier and fills the first with it, without asking storage', async function () {
    const memory = new Tier('memory', 'miss');
    const redis = new Tier('redis', 'hit');
    const storage = backend(new Error('must not be asked'));
    const { s } = statter(storage, [memory, redis]);
    assert.deepEqual(await s.stat(digest), good);
    assert.deepEqual(memory.filled, [good]);
    assert.equal(storage.calls, 0);
  });

  it('stops at the first hit', async function () {
    const memory = new Tier('memory', 'hit');
    const redis = new Tier('redis', 'hit');
    const { s } = statter(backend(good), [memory, redis]);
    await s.stat(digest);
    assert.equal(redis.lookups, 0);
  });

  it('fills every tier that missed after asking storage', async function () {
    const memory = new Tier('memory', 'miss');
    const redis = new Tier('redis', 'miss');
    const storage = backend(good);
    const { s } = statter(storage, [memory, redis]);
    assert.deepEqual(await s.stat(digest), good);
    assert.equal(storage.calls, 1);
    assert.deepEqual(memory.filled, [good]);
    assert.deepEqual(redis.filled, [good]);
  });

  it('skips a failing tier, reports it, and fills the others', async function () {
    const memory = new Tier('memory', 'miss');
    const redis = new Tier('redis', 'fail');
    const { s, errors } = statter(backend(good), [memory, redis]);
    assert.deepEqual(await s.stat(digest), good);
    assert.deepEqual(errors, [['redis', 'lookup']]);
    assert.deepEqual(memory.filled, [good]);
  });

  it('answers from storage when a fill fails, and reports it', async function () {
    const redis = new Tier('redis', 'miss', true);
    const { s, errors } = statter(backend(good), [redis]);
    assert.deepEqual(await s.stat(digest), good);
    assert.deepEqual(errors, [['redis', 'fill']]);
  });

  it("passes storage's error on and fills nothing", async function () {
    const memory = new Tier('memory', 'miss');
    const { s } = statter(backend(new Error('BLOB_UNKNOWN')), [memory]);
    await assert.rejects(s.stat(digest), /BLOB_UNKNOWN/);
    assert.deepEqual(memory.filled, []);
  });

  it('returns an invalid descriptor from storage without filling it', async function () {
    const memory = new Tier('memory', 'miss');
    const bad = { digest, size: -3, mediaType: 'a/b' };
    const { s } = statter(backend(bad), [memory]);
    assert.deepEqual(await s.stat(digest), bad);
    assert.deepEqual(memory.filled, []);
  });

  it('asks storage directly when there are no tiers', async function () {
    const storage = backend(good);
    const { s } = statter(storage, []);
    await s.stat(digest);
    await s.stat(digest);
    assert.equal(storage.calls, 2);
  });
});

describe('RateLimitedLog', function () {
  function recorder() {
    const lines: Array<Record<string, unknown>> = [];
    const log = pino(
      { level: 'warn' },
      { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    return { lines, log };
  }

  it('logs the first of a kind, holds back the rest for the interval, then says how many it held back', async function () {
    const { lines, log } = recorder();
    const limited = new RateLimitedLog(log, 50);
    for (let i = 0; i < 10; i++) limited.warn('redis:lookup', { i }, 'failed');
    limited.warn('redis:fill', {}, 'fill failed');
    assert.equal(lines.length, 2);
    await new Promise((r) => setTimeout(r, 60));
    limited.warn('redis:lookup', {}, 'failed');
    assert.equal(lines.length, 3);
    assert.equal(lines[2]!['suppressed'], 9);
  });
});
