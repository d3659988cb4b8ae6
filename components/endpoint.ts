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

/** The actions the workflow uses, each at its current major (all run on node24). */
export const CHECKOUT_ACTION = "actions/checkout@v5";
export const SETUP_BUILDX_ACTION = "docker/setup-buildx-action@v4";
export const LOGIN_ACTION = "docker/login-action@v4";
export const BUILD_PUSH_ACTION = "docker/build-push-action@v7";

/** The registry the workflow pushes to by default, and the image: GHCR takes only a lowercase repository path. */
export const WORKFLOW_REGISTRY = "ghcr.io";
export const WORKFLOW_IMAGE_TAG = `${WORKFLOW_REGISTRY}/\${{ github.repository }}:\${{ github.sha }}`;

/** The oldest clients measured attaching the remote driver over ssh:// (Docker CLI with the buildx plugin, OpenSSH). */
export const MINIMUM_CLIENT_VERSIONS = { docker: "24", buildx: "0.13", openssh: "8" } as const;

/**
 * Where a CI job can run: GitHub-hosted runners come from address ranges that change, so only a
 * host open to the whole internet (`allowOpenSsh`) is reachable from them; otherwise a self-hosted
 * runner whose network `allowedSshCidrs` lists.
 */
export type GithubRunner = "self-hosted" | "ubuntu-latest";

/** A GitHub Actions workflow step, as the workflow gives them. */
export interface WorkflowStep {
    readonly name: string;
    readonly if?: string;
    readonly env?: Readonly<Record<string, string>>;
    readonly run?: string;
    readonly uses?: string;
    readonly with?: Readonly<Record<string, string | boolean>>;
}

/** A workflow with one job, `build`. */
export interface Workflow {
    readonly name: string;
    readonly on: readonly string[];
    readonly permissions: Readonly<Record<string, string>>;
    readonly jobs: { readonly build: { readonly "runs-on": GithubRunner; readonly steps: readonly WorkflowStep[] } };
}

/** The runner's file for the member's private key: written by the trust step, removed by the last step. */
function runnerKeyFile(builderName: string): string {
    return `~/.ssh/${builderName}.key`;
}

/**
 * The shell step of a member's workflow: trust each host's pinned key and give ssh the member's
 * key for them. The repository secret BUILDX_HOST_SSH_KEY holds the member's private key; it
 * reaches the shell through `env:`, never interpolated into the script, and its file is private
 * from the start (umask). Every line is idempotent, so a reused self-hosted runner can run it again.
 */
function trustStep(title: string, hosts: readonly EndpointParts[]): WorkflowStep {
    const keyFile = runnerKeyFile(hosts[0].builderName);
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

/** setup-buildx-action's remote driver at the member door(s), with `inputs` naming where. */
function attachStep(title: string, inputs: Readonly<Record<string, string>>): WorkflowStep {
    return { name: title, uses: SETUP_BUILDX_ACTION, with: { driver: "remote", ...inputs } };
}

/**
 * The complete workflow around the trust and attach steps: check out (without leaving the job's
 * token in .git/config, which the build context would carry to the shared host), log in to GHCR
 * with the job's token, build every platform on the shared builder and push, and remove the key
 * whatever happened. The build summary is off: build-push-action exports it in its post step,
 * after the key is gone.
 */
function workflow(title: string, trust: WorkflowStep, attach: WorkflowStep, builderName: string,
                  platforms: readonly string[], runner: GithubRunner): string {
    return toYaml({
        name: title,
        on: ["push", "workflow_dispatch"],
        permissions: { contents: "read", packages: "write" },
        jobs: {
            build: {
                "runs-on": runner,
                steps: [
                    { name: "Check out the repository", uses: CHECKOUT_ACTION, with: { "persist-credentials": false } },
                    trust,
                    attach,
                    {
                        name: "Log in to the registry",
                        uses: LOGIN_ACTION,
                        with: { registry: WORKFLOW_REGISTRY, username: "${{ github.actor }}", password: "${{ secrets.GITHUB_TOKEN }}" },
                    },
                    {
                        name: "Build and push",
                        uses: BUILD_PUSH_ACTION,
                        env: { DOCKER_BUILD_SUMMARY: "false" },
                        with: { context: ".", platforms: platforms.join(","), push: true, tags: WORKFLOW_IMAGE_TAG },
                    },
                    { name: "Remove the SSH key", if: "always()", run: `rm -f ${runnerKeyFile(builderName)}\n` },
                ],
            },
        },
    } satisfies Workflow);
}

/** A team member's complete GitHub Actions workflow for a single host, building `platforms`. */
export function githubActionsWorkflow(parts: EndpointParts, member: string, platforms: readonly string[], runner: GithubRunner): string {
    return workflow("Build and push on the shared buildx host", trustStep("Trust the buildx host", [parts]),
        attachStep("Attach buildx to the shared builder", { endpoint: sshEndpoint(parts, member) }), parts.builderName, platforms, runner);
}

/**
 * A team member's complete GitHub Actions workflow for a fleet (their account and key are the same
 * on every node), building every node's platforms: one remote-driver builder whose first node is
 * `endpoint` and `platforms`, each further node an `append` entry (a YAML list in a string, as the
 * action reads it; the action cannot name the first node: there it is `<builder>0`).
 */
export function fleetGithubActionsWorkflow(nodes: readonly FleetNodeEndpoint[], member: string, runner: GithubRunner): string {
    const [first, ...others] = nodes;
    const append = others.map(node => ({ name: node.name, endpoint: sshEndpoint(node.parts, member), platforms: node.platforms.join(",") }));
    const attach = attachStep("Attach buildx to the shared fleet", {
        endpoint: sshEndpoint(first.parts, member),
        platforms: first.platforms.join(","),
        ...append.length === 0 ? {} : { append: toYaml(append) },
    });
    return workflow("Build and push on the shared buildx fleet", trustStep("Trust the buildx fleet", nodes.map(node => node.parts)),
        attach, first.parts.builderName, nodes.flatMap(node => node.platforms), runner);
}

/** Where CI can run for these hosts: GitHub's own runners only when every host takes SSH from anywhere. */
export function githubRunner(openToWorld: readonly boolean[]): GithubRunner {
    return openToWorld.length > 0 && openToWorld.every(Boolean) ? "ubuntu-latest" : "self-hosted";
}

/**
 * What the lead sends a member as it is (nothing secret in it): the version check, the host
 * key(s) to trust and the attach command(s), in a POSIX shell and in PowerShell where it differs,
 * a build of the stack's platforms, what the lead must have set for them, and the workflow for a CI
 * job that attaches as them.
 */
export function handOverText(member: string, knownHostsLines: readonly string[], attachCommands: string, platforms: readonly string[],
                             workflowYaml: string): string {
    const v = MINIMUM_CLIENT_VERSIONS;
    const indent = (text: string) => text.trimEnd().split("\n").map(line => `    ${line}`).join("\n");
    return [
        `How ${member} attaches to the shared buildx builder`,
        "",
        `1. Check your client: Docker CLI ${v.docker} or later with buildx ${v.buildx} or later, OpenSSH client ${v.openssh} or later.`,
        "",
        indent("docker buildx version\nssh -V"),
        "",
        "2. Trust the host key (it is pinned; ssh then refuses any other). POSIX shell (Linux, macOS):",
        "",
        indent(["mkdir -p ~/.ssh", ...knownHostsLines.map(line => `echo '${line}' >> ~/.ssh/known_hosts`)].join("\n")),
        "",
        "   PowerShell (Windows, OpenSSH client):",
        "",
        indent(["New-Item -ItemType Directory -Force $HOME\\.ssh | Out-Null",
            ...knownHostsLines.map(line => `Add-Content -Encoding ascii -Path $HOME\\.ssh\\known_hosts -Value '${line}'`)].join("\n")),
        "",
        "3. Attach (the same in both shells); ssh uses your key as usual (~/.ssh/config IdentityFile, or an agent):",
        "",
        indent(attachCommands),
        "",
        `   Then build as usual: docker buildx build --platform ${platforms.join(",")} -t <image> --push .`,
        "",
        `This works once the lead has your public key in the stack's \`team\` as "${member} ssh-ed25519 AAAA…", ` +
            "and, for hosts the program created, your network's address range in `allowedSshCidrs` (tell the lead your public address).",
        "",
        `4. CI (GitHub Actions) attaching as ${member}: store ${member}'s private key as the repository secret BUILDX_HOST_SSH_KEY ` +
            "and save this as .github/workflows/buildx-host.yml:",
        "",
        indent(workflowYaml),
        "",
    ].join("\n");
}
