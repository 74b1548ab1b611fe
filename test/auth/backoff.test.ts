import assert from 'node:assert/strict';
import { FailureBackoff } from '../../src/auth/backoff.js';

describe('auth/backoff', function () {
  it('lets a few failures through, then doubles the wait per failure up to the maximum', function () {
    let now = 1_000_000;
    const b = new FailureBackoff({ free: 3, baseMs: 1_000, maxMs: 8_000, now: () => now });
    for (let i = 0; i < 3; i++) b.failed('10.0.0.1');
    assert.equal(b.retryAfter('10.0.0.1'), 0);
    b.failed('10.0.0.1');
    assert.equal(b.retryAfter('10.0.0.1'), 1_000);
    b.failed('10.0.0.1');
    assert.equal(b.retryAfter('10.0.0.1'), 2_000);
    for (let i = 0; i < 10; i++) b.failed('10.0.0.1');
    assert.equal(b.retryAfter('10.0.0.1'), 8_000);
    assert.equal(b.retryAfter('10.0.0.2'), 0, 'other addresses are not affected');
    now += 8_000;
    assert.equal(b.retryAfter('10.0.0.1'), 0);
  });

  it('forgets an address after a success', function () {
    const b = new FailureBackoff({ free: 0 });
    b.failed('a');
    assert.ok(b.retryAfter('a') > 0);
    b.succeeded('a');
    assert.equal(b.retryAfter('a'), 0);
  });

  it('remembers a bounded number of addresses', function () {
    const b = new FailureBackoff({ max: 100 });
    for (let i = 0; i < 10_000; i++) b.failed(`10.0.${i >> 8}.${i & 255}`);
    assert.equal(b.size, 100);
  });
});
