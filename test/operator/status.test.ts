import assert from 'node:assert/strict';
import type { V1Deployment } from '@kubernetes/client-node';
import type { Registry, RegistryCondition, RegistrySpec, RegistryStatus } from '../../src/operator/api/types.js';
import {
  CONDITION_TYPES,
  computeStatus,
  idleStatus,
  mergeConditions,
  type Observed,
  type Problem,
} from '../../src/operator/status.js';
import { registry, type DeepPartial } from './fixtures.js';

const EARLIER = '2024-05-01T10:00:00Z';
const NOW = new Date('2024-05-02T12:30:45.678Z');
const NOW_TEXT = '2024-05-02T12:30:45Z';
const EXTRA = {
  endpoint: 'reg.team.svc:5000',
  storage: 'filesystem',
  cache: 'inmemory',
  configHash: 'abc',
  selector: 'app.kubernetes.io/name=berth',
};

interface Rollout {
  readonly replicas?: number;
  readonly generation?: number;
  readonly observedGeneration?: number;
  readonly updated?: number;
  readonly total?: number;
  readonly available?: number;
  readonly ready?: number;
}

/** A Deployment whose rollout is complete unless told otherwise. */
function deployment(r: Rollout = {}): V1Deployment {
  const replicas = r.replicas ?? 1;
  return {
    metadata: { name: 'reg', generation: r.generation ?? 2 },
    spec: { replicas, selector: {}, template: {} },
    status: {
      observedGeneration: r.observedGeneration ?? r.generation ?? 2,
      replicas: r.total ?? replicas,
      updatedReplicas: r.updated ?? replicas,
      availableReplicas: r.available ?? replicas,
      readyReplicas: r.ready ?? r.available ?? replicas,
    },
  };
}

function condition(status: RegistryStatus, type: string): RegistryCondition {
  const c = status.conditions?.find((x) => x.type === type);
  assert.ok(c, `no ${type} condition in ${JSON.stringify(status.conditions)}`);
  return c;
}

function compute(
  observed: Partial<Observed> = {},
  spec: DeepPartial<RegistrySpec> = {},
  reg: Registry = registry(spec, { generation: 4 }),
): RegistryStatus {
  return computeStatus(reg, { problems: [], claimPhase: 'Bound', claimName: 'reg-data', ...observed }, EXTRA, NOW);
}

const draft = (type: string, status: RegistryCondition['status'], reason = 'Why') => ({
  type,
  status,
  reason,
  message: `${type} is ${status}`,
});

describe('operator/status', function () {
  describe('mergeConditions', function () {
    const previous: RegistryCondition[] = [
      {
        type: 'Ready',
        status: 'True',
        reason: 'Available',
        message: 'fine',
        lastTransitionTime: EARLIER,
        observedGeneration: 1,
      },
    ];

    it('keeps lastTransitionTime while the status stays the same, even when reason and message change', function () {
      const [ready] = mergeConditions(previous, [draft('Ready', 'True', 'StillAvailable')], 2, NOW);
      assert.deepEqual(ready, {
        type: 'Ready',
        status: 'True',
        reason: 'StillAvailable',
        message: 'Ready is True',
        lastTransitionTime: EARLIER,
        observedGeneration: 2,
      });
    });

    it('sets lastTransitionTime to now, in whole seconds, when the status changes', function () {
      const [ready] = mergeConditions(previous, [draft('Ready', 'False')], 2, NOW);
      assert.equal(ready?.lastTransitionTime, NOW_TEXT);
    });

    it('sets lastTransitionTime to now for a condition seen for the first time', function () {
      const merged = mergeConditions(previous, [draft('Ready', 'True'), draft('Degraded', 'False')], 2, NOW);
      assert.equal(merged.find((c) => c.type === 'Degraded')?.lastTransitionTime, NOW_TEXT);
      assert.equal(mergeConditions(undefined, [draft('Ready', 'True')], 1, NOW)[0]?.lastTransitionTime, NOW_TEXT);
    });

    it('writes times the CRD’s date-time format and metav1.Time accept', function () {
      const [ready] = mergeConditions(undefined, [draft('Ready', 'True')], 1, new Date('2024-01-02T03:04:05Z'));
      assert.equal(ready?.lastTransitionTime, '2024-01-02T03:04:05Z');
    });
  });

  describe('computeStatus: Ready and Progressing', function () {
    it('is Ready once the rollout is done: newest spec seen, every pod updated and available', function () {
      const status = compute({ deployment: deployment({ replicas: 2 }) }, { replicas: 2 });
      assert.equal(condition(status, 'Ready').status, 'True');
      assert.equal(condition(status, 'Ready').reason, 'Available');
      assert.equal(condition(status, 'Progressing').status, 'False');
      assert.equal(condition(status, 'Progressing').reason, 'RolloutComplete');
    });

    for (const [title, rollout, message] of [
      [
        'the Deployment controller has not seen the newest generation',
        { replicas: 2, generation: 3, observedGeneration: 2 },
        /has not seen the newest spec/,
      ],
      // The old pods still count as available while a surge pod comes up.
      ['fewer pods are updated than desired', { replicas: 2, updated: 1 }, /1 of 2 pods updated/],
      ['fewer pods are available than desired', { replicas: 2, available: 1 }, /1 of 2 pods available/],
      ['old pods are still terminating', { replicas: 2, total: 3 }, /1 old pods still terminating/],
    ] satisfies [string, Rollout, RegExp][]) {
      it(`is not Ready, and Progressing, while ${title}`, function () {
        const status = compute({ deployment: deployment(rollout) }, { replicas: 2 });
        assert.equal(condition(status, 'Ready').status, 'False');
        assert.equal(condition(status, 'Ready').reason, 'RollingOut');
        assert.match(condition(status, 'Ready').message, message);
        assert.equal(condition(status, 'Progressing').status, 'True');
      });
    }

    it('is not Ready while the Deployment does not exist', function () {
      const status = compute({});
      assert.equal(condition(status, 'Ready').status, 'False');
      assert.match(condition(status, 'Ready').message, /does not exist/);
    });

    it('is not Ready, reason ScaledToZero, at 0 replicas', function () {
      const status = compute({ deployment: deployment({ replicas: 0 }) }, { replicas: 0 });
      assert.deepEqual(
        [condition(status, 'Ready').status, condition(status, 'Ready').reason],
        ['False', 'ScaledToZero'],
      );
    });

    it('counts the replicas the HPA set on the Deployment while autoscaling', function () {
      const spec = { storage: { s3: { bucket: 'b' } }, autoscaling: { enabled: true, minReplicas: 2 } } as const;
      const status = compute({ deployment: deployment({ replicas: 4, available: 3 }) }, spec);
      assert.equal(condition(status, 'Ready').status, 'False');
      assert.match(condition(status, 'Ready').message, /3 of 4/);
      const without = compute({}, spec);
      assert.match(condition(without, 'Ready').message, /does not exist/);
    });
  });

  describe('computeStatus: Degraded', function () {
    const storageProblem: Problem = { area: 'storage', reason: 'ClaimNotFound', message: 'claim x is missing' };
    const secretProblem: Problem = { area: 'auth', reason: 'SecretNotFound', message: 'secret users is missing' };

    it('is not Degraded without problems', function () {
      assert.equal(condition(compute({ deployment: deployment() }), 'Degraded').status, 'False');
    });

    it('is Degraded with every problem’s message, and the first problem’s reason', function () {
      const degraded = condition(
        compute({ deployment: deployment(), problems: [storageProblem, secretProblem] }),
        'Degraded',
      );
      assert.equal(degraded.status, 'True');
      assert.equal(degraded.reason, 'ClaimNotFound');
      assert.match(degraded.message, /claim x is missing/);
      assert.match(degraded.message, /secret users is missing/);
    });

    it('stays Ready with a problem that does not block the deployment', function () {
      const status = compute({ deployment: deployment(), problems: [secretProblem] });
      assert.equal(condition(status, 'Ready').status, 'True');
    });

    it('is not Ready, reason Blocked, with a problem that blocks the deployment, however the rollout stands', function () {
      const status = compute({ deployment: deployment(), problems: [{ ...secretProblem, blocksDeployment: true }] });
      assert.deepEqual([condition(status, 'Ready').status, condition(status, 'Ready').reason], ['False', 'Blocked']);
      assert.deepEqual(
        [condition(status, 'Progressing').status, condition(status, 'Progressing').reason],
        ['False', 'Blocked'],
      );
      assert.equal(condition(status, 'Degraded').status, 'True');
    });
  });

  describe('computeStatus: StorageReady', function () {
    it('is True when the claim is Bound, naming it', function () {
      const storage = condition(compute({ claimPhase: 'Bound', claimName: 'reg-data' }), 'StorageReady');
      assert.equal(storage.status, 'True');
      assert.match(storage.message, /reg-data/);
    });

    it('is False, reason ClaimPending, while the claim is Pending or not made', function () {
      for (const claimPhase of ['Pending', undefined]) {
        const storage = condition(compute({ claimPhase, claimName: 'reg-data' }), 'StorageReady');
        assert.deepEqual([storage.status, storage.reason], ['False', 'ClaimPending'], String(claimPhase));
      }
    });

    it('is False with the reason of a storage problem', function () {
      const problem: Problem = { area: 'storage', reason: 'StorageClassNotFound', message: 'no class' };
      const storage = condition(compute({ problems: [problem] }), 'StorageReady');
      assert.deepEqual(
        [storage.status, storage.reason, storage.message],
        ['False', 'StorageClassNotFound', 'no class'],
      );
    });

    it('is True for emptyDir and object storage, which have no claim', function () {
      for (const storage of [{ emptyDir: {} }, { s3: { bucket: 'b' } }, { gcs: { bucket: 'g' } }]) {
        const c = condition(compute({ claimPhase: undefined }, { storage }), 'StorageReady');
        assert.equal(c.status, 'True', JSON.stringify(storage));
      }
    });
  });

  describe('computeStatus: CacheReady', function () {
    const managed = { cache: { type: 'redis', redis: { managed: true } } } as const;

    it('is True for a managed Redis with an available replica', function () {
      const redisDeployment = deployment({ replicas: 1, available: 1 });
      assert.equal(condition(compute({ redisDeployment }, managed), 'CacheReady').status, 'True');
    });

    it('is False, reason RedisStarting, for a managed Redis without available replicas', function () {
      for (const redisDeployment of [deployment({ replicas: 1, available: 0 }), undefined]) {
        const cache = condition(compute({ redisDeployment }, managed), 'CacheReady');
        assert.deepEqual([cache.status, cache.reason], ['False', 'RedisStarting']);
      }
    });

    it('is True for an in-process cache, no cache and an external Redis', function () {
      for (const cache of [
        { type: 'inmemory' },
        { type: 'none' },
        { type: 'redis', redis: { address: 'r:6379' } },
      ] as const) {
        assert.equal(condition(compute({}, { cache }), 'CacheReady').status, 'True', cache.type);
      }
    });

    it('is False with the reason of a cache problem', function () {
      const problem: Problem = { area: 'cache', reason: 'SecretNotFound', message: 'no password' };
      const cache = condition(compute({ problems: [problem] }, managed), 'CacheReady');
      assert.deepEqual([cache.status, cache.reason], ['False', 'SecretNotFound']);
    });
  });

  describe('computeStatus: the rest', function () {
    it('lists each condition type once, in a fixed order', function () {
      assert.deepEqual(
        compute({ deployment: deployment() }).conditions?.map((c) => c.type),
        [...CONDITION_TYPES],
      );
    });

    it('records the generation, the replica counts and the extra fields', function () {
      const status = compute({ deployment: deployment({ replicas: 3, available: 2, ready: 2 }) });
      assert.equal(status.observedGeneration, 4);
      assert.equal(status.replicas, 3);
      assert.equal(status.readyReplicas, 2);
      for (const c of status.conditions ?? []) assert.equal(c.observedGeneration, 4);
      assert.deepEqual(
        {
          endpoint: status.endpoint,
          storage: status.storage,
          cache: status.cache,
          configHash: status.configHash,
          selector: status.selector,
        },
        EXTRA,
      );
    });

    it('reports the image of the Deployment’s pod template, and none without a Deployment', function () {
      const d = deployment();
      d.spec = { ...d.spec, selector: {}, template: { spec: { containers: [{ name: 'registry', image: 'b:2' }] } } };
      assert.equal(compute({ deployment: d }).image, 'b:2');
      assert.equal('image' in compute({}), false);
    });

    it('keeps lastTransitionTime from the Registry’s status for conditions that did not change', function () {
      const first = compute({ deployment: deployment() });
      const reg = registry({}, { generation: 5 });
      reg.status = {
        ...first,
        conditions: first.conditions?.map((c) => ({ ...c, lastTransitionTime: EARLIER })),
      };
      const second = compute(
        { deployment: deployment(), problems: [{ area: 'config', reason: 'Bad', message: 'bad' }] },
        {},
        reg,
      );
      assert.equal(condition(second, 'Ready').lastTransitionTime, EARLIER);
      assert.equal(condition(second, 'Degraded').lastTransitionTime, NOW_TEXT);
    });
  });

  describe('idleStatus', function () {
    it('reports Unmanaged as Ready Unknown, neither Progressing nor Degraded', function () {
      const status = idleStatus(registry({}, { generation: 3 }), 'Unmanaged', deployment({ replicas: 2 }), NOW);
      assert.deepEqual(
        status.conditions?.map((c) => [c.type, c.status, c.reason]),
        [
          ['Ready', 'Unknown', 'Unmanaged'],
          ['Progressing', 'False', 'Unmanaged'],
          ['Degraded', 'False', 'Unmanaged'],
        ],
      );
      assert.equal(status.observedGeneration, 3);
      assert.equal(status.replicas, 2);
    });

    it('reports Removed as not Ready, with no replicas and no image once the Deployment is gone', function () {
      const reg = registry();
      reg.status = { image: 'b:1' };
      const status = idleStatus(reg, 'Removed', undefined, NOW);
      assert.equal('image' in status, false);
      assert.deepEqual([condition(status, 'Ready').status, condition(status, 'Ready').reason], ['False', 'Removed']);
      assert.equal(status.replicas, 0);
      assert.equal(status.readyReplicas, 0);
    });

    it('keeps the previous status fields and unchanged transition times', function () {
      const reg = registry();
      reg.status = {
        endpoint: 'reg.team.svc:5000',
        conditions: [
          { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '', lastTransitionTime: EARLIER },
        ],
      };
      const status = idleStatus(reg, 'Unmanaged', undefined, NOW);
      assert.equal(status.endpoint, 'reg.team.svc:5000');
      assert.equal(condition(status, 'Degraded').lastTransitionTime, EARLIER);
      assert.equal(condition(status, 'Ready').lastTransitionTime, NOW_TEXT);
    });
  });
});
