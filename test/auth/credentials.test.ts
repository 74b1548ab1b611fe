import assert from 'node:assert/strict';
import { MAX_AUTHORIZATION_LENGTH, parseAuthorization } from '../../src/auth/credentials.js';

const basic = (s: string | Buffer): string => `Basic ${Buffer.from(s).toString('base64')}`;

describe('auth/credentials', function () {
  it('reads Basic credentials, the password keeping its colons', function () {
    assert.deepEqual(parseAuthorization(basic('alice:pa:ss')), { kind: 'basic', user: 'alice', password: 'pa:ss' });
    assert.deepEqual(parseAuthorization(basic('jörg:ß')), { kind: 'basic', user: 'jörg', password: 'ß' });
    assert.deepEqual(parseAuthorization(`basic ${Buffer.from('a:b').toString('base64')}`).kind, 'basic');
  });

  it('reads a bearer token', function () {
    assert.deepEqual(parseAuthorization('Bearer aaa.bbb.ccc'), { kind: 'bearer', token: 'aaa.bbb.ccc' });
  });

  it('gives none without a header, and for the empty Basic pair anonymous containers/image clients send', function () {
    assert.deepEqual(parseAuthorization(undefined), { kind: 'none' });
    assert.deepEqual(parseAuthorization('Basic Og=='), { kind: 'none' });
  });

  for (const [what, header] of [
    ['an empty header', ''],
    ['only the scheme', 'Basic'],
    ['an overlong header', basic(`alice:${'x'.repeat(MAX_AUTHORIZATION_LENGTH)}`)],
    ['credentials that are not base64', 'Basic !!!!'],
    ['credentials that are not UTF-8', basic(Buffer.from([0x61, 0x3a, 0xff, 0xfe]))],
    ['no colon', basic('alice')],
    ['an empty user', basic(':password')],
    ['an unknown scheme', 'Digest username="alice"'],
    ['a bearer value that is no JWS', 'Bearer not-a-token'],
  ] as const) {
    it(`calls ${what} malformed`, function () {
      assert.equal(parseAuthorization(header).kind, 'malformed');
    });
  }
});
