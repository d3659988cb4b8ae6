import * as pulumi from "@pulumi/pulumi";

import { BuildHost } from "./components/build-host";
import { ConfigError, parseConfig, RawConfig, SECRET_KEYS } from "./components/config";

const PROJECT = "buildx-host";
const config = new pulumi.Config(PROJECT);

/** Every `buildx-host:*` value, so that typos are reported too (secrets are checked for shape, never shown). */
function rawConfig(): RawConfig {
    const prefix = `${PROJECT}:`;
    return Object.fromEntries(Object.entries(pulumi.runtime.allConfig())
        .filter(([key]) => key.startsWith(prefix))
        .map(([key, value]) => [key.slice(prefix.length), value]));
}

/** Whether a setting is stored encrypted; the SDK exports this check only internally. */
const { isConfigSecret } = require("@pulumi/pulumi/runtime/config") as { isConfigSecret(key: string): boolean };

function validatedConfig() {
    try {
        return parseConfig(rawConfig(), SECRET_KEYS.filter(key => isConfigSecret(`${PROJECT}:${key}`)));
    } catch (error) {
        // RunError fails the preview with the message alone, without a stack trace.
        throw error instanceof ConfigError ? new pulumi.RunError(error.message) : error;
    }
}

const settings = validatedConfig();
// Read only where set: Pulumi.yaml gives every optional key an empty default.
const loginPrivateKey = settings.ec2?.loginKeyProvided ? config.requireSecret("loginPrivateKey") : undefined;
const existingHostPrivateKey = settings.existingHost ? config.requireSecret("existingHostPrivateKey") : undefined;

const buildHost = new BuildHost(PROJECT, {
    config: settings,
    loginPrivateKey,
    existingHostPrivateKey,
    tags: { Project: PROJECT, Stack: pulumi.getStack(), ManagedBy: "pulumi" },
});

const outputs = {
    instanceId: buildHost.instanceId,
    publicIp: buildHost.publicIp,
    publicDns: buildHost.publicDns,
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

// Outputs of the other mode (instanceId, the generated login key in existing mode) are left out:
// Pulumi warns on every `up` about an undefined stack output.
export = Object.fromEntries(Object.entries(outputs).filter(([, value]) => value !== undefined));
