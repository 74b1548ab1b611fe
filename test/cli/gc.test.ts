// BERTH_GC modes map to V8 flags; anything else is refused with the choices named.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { GC_MODES, gcFlags } from '../../src/cli/gc.js';

describe('gcFlags', () => {
  it('defaults to balanced: the old generation may grow to 4× its live size', () => {
    assert.deepEqual(gcFlags(undefined), ['--heap-growing-percent=300']);
    assert.deepEqual(gcFlags('balanced'), gcFlags(undefined));
  });

  it('adds global accounting of socket buffers for throughput, and sets nothing for v8', () => {
    assert.deepEqual(gcFlags('throughput'), [
      '--heap-growing-percent=300',
      '--external-memory-accounted-in-global-limit',
    ]);
    assert.deepEqual(gcFlags('v8'), []);
  });

  it('refuses unknown modes, naming every choice', () => {
    for (const bad of ['', 'fast', 'THROUGHPUT']) {
      const result = gcFlags(bad);
      assert.ok(result instanceof Error, bad);
      for (const mode of GC_MODES) assert.match(result.message, new RegExp(mode));
    }
  });

  it('names only flags this V8 knows', () => {
    const known = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8', maxBuffer: 16 << 20 });
    for (const mode of GC_MODES) {
      const flags = gcFlags(mode);
      assert.ok(Array.isArray(flags));
      for (const flag of flags) assert.ok(known.includes(flag.split('=')[0] ?? flag), flag);
    }
  });
});
