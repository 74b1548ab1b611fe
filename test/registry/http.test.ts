import assert from 'node:assert/strict';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { RegistryError } from '../../src/oci/errors.js';
import {
  contentLength,
  hasBody,
  parseContentRange,
  parseCount,
  parseRange,
  queryString,
  readBody,
} from '../../src/registry/http.js';

/** A request with the given headers and, when given, a body already queued on it. */
function request(headers: Record<string, string>, body?: Buffer[]): IncomingMessage {
  const req = new IncomingMessage(new Socket());
  req.headers = headers;
  if (body !== undefined) {
    for (const chunk of body) req.push(chunk);
    req.push(null);
  }
  return req;
}

function registryError(code: string, status: number, check?: (err: RegistryError) => void): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof RegistryError, `expected RegistryError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.status, status);
    check?.(err);
    return true;
  };
}

describe('registry/http', function () {
  describe('parseRange', function () {
    it('resolves a closed range', function () {
      assert.deepEqual(parseRange('bytes=10-19', 100), { start: 10, end: 19 });
      assert.deepEqual(parseRange('bytes=0-0', 1), { start: 0, end: 0 });
    });

    it('resolves an open-ended range to the last byte', function () {
      assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 99 });
    });

    it('clips an end past the size to the last byte', function () {
      assert.deepEqual(parseRange('bytes=50-500', 100), { start: 50, end: 99 });
      assert.deepEqual(parseRange('bytes=0-99999999999999999999', 100), { start: 0, end: 99 });
    });

    it('resolves a suffix range to the last N bytes, and to the whole blob when N is larger', function () {
      assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 99 });
      assert.deepEqual(parseRange('bytes=-1000', 100), { start: 0, end: 99 });
    });

    it('tolerates surrounding whitespace', function () {
      assert.deepEqual(parseRange('  bytes=1-2 ', 10), { start: 1, end: 2 });
    });

    for (const [header, size] of [
      ['bytes=100-', 100],
      ['bytes=100-200', 100],
      ['bytes=0-', 0],
      ['bytes=-0', 100],
      ['bytes=-5', 0],
    ] as const) {
      it(`answers ${header} on ${size} bytes with 416 and Content-Range bytes */${size}`, function () {
        assert.throws(
          () => parseRange(header, size),
          registryError('RANGE_INVALID', 416, (err) =>
            assert.deepEqual(err.headers, { 'Content-Range': `bytes */${size}` }),
          ),
        );
      });
    }

    for (const header of [
      undefined,
      '',
      'bytes=',
      'bytes=-',
      'bytes=abc-',
      'bytes=1-2,4-5',
      'items=0-10',
      'bytes 0-10',
      'bytes=5-2',
      'bytes=1.5-2',
      'bytes=-1-2',
    ]) {
      it(`ignores ${JSON.stringify(header)} and serves the whole blob`, function () {
        assert.equal(parseRange(header, 100), undefined);
      });
    }
  });

  describe('parseContentRange', function () {
    it('reads a bare start-end', function () {
      assert.deepEqual(parseContentRange('0-1023'), { start: 0, end: 1023 });
    });

    it('reads the RFC form with bytes prefix and a total or *', function () {
      assert.deepEqual(parseContentRange('bytes 1024-2047/*'), { start: 1024, end: 2047 });
      assert.deepEqual(parseContentRange('bytes 0-9/10'), { start: 0, end: 9 });
      assert.deepEqual(parseContentRange('5-9/10'), { start: 5, end: 9 });
    });

    it('gives undefined when there is no header', function () {
      assert.equal(parseContentRange(undefined), undefined);
      assert.equal(parseContentRange(''), undefined);
    });

    for (const bad of ['abc', '0-', '-5', 'bytes=0-9', 'bytes 0-9/', '0-9/abc', '1,2', 'bytes  0-9']) {
      it(`rejects the malformed ${JSON.stringify(bad)} as BLOB_UPLOAD_INVALID`, function () {
        assert.throws(() => parseContentRange(bad), registryError('BLOB_UPLOAD_INVALID', 400));
      });
    }

    it('rejects a range that ends before it starts as RANGE_INVALID', function () {
      assert.throws(() => parseContentRange('10-9'), registryError('RANGE_INVALID', 416));
    });

    it('rejects an end beyond the safe integers', function () {
      assert.throws(() => parseContentRange('0-99999999999999999999'), registryError('RANGE_INVALID', 416));
    });
  });

  describe('parseCount', function () {
    it('uses the fallback when n is absent', function () {
      assert.equal(parseCount(undefined, 50, 1000), 50);
      assert.equal(parseCount(undefined, undefined, 1000), undefined);
    });

    it('reads n and caps it at the maximum', function () {
      assert.equal(parseCount('0', 50, 1000), 0);
      assert.equal(parseCount('25', 50, 1000), 25);
      assert.equal(parseCount('5000', 50, 1000), 1000);
    });

    for (const bad of ['', '-1', '1.5', 'ten', ' 5', '1e3', '9999999999']) {
      it(`rejects n=${JSON.stringify(bad)} with PAGINATION_NUMBER_INVALID`, function () {
        assert.throws(
          () => parseCount(bad, 50, 1000),
          registryError('PAGINATION_NUMBER_INVALID', 400, (err) => assert.deepEqual(err.detail, { n: bad })),
        );
      });
    }

    it('rejects n given twice', function () {
      assert.throws(() => parseCount(['1', '2'], 50, 1000), registryError('PAGINATION_NUMBER_INVALID', 400));
    });
  });

  describe('queryString', function () {
    it('takes a single value, or the first of several', function () {
      assert.equal(queryString('a'), 'a');
      assert.equal(queryString(['first', 'second']), 'first');
    });

    it('gives undefined for anything else', function () {
      assert.equal(queryString(undefined), undefined);
      assert.equal(queryString([]), undefined);
      assert.equal(queryString(5), undefined);
    });
  });

  describe('contentLength and hasBody', function () {
    it('reads a valid Content-Length', function () {
      assert.equal(contentLength(request({ 'content-length': '42' })), 42);
      assert.equal(contentLength(request({ 'content-length': '0' })), 0);
    });

    it('gives undefined for a missing or invalid Content-Length', function () {
      assert.equal(contentLength(request({})), undefined);
      assert.equal(contentLength(request({ 'content-length': 'lots' })), undefined);
      assert.equal(contentLength(request({ 'content-length': '-1' })), undefined);
      assert.equal(contentLength(request({ 'content-length': '1.5' })), undefined);
    });

    it('sees a body in a non-zero Content-Length or a chunked transfer', function () {
      assert.equal(hasBody(request({ 'content-length': '1' })), true);
      assert.equal(hasBody(request({ 'transfer-encoding': 'chunked' })), true);
    });

    it('sees no body without either, or with Content-Length 0', function () {
      assert.equal(hasBody(request({})), false);
      assert.equal(hasBody(request({ 'content-length': '0' })), false);
    });
  });

  describe('readBody', function () {
    it('collects the whole body', async function () {
      const parts = [Buffer.from('{"a":'), Buffer.from('1}')];
      assert.deepEqual(await readBody(request({ 'content-length': '7' }, parts), 100), Buffer.from('{"a":1}'));
    });

    it('accepts a body of exactly the limit', async function () {
      assert.equal((await readBody(request({}, [Buffer.alloc(10)]), 10)).length, 10);
    });

    it('refuses a declared Content-Length over the limit with 413 before reading', async function () {
      const req = request({ 'content-length': '11' });
      await assert.rejects(
        readBody(req, 10),
        registryError('SIZE_INVALID', 413, (err) => assert.deepEqual(err.detail, { limit: 10 })),
      );
    });

    it('refuses an undeclared body once it grows past the limit with 413', async function () {
      const req = request({ 'transfer-encoding': 'chunked' }, [Buffer.alloc(6), Buffer.alloc(6)]);
      await assert.rejects(readBody(req, 10), registryError('SIZE_INVALID', 413));
    });
  });
});
