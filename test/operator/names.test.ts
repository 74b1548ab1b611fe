import assert from 'node:assert/strict';
import {
  COMPONENT,
  FIELD_MANAGER,
  INSTANCE,
  MANAGED_BY,
  commonLabels,
  names,
  selectorLabels,
  selectorString,
} from '../../src/operator/names.js';
import { registry } from './fixtures.js';

describe('operator/names', function () {
  describe('names', function () {
    it('derives every owned object’s name from the Registry’s name', function () {
      assert.deepEqual(names(registry({}, { name: 'cache' })), {
        deployment: 'cache',
        service: 'cache',
        config: 'cache-config',
        httpSecret: 'cache-http-secret',
        pvc: 'cache-data',
        pdb: 'cache',
        hpa: 'cache',
        serviceMonitor: 'cache',
        redis: 'cache-redis',
        serviceAccount: 'cache',
        gc: 'cache-gc',
      });
    });

    it('gives the registry and its Redis different names, as both have a Deployment and a Service', function () {
      const n = names(registry());
      assert.notEqual(n.deployment, n.redis);
      assert.notEqual(n.service, n.redis);
    });
  });

  describe('labels', function () {
    it('selects a registry’s pods by name, instance and component', function () {
      assert.deepEqual(selectorLabels(registry({}, { name: 'one' })), {
        'app.kubernetes.io/name': 'berth',
        [INSTANCE]: 'one',
        [COMPONENT]: 'registry',
      });
    });

    it('selects the registry and its Redis apart', function () {
      const r = registry();
      assert.equal(selectorLabels(r, 'redis')[COMPONENT], 'redis');
      assert.notDeepEqual(selectorLabels(r, 'redis'), selectorLabels(r));
    });

    it('selects two registries apart', function () {
      assert.notDeepEqual(selectorLabels(registry({}, { name: 'a' })), selectorLabels(registry({}, { name: 'b' })));
    });

    it('puts the selector labels, the field manager and part-of on every owned object', function () {
      const r = registry();
      for (const component of ['registry', 'redis'] as const) {
        assert.deepEqual(commonLabels(r, component), {
          ...selectorLabels(r, component),
          [MANAGED_BY]: FIELD_MANAGER,
          'app.kubernetes.io/part-of': 'berth',
        });
      }
    });

    it('writes labels as a key=value,… selector string', function () {
      assert.equal(selectorString({ a: '1', 'example.com/b': 'two' }), 'a=1,example.com/b=two');
      assert.equal(selectorString({}), '');
    });
  });
});
