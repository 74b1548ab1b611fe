import assert from 'node:assert/strict';
import { RegistryError } from '../../src/oci/errors.js';
import { fromStorage } from '../../src/registry/storage-errors.js';
import { ChunkMismatch } from '../../src/storage/uploads.js';

describe('fromStorage', function () {
  it('answers a chunk at the wrong offset with 416 RANGE_INVALID and the range the upload holds', function () {
    const err = fromStorage(new ChunkMismatch('offset', 4, true, 'chunk starts at 2'));
    assert.ok(err instanceof RegistryError);
    assert.equal(err.code, 'RANGE_INVALID');
    assert.equal(err.status, 416);
    assert.deepEqual(err.headers, { Range: '0-3' });
    assert.equal(err.message, 'chunk starts at 2');
  });

  it('answers a ranged chunk of the wrong length with 416 BLOB_UPLOAD_INVALID, an unranged one with 400', function () {
    const ranged = fromStorage(new ChunkMismatch('length', 0, true, 'short'));
    assert.ok(ranged instanceof RegistryError);
    assert.deepEqual([ranged.code, ranged.status, ranged.headers], ['BLOB_UPLOAD_INVALID', 416, { Range: '0-0' }]);
    const unranged = fromStorage(new ChunkMismatch('length', 9, false, 'long'));
    assert.ok(unranged instanceof RegistryError);
    assert.deepEqual(
      [unranged.code, unranged.status, unranged.headers],
      ['BLOB_UPLOAD_INVALID', 400, { Range: '0-8' }],
    );
  });

  it('passes every other error through unchanged', function () {
    const other = new Error('disk on fire');
    assert.equal(fromStorage(other), other);
    const registry = new RegistryError('BLOB_UNKNOWN');
    assert.equal(fromStorage(registry), registry);
  });
});
