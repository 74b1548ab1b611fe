import assert from 'node:assert/strict';
import { Counter, Histogram, Registry } from 'prom-client';
import { AggregatedCounter, AggregatedHistogram } from '../../src/metrics/aggregated.js';

const BUCKETS = [0.001, 0.01, 0.1, 1];
const OBSERVATIONS: ReadonlyArray<readonly [string, string, number]> = [
  ['GET', 'blob', 0.0005],
  ['GET', 'blob', 0.001],
  ['GET', 'blob', 0.05],
  ['HEAD', 'blob', 2],
  ['GET', 'manifest', 0.01],
  ['GET', 'blob', 0.1],
];

/** The same observations through prom-client's own metrics and through the aggregated ones, as exposition text. */
async function both(): Promise<{ native: string; aggregated: string; nativeRegistry: Registry; registry: Registry }> {
  const nativeRegistry = new Registry();
  const registry = new Registry();
  const def = { name: 'x_seconds', help: 'h', labelNames: ['method', 'route'] as const, buckets: BUCKETS };
  const nativeH = new Histogram({ ...def, registers: [nativeRegistry] });
  const h = new AggregatedHistogram({ ...def, registers: [registry] });
  const cdef = { name: 'x_total', help: 'c', labelNames: ['method', 'route'] as const };
  const nativeC = new Counter({ ...cdef, registers: [nativeRegistry] });
  const c = new AggregatedCounter({ ...cdef, registers: [registry] });
  for (const [method, route, v] of OBSERVATIONS) {
    nativeH.observe({ method, route }, v);
    h.record([method, route], v);
    nativeC.inc({ method, route });
    c.add([method, route]);
  }
  return { native: await nativeRegistry.metrics(), aggregated: await registry.metrics(), nativeRegistry, registry };
}

describe('aggregated metrics', function () {
  it("export exactly what prom-client's own counter and histogram export for the same events", async function () {
    const { native, aggregated } = await both();
    assert.equal(aggregated, native);
    assert.match(aggregated, /^x_seconds_bucket\{le="0.001",method="GET",route="blob"\} 2$/m);
    assert.match(aggregated, /^x_seconds_bucket\{le="\+Inf",method="HEAD",route="blob"\} 1$/m);
    assert.match(aggregated, /^x_total\{method="GET",route="blob"\} 4$/m);
  });

  it('answer get() as prom-client does, labels merged', async function () {
    const { nativeRegistry, registry } = await both();
    for (const name of ['x_seconds', 'x_total']) {
      const ours = await registry.getSingleMetric(name)!.get();
      const theirs = await nativeRegistry.getSingleMetric(name)!.get();
      // prom-client adds an empty `exemplar` to its own lines; the rest must be the same.
      const plain = (values: typeof ours.values) =>
        values.map((v) => ({ labels: v.labels, value: v.value, metricName: 'metricName' in v ? v.metricName : name }));
      assert.deepEqual(plain(ours.values), plain(theirs.values), name);
      assert.equal(ours.type, theirs.type);
    }
  });

  it('keeps counting across scrapes, and exports a series created at zero', async function () {
    const registry = new Registry();
    const c = new AggregatedCounter({
      name: 'y_total',
      help: 'c',
      labelNames: ['tier'] as const,
      registers: [registry],
    });
    const h = new AggregatedHistogram({
      name: 'y_seconds',
      help: 'h',
      labelNames: ['tier'] as const,
      buckets: [1],
      registers: [registry],
    });
    c.add(['memory'], 0);
    h.series(['memory']);
    let text = await registry.metrics();
    assert.match(text, /^y_total\{tier="memory"\} 0$/m);
    assert.match(text, /^y_seconds_count\{tier="memory"\} 0$/m);
    c.add(['memory']);
    c.add(['memory'], 2);
    h.record(['memory'], 0.5);
    h.record(['memory'], Number.NaN);
    await registry.metrics();
    c.add(['memory']);
    text = await registry.metrics();
    assert.match(text, /^y_total\{tier="memory"\} 4$/m);
    assert.match(text, /^y_seconds_count\{tier="memory"\} 1$/m, 'a value that is not a number is not counted');
    h.reset();
    assert.doesNotMatch(await registry.metrics(), /^y_seconds_count/m);
  });
});
