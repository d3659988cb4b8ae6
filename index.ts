import * as pulumi from "@pulumi/pulumi";

import { BuildHost } from "./components/build-host";
import { ConfigError, parseConfig, RawConfig, SECRET_KEYS } from "./components/config";

const PROJECT = "buildx-host";

/** Every `buildx-host:*` value, read once, so that typos are reported too. */
function rawConfig(): RawConfig {
    const prefix = `${PROJECT}:`;
    return Object.fromEntries(Object.entries(pulumi.runtime.allConfig())
        .filter(([key]) => key.startsWith(prefix))
        .map(([key, value]) => [key.slice(prefix.length), value]));
}

/** Whether a setting is stored encrypted; the SDK exports this check only internally. */
const { isConfigSecret } = require("@pulumi/pulumi/runtime/config") as { isConfigSecret(key: string): boolean };

/** The secret settings stored encrypted; undefined (unknown) where the language host does not say. */
function encryptedKeys(): readonly string[] | undefined {
    return process.env.PULUMI_CONFIG_SECRET_KEYS === undefined ? undefined
        : SECRET_KEYS.filter(key => isConfigSecret(`${PROJECT}:${key}`));
}

function validatedConfig(raw: RawConfig) {
    try {
        return parseConfig(raw, encryptedKeys());
    } catch (error) {
        // RunError fails the preview with the message alone, without a stack trace.
        throw error instanceof ConfigError ? new pulumi.RunError(error.message) : error;
    }
}

const raw = rawConfig();
const config = validatedConfig(raw);
/** A secret setting parseConfig found present, wrapped as a secret where it is read. */
const secretSetting = (key: typeof SECRET_KEYS[number]) => pulumi.secret(raw[key]!);

const buildHost = new BuildHost(PROJECT, {
    config,
    loginPrivateKey: config.mode === "ec2" && config.ec2.loginKeyProvided ? secretSetting("loginPrivateKey") : undefined,
    existingHostPrivateKey: config.mode === "existing" ? secretSetting("existingHostPrivateKey") : undefined,
    tags: { Project: PROJECT, Stack: pulumi.getStack(), ManagedBy: "pulumi" },
});

const outputs = {
    instanceId: buildHost.instanceId,
    publicIp: buildHost.publicIp,
    publicDns: buildHost.publicDns,
    address: buildHost.address,
    sshEndpoint: buildHost.sshEndpoint,
    knownHostsLine: buildHost.knownHostsLine,
    loginPrivateKeyOpenssh: buildHost.loginPrivateKey,
    dockerContextCommand: buildHost.dockerContextCommand,
    buildxCreateCommand: buildHost.buildxCreateCommand,
    githubActionsSnippet: buildHost.githubActionsSnippet,
    teamDockerContextCommands: buildHost.teamDockerContextCommands,
    teamGithubActionsSnippets: buildHost.teamGithubActionsSnippets,
    platforms: buildHost.platforms,
    versions: buildHost.versions,
    preflight: buildHost.preflight,
};

// Outputs of the other mode (instanceId, publicIp, publicDns, the generated login key) are left out:
// Pulumi warns on every `up` about an undefined stack output.
export = Object.fromEntries(Object.entries(outputs).filter(([, value]) => value !== undefined));
