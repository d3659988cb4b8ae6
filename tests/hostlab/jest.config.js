/**
 * Lab suites (tests/hostlab, tests/engine): real SSH, a real systemd host, real dockerd, binfmt_misc
 * and multi-platform builds; the engine suite adds the real Pulumi CLI. Minutes; each test file's
 * tests build on each other on a host of their own: run through tests/hostlab/run.sh.
 */
module.exports = {
    rootDir: "../..",
    roots: ["<rootDir>/tests/hostlab", "<rootDir>/tests/engine"],
    preset: "ts-jest",
    testEnvironment: "node",
    testTimeout: 30 * 60 * 1000,
    maxWorkers: 1,
    verbose: true,
};
