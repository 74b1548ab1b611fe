import assert from 'node:assert/strict';
import { digestBuffer } from '../../src/oci/digest.js';
import { RegistryError } from '../../src/oci/errors.js';
import { accepts, inferMediaType, MediaTypes, parseManifest, type ParsedManifest } from '../../src/oci/manifest.js';

const CONFIG_TYPE = 'application/vnd.oci.image.config.v1+json';
const LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';
const DOCKER_CONFIG_TYPE = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER_TYPE = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const FOREIGN_TYPE = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';

function digestOfText(text: string): string {
  return digestBuffer(Buffer.from(text)).value;
}

function descriptor(mediaType: string, seed: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { mediaType, digest: digestOfText(seed), size: seed.length, ...extra };
}

function body(json: unknown): Buffer {
  return Buffer.from(JSON.stringify(json));
}

function image(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    config: descriptor(CONFIG_TYPE, 'config'),
    layers: [descriptor(LAYER_TYPE, 'layer0'), descriptor(LAYER_TYPE, 'layer1')],
    ...extra,
  };
}

function index(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    manifests: [
      descriptor(MediaTypes.ociManifest, 'amd64', { platform: { os: 'linux', architecture: 'amd64' } }),
      descriptor(MediaTypes.ociManifest, 'arm64', { platform: { os: 'linux', architecture: 'arm64' } }),
    ],
    ...extra,
  };
}

/** Asserts MANIFEST_INVALID (400) whose message matches `message`. */
function manifestInvalid(message: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof RegistryError, `expected RegistryError, got ${String(err)}`);
    assert.equal(err.code, 'MANIFEST_INVALID');
    assert.equal(err.status, 400);
    assert.match(err.message, message);
    return true;
  };
}

function digests(list: ParsedManifest['blobs']): string[] {
  return list.map((d) => d.digest.value);
}

describe('oci/manifest', function () {
  describe('parseManifest: OCI image manifests', function () {
    it('lists the config and every layer as required blobs, in order', function () {
      const m = parseManifest(body(image({ mediaType: MediaTypes.ociManifest })), MediaTypes.ociManifest);
      assert.equal(m.mediaType, MediaTypes.ociManifest);
      assert.deepEqual(digests(m.blobs), [digestOfText('config'), digestOfText('layer0'), digestOfText('layer1')]);
      assert.deepEqual(m.manifests, []);
      assert.equal(m.blobs[0]?.mediaType, CONFIG_TYPE);
      assert.equal(m.blobs[1]?.size, 'layer0'.length);
      assert.equal(m.blobs[1]?.digest.algorithm, 'sha256');
      assert.equal(m.subject, undefined);
    });

    it('reports the config media type as artifactType when the manifest names none', function () {
      assert.equal(parseManifest(body(image()), MediaTypes.ociManifest).artifactType, CONFIG_TYPE);
    });

    it('prefers an explicit artifactType over the config media type', function () {
      const m = parseManifest(body(image({ artifactType: 'application/vnd.example.sbom' })), MediaTypes.ociManifest);
      assert.equal(m.artifactType, 'application/vnd.example.sbom');
    });

    it('parses the subject as a descriptor for the referrers index', function () {
      const subject = descriptor(MediaTypes.ociManifest, 'the-image');
      const m = parseManifest(body(image({ subject })), MediaTypes.ociManifest);
      assert.equal(m.subject?.digest.value, digestOfText('the-image'));
      assert.equal(m.subject?.mediaType, MediaTypes.ociManifest);
      assert.equal(m.subject?.size, 'the-image'.length);
    });

    it('keeps the annotations of the manifest and of its descriptors', function () {
      const m = parseManifest(
        body(
          image({
            annotations: { 'org.opencontainers.image.created': '2024-01-01' },
            config: descriptor(CONFIG_TYPE, 'c', { annotations: { k: 'v' } }),
          }),
        ),
        undefined,
      );
      assert.deepEqual(m.annotations, { 'org.opencontainers.image.created': '2024-01-01' });
      assert.deepEqual(m.blobs[0]?.annotations, { k: 'v' });
    });

    it('accepts an image with no layers (an artifact that is only a config)', function () {
      const m = parseManifest(body(image({ layers: [] })), MediaTypes.ociManifest);
      assert.deepEqual(digests(m.blobs), [digestOfText('config')]);
    });

    it('leaves foreign layers with urls out of the required blobs', function () {
      const json = image({
        layers: [
          descriptor(FOREIGN_TYPE, 'windows-base', { urls: ['https://example.com/base.tar.gz'] }),
          descriptor('application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', 'nondist', {
            urls: ['https://example.com/n'],
          }),
          descriptor(LAYER_TYPE, 'app'),
        ],
      });
      const m = parseManifest(body(json), undefined);
      assert.deepEqual(digests(m.blobs), [digestOfText('config'), digestOfText('app')]);
    });

    it('requires a foreign layer without urls, and an ordinary layer even with urls', function () {
      const json = image({
        layers: [
          descriptor(FOREIGN_TYPE, 'no-urls'),
          descriptor(FOREIGN_TYPE, 'empty-urls', { urls: [] }),
          descriptor(LAYER_TYPE, 'ordinary', { urls: ['https://example.com/x'] }),
        ],
      });
      const m = parseManifest(body(json), undefined);
      assert.deepEqual(digests(m.blobs), [
        digestOfText('config'),
        digestOfText('no-urls'),
        digestOfText('empty-urls'),
        digestOfText('ordinary'),
      ]);
    });

    it('still checks the digest of a foreign layer', function () {
      const json = image({
        layers: [{ mediaType: FOREIGN_TYPE, digest: 'sha256:nothex', size: 1, urls: ['https://example.com/x'] }],
      });
      assert.throws(() => parseManifest(body(json), undefined), manifestInvalid(/layers\[0\]: invalid digest/));
    });
  });

  describe('parseManifest: indexes and Docker types', function () {
    it('lists the entries of an OCI index as required manifests and no blobs', function () {
      const m = parseManifest(body(index({ mediaType: MediaTypes.ociIndex })), MediaTypes.ociIndex);
      assert.equal(m.mediaType, MediaTypes.ociIndex);
      assert.deepEqual(digests(m.manifests), [digestOfText('amd64'), digestOfText('arm64')]);
      assert.deepEqual(m.blobs, []);
    });

    it('reports an index artifactType and subject', function () {
      const m = parseManifest(
        body(index({ artifactType: 'application/vnd.example', subject: descriptor(MediaTypes.ociIndex, 's') })),
        MediaTypes.ociIndex,
      );
      assert.equal(m.artifactType, 'application/vnd.example');
      assert.equal(m.subject?.digest.value, digestOfText('s'));
    });

    it('leaves artifactType out of an index that names none', function () {
      const m = parseManifest(body(index()), MediaTypes.ociIndex);
      assert.equal('artifactType' in m, false);
    });

    it('parses a Docker schema 2 manifest', function () {
      const json = {
        schemaVersion: 2,
        mediaType: MediaTypes.dockerManifest,
        config: descriptor(DOCKER_CONFIG_TYPE, 'dconfig'),
        layers: [descriptor(DOCKER_LAYER_TYPE, 'dlayer')],
      };
      const m = parseManifest(body(json), MediaTypes.dockerManifest);
      assert.equal(m.mediaType, MediaTypes.dockerManifest);
      assert.deepEqual(digests(m.blobs), [digestOfText('dconfig'), digestOfText('dlayer')]);
    });

    it('parses a Docker manifest list like an index', function () {
      const json = {
        schemaVersion: 2,
        mediaType: MediaTypes.dockerList,
        manifests: [descriptor(MediaTypes.dockerManifest, 'one')],
      };
      const m = parseManifest(body(json), MediaTypes.dockerList);
      assert.equal(m.mediaType, MediaTypes.dockerList);
      assert.deepEqual(digests(m.manifests), [digestOfText('one')]);
      assert.deepEqual(m.blobs, []);
    });

    it('lists the blobs of an OCI artifact manifest', function () {
      const json = {
        mediaType: MediaTypes.ociArtifact,
        schemaVersion: 2,
        artifactType: 'application/x',
        blobs: [descriptor('application/octet-stream', 'b')],
      };
      const m = parseManifest(body(json), MediaTypes.ociArtifact);
      assert.deepEqual(digests(m.blobs), [digestOfText('b')]);
      assert.equal(m.artifactType, 'application/x');
    });
  });

  describe('parseManifest: the media type', function () {
    it('takes the type of a manifest without mediaType from Content-Type', function () {
      const json = { schemaVersion: 2, config: descriptor(DOCKER_CONFIG_TYPE, 'c'), layers: [] };
      assert.equal(parseManifest(body(json), MediaTypes.dockerManifest).mediaType, MediaTypes.dockerManifest);
    });

    it('reads Content-Type case-insensitively and without its parameters', function () {
      assert.equal(
        parseManifest(body(image()), 'Application/VND.OCI.Image.Manifest.v1+JSON; charset=utf-8').mediaType,
        MediaTypes.ociManifest,
      );
    });

    it('infers an index from the shape when neither field nor Content-Type says', function () {
      assert.equal(parseManifest(body(index()), undefined).mediaType, MediaTypes.ociIndex);
      assert.equal(parseManifest(body(index()), 'application/json').mediaType, MediaTypes.ociIndex);
    });

    it('infers an image manifest from the shape when neither field nor Content-Type says', function () {
      assert.equal(parseManifest(body(image()), 'application/octet-stream').mediaType, MediaTypes.ociManifest);
    });

    it('trusts the mediaType field when Content-Type is not a manifest type', function () {
      assert.equal(
        parseManifest(body(index({ mediaType: MediaTypes.dockerList })), 'application/json').mediaType,
        MediaTypes.dockerList,
      );
    });

    it('rejects a mediaType field that disagrees with Content-Type, naming both', function () {
      assert.throws(
        () => parseManifest(body(image({ mediaType: MediaTypes.ociManifest })), MediaTypes.dockerManifest),
        manifestInvalid(
          /application\/vnd\.oci\.image\.manifest\.v1\+json does not match Content-Type application\/vnd\.docker\.distribution\.manifest\.v2\+json/,
        ),
      );
    });

    it('rejects a manifest type it does not support', function () {
      assert.throws(
        () =>
          parseManifest(
            body(image({ mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws' })),
            undefined,
          ),
        manifestInvalid(/unsupported manifest media type/),
      );
    });

    it('treats a Content-Type-declared index without manifests as invalid', function () {
      assert.throws(() => parseManifest(body(image()), MediaTypes.ociIndex), manifestInvalid(/manifests/));
    });
  });

  describe('parseManifest: invalid bodies', function () {
    it('rejects a body that is not JSON', function () {
      assert.throws(
        () => parseManifest(Buffer.from('{"schemaVersion": 2,'), undefined),
        manifestInvalid(/not valid JSON/),
      );
    });

    for (const [what, json] of [
      ['null', null],
      ['an array', []],
      ['a string', 'manifest'],
    ] as const) {
      it(`rejects ${what} at the top level`, function () {
        assert.throws(() => parseManifest(body(json), undefined), manifestInvalid(/top level/));
      });
    }

    it('rejects schemaVersion 1, naming the field', function () {
      assert.throws(
        () => parseManifest(body(image({ schemaVersion: 1 })), undefined),
        (err: unknown) => manifestInvalid(/schemaVersion/)(err) && (err as RegistryError).detail !== undefined,
      );
    });

    it('rejects an image manifest without config', function () {
      const { config: _config, ...json } = image();
      assert.throws(
        () => parseManifest(body(json), MediaTypes.ociManifest),
        (err: unknown) =>
          manifestInvalid(/config/)(err) && JSON.stringify((err as RegistryError).detail) === '{"field":"config"}',
      );
    });

    it('rejects an image manifest without layers', function () {
      const { layers: _layers, ...json } = image();
      assert.throws(
        () => parseManifest(body(json), MediaTypes.ociManifest),
        (err: unknown) =>
          manifestInvalid(/layers/)(err) && JSON.stringify((err as RegistryError).detail) === '{"field":"layers"}',
      );
    });

    it('rejects an index without manifests', function () {
      assert.throws(
        () => parseManifest(body({ schemaVersion: 2, mediaType: MediaTypes.ociIndex }), undefined),
        manifestInvalid(/manifests/),
      );
    });

    for (const [where, patch] of [
      ['config', { config: descriptor(CONFIG_TYPE, 'c', { digest: 'sha256:123' }) }],
      [
        'layers[1]',
        { layers: [descriptor(LAYER_TYPE, 'ok'), descriptor(LAYER_TYPE, 'x', { digest: `sha256:${'A'.repeat(64)}` })] },
      ],
      [
        'subject',
        { subject: descriptor(MediaTypes.ociManifest, 's', { digest: 'md5:d41d8cd98f00b204e9800998ecf8427e' }) },
      ],
    ] as const) {
      it(`rejects a bad digest in ${where}, naming where`, function () {
        const escaped = where.replace(/[[\]]/g, '\\$&');
        assert.throws(
          () => parseManifest(body(image(patch)), undefined),
          manifestInvalid(new RegExp(`^${escaped}: invalid digest`)),
        );
      });
    }

    it('rejects a bad digest in an index entry, naming the entry', function () {
      const json = index({
        manifests: [
          descriptor(MediaTypes.ociManifest, 'a'),
          descriptor(MediaTypes.ociManifest, 'b', { digest: 'nope' }),
        ],
      });
      assert.throws(() => parseManifest(body(json), undefined), manifestInvalid(/^manifests\[1\]: invalid digest/));
    });

    it('rejects a descriptor with a negative or fractional size, or without a media type', function () {
      assert.throws(
        () => parseManifest(body(image({ config: descriptor(CONFIG_TYPE, 'c', { size: -1 }) })), undefined),
        manifestInvalid(/config\.size/),
      );
      assert.throws(
        () => parseManifest(body(image({ config: descriptor(CONFIG_TYPE, 'c', { size: 1.5 }) })), undefined),
        manifestInvalid(/config\.size/),
      );
      assert.throws(
        () => parseManifest(body(image({ layers: [{ digest: digestOfText('x'), size: 1 }] })), undefined),
        manifestInvalid(/layers\.0\.mediaType/),
      );
    });
  });

  describe('inferMediaType', function () {
    it('uses the mediaType field when it is a non-empty string', function () {
      assert.equal(inferMediaType({ mediaType: MediaTypes.dockerManifest, manifests: [] }), MediaTypes.dockerManifest);
    });

    it('falls back to the shape: manifests → index, blobs → artifact, otherwise image manifest', function () {
      assert.equal(inferMediaType({ mediaType: '', manifests: [] }), MediaTypes.ociIndex);
      assert.equal(inferMediaType({ blobs: [] }), MediaTypes.ociArtifact);
      assert.equal(inferMediaType({ mediaType: 7 }), MediaTypes.ociManifest);
    });
  });

  describe('accepts', function () {
    it('accepts any type when there is no Accept header', function () {
      assert.equal(accepts(undefined, MediaTypes.ociIndex), true);
      assert.equal(accepts('', MediaTypes.ociIndex), true);
    });

    it('accepts any type for wildcards', function () {
      assert.equal(accepts('*/*', MediaTypes.dockerList), true);
      assert.equal(accepts(`${MediaTypes.ociManifest}, application/*;q=0.1`, MediaTypes.dockerList), true);
    });

    it('accepts a type named in the list, with parameters, spaces and any case', function () {
      assert.equal(
        accepts(`${MediaTypes.dockerManifest}, ${MediaTypes.ociIndex.toUpperCase()};q=0.9`, MediaTypes.ociIndex),
        true,
      );
    });

    it('refuses a type the list does not name when the list names other manifest types', function () {
      assert.equal(accepts(`${MediaTypes.dockerManifest}, ${MediaTypes.dockerList}`, MediaTypes.ociIndex), false);
    });

    it('accepts when the list names no manifest type at all', function () {
      assert.equal(accepts('application/json, text/plain', MediaTypes.ociManifest), true);
    });
  });
});
