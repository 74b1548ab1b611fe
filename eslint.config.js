// Lint rules: typescript-eslint's recommended set, type-aware where it catches real bugs (floating promises), and the
// layer rule: imports point down only (cli → compose → registry → storage and cache → drivers; config, oci and
// metrics at the bottom), with no import cycles.
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

/** What each layer may not import: every layer above it. */
const layers = [
  // Drivers know paths and bytes: the driver interface, nothing of the registry's layout or services.
  { target: './src/storage/drivers', from: ['./src/storage'], except: ['./drivers', './driver.ts'] },
  {
    target: './src/storage',
    from: ['./src/cache', './src/gc', './src/registry', './src/operator', './src/cli', './src/compose.ts'],
  },
  { target: './src/cache', from: ['./src/gc', './src/registry', './src/operator', './src/cli', './src/compose.ts'] },
  // Garbage collection works on storage and tells the cache; the registry (HTTP) never runs it.
  { target: './src/gc', from: ['./src/registry', './src/operator', './src/cli', './src/compose.ts'] },
  {
    target: './src/notifications',
    from: ['./src/storage', './src/cache', './src/registry', './src/operator', './src/cli', './src/compose.ts'],
  },
  // Access control knows requests only as headers and scopes: config, oci and metrics below it, nothing above.
  {
    target: './src/auth',
    from: [
      './src/storage',
      './src/cache',
      './src/notifications',
      './src/registry',
      './src/operator',
      './src/cli',
      './src/compose.ts',
    ],
  },
  { target: './src/registry', from: ['./src/gc', './src/operator', './src/cli', './src/compose.ts'] },
  { target: './src/compose.ts', from: ['./src/operator', './src/cli'] },
  {
    target: ['./src/config', './src/oci', './src/metrics', './src/log.ts'],
    from: [
      './src/auth',
      './src/storage',
      './src/cache',
      './src/registry',
      './src/operator',
      './src/cli',
      './src/compose.ts',
    ],
  },
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tools/**', 'test/reporter.cjs', 'eslint.config.js'] },
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      ...importX.flatConfigs.typescript.settings,
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    rules: {
      'import-x/no-cycle': 'error',
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: layers.map(({ target, from, except }) => ({
            target,
            from,
            ...(except === undefined || except.length === 0 ? {} : { except }),
            message: 'layers point down only: move what this needs below both (see STYLE.md, "Layers point down")',
          })),
        },
      ],
    },
  },
);
