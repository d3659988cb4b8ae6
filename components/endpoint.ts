/**
 * The ready-to-paste ways a teammate or a CI job attaches to the shared builder. Pure formatting,
 * so each format is pinned by a unit test.
 */
import { toYaml } from "./yaml";

/** Where the builder is and who logs in. */
export interface EndpointParts {
    /** Public DNS name or address of the host. */
    readonly host: string;
    readonly port: number;
    /** The account that owns the builder (the host's login user). */
    readonly user: string;
    /** The host's SSH public key, "ssh-ed25519 AAAA…". */
    readonly hostPublicKey: string;
    /** The buildx builder's name on the host. */
    readonly builderName: string;
    /** The clients' docker context for the host. Default: builderName (a fleet node's is `<builderName>-<node>`). */
    readonly contextName?: string;
}

/** A node of a fleet: its name in the client builder, where it is, and the platforms it alone serves. */
export interface FleetNodeEndpoint {
    readonly name: string;
    readonly parts: EndpointParts;
    readonly platforms: readonly string[];
}

function contextName(parts: EndpointParts): string {
    return parts.contextName ?? parts.builderName;
}

/** The docker-container endpoint of the builder's one BuildKit node (`<name>0`). */
export function buildkitContainerName(builderName: string): string {
    return `buildx_buildkit_${builderName}0`;
}

export function sshEndpoint(parts: EndpointParts, user = parts.user): string {
    // An IPv6 address needs brackets in a URL.
    const host = parts.host.includes(":") ? `[${parts.host}]` : parts.host;
    return parts.port === 22 ? `ssh://${user}@${host}` : `ssh://${user}@${host}:${parts.port}`;
}

/** The line to append to ~/.ssh/known_hosts; OpenSSH writes non-default ports as "[host]:port". */
export function knownHostsLine(parts: EndpointParts): string {
    const hostField = parts.port === 22 ? parts.host : `[${parts.host}]:${parts.port}`;
    return `${hostField} ${parts.hostPublicKey}`;
}

/** The login user's (administrator's) docker context: full Docker access on the host. */
export function dockerContextCommand(parts: EndpointParts): string {
    return `docker context create ${contextName(parts)} --docker host=${sshEndpoint(parts)}`;
}

/** The administrator attaches to the host's shared BuildKit through the docker context; clients cannot remove it. */
export function remoteBuilderEndpoint(parts: EndpointParts): string {
    return `docker-container://${buildkitContainerName(parts.builderName)}?context=${contextName(parts)}`;
}

/** The client-side builder's name: buildx refuses one named like an existing docker context. */
export function clientBuilderName(builderName: string): string {
    return `${builderName}-remote`;
}

/** The administrator's `docker buildx create`, through the docker context. */
export function buildxCreateCommand(parts: EndpointParts): string {
    return `docker buildx create --name ${clientBuilderName(parts.builderName)} --driver remote '${remoteBuilderEndpoint(parts)}' --use`;
}

/**
 * The administrators' client builder over every node of a fleet, each node a remote-driver node (a builder has one
 * driver) fixed to the platforms it alone serves, so buildx sends each platform to its node.
 */
export function fleetBuildxCreateCommand(nodes: readonly FleetNodeEndpoint[]): string {
    return nodes.map((node, index) => [
        `docker buildx create --name ${clientBuilderName(node.parts.builderName)}`,
        index === 0 ? "--driver remote" : "--append",
        `--node ${node.name} --platform ${node.platforms.join(",")} '${remoteBuilderEndpoint(node.parts)}'`,
        ...index === 0 ? ["--use"] : [],
    ].join(" ")).join("\n");
}

/**
 * A team member's `docker buildx create`: the remote driver straight to the member door at
 * `ssh://<member>@<host>`, where buildx runs `ssh … buildctl dial-stdio` and the host joins the
 * session to the shared BuildKit whatever command was asked for. No docker context.
 */
export function memberBuildxCreateCommand(parts: EndpointParts, member: string): string {
    return `docker buildx create --name ${clientBuilderName(parts.builderName)} --driver remote ${sshEndpoint(parts, member)} --use`;
}

/** A team member's fleet builder: the first node with `--driver remote`, each further node `--append`ed, each on its platforms. */
export function fleetMemberBuildxCreateCommand(nodes: readonly FleetNodeEndpoint[], member: string): string {
    return nodes.map((node, index) => [
        `docker buildx create --name ${clientBuilderName(node.parts.builderName)}`,
        index === 0 ? "--driver remote" : "--append",
        `--node ${node.name} --platform ${node.platforms.join(",")} ${sshEndpoint(node.parts, member)}`,
        ...index === 0 ? ["--use"] : [],
    ].join(" ")).join("\n");
}

/** The action the GitHub Actions snippet attaches buildx with: its current major, v4 (node24). */
export const SETUP_BUILDX_ACTION = "docker/setup-buildx-action@v4";

/** A GitHub Actions workflow step, as the snippets give them. */
export interface WorkflowStep {
    readonly name: string;
    readonly env?: Readonly<Record<string, string>>;
    readonly run?: string;
    readonly uses?: string;
    readonly with?: Readonly<Record<string, string>>;
}

/**
 * The shell step of a member's GitHub Actions snippet: trust each host's pinned key and give ssh
 * the member's key for them. The repository secret BUILDX_HOST_SSH_KEY holds the member's private
 * key; it reaches the shell through `env:`, never interpolated into the script, and its file is
 * private from the start (umask). Every line is idempotent, so a reused self-hosted runner can run
 * it again.
 */
function trustStep(title: string, hosts: readonly EndpointParts[]): WorkflowStep {
    const keyFile = `~/.ssh/${hosts[0].builderName}.key`;
    const hostBlocks = [...new Set(hosts.map(parts => `Host ${parts.host}`))];
    const script = [
        "umask 077",
        "mkdir -p ~/.ssh",
        // A file left by an earlier job would keep its mode: write a new one.
        `rm -f ${keyFile}`,
        `printf '%s\\n' "$BUILDX_HOST_SSH_KEY" > ${keyFile}`,
        ...hosts.map(knownHostsLine).map(line =>
            `grep -qxF '${line}' ~/.ssh/known_hosts 2>/dev/null || echo '${line}' >> ~/.ssh/known_hosts`),
        ...hostBlocks.map(block =>
            `grep -qxF '${block}' ~/.ssh/config 2>/dev/null || printf '${block}\\n  IdentityFile ${keyFile}\\n  IdentitiesOnly yes\\n' >> ~/.ssh/config`),
    ];
    return {
        name: title,
        env: { BUILDX_HOST_SSH_KEY: "${{ secrets.BUILDX_HOST_SSH_KEY }}" },
        run: script.map(line => `${line}\n`).join(""),
    };
}

/**
 * A team member's GitHub Actions steps to paste under a job's `steps:` (indented alike): trust the
 * pinned host key, give ssh the member's key, attach buildx's remote driver to the member door.
 */
export function githubActionsSnippet(parts: EndpointParts, member: string): string {
    return toYaml([
        trustStep("Trust the buildx host", [parts]),
        {
            name: "Attach buildx to the shared builder",
            uses: SETUP_BUILDX_ACTION,
            with: { driver: "remote", endpoint: sshEndpoint(parts, member) },
        },
    ] satisfies WorkflowStep[]);
}

/**
 * The fleet's GitHub Actions steps for a team member (their account and key are the same on every
 * node): trust every node, then one remote-driver builder whose first node is given by `endpoint`
 * and `platforms`, and each further node by an `append` entry (a YAML list in a string, as the
 * action reads it), each at the node's member door.
 */
export function fleetGithubActionsSnippet(nodes: readonly FleetNodeEndpoint[], member: string): string {
    const [first, ...others] = nodes;
    const append = others.map(node => ({ name: node.name, endpoint: sshEndpoint(node.parts, member), platforms: node.platforms.join(",") }));
    return toYaml([
        trustStep("Trust the buildx fleet", nodes.map(node => node.parts)),
        {
            name: "Attach buildx to the shared fleet",
            uses: SETUP_BUILDX_ACTION,
            with: {
                driver: "remote",
                endpoint: sshEndpoint(first.parts, member),
                platforms: first.platforms.join(","),
                ...append.length === 0 ? {} : { append: toYaml(append) },
            },
        },
    ] satisfies WorkflowStep[]);
}
