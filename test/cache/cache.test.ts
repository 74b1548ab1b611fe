// The rules every tier shares: which descriptors may be cached, frozen copies, bounded waits.
import assert from 'node:assert/strict';
import { CacheTimeoutError, freezeDescriptor, validateDescriptor, withDeadline } from '../../src/cache/cache.js';
import { digestBuffer } from '../../src/oci/digest.js';

const digest = digestBuffer(Buffer.from('x'));
const other = digestBuffer(Buffer.from('y'));

describe('validateDescriptor', function () {
  it('accepts a descriptor of the asked digest with a whole size and a media type', function () {
    assert.equal(validateDescriptor({ digest, size: 0, mediaType: 'application/octet-stream' }, digest), undefined);
    assert.equal(validateDescriptor({ digest, size: 2 ** 40, mediaType: 'a/b; charset=utf-8' }, digest), undefined);
  });

  for (const [why, d] of [
    ['another digest', { digest: other, size: 1, mediaType: 'a/b' }],
    ['a negative size', { digest, size: -1, mediaType: 'a/b' }],
    ['a fractional size', { digest, size: 0.5, mediaType: 'a/b' }],
    ['an unsafe size', { digest, size: 2 ** 53, mediaType: 'a/b' }],
    ['no media type', { digest, size: 1, mediaType: '' }],
    ['a media type with a line break', { digest, size: 1, mediaType: 'a/b\nc' }],
    ['a media type starting with a space', { digest, size: 1, mediaType: ' a/b' }],
    ['an overlong media type', { digest, size: 1, mediaType: `a/${'b'.repeat(300)}` }],
  ] as const) {
    it(`refuses ${why}`, function () {
      assert.equal(typeof validateDescriptor(d, digest), 'string');
    });
  }
});

describe('freezeDescriptor', function () {
  it('returns an equal copy that cannot be changed', function () {
    const original = { digest, size: 3, mediaType: 'a/b' };
    const frozen = freezeDescriptor(original);
    assert.deepEqual(frozen, original);
    assert.throws(() => {
      (frozen as { size: number }).size = 4;
    }, TypeError);
    assert.ok(Object.isFrozen(frozen.digest));
  });
});

describe('withDeadline', function () {
  it('passes a result that comes in time', async function () {
    assert.equal(await withDeadline(Promise.resolve(7), 50, 'x'), 7);
  });

  it('rejects with CacheTimeoutError when the promise is late, at about the deadline', async function () {
    const started = Date.now();
    await assert.rejects(withDeadline(new Promise(() => undefined), 60, 'slow thing'), (err: unknown) => {
      assert.ok(err instanceof CacheTimeoutError);
      assert.match(err.message, /slow thing took longer than 60ms/);
      return true;
    });
    const took = Date.now() - started;
    assert.ok(took >= 55 && took < 300, `took ${took}ms`);
  });

  it('passes the rejection of a promise that fails in time', async function () {
    await assert.rejects(withDeadline(Promise.reject(new Error('nope')), 50, 'x'), /nope/);
  });
});
