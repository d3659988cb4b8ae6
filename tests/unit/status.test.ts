import { spawnSync } from "child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";

import { EndpointParts } from "../../components/endpoint";
import { NODE_STATUS_SCRIPT_PATH, statusCommand } from "../../components/status";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF";
const LAB: EndpointParts = { host: "127.0.0.1", port: 2222, user: "builder", hostPublicKey: KEY, builderName: "lab" };

/** 2026-12-07T03:00:00Z, the stand-in clock of the stand-in host. */
const NOW = 1796612400;
const at = (seconds: number, nanos = 0) => ({ seconds: NOW + seconds, nanos });
const GB = 1024 ** 3;

/** What the stand-in host's docker, df and date answer: a running BuildKit with a known history. */
interface StandIn {
    readonly state?: string;
    readonly workers?: string;
}

const GC_POLICY = [
    { all: false, filter: ["type==source.local"], maxUsedSpace: 0.5 * GB, reservedSpace: 0, minFreeSpace: 0 },
    { all: true, maxUsedSpace: 20 * GB, reservedSpace: 10 * GB, minFreeSpace: 15 * GB },
];
const HISTORY = [
    { record: { Ref: "runningref", FrontendAttrs: { platform: "linux/arm64" }, CreatedAt: at(-45) } },
    { type: 1, record: { Ref: "olderref", FrontendAttrs: { platform: "linux/amd64,linux/arm64" }, CreatedAt: at(-400, 5e8),
        CompletedAt: at(-388), numCachedSteps: 3, numTotalSteps: 4 } },
    { type: 1, record: { Ref: "failedref", CreatedAt: at(-300), CompletedAt: at(-298, 8e8), numTotalSteps: 2, error: { code: 2 } } },
    { type: 2, record: { Ref: "deletedref", CreatedAt: at(-900), CompletedAt: at(-899) } },
];

/** A directory of commands standing in for the host's docker, df and date; `extra` adds more by name. */
function standInBin(standIn: StandIn = {}, extra: Record<string, string> = {}): string {
    const dir = mkdtempSync(path.join(tmpdir(), "node-status-"));
    const workers = standIn.workers ?? `echo '${JSON.stringify([{ id: "w", buildkitVersion: { version: "v0.34.2" }, gcPolicy: GC_POLICY }])}'`;
    const commands: Record<string, string> = {
        docker: [
            'case "$*" in',
            `  "inspect -f {{json .State}} buildx_buildkit_lab0") echo '{"Status":"${standIn.state ?? "running"}","StartedAt":"2026-12-07T02:10:00.123456789Z"}' ;;`,
            '  "volume inspect -f {{.Mountpoint}} buildx_buildkit_lab0_state") echo /var/lib/docker/volumes/buildx_buildkit_lab0_state/_data ;;',
            `  *"buildctl debug workers"*) ${workers} ;;`,
            `  *"buildctl du"*) echo '${JSON.stringify([{ id: "a", size: 1.5 * GB }, { id: "b", size: 0.25 * GB }])}' ;;`,
            `  *"buildctl debug histories"*) printf '%s\\n' ${HISTORY.map(h => `'${JSON.stringify(h)}'`).join(" ")} ;;`,
            '  *) echo "unexpected: docker $*" >&2; exit 1 ;;',
            "esac",
        ].join("\n"),
        df: `[ "$*" = "-B1 --output=size,avail,target /var/lib/docker/volumes/buildx_buildkit_lab0_state/_data" ] || exit 1
printf '%s\\n' '     1B-blocks        Avail Mounted on' '  ${100 * GB}  ${12 * GB} /var/lib/docker'`,
        date: `echo ${NOW}`,
        ...extra,
    };
    for (const [name, body] of Object.entries(commands)) {
        writeFileSync(path.join(dir, name), `#!/bin/bash\n${body}\n`);
        chmodSync(path.join(dir, name), 0o755);
    }
    return dir;
}

function run(command: string, args: readonly string[], bin: string) {
    const result = spawnSync(command, args, { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    rmSync(bin, { recursive: true, force: true });
    return result;
}

describe("the status view of a node", () => {
    test("shows BuildKit's version, cache against its GC limits, free disk, the running builds and the last ones with duration and cache hits", () => {
        const result = run("bash", [NODE_STATUS_SCRIPT_PATH, "amd64", "lab", "5"], standInBin());
        expect(result.stderr).toBe("");
        expect(result.stdout.split("\n")).toEqual([
            "node amd64: builder lab (BuildKit container running since 2026-12-07T02:10:00Z)",
            "  BuildKit:  v0.34.2, answering",
            "  cache:     1.8GiB used; GC limits: maxUsedSpace 20GiB, reservedSpace 10GiB, minFreeSpace 15GiB",
            "  disk:      12GiB free of 100GiB on /var/lib/docker (BELOW minFreeSpace: GC frees cache)",
            "  running:   1 build(s)",
            "    runningref  linux/arm64  started 2026-12-07T02:59:15Z, running for 45s",
            "  last 2 build(s), newest first:",
            "    failedref  -  FAILED  started 2026-12-07T02:55:00Z  took 2.8s  cached 0/2 steps (0%)",
            "    olderref  linux/amd64,linux/arm64  ok  started 2026-12-07T02:53:20Z  took 11.5s  cached 3/4 steps (75%)",
            "",
        ]);
    });

    test("lists only the LAST newest finished builds", () => {
        const result = run("bash", [NODE_STATUS_SCRIPT_PATH, "amd64", "lab", "1"], standInBin());
        expect(result.stdout).toContain("  last 1 build(s), newest first:\n    failedref ");
        expect(result.stdout).not.toContain("olderref");
    });

    test("a stopped BuildKit container, or one that does not answer, is named so; the disk is still shown", () => {
        const stopped = run("bash", [NODE_STATUS_SCRIPT_PATH, "amd64", "lab"], standInBin({ state: "exited" }));
        expect(stopped.stdout.split("\n")).toEqual([
            "node amd64: builder lab (BuildKit container exited)",
            "  BuildKit:  NOT ANSWERING: BuildKit container not running",
            "",
        ]);
        const silent = run("bash", [NODE_STATUS_SCRIPT_PATH, "amd64", "lab"],
            standInBin({ workers: "echo 'error: failed to dial: connection refused' >&2; exit 1" }));
        expect(silent.stdout).toContain("  BuildKit:  NOT ANSWERING: error: failed to dial: connection refused\n");
        expect(silent.status).toBe(0);
        const stuck = run("bash", [NODE_STATUS_SCRIPT_PATH, "amd64", "lab"], standInBin({ workers: "exit 124" }));
        expect(stuck.stdout).toContain("  BuildKit:  NOT ANSWERING: no answer within 20s\n");
    });

    test("passes shellcheck", () => {
        const result = spawnSync("shellcheck", ["--shell=bash", "--severity=style", NODE_STATUS_SCRIPT_PATH], { encoding: "utf8" });
        expect(result.stdout + result.stderr).toBe("");
        expect(result.status).toBe(0);
    });
});

describe("statusCommand", () => {
    const nodes = [{ name: "amd64", parts: LAB }, { name: "arm64", parts: { ...LAB, port: 2223 } }];

    test("is one ssh line per node as the login user, carrying the script, run as root, saying when a node is unreachable", () => {
        const lines = statusCommand(nodes).split("\n");
        expect(lines).toHaveLength(2);
        expect(lines[0]).toMatch(/^ssh -o ConnectTimeout=10 -p 2222 builder@127\.0\.0\.1 "echo [A-Za-z0-9+/=]+ \| base64 -d \| gunzip \| sudo -n bash -s -- amd64 lab 5" \|\| echo "node amd64: NOT REACHABLE over SSH"$/);
        expect(lines[1]).toMatch(/^ssh -o ConnectTimeout=10 -p 2223 builder@127\.0\.0\.1 ".* arm64 lab 5" \|\| echo "node arm64: NOT REACHABLE over SSH"$/);
        // cmd.exe's limit for a command line.
        expect(lines[0].length).toBeLessThan(8191);
    });

    test("run as printed, each line runs the script on its node, and an unreachable node is named", () => {
        // ssh stands in: the first node runs the remote command here (sudo too), the second is down.
        const bin = standInBin({}, {
            ssh: 'port="$4"; [ "$port" = 2223 ] && { echo "ssh: connect to host 127.0.0.1 port 2223: Connection refused" >&2; exit 255; }; exec bash -c "${@: -1}"',
            sudo: 'shift; exec "$@"',
        });
        const result = run("bash", ["-c", statusCommand(nodes)], bin);
        expect(result.stdout).toMatch(/^node amd64: builder lab \(BuildKit container running since .*\n {2}BuildKit: {2}v0\.34\.2, answering\n/);
        expect(result.stdout).toContain("    olderref  linux/amd64,linux/arm64  ok ");
        expect(result.stdout.trimEnd().split("\n").pop()).toBe("node arm64: NOT REACHABLE over SSH");
        expect(result.stderr).toContain("Connection refused");
    });
});
