// Jest runs the project as native ESM (node --experimental-vm-modules), so the
// ESM-only @kubernetes/client-node loads the same way it does in production.
// See docs/adr/0001-esm-and-jest.md.
/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  testMatch: ['<rootDir>/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/', '/.bench-dist/'],
  modulePathIgnorePatterns: ['<rootDir>/dist/', '<rootDir>/.bench-dist/'],
  testTimeout: 30000,
};
