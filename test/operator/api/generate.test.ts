import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import {
  CRD_PATH,
  TYPES_PATH,
  crdObject,
  crdSchema,
  renderCrdYaml,
  renderTypes,
} from '../../../src/operator/api/generate.js';
import { GROUP, KIND, PLURAL, VERSION, registrySchema, type Schema } from '../../../src/operator/api/schema.js';
import { applyDefaults } from '../fixtures.js';

type Tree = Record<string, unknown>;

function isTree(value: unknown): value is Tree {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every schema node under `schema` with its JSON path: properties, list items and map values. */
function walk(schema: Schema, path = ''): [string, Schema][] {
  const out: [string, Schema][] = [[path === '' ? '(root)' : path, schema]];
  for (const [key, child] of Object.entries(schema.properties ?? {})) out.push(...walk(child, `${path}.${key}`));
  if (schema.items !== undefined) out.push(...walk(schema.items, `${path}[]`));
  if (schema.additionalProperties !== undefined) out.push(...walk(schema.additionalProperties, `${path}{}`));
  return out;
}

/** The schema node at a dotted path such as `.status.replicas`. */
function nodeAt(schema: Schema, path: string): Schema | undefined {
  let node: Schema | undefined = schema;
  for (const key of path.split('.').filter(Boolean)) node = node?.properties?.[key];
  return node;
}

/** Every key, at any depth, of a JSON value. */
function allKeys(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(allKeys);
  if (!isTree(value)) return [];
  return Object.entries(value).flatMap(([k, v]) => [k, ...allKeys(v)]);
}

interface CrdVersion {
  name: string;
  served: boolean;
  storage: boolean;
  schema: { openAPIV3Schema: Schema };
  subresources: Tree;
  additionalPrinterColumns: { name: string; type: string; jsonPath: string; priority?: number }[];
}

function committedCrdVersion(text: string): CrdVersion {
  const crd = parse(text) as { spec: { versions: CrdVersion[] } };
  const [version] = crd.spec.versions;
  assert.ok(version, 'the CRD has no version');
  return version;
}

describe('operator/api/generate', function () {
  describe('committed files', function () {
    it('keeps crds/ equal to what renderCrdYaml() writes from the schema', async function () {
      const committed = await readFile(CRD_PATH, 'utf8');
      assert.ok(committed === renderCrdYaml(), `${CRD_PATH} is out of date: run npm run generate`);
    });

    it('keeps src/operator/api/types.ts equal to what renderTypes() writes from the schema', async function () {
      this.timeout(20_000);
      const committed = await readFile(TYPES_PATH, 'utf8');
      assert.ok(committed === (await renderTypes()), `${TYPES_PATH} is out of date: run npm run generate`);
    });

    it('writes YAML that reads back as exactly the CRD object, with no anchors or aliases', function () {
      const text = renderCrdYaml();
      assert.doesNotMatch(text, /(^|\s)[&*][A-Za-z0-9]+\s/m);
      assert.deepEqual(parse(text), JSON.parse(JSON.stringify(crdObject())));
    });
  });

  describe('registrySchema', function () {
    it('describes every property, list item and map value', function () {
      // The API server forbids anything but `type` on the root metadata, a description included.
      const missing = walk(registrySchema)
        .filter(([path, node]) => path !== '.metadata' && (node.description ?? '').trim() === '')
        .map(([path]) => path);
      assert.deepEqual(missing, []);
    });

    it('gives every node a type, as a structural schema must, except int-or-string fields', function () {
      const untyped = walk(registrySchema)
        .filter(([, node]) => node.type === undefined && node['x-kubernetes-int-or-string'] !== true)
        .map(([path]) => path);
      assert.deepEqual(untyped, []);
    });

    it('has defaults that satisfy their own type, enum, pattern and bounds', function () {
      const bad: string[] = [];
      for (const [path, node] of walk(registrySchema)) {
        const d = node.default;
        if (d === undefined) continue;
        const typeOk =
          node.type === undefined ||
          (node.type === 'object' && isTree(d)) ||
          (node.type === 'array' && Array.isArray(d)) ||
          (node.type === 'integer' && Number.isInteger(d)) ||
          typeof d === node.type;
        if (!typeOk) bad.push(`${path}: ${JSON.stringify(d)} is not ${node.type}`);
        if (node.enum !== undefined && !node.enum.includes(String(d))) bad.push(`${path}: ${String(d)} not in enum`);
        if (node.pattern !== undefined && !new RegExp(node.pattern).test(String(d))) {
          bad.push(`${path}: ${String(d)} does not match ${node.pattern}`);
        }
        if (typeof d === 'number' && (d < (node.minimum ?? -Infinity) || d > (node.maximum ?? Infinity))) {
          bad.push(`${path}: ${d} out of bounds`);
        }
      }
      assert.deepEqual(bad, []);
    });

    it('defaults `spec: {}` to one replica on a 10Gi ReadWriteOnce PVC with an in-memory cache, as it says', function () {
      const defaulted = applyDefaults({ spec: {} }) as { spec: Tree };
      const { spec } = defaulted;
      assert.equal(spec['replicas'], 1);
      assert.deepEqual(spec['storage'], { filesystem: { size: '10Gi', accessMode: 'ReadWriteOnce' } });
      assert.deepEqual(spec['cache'], { type: 'inmemory', size: 10000 });
      assert.equal(spec['managementState'], 'Managed');
    });
  });

  describe('crdSchema', function () {
    it('strips every x-berth-* key at every depth of the Registry schema', function () {
      assert.ok(
        allKeys(registrySchema).some((k) => k.startsWith('x-berth-')),
        'the schema uses x-berth-* keys',
      );
      const left = allKeys(crdSchema(registrySchema)).filter((k) => k.startsWith('x-berth-'));
      assert.deepEqual(left, []);
      const committed = committedCrdVersion(renderCrdYaml());
      assert.deepEqual(
        allKeys(committed).filter((k) => k.startsWith('x-berth-')),
        [],
      );
    });

    it('strips x-berth-* keys inside list items and map values, keeping every other key', function () {
      const input: Schema = {
        type: 'object',
        'x-berth-ts-name': 'Thing',
        properties: {
          list: {
            type: 'array',
            items: { type: 'object', 'x-berth-ts-type': 'Item', 'x-kubernetes-map-type': 'atomic' },
          },
          map: { type: 'object', additionalProperties: { type: 'string', 'x-berth-ts-type': 'Value', maxLength: 3 } },
        },
      };
      assert.deepEqual(crdSchema(input), {
        type: 'object',
        properties: {
          list: { type: 'array', items: { type: 'object', 'x-kubernetes-map-type': 'atomic' } },
          map: { type: 'object', additionalProperties: { type: 'string', maxLength: 3 } },
        },
      });
      assert.equal(input['x-berth-ts-name'], 'Thing', 'the input is left as it was');
    });

    it('keeps the x-kubernetes-* keys the API server needs', function () {
      const keys = new Set(allKeys(crdSchema(registrySchema)));
      for (const k of [
        'x-kubernetes-validations',
        'x-kubernetes-preserve-unknown-fields',
        'x-kubernetes-int-or-string',
      ]) {
        assert.ok(keys.has(k), `${k} missing`);
      }
    });

    it('leaves the root metadata a bare object, which is all the API server accepts there', function () {
      assert.deepEqual(crdSchema(registrySchema).properties?.['metadata'], { type: 'object' });
    });
  });

  describe('crdObject', function () {
    const version = (): CrdVersion => committedCrdVersion(renderCrdYaml());

    it('names the CRD <plural>.<group> and serves one stored version', function () {
      const crd = crdObject() as { metadata: { name: string }; spec: { group: string; names: Tree; scope: string } };
      assert.equal(crd.metadata.name, `${PLURAL}.${GROUP}`);
      assert.equal(crd.spec.group, GROUP);
      assert.equal(crd.spec.names['kind'], KIND);
      assert.equal(crd.spec.scope, 'Namespaced');
      assert.equal(version().name, VERSION);
      assert.equal(version().served, true);
      assert.equal(version().storage, true);
    });

    it('has a status subresource and a scale subresource on spec.replicas, status.replicas and status.selector', function () {
      const { subresources } = version();
      assert.deepEqual(subresources, {
        status: {},
        scale: {
          specReplicasPath: '.spec.replicas',
          statusReplicasPath: '.status.replicas',
          labelSelectorPath: '.status.selector',
        },
      });
      // The paths must name fields the schema has, of the types the scale subresource needs.
      assert.equal(nodeAt(registrySchema, '.spec.replicas')?.type, 'integer');
      assert.equal(nodeAt(registrySchema, '.status.replicas')?.type, 'integer');
      assert.equal(nodeAt(registrySchema, '.status.selector')?.type, 'string');
    });

    it('prints the columns Ready, Storage, Cache, Endpoint, Image (with -o wide) and Age, from fields the status has', function () {
      const columns = version().additionalPrinterColumns;
      assert.deepEqual(
        columns.map((c) => c.name),
        ['Ready', 'Storage', 'Cache', 'Endpoint', 'Image', 'Age'],
      );
      const byName = new Map(columns.map((c) => [c.name, c]));
      assert.equal(byName.get('Ready')?.jsonPath, '.status.conditions[?(@.type=="Ready")].status');
      assert.deepEqual(byName.get('Age'), { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' });
      assert.equal(byName.get('Image')?.priority, 1);
      for (const name of ['Storage', 'Cache', 'Endpoint', 'Image']) {
        const path = byName.get(name)?.jsonPath ?? '';
        assert.equal(nodeAt(registrySchema, path)?.type, 'string', `${name}: ${path} is not a string field`);
      }
    });
  });
});
