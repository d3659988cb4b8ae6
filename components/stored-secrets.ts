/**
 * Which settings a stack stores encrypted (`pulumi config set --secret`). The SDK exports no public
 * check: this is the one place that calls its internal one, isConfigSecret, which reads the list
 * the CLI hands the program in PULUMI_CONFIG_SECRET_KEYS; tests/unit/stored-secrets.test.ts fails
 * when the SDK changes under it.
 */
const sdkConfig = require("@pulumi/pulumi/runtime/config") as { isConfigSecret(key: string): boolean };

/** Of `settings` of `project`, those stored encrypted; undefined (unknown) where the language host does not say. */
export function encryptedSettings(project: string, settings: readonly string[]): readonly string[] | undefined {
    return process.env.PULUMI_CONFIG_SECRET_KEYS === undefined ? undefined
        : settings.filter(setting => sdkConfig.isConfigSecret(`${project}:${setting}`));
}
