/**
 * The fleet, for real: two lab hosts at once (the second on the next sshd port), joined by
 * `pulumi up` into one buildx builder, driven the way the README tells a user (`pulumi config set
 * --path 'nodes[i].…'`). The first host is the amd64 node; the second is declared the arm64 node.
 * Both are this machine's amd64 CPU: in the lab the "arm64" node builds arm64 under QEMU, which is
 * what a Graviton instance does natively. Which node built which platform is read from each node's
 * own BuildKit (its build history, on that host), not from the client.
 *
 * First, a stack of the single-host program as it was before fleets and before the member door
 * (git history) is upgraded to this one: no resource may be replaced, and its member moves from the
 * docker group to the member door. Then that stack grows into the fleet: its host, listed as the
 * first node, keeps every resource (and its builder's cache), and only the second node is created.
 */
import { readFileSync } from "fs";
import * as path from "path";

import { DEFAULTS } from "../../components/config";
import { SINGLE_HOST_KEYS } from "../../components/config/existing-host";
import { buildkitContainerName, NODE_CHECK_SECONDS } from "../../components/endpoint";
import { EVERY_HOST_STEPS } from "../../components/steps";
import { CLIENT_BUILD_PLATFORMS, cacheUse, LabClient } from "../hostlab/client";
import {
    labAptSettings, LabHost, localOk, memberKey, readLabHost, requiredEnv, runLog, ssh, sudoOk, tail, teamEntry,
} from "../hostlab/lab";
import { EngineRun, programAt, PulumiProject, ROOT } from "./cli";
import { adaptSteps, preparedRunnerTools, runWorkflowJob } from "./github-actions";

/** The last commit of the single-host program, before `nodes` existed. */
const SINGLE_HOST_PROGRAM_COMMIT = "8a620234d99da58c1ad98600833e6b128caf09a8";

const amd64Host = readLabHost(requiredEnv("HOSTLAB_ENV_FILE"));
const arm64Host = readLabHost(requiredEnv("HOSTLAB_ENV_FILE_2"));
const toolsDir = requiredEnv("PULUMI_TOOLS_DIR");
const runner = preparedRunnerTools();
const PASSPHRASE = "fleet-layer-passphrase";
const NODES: readonly [string, LabHost][] = [["amd64", amd64Host], ["arm64", arm64Host]];
const timings: Record<string, number> = {};
/** One stack all along: made by the earlier program, upgraded, then grown into the fleet. */
const project = new PulumiProject(toolsDir, PASSPHRASE, programAt(SINGLE_HOST_PROGRAM_COMMIT));

afterAll(() => {
    console.log(`fleet layer wall times (s): ${JSON.stringify(timings)}`);
});

function set(project: PulumiProject, key: string, value: string, ...flags: string[]): void {
    project.ok(["config", "set", ...flags, key, value]);
}

function commonSettings(project: PulumiProject): void {
    set(project, "hostMode", "existing");
    set(project, "dockerAptRepo", labAptSettings().dockerAptRepo);
    set(project, "buildkitImage", requiredEnv("HOSTLAB_BUILDKIT_IMAGE_REF"));
    set(project, "team[0]", teamEntry(amd64Host, "alice"), "--path");
}

/** One BuildKit build history record: its ref, the platform it built, its cached and total steps. */
interface HistoryRecord {
    readonly ref: string;
    readonly platform: string;
    readonly cachedSteps: number;
    readonly totalSteps: number;
}

/** The build history of the node's own BuildKit, read on that host (from its console: also when its sshd is down). */
function history(lab: LabHost): HistoryRecord[] {
    const format = '{{.Record.Ref}} {{index .Record.FrontendAttrs "platform"}} {{.Record.NumCachedSteps}} {{.Record.NumTotalSteps}}';
    const listed = localOk(`docker exec ${lab.container} docker exec ${buildkitContainerName(DEFAULTS.builderName)} ` +
        `buildctl debug histories --format '${format}'`);
    return listed.split("\n").filter(Boolean).map(line => {
        const [ref, platform, cached, total] = line.split(" ");
        return { ref, platform, cachedSteps: Number(cached), totalSteps: Number(total) };
    });
}

/** The records each node's BuildKit gained while `action` ran, by node. */
function newHistory(action: () => void): Record<string, HistoryRecord[]> {
    const before = NODES.map(([, lab]) => new Set(history(lab).map(record => record.ref)));
    action();
    return Object.fromEntries(NODES.map(([name, lab], index) => [name, history(lab).filter(record => !before[index].has(record.ref))]));
}

const platformsBuilt = (records: Record<string, HistoryRecord[]>) =>
    Object.fromEntries(Object.entries(records).map(([node, list]) => [node, list.map(record => record.platform)]));
/** As platformsBuilt, each node's one by one in order of name: a node given two platforms builds them in one record ("a,b"). */
const sortedPlatformsBuilt = (records: Record<string, HistoryRecord[]>) =>
    Object.fromEntries(Object.entries(platformsBuilt(records)).map(([node, platforms]) => [node, platforms.flatMap(p => p.split(",")).sort()]));

describe("a single-host stack made with the program before fleets", () => {
    test("is upgraded without replacing anything; its member leaves the docker group for the member door", async () => {
        project.ok(["stack", "init", "single"]);
        commonSettings(project);
        set(project, "existingHostAddress", amd64Host.host);
        set(project, "existingHostPort", String(amd64Host.port));
        set(project, "existingHostUser", amd64Host.user);
        set(project, "existingHostPublicKey", amd64Host.hostPublicKey);
        project.ok(["config", "set", "--secret", "existingHostPrivateKey"], readFileSync(amd64Host.key, "utf8"));
        timings.singleHostUp = (await project.engineOk("up", { timeoutSeconds: 1200 })).seconds;
        expect(sudoOk(amd64Host, "id -nG alice").trim().split(/\s+/)).toContain("docker");

        project.useProgram(ROOT);
        // The stand-in repository's own key: the earlier program had no such setting to pin it with.
        set(project, "dockerAptKeyFingerprint", labAptSettings().dockerAptKeyFingerprint);
        const preview = await project.engineOk("preview", { timeoutSeconds: 600 });
        const ops = (op: string) => preview.steps.filter(step => step.op === op).map(step => step.urn.split("::").pop());
        expect(preview.steps.filter(step => !["same", "create", "update"].includes(step.op))).toEqual([]);
        // Created: the fleet component, and the new metadata-guard step; every other step runs in place.
        expect(ops("create")).toEqual(["buildx-host", "buildx-host-metadata-guard", "buildx-host-metadata-guard-run"]);
        expect(preview.steps.find(step => step.op === "create")!.urn).toMatch(/::buildx-host:index:BuildFleet::buildx-host$/);
        expect(ops("update").length).toBeGreaterThan(0);
        expect(ops("update").every(name => /^buildx-host-(host-key-probe|[a-z-]+-run)$/.test(name!))).toBe(true);

        const before = runLog(amd64Host).length;
        const run = await project.engineOk("up", { timeoutSeconds: 900 });
        timings.upgradeUp = run.seconds;
        const ran = runLog(amd64Host).slice(before);
        expect(ran.map(line => line.step)).toEqual(EVERY_HOST_STEPS);
        expect(ran.find(line => line.step === "team-access")!.report).toMatchObject({ updated: ["alice"], door: "open" });
        expect(sudoOk(amd64Host, "id -nG alice").trim().split(/\s+/)).toEqual(["alice", "buildx-members"]);
        expect(run.changes.create).toBe(3);
        expect(Object.keys(run.changes).filter(op => !["create", "update", "same"].includes(op))).toEqual([]);
        const attach = JSON.parse(project.output("teamBuildxCreateCommands", "--json")) as Record<string, string>;
        const upgraded = new LabClient(amd64Host, runner.clientImage, requiredEnv("HOSTLAB_BUSYBOX_DIR"), project.output("knownHostsLine"));
        expect(upgraded.build("alice", memberKey(amd64Host, "alice"), "upgraded-member", [attach.alice]).arches)
            .toEqual({ linux_amd64: "x86_64", linux_arm64: "aarch64" });
        // Every step, by its old name, now sits under the fleet component: moved, not replaced.
        const state = JSON.parse(project.ok(["stack", "export"]).stdout) as { deployment: { resources: { urn: string }[] } };
        const steps = state.deployment.resources.map(r => r.urn).filter(urn => urn.includes("command:remote:Command::"));
        expect(steps.map(urn => urn.split("::").pop())).toEqual(expect.arrayContaining(EVERY_HOST_STEPS.map(step => `buildx-host-${step}-run`)));
        for (const urn of steps) {
            expect(urn).toContain("buildx-host:index:BuildFleet$buildx-host:index:BuildHost$");
        }
        // A second `up` after the upgrade is a no-op.
        expect(Object.keys((await project.engineOk("up", { expectNoChanges: true, timeoutSeconds: 600 })).changes)).toEqual(["same"]);
    });
});

/** The names of the resources the engine reached with `op`, in `run`. */
const namesWith = (run: EngineRun, ...ops: string[]) => run.steps.filter(step => ops.includes(step.op)).map(step => step.urn.split("::").pop()!);

describe("that stack grown into a fleet of two lab hosts, its host first", () => {
    let client: LabClient;
    const alice = memberKey(amd64Host, "alice");

    beforeAll(() => {
        // As the README tells: the single host's settings move to nodes[0], the arm64 host is nodes[1].
        project.ok(["config", "rm-all", ...Object.values(SINGLE_HOST_KEYS)]);
        NODES.forEach(([name, lab], index) => {
            const node = `nodes[${index}]`;
            set(project, `${node}.name`, name, "--path");
            set(project, `${node}.address`, lab.host, "--path");
            set(project, `${node}.port`, String(lab.port), "--path");
            set(project, `${node}.user`, lab.user, "--path");
            set(project, `${node}.architecture`, name, "--path");
            set(project, `${node}.hostPublicKey`, lab.hostPublicKey, "--path");
            project.ok(["config", "set", "--secret", "--path", `${node}.privateKey`], readFileSync(lab.key, "utf8"));
        });
    });

    test("`pulumi preview` keeps every resource of the host as the amd64 node's, and creates the same set for the arm64 node only", async () => {
        const preview = await project.engineOk("preview", { timeoutSeconds: 600 });
        expect(preview.steps.filter(step => !["same", "create", "update"].includes(step.op))).toEqual([]);
        const kept = namesWith(preview, "same", "update").filter(name => name.startsWith("buildx-host-amd64"));
        // The node, its host key check and probe, and each step with its command.
        expect(kept.length).toBe(3 + 2 * EVERY_HOST_STEPS.length);
        expect(namesWith(preview, "create").sort()).toEqual(kept.map(name => name.replace("buildx-host-amd64", "buildx-host-arm64")).sort());
        // The amd64 node no longer serves linux/arm64: its QEMU step re-runs for the rest, and so do the two steps after it.
        expect(namesWith(preview, "update")).toEqual(["qemu-binfmt", "buildx-builder", "team-access"].map(step => `buildx-host-amd64-${step}-run`));
    });

    test("`pulumi up` provisions the arm64 node alongside the amd64 node's three re-runs; every resource of the host stays, under the node's name", async () => {
        const before = runLog(amd64Host).length;
        const run = await project.engineOk("up", { timeoutSeconds: 1200 });
        timings.growUp = run.seconds;
        expect(run.warnings).toEqual([]);
        expect(Object.keys(run.changes).filter(op => !["create", "update", "same"].includes(op))).toEqual([]);
        expect(run.changes.update).toBe(3);
        const [amd64Steps, arm64Steps] = [runLog(amd64Host).slice(before), runLog(arm64Host)];
        expect(amd64Steps.map(line => line.step)).toEqual(["qemu-binfmt", "buildx-builder", "team-access"]);
        // The builder stays (and with it, its cache); alice keeps her account.
        expect(amd64Steps[1].report).toMatchObject({ action: "unchanged" });
        expect(amd64Steps[2].report).toMatchObject({ added: [], removed: [], door: "open" });
        expect(arm64Steps.map(line => line.step)).toEqual(EVERY_HOST_STEPS);
        // Each node finished its first step before the other finished its last: the two ran side by side.
        expect(amd64Steps[0].time <= arm64Steps[arm64Steps.length - 1].time).toBe(true);
        expect(arm64Steps[0].time <= amd64Steps[amd64Steps.length - 1].time).toBe(true);
        const state = JSON.parse(project.ok(["stack", "export"]).stdout) as { deployment: { resources: { urn: string }[] } };
        const steps = state.deployment.resources.map(r => r.urn.split("::").pop()!).filter(name => name.endsWith("-run"));
        expect(steps.sort()).toEqual(NODES.flatMap(([node]) => EVERY_HOST_STEPS.map(step => `buildx-host-${node}-${step}-run`)).sort());
    });

    test("the outputs route each platform to one node: arm64 to the arm64 node, the rest to the amd64 node", () => {
        const platformNodes = JSON.parse(project.ok(["stack", "output", "platformNodes", "--json"]).stdout) as Record<string, string>;
        expect(platformNodes).toEqual(Object.fromEntries(DEFAULTS.platforms.map(p => [p, p === "linux/arm64" ? "arm64" : "amd64"])));
        const nodes = JSON.parse(project.ok(["stack", "output", "nodes", "--json"]).stdout) as Record<string, Record<string, unknown>>;
        expect(nodes.arm64).toMatchObject({
            sshEndpoint: `ssh://${arm64Host.user}@${arm64Host.host}:${arm64Host.port}`,
            platforms: ["linux/arm64"],
            // The lab's "arm64" node is this machine's CPU, and says so.
            hostArchitecture: "amd64",
        });
        expect(project.output("knownHostsLines").split("\n")).toEqual(NODES.map(([, lab]) => `[${lab.host}]:${lab.port} ${lab.hostPublicKey}`));
    });

    test("a client attached with the outputs builds linux/amd64 on the amd64 node and linux/arm64 on the arm64 node, nowhere else", () => {
        client = new LabClient(amd64Host, runner.clientImage, requiredEnv("HOSTLAB_BUSYBOX_DIR"), project.output("knownHostsLines"));
        const commands = JSON.parse(project.output("teamBuildxCreateCommands", "--json")) as Record<string, string>;
        expect(commands.alice.split("\n")).toEqual(NODES.map(([name, lab], index) => [
            "docker buildx create --name buildx-host-remote", index === 0 ? "--driver remote" : "--append",
            `--node ${name} --platform ${name === "arm64" ? "linux/arm64" : DEFAULTS.platforms.filter(p => p !== "linux/arm64").join(",")}`,
            `ssh://alice@${lab.host}:${lab.port}`, ...index === 0 ? ["--use"] : [],
        ].join(" ")));
        const attach = commands.alice.split("\n");
        let arches: Record<string, string> = {};
        const built = newHistory(() => { arches = client.build("alice", alice, "fleet-first", attach).arches; });
        expect(arches).toEqual({ linux_amd64: "x86_64", linux_arm64: "aarch64" });
        expect(platformsBuilt(built)).toEqual({ amd64: ["linux/amd64"], arm64: ["linux/arm64"] });
        // The amd64 node's cache outlived the growth: the single host's build made both steps of linux/amd64.
        expect(Object.values(built).flat().map(record => [record.platform, record.cachedSteps])).toEqual([["linux/amd64", 2], ["linux/arm64", 0]]);
    });

    test("a second build is all cache hits, each platform again on its own node", () => {
        let output = "";
        const built = newHistory(() => { output = client.build("alice", alice, "fleet-second", []).output; });
        expect(cacheUse(output)).toEqual({ runSteps: 2, allCached: true });
        expect(platformsBuilt(built)).toEqual({ amd64: ["linux/amd64"], arm64: ["linux/arm64"] });
        // On each node, both steps of its platform (COPY and RUN) came from that node's cache.
        for (const record of Object.values(built).flat()) {
            expect([record.platform, record.cachedSteps]).toEqual([record.platform, 2]);
        }
    });

    test("the fleet's GitHub Actions workflow runs through the real setup-buildx and build-push actions and builds on both nodes", () => {
        const workflows = JSON.parse(project.ok(["stack", "output", "teamGithubActionsWorkflows", "--json"]).stdout) as Record<string, string>;
        const out = path.join(amd64Host.stateDir, "fleet-actions-out");
        // No registry here (the engine suite pushes): the build goes to a local directory, without the login, fresh.
        const workflow = adaptSteps(workflows.alice, {
            "docker/login-action": () => undefined,
            "docker/build-push-action": step => ({
                ...step, with: { ...step.with, platforms: CLIENT_BUILD_PLATFORMS, push: false, outputs: "type=local,dest=/out", "no-cache": true },
            }),
        });
        let run: ReturnType<typeof runWorkflowJob> | undefined;
        const built = newHistory(() => {
            run = runWorkflowJob(runner, path.join(amd64Host.stateDir, "fleet-runner"), workflow,
                {
                    secrets: { BUILDX_HOST_SSH_KEY: readFileSync(alice, "utf8"), GITHUB_TOKEN: "lab-job-token" },
                    github: { actor: "alice", repository: "lab/app", sha: "0".repeat(40) },
                },
                client.buildContext(), [`${out}:/out`]);
        });
        for (const step of [...run!.steps, ...run!.posts]) {
            expect([step.name, step.outcome, step.outcome === "failure" ? tail(step.result!.stdout + step.result!.stderr, 60) : ""])
                .toEqual([step.name, "success", ""]);
        }
        const attach = run!.steps.find(step => step.name === "Attach buildx to the shared fleet")!;
        expect(attach.outputs.driver).toBe("remote");
        expect(attach.outputs.platforms.split(",")).toEqual(expect.arrayContaining(["linux/amd64", "linux/arm64"]));
        for (const [platform, arch] of [["linux_amd64", "x86_64"], ["linux_arm64", "aarch64"]]) {
            expect(readFileSync(path.join(out, platform, "arch"), "utf8").trim()).toBe(arch);
        }
        expect(platformsBuilt(built)).toEqual({ amd64: ["linux/amd64"], arm64: ["linux/arm64"] });
    });

    test("with the arm64 node down, the build fails and nothing is built elsewhere; `docker buildx ls` shows the node inactive", () => {
        localOk(`docker exec ${arm64Host.container} systemctl stop ssh.service`);
        try {
            let failure = "";
            const built = newHistory(() => {
                const started = Date.now();
                try {
                    client.build("alice", alice, "fleet-node-down", []);
                } catch (error) {
                    failure = (error as Error).message;
                }
                timings.nodeDownBuild = (Date.now() - started) / 1000;
            });
            expect(failure).toMatch(/client build \(fleet-node-down, as alice\) failed/);
            expect(failure).toContain("context deadline exceeded");
            // buildx did not hand linux/arm64 to the amd64 node, which could have emulated it.
            expect(platformsBuilt(built)).toEqual({ amd64: [], arm64: [] });
            const listed = client.run("alice", "docker buildx ls");
            // buildx draws each node under its builder: " \_ arm64   \_ ssh://alice@…:2223   inactive".
            expect(listed.stdout).toMatch(new RegExp(`^ \\\\_ arm64 +\\\\_ ssh://alice@${arm64Host.host}:${arm64Host.port} +inactive`, "m"));
        } finally {
            localOk(`docker exec ${arm64Host.container} systemctl start ssh.service`);
        }
    });

    /** Runs `script` (saved as the hand-over saves it) as alice in her client home, timed inside the container. */
    function runAttachScript(script: string): { status: number; seconds: number; output: string } {
        const result = client.run("alice", [
            "cat > /root/attach.sh <<'BUILDX_HOST_ATTACH'", script.trimEnd(), "BUILDX_HOST_ATTACH",
            "start=$(date +%s%N)", "sh /root/attach.sh 2>&1; status=$?", 'echo "attach: ${status} $(( $(date +%s%N) - start ))"',
        ].join("\n"));
        const [, status, nanoseconds] = /attach: (\d+) (\d+)\n?$/.exec(result.stdout) ?? [];
        expect([result.status, status === undefined ? result.stdout + result.stderr : "timed"]).toEqual([0, "timed"]);
        return { status: Number(status), seconds: Number(nanoseconds) / 1e9, output: result.stdout };
    }

    /** The plain attach (teamBuildxCreateCommands, no check) run and timed the same way. */
    function runPlainAttach(commands: string): number {
        return runAttachScript(["docker buildx rm buildx-host-remote >/dev/null 2>&1 || true", commands].join("\n")).seconds;
    }

    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
    const attachScript = () => (JSON.parse(project.output("teamAttachScripts", "--json")) as Record<string, string>).alice;
    const arm64Ssh = (action: "stop" | "start") => localOk(`docker exec ${arm64Host.container} systemctl ${action} ssh.service`);

    test("the attach script, every node up, costs a fraction of a second over the plain attach, and routes each platform to its node", () => {
        const plain = (JSON.parse(project.output("teamBuildxCreateCommands", "--json")) as Record<string, string>).alice;
        const script = attachScript();
        const plainSeconds: number[] = [];
        const scriptSeconds: number[] = [];
        for (let round = 0; round < 3; round++) {
            plainSeconds.push(runPlainAttach(plain));
            const run = runAttachScript(script);
            expect([run.status, run.output]).toEqual([0, expect.stringContaining("buildx-host: buildx-host-remote attached\n")]);
            scriptSeconds.push(run.seconds);
        }
        timings.plainAttach = median(plainSeconds);
        timings.scriptAttachAllUp = median(scriptSeconds);
        console.log(`attach, every node up (s, 3 rounds): plain ${plainSeconds.map(t => t.toFixed(2))}, script ${scriptSeconds.map(t => t.toFixed(2))}`);
        expect(timings.scriptAttachAllUp - timings.plainAttach).toBeLessThan(3);
        const built = newHistory(() => { expect(client.build("alice", alice, "attach-all-up", []).arches).toEqual({ linux_amd64: "x86_64", linux_arm64: "aarch64" }); });
        expect(platformsBuilt(built)).toEqual({ amd64: ["linux/amd64"], arm64: ["linux/arm64"] });
    });

    test("fail (the default): the script names the down node and its platforms and exits 1 at once; the other platforms build as usual", () => {
        arm64Ssh("stop");
        try {
            const run = runAttachScript(attachScript());
            timings.scriptAttachNodeDown = run.seconds;
            expect(run.status).toBe(1);
            expect(run.output).toContain(`buildx-host: error: node arm64 (ssh://alice@${arm64Host.host}:${arm64Host.port}) did not answer: ` +
                `ssh: connect to host ${arm64Host.host} port ${arm64Host.port}: Connection refused; linux/arm64 cannot be built there`);
            expect(run.output).toContain("buildx-host-remote keeps every node, so buildx sends linux/arm64 nowhere else");
            expect(run.seconds).toBeLessThan(2);
            const started = Date.now();
            const built = newHistory(() => {
                const result = client.buildDockerfile("alice", "attach-node-down-amd64", "FROM scratch\nCOPY busybox /bin/busybox\n");
                expect([result.status, tail(result.stdout + result.stderr, 20)]).toEqual([0, expect.any(String)]);
            });
            timings.liveNodeBuildNodeDown = (Date.now() - started) / 1000;
            expect(platformsBuilt(built)).toEqual({ amd64: ["linux/amd64"], arm64: [] });
        } finally {
            arm64Ssh("start");
        }
    });

    test("why fail keeps the node: a builder without it, buildx sends linux/arm64 to the amd64 node without a word", () => {
        const [firstNode] = (JSON.parse(project.output("teamBuildxCreateCommands", "--json")) as Record<string, string>).alice.split("\n");
        runPlainAttach(firstNode);
        const built = newHistory(() => { client.build("alice", alice, "attach-dropped-node", []); });
        expect(sortedPlatformsBuilt(built)).toEqual({ amd64: ["linux/amd64", "linux/arm64"], arm64: [] });
    });

    test("fleetFallback emulate: `up` changes only the outputs; with the arm64 node down, its platform goes to the amd64 node, with a warning", async () => {
        set(project, "fleetFallback", "emulate");
        const before = NODES.map(([, lab]) => runLog(lab).length);
        const run = await project.engineOk("up", { timeoutSeconds: 600 });
        timings.fallbackUp = run.seconds;
        // Only the outputs change: no resource is created, replaced or deleted, and no step runs on a node.
        expect(Object.keys(run.changes).filter(op => !["same", "update"].includes(op))).toEqual([]);
        expect(NODES.map(([, lab]) => runLog(lab).length)).toEqual(before);
        const script = attachScript();
        expect(script).toContain("\nfallback=emulate\n");
        arm64Ssh("stop");
        try {
            const attach = runAttachScript(script);
            timings.scriptAttachFallback = attach.seconds;
            expect(attach.status).toBe(0);
            expect(attach.output).toContain("buildx-host: warning: node arm64");
            expect(attach.output).toContain("buildx-host: warning: linux/arm64 goes to node amd64, emulated (slower), until every node answers");
            const started = Date.now();
            let arches: Record<string, string> = {};
            const built = newHistory(() => { arches = client.build("alice", alice, "attach-fallback", []).arches; });
            timings.fallbackBuild = (Date.now() - started) / 1000;
            expect(arches).toEqual({ linux_amd64: "x86_64", linux_arm64: "aarch64" });
            expect(sortedPlatformsBuilt(built)).toEqual({ amd64: ["linux/amd64", "linux/arm64"], arm64: [] });
        } finally {
            arm64Ssh("start");
        }
    });

    test("emulate, a node whose sshd hangs: left out after the script's 5 s bound, not buildx's 20 s", () => {
        // A paused host: the kernel still accepts the connection, nothing answers it.
        localOk(`docker pause ${arm64Host.container}`);
        try {
            const run = runAttachScript(attachScript());
            timings.scriptAttachNodeHung = run.seconds;
            expect(run.status).toBe(0);
            expect(run.output).toContain(`node arm64 (ssh://alice@${arm64Host.host}:${arm64Host.port}) did not answer: `);
            expect(run.seconds).toBeGreaterThanOrEqual(NODE_CHECK_SECONDS);
            expect(run.seconds).toBeLessThan(NODE_CHECK_SECONDS + 3);
        } finally {
            localOk(`docker unpause ${arm64Host.container}`);
        }
    });

    test("the node back, the next attach restores native routing", () => {
        const run = runAttachScript(attachScript());
        expect([run.status, run.output.split("\n")[0]]).toEqual([0, "buildx-host: buildx-host-remote attached"]);
        const built = newHistory(() => { client.build("alice", alice, "attach-node-back", []); });
        expect(platformsBuilt(built)).toEqual({ amd64: ["linux/amd64"], arm64: ["linux/arm64"] });
    });

    test("the workflow with the arm64 node down: its check step warns and hands the amd64 node both platforms to the real setup-buildx-action", () => {
        arm64Ssh("stop");
        try {
            const workflows = JSON.parse(project.ok(["stack", "output", "teamGithubActionsWorkflows", "--json"]).stdout) as Record<string, string>;
            const workflow = adaptSteps(workflows.alice, {
                "docker/login-action": () => undefined,
                "docker/build-push-action": step => ({ ...step, with: { ...step.with, platforms: CLIENT_BUILD_PLATFORMS, push: false, outputs: "type=cacheonly" } }),
            });
            let run: ReturnType<typeof runWorkflowJob> | undefined;
            const built = newHistory(() => {
                run = runWorkflowJob(runner, path.join(amd64Host.stateDir, "fleet-runner-fallback"), workflow,
                    {
                        secrets: { BUILDX_HOST_SSH_KEY: readFileSync(alice, "utf8"), GITHUB_TOKEN: "lab-job-token" },
                        github: { actor: "alice", repository: "lab/app", sha: "0".repeat(40) },
                    },
                    client.buildContext());
            });
            for (const step of [...run!.steps, ...run!.posts]) {
                expect([step.name, step.outcome, step.outcome === "failure" ? tail(step.result!.stdout + step.result!.stderr, 60) : ""])
                    .toEqual([step.name, "success", ""]);
            }
            const check = run!.steps.find(step => step.name === "Check the fleet's nodes")!;
            expect(check.result!.stdout).toContain("::warning::linux/arm64 goes to node amd64, emulated (slower)");
            expect(check.outputs).toEqual({ endpoint: `ssh://alice@${amd64Host.host}:${amd64Host.port}`, platforms: expect.stringMatching(/,linux\/arm64$/), append: "" });
            expect(sortedPlatformsBuilt(built)).toEqual({ amd64: ["linux/amd64", "linux/arm64"], arm64: [] });
        } finally {
            arm64Ssh("start");
        }
    });

    test("no node's private key appears in clear in any CLI output or in `pulumi stack export`", () => {
        project.ok(["stack", "export"]);
        project.ok(["stack", "output", "--json"]);
        project.ok(["config", "--json"]);
        // Each key's body less its first line, which every unencrypted ed25519 key shares.
        const keyLines = [amd64Host.key, arm64Host.key, alice].flatMap(key =>
            readFileSync(key, "utf8").split("\n").filter(line => line && !line.startsWith("-----")).slice(1));
        expect(keyLines.length).toBeGreaterThan(6);
        expect(project.transcript.filter(run => keyLines.some(line => (run.stdout + run.stderr).includes(line)))
            .map(run => run.command)).toEqual([]);
    });

    test("a second `up` changes nothing, and `destroy` removes both builders", async () => {
        expect(Object.keys((await project.engineOk("up", { expectNoChanges: true, timeoutSeconds: 600 })).changes)).toEqual(["same"]);
        timings.fleetDestroy = (await project.engineOk("destroy", { timeoutSeconds: 600 })).seconds;
        for (const [, lab] of NODES) {
            expect(ssh(lab, `docker inspect ${buildkitContainerName(DEFAULTS.builderName)} </dev/null`).status).not.toBe(0);
        }
    });
});
