import assert from 'node:assert/strict';
import { envelope, ErrorCodes, isRegistryError, RegistryError, type ErrorCode } from '../../src/oci/errors.js';

// The status every code must answer with: the distribution spec's table plus the codes CNCF Distribution adds.
const EXPECTED_STATUS: Record<ErrorCode, number> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  TAG_INVALID: 400,
  PAGINATION_NUMBER_INVALID: 400,
  RANGE_INVALID: 416,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  UNAVAILABLE: 503,
  UNKNOWN: 500,
};

const codes = Object.keys(ErrorCodes) as ErrorCode[];

describe('oci/errors', function () {
  it('has exactly the codes of the distribution spec plus those Distribution adds', function () {
    assert.deepEqual([...codes].sort(), Object.keys(EXPECTED_STATUS).sort());
  });

  for (const code of codes) {
    it(`gives ${code} its HTTP status and a message`, function () {
      const entry = ErrorCodes[code];
      assert.equal(entry.status, EXPECTED_STATUS[code]);
      assert.ok(entry.status >= 400 && entry.status <= 599);
      assert.ok(entry.message.length > 0 && entry.message === entry.message.trim());
      assert.match(code, /^[A-Z_]+$/);
    });
  }

  it('gives every code a distinct message', function () {
    const messages = codes.map((c) => ErrorCodes[c].message);
    assert.equal(new Set(messages).size, messages.length);
  });

  describe('RegistryError', function () {
    it('takes status and message from the table by default', function () {
      const err = new RegistryError('BLOB_UNKNOWN');
      assert.equal(err.code, 'BLOB_UNKNOWN');
      assert.equal(err.status, 404);
      assert.equal(err.message, ErrorCodes.BLOB_UNKNOWN.message);
      assert.equal(err.detail, undefined);
      assert.deepEqual(err.headers, {});
      assert.equal(err.name, 'RegistryError');
      assert.ok(err instanceof Error);
    });

    it('lets a thrower override message and status and add detail and headers', function () {
      const err = new RegistryError('SIZE_INVALID', {
        message: 'manifest too large',
        status: 413,
        detail: { limit: 4 },
        headers: { 'Content-Range': 'bytes */10' },
      });
      assert.equal(err.message, 'manifest too large');
      assert.equal(err.status, 413);
      assert.deepEqual(err.detail, { limit: 4 });
      assert.deepEqual(err.headers, { 'Content-Range': 'bytes */10' });
    });

    it('is recognised by isRegistryError, and plain errors are not', function () {
      assert.equal(isRegistryError(new RegistryError('UNKNOWN')), true);
      assert.equal(isRegistryError(new Error('x')), false);
      assert.equal(isRegistryError({ code: 'UNKNOWN', status: 500 }), false);
      assert.equal(isRegistryError(undefined), false);
    });
  });

  describe('envelope', function () {
    it('renders one error as {errors:[{code, message, detail}]}', function () {
      const body = envelope(new RegistryError('MANIFEST_UNKNOWN', { detail: { tag: 'latest' } }));
      assert.deepEqual(body, {
        errors: [{ code: 'MANIFEST_UNKNOWN', message: ErrorCodes.MANIFEST_UNKNOWN.message, detail: { tag: 'latest' } }],
      });
    });

    it('leaves detail out when there is none, so the JSON has no detail key', function () {
      const json: unknown = JSON.parse(JSON.stringify(envelope(new RegistryError('DENIED', { message: 'go away' }))));
      assert.deepEqual(json, { errors: [{ code: 'DENIED', message: 'go away' }] });
    });

    it('keeps falsy details such as 0 and null', function () {
      assert.deepEqual(envelope(new RegistryError('UNKNOWN', { detail: 0 })).errors[0]?.detail, 0);
      assert.ok('detail' in (envelope(new RegistryError('UNKNOWN', { detail: null })).errors[0] ?? {}));
    });
  });
});
