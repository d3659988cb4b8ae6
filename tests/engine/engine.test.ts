/**
 * Engine layer: the real Pulumi CLI, its Node.js language host running index.ts as written and the
 * real command provider (all built here from source: tools/build-pulumi.sh, tools/build-plugins.sh),
 * driven the way the README tells a user — `pulumi stack init`, `pulumi config set …`, `pulumi up`,
 * `pulumi stack output`, `pulumi destroy` — on a local file backend with a passphrase, in existing
 * mode against a lab host (a Debian 13 systemd container reached over real SSH). `up`, `preview` and
 * `destroy` run through the Automation API, which reads what they changed from the engine; the
 * second `up` is typed as the README gives it.
 *
 * Stand-ins, because nothing outside this machine is reachable: Docker's apt repository is a local
 * signed repository (tests/hostlab/infra/build-apt-repo.sh), and the registry the host pulls the
 * pinned BuildKit image from is a local one (infra/serve-registry.sh) named through the
 * `buildkitImage` setting, which exists for mirrors.
 *
 * What ran on the host is read from the run log every step appends to (/var/log/buildx-host/steps.log).
 * The tests run in order on one host; each builds on what the previous ones left.
 */
import { execFileSync } from "child_process";
import { appendFileSync, cpSync, existsSync, readFileSync } from "fs";
import * as yaml from "js-yaml";
import * as path from "path";

import { DEFAULTS } from "../../components/config";
import {
    buildkitContainerName, knownHostsLine, memberBuildxCreateCommand, SETUP_BUILDX_ACTION, Workflow, WORKFLOW_REGISTRY,
} from "../../components/endpoint";
import { sha256, EVERY_HOST_STEPS } from "../../components/steps";
import { configProblems } from "../config-problems";
import { CLIENT_BUILD_PLATFORMS, LabClient } from "../hostlab/client";
import {
    binfmtFlags, labAptSettings, local, localOk, memberKey as labMemberKey, readLabHost, requiredEnv, runLog, RunLogLine, ssh, sudoOk, tail,
    teamEntry,
} from "../hostlab/lab";
import { CliRun, EngineRun, PulumiProject, ROOT } from "./cli";
import { adaptSteps, JobContext, preparedRunnerTools, runWorkflowJob } from "./github-actions";

const lab = readLabHost(requiredEnv("HOSTLAB_ENV_FILE"));
const toolsDir = requiredEnv("PULUMI_TOOLS_DIR");
const buildkitImage = requiredEnv("HOSTLAB_BUILDKIT_IMAGE_REF");
const runner = preparedRunnerTools();
const client = () => new LabClient(lab, runner.clientImage, requiredEnv("HOSTLAB_BUSYBOX_DIR"), project.output("knownHostsLine"));

const PASSPHRASE = "engine-layer-passphrase";
const project = new PulumiProject(toolsDir, PASSPHRASE);
const packageJson = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };

const memberKey = (name: string) => labMemberKey(lab, name);
const member = (name: string) => teamEntry(lab, name);

/** The lines the run log gained while `action` ran. */
async function newRunLogLines(action: () => unknown): Promise<RunLogLine[]> {
    const before = runLog(lab).length;
    await action();
    return runLog(lab).slice(before);
}

const settings = (values: Record<string, string>) => {
    for (const [key, value] of Object.entries(values)) {
        project.ok(["config", "set", key, value]);
    }
};

/** A new stack in existing mode for the lab host, set up as the README tells a user, with alice on the team. */
function initExistingModeStack(name: string): void {
    project.ok(["stack", "init", name]);
    settings({
        hostMode: "existing",
        existingHostAddress: lab.host,
        existingHostPort: String(lab.port),
        existingHostUser: lab.user,
        existingHostPublicKey: lab.hostPublicKey,
        ...labAptSettings(),
        buildkitImage,
    });
    project.ok(["config", "set", "--secret", "existingHostPrivateKey"], readFileSync(lab.key, "utf8"));
    project.ok(["config", "set", "--path", "team[0]", member("alice")]);
}

async function up(): Promise<EngineRun> {
    const run = await project.engineOk("up", { timeoutSeconds: 1200 });
    appendFileSync(path.join(lab.stateDir, "engine-up.log"), `${run.stdout}\n${run.stderr}\n`);
    return run;
}

function builderRunning(): boolean {
    return ssh(lab, `docker inspect -f '{{.State.Running}}' ${buildkitContainerName(DEFAULTS.builderName)} </dev/null`).stdout.trim() === "true";
}

/**
 * Whether sshd refuses `name`'s key: one attempt only. A removed member's buildx retries for 20 s,
 * and OpenSSH 9.8+'s PerSourcePenalties then shuts out the whole source address (in the lab,
 * 127.0.0.1, Pulumi's and the tests' own) for a while.
 */
function refusedAtDoor(name: string): boolean {
    const attempt = ssh(lab, "true", "", { user: name, key: memberKey(name), timeoutSeconds: 30 });
    return attempt.status === 255 && /Permission denied/.test(attempt.stderr);
}

/** Whether `name` reaches the shared BuildKit through the member door (also after the stack and its outputs are gone). */
function reachesBuildkit(name: string): boolean {
    const parts = { host: lab.host, port: lab.port, user: lab.user, hostPublicKey: lab.hostPublicKey, builderName: DEFAULTS.builderName };
    const doorClient = new LabClient(lab, runner.clientImage, requiredEnv("HOSTLAB_BUSYBOX_DIR"), knownHostsLine(parts));
    return doorClient.attach(name, memberKey(name), [memberBuildxCreateCommand(parts, name)]).status === 0;
}

/** The lab's registry that needs a login (infra/serve-registry.sh start-login): where the workflow pushes instead of ghcr.io. */
const loginRegistry = {
    address: requiredEnv("LAB_LOGIN_REGISTRY"), user: requiredEnv("LAB_LOGIN_REGISTRY_USER"), password: requiredEnv("LAB_LOGIN_REGISTRY_PASSWORD"),
};
const GITHUB = { actor: loginRegistry.user, repository: "lab/app", sha: sha256("engine-workflow").slice(0, 40) };
const jobContext = (): JobContext => ({
    secrets: { BUILDX_HOST_SSH_KEY: readFileSync(memberKey("alice"), "utf8"), GITHUB_TOKEN: loginRegistry.password }, github: GITHUB,
});

/**
 * The member's workflow pointed at the lab: ghcr.io is out of reach here, so the login's registry
 * and the tag's registry become the lab's (the tag keeps its expressions), and the platforms the
 * two the lab has busybox binaries for (the stack keeps the default six); `login: false` leaves
 * the login step out.
 */
function labWorkflow(workflow: string, login: boolean): string {
    return adaptSteps(workflow, {
        "docker/login-action": step => login ? { ...step, with: { ...step.with, registry: loginRegistry.address } } : undefined,
        "docker/build-push-action": step => ({
            ...step, with: { ...step.with, platforms: CLIENT_BUILD_PLATFORMS, tags: String(step.with?.tags).replace(WORKFLOW_REGISTRY, loginRegistry.address) },
        }),
    });
}

/** The checked-out repository the runner's workspace starts from: the lab client's two-platform build context. */
function workspace(): string {
    const dir = path.join(lab.stateDir, "engine-workspace");
    cpSync(client().buildContext(), dir, { recursive: true });
    return dir;
}

interface ImageIndex {
    readonly manifests: readonly { readonly digest: string; readonly platform: { readonly os: string; readonly architecture: string } }[];
}

/** The manifest the login registry serves for `reference` of the workflow's repository, read with the login. */
function registryManifest(reference: string, accept: string): ImageIndex {
    return JSON.parse(localOk(`curl -fsS -K - -H 'Accept: ${accept}' http://${loginRegistry.address}/v2/${GITHUB.repository}/manifests/${reference}`,
        `user = "${loginRegistry.user}:${loginRegistry.password}"\n`)) as ImageIndex;
}

const groupsOf = (name: string) => sudoOk(lab, `id -nG ${name}`).trim().split(/\s+/);
const timings: Record<string, number> = {};

afterAll(() => {
    console.log(`engine layer wall times (s): ${JSON.stringify(timings)}`);
});

describe("the CLI and its plugins", () => {
    test("are the versions package.json pins: CLI and language host @pulumi/pulumi, provider @pulumi/command", () => {
        const pulumiVersion = packageJson.dependencies["@pulumi/pulumi"];
        expect(project.ok(["version"]).stdout.trim()).toBe(`v${pulumiVersion}`);
        const plugins = JSON.parse(project.ok(["plugin", "ls", "--json"]).stdout) as { name: string; kind: string; version: string }[];
        expect(plugins.filter(p => p.name === "command").map(p => [p.kind, p.version]))
            .toEqual([["resource", packageJson.dependencies["@pulumi/command"]]]);
        const languageHost = path.join(toolsDir, "bin", "pulumi-language-nodejs");
        expect(execFileSync(languageHost, ["-version"]).toString().trim()).toBe(`v${pulumiVersion}`);
    });
});

describe("configuration problems stop the preview before anything is registered", () => {
    test("a new stack needs no setting to exist and gets every default Pulumi.yaml declares", () => {
        project.ok(["stack", "init", "defaults"]);
        const config = JSON.parse(project.ok(["config", "--json"]).stdout) as Record<string, { value?: string }>;
        for (const [key, value] of Object.entries(DEFAULTS)) {
            expect([key, config[`buildx-host:${key}`]?.value]).toEqual([key, typeof value === "string" ? value : JSON.stringify(value)]);
        }
    });

    test("a first preview without allowedSshCidrs fails with our message, no stack trace, only the Stack registered", async () => {
        const run = await project.engine("preview");
        expect(run.succeeded).toBe(false);
        const message = run.errors.join("\n");
        expect(message).toMatch(/Invalid buildx-host configuration \(1 problem\):\n\s+- buildx-host:allowedSshCidrs is required in ec2 mode: list the networks allowed to reach SSH\. Example: pulumi config set --path 'allowedSshCidrs\[0\]' "\$\(curl -s https:\/\/checkip\.amazonaws\.com\)\/32"/);
        expect(message).not.toMatch(/\n\s+at [^\n]+\(/);
        expect(run.steps.map(step => step.type)).toEqual(["pulumi:pulumi:Stack"]);
    });

    test("several bad settings fail the preview together, each as parseConfig words it, the secret unseen, the host untouched", async () => {
        project.ok(["stack", "init", "bad-settings"]);
        settings({
            hostMode: "existing", existingHostAddress: lab.host, existingHostPort: "70000", existingHostUser: "Bad User",
            builderName: "Shared Builder", instancetype: "c7i.large", dockerAptRepo: "http://mirror.example.com/docker",
        });
        // --plaintext gets past the CLI's own "looks like a secret" refusal, as an edited settings file would.
        const throwaway = memberKey("throwaway");
        project.ok(["config", "set", "--plaintext", "existingHostPrivateKey"], readFileSync(throwaway, "utf8"));
        // What the program receives: the settings with Pulumi.yaml's defaults, and the secret (not shown by the CLI).
        const config = JSON.parse(project.ok(["config", "--json"]).stdout) as Record<string, { value?: string }>;
        const problems = configProblems({
            ...Object.fromEntries(Object.entries(config)
                .filter(([key]) => key.startsWith("buildx-host:")).map(([key, { value }]) => [key.slice("buildx-host:".length), value])),
        }, []);
        expect(problems.length).toBeGreaterThanOrEqual(7);
        expect(problems.join("\n")).toContain("buildx-host:dockerAptRepo must be an https URL (http only on a loopback address");
        expect(problems).toContain("buildx-host:existingHostPrivateKey is stored in plain text in the stack's settings file " +
            "(value not shown); store it encrypted. Example: pulumi config set --secret existingHostPrivateKey < ~/.ssh/id_ed25519");
        const run = await project.engine("preview");
        expect(run.succeeded).toBe(false);
        for (const problem of problems) {
            expect(run.errors.join("\n")).toContain(problem);
        }
        const keyBody = readFileSync(throwaway, "utf8").split("\n")[1];
        expect(run.stdout + run.stderr + run.errors.join("\n")).not.toContain(keyBody);
        expect(run.steps.map(step => step.type)).toEqual(["pulumi:pulumi:Stack"]);
        expect(runLog(lab)).toEqual([]);
        project.ok(["stack", "rm", "--yes", "--force", "bad-settings"]);
    });
});

describe("a host provisioned by `pulumi up`", () => {
    beforeAll(() => initExistingModeStack("dev"));

    test("a wrong pinned host key fails `up` within 60 s, naming the host and the key type, with nothing run on the host", async () => {
        const otherKey = path.join(lab.stateDir, "not-the-host-key");
        if (!existsSync(otherKey)) {
            localOk(`ssh-keygen -q -t ed25519 -N '' -f ${otherKey}`);
        }
        settings({ existingHostPublicKey: readFileSync(`${otherKey}.pub`, "utf8").trim() });
        const run = await project.engine("up", { timeoutSeconds: 300 });
        timings.hostKeyMismatch = run.seconds;
        expect(run.succeeded).toBe(false);
        expect(run.seconds).toBeLessThan(60);
        const output = run.errors.join("\n");
        expect(output).toContain("host key mismatch");
        expect(output).toContain(`${lab.host}:${lab.port}`);
        expect(output).toContain("ssh-ed25519");
        expect(runLog(lab)).toEqual([]);
        settings({ existingHostPublicKey: lab.hostPublicKey });
    });

    test("the first `up` runs every step once, in order, and reports no warning", async () => {
        const run = await up();
        timings.firstUp = run.seconds;
        expect(run.warnings).toEqual([]);
        // Created, or (the stack and components the failed attempt above registered) kept.
        expect(Object.keys(run.changes).filter(op => op !== "create" && op !== "same")).toEqual([]);
        expect(run.changes.create).toBeGreaterThan(EVERY_HOST_STEPS.length);
        const lines = runLog(lab);
        // Every step changes the fresh host; wait-for-host installs jq, which writes the reports.
        expect(lines.map(line => [line.step, line.outcome])).toEqual(EVERY_HOST_STEPS.map(step => [step, "changed=true"]));
        // Each report says which version of its script ran: what the project sent, shared functions and facts included.
        const sent = (step: string) => sha256(["lib/common.sh", "lib/host-facts.sh", `${step}.sh`]
            .map(file => readFileSync(path.join(project.dir, "components", "scripts", file), "utf8")).join("\n"));
        expect(lines.map(line => line.report.scriptSha256)).toEqual(EVERY_HOST_STEPS.map(sent));
    });

    test("the builder works: experimental on, every QEMU entry with F, the builder's platforms as output", () => {
        expect(ssh(lab, "docker version -f '{{.Server.Experimental}}' </dev/null").stdout.trim()).toBe("true");
        const entries = sudoOk(lab, "for f in /proc/sys/fs/binfmt_misc/qemu-*; do echo \"${f##*/} $(grep ^flags: \"$f\")\"; done")
            .trim().split("\n");
        expect(entries.length).toBeGreaterThanOrEqual(5);
        for (const entry of entries) {
            expect([entry, binfmtFlags(entry.slice(entry.indexOf(" ") + 1)).includes("F")]).toEqual([entry, true]);
        }
        const platforms = JSON.parse(project.ok(["stack", "output", "platforms", "--json"]).stdout) as string[];
        expect(platforms).toEqual(expect.arrayContaining(["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/riscv64"]));
        expect(builderRunning()).toBe(true);
    });

    test("the BuildKit image runs pinned by digest, and the digest output is the one pinned", () => {
        const [reference, digest] = buildkitImage.split("@");
        expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
        const expected = `${reference.slice(0, reference.lastIndexOf(":"))}@${digest}`;
        expect(project.output("buildkitImageDigest")).toBe(expected);
        const node = buildkitContainerName(DEFAULTS.builderName);
        expect(sudoOk(lab, `docker image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' $(docker inspect -f '{{.Image}}' ${node}) </dev/null`)
            .split("\n")).toContain(expected);
    });

    test("the administrator attaches with the stack outputs exactly as printed and builds linux/amd64 and linux/arm64", () => {
        const attach = [project.output("dockerContextCommand"), project.output("buildxCreateCommand")];
        const build = client().build(lab.user, lab.key, "engine-login-user", attach);
        expect(build.arches).toEqual({ linux_amd64: "x86_64", linux_arm64: "aarch64" });
    });

    test("a member attaches through the member door with their output exactly as printed and builds both platforms", () => {
        const attach = JSON.parse(project.output("teamBuildxCreateCommands", "--json")) as Record<string, string>;
        expect(attach.alice).toBe(`docker buildx create --name buildx-host-remote --driver remote ssh://alice@${lab.host}:${lab.port} --use`);
        const build = client().build("alice", memberKey("alice"), "engine-member", [attach.alice]);
        expect(build.arches).toEqual({ linux_amd64: "x86_64", linux_arm64: "aarch64" });
        expect(groupsOf("alice")).toEqual(["alice", "buildx-members"]);
    });

    test("a member's workflow runs through the real setup-buildx, login and build-push actions, pushes both platforms, and removes the key", () => {
        const workflows = JSON.parse(project.output("teamGithubActionsWorkflows", "--json")) as Record<string, string>;
        const job = (yaml.load(workflows.alice) as Workflow).jobs.build;
        expect(job["runs-on"]).toBe("self-hosted");
        expect(job.steps.find(step => step.uses === SETUP_BUILDX_ACTION)?.with?.endpoint).toBe(`ssh://alice@${lab.host}:${lab.port}`);
        const started = Date.now();
        const run = runWorkflowJob(runner, path.join(lab.stateDir, "engine-runner"), labWorkflow(workflows.alice, true), jobContext(), workspace());
        timings.workflow = (Date.now() - started) / 1000;
        for (const step of [...run.steps, ...run.posts]) {
            expect([step.name, step.outcome, step.outcome === "failure" ? tail(step.result!.stdout + step.result!.stderr, 60) : ""])
                .toEqual([step.name, "success", ""]);
        }
        expect(run.posts.map(post => post.name)).toEqual(["Post Build and push", "Post Log in to the registry", "Post Attach buildx to the shared builder"]);
        // The last step removed the key; the known_hosts line (public) stays for the next job.
        expect(existsSync(path.join(run.home, ".ssh", `${DEFAULTS.builderName}.key`))).toBe(false);
        expect(readFileSync(path.join(run.home, ".ssh", "known_hosts"), "utf8")).toContain(lab.hostPublicKey);

        const index = registryManifest(GITHUB.sha, "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json");
        const images = index.manifests.filter(manifest => manifest.platform.os !== "unknown");
        expect(images.map(manifest => `${manifest.platform.os}/${manifest.platform.architecture}`).sort()).toEqual(["linux/amd64", "linux/arm64"]);
        // Each platform's image, run here (binfmt_misc has the lab's QEMU with F): its busybox reports its own
        // CPU, and so did its RUN step on the shared builder.
        const dockerConfig = path.join(lab.stateDir, "engine-registry-login");
        localOk(`docker --config '${dockerConfig}' login -u '${loginRegistry.user}' --password-stdin ${loginRegistry.address}`, loginRegistry.password);
        for (const manifest of images) {
            const ref = `${loginRegistry.address}/${GITHUB.repository}@${manifest.digest}`;
            const arch = localOk(`docker --config '${dockerConfig}' run --rm --network none --platform linux/${manifest.platform.architecture} ${ref} ` +
                "/bin/busybox sh -c '/bin/busybox uname -m; /bin/busybox cat /arch'");
            localOk(`docker image rm ${ref}`);
            const expected = manifest.platform.architecture === "amd64" ? "x86_64" : "aarch64";
            expect([manifest.platform.architecture, arch.trim().split("\n")]).toEqual([manifest.platform.architecture, [expected, expected]]);
        }
    });

    test("without the login step the push is refused (the credentials come from the client), and the key is removed all the same", () => {
        const run = runWorkflowJob(runner, path.join(lab.stateDir, "engine-runner-no-login"), labWorkflow(
            JSON.parse(project.output("teamGithubActionsWorkflows", "--json")).alice, false), jobContext(), workspace());
        expect(run.steps.map(step => [step.name, step.outcome])).toEqual([
            ["Check out the repository", "success"], ["Trust the buildx host", "success"], ["Attach buildx to the shared builder", "success"],
            ["Build and push", "failure"], ["Remove the SSH key", "success"],
        ]);
        expect(run.steps[3].result!.stdout + run.steps[3].result!.stderr).toMatch(/401 Unauthorized|unauthorized|authorization failed/i);
        expect(existsSync(path.join(run.home, ".ssh", `${DEFAULTS.builderName}.key`))).toBe(false);
        expect(builderRunning()).toBe(true);
    });

    test("a second `pulumi up`, typed as the README gives it, changes nothing: the engine records no change and no command ran on the host", async () => {
        // The README's command; --yes answers its confirmation prompt. The time goes to bench/, not to an assertion here.
        let run: CliRun | undefined;
        const lines = await newRunLogLines(() => { run = project.ok(["up", "--yes"], undefined, 600); });
        timings.noOpUp = run!.seconds;
        expect(lines).toEqual([]);
        const [update] = JSON.parse(project.ok(["stack", "history", "--json", "--page-size", "1"]).stdout) as
            { kind: string; result: string; resourceChanges: Record<string, number> }[];
        expect([update.kind, update.result, Object.keys(update.resourceChanges)]).toEqual(["update", "succeeded", ["same"]]);
        expect(run!.stdout + run!.stderr).not.toContain("warning:");
    });

    test("a changed GC limit runs the builder step and the steps after it, and nothing before", async () => {
        settings({ buildkitGcMaxUsedSpace: "60GB" });
        const lines = await newRunLogLines(async () => { timings.gcChangeUp = (await up()).seconds; });
        expect(lines.map(line => line.step)).toEqual(["buildx-builder", "team-access"]);
        expect(lines[0].outcome).toBe("changed=true");
    });

    test("a changed script runs that step and the steps after it, and nothing before", async () => {
        appendFileSync(path.join(project.dir, "components", "scripts", "experimental-mode.sh"), "# edited by the engine layer\n");
        const lines = await newRunLogLines(async () => { timings.scriptChangeUp = (await up()).seconds; });
        expect(lines.map(line => line.step)).toEqual(["experimental-mode", "qemu-binfmt", "buildx-builder", "team-access"]);
        expect(lines.map(line => line.outcome)).toEqual(["changed=false", "changed=false", "changed=false", "changed=false"]);
    });

    test("team: a member added reaches BuildKit; the first member removed loses the door, the second keeps it", async () => {
        project.ok(["config", "set", "--path", "team[1]", member("bob")]);
        await up();
        expect([reachesBuildkit("alice"), reachesBuildkit("bob")]).toEqual([true, true]);
        project.ok(["config", "set", "--path", "team[0]", member("bob")]);
        project.ok(["config", "rm", "--path", "team[1]"]);
        const lines = await newRunLogLines(up);
        expect(lines.map(line => [line.step, line.report.removed])).toEqual([["team-access", ["alice"]]]);
        expect([refusedAtDoor("alice"), reachesBuildkit("bob")]).toEqual([true, true]);
        expect(groupsOf("alice")).toEqual(["alice"]);
        expect(groupsOf("bob")).toEqual(["bob", "buildx-members"]);
    });

    test("no private key appears in clear in any CLI output or in `pulumi stack export`", () => {
        project.ok(["stack", "export"]);
        project.ok(["stack", "output", "--json"]);
        // The body of each private key, less its first line: that one is the same in every unencrypted ed25519 key.
        const keyLines = [lab.key, memberKey("alice"), memberKey("bob")].flatMap(key =>
            readFileSync(key, "utf8").split("\n").filter(line => line && !line.startsWith("-----")).slice(1));
        const leaks = project.transcript
            .filter(run => keyLines.some(line => (run.stdout + run.stderr).includes(line)))
            .map(run => run.command);
        expect(leaks).toEqual([]);
        expect(project.transcript.length).toBeGreaterThan(20);
        expect(project.allOutput()).toContain("existingHostPrivateKey");
    });

    test("`pulumi destroy` removes the builder and revokes the team, and the run log says so", async () => {
        let run: EngineRun | undefined;
        const lines = await newRunLogLines(async () => { run = await project.engineOk("destroy", { timeoutSeconds: 600 }); });
        timings.destroy = run!.seconds;
        expect(Object.keys(run!.changes)).toEqual(["delete"]);
        expect(lines.map(line => [line.step, line.outcome])).toEqual([
            ["team-access", "changed=true"], ["buildx-builder", "changed=true"], ["metadata-guard", "changed=true"]]);
        expect(lines[0].report).toMatchObject({ removed: ["bob"], door: "closed" });
        expect(lines[1].report.action).toBe("deleted");
        expect(lines[2].report.action).toBe("deleted");
        expect(builderRunning()).toBe(false);
        expect(refusedAtDoor("bob")).toBe(true);
        expect(groupsOf("bob")).toEqual(["bob"]);
    });
});

describe("a host that is gone", () => {
    test("`pulumi destroy` ends within 5 minutes naming the host, and the README's recipe finishes the job", async () => {
        initExistingModeStack("gone");
        await up();
        localOk(`docker stop ${lab.container}`);
        try {
            const run = await project.engine("destroy", { timeoutSeconds: 600 });
            timings.destroyHostGone = run.seconds;
            expect(run.succeeded).toBe(false);
            expect(run.seconds).toBeLessThan(300);
            expect(run.errors.join("\n")).toContain(`${lab.host}:${lab.port}`);

            const recipe = /<!-- host-gone-recipe -->\n```sh\n([\s\S]*?)```/.exec(readFileSync(path.join(ROOT, "README.md"), "utf8"))?.[1];
            expect(recipe).toBeDefined();
            const finished = local(`cd '${project.dir}' && set -euo pipefail\n${recipe}`, undefined, 600, project.environment());
            if (finished.status !== 0) {
                throw new Error(`the README's recipe failed (exit ${finished.status}):\n${tail(finished.stdout + finished.stderr)}`);
            }
            const state = JSON.parse(project.ok(["stack", "export"]).stdout) as { deployment: { resources?: unknown[] } };
            expect(state.deployment.resources ?? []).toEqual([]);
        } finally {
            localOk(`docker start ${lab.container}`);
        }
    });
});
