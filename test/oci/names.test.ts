import assert from 'node:assert/strict';
import { RegistryError } from '../../src/oci/errors.js';
import { checkName, checkTag, isValidName, isValidTag, MAX_NAME_LENGTH } from '../../src/oci/names.js';

/** A valid name of exactly `length` characters: `a/a/a...` ending in a letter. */
function nameOfLength(length: number): string {
  return 'ab/'
    .repeat(Math.ceil(length / 3))
    .slice(0, length)
    .replace(/\/$/, 'c');
}

describe('oci/names', function () {
  describe('repository names', function () {
    for (const good of [
      'a',
      'library/ubuntu',
      'my-org/my.app/sub_component',
      'a__b',
      'a--b',
      'a---b',
      'a.b',
      '0/9',
      'x/y/z/w/v',
    ]) {
      it(`accepts ${JSON.stringify(good)}`, function () {
        assert.equal(isValidName(good), true);
        assert.equal(checkName(good), good);
      });
    }

    for (const bad of [
      '',
      'A/B',
      'Library',
      'a//b',
      '../x',
      'a/../b',
      './a',
      '/a',
      'a/',
      'a___b',
      'a..b',
      'a._b',
      '-a',
      'a-',
      '_a',
      'a b',
      'a:b',
      'a@b',
      'é',
    ]) {
      it(`rejects ${JSON.stringify(bad)} with NAME_INVALID`, function () {
        assert.equal(isValidName(bad), false);
        assert.throws(
          () => checkName(bad),
          (err: unknown) => err instanceof RegistryError && err.code === 'NAME_INVALID' && err.status === 400,
        );
      });
    }

    it(`accepts a name of exactly ${MAX_NAME_LENGTH} characters`, function () {
      const name = nameOfLength(255);
      assert.equal(name.length, 255);
      assert.equal(isValidName(name), true);
    });

    it('rejects a 256-character name, saying it is too long', function () {
      const name = nameOfLength(256);
      assert.equal(name.length, 256);
      assert.equal(isValidName(name), false);
      assert.throws(
        () => checkName(name),
        (err: unknown) =>
          err instanceof RegistryError && err.code === 'NAME_INVALID' && /longer than 255/.test(err.message),
      );
    });

    it('says a short bad name does not match the grammar and puts it in the detail', function () {
      assert.throws(
        () => checkName('A/B'),
        (err: unknown) => {
          assert.ok(err instanceof RegistryError);
          assert.match(err.message, /grammar/);
          assert.deepEqual(err.detail, { name: 'A/B' });
          return true;
        },
      );
    });
  });

  describe('tags', function () {
    for (const good of ['latest', 'v1.2.3', '1.0-rc_1', '_hidden', 'UPPER', 'a'.repeat(128)]) {
      it(`accepts ${JSON.stringify(good.length > 20 ? `${good.slice(0, 5)}… (${good.length} chars)` : good)}`, function () {
        assert.equal(isValidTag(good), true);
        assert.equal(checkTag(good), good);
      });
    }

    for (const bad of ['', '.hidden', '-dash', 'a:b', 'a/b', 'a b', 'sha256:abc', 'a'.repeat(129)]) {
      it(`rejects ${JSON.stringify(bad.length > 20 ? `${bad.slice(0, 5)}… (${bad.length} chars)` : bad)} with TAG_INVALID`, function () {
        assert.equal(isValidTag(bad), false);
        assert.throws(
          () => checkTag(bad),
          (err: unknown) => err instanceof RegistryError && err.code === 'TAG_INVALID' && err.status === 400,
        );
      });
    }
  });
});
