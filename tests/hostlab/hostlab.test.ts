/**
 * Host lab: a host provisioned by the program's scripts really becomes a working multi-arch builder.
 *
 * The host is a Debian 13 container with systemd as PID 1, reached over real SSH with a pinned host
 * key (tests/hostlab/infra/start-host.sh). The steps, their order and their parameters come from
 * components/steps.ts and components/config/, exactly as `pulumi up` runs them; the only settings
 * changed are dockerAptRepo and dockerAptKeyFingerprint, which point at a local signed apt repository
 * that STANDS IN FOR DOCKER'S and pin its key (download.docker.com is unreachable here; see
 * infra/build-apt-repo.sh). The BuildKit image is built from Go modules and loaded into the host's
 * engine in place of a registry pull. The instance metadata service stands in inside network
 * namespaces the lab makes (infra/metadata-standin.sh); no packet goes to a real one.
 *
 * The tests run in order and share one host: each builds on the state the previous ones left.
 * Run through tests/hostlab/run.sh, which prepares the lab and sets the HOSTLAB_* environment.
 */
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from "fs";
import * as path from "path";

import {
    buildkitContainerName, buildxCreateCommand, dockerContextCommand, EndpointParts, knownHostsLine, memberBuildxCreateCommand,
} from "../../components/endpoint";
import { gcLimitBytes } from "../../components/config/buildkit-gc";
import { emulatorOf, STEP_DEFAULTS } from "../../components/host-facts";
import { shellQuote } from "../../components/shell";
import { statusCommand } from "../../components/status";
import { StepReport } from "../../components/step-reports";
import { hostStepDefinitions, StepName } from "../../components/steps";
import {
    binfmtFlags, expectStepOk, labAptSettings, labConfig, loadBuildkitImage, local, localOk, logDirectory, memberKey, readLabHost, reportOf, requiredEnv,
    RunResult, runStep, ssh, sshArgs, StepRun, stepNamed, sudoOk, tail, teamEntry,
} from "./lab";
import { cacheUse, ClientBuildResult, LabClient, waitFor } from "./client";
import { baseStepRuns, buildAtOnce, LoadBuild, loadProject } from "./concurrent-load";
import { idlePowerOffTests } from "./idle-power-off";

const lab = readLabHost(requiredEnv("HOSTLAB_ENV_FILE"));
const { dockerAptRepo, dockerAptKeyFingerprint } = labAptSettings();
const busyboxDir = requiredEnv("HOSTLAB_BUSYBOX_DIR");
const clientImage = requiredEnv("HOSTLAB_CLIENT_IMAGE");
const daemonJsonSeed = JSON.parse(readFileSync(lab.daemonJsonSeed, "utf8")) as Record<string, unknown>;

/** Team members, who reach the same BuildKit through the member door with accounts of their own. */
const MEMBER = "alice";
const SECOND_MEMBER = "bob";
const aliceKey = memberKey(lab, MEMBER);
const bobKey = memberKey(lab, SECOND_MEMBER);
const TEAM = JSON.stringify([teamEntry(lab, MEMBER), teamEntry(lab, SECOND_MEMBER)]);

const config = labConfig(lab, { team: TEAM, dockerAptRepo, dockerAptKeyFingerprint });
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
/** A new client attaches with the commands the program outputs, as printed: the administrator through its docker context, a member at the door. */
const attachCommands = (user: string) => user === lab.user
    ? [dockerContextCommand(endpoint), buildxCreateCommand(endpoint)]
    : [memberBuildxCreateCommand(endpoint, user)];
/** Seconds of the first cached build through each door: the administrator's docker context, a member's ssh:// door. */
const doorTimes: Record<string, number> = {};
/** Seconds from each kind of restart until a member's build succeeds again. */
const restartTimes: Record<string, number> = {};

const runs: StepRun[] = [];
const firstReports = new Map<StepName, StepReport>();

const step = <S extends StepName>(name: S) => stepNamed(steps, name);

function record<S extends StepName>(run: StepRun<S>): StepRun<S> {
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

/** The metadata guard's table as nft prints it without counters (equal across reloads). */
function guardTable(): string {
    return sudoOk(lab, "nft -s list table inet buildx_host_metadata_guard").trim();
}

/**
 * Holds a forwarding open as `user` (`ssh -N` with `forward`) while `probe` runs on this machine,
 * then ends it; returns ssh's stderr and the probe's output.
 */
function tryForward(user: string, key: string, forward: readonly string[], probe: string): { ssh: string; probe: string } {
    const command = ["ssh", "-N", "-o", "ExitOnForwardFailure=yes", ...forward, ...sshArgs(lab, user, key)].map(shellQuote).join(" ");
    const result = local([
        "err=$(mktemp)",
        `${command} 2>"$err" & pid=$!`,
        "sleep 3",
        `probe=$( { ${probe} ; } 2>&1 || true)`,
        "sleep 1",
        "kill $pid 2>/dev/null; wait $pid 2>/dev/null",
        'printf "%s\n==probe==\n%s\n" "$(cat "$err")" "$probe"',
        'rm -f "$err"',
    ].join("\n"), undefined, 60);
    const [sshPart, probePart] = result.stdout.split("\n==probe==\n");
    return { ssh: sshPart, probe: probePart ?? "" };
}

/** A TCP request to 127.0.0.1:port on this machine, printing what came back (bash's /dev/tcp). */
const tcpProbe = (port: number) =>
    `exec 3<>/dev/tcp/127.0.0.1/${port} && printf 'GET /version HTTP/1.0\\r\\nHost: docker\\r\\n\\r\\n' >&3 && timeout 5 cat <&3`;

/** Runs `command` over SSH as a member (their key), with stdin closed; never throws. */
const asMember = (name: string, key: string, command: string, extra: readonly string[] = []): RunResult =>
    local(["ssh", ...extra, ...sshArgs(lab, name, key), command].map(shellQuote).join(" "), "", 30);

/** The member's key file and home as the host has them: who owns the file and its mode, and whether ~/.ssh/authorized_keys exists. */
function memberFiles(name: string): string {
    return sudoOk(lab, `stat -c '%U %a' /etc/ssh/buildx-host/members/${name} /etc/ssh/buildx-host/members; ` +
        `test -e ~${name}/.ssh/authorized_keys && echo authorized_keys || echo no-authorized_keys`).trim();
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
    test("a repository key with another fingerprint fails docker-engine, naming both, with nothing installed", () => {
        // The lab's image, like a minimal cloud image, has no jq: the first step installs it, for every step's report.
        expect(expectStepOk(record(runStep(lab, step("wait-for-host"), "before-key-check")))).toMatchObject({ changed: true });
        expect(sudoOk(lab, "command -v jq").trim()).toBe("/usr/bin/jq");
        const docker = STEP_DEFAULTS.dockerAptKeyFingerprint;
        const run = record(runStep(lab, step("docker-engine"), "wrong-key", { DOCKER_APT_KEY_FINGERPRINT: docker }));
        expect(run.status).not.toBe(0);
        expect(run.stderr).toContain(`has the key ${dockerAptKeyFingerprint} but DOCKER_APT_KEY_FINGERPRINT pins ${docker}; nothing was installed`);
        expect(sudoOk(lab, "test -e /etc/apt/keyrings/docker.asc && echo keyring; test -e /etc/apt/sources.list.d/docker.sources && echo source; " +
            "dpkg-query -W -f '${db:Status-Abbrev}\\n' docker-ce 2>/dev/null | grep ^ii || true").trim()).toBe("");
    });

    test("first run: every step succeeds in the program's order, over real SSH", () => {
        for (const s of steps) {
            if (s.name === "buildx-builder") {
                loadBuildkitImage(lab);
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

    test("the metadata guard: routed (build container) and non-root traffic to the metadata address is dropped, root's passes", () => {
        requireFirstRun();
        expect(firstReports.get("metadata-guard")).toMatchObject({ action: "created", addresses: ["169.254.169.254", "fd00:ec2::254"] });
        expect(sudoOk(lab, "systemctl is-enabled buildx-host-metadata-guard.service").trim()).toBe("enabled");
        expect(guardTable()).toMatch(/meta skuid != 0 ip daddr 169\.254\.169\.254 .*drop/);
        // The host's own ruleset file, loaded into namespaces the lab made: a client routed through a
        // "host" (a build container on Docker's bridge), the host's non-root and root processes, and a
        // stand-in metadata service. Nothing leaves those namespaces.
        const ruleset = path.join(lab.stateDir, "metadata-guard.nft");
        writeFileSync(ruleset, sudoOk(lab, "cat /etc/buildx-host/metadata-guard.nft"));
        const standin = path.join(__dirname, "infra", "metadata-standin.sh");
        try {
            localOk(`bash ${standin} start`);
            const check = local(`bash ${standin} check ${ruleset}`);
            expect(check.stdout.trim().split("\n")).toEqual(["forwarded=refused", "nonroot=refused", "root=reached"]);
            expect(check.status).toBe(0);
        } finally {
            localOk(`bash ${standin} stop`);
        }
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

    test("the builder runs the pinned BuildKit with no insecure entitlement, offers linux/arm64 and reports its image", () => {
        requireFirstRun();
        const report = reportOf(firstReports, "buildx-builder")!;
        expect(report.platforms).toEqual(expect.arrayContaining(["linux/amd64", "linux/arm64"]));
        expect(String(report.buildkitVersion)).toContain(config.buildkitImage.split(":")[1]);
        // The lab's daemon has no bridge (no 172.x here), so the step falls back to the host network.
        expect(report.network).toBe("host");
        expect(report.insecureEntitlements).toEqual([]);
        const node = buildkitContainerName(config.builderName);
        expect(sudoOk(lab, `docker inspect -f '{{json .Args}}' ${node}`)).not.toContain("insecure-entitlement");
        // Loaded with docker load, the image has no registry digest: the report gives its image id.
        expect(report.imageDigest).toBe(sudoOk(lab, `docker image inspect -f '{{.Id}}' ${config.buildkitImage}`).trim());
        const inspect = ssh(lab, `docker buildx inspect ${config.builderName}`).stdout;
        expect(inspect).toMatch(/^Driver:\s+remote$/m);
        expect(inspect).toMatch(/^Status:\s+running$/m);
        expect(/^Platforms:\s+(.*)$/m.exec(inspect)?.[1].split(/,\s*/)).toEqual(expect.arrayContaining(["linux/arm64"]));
    });

    test("through the administrator's docker context, a client builds linux/amd64 and linux/arm64 and each variant reports its arch", () => {
        requireFirstRun();
        const build = client.build(lab.user, lab.key, "login-user", attachCommands(lab.user));
        expect(build.arches).toEqual({ linux_amd64: "x86_64", linux_arm64: "aarch64" });
        // A fresh host has no cache: both RUN steps really ran, the arm64 one under QEMU.
        expect(cacheUse(build.output)).toEqual({ runSteps: 2, allCached: false });
        const started = Date.now();
        expect(cacheUse(client.build(lab.user, lab.key, "login-user-cached", []).output)).toEqual({ runSteps: 2, allCached: true });
        doorTimes.dockerContext = (Date.now() - started) / 1000;
    });

    test("members build both platforms through the member door (ssh://), and their identical builds are all cache hits", () => {
        requireFirstRun();
        expect(firstReports.get("team-access")).toMatchObject({ added: [MEMBER, SECOND_MEMBER], door: "open" });
        for (const [name, key] of [[MEMBER, aliceKey], [SECOND_MEMBER, bobKey]]) {
            expect(sudoOk(lab, `id -nG ${name}`).trim().split(/\s+/)).toEqual([name, "buildx-members"]);
            const build = client.build(name, key, `member-${name}`, attachCommands(name));
            expect(build.arches).toEqual({ linux_amd64: "x86_64", linux_arm64: "aarch64" });
            expect(cacheUse(build.output)).toEqual({ runSteps: 2, allCached: true });
        }
        // The same cached build again, attached already: the member door against the administrator's docker context.
        const started = Date.now();
        expect(cacheUse(client.build(MEMBER, aliceKey, "member-cached", []).output)).toEqual({ runSteps: 2, allCached: true });
        doorTimes.memberDoor = (Date.now() - started) / 1000;
        console.log(`cached two-platform build on one host, seconds: ${JSON.stringify(doorTimes)}`);
    });

    test("concurrent load: four members and two CI jobs each start builds at once, eight, both platforms; all succeed, none lost", async () => {
        requireFirstRun();
        const started = Date.now();
        const since = sudoOk(lab, "date +%s").trim();
        const team = step("team-access");
        // Two CI-style clients: a key each, and two jobs each, every job a client container with a fresh home.
        const members = [MEMBER, SECOND_MEMBER, "carol", "dave"];
        const ciJobs = ["ci-web", "ci-api"].flatMap(ci => [1, 2].map(job => ({ user: ci, name: `${ci}-job${job}` })));
        const clients = [...members.map(user => ({ user, name: `load-${user}` })), ...ciJobs];
        expectStepOk(record(runStep(lab, team, "load-team",
            { TEAM_MEMBERS: [...new Set(clients.map(c => c.user))].map(user => teamEntry(lab, user)).join("\n") })));
        try {
            for (const { user, name } of clients) {
                const attached = client.attach(user, memberKey(lab, user), attachCommands(user), name);
                expect({ name, status: attached.status, output: attached.status === 0 ? "" : tail(attached.stdout + attached.stderr) })
                    .toEqual({ name, status: 0, output: "" });
            }
            const builds: LoadBuild[] = clients.map(({ name }) =>
                ({ client: name, project: loadProject(lab.stateDir, busyboxDir, "lab", name) }));
            const once = await buildAtOnce(client, lab.stateDir, "load", builds);
            const outcome = (results: typeof once) => results.map(r => ({ client: r.client, status: r.run.status,
                eof: /error reading from server: EOF/.test(r.run.stdout + r.run.stderr), results: r.results }));
            expect(outcome(once)).toEqual(builds.map(b => ({ client: b.client, status: 0, eof: false, results: b.project.expected })));
            // Every project's own steps ran (nothing was taken from another project's cache) ...
            expect(once.map(r => r.allCached)).toEqual(builds.map(() => false));
            // ... while the base step all eight share ran once per platform, not once per build.
            expect(await baseStepRuns(client, lab.stateDir, busyboxDir, "lab", clients[0].name)).toEqual({ linux_amd64: 1, linux_arm64: 1 });
            // The same eight again at once: every result still its own, every step a cache hit.
            const again = await buildAtOnce(client, lab.stateDir, "load-again", builds);
            expect(outcome(again)).toEqual(builds.map(b => ({ client: b.client, status: 0, eof: false, results: b.project.expected })));
            expect(again.map(r => r.allCached)).toEqual(builds.map(() => true));
            // sshd dropped no connection of the bursts (MaxStartups) and penalised no source (PerSourcePenalties).
            expect(sudoOk(lab, `journalctl -q --no-pager --since @${since} -u ssh.service | ` +
                "grep -Ei '[M]axStartups|[p]enalt|[d]rop connection' || true").trim()).toBe("");
            const slowest = (results: typeof once) => Math.max(...results.map(r => r.run.seconds)).toFixed(1);
            console.log(`concurrent load: ${builds.length} two-platform builds at once, slowest ${slowest(once)}s; ` +
                `cached again, slowest ${slowest(again)}s; the whole test ${((Date.now() - started) / 1000).toFixed(1)}s`);
        } finally {
            expectStepOk(record(runStep(lab, team, "load-team-back")));
        }
    });

    describe("with a member's key, everything but BuildKit is refused", () => {
        test("a shell command runs nothing: the session is BuildKit's stream whatever was asked", () => {
            requireFirstRun();
            const run = asMember(MEMBER, aliceKey, "id; touch /tmp/door-test-alice");
            expect(run.stdout).not.toContain("uid=");
            expect(sudoOk(lab, "test -e /tmp/door-test-alice && echo ran || echo nothing").trim()).toBe("nothing");
            // The administrator's shell still runs commands.
            expect(ssh(lab, "id -un").stdout.trim()).toBe(lab.user);
        });

        test("a PTY is refused", () => {
            const run = asMember(MEMBER, aliceKey, "true", ["-tt"]);
            expect(run.stderr).toMatch(/PTY allocation request failed/);
        });

        test("local TCP forwarding (-L) is refused; the administrator's works", () => {
            const refused = tryForward(MEMBER, aliceKey, ["-L", "127.0.0.1:23011:127.0.0.1:" + lab.port], tcpProbe(23011));
            expect(refused.ssh).toMatch(/administratively prohibited/);
            expect(refused.probe).not.toMatch(/SSH-2\.0/);
            const allowed = tryForward(lab.user, lab.key, ["-L", "127.0.0.1:23012:127.0.0.1:" + lab.port], tcpProbe(23012));
            expect(allowed.probe).toMatch(/SSH-2\.0/);
        });

        test("remote TCP forwarding (-R) is refused", () => {
            const refused = tryForward(MEMBER, aliceKey, ["-R", "127.0.0.1:23013:127.0.0.1:22"], "true");
            expect(refused.ssh).toMatch(/remote port forwarding failed/);
        });

        test("dynamic forwarding (-D, SOCKS) is refused", () => {
            const refused = tryForward(MEMBER, aliceKey, ["-D", "127.0.0.1:23014"],
                `curl -sS --max-time 5 --socks5-hostname 127.0.0.1:23014 http://127.0.0.1:${lab.port}/`);
            expect(refused.ssh).toMatch(/administratively prohibited/);
        });

        test("unix-socket forwarding is refused, the Docker socket's and a socket anyone may open; the administrator's reaches the Docker API", () => {
            const docker = tryForward(MEMBER, aliceKey, ["-L", "127.0.0.1:23015:/var/run/docker.sock"], tcpProbe(23015));
            expect(docker.ssh).toMatch(/open failed/);
            expect(docker.probe).not.toContain("ApiVersion");
            // D-Bus's system socket accepts anyone: only sshd's policy can refuse the member this one.
            const worldSocket = "/run/dbus/system_bus_socket";
            expect(sudoOk(lab, `stat -c %a ${worldSocket}`).trim()).toBe("666");
            expect(tryForward(MEMBER, aliceKey, ["-L", `127.0.0.1:23017:${worldSocket}`], tcpProbe(23017)).ssh).toMatch(/open failed/);
            expect(tryForward(lab.user, lab.key, ["-L", `127.0.0.1:23018:${worldSocket}`], tcpProbe(23018)).ssh).not.toMatch(/open failed/);
            const allowed = tryForward(lab.user, lab.key, ["-L", "127.0.0.1:23016:/var/run/docker.sock"], tcpProbe(23016));
            expect(allowed.probe).toContain("ApiVersion");
        });

        test("the Docker API directly (docker over ssh://) is refused; members are not in the docker group", () => {
            const refused = client.run(MEMBER, `DOCKER_HOST=ssh://${MEMBER}@${lab.host}:${lab.port} timeout 60 docker version --format '{{.Server.Version}}'`);
            expect(refused.status).not.toBe(0);
            expect(refused.stdout.trim()).toBe("");
            expect(sudoOk(lab, `id -nG ${MEMBER}`).split(/\s+/)).not.toContain("docker");
            const allowed = ssh(lab, "docker version --format '{{.Server.Version}}' </dev/null");
            expect(allowed.status).toBe(0);
        });

        test.each([
            ["network.host", "--network=host"],
            ["security.insecure", "--security=insecure"],
        ])("a build step that needs the %s entitlement (RUN %s) is refused by BuildKit", (entitlement, runFlag) => {
            const run = client.buildDockerfile(MEMBER, entitlement, [
                "FROM scratch", "COPY busybox /bin/busybox", `RUN ${runFlag} ["/bin/busybox", "true"]`, "",
            ].join("\n"), ["--allow", entitlement]);
            expect(run.status).not.toBe(0);
            expect(run.stdout + run.stderr).toContain(`${entitlement} is not allowed`);
        });

        test("a member cannot edit their own authorized keys: root's file, read from /etc/ssh, nothing in their home counts", () => {
            const before = sudoOk(lab, `sha256sum /etc/ssh/buildx-host/members/${MEMBER}`);
            const bobPublic = readFileSync(`${bobKey}.pub`, "utf8").trim();
            asMember(MEMBER, aliceKey, `mkdir -p ~/.ssh && echo '${bobPublic}' >> ~/.ssh/authorized_keys; ` +
                `echo '${bobPublic}' >> /etc/ssh/buildx-host/members/${MEMBER}`);
            expect(sudoOk(lab, `sha256sum /etc/ssh/buildx-host/members/${MEMBER}`)).toBe(before);
            expect(memberFiles(MEMBER)).toBe("root 644\nroot 755\nno-authorized_keys");
            // Even a key planted in the member's home by someone else is not read for them.
            sudoOk(lab, `install -d -o ${MEMBER} -m 700 ~${MEMBER}/.ssh && echo '${bobPublic}' > ~${MEMBER}/.ssh/authorized_keys && ` +
                `chown ${MEMBER} ~${MEMBER}/.ssh/authorized_keys && chmod 600 ~${MEMBER}/.ssh/authorized_keys`);
            try {
                expect(asMember(MEMBER, bobKey, "true").stderr).toMatch(/Permission denied/);
            } finally {
                sudoOk(lab, `rm -f ~${MEMBER}/.ssh/authorized_keys`);
            }
        });
    });

    test("a key limited with from= is refused from elsewhere and accepted from its network", () => {
        requireFirstRun();
        const team = step("team-access");
        const alicePublic = readFileSync(`${aliceKey}.pub`, "utf8").trim();
        const limitedTo = (network: string) => expectStepOk(record(runStep(lab, team, `from-${network.replace(/\W/g, "-")}`,
            { TEAM_MEMBERS: `${MEMBER} from=${network} ${alicePublic}\n${teamEntry(lab, SECOND_MEMBER)}` })));
        try {
            limitedTo("10.9.9.0/24");
            expect(sudoOk(lab, `cat /etc/ssh/buildx-host/members/${MEMBER}`)).toContain('from="10.9.9.0/24" ssh-ed25519 ');
            expect(asMember(MEMBER, aliceKey, "true").stderr).toMatch(/Permission denied/);
            limitedTo("127.0.0.0/8");
            expect(asMember(MEMBER, aliceKey, "true").stderr).not.toMatch(/Permission denied/);
        } finally {
            expectStepOk(record(runStep(lab, team, "from-none")));
        }
    });

    test("opting in to network.host lets such a step run; the default refuses it again", () => {
        requireFirstRun();
        const builder = step("buildx-builder");
        const dockerfile = ["FROM scratch", "COPY busybox /bin/busybox", 'RUN --network=host ["/bin/busybox", "true"]', ""].join("\n");
        expect(expectStepOk(record(runStep(lab, builder, "allow-network-host", { BUILDKIT_INSECURE_ENTITLEMENTS: "network.host" }))))
            .toMatchObject({ action: "recreated", insecureEntitlements: ["network.host"] });
        expect(client.buildDockerfile(MEMBER, "network-host-allowed", dockerfile, ["--allow", "network.host"]).status).toBe(0);
        expect(expectStepOk(record(runStep(lab, builder, "default-entitlements")))).toMatchObject({ action: "recreated", insecureEntitlements: [] });
        expect(client.buildDockerfile(MEMBER, "network-host-refused-again", dockerfile, ["--allow", "network.host"]).status).not.toBe(0);
    });

    test("second run: every step reports changed:false and nothing restarts", () => {
        requireFirstRun();
        const node = buildkitContainerName(config.builderName);
        const before = { docker: unitStartedAt("docker"), containerd: unitStartedAt("containerd"), buildkit: containerStartedAt(node),
            sshd: unitStartedAt("ssh") };
        const changed: Record<string, unknown> = {};
        for (const s of steps) {
            changed[s.name] = expectStepOk(record(runStep(lab, s, "second"))).changed;
        }
        expect(changed).toEqual(Object.fromEntries(steps.map(s => [s.name, false])));
        expect({ docker: unitStartedAt("docker"), containerd: unitStartedAt("containerd"), buildkit: containerStartedAt(node),
            sshd: unitStartedAt("ssh") }).toEqual(before);
    });

    test("after a reboot with every qemu-* registration and the guard's table gone, both come back and a member builds", () => {
        requireFirstRun();
        const table = guardTable();
        sudoOk(lab, `for f in ${BINFMT}/qemu-*; do [ -e "$f" ] && echo -1 > "$f"; done; nft delete table inet buildx_host_metadata_guard; true`);
        expect(Object.keys(binfmtEntries())).toEqual([]);

        const restartStarted = Date.now();
        localOk(`docker restart -t 60 ${lab.container}`);
        restartTimes.hostShutdownAndStart = (Date.now() - restartStarted) / 1000;
        // Boot to first build: from the container's start (systemd's boot) until a member's build, tried again every 2 s, succeeds.
        const booted = Date.parse(localOk(`docker inspect -f '{{.State.StartedAt}}' ${lab.container}`).trim().replace(/(\.\d{3})\d*/, "$1"));
        let firstBuild: ClientBuildResult | undefined;
        waitFor("a member's first successful build after the reboot", 300, () => {
            try {
                firstBuild = client.build(MEMBER, aliceKey, "member-after-reboot", []);
                return true;
            } catch {
                return false;
            }
        });
        restartTimes.bootToFirstBuild = (Date.now() - booted) / 1000;
        console.log(`host reboot: boot to the first successful member build ${restartTimes.bootToFirstBuild.toFixed(1)}s ` +
            `(docker restart of the host took ${restartTimes.hostShutdownAndStart.toFixed(1)}s)`);
        // The cache survived: the build was all cache hits, both platforms.
        expect(cacheUse(firstBuild!.output)).toEqual({ runSteps: 2, allCached: true });
        expect(firstBuild!.arches).toEqual({ linux_amd64: "x86_64", linux_arm64: "aarch64" });
        ssh(lab, "systemctl is-system-running --wait", undefined, { timeoutSeconds: 300 });

        const entries = binfmtEntries();
        for (const name of emulators) {
            expect({ name, flags: binfmtFlags(entries[name] ?? "") }).toEqual({ name, flags: expect.stringContaining("F") });
        }
        for (const [name, entry] of Object.entries(entries)) {
            expect({ name, flags: binfmtFlags(entry) }).toEqual({ name, flags: expect.stringContaining("F") });
        }
        expect(runForeignBinary()).toEqual({ status: 0, output: "aarch64" });
        expect(guardTable()).toBe(table);
        const node = buildkitContainerName(config.builderName);
        waitFor(`${node} running again`, 120, () =>
            ssh(lab, `docker inspect -f '{{.State.Running}}' ${node}`).stdout.trim() === "true");
        const inspect = ssh(lab, `docker buildx inspect ${config.builderName}`).stdout;
        expect(inspect).toMatch(/^Status:\s+running$/m);
        expect(inspect).toMatch(/^Platforms:.*linux\/arm64/m);
    });

    test("after Docker restarts, the guard's table is unchanged and a member builds", () => {
        requireFirstRun();
        const table = guardTable();
        const restarted = Date.now();
        sudoOk(lab, "systemctl restart docker");
        expect(guardTable()).toBe(table);
        const node = buildkitContainerName(config.builderName);
        waitFor(`${node} running again`, 120, () =>
            ssh(lab, `docker inspect -f '{{.State.Running}}' ${node}`).stdout.trim() === "true");
        waitFor("the member door answering", 60, () => client.attach(MEMBER, aliceKey, attachCommands(MEMBER)).status === 0);
        const build = client.build(MEMBER, aliceKey, "member-after-docker-restart", []);
        restartTimes.dockerRestartToBuild = (Date.now() - restarted) / 1000;
        console.log(`systemctl restart docker: to the first successful member build ${restartTimes.dockerRestartToBuild.toFixed(1)}s`);
        expect(cacheUse(build.output)).toEqual({ runSteps: 2, allCached: true });
        expect(build.arches).toEqual({ linux_amd64: "x86_64", linux_arm64: "aarch64" });
        expect(runForeignBinary()).toEqual({ status: 0, output: "aarch64" });
    });

    test("an exact docker-ce version is installed and held; unpinned, only the holds the step placed are released", () => {
        requireFirstRun();
        const engine = step("docker-engine");
        const version = reportOf(firstReports, "docker-engine")!.packages["docker-ce"];
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

    test("a removed member's open session is cut by the next run, and a new connection is refused", () => {
        requireFirstRun();
        const team = step("team-access");
        // bob holds a session open through the door (its stdin stays open while sleep runs).
        const session = local(`(ssh ${sshArgs(lab, SECOND_MEMBER, bobKey).map(shellQuote).join(" ")} buildctl dial-stdio ` +
            `< <(sleep 120) >/dev/null 2>&1; echo "ssh ended $?") > ${lab.stateDir}/bob-session.out 2>&1 & echo $!`);
        const pid = session.stdout.trim();
        waitFor("bob's session on the host", 30, () => sudoOk(lab, `pgrep -u ${SECOND_MEMBER} || true`).trim() !== "");
        const started = Date.now();
        const revoked = expectStepOk(record(runStep(lab, team, "remove-bob", { TEAM_MEMBERS: teamEntry(lab, MEMBER) })));
        expect(revoked).toMatchObject({ changed: true, removed: [SECOND_MEMBER], sessionsEnded: [SECOND_MEMBER] });
        waitFor("bob's ssh client to see its session end", 20, () =>
            readFileSync(`${lab.stateDir}/bob-session.out`, "utf8").includes("ssh ended"));
        console.log(`bob's open session ended ${((Date.now() - started) / 1000).toFixed(1)}s after the team step started`);
        local(`pkill -P ${pid} sleep; true`);
        expect(sudoOk(lab, `pgrep -u ${SECOND_MEMBER} || true`).trim()).toBe("");
        expect(asMember(SECOND_MEMBER, bobKey, "true").stderr).toMatch(/Permission denied/);
        expect(expectStepOk(record(runStep(lab, team, "bob-back")))).toMatchObject({ added: [SECOND_MEMBER] });
    });

    test("a bad sshd configuration fails the team step with sshd's message, changes nothing, and the login user still logs in", () => {
        requireFirstRun();
        const team = step("team-access");
        const before = sudoOk(lab, "sha256sum /etc/ssh/sshd_config.d/60-buildx-host-members.conf /etc/ssh/buildx-host/members/*");
        const sshdStarted = unitStartedAt("ssh");
        sudoOk(lab, "echo 'PermitRootLogn no' > /etc/ssh/sshd_config.d/40-admin-typo.conf");
        try {
            const run = record(runStep(lab, team, "bad-sshd", { TEAM_MEMBERS: teamEntry(lab, MEMBER) }));
            expect(run.status).not.toBe(0);
            expect(run.stderr).toMatch(/sshd rejects its configuration .* sshd -t said: .*Bad configuration option: PermitRootLogn/s);
            expect(sudoOk(lab, "sha256sum /etc/ssh/sshd_config.d/60-buildx-host-members.conf /etc/ssh/buildx-host/members/*")).toBe(before);
            expect(unitStartedAt("ssh")).toBe(sshdStarted);
            expect(ssh(lab, "id -un").stdout.trim()).toBe(lab.user);
            expect(sudoOk(lab, `id -nG ${SECOND_MEMBER}`)).toContain("buildx-members");
        } finally {
            sudoOk(lab, "rm -f /etc/ssh/sshd_config.d/40-admin-typo.conf");
        }
        expect(expectStepOk(record(runStep(lab, team, "sshd-fixed"))).changed).toBe(false);
    });

    test("a member of the earlier door (docker group, ~/.ssh/authorized_keys, an open session) is moved to the member door", () => {
        requireFirstRun();
        const team = step("team-access");
        const alicePublic = readFileSync(`${aliceKey}.pub`, "utf8").trim();
        sudoOk(lab, `usermod -aG docker ${MEMBER} && install -d -o ${MEMBER} -m 700 ~${MEMBER}/.ssh && ` +
            `echo '${alicePublic}' > ~${MEMBER}/.ssh/authorized_keys && chown ${MEMBER} ~${MEMBER}/.ssh/authorized_keys && ` +
            `setsid -f runuser -u ${MEMBER} -- sleep 300 </dev/null >/dev/null 2>&1`);
        const moved = expectStepOk(record(runStep(lab, team, "old-door")));
        expect(moved).toMatchObject({ changed: true, updated: [MEMBER], sessionsEnded: [MEMBER] });
        expect(sudoOk(lab, `id -nG ${MEMBER}`).trim().split(/\s+/)).toEqual([MEMBER, "buildx-members"]);
        expect(memberFiles(MEMBER)).toBe("root 644\nroot 755\nno-authorized_keys");
        expect(sudoOk(lab, `pgrep -u ${MEMBER} || true`).trim()).toBe("");
        expect(client.attach(MEMBER, aliceKey, attachCommands(MEMBER)).status).toBe(0);
    });

    test("the team step's delete closes the door: no member gets in, and nothing of the door is left", () => {
        requireFirstRun();
        const team = step("team-access");
        const revoked = expectStepOk(record(runStep(lab, { ...team, environment: team.deleteEnvironment! }, "revoke")));
        expect(revoked).toMatchObject({ changed: true, removed: [MEMBER, SECOND_MEMBER], door: "closed" });
        expect(asMember(MEMBER, aliceKey, "true").stderr).toMatch(/Permission denied/);
        expect(sudoOk(lab, "for f in /etc/ssh/sshd_config.d/60-buildx-host-members.conf /etc/sudoers.d/buildx-host-members " +
            "/usr/local/libexec/buildx-host/buildkit-dial /etc/ssh/buildx-host; do test -e $f && echo $f; done; " +
            "getent group buildx-members || true").trim()).toBe("");
        expect(expectStepOk(record(runStep(lab, team, "re-add")))).toMatchObject({ changed: true, added: [MEMBER, SECOND_MEMBER] });
        expect(client.attach(MEMBER, aliceKey, attachCommands(MEMBER)).status).toBe(0);
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

    test("the metadata guard's delete removes its table, unit and file; a second delete finds nothing", () => {
        requireFirstRun();
        const guard = step("metadata-guard");
        expect(expectStepOk(record(runStep(lab, { ...guard, environment: guard.deleteEnvironment! }, "guard-delete"))))
            .toMatchObject({ changed: true, action: "deleted" });
        expect(sudoOk(lab, "nft list table inet buildx_host_metadata_guard >/dev/null 2>&1 && echo table; " +
            "ls /etc/buildx-host/metadata-guard.nft /etc/systemd/system/buildx-host-metadata-guard.service 2>/dev/null; true").trim()).toBe("");
        expect(expectStepOk(record(runStep(lab, { ...guard, environment: guard.deleteEnvironment! }, "guard-delete-again"))))
            .toMatchObject({ changed: false, action: "absent" });
    });

    describe("the status view (statusCommand), run as printed from the administrator's client", () => {
        /** The status command's output, from a client container with the administrator's key and known_hosts line. */
        const status = () => {
            const result = client.run(lab.user, statusCommand([{ name: "lab", parts: endpoint }]));
            writeFileSync(path.join(logDirectory(lab), `status-${Date.now()}.txt`), result.stdout + result.stderr);
            expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
            return result.stdout;
        };
        /** The "last builds" lines of a status view: ref, platform, outcome, seconds, cached steps, total steps, share. */
        const lastBuilds = (view: string) => [...view.matchAll(
            /^ {4}(\S+) {2}(\S+) {2}(ok|FAILED) {2}started \S+ {2}took ([\d.]+)s {2}cached (?:(\d+)\/(\d+) steps \((\d+)%\)|-)$/gm)]
            .map(m => ({ ref: m[1], platform: m[2], outcome: m[3], seconds: Number(m[4]), cached: Number(m[5]), total: Number(m[6]), share: Number(m[7]) }));
        const longBuild = (marker: string, seconds: number) => ["FROM scratch", "COPY busybox /bin/busybox",
            `RUN ["/bin/busybox", "sh", "-c", "echo ${marker}; /bin/busybox sleep ${seconds}"]`, ""].join("\n");

        test("after three known builds it shows them newest first with plausible durations and cache-hit shares, and the node's state", () => {
            requireFirstRun();
            expect(client.attach(MEMBER, aliceKey, attachCommands(MEMBER)).status).toBe(0);
            const slow = longBuild(`status-${Date.now()}`, 3);
            expect(client.buildDockerfile(MEMBER, "status-first", slow).status).toBe(0);
            expect(client.buildDockerfile(MEMBER, "status-again", slow).status).toBe(0);
            const failing = ["FROM scratch", "COPY busybox /bin/busybox", `RUN ["/bin/busybox", "sh", "-c", "exit 3 # ${Date.now()}"]`, ""].join("\n");
            expect(client.buildDockerfile(MEMBER, "status-failing", failing).status).not.toBe(0);

            const view = status();
            console.log(`status view after three known builds:\n${view}`);
            const lines = view.split("\n");
            expect(lines[0]).toMatch(new RegExp(`^node lab: builder ${config.builderName} \\(BuildKit container running since \\S+Z\\)$`));
            expect(lines[1]).toBe(`  BuildKit:  ${config.buildkitImage.split(":")[1]}, answering`);
            // BuildKit's limits as it runs them: the defaults are shares of the cache's filesystem, which BuildKit turns into bytes.
            const [, size, mount] = sudoOk(lab, `df -B1 --output=avail,size,target "$(docker volume inspect -f '{{.Mountpoint}}' ` +
                `${buildkitContainerName(config.builderName)}_state)" | tail -n 1`).trim().split(/\s+/);
            const cache = /^ {2}cache: {5}[\d.]+[KMG]iB used; GC limits: maxUsedSpace ([\d.]+)GiB, reservedSpace ([\d.]+)GiB, minFreeSpace ([\d.]+)GiB$/
                .exec(lines[2]);
            expect(cache).not.toBeNull();
            const gc = config.buildkitGc;
            expect(cache!.slice(1).map(Number)).toEqual([gc.maxUsedSpace, gc.reservedSpace, gc.minFreeSpace]
                .map(limit => expect.closeTo(gcLimitBytes(limit, Number(size)) / 1024 ** 3, 0)));
            expect(lines[3]).toMatch(new RegExp(`^ {2}disk: {6}[\\d.]+[KMG]iB free of [\\d.]+[KMG]iB on ${mount}`));
            expect(lines[4]).toBe("  running:   0 build(s)");
            const [failed, again, first] = lastBuilds(view);
            expect([failed, again, first].map(b => [b.platform, b.outcome]))
                .toEqual([["linux/amd64", "FAILED"], ["linux/amd64", "ok"], ["linux/amd64", "ok"]]);
            // The first ran its 3 s RUN step; the same build again took it from the cache, faster and with more steps cached.
            expect(first.seconds).toBeGreaterThanOrEqual(3);
            expect(again.seconds).toBeLessThan(first.seconds);
            expect(again.share).toBeGreaterThan(first.share);
            expect(again.cached).toBeGreaterThanOrEqual(2);
            // A member sees the same builds through the door with buildx's own history (no disk, no GC limits).
            const history = client.run(MEMBER, "docker buildx history ls --format json");
            expect(history.status).toBe(0);
            const refs = history.stdout.split("\n").filter(Boolean).map(line => (JSON.parse(line) as { ref: string }).ref.split("/").pop());
            expect(refs).toEqual(expect.arrayContaining([failed.ref, again.ref, first.ref]));
        });

        test("a build in flight when BuildKit restarts is shown running, then fails with a clear error on the client; the next build succeeds", () => {
            requireFirstRun();
            const node = buildkitContainerName(config.builderName);
            const marker = `in-flight-${Date.now()}`;
            const context = path.join(lab.stateDir, "build-context-in-flight");
            mkdirSync(context, { recursive: true });
            copyFileSync(path.join(busyboxDir, "busybox-amd64"), path.join(context, "busybox"));
            chmodSync(path.join(context, "busybox"), 0o755);
            writeFileSync(path.join(context, "Dockerfile"), longBuild(marker, 120));
            // A member's client, started in the background (its own home): the build's output and exit code go to files.
            const home = client.home(MEMBER, aliceKey);
            writeFileSync(path.join(home, "in-flight.sh"), ["set -euo pipefail", ...attachCommands(MEMBER),
                "docker buildx build --progress=plain --platform linux/amd64 --output type=cacheonly /ctx", ""].join("\n"));
            const log = path.join(logDirectory(lab), "build-in-flight.log");
            localOk(`(docker run --rm --network host -v '${home}:/root' -v '${context}:/ctx:ro' ${client.image} bash /root/in-flight.sh; ` +
                `echo "exit $?") > '${log}' 2>&1 < /dev/null &`);
            // The bracket keeps pgrep from finding the shell that runs it.
            waitFor("the long RUN step running on the host", 120, () => sudoOk(lab, "pgrep -f 'busybox slee[p] 120' || true").trim() !== "");
            const view = status();
            expect(view).toContain("  running:   1 build(s)\n");
            expect(view).toMatch(/^ {4}\S+ {2}linux\/amd64 {2}started \S+, running for [\d.]+s$/m);

            const restarted = Date.now();
            sudoOk(lab, `docker restart ${node} </dev/null`);
            waitFor("the client to finish", 120, () => /^exit \d+$/m.test(readFileSync(log, "utf8")));
            const output = readFileSync(log, "utf8");
            const error = output.split("\n").filter(line => /ERROR|error/.test(line)).join("\n");
            console.log(`a build in flight when BuildKit restarted, ${((Date.now() - restarted) / 1000).toFixed(1)}s after the restart:\n${error}`);
            expect(output).not.toMatch(/^exit 0$/m);
            expect(output).toMatch(/^ERROR: .*(EOF|Unavailable|closing|canceled)/im);

            waitFor("BuildKit answering again", 60, () => ssh(lab, `docker exec ${node} buildctl debug workers </dev/null`).status === 0);
            expect(client.attach(MEMBER, aliceKey, attachCommands(MEMBER)).status).toBe(0);
            expect(client.buildDockerfile(MEMBER, "after-buildkit-restart", longBuild(marker, 1)).status).toBe(0);
            restartTimes.buildkitRestartToBuild = (Date.now() - restarted) / 1000;
            console.log(`BuildKit restart to the next successful build ${restartTimes.buildkitRestartToBuild.toFixed(1)}s; ` +
                `restart times, seconds: ${JSON.stringify(restartTimes)}`);
            expect(status()).toContain("  running:   0 build(s)\n");
        });
    });
});

// Last: it powers the host off and wakes it; provisions the host itself, so `-t idle-power-off` runs it alone.
idlePowerOffTests(lab, client, { team: TEAM, dockerAptRepo, dockerAptKeyFingerprint }, MEMBER, aliceKey, attachCommands(MEMBER));
