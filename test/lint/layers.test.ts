// The layer rule in eslint.config.js: an upward import or an import cycle under src/ fails the lint.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ESLint } from 'eslint';
import { REPO_ROOT } from '../helpers/harness.js';

/** The project's own lint config, without type information (the probes are not files of the TypeScript project). */
function linter(): ESLint {
  return new ESLint({
    cwd: REPO_ROOT,
    overrideConfig: { languageOptions: { parserOptions: { projectService: false, project: null } } },
    ruleFilter: ({ ruleId }) => ruleId.startsWith('import-x/'),
  });
}

async function problems(file: string, code: string): Promise<string[]> {
  const [result] = await linter().lintText(code, { filePath: join(REPO_ROOT, file) });
  return (result?.messages ?? []).map((m) => `${m.ruleId ?? 'parse'}: ${m.message}`);
}

describe('layer lint rule', function () {
  this.timeout(120_000);

  const upward: ReadonlyArray<readonly [string, string]> = [
    ['src/storage/probe.ts', "import { createApp } from '../registry/app.js';"],
    ['src/storage/probe.ts', "import { createDescriptorCache } from '../cache/index.js';"],
    ['src/cache/probe.ts', "import { createApp } from '../registry/app.js';"],
    ['src/registry/probe.ts', "import { startRegistry } from '../compose.js';"],
    ['src/storage/drivers/inmemory/probe.ts', "import { paths } from '../../paths.js';"],
    ['src/oci/probe.ts', "import { RegistryStorage } from '../storage/registry.js';"],
    ['src/metrics/probe.ts', "import { createMetrics } from '../registry/metrics.js';"],
    ['src/notifications/probe.ts', "import { RegistryStorage } from '../storage/registry.js';"],
    ['src/auth/probe.ts', "import { createApp } from '../registry/app.js';"],
    ['src/auth/probe.ts', "import { RegistryStorage } from '../storage/registry.js';"],
    ['src/config/probe.ts', "import { Policy } from '../auth/policy.js';"],
  ];
  for (const [file, code] of upward) {
    it(`fails an upward import: ${file} ${code}`, async () => {
      const found = await problems(file, `${code}\nexport const probe = 1;\n`);
      assert.ok(
        found.some((p) => p.startsWith('import-x/no-restricted-paths')),
        `expected a layer error, got ${JSON.stringify(found)}`,
      );
    });
  }

  it('allows imports that point down', async () => {
    const found = await problems(
      'src/registry/probe.ts',
      "import { RegistryStorage } from '../storage/registry.js';\nimport { parseDigest } from '../oci/digest.js';\n" +
        "import { AggregatedCounter } from '../metrics/aggregated.js';\nexport const probe = [RegistryStorage, parseDigest, AggregatedCounter];\n",
    );
    assert.deepEqual(found, []);
  });

  it('fails an import cycle', async () => {
    // The rule follows imports through files on disk, so the two probes are written for the test.
    const dir = await mkdtemp(join(REPO_ROOT, 'src', 'lint-probe-'));
    try {
      await writeFile(join(dir, 'a.ts'), "import { b } from './b.js';\nexport const a = 1;\nexport const c = b;\n");
      await writeFile(join(dir, 'b.ts'), "import { a } from './a.js';\nexport const b = a;\n");
      const results = await linter().lintFiles([dir]);
      const found = results.flatMap((r) => r.messages.map((m) => `${m.ruleId ?? 'parse'}: ${m.message}`));
      assert.ok(
        found.some((p) => p.startsWith('import-x/no-cycle')),
        `expected a cycle error, got ${JSON.stringify(found)}`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('finds no problem in the tree as it is', async () => {
    const results = await linter().lintFiles(['src']);
    const found = results.flatMap((r) => r.messages.map((m) => `${r.filePath}: ${m.ruleId ?? ''} ${m.message}`));
    assert.deepEqual(found, []);
  });
});
