import * as pulumi from "@pulumi/pulumi";

import { acceptsSshFromAnywhere, BuildHost, BuildHostArgs, HostVersions } from "./build-host";
import { BuildHostConfig, StackConfig } from "./config";
import {
    attachScriptFile, dockerContextCommand, fleetAttachScript, fleetBuildxCreateCommand, fleetGithubActionsWorkflow, fleetMemberBuildxCreateCommand,
    FleetNodeEndpoint, githubRunner, handOverText, knownHostsLine, sshEndpoint, WakeHosts,
} from "./endpoint";
import { statusCommand } from "./status";
import { regionOf, wakePolicyDocument, WakeTarget } from "./wake";

/** Arguments of the build fleet. */
export interface BuildFleetArgs {
    /** The validated configuration (`parseConfig`): one host, or the fleet's nodes. */
    readonly stack: StackConfig;
    /** Each node's SSH private key (secret), in `stack.nodes` order; undefined where none is set. */
    readonly privateKeys: readonly (pulumi.Input<string> | undefined)[];
    /** Tags for every AWS resource. Default: none. */
    readonly tags?: Readonly<Record<string, string>>;
}

/** What a client needs of one node of a fleet, ready to paste. */
export interface FleetNodeOutputs {
    /** The address clients and Pulumi connect to. */
    readonly address: string;
    /** The Docker endpoint of the node's login user. */
    readonly sshEndpoint: string;
    /** The line to append to ~/.ssh/known_hosts. */
    readonly knownHostsLine: string;
    /** `docker context create <builder>-<node> …` for the node's login user. */
    readonly dockerContextCommand: string;
    /** The platforms this node alone builds. */
    readonly platforms: readonly string[];
    /** The CPU the node reported; a platform other than its own is emulated there. */
    readonly hostArchitecture: string;
    /** The image the node's BuildKit runs, by registry digest, ready to pin as `buildkitImage`. */
    readonly buildkitImageDigest: string;
    /** Mode "ec2": the instance id. */
    readonly instanceId?: string;
    /** Mode "ec2" with a cache volume: its id. */
    readonly cacheVolumeId?: string;
    readonly versions: HostVersions;
}

/** A host's SSH private key as BuildHost takes it: the login key in mode "ec2", the user's key in mode "existing". */
function privateKeyArgs(host: BuildHostConfig, key: pulumi.Input<string> | undefined):
        Pick<BuildHostArgs, "loginPrivateKey" | "existingHostPrivateKey"> {
    return host.mode === "ec2" ? { loginPrivateKey: key } : { existingHostPrivateKey: key };
}

/** The hosts that power themselves off when idle (ec2 mode, idleStopMinutes above 0), with their instances. */
function idleStoppingHosts(stack: StackConfig, hosts: readonly BuildHost[]): { index: number; target: pulumi.Output<WakeTarget> }[] {
    return hosts.flatMap((host, index) => host.wakeTarget !== undefined && stack.nodes[index].host.idleStopMinutes > 0
        ? [{ index, target: host.wakeTarget }] : []);
}

/**
 * The stack's build hosts: the one host of a single-host stack, or one host per node of a fleet,
 * provisioned in parallel (each host's steps in order) and joined into one client builder with a
 * remote-driver node per host, each platform on exactly one node.
 */
export class BuildFleet extends pulumi.ComponentResource {
    /** The build hosts, in `stack.nodes` order. */
    public readonly hosts: readonly BuildHost[];
    /** Fleet: each node's endpoint, platforms and versions, by node name. */
    public readonly nodes?: pulumi.Output<Record<string, FleetNodeOutputs>>;
    /** Fleet: the lines to append to ~/.ssh/known_hosts, one per node. */
    public readonly knownHostsLines?: pulumi.Output<string>;
    /** Fleet: the login users' `docker context create` commands, one line per node. */
    public readonly dockerContextCommands?: pulumi.Output<string>;
    /** Fleet: the administrators' `docker buildx create` (through the docker contexts) for the first node, then one `--append` line per further node. */
    public readonly buildxCreateCommand?: pulumi.Output<string>;
    /** Fleet: each team member's `docker buildx create` over every node's member door, one line per node. */
    public readonly teamBuildxCreateCommands?: pulumi.Output<Record<string, string>>;
    /** Fleet: each team member's attach script (POSIX sh): checks every node, then attaches the ones that answer (`fleetFallback`). */
    public readonly teamAttachScripts?: pulumi.Output<Record<string, string>>;
    /** Fleet: each team member's complete GitHub Actions workflow, building every node's platforms on the whole fleet. */
    public readonly teamGithubActionsWorkflows?: pulumi.Output<Record<string, string>>;
    /** Fleet: each team member's hand-over, the text the lead sends as it is. */
    public readonly teamHandOver?: pulumi.Output<Record<string, string>>;
    /** Fleet: the node that builds each platform. */
    public readonly platformNodes?: pulumi.Output<Record<string, string>>;
    /** Fleet, mode "ec2" without loginPrivateKey: each node's generated login key (secret). */
    public readonly loginPrivateKeys?: pulumi.Output<Record<string, string>>;
    /** Fleet: the administrators' status view, one `ssh` line per node (components/status.ts). */
    public readonly statusCommand?: pulumi.Output<string>;
    /** Fleet: each ec2 node's wake command (`aws ec2 start-instances …` then `aws ec2 wait instance-status-ok …`), by node name. */
    public readonly wakeCommands?: pulumi.Output<Record<string, string>>;
    /**
     * The ARN of an IAM policy that allows starting the hosts that power themselves off (idleStopMinutes) and
     * nothing else, for an operator or a CI job's role; undefined when no ec2 host does.
     */
    public readonly wakePolicyArn?: pulumi.Output<string>;

    /**
     * @param name the component's name; its hosts are named from it
     * @param args the validated configuration and the nodes' private keys
     * @param opts options of the component
     */
    constructor(name: string, args: BuildFleetArgs, opts?: pulumi.ComponentResourceOptions) {
        super("buildx-host:index:BuildFleet", name, {}, opts);
        const { stack } = args;

        // Where a single host was before fleets: the stack's top component. An alias keeps a resource
        // where it is; Pulumi moves its children with it, renaming those named from it.
        const preFleetSingleHost = { name, parent: pulumi.rootStackResource };
        if (!stack.fleet) {
            const [{ host }] = stack.nodes;
            this.hosts = [new BuildHost(name, {
                config: host,
                ...privateKeyArgs(host, args.privateKeys[0]),
                tags: args.tags,
            }, { parent: this, aliases: [preFleetSingleHost] })];
            this.wakePolicyArn = this.wakePolicy(name, idleStoppingHosts(stack, this.hosts), args.tags);
            this.registerOutputs({ wakePolicyArn: this.wakePolicyArn });
            return;
        }

        // Growing a single-host stack: the first node is the single host (either place), so `up` keeps it.
        // Which machine that was, the program cannot see: a first node on another one takes over its
        // resources as a changed single host would (the steps re-run there, the old machine keeps its builder).
        const singleHostPlaces = [{ name, parent: this }, preFleetSingleHost];
        const nodeNames = stack.nodes.map(node => node.name!);
        this.hosts = stack.nodes.map(({ name: nodeName, host }, index) => new BuildHost(`${name}-${nodeName}`, {
            config: host,
            ...privateKeyArgs(host, args.privateKeys[index]),
            tags: args.tags === undefined ? undefined : { ...args.tags, Node: nodeName! },
            contextName: `${host.builderName}-${nodeName}`,
        }, { parent: this, aliases: index === 0 ? singleHostPlaces : undefined }));

        const endpoints: pulumi.Output<FleetNodeEndpoint[]> = pulumi.all(this.hosts.map(h => h.endpointParts)).apply(parts =>
            parts.map((p, index) => ({ name: nodeNames[index], parts: p, platforms: stack.nodes[index].host.platforms })));

        this.nodes = pulumi.all([
            endpoints,
            pulumi.all(this.hosts.map(h => h.hostArchitecture)),
            pulumi.all(this.hosts.map(h => h.versions)),
            pulumi.all(this.hosts.map(h => h.instanceId ?? pulumi.output(undefined))),
            pulumi.all(this.hosts.map(h => h.buildkitImageDigest)),
            pulumi.all(this.hosts.map(h => h.cacheVolumeId ?? pulumi.output(undefined))),
        ]).apply(([nodes, architectures, versions, instanceIds, digests, cacheVolumeIds]) => Object.fromEntries(nodes.map((node, index) => [node.name, {
            address: node.parts.host,
            sshEndpoint: sshEndpoint(node.parts),
            knownHostsLine: knownHostsLine(node.parts),
            dockerContextCommand: dockerContextCommand(node.parts),
            platforms: node.platforms,
            hostArchitecture: architectures[index],
            buildkitImageDigest: digests[index],
            ...instanceIds[index] === undefined ? {} : { instanceId: instanceIds[index] },
            ...cacheVolumeIds[index] === undefined ? {} : { cacheVolumeId: cacheVolumeIds[index] },
            versions: versions[index],
        }])));
        this.knownHostsLines = endpoints.apply(nodes => nodes.map(node => knownHostsLine(node.parts)).join("\n"));
        this.dockerContextCommands = endpoints.apply(nodes => nodes.map(node => dockerContextCommand(node.parts)).join("\n"));
        this.buildxCreateCommand = endpoints.apply(fleetBuildxCreateCommand);
        const team = stack.nodes[0].host.team;
        this.teamBuildxCreateCommands = endpoints.apply(nodes => Object.fromEntries(team.map(member =>
            [member.name, fleetMemberBuildxCreateCommand(nodes, member.name)])));
        this.teamAttachScripts = endpoints.apply(nodes => Object.fromEntries(team.map(member =>
            [member.name, fleetAttachScript(nodes, member.name, stack.fleetFallback)])));
        const runner = githubRunner(stack.nodes.map(node => acceptsSshFromAnywhere(node.host)));
        const idleStopping = idleStoppingHosts(stack, this.hosts);
        // The nodes that power themselves off are woken by the workflow before it checks the fleet.
        const wake: pulumi.Output<WakeHosts | undefined> = pulumi.all([endpoints, pulumi.all(idleStopping.map(h => h.target))])
            .apply(([nodes, targets]) => targets.length === 0 ? undefined : {
                region: regionOf(targets[0].instanceArn),
                hosts: targets.map((target, i) => ({ instanceId: target.instanceId, parts: nodes[idleStopping[i].index].parts })),
            });
        this.teamGithubActionsWorkflows = pulumi.all([endpoints, wake]).apply(([nodes, w]) => Object.fromEntries(team.map(member =>
            [member.name, fleetGithubActionsWorkflow(nodes, member.name, runner, stack.fleetFallback, w)])));
        this.teamHandOver = pulumi.all([endpoints, this.teamGithubActionsWorkflows, this.teamAttachScripts])
            .apply(([nodes, workflows, scripts]) => Object.fromEntries(team.map(({ name: member }) => [member, handOverText(member,
                nodes.map(node => knownHostsLine(node.parts)), fleetMemberBuildxCreateCommand(nodes, member),
                nodes.flatMap(node => node.platforms), workflows[member],
                { file: attachScriptFile(nodes[0].parts.builderName), text: scripts[member] })])));
        this.statusCommand = endpoints.apply(statusCommand);
        const ec2Hosts = this.hosts.flatMap((host, index) =>
            host.wakeCommand === undefined ? [] : [{ node: nodeNames[index], command: host.wakeCommand }]);
        this.wakeCommands = ec2Hosts.length === 0 ? undefined : pulumi.all(ec2Hosts.map(h => h.command))
            .apply(commands => Object.fromEntries(commands.map((command, index) => [ec2Hosts[index].node, command])));
        this.wakePolicyArn = this.wakePolicy(name, idleStopping, args.tags);
        this.platformNodes = pulumi.output(Object.fromEntries(stack.nodes.flatMap(node =>
            node.host.platforms.map(platform => [platform, node.name!]))));
        const generated = this.hosts.flatMap((h, index) =>
            h.loginPrivateKey === undefined ? [] : [{ node: nodeNames[index], key: h.loginPrivateKey }]);
        this.loginPrivateKeys = generated.length === 0 ? undefined : pulumi.secret(pulumi.all(generated.map(g => g.key))
            .apply(keys => Object.fromEntries(keys.map((key, index) => [generated[index].node, key]))));

        this.registerOutputs({
            nodes: this.nodes,
            knownHostsLines: this.knownHostsLines,
            dockerContextCommands: this.dockerContextCommands,
            buildxCreateCommand: this.buildxCreateCommand,
            teamBuildxCreateCommands: this.teamBuildxCreateCommands,
            teamAttachScripts: this.teamAttachScripts,
            teamGithubActionsWorkflows: this.teamGithubActionsWorkflows,
            teamHandOver: this.teamHandOver,
            platformNodes: this.platformNodes,
            loginPrivateKeys: this.loginPrivateKeys,
            statusCommand: this.statusCommand,
            wakeCommands: this.wakeCommands,
            wakePolicyArn: this.wakePolicyArn,
        });
    }

    /** The wake policy of `hosts` (see wakePolicyArn), a child of this fleet; none for no hosts. */
    private wakePolicy(name: string, hosts: readonly { target: pulumi.Output<WakeTarget> }[],
                       tags: Readonly<Record<string, string>> | undefined): pulumi.Output<string> | undefined {
        if (hosts.length === 0) {
            return undefined;
        }
        // Required here: only ec2 hosts have instances to start (see build-host.ts on @pulumi/aws's load time).
        const aws = require("@pulumi/aws") as typeof import("@pulumi/aws");
        const policy = new aws.iam.Policy(`${name}-wake`, {
            description: "buildx-host: start the build hosts that power themselves off when idle, and watch them wake",
            policy: pulumi.all(hosts.map(h => h.target)).apply(targets => JSON.stringify(wakePolicyDocument(targets.map(t => t.instanceArn)))),
            tags,
        }, { parent: this });
        return policy.arn;
    }
}
