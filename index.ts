import * as pulumi from "@pulumi/pulumi";

import { BuildHost } from "./components/build-host";
import { ConfigError, parseConfig, RawConfig } from "./components/config";

const PROJECT = "buildx-host";
const config = new pulumi.Config(PROJECT);

/** Every `buildx-host:*` value, so that typos are reported too (secrets are checked for shape, never shown). */
function rawConfig(): RawConfig {
    const prefix = `${PROJECT}:`;
    return Object.fromEntries(Object.entries(pulumi.runtime.allConfig())
        .filter(([key]) => key.startsWith(prefix))
        .map(([key, value]) => [key.slice(prefix.length), value]));
}

function validatedConfig() {
    try {
        return parseConfig(rawConfig());
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

export const publicIp = buildHost.publicIp;
export const publicDns = buildHost.publicDns;
export const sshEndpoint = buildHost.sshEndpoint;
export const knownHostsLine = buildHost.knownHostsLine;
export const loginPrivateKeyOpenssh = buildHost.loginPrivateKey;
export const dockerContextCommand = buildHost.dockerContextCommand;
export const buildxCreateCommand = buildHost.buildxCreateCommand;
export const githubActionsSnippet = buildHost.githubActionsSnippet;
export const teamDockerContextCommands = buildHost.teamDockerContextCommands;
export const teamGithubActionsSnippets = buildHost.teamGithubActionsSnippets;
export const platforms = buildHost.platforms;
export const versions = buildHost.versions;
export const preflight = buildHost.preflight;
