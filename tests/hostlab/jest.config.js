/**
 * Host lab: real SSH, a real systemd host, real dockerd, binfmt_misc and multi-platform builds.
 * Minutes; each test file's tests build on each other on a host of their own: run through tests/hostlab/run.sh.
 */
module.exports = {
    rootDir: "../..",
    roots: ["<rootDir>/tests/hostlab"],
    preset: "ts-jest",
    testEnvironment: "node",
    testTimeout: 30 * 60 * 1000,
    maxWorkers: 1,
    verbose: true,
};
