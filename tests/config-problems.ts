import { BuildHostConfig, ConfigError, parseConfig, RawConfig } from "../components/config";

/** The problems parseConfig reports for a configuration that must be invalid. */
export function configProblems(raw: RawConfig, secretKeys?: readonly string[]): readonly string[] {
    try {
        parseConfig(raw, secretKeys);
    } catch (error) {
        if (error instanceof ConfigError) {
            return error.problems;
        }
        throw error;
    }
    throw new Error("expected the configuration to be invalid");
}

/** The one host of a configuration without `nodes`. */
export function hostConfig(raw: RawConfig, secretKeys?: readonly string[]): BuildHostConfig {
    const stack = parseConfig(raw, secretKeys);
    if (stack.fleet) {
        throw new Error("expected a single-host configuration, got a fleet");
    }
    return stack.nodes[0].host;
}
