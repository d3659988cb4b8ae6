/**
 * The ready-to-paste ways a teammate or a CI job attaches to the shared builder. Pure formatting,
 * so each format is pinned by a unit test.
 */
import type { FleetFallback } from "./config";
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

/** How long the attach script gives each node's SSH connection before calling the node down. */
export const NODE_CHECK_SECONDS = 5;

/**
 * A team member's attach to a fleet, as a POSIX sh script (Linux, macOS, a CI runner): it checks
 * every node's member door at once, bounded by NODE_CHECK_SECONDS (the door answers any command by
 * joining BuildKit's socket, and with no input that session ends at once), then creates the client
 * builder: each node `--append`ed with its platforms, as fleetMemberBuildxCreateCommand does. A node
 * that does not answer is named with the platforms it takes along; `fallback` says what then:
 * "fail" keeps it in the builder (so buildx sends its platforms nowhere else) and exits 1;
 * "emulate" leaves it out and gives its platforms to the first node that answered, with a warning.
 * With GITHUB_OUTPUT set (a workflow step) it writes setup-buildx-action's `endpoint`, `platforms`
 * and `append` inputs instead of creating the builder. Run again, it replaces the builder: a node
 * back is attached natively again.
 */
export function fleetAttachScript(nodes: readonly FleetNodeEndpoint[], member: string, fallback: FleetFallback): string {
    const builder = clientBuilderName(nodes[0].parts.builderName);
    return `#!/bin/sh
# Attaches ${member} to the shared buildx fleet as the builder ${builder}, from the nodes that answer.
# Run it again when a node is down or back. In a GitHub Actions step it writes setup-buildx-action's inputs.
set -eu
builder=${builder}
fallback=${fallback}
# One node a line: its name, its member door, the platforms it builds.
nodes='${nodes.map(node => `${node.name} ${sshEndpoint(node.parts, member)} ${node.platforms.join(",")}`).join("\n")}'

say() {
  if [ -n "\${GITHUB_OUTPUT:-}" ]; then echo "::\${1}::\${2}"; else echo "buildx-host: \${1}: \${2}" >&2; fi
}

checks=$(mktemp -d)
trap 'rm -rf "\${checks}"' EXIT
# Every node at once: a healthy attach waits for one SSH session, a down node ${NODE_CHECK_SECONDS} s at most.
while read -r name door platforms; do
  { ssh -o ConnectTimeout=${NODE_CHECK_SECONDS} -o BatchMode=yes -o ServerAliveInterval=2 -o ServerAliveCountMax=2 "\${door}" \\
      </dev/null >/dev/null 2>"\${checks}/\${name}.err" && touch "\${checks}/\${name}.up"; } &
done <<NODES
\${nodes}
NODES
wait

unavailable=''
while read -r name door platforms; do
  [ -e "\${checks}/\${name}.up" ] && continue
  unavailable="\${unavailable:+\${unavailable},}\${platforms}"
  say "$([ "\${fallback}" = emulate ] && echo warning || echo error)" \\
    "node \${name} (\${door}) did not answer: $(tail -n 1 "\${checks}/\${name}.err" | tr -d '\\r'); \${platforms} cannot be built there until it is back"
done <<NODES
\${nodes}
NODES
if [ -n "\${unavailable}" ] && [ "\${fallback}" != emulate ] && [ -n "\${GITHUB_OUTPUT:-}" ]; then
  exit 1
fi

first=yes
append=''
while read -r name door platforms; do
  if [ "\${fallback}" = emulate ] && [ -n "\${unavailable}" ]; then
    [ -e "\${checks}/\${name}.up" ] || continue
    if [ -n "\${first}" ]; then
      say warning "\${unavailable} goes to node \${name}, emulated (slower), until every node answers: run this again then"
      platforms="\${platforms},\${unavailable}"
    fi
  fi
  if [ -n "\${GITHUB_OUTPUT:-}" ]; then
    if [ -n "\${first}" ]; then
      printf 'endpoint=%s\\nplatforms=%s\\n' "\${door}" "\${platforms}" >>"\${GITHUB_OUTPUT}"
    else
      append="\${append}- name: \${name}
  endpoint: \${door}
  platforms: \${platforms}
"
    fi
  elif [ -n "\${first}" ]; then
    docker buildx rm "\${builder}" >/dev/null 2>&1 || true
    docker buildx create --name "\${builder}" --driver remote --node "\${name}" --platform "\${platforms}" "\${door}" --use >/dev/null
  else
    docker buildx create --name "\${builder}" --append --node "\${name}" --platform "\${platforms}" "\${door}" >/dev/null
  fi
  first=''
done <<NODES
\${nodes}
NODES

if [ -n "\${GITHUB_OUTPUT:-}" ]; then
  printf 'append<<BUILDX_HOST_APPEND\\n%sBUILDX_HOST_APPEND\\n' "\${append}" >>"\${GITHUB_OUTPUT}"
fi
if [ -n "\${first}" ]; then
  say error "no node answered: nothing to attach"
  exit 1
fi
if [ -n "\${unavailable}" ] && [ "\${fallback}" != emulate ]; then
  say error "\${builder} keeps every node, so buildx sends \${unavailable} nowhere else: a build asking for it waits 20 s and fails; build the other platforms, or run this again when the node is back"
  exit 1
fi
echo "buildx-host: \${builder} attached"
`;
}

/** The actions the workflow uses, each at its current major (all run on node24). */
export const CHECKOUT_ACTION = "actions/checkout@v5";
export const SETUP_BUILDX_ACTION = "docker/setup-buildx-action@v4";
export const LOGIN_ACTION = "docker/login-action@v4";
export const BUILD_PUSH_ACTION = "docker/build-push-action@v7";
export const AWS_CREDENTIALS_ACTION = "aws-actions/configure-aws-credentials@v5";

/** The repository variable holding the ARN of the IAM role a workflow assumes (OIDC) to wake the hosts. */
export const WAKE_ROLE_VARIABLE = "BUILDX_HOST_WAKE_ROLE_ARN";

/** How long a workflow's wake step waits for a woken host's member door to answer. */
export const WAKE_DOOR_WAIT_SECONDS = 300;

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
    /** How later steps name its outputs: `steps.<id>.outputs.<name>`. */
    readonly id?: string;
    readonly if?: string;
    readonly env?: Readonly<Record<string, string>>;
    readonly run?: string;
    readonly uses?: string;
    readonly with?: Readonly<Record<string, string | boolean>>;
}

/** EC2 hosts that may be stopped (idleStopMinutes above 0), in one region: a member's workflow wakes them before it attaches. */
export interface WakeHosts {
    readonly region: string;
    readonly hosts: readonly { readonly instanceId: string; readonly parts: EndpointParts }[];
}

/**
 * The steps that wake stopped hosts before the attach: credentials for the role the repository
 * variable names (GitHub's OIDC token, no stored AWS key), then start each instance and wait until
 * its member door answers. buildx gives up on a node after about 20 s, far less than a boot: the
 * attach must come after the host answers, not while it boots. A node that does not start (a spot
 * node stopped by an interruption, which only EC2 starts again) or does not answer stops the job,
 * unless `fallback` is "emulate": then it is left to the fleet check, which leaves it out.
 */
function wakeSteps(wake: WakeHosts, member: string, fallback: FleetFallback): WorkflowStep[] {
    // `next`: how an emulating job goes on past this node, out of the loop it is in.
    const giveUp = (why: string, next: "continue" | "break") => fallback === "emulate"
        ? `{ echo "::warning::${why}; the fleet check leaves it out"; ${next}; }`
        : `{ echo "::error::${why}"; exit 1; }`;
    const script = [
        'ids=""',
        'doors=""',
        `for node in ${wake.hosts.map(host => `'${host.instanceId} ${sshEndpoint(host.parts, member)}'`).join(" ")}; do`,
        '  id="${node%% *}"',
        '  door="${node#* }"',
        `  aws ec2 start-instances --instance-ids "$id" >/dev/null || ${giveUp("could not start $id ($door): a spot node stopped by an interruption starts only when EC2 has capacity again", "continue")}`,
        '  ids="$ids $id"',
        '  doors="$doors $door"',
        "done",
        // Word splitting of the lists is meant: instance ids and ssh:// URLs have no spaces.
        '[ -z "$ids" ] || aws ec2 wait instance-running --instance-ids $ids',
        "for door in $doors; do",
        `  deadline=$((SECONDS + ${WAKE_DOOR_WAIT_SECONDS}))`,
        '  until ssh -o ConnectTimeout=5 -o BatchMode=yes "$door" </dev/null >/dev/null 2>&1; do',
        `    [ "$SECONDS" -lt "$deadline" ] || ${giveUp(`$door did not answer within ${WAKE_DOOR_WAIT_SECONDS} s of the wake`, "break")}`,
        "    sleep 5",
        "  done",
        "done",
    ];
    return [
        {
            name: "AWS credentials to wake the build hosts",
            uses: AWS_CREDENTIALS_ACTION,
            with: { "role-to-assume": `\${{ vars.${WAKE_ROLE_VARIABLE} }}`, "aws-region": wake.region },
        },
        { name: "Wake the build hosts and wait for their doors", run: script.map(line => `${line}\n`).join("") },
    ];
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
function workflow(title: string, trust: WorkflowStep, attach: readonly WorkflowStep[], builderName: string,
                  platforms: readonly string[], runner: GithubRunner, member: string, wake: WakeHosts | undefined,
                  fallback: FleetFallback): string {
    return toYaml({
        name: title,
        on: ["push", "workflow_dispatch"],
        // id-token: the OIDC token the wake step exchanges for the role's credentials.
        permissions: { contents: "read", packages: "write", ...wake === undefined ? {} : { "id-token": "write" } },
        jobs: {
            build: {
                "runs-on": runner,
                steps: [
                    { name: "Check out the repository", uses: CHECKOUT_ACTION, with: { "persist-credentials": false } },
                    trust,
                    ...wake === undefined ? [] : wakeSteps(wake, member, fallback),
                    ...attach,
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

/** A team member's complete GitHub Actions workflow for a single host, building `platforms`; with `wake`, it wakes the host first. */
export function githubActionsWorkflow(parts: EndpointParts, member: string, platforms: readonly string[], runner: GithubRunner,
                                      wake?: WakeHosts): string {
    return workflow("Build and push on the shared buildx host", trustStep("Trust the buildx host", [parts]),
        [attachStep("Attach buildx to the shared builder", { endpoint: sshEndpoint(parts, member) })], parts.builderName, platforms, runner,
        member, wake, "fail");
}

/** The id of a fleet workflow's attach-script step, whose outputs are setup-buildx-action's inputs. */
const FLEET_CHECK_STEP = "fleet";

/**
 * A team member's complete GitHub Actions workflow for a fleet (their account and key are the same
 * on every node), building every node's platforms. Its attach script checks the nodes and writes
 * the inputs of setup-buildx-action (kept: its post step removes the runner's builder): the first
 * node that stays is `endpoint` and `platforms`, each further one an `append` entry (the action
 * cannot name the first node: there it is `<builder>0`). A node down stops the job at that step,
 * naming it, unless `fallback` is "emulate". With `wake`, it wakes those nodes before the check.
 */
export function fleetGithubActionsWorkflow(nodes: readonly FleetNodeEndpoint[], member: string, runner: GithubRunner,
                                           fallback: FleetFallback, wake?: WakeHosts): string {
    const check: WorkflowStep = { name: "Check the fleet's nodes", id: FLEET_CHECK_STEP, run: fleetAttachScript(nodes, member, fallback) };
    const input = (name: string) => `\${{ steps.${FLEET_CHECK_STEP}.outputs.${name} }}`;
    const attach = attachStep("Attach buildx to the shared fleet", {
        endpoint: input("endpoint"),
        platforms: input("platforms"),
        ...nodes.length === 1 ? {} : { append: input("append") },
    });
    return workflow("Build and push on the shared buildx fleet", trustStep("Trust the buildx fleet", nodes.map(node => node.parts)),
        [check, attach], nodes[0].parts.builderName, nodes.flatMap(node => node.platforms), runner, member, wake, fallback);
}

/** Where CI can run for these hosts: GitHub's own runners only when every host takes SSH from anywhere. */
export function githubRunner(openToWorld: readonly boolean[]): GithubRunner {
    return openToWorld.length > 0 && openToWorld.every(Boolean) ? "ubuntu-latest" : "self-hosted";
}

/** A fleet's attach script as the hand-over gives it: the file to save it as, and its text. */
export interface AttachScript {
    readonly file: string;
    readonly text: string;
}

/** Where a member keeps the fleet's attach script: named from the client builder, so two stacks' scripts do not meet. */
export function attachScriptFile(builderName: string): string {
    return `~/${clientBuilderName(builderName)}-attach.sh`;
}

/** A block of the hand-over, indented four spaces (Markdown's code block). */
function indent(text: string): string {
    return text.trimEnd().split("\n").map(line => `    ${line}`).join("\n");
}

/** Step 3 of the hand-over: the attach command(s) for both shells, or a fleet's script for a POSIX shell and its plain commands for PowerShell. */
function attachInstructions(attachCommands: string, script: AttachScript | undefined): string[] {
    if (script === undefined) {
        return ["3. Attach (the same in both shells); ssh uses your key as usual (~/.ssh/config IdentityFile, or an agent):", "",
            indent(attachCommands)];
    }
    return [
        `3. Attach; ssh uses your key as usual (~/.ssh/config IdentityFile, or an agent). POSIX shell: save the attach script, and run it now and ` +
            `again whenever a node is down or back (it checks each node for ${NODE_CHECK_SECONDS} s and builds from the nodes that answer):`,
        "",
        indent([`cat > ${script.file} <<'BUILDX_HOST_ATTACH'`, script.text.trimEnd(), "BUILDX_HOST_ATTACH", `sh ${script.file}`].join("\n")),
        "",
        "   PowerShell: these lines attach every node without checking them (a node that is down then fails, after 20 s, the builds that need it):",
        "",
        indent(attachCommands),
    ];
}

/**
 * What the lead sends a member as it is (nothing secret in it): the version check, the host
 * key(s) to trust and the attach command(s), in a POSIX shell and in PowerShell where it differs
 * (a fleet: its attach script), a build of the stack's platforms, what the lead must have set for
 * them, and the workflow for a CI job that attaches as them.
 */
export function handOverText(member: string, knownHostsLines: readonly string[], attachCommands: string, platforms: readonly string[],
                             workflowYaml: string, attachScript?: AttachScript): string {
    const v = MINIMUM_CLIENT_VERSIONS;
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
        ...attachInstructions(attachCommands, attachScript),
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
