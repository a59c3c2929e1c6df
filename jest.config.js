// Test tiers. `unit` needs nothing but Node; every other tier drives real servers
// (dockerd, sshd, nfs-ganesha) that the tier's harness starts and stops itself.
const tsJest = { '^.+\\.ts$': ['ts-jest', { tsconfig: 'test/tsconfig.json', isolatedModules: true }] };
const tier = (name, extra = {}) => ({
  displayName: name,
  testEnvironment: 'node',
  transform: tsJest,
  testMatch: [`<rootDir>/test/${name}/**/*.test.ts`],
  ...extra,
});
module.exports = {
  projects: [tier('unit'), tier('backends'), tier('nfs'), tier('e2e'), tier('sftp'), tier('plugin'), tier('multihost'), tier('chaos')],
  testTimeout: 120000,
};
