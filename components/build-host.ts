import * as pulumi from "@pulumi/pulumi";

import { BuildHostConfig, isOpenToWorld } from "./config";
import type { Ec2Host } from "./ec2-host";
import {
    buildxCreateCommand, dockerContextCommand, EndpointParts, githubActionsWorkflow, githubRunner, handOverText, knownHostsLine,
    memberBuildxCreateCommand, sshEndpoint, WakeHosts,
} from "./endpoint";
import { HostKeyCheck } from "./host-key-check";
import { HostStep } from "./host-step";
import { StepReport } from "./step-reports";
import { hostStepDefinitions, OptionalStepName, sha256, StepName, stepFingerprints } from "./steps";
import { existingHostIdleStopWarning, regionOf, wakeCommand, WakeTarget } from "./wake";

/** Arguments of the build host. */
export interface BuildHostArgs {
    /** The validated configuration (`parseConfig`). */
    readonly config: BuildHostConfig;
    /** Mode "ec2": the login private key to use instead of a generated one (secret). Default: generated. */
    readonly loginPrivateKey?: pulumi.Input<string>;
    /** Mode "existing", required there: the private key of `existingHost.user` (secret). */
    readonly existingHostPrivateKey?: pulumi.Input<string>;
    /** Tags for every AWS resource (mode "ec2"). Default: none. */
    readonly tags?: Readonly<Record<string, string>>;
    /** The clients' docker context for this host. Default: `config.builderName`. */
    readonly contextName?: string;
}

/** Tool versions on the host, from the step reports. */
export interface HostVersions {
    readonly docker: string;
    readonly buildx: string;
    readonly buildkit: string;
    readonly qemu: string;
    readonly kernel: string;
}

/** What the QEMU step found and proved (its report, regrouped). */
export interface QemuPreflight {
    /** Klauser's checks: kernel version, binfmt_misc mounted, update-binfmts version, how registrations persist. */
    readonly checks: StepReport<"qemu-binfmt">["preflight"];
    /** Per qemu-* entry: its flags, whether F is set, whether the interpreter is static, whether the step fixed it. */
    readonly emulators: StepReport<"qemu-binfmt">["emulators"];
    /** Per configured platform: the emulator, and what a foreign binary printed in a container. */
    readonly emulationProofs: StepReport<"qemu-binfmt">["platforms"];
}

/** The host steps, by name: every step, and the optional ones the configuration turns on. */
export type HostSteps = { readonly [S in Exclude<StepName, OptionalStepName>]: HostStep<S> } &
    { readonly [S in OptionalStepName]?: HostStep<S> };

/** Whether GitHub's own runners can reach the host: an EC2 host whose SSH is open to the whole internet (`allowOpenSsh`). */
export function acceptsSshFromAnywhere(config: BuildHostConfig): boolean {
    return config.mode === "ec2" && config.ec2.allowedSshCidrs.some(isOpenToWorld);
}

/** Where the steps connect to, and how, in either mode. */
interface ConnectionTarget {
    readonly host: pulumi.Output<string>;
    readonly port: number;
    readonly user: string;
    readonly privateKey: pulumi.Output<string>;
    /** The pinned host key, "ssh-ed25519 AAAA…". */
    readonly hostPublicKey: pulumi.Output<string>;
    /** The machine behind the connection: the instance id, or address:port of an existing host. */
    readonly hostId: pulumi.Output<string>;
    /** Where the pinned key comes from, for the host key check's mismatch message. */
    readonly pinnedKeySource: string;
    /** Mode "ec2": the instance made for it. */
    readonly ec2Host?: Ec2Host;
}

/** The host the steps run on: an EC2 instance made for it (a child of `parent`), or the configured server. */
function connectionTarget(name: string, args: BuildHostArgs, parent: pulumi.Resource): ConnectionTarget {
    const { config } = args;
    if (config.mode === "ec2") {
        // Required here, not above: @pulumi/aws takes a third of a second to load on every run, and existing mode has no use for it.
        const { Ec2Host } = require("./ec2-host") as typeof import("./ec2-host");
        const ec2Host = new Ec2Host(`${name}-ec2`, {
            settings: config.ec2,
            loginPrivateKey: args.loginPrivateKey,
            tags: args.tags ?? {},
        }, { parent });
        return {
            host: ec2Host.address, port: 22, user: ec2Host.loginUser, privateKey: ec2Host.loginPrivateKey,
            hostPublicKey: ec2Host.hostPublicKey, hostId: ec2Host.instanceId,
            pinnedKeySource: "the host key Pulumi generated for this instance", ec2Host,
        };
    }
    const existing = config.existingHost;
    if (args.existingHostPrivateKey === undefined) {
        throw new pulumi.ResourceError("BuildHost: existingHostPrivateKey is required in existing mode", parent);
    }
    return {
        host: pulumi.output(existing.address), port: existing.port, user: existing.user,
        privateKey: pulumi.secret(args.existingHostPrivateKey), hostPublicKey: pulumi.output(existing.hostPublicKey),
        hostId: pulumi.output(`${existing.address}:${existing.port}`), pinnedKeySource: "existingHostPublicKey",
    };
}

/**
 * A shared multi-architecture buildx builder: an EC2 instance (or an existing server) taken through the
 * host steps in order, each after the one before, and the outputs clients paste to attach to it.
 */
export class BuildHost extends pulumi.ComponentResource {
    /** Mode "ec2": the instance id, for `aws ec2 stop-instances --instance-ids …`. */
    public readonly instanceId?: pulumi.Output<string>;
    /** Mode "ec2": the instance, for the wake command and the wake policy. */
    public readonly wakeTarget?: pulumi.Output<WakeTarget>;
    /** Mode "ec2": `aws ec2 start-instances …` then `aws ec2 wait instance-status-ok …`, for a host the idle power-off (or anyone) stopped. */
    public readonly wakeCommand?: pulumi.Output<string>;
    /** Mode "ec2" with `cacheVolumeSizeGb`: the cache volume's id (`aws ec2 delete-volume --volume-id …` once retained and unused). */
    public readonly cacheVolumeId?: pulumi.Output<string>;
    /** Mode "ec2": the Elastic IP. */
    public readonly publicIp?: pulumi.Output<string>;
    /** Mode "ec2": the Elastic IP's public DNS name. */
    public readonly publicDns?: pulumi.Output<string>;
    /** The address clients and Pulumi connect to: the public DNS name (or IP) in mode "ec2", the configured address in mode "existing". */
    public readonly address: pulumi.Output<string>;
    /** The Docker endpoint of the login user, `ssh://user@host[:port]`. */
    public readonly sshEndpoint: pulumi.Output<string>;
    /** The line to append to ~/.ssh/known_hosts: the pinned host key, known before first contact. */
    public readonly knownHostsLine: pulumi.Output<string>;
    /** Mode "ec2": the login private key (secret). In mode "existing" it is the user's own, and not an output. */
    public readonly loginPrivateKey?: pulumi.Output<string>;
    /** `docker context create …` for the login user, the host's administrator (full Docker access). */
    public readonly dockerContextCommand: pulumi.Output<string>;
    /** The administrator's `docker buildx create … --driver remote …` through that docker context. */
    public readonly buildxCreateCommand: pulumi.Output<string>;
    /** Each team member's `docker buildx create --driver remote ssh://<member>@<host>`: the member door. */
    public readonly teamBuildxCreateCommands: pulumi.Output<Record<string, string>>;
    /** Each team member's complete GitHub Actions workflow (a CI job attaches as a member, never with the login key). */
    public readonly teamGithubActionsWorkflows: pulumi.Output<Record<string, string>>;
    /** Each team member's hand-over: the text the lead sends as it is (version check, known_hosts line, attach command, workflow). */
    public readonly teamHandOver: pulumi.Output<Record<string, string>>;
    /** The image the builder's BuildKit runs, by registry digest (`repo@sha256:…`), ready to pin as `buildkitImage`. */
    public readonly buildkitImageDigest: pulumi.Output<string>;
    /** The platforms the builder offers (every one QEMU registers, and the host's own). */
    public readonly platforms: pulumi.Output<string[]>;
    /** Tool versions on the host. */
    public readonly versions: pulumi.Output<HostVersions>;
    /** Klauser's preflight checks, the F flag per emulator and the per-platform emulation proofs. */
    public readonly preflight: pulumi.Output<QemuPreflight>;
    /** Where the host is and who logs in, for the fleet's outputs. */
    public readonly endpointParts: pulumi.Output<EndpointParts>;
    /** The host's CPU architecture as it reports it (`dpkg --print-architecture`). */
    public readonly hostArchitecture: pulumi.Output<string>;
    /** The host steps, by name; an optional step only when the configuration turns it on. */
    public readonly steps: HostSteps;

    /**
     * @param name the component's name; its children are named from it
     * @param args the validated configuration and the secrets it names
     * @param opts options of the component
     */
    constructor(name: string, args: BuildHostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("buildx-host:index:BuildHost", name, {}, opts);
        const { config } = args;

        const target = connectionTarget(name, args, this);
        const { host, port, user, privateKey, hostPublicKey, hostId, pinnedKeySource } = target;
        this.instanceId = target.ec2Host?.instanceId;
        this.wakeTarget = target.ec2Host?.wakeTarget;
        this.wakeCommand = this.wakeTarget?.apply(wakeTarget => wakeCommand([wakeTarget]));
        this.cacheVolumeId = target.ec2Host?.cacheVolumeId;
        this.publicIp = target.ec2Host?.publicIp;
        this.publicDns = target.ec2Host?.publicDns;
        this.loginPrivateKey = target.ec2Host?.loginPrivateKey;
        this.address = host;

        if (config.mode === "existing" && config.idleStopMinutes > 0) {
            pulumi.log.warn(existingHostIdleStopWarning(config.idleStopMinutes), this);
        }
        const connection = { host, port, user, privateKey, hostKey: hostPublicKey };
        const definitions = hostStepDefinitions(config, user);
        const fingerprints = stepFingerprints(definitions);
        // Runs whenever the first step will, and whenever EC2 reports the instance stopped: a booting host is
        // waited for there, a wrong key or a stopped instance fails at once, before any step dials it.
        const stoppedMessage = target.ec2Host?.stoppedMessage;
        const hostKeyCheck = new HostKeyCheck(`${name}-host-key`, {
            host, port, hostPublicKey, pinnedKeySource, hostMode: config.mode, timeoutMinutes: config.hostReadyTimeoutMinutes,
            stoppedMessage,
            runWith: pulumi.all([hostId, stoppedMessage ?? ""]).apply(([id, stopped]) =>
                sha256(JSON.stringify({ fingerprint: fingerprints[0], hostId: id, ...stopped ? { stopped } : {} }))),
        }, { parent: this });
        // Values that exist once AWS made what they name; the step's command waits for them.
        const resourceValues: Record<string, pulumi.Output<string>> = this.cacheVolumeId ? { CACHE_VOLUME_ID: this.cacheVolumeId } : {};
        const steps: Partial<Record<StepName, HostStep>> = {};
        let previous: pulumi.Resource = hostKeyCheck;
        definitions.forEach((definition, index) => {
            const step = new HostStep(`${name}-${definition.name}`, {
                definition,
                fingerprint: fingerprints[index],
                hostId,
                resourceValues,
                connection,
                // wait-for-host waits for cloud-init and the package locks on a new host, within this bound.
                timeout: index === 0 ? `${config.hostReadyTimeoutMinutes + 5}m` : undefined,
            }, { parent: this, dependsOn: [previous] });
            steps[definition.name] = step;
            previous = step;
        });
        // Each step was made from the definition of its name, so its report is that step's; every step but an optional one is made.
        this.steps = steps as HostSteps;

        const parts: pulumi.Output<EndpointParts> = pulumi.all([host, hostPublicKey]).apply(([address, key]) => ({
            host: address, port, user, hostPublicKey: key, builderName: config.builderName, contextName: args.contextName,
        }));
        this.endpointParts = parts;
        this.sshEndpoint = parts.apply(p => sshEndpoint(p));
        this.knownHostsLine = parts.apply(knownHostsLine);
        this.dockerContextCommand = parts.apply(dockerContextCommand);
        this.buildxCreateCommand = parts.apply(buildxCreateCommand);
        const perMember = (format: (p: EndpointParts, member: string) => string) => parts.apply(p =>
            Object.fromEntries(config.team.map(member => [member.name, format(p, member.name)])));
        this.teamBuildxCreateCommands = perMember(memberBuildxCreateCommand);
        const runner = githubRunner([acceptsSshFromAnywhere(config)]);
        // A host that powers itself off is woken by the workflow before it attaches.
        const wake: pulumi.Output<WakeHosts | undefined> = this.wakeTarget && config.idleStopMinutes > 0
            ? pulumi.all([this.wakeTarget, parts]).apply(([{ instanceId, instanceArn }, p]) =>
                ({ region: regionOf(instanceArn), hosts: [{ instanceId, parts: p }] }))
            : pulumi.output(undefined);
        this.teamGithubActionsWorkflows = pulumi.all([parts, wake]).apply(([p, w]) => Object.fromEntries(config.team.map(member =>
            [member.name, githubActionsWorkflow(p, member.name, config.platforms, runner, w)])));
        this.teamHandOver = pulumi.all([parts, this.teamGithubActionsWorkflows]).apply(([p, workflows]) =>
            Object.fromEntries(config.team.map(({ name: member }) => [member,
                handOverText(member, [knownHostsLine(p)], memberBuildxCreateCommand(p, member), config.platforms, workflows[member])])));

        const readyReport = this.steps["wait-for-host"].report;
        const engineReport = this.steps["docker-engine"].report;
        const qemuReport = this.steps["qemu-binfmt"].report;
        const builderReport = this.steps["buildx-builder"].report;
        this.hostArchitecture = readyReport.apply(r => r.arch);
        this.platforms = builderReport.apply(r => [...r.platforms]);
        // Null only where the host could not tell (a created builder always has an image): "unknown".
        this.buildkitImageDigest = builderReport.apply(r => r.imageDigest ?? "unknown");
        this.versions = pulumi.all([readyReport, engineReport, qemuReport, builderReport]).apply(([ready, engine, qemu, builder]) => ({
            docker: engine.dockerVersion,
            buildx: builder.buildxVersion ?? "unknown",
            buildkit: builder.buildkitVersion ?? "unknown",
            qemu: qemu.qemuVersion ?? "unknown",
            kernel: ready.kernel,
        }));
        this.preflight = qemuReport.apply(r => ({ checks: r.preflight, emulators: r.emulators, emulationProofs: r.platforms }));

        this.registerOutputs({
            instanceId: this.instanceId,
            wakeCommand: this.wakeCommand,
            cacheVolumeId: this.cacheVolumeId,
            publicIp: this.publicIp,
            publicDns: this.publicDns,
            address: this.address,
            sshEndpoint: this.sshEndpoint,
            knownHostsLine: this.knownHostsLine,
            loginPrivateKey: this.loginPrivateKey,
            dockerContextCommand: this.dockerContextCommand,
            buildxCreateCommand: this.buildxCreateCommand,
            teamBuildxCreateCommands: this.teamBuildxCreateCommands,
            teamGithubActionsWorkflows: this.teamGithubActionsWorkflows,
            teamHandOver: this.teamHandOver,
            platforms: this.platforms,
            buildkitImageDigest: this.buildkitImageDigest,
            versions: this.versions,
            preflight: this.preflight,
        });
    }
}
