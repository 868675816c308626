import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Import directions between folders (docs/adr/0011-layout.md). Each entry: the folders a folder
 * may not import from, matched on the relative import's path.
 */
const folders = (...names) => `(^|/)(${names.join('|')})/`;
const noIO = ['@kubernetes/client-node', 'express', 'node:fs', 'node:fs/promises', 'node:http', 'node:https', 'node:net', 'fs', 'http', 'https'].map((name) => ({
  name,
  message: 'pure folders do no I/O: take the data as an argument and do the I/O at the edge (docs/adr/0011-layout.md)',
}));
const boundary = (files, forbidden, { pure = false } = {}) => ({
  files,
  ignores: ['**/*.test.ts'],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        paths: pure ? noIO : [],
        patterns: [{ regex: folders(...forbidden), message: `this folder may not import from ${forbidden.join(', ')} (docs/adr/0011-layout.md)` }],
      },
    ],
  },
});
const EDGES = ['webhook', 'cli', 'simulate', 'bench', 'testing', 'e2e', 'charts', 'version'];

export default tseslint.config(
  { ignores: ['dist/**', '.bench-dist/**', 'coverage/**', 'node_modules/**', 'charts/**/templates/**', 'tools/bin/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', fetch: 'readonly', performance: 'readonly', setImmediate: 'readonly', structuredClone: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  boundary(['domain/**/*.ts'], ['placement', 'injector', 'admission', 'reservations', 'dcgm', 'certs', 'kube', 'config', ...EDGES], { pure: true }),
  boundary(['placement/**/*.ts'], ['injector', 'admission', 'reservations', 'dcgm', 'certs', 'kube', ...EDGES], { pure: true }),
  boundary(['injector/**/*.ts'], ['placement', 'admission', 'reservations', 'dcgm', 'certs', 'kube', ...EDGES], { pure: true }),
  boundary(['admission/**/*.ts'], ['dcgm', 'certs', 'kube', ...EDGES], { pure: true }),
  boundary(['reservations/**/*.ts'], ['injector', 'admission', 'dcgm', 'certs', ...EDGES]),
  boundary(['dcgm/**/*.ts'], ['placement', 'injector', 'admission', 'reservations', 'certs', ...EDGES]),
  boundary(['certs/**/*.ts'], ['domain', 'placement', 'injector', 'admission', 'reservations', 'dcgm', ...EDGES]),
  boundary(['config/**/*.ts'], ['domain', 'placement', 'injector', 'admission', 'reservations', 'kube', ...EDGES]),
  boundary(['kube/**/*.ts'], ['injector', 'admission', ...EDGES]),
  boundary(['webhook/**/*.ts'], ['cli', 'simulate', 'bench', 'testing', 'e2e', 'charts']),
  boundary(['cli/**/*.ts', 'simulate/**/*.ts', 'version/**/*.ts'], ['bench', 'testing', 'e2e']),
);
