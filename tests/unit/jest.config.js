/** Unit tests: Pulumi wiring with mocks, config validation, formats. Seconds, no host needed. */
module.exports = {
    rootDir: "../..",
    roots: ["<rootDir>/tests/unit"],
    preset: "ts-jest",
    testEnvironment: "node",
    testTimeout: 30000,
};
