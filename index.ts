import * as pulumi from "@pulumi/pulumi";

import { BuildFleet } from "./components/build-fleet";
import { ConfigError, parseConfig, privateKeyValue, RawConfig, SECRET_KEYS } from "./components/config";
import { statusCommand } from "./components/status";
import { encryptedSettings } from "./components/stored-secrets";

const PROJECT = "buildx-host";

/** Every `buildx-host:*` value, read once, so that typos are reported too. */
function rawConfig(): RawConfig {
    const prefix = `${PROJECT}:`;
    return Object.fromEntries(Object.entries(pulumi.runtime.allConfig())
        .filter(([key]) => key.startsWith(prefix))
        .map(([key, value]) => [key.slice(prefix.length), value]));
}

function validatedConfig(raw: RawConfig) {
    try {
        // `nodes` is stored encrypted as a whole when a node's key was set with --secret.
        return parseConfig(raw, encryptedSettings(PROJECT, [...SECRET_KEYS, "nodes"]));
    } catch (error) {
        // RunError fails the preview with the message alone, without a stack trace.
        throw error instanceof ConfigError ? new pulumi.RunError(error.message) : error;
    }
}

const raw = rawConfig();
const stack = validatedConfig(raw);

const fleet = new BuildFleet(PROJECT, {
    stack,
    // Wrapped as secrets where they are read.
    privateKeys: stack.nodes.map(node => node.privateKey && pulumi.secret(privateKeyValue(raw, node.privateKey))),
    tags: { Project: PROJECT, Stack: pulumi.getStack(), ManagedBy: "pulumi" },
});

function singleHostOutputs() {
    const [host] = fleet.hosts;
    return {
        instanceId: host.instanceId,
        wakeCommand: host.wakeCommand,
        wakePolicyArn: fleet.wakePolicyArn,
        cacheVolumeId: host.cacheVolumeId,
        publicIp: host.publicIp,
        publicDns: host.publicDns,
        address: host.address,
        sshEndpoint: host.sshEndpoint,
        knownHostsLine: host.knownHostsLine,
        loginPrivateKeyOpenssh: host.loginPrivateKey,
        dockerContextCommand: host.dockerContextCommand,
        buildxCreateCommand: host.buildxCreateCommand,
        teamBuildxCreateCommands: host.teamBuildxCreateCommands,
        teamGithubActionsWorkflows: host.teamGithubActionsWorkflows,
        teamHandOver: host.teamHandOver,
        platforms: host.platforms,
        buildkitImageDigest: host.buildkitImageDigest,
        versions: host.versions,
        preflight: host.preflight,
        statusCommand: host.endpointParts.apply(parts => statusCommand([{ name: parts.host, parts }])),
    };
}

function fleetOutputs() {
    return {
        nodes: fleet.nodes,
        knownHostsLines: fleet.knownHostsLines,
        dockerContextCommands: fleet.dockerContextCommands,
        buildxCreateCommand: fleet.buildxCreateCommand,
        teamBuildxCreateCommands: fleet.teamBuildxCreateCommands,
        teamAttachScripts: fleet.teamAttachScripts,
        teamGithubActionsWorkflows: fleet.teamGithubActionsWorkflows,
        teamHandOver: fleet.teamHandOver,
        platformNodes: fleet.platformNodes,
        loginPrivateKeysOpenssh: fleet.loginPrivateKeys,
        statusCommand: fleet.statusCommand,
        wakeCommands: fleet.wakeCommands,
        wakePolicyArn: fleet.wakePolicyArn,
    };
}

const outputs: Record<string, unknown> = stack.fleet ? fleetOutputs() : singleHostOutputs();

// Outputs of the other mode (instanceId, publicIp, publicDns, the generated login key) are left out:
// Pulumi warns on every `up` about an undefined stack output.
export = Object.fromEntries(Object.entries(outputs).filter(([, value]) => value !== undefined));
