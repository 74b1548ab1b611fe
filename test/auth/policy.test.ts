import assert from 'node:assert/strict';
import { globToRegExp, Policy } from '../../src/auth/policy.js';

describe('auth/policy', function () {
  it('matches `*` within a segment, `**` across segments and `?` one character', function () {
    assert.ok(globToRegExp('team-a/*').test('team-a/app'));
    assert.ok(!globToRegExp('team-a/*').test('team-a/x/app'));
    assert.ok(globToRegExp('team-a/**').test('team-a/x/app'));
    assert.ok(globToRegExp('team-a/**').test('team-a/app'));
    assert.ok(globToRegExp('**/base').test('base'));
    assert.ok(globToRegExp('**/base').test('a/b/base'));
    assert.ok(globToRegExp('v?/app').test('v1/app'));
    assert.ok(!globToRegExp('v?/app').test('v10/app'));
    assert.ok(!globToRegExp('a.b').test('axb'), 'dots are literal');
  });

  const policy = new Policy({
    groups: { 'team-a': ['alice'], admins: ['root'] },
    catalog: ['@admins'],
    rules: [
      { repository: 'library/*', access: { anonymous: ['pull'], '@admins': ['*'] } },
      { repository: ['team-a/**'], access: { '@team-a': ['pull', 'push'], authenticated: ['pull'] } },
      { repository: 'team-b/**', access: { bob: ['pull', 'push', 'delete'] } },
    ],
  });

  it('lets anyone pull a public repository, and only admins push to it', function () {
    assert.deepEqual([...policy.actions(undefined, 'library/alpine')], ['pull']);
    assert.deepEqual([...policy.actions('alice', 'library/alpine')], ['pull']);
    assert.ok(policy.grant('root').allows('repository', 'library/alpine', 'push'));
    assert.ok(!policy.grant('alice').allows('repository', 'library/alpine', 'push'));
  });

  it('gives alice push on team-a/* and nothing on team-b/*', function () {
    const alice = policy.grant('alice');
    assert.ok(alice.allows('repository', 'team-a/app', 'push'));
    assert.ok(!alice.allows('repository', 'team-a/app', 'delete'));
    assert.ok(!alice.allows('repository', 'team-b/app', 'pull'));
    assert.ok(!alice.allows('repository', 'team-b/app', 'push'));
    assert.ok(policy.grant('carol').allows('repository', 'team-a/app', 'pull'), 'authenticated users pull team-a');
    assert.ok(!policy.grant(undefined).allows('repository', 'team-a/app', 'pull'));
  });

  it('decides by the first matching rule and denies repositories no rule names', function () {
    const first = new Policy({
      groups: {},
      catalog: [],
      rules: [
        { repository: 'x/private', access: { bob: ['pull'] } },
        { repository: 'x/*', access: { anonymous: ['pull'] } },
      ],
    });
    assert.ok(!first.grant(undefined).allows('repository', 'x/private', 'pull'));
    assert.ok(first.grant(undefined).allows('repository', 'x/public', 'pull'));
    assert.ok(!first.grant('bob').allows('repository', 'elsewhere', 'pull'));
  });

  it('grants the catalog to the principals listed, and knows whether anonymous has any access', function () {
    assert.ok(policy.grant('root').allows('registry', 'catalog', '*'));
    assert.ok(!policy.grant('alice').allows('registry', 'catalog', '*'));
    assert.equal(policy.anonymousAccess, true);
    assert.equal(new Policy({ groups: {}, catalog: ['authenticated'], rules: [] }).anonymousAccess, false);
  });
});
