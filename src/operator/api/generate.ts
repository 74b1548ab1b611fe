// Generates the Registry CRD (crds/) and its TypeScript types (./types.ts) from ./schema.ts, the one source of both.
// `npm run generate` writes them; `--check` (and a test) fails when a committed file differs from what it would write.
// Development only: the running operator never imports this file.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { compile, type JSONSchema } from 'json-schema-to-typescript';
import * as prettier from 'prettier';
import { stringify } from 'yaml';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION, printerColumns, registrySchema, type Schema } from './schema.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
export const CRD_PATH = join(ROOT, 'crds', `${GROUP}_${PLURAL}.yaml`);
export const TYPES_PATH = join(ROOT, 'src', 'operator', 'api', 'types.ts');
/** The Helm chart installs the same CRD from its own crds/ folder. */
export const CHART_CRD_PATH = join(ROOT, 'charts', 'berth', 'crds', `${GROUP}_${PLURAL}.yaml`);

/** The schema as the API server takes it: every `x-berth-*` key removed. */
export function crdSchema(schema: Schema): Schema {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key.startsWith('x-berth-')) continue;
    if (key === 'properties' && value !== undefined) {
      out[key] = Object.fromEntries(Object.entries(value as Record<string, Schema>).map(([k, v]) => [k, crdSchema(v)]));
    } else if ((key === 'items' || key === 'additionalProperties') && value !== undefined) {
      out[key] = crdSchema(value as Schema);
    } else {
      out[key] = value;
    }
  }
  return out as Schema;
}

/** The CustomResourceDefinition object. */
export function crdObject(): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${PLURAL}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'berth' } },
    spec: {
      group: GROUP,
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: KIND.toLowerCase(),
        shortNames: ['reg'],
        categories: ['berth'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: crdSchema(registrySchema) },
          subresources: {
            status: {},
            scale: {
              specReplicasPath: '.spec.replicas',
              statusReplicasPath: '.status.replicas',
              labelSelectorPath: '.status.selector',
            },
          },
          additionalPrinterColumns: printerColumns,
        },
      ],
    },
  };
}

export function renderCrdYaml(): string {
  const header = `# Generated from src/operator/api/schema.ts by \`npm run generate\`; do not edit.\n# ${API_VERSION} ${KIND}\n`;
  return header + stringify(crdObject(), { lineWidth: 0, aliasDuplicateObjects: false });
}

/** The schema as json-schema-to-typescript reads it: defaulted fields are required (the API server fills them). */
function typeSchema(schema: Schema): JSONSchema {
  const tsType = schema['x-berth-ts-type'];
  if (tsType !== undefined) return { description: schema.description, tsType };
  if (schema['x-kubernetes-preserve-unknown-fields'] === true) {
    return { description: schema.description, tsType: 'Record<string, unknown>' };
  }
  const out: JSONSchema = { description: schema.description };
  const title = schema['x-berth-ts-name'];
  if (title !== undefined) out.title = title;
  if (schema.enum !== undefined) {
    out.type = 'string';
    out.enum = [...schema.enum];
    return out;
  }
  switch (schema.type) {
    case 'object': {
      out.type = 'object';
      if (schema.properties !== undefined) {
        const props = Object.entries(schema.properties);
        out.properties = Object.fromEntries(props.map(([k, v]) => [k, typeSchema(v)]));
        const required = new Set(schema.required ?? []);
        for (const [k, v] of props) if (v.default !== undefined) required.add(k);
        out.required = [...required];
        out.additionalProperties = false;
      } else if (schema.additionalProperties?.type === 'string') {
        return { description: schema.description, tsType: 'Record<string, string>' };
      } else if (
        schema.additionalProperties?.type === 'array' &&
        schema.additionalProperties.items?.type === 'string'
      ) {
        return { description: schema.description, tsType: 'Record<string, string[]>' };
      }
      return out;
    }
    case 'array':
      out.type = 'array';
      if (schema.items !== undefined) out.items = typeSchema(schema.items);
      return out;
    case 'integer':
      out.type = 'number';
      return out;
    case 'string':
    case 'boolean':
      out.type = schema.type;
      return out;
    default:
      return { ...out, tsType: 'unknown' };
  }
}

export async function renderTypes(): Promise<string> {
  const banner = [
    '// Generated from src/operator/api/schema.ts by `npm run generate`; do not edit.',
    '// Fields with a default in the schema are required here: the API server fills them in.',
    "import type { V1Affinity, V1ObjectMeta, V1ResourceRequirements, V1Toleration, V1TopologySpreadConstraint } from '@kubernetes/client-node';",
  ].join('\n');
  const ts = await compile(typeSchema(registrySchema), 'Registry', {
    bannerComment: banner,
    additionalProperties: false,
    format: false,
    declareExternallyReferenced: true,
  });
  const config = (await prettier.resolveConfig(TYPES_PATH)) ?? {};
  return prettier.format(ts, { ...config, parser: 'typescript' });
}

async function main(argv: readonly string[]): Promise<number> {
  const outputs: [string, string][] = [
    [CRD_PATH, renderCrdYaml()],
    [CHART_CRD_PATH, renderCrdYaml()],
    [TYPES_PATH, await renderTypes()],
  ];
  if (argv.includes('--check')) {
    let drift = 0;
    for (const [path, text] of outputs) {
      const current = await readFile(path, 'utf8').catch(() => '');
      if (current !== text) {
        drift++;
        process.stderr.write(`${path} is out of date: run npm run generate\n`);
      }
    }
    return drift === 0 ? 0 : 1;
  }
  for (const [path, text] of outputs) {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, text);
    process.stderr.write(`wrote ${path}\n`);
  }
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
