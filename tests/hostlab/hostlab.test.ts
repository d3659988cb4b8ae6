/**
 * Host lab: a host provisioned by the program's scripts really becomes a working multi-arch builder.
 *
 * The host is a Debian 13 container with systemd as PID 1, reached over real SSH with a pinned host
 * key (tests/hostlab/infra/start-host.sh). The steps, their order and their parameters come from
 * components/steps.ts and components/config/, exactly as `pulumi up` runs them; the only setting
 * changed is dockerAptRepo, which points at a local signed apt repository that STANDS IN FOR
 * DOCKER'S (download.docker.com is unreachable here; see infra/build-apt-repo.sh). The BuildKit image
 * is built from Go modules and loaded into the host's engine in place of a registry pull.
 *
 * The tests run in order and share one host: each builds on the state the previous ones left.
 * Run through tests/hostlab/run.sh, which prepares the lab and sets the HOSTLAB_* environment.
 */
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from "fs";
import * as path from "path";

import { buildkitContainerName, buildxCreateCommand, dockerContextCommand, EndpointParts, knownHostsLine } from "../../components/endpoint";
import { emulatorOf } from "../../components/host-facts";
import { shellQuote } from "../../components/shell";
import { HostStepDefinition, hostStepDefinitions, StepReport } from "../../components/steps";
import {
    binfmtFlags, expectStepOk, labConfig, local, localOk, logDirectory, memberKey, readLabHost, requiredEnv, runStep, ssh, sshArgs, StepRun, sudoOk, tail,
    teamEntry,
} from "./lab";
import { cacheUse, LabClient, waitFor } from "./client";

const lab = readLabHost(requiredEnv("HOSTLAB_ENV_FILE"));
const dockerAptRepo = requiredEnv("HOSTLAB_DOCKER_APT_REPO");
const busyboxDir = requiredEnv("HOSTLAB_BUSYBOX_DIR");
const clientImage = requiredEnv("HOSTLAB_CLIENT_IMAGE");
const buildkitImageTar = requiredEnv("HOSTLAB_BUILDKIT_IMAGE_TAR");
const daemonJsonSeed = JSON.parse(readFileSync(lab.daemonJsonSeed, "utf8")) as Record<string, unknown>;

/** The second team member, who attaches to the same BuildKit with an account of their own. */
const MEMBER = "alice";
const aliceKey = memberKey(lab, MEMBER);

const config = labConfig(lab, {
    team: JSON.stringify([teamEntry(lab, MEMBER)]),
    dockerAptRepo,
});
const steps = hostStepDefinitions(config, lab.user);
const endpoint: EndpointParts = {
    host: lab.host, port: lab.port, user: lab.user, hostPublicKey: lab.hostPublicKey, builderName: config.builderName,
};
/** The lab host runs on this machine's CPU; every other configured platform needs an emulator. */
const NATIVE_PLATFORM = process.arch === "arm64" ? "linux/arm64" : "linux/amd64";
const emulators = [...new Set(config.platforms.filter(p => p !== NATIVE_PLATFORM).map(p => `qemu-${emulatorOf(p)}`))];
const BINFMT = "/proc/sys/fs/binfmt_misc";
const FOREIGN_IMAGE = "buildx-host-lab/busybox-arm64:lab";

const client = new LabClient(lab, clientImage, busyboxDir, knownHostsLine(endpoint));
/** A new client attaches with the commands the program outputs, as printed. */
const attachCommands = (user: string) => [dockerContextCommand(endpoint, user), buildxCreateCommand(endpoint)];

const runs: StepRun[] = [];
const firstReports = new Map<string, StepReport>();

function step(name: string): HostStepDefinition {
    const found = steps.find(s => s.name === name);
    if (!found) {
        throw new Error(`components/steps.ts has no step ${name}`);
    }
    return found;
}

function record(run: StepRun): StepRun {
    runs.push(run);
    return run;
}

function requireFirstRun(): void {
    if (firstReports.size !== steps.length) {
        throw new Error(`the first run of the steps did not complete (${[...firstReports.keys()].join(", ") || "none"} done)`);
    }
}

/** When systemd last started a unit on the host (changes when it restarts). */
function unitStartedAt(unit: string): string {
    return sudoOk(lab, `systemctl show -p ActiveEnterTimestampMonotonic --value ${unit}`).trim();
}

function containerStartedAt(name: string): string {
    return sudoOk(lab, `docker inspect -f '{{.State.StartedAt}}' ${name} </dev/null`).trim();
}

/** Stand-in for the registry pull the builder step would do: no registry is reachable in the lab. */
function loadBuildkitImage(): void {
    const result = local(`ssh ${sshArgs(lab, lab.user, lab.key).map(shellQuote).join(" ")} 'sudo -n docker load' < '${buildkitImageTar}'`);
    if (result.status !== 0) {
        throw new Error(`loading ${buildkitImageTar} into the host's engine failed:\n${tail(result.stdout + result.stderr)}`);
    }
}

/** Runs a foreign (arm64) static busybox in a container on the host, with no QEMU inside the container. */
function runForeignBinary(): { status: number | null; output: string } {
    const result = ssh(lab, `docker run --rm --network none --platform linux/arm64 ${FOREIGN_IMAGE} /bin/busybox uname -m </dev/null`);
    return { status: result.status, output: (result.stdout + result.stderr).trim() };
}

function binfmtEntries(): Record<string, string> {
    const listing = sudoOk(lab, `for f in ${BINFMT}/qemu-*; do [ -e "$f" ] || continue; echo "== \${f##*/}"; cat "$f"; done`);
    const entries: Record<string, string> = {};
    for (const block of listing.split(/^== /m).filter(b => b.trim())) {
        const [name, ...rest] = block.split("\n");
        entries[name.trim()] = rest.join("\n");
    }
    return entries;
}

afterAll(() => {
    const lines = ["host lab step times (seconds):", "  step                first   second  other runs"];
    for (const s of steps) {
        const mine = runs.filter(r => r.step === s.name);
        const cell = (label: string) => {
            const run = mine.find(r => r.label === label);
            return run ? `${run.seconds.toFixed(1)}${run.report ? (run.report.changed ? "*" : "") : "!"}` : "-";
        };
        const others = mine.filter(r => r.label !== "first" && r.label !== "second")
            .map(r => `${r.label} ${r.seconds.toFixed(1)}`).join(", ");
        lines.push(`  ${s.name.padEnd(19)} ${cell("first").padStart(6)}  ${cell("second").padStart(6)}  ${others}`);
    }
    lines.push("  (* reported changed:true, ! failed)");
    writeFileSync(path.join(logDirectory(lab), "summary.txt"), lines.join("\n") + "\n");
    console.log(lines.join("\n"));
});

describe("a host provisioned by the program's steps", () => {
    test("first run: every step succeeds in the program's order, over real SSH", () => {
        for (const s of steps) {
            if (s.name === "buildx-builder") {
                loadBuildkitImage();
            }
            const run = record(runStep(lab, s, "first"));
            firstReports.set(s.name, expectStepOk(run));
        }
        expect([...firstReports.keys()]).toEqual(steps.map(s => s.name));
    });

    test("docker-ce comes from the configured repo (the local stand-in for Docker's), keyring and deb822 source in place", () => {
        requireFirstRun();
        for (const pkg of ["docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin"]) {
            const policy = ssh(lab, `apt-cache policy ${pkg}`).stdout;
            const lines = policy.split("\n");
            const installed = lines.findIndex(l => l.trimStart().startsWith("*** "));
            expect({ pkg, installedFrom: installed >= 0 ? lines[installed + 1]?.trim() : policy })
                .toEqual({ pkg, installedFrom: `500 ${dockerAptRepo}/debian trixie/stable amd64 Packages` });
        }
        expect(firstReports.get("docker-engine")).toMatchObject({ repo: `${dockerAptRepo}/debian` });
        const servedKey = localOk(`curl -fsS ${dockerAptRepo}/debian/gpg`);
        expect(sudoOk(lab, "stat -c %a /etc/apt/keyrings/docker.asc && cat /etc/apt/keyrings/docker.asc"))
            .toBe(`644\n${servedKey}`);
        const source = sudoOk(lab, "cat /etc/apt/sources.list.d/docker.sources");
        for (const line of ["Types: deb", `URIs: ${dockerAptRepo}/debian`, "Suites: trixie", "Components: stable",
            "Architectures: amd64", "Signed-By: /etc/apt/keyrings/docker.asc"]) {
            expect(source.split("\n")).toContain(line);
        }
        expect(ssh(lab, "dpkg-query -W -f '${db:Status-Abbrev}' docker.io 2>/dev/null").stdout.trim()).not.toBe("ii");
    });

    test("experimental mode is on and every key pre-seeded in daemon.json is kept", () => {
        requireFirstRun();
        expect(ssh(lab, "docker version -f '{{.Server.Experimental}}'").stdout.trim()).toBe("true");
        const daemon = JSON.parse(sudoOk(lab, "cat /etc/docker/daemon.json")) as Record<string, unknown>;
        expect(daemon).toEqual({ ...daemonJsonSeed, experimental: true });
    });

    test("an invalid daemon.json makes the experimental step fail clearly and stays byte-identical", () => {
        requireFirstRun();
        const original = sudoOk(lab, "base64 -w0 /etc/docker/daemon.json");
        const dockerStarted = unitStartedAt("docker");
        try {
            sudoOk(lab, "cat > /etc/docker/daemon.json", '{"bridge": "none", "iptables": false,\n');
            const before = sudoOk(lab, "sha256sum /etc/docker/daemon.json");
            const run = record(runStep(lab, step("experimental-mode"), "invalid-json"));
            expect(run.status).not.toBe(0);
            expect(run.stderr + run.stdout).toMatch(/\/etc\/docker\/daemon\.json is not valid JSON/);
            expect(sudoOk(lab, "sha256sum /etc/docker/daemon.json")).toBe(before);
            expect(unitStartedAt("docker")).toBe(dockerStarted);
        } finally {
            sudoOk(lab, "base64 -d > /etc/docker/daemon.json", original);
        }
    });

    test("QEMU: an emulator registered without F fails in containers; the step re-registers it with F", () => {
        requireFirstRun();
        const binDir = path.join(lab.stateDir, "foreign-rootfs");
        mkdirSync(path.join(binDir, "bin"), { recursive: true });
        copyFileSync(path.join(busyboxDir, "busybox-arm64"), path.join(binDir, "bin", "busybox"));
        chmodSync(path.join(binDir, "bin", "busybox"), 0o755);
        localOk(`tar -C '${binDir}' -c bin | ssh ${sshArgs(lab, lab.user, lab.key).map(shellQuote).join(" ")} ` +
            `'sudo -n docker import --platform linux/arm64 - ${FOREIGN_IMAGE}'`);

        // The seed's bug: an emulator package whose registration lacks F (Debian 13's has POF, so
        // the lab rewrites its qemu-aarch64.conf without F and applies it, the way boot would). The
        // interpreter is then looked up inside each container, where it does not exist. The step must
        // fix the live entry and persist the fix so that it survives a reboot (tested below).
        sudoOk(lab, [
            "conf=/usr/lib/binfmt.d/qemu-aarch64.conf",
            "line=$(grep -v '^#' $conf | grep :)",
            "rm -f $conf",
            "printf '%s\\n' \"${line%:*}:P\" > $conf",
            "/usr/lib/systemd/systemd-binfmt $conf",
        ].join("\n"));
        expect(binfmtFlags(binfmtEntries()["qemu-aarch64"])).toBe("P");
        const broken = runForeignBinary();
        expect(broken.status).not.toBe(0);
        expect(broken.output).toMatch(/no such file or directory/);

        const report = expectStepOk(record(runStep(lab, step("qemu-binfmt"), "fix-F")));
        expect(report.changed).toBe(true);
        const entries = binfmtEntries();
        for (const name of emulators) {
            expect({ name, registered: name in entries }).toEqual({ name, registered: true });
        }
        for (const [name, entry] of Object.entries(entries)) {
            expect({ name, flags: binfmtFlags(entry) }).toEqual({ name, flags: expect.stringContaining("F") });
        }
        expect(runForeignBinary()).toEqual({ status: 0, output: "aarch64" });
    });

    test("the builder exists, runs the pinned BuildKit and offers linux/arm64", () => {
        requireFirstRun();
        const report = firstReports.get("buildx-builder")!;
        expect(report.platforms).toEqual(expect.arrayContaining(["linux/amd64", "linux/arm64"]));
        expect(String(report.buildkitVersion)).toContain(config.buildkitImage.split(":")[1]);
        // The lab's daemon has no bridge (no 172.x here), so the step falls back to the host network.
        expect(report.network).toBe("host");
        const inspect = ssh(lab, `docker buildx inspect ${config.builderName}`).stdout;
        expect(inspect).toMatch(/^Driver:\s+docker-container$/m);
        expect(inspect).toMatch(/^Status:\s+running$/m);
        expect(/^Platforms:\s+(.*)$/m.exec(inspect)?.[1].split(/,\s*/)).toEqual(expect.arrayContaining(["linux/arm64"]));
    });

    test("through the SSH endpoint, a client builds linux/amd64 and linux/arm64 and each variant reports its arch", () => {
        requireFirstRun();
        const build = client.build(lab.user, lab.key, "login-user", attachCommands(lab.user));
        expect(build.arches).toEqual({ linux_amd64: "x86_64", linux_arm64: "aarch64" });
        // A fresh host has no cache: both RUN steps really ran, the arm64 one under QEMU.
        expect(cacheUse(build.output)).toEqual({ runSteps: 2, allCached: false });
    });

    test("second run: every step reports changed:false and nothing restarts", () => {
        requireFirstRun();
        const node = buildkitContainerName(config.builderName);
        const before = { docker: unitStartedAt("docker"), containerd: unitStartedAt("containerd"), buildkit: containerStartedAt(node) };
        const changed: Record<string, unknown> = {};
        for (const s of steps) {
            changed[s.name] = expectStepOk(record(runStep(lab, s, "second"))).changed;
        }
        expect(changed).toEqual(Object.fromEntries(steps.map(s => [s.name, false])));
        expect({ docker: unitStartedAt("docker"), containerd: unitStartedAt("containerd"), buildkit: containerStartedAt(node) })
            .toEqual(before);
    });

    test("after a reboot with every qemu-* registration gone, systemd restores them with F and the builder answers", () => {
        requireFirstRun();
        sudoOk(lab, `for f in ${BINFMT}/qemu-*; do [ -e "$f" ] && echo -1 > "$f"; done; true`);
        expect(Object.keys(binfmtEntries())).toEqual([]);

        localOk(`docker restart -t 60 ${lab.container}`);
        waitFor("sshd after the reboot", 180, () => ssh(lab, "true", undefined, { timeoutSeconds: 15 }).status === 0);
        ssh(lab, "systemctl is-system-running --wait", undefined, { timeoutSeconds: 300 });

        const entries = binfmtEntries();
        for (const name of emulators) {
            expect({ name, flags: binfmtFlags(entries[name] ?? "") }).toEqual({ name, flags: expect.stringContaining("F") });
        }
        for (const [name, entry] of Object.entries(entries)) {
            expect({ name, flags: binfmtFlags(entry) }).toEqual({ name, flags: expect.stringContaining("F") });
        }
        expect(runForeignBinary()).toEqual({ status: 0, output: "aarch64" });
        const node = buildkitContainerName(config.builderName);
        waitFor(`${node} running again`, 120, () =>
            ssh(lab, `docker inspect -f '{{.State.Running}}' ${node}`).stdout.trim() === "true");
        const inspect = ssh(lab, `docker buildx inspect ${config.builderName}`).stdout;
        expect(inspect).toMatch(/^Status:\s+running$/m);
        expect(inspect).toMatch(/^Platforms:.*linux\/arm64/m);
    });

    test("a second team member attaches with their own account, and identical builds are cache hits", () => {
        requireFirstRun();
        expect(firstReports.get("team-access")).toMatchObject({ added: [MEMBER] });
        expect(ssh(lab, "id -nG", undefined, { user: MEMBER, key: aliceKey }).stdout.split(/\s+/)).toContain("docker");

        const firstBuild = client.build(MEMBER, aliceKey, "member-1", attachCommands(MEMBER));
        expect(firstBuild.arches).toEqual({ linux_amd64: "x86_64", linux_arm64: "aarch64" });
        expect(cacheUse(firstBuild.output)).toEqual({ runSteps: 2, allCached: true });
        const secondBuild = client.build(MEMBER, aliceKey, "member-2", attachCommands(MEMBER));
        expect(secondBuild.arches).toEqual({ linux_amd64: "x86_64", linux_arm64: "aarch64" });
        expect(cacheUse(secondBuild.output)).toEqual({ runSteps: 2, allCached: true });
    });

    test("an exact docker-ce version is installed and held; unpinned, only the holds the step placed are released", () => {
        requireFirstRun();
        const engine = step("docker-engine");
        const version = String((firstReports.get("docker-engine")!.packages as Record<string, string>)["docker-ce"]);
        const holds = () => sudoOk(lab, "apt-mark showhold").split("\n").filter(Boolean).sort();
        sudoOk(lab, "apt-mark hold docker-ce-cli"); // the admin's own hold
        try {
            const pinned = expectStepOk(record(runStep(lab, engine, "pin", { DOCKER_CE_VERSION: version })));
            expect(pinned).toMatchObject({ changed: true, held: true });
            expect(holds()).toEqual(["docker-ce", "docker-ce-cli"]);
            const unpinned = expectStepOk(record(runStep(lab, engine, "unpin")));
            expect(unpinned).toMatchObject({ changed: true });
            expect(holds()).toEqual(["docker-ce-cli"]);
        } finally {
            sudoOk(lab, "apt-mark unhold docker-ce-cli");
        }
    });

    test("a member taken off the team loses access (the step's delete revokes everyone); put back, they return", () => {
        requireFirstRun();
        const team = step("team-access");
        const revoked = expectStepOk(record(runStep(lab, { ...team, environment: team.deleteEnvironment! }, "revoke")));
        expect(revoked).toMatchObject({ changed: true, removed: [MEMBER] });
        const denied = ssh(lab, "true", undefined, { user: MEMBER, key: aliceKey, timeoutSeconds: 30 });
        expect(denied.status).not.toBe(0);
        expect(denied.stderr).toMatch(/Permission denied/);
        expect(sudoOk(lab, `id -nG ${MEMBER}`).split(/\s+/)).not.toContain("docker");

        expect(expectStepOk(record(runStep(lab, team, "re-add")))).toMatchObject({ changed: true });
        expect(ssh(lab, "id -nG", undefined, { user: MEMBER, key: aliceKey }).stdout.split(/\s+/)).toContain("docker");
    });

    test("a changed GC limit recreates the builder with its cache kept; delete removes it", () => {
        requireFirstRun();
        const builder = step("buildx-builder");
        const recreated = expectStepOk(record(runStep(lab, builder, "gc-change", { BUILDKIT_GC_MAX_USED_SPACE: "90GB" })));
        expect(recreated).toMatchObject({ changed: true, action: "recreated" });
        expect(sudoOk(lab, "cat /etc/buildx-host/buildkitd.toml")).toMatch(/maxUsedSpace = "90GB"/);
        expect(cacheUse(client.build(lab.user, lab.key, "after-recreate", attachCommands(lab.user)).output)).toEqual({ runSteps: 2, allCached: true });

        const deleted = expectStepOk(record(runStep(lab, { ...builder, environment: builder.deleteEnvironment! }, "delete")));
        expect(deleted).toMatchObject({ changed: true, action: "deleted" });
        expect(ssh(lab, `docker buildx inspect ${config.builderName}`).status).not.toBe(0);
        expect(ssh(lab, `docker inspect ${buildkitContainerName(config.builderName)}`).status).not.toBe(0);
        expect(expectStepOk(record(runStep(lab, { ...builder, environment: builder.deleteEnvironment! }, "delete-again"))))
            .toMatchObject({ changed: false, action: "absent" });

        expect(expectStepOk(record(runStep(lab, builder, "re-create")))).toMatchObject({ changed: true, action: "created" });
    });
});
