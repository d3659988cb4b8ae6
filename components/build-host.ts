import * as pulumi from "@pulumi/pulumi";

import { BuildHostConfig } from "./config";
import { Ec2Host } from "./ec2-host";
import {
    buildxCreateCommand, dockerContextCommand, EndpointParts, githubActionsSnippet, knownHostsLine, sshEndpoint,
} from "./endpoint";
import { HostKeyCheck } from "./host-key-check";
import { HostStep } from "./host-step";
import { hostStepDefinitions, sha256, StepName, StepReport, stepFingerprints } from "./steps";

/** Arguments of the build host. */
export interface BuildHostArgs {
    /** The validated configuration (`parseConfig`). */
    readonly config: BuildHostConfig;
    /** Mode "ec2": the login private key to use instead of a generated one (secret). */
    readonly loginPrivateKey?: pulumi.Input<string>;
    /** Mode "existing": the private key of `existingHost.user` (secret). */
    readonly existingHostPrivateKey?: pulumi.Input<string>;
    /** Tags for every AWS resource (mode "ec2"). */
    readonly tags?: Readonly<Record<string, string>>;
}

/** Tool versions on the host, from the step reports. */
export interface HostVersions {
    readonly docker: string;
    readonly buildx: string;
    readonly buildkit: string;
    readonly qemu: string;
    readonly kernel: string;
}

/**
 * A shared multi-architecture buildx builder: an EC2 instance (or an existing server) taken through the
 * host steps in order, each after the one before, and the outputs clients paste to attach to it.
 */
export class BuildHost extends pulumi.ComponentResource {
    /** The EC2 instance id (mode "ec2", for `aws ec2 stop-instances --instance-ids …`); undefined in mode "existing". */
    public readonly instanceId?: pulumi.Output<string>;
    /** Public IP (mode "ec2"; the configured address in mode "existing"). */
    public readonly publicIp: pulumi.Output<string>;
    /** Public DNS name (mode "ec2"; the configured address in mode "existing"). */
    public readonly publicDns: pulumi.Output<string>;
    public readonly sshEndpoint: pulumi.Output<string>;
    public readonly knownHostsLine: pulumi.Output<string>;
    /** The login private key (secret); undefined in mode "existing", where it is the user's own. */
    public readonly loginPrivateKey?: pulumi.Output<string>;
    public readonly dockerContextCommand: pulumi.Output<string>;
    public readonly buildxCreateCommand: pulumi.Output<string>;
    public readonly githubActionsSnippet: pulumi.Output<string>;
    /** Each team member's own docker context command. */
    public readonly teamDockerContextCommands: pulumi.Output<Record<string, string>>;
    /** Each team member's GitHub Actions snippet (a CI job logs in with a member's key). */
    public readonly teamGithubActionsSnippets: pulumi.Output<Record<string, string>>;
    public readonly platforms: pulumi.Output<string[]>;
    public readonly versions: pulumi.Output<HostVersions>;
    /** Klauser's preflight checks and the per-platform emulation proof, as the QEMU step reported them. */
    public readonly preflight: pulumi.Output<unknown>;
    public readonly steps: Readonly<Record<StepName, HostStep>>;

    constructor(name: string, args: BuildHostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("buildx-host:index:BuildHost", name, {}, opts);
        const { config } = args;

        let host: pulumi.Output<string>;
        let port: number;
        let user: string;
        let privateKey: pulumi.Output<string>;
        let hostPublicKey: pulumi.Output<string>;
        let hostId: pulumi.Output<string>;
        let pinnedKeySource: string;
        if (config.mode === "ec2") {
            const ec2Host = new Ec2Host(`${name}-ec2`, {
                settings: config.ec2!,
                loginPrivateKey: args.loginPrivateKey,
                tags: args.tags ?? {},
            }, { parent: this });
            host = ec2Host.address;
            port = 22;
            user = ec2Host.loginUser;
            privateKey = ec2Host.loginPrivateKey;
            hostPublicKey = ec2Host.hostPublicKey;
            hostId = ec2Host.instanceId;
            pinnedKeySource = "the host key Pulumi generated for this instance";
            this.instanceId = ec2Host.instanceId;
            this.publicIp = ec2Host.publicIp;
            this.publicDns = ec2Host.publicDns;
            this.loginPrivateKey = ec2Host.loginPrivateKey;
        } else {
            const existing = config.existingHost!;
            if (args.existingHostPrivateKey === undefined) {
                throw new Error("BuildHost: existingHostPrivateKey is required in existing mode");
            }
            host = pulumi.output(existing.address);
            port = existing.port;
            user = existing.user;
            privateKey = pulumi.secret(args.existingHostPrivateKey);
            hostPublicKey = pulumi.output(existing.hostPublicKey);
            hostId = pulumi.output(`${existing.address}:${existing.port}`);
            pinnedKeySource = "existingHostPublicKey";
            this.publicIp = host;
            this.publicDns = host;
        }

        const connection = { host, port, user, privateKey, hostKey: hostPublicKey };
        const definitions = hostStepDefinitions(config, user);
        const fingerprints = stepFingerprints(definitions);
        // Runs whenever the first step will: a booting host is waited for there, a wrong key fails at once.
        const hostKeyCheck = new HostKeyCheck(`${name}-host-key`, {
            host, port, hostPublicKey, pinnedKeySource, timeoutMinutes: config.hostReadyTimeoutMinutes,
            runWith: hostId.apply(id => sha256(JSON.stringify({ fingerprint: fingerprints[0], hostId: id }))),
        }, { parent: this });
        const steps: Partial<Record<StepName, HostStep>> = {};
        let previous: pulumi.Resource = hostKeyCheck;
        definitions.forEach((definition, index) => {
            const step = new HostStep(`${name}-${definition.name}`, {
                definition,
                fingerprint: fingerprints[index],
                hostId,
                connection,
                // WaitForHost waits for cloud-init and the package locks on a new host, within this bound.
                timeout: index === 0 ? `${config.hostReadyTimeoutMinutes + 5}m` : undefined,
            }, { parent: this, dependsOn: [previous] });
            steps[definition.name] = step;
            previous = step;
        });
        this.steps = steps as Record<StepName, HostStep>;

        const parts: pulumi.Output<EndpointParts> = pulumi.all([host, hostPublicKey]).apply(([address, key]) => ({
            host: address, port, user, hostPublicKey: key, builderName: config.builderName,
        }));
        this.sshEndpoint = parts.apply(p => sshEndpoint(p));
        this.knownHostsLine = parts.apply(knownHostsLine);
        this.dockerContextCommand = parts.apply(p => dockerContextCommand(p));
        this.buildxCreateCommand = parts.apply(buildxCreateCommand);
        this.githubActionsSnippet = parts.apply(p => githubActionsSnippet(p));
        const perMember = (format: (p: EndpointParts, user: string) => string) => parts.apply(p =>
            Object.fromEntries(config.team.map(member => [member.name, format(p, member.name)])));
        this.teamDockerContextCommands = perMember(dockerContextCommand);
        this.teamGithubActionsSnippets = perMember(githubActionsSnippet);

        const reports = this.steps;
        const field = (report: StepReport, key: string): string => String(report[key] ?? "unknown");
        this.platforms = reports["buildx-builder"].report.apply(r => (r.platforms as string[] | undefined) ?? []);
        this.versions = pulumi.all([
            reports["wait-for-host"].report, reports["docker-engine"].report,
            reports["qemu-binfmt"].report, reports["buildx-builder"].report,
        ]).apply(([wait, docker, qemu, builder]) => ({
            docker: field(docker, "dockerVersion"),
            buildx: field(builder, "buildxVersion"),
            buildkit: field(builder, "buildkitVersion"),
            qemu: field(qemu, "qemuVersion"),
            kernel: field(wait, "kernel"),
        }));
        this.preflight = reports["qemu-binfmt"].report.apply(r => ({
            preflight: r.preflight, emulators: r.emulators, platforms: r.platforms,
        }));

        this.registerOutputs({
            instanceId: this.instanceId,
            publicIp: this.publicIp,
            publicDns: this.publicDns,
            sshEndpoint: this.sshEndpoint,
            knownHostsLine: this.knownHostsLine,
            loginPrivateKey: this.loginPrivateKey,
            dockerContextCommand: this.dockerContextCommand,
            buildxCreateCommand: this.buildxCreateCommand,
            githubActionsSnippet: this.githubActionsSnippet,
            teamDockerContextCommands: this.teamDockerContextCommands,
            teamGithubActionsSnippets: this.teamGithubActionsSnippets,
            platforms: this.platforms,
            versions: this.versions,
            preflight: this.preflight,
        });
    }
}
