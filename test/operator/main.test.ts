import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { builtInImage, defaultImage } from '../../src/operator/main.js';
import { REPO_ROOT } from '../helpers/harness.js';

describe('operator/main: the default registry image', function () {
  it('is ghcr.io/berth-dev/berth at this package’s version without one given, as the chart’s defaults name it', async function () {
    const { version } = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(builtInImage(), `ghcr.io/berth-dev/berth:${version}`);
    assert.deepEqual(defaultImage({}), { image: builtInImage(), pullPolicy: 'IfNotPresent' });
    // The chart always sets the variables; an empty one means "not set".
    assert.deepEqual(defaultImage({ registryImage: '', registryImagePullPolicy: '' }), defaultImage({}));
  });

  it('takes the image and pull policy it is given, by tag or digest', function () {
    const digest = `mirror.example.com/berth@sha256:${'ab'.repeat(32)}`;
    assert.deepEqual(defaultImage({ registryImage: digest, registryImagePullPolicy: 'Always' }), {
      image: digest,
      pullPolicy: 'Always',
    });
  });

  it('refuses a pull policy Kubernetes does not know, naming the ones it does', function () {
    assert.throws(
      () => defaultImage({ registryImagePullPolicy: 'always' }),
      /pull policy always: must be one of Always, IfNotPresent, Never/,
    );
  });
});
