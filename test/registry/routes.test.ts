import assert from 'node:assert/strict';
import { ALLOWED_METHODS, matchRoute, RouteNames, type RouteName } from '../../src/registry/routes.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

function route(path: string): { route: RouteName; name: string; param: string } | undefined {
  const m = matchRoute(path);
  return m === undefined ? undefined : { route: m.route, name: m.name, param: m.param };
}

describe('registry/routes', function () {
  describe('matchRoute', function () {
    it('matches the base route with and without trailing slash', function () {
      assert.deepEqual(route('/v2/'), { route: 'base', name: '', param: '' });
      assert.deepEqual(route('/v2'), { route: 'base', name: '', param: '' });
    });

    it('matches the catalog', function () {
      assert.equal(route('/v2/_catalog')?.route, 'catalog');
      assert.equal(route('/v2/_catalog/')?.route, 'catalog');
    });

    for (const name of ['alpine', 'library/alpine', 'a/b/c/d', 'my.org/team-x/app_1']) {
      it(`keeps the slashes of ${name} in every route`, function () {
        assert.deepEqual(route(`/v2/${name}/tags/list`), { route: 'tags', name, param: '' });
        assert.deepEqual(route(`/v2/${name}/manifests/latest`), { route: 'manifest', name, param: 'latest' });
        assert.deepEqual(route(`/v2/${name}/manifests/${DIGEST}`), { route: 'manifest', name, param: DIGEST });
        assert.deepEqual(route(`/v2/${name}/blobs/${DIGEST}`), { route: 'blob', name, param: DIGEST });
        assert.deepEqual(route(`/v2/${name}/blobs/uploads/`), { route: 'upload-start', name, param: '' });
        assert.deepEqual(route(`/v2/${name}/blobs/uploads/abc-123`), { route: 'upload', name, param: 'abc-123' });
        assert.deepEqual(route(`/v2/${name}/referrers/${DIGEST}`), { route: 'referrers', name, param: DIGEST });
      });
    }

    it('matches upload start with or without the trailing slash', function () {
      assert.deepEqual(route('/v2/x/blobs/uploads/'), { route: 'upload-start', name: 'x', param: '' });
      assert.deepEqual(route('/v2/x/blobs/uploads'), { route: 'upload-start', name: 'x', param: '' });
    });

    it('matches the tags list with a trailing slash', function () {
      assert.deepEqual(route('/v2/x/tags/list/'), { route: 'tags', name: 'x', param: '' });
    });

    it('takes the last blobs or manifests segment as the route, so names may contain those words', function () {
      assert.deepEqual(route(`/v2/blobs/blobs/${DIGEST}`), { route: 'blob', name: 'blobs', param: DIGEST });
      assert.deepEqual(route(`/v2/a/blobs/b/blobs/${DIGEST}`), { route: 'blob', name: 'a/blobs/b', param: DIGEST });
      assert.deepEqual(route('/v2/manifests/manifests/v1'), { route: 'manifest', name: 'manifests', param: 'v1' });
      assert.deepEqual(route('/v2/org/manifests/app/manifests/v1'), {
        route: 'manifest',
        name: 'org/manifests/app',
        param: 'v1',
      });
      assert.deepEqual(route('/v2/org/blobs/manifests/latest'), {
        route: 'manifest',
        name: 'org/blobs',
        param: 'latest',
      });
      assert.deepEqual(route(`/v2/org/manifests/blobs/${DIGEST}`), {
        route: 'blob',
        name: 'org/manifests',
        param: DIGEST,
      });
    });

    it('handles names that end in blobs/uploads or tags', function () {
      assert.deepEqual(route('/v2/a/blobs/blobs/uploads/'), { route: 'upload-start', name: 'a/blobs', param: '' });
      assert.deepEqual(route(`/v2/a/blobs/uploads/blobs/${DIGEST}`), {
        route: 'blob',
        name: 'a/blobs/uploads',
        param: DIGEST,
      });
      assert.deepEqual(route('/v2/tags/tags/list'), { route: 'tags', name: 'tags', param: '' });
      assert.deepEqual(route('/v2/a/uploads/blobs/uploads/id1'), { route: 'upload', name: 'a/uploads', param: 'id1' });
    });

    for (const path of [
      '/',
      '/v1/x/manifests/latest',
      '/v2x',
      '/v2/x',
      '/v2/x/manifests/',
      '/v2/x/manifests/a/b',
      '/v2/x/blobs/',
      '/v2/x/tags',
      '/v2/x/tags/list/extra',
      '/v2//manifests/latest',
      '/v2/x/referrers/',
      '/api/v2/x/manifests/latest',
    ]) {
      it(`matches nothing for ${path}`, function () {
        assert.equal(matchRoute(path), undefined);
      });
    }
  });

  describe('ALLOWED_METHODS', function () {
    it('lists methods for every route', function () {
      assert.deepEqual(Object.keys(ALLOWED_METHODS).sort(), Object.values(RouteNames).sort());
    });

    it('answers HEAD wherever it answers GET, except on uploads where HEAD is not part of the API', function () {
      for (const [name, methods] of Object.entries(ALLOWED_METHODS)) {
        if (name === RouteNames.upload) continue;
        if (methods.includes('GET')) assert.ok(methods.includes('HEAD'), `${name} answers GET but not HEAD`);
      }
    });

    it('allows writes only where the distribution API has them', function () {
      assert.deepEqual([...ALLOWED_METHODS.manifest].sort(), ['DELETE', 'GET', 'HEAD', 'PUT']);
      assert.deepEqual([...ALLOWED_METHODS.blob].sort(), ['DELETE', 'GET', 'HEAD']);
      assert.deepEqual([...ALLOWED_METHODS['upload-start']], ['POST']);
      assert.deepEqual([...ALLOWED_METHODS.upload].sort(), ['DELETE', 'GET', 'PATCH', 'PUT']);
      for (const r of ['base', 'catalog', 'tags', 'referrers'] as const)
        assert.deepEqual([...ALLOWED_METHODS[r]].sort(), ['GET', 'HEAD']);
    });
  });
});
