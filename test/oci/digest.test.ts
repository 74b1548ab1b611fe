import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Algorithms, digestBuffer, digestOf, HashingStream, parseDigest } from '../../src/oci/digest.js';
import { RegistryError } from '../../src/oci/errors.js';

const SHA256_EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const SHA512_EMPTY =
  'cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e';

function digestInvalid(messagePart?: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof RegistryError);
    assert.equal(err.code, 'DIGEST_INVALID');
    assert.equal(err.status, 400);
    if (messagePart !== undefined) assert.match(err.message, messagePart);
    return true;
  };
}

describe('oci/digest', function () {
  describe('parseDigest', function () {
    it('parses a sha256 digest into algorithm, hex and canonical value', function () {
      const d = parseDigest(`sha256:${SHA256_EMPTY}`);
      assert.deepEqual(d, { algorithm: 'sha256', hex: SHA256_EMPTY, value: `sha256:${SHA256_EMPTY}` });
    });

    it('parses a sha512 digest', function () {
      const d = parseDigest(`sha512:${SHA512_EMPTY}`);
      assert.equal(d.algorithm, 'sha512');
      assert.equal(d.hex.length, 128);
    });

    it('rejects uppercase hex', function () {
      assert.throws(() => parseDigest(`sha256:${SHA256_EMPTY.toUpperCase()}`), digestInvalid(/sha256/));
    });

    it('rejects an encoded part of the wrong length for its algorithm', function () {
      assert.throws(() => parseDigest(`sha256:${SHA256_EMPTY.slice(1)}`), digestInvalid(/invalid sha256 digest/));
      assert.throws(() => parseDigest(`sha256:${SHA256_EMPTY}0`), digestInvalid(/invalid sha256 digest/));
      assert.throws(() => parseDigest(`sha512:${SHA256_EMPTY}`), digestInvalid(/invalid sha512 digest/));
    });

    it('rejects well-formed digests of algorithms it does not support, naming the algorithm', function () {
      assert.throws(
        () => parseDigest('md5:d41d8cd98f00b204e9800998ecf8427e'),
        digestInvalid(/unsupported digest algorithm md5/),
      );
      assert.throws(
        () => parseDigest(`sha384:${'a'.repeat(96)}`),
        digestInvalid(/unsupported digest algorithm sha384/),
      );
      assert.throws(
        () => parseDigest('multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8'),
        digestInvalid(/unsupported/),
      );
    });

    it('does not take inherited object keys for algorithms', function () {
      assert.throws(() => parseDigest('constructor:abc'), digestInvalid(/unsupported/));
      assert.throws(() => parseDigest('tostring:abc'), digestInvalid(/unsupported/));
    });

    for (const bad of [
      '',
      'sha256',
      `sha256${SHA256_EMPTY}`,
      `:${SHA256_EMPTY}`,
      `sha256:`,
      `SHA256:${SHA256_EMPTY}`,
      ` sha256:${SHA256_EMPTY}`,
      `sha256:${SHA256_EMPTY}\n`,
      `sha256::${SHA256_EMPTY}`,
    ]) {
      it(`rejects the malformed digest ${JSON.stringify(bad)}`, function () {
        assert.throws(() => parseDigest(bad), digestInvalid(/invalid digest format/));
      });
    }

    it('rejects absurdly long input without echoing all of it in the detail', function () {
      const long = `sha256:${'a'.repeat(10_000)}`;
      assert.throws(
        () => parseDigest(long),
        (err: unknown) => {
          assert.ok(err instanceof RegistryError);
          assert.equal(err.code, 'DIGEST_INVALID');
          assert.ok(JSON.stringify(err.detail).length < 400);
          return true;
        },
      );
    });
  });

  describe('digestBuffer and digestOf', function () {
    it('hashes with sha256 by default', function () {
      assert.equal(digestBuffer(Buffer.alloc(0)).value, `sha256:${SHA256_EMPTY}`);
      assert.equal(digestBuffer(Buffer.from('abc')).hex, createHash('sha256').update('abc').digest('hex'));
    });

    it('hashes with sha512 when asked', function () {
      const d = digestBuffer(Buffer.alloc(0), 'sha512');
      assert.deepEqual(d, { algorithm: 'sha512', hex: SHA512_EMPTY, value: `sha512:${SHA512_EMPTY}` });
    });

    it('produces digests that parseDigest accepts for every algorithm', function () {
      for (const algorithm of Object.keys(Algorithms) as Array<keyof typeof Algorithms>) {
        const d = digestBuffer(Buffer.from('payload'), algorithm);
        assert.deepEqual(parseDigest(d.value), d);
      }
    });

    it('builds the canonical value from algorithm and hex', function () {
      assert.equal(digestOf('sha512', 'ab').value, 'sha512:ab');
    });
  });

  describe('HashingStream', function () {
    it('passes every byte through unchanged while counting and hashing them', async function () {
      const parts = [Buffer.from('hello '), Buffer.from('streaming '), Buffer.alloc(100_000, 7)];
      const hash = createHash('sha256');
      const hashing = new HashingStream(hash);
      const out: Buffer[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _enc, cb) {
          out.push(chunk);
          cb();
        },
      });
      await pipeline(Readable.from(parts), hashing, sink);
      const all = Buffer.concat(parts);
      assert.deepEqual(Buffer.concat(out), all);
      assert.equal(hashing.bytes, all.length);
      assert.equal(hash.digest('hex'), createHash('sha256').update(all).digest('hex'));
    });

    it('only counts when given no hash', async function () {
      const hashing = new HashingStream(null);
      const sink = new Writable({ write: (_c, _e, cb) => cb() });
      await pipeline(Readable.from([Buffer.alloc(10), Buffer.alloc(5)]), hashing, sink);
      assert.equal(hashing.bytes, 15);
      assert.equal(hashing.hash, null);
    });
  });
});
