/**
 * The fleet attach script, run for real by a POSIX sh with stand-ins for `ssh` (a node answers or
 * not, by port) and `docker` (each call recorded): what it creates, what it says, its exit status.
 */
import { spawnSync } from "child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import * as yaml from "js-yaml";
import { tmpdir } from "os";
import * as path from "path";

import { EndpointParts, fleetAttachScript, FleetNodeEndpoint, NODE_CHECK_SECONDS } from "../../components/endpoint";
import { parseFileCommand } from "../engine/github-actions";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF";
const LAB: EndpointParts = { host: "127.0.0.1", port: 2222, user: "builder", hostPublicKey: KEY, builderName: "lab" };
const FLEET: FleetNodeEndpoint[] = [
    { name: "amd64", platforms: ["linux/amd64", "linux/riscv64"], parts: LAB },
    { name: "arm64", platforms: ["linux/arm64"], parts: { ...LAB, port: 2223 } },
];

interface AttachRun {
    readonly status: number | null;
    readonly stdout: string;
    readonly stderr: string;
    /** Every `docker` call, its arguments joined by spaces. */
    readonly docker: string[];
    /** Every `ssh` call's arguments. */
    readonly ssh: string[];
    /** What it wrote to GITHUB_OUTPUT, when set. */
    readonly outputs?: Record<string, string>;
}

/** The shells it must run in: Debian's sh (dash), and bash (macOS's /bin/sh, and a workflow's `run:`). */
const SHELLS = ["sh", "bash"] as const;
let shell: typeof SHELLS[number] = "sh";

/** Runs the script with `shell`; the nodes on `downPorts` refuse the connection as ssh says it. */
function attach(script: string, downPorts: readonly number[], github = false): AttachRun {
    const dir = mkdtempSync(path.join(tmpdir(), "attach-"));
    try {
        writeFileSync(path.join(dir, "ssh"), [
            "#!/bin/sh",
            `echo "$*" >> ${dir}/ssh.log`,
            "for arg; do door=$arg; done",
            ...downPorts.map(port => `case $door in *:${port}) echo "ssh: connect to host 127.0.0.1 port ${port}: Connection refused" >&2; exit 255;; esac`),
            "exit 0",
        ].join("\n"));
        writeFileSync(path.join(dir, "docker"), `#!/bin/sh\necho "$*" >> ${dir}/docker.log\n`);
        chmodSync(path.join(dir, "ssh"), 0o755);
        chmodSync(path.join(dir, "docker"), 0o755);
        writeFileSync(path.join(dir, "output"), "");
        const env = { PATH: `${dir}:/usr/bin:/bin`, ...github ? { GITHUB_OUTPUT: path.join(dir, "output") } : {} };
        const result = spawnSync(shell, ["-s"], { input: script, encoding: "utf8", env });
        const lines = (file: string) => { try { return readFileSync(path.join(dir, file), "utf8").split("\n").filter(Boolean); } catch { return []; } };
        return {
            status: result.status, stdout: result.stdout, stderr: result.stderr, docker: lines("docker.log"), ssh: lines("ssh.log"),
            ...github ? { outputs: parseFileCommand(readFileSync(path.join(dir, "output"), "utf8")) } : {},
        };
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

const CREATE_ALL = [
    "buildx rm lab-remote",
    "buildx create --name lab-remote --driver remote --node amd64 --platform linux/amd64,linux/riscv64 ssh://alice@127.0.0.1:2222 --use",
    "buildx create --name lab-remote --append --node arm64 --platform linux/arm64 ssh://alice@127.0.0.1:2223",
];

describe.each(SHELLS)("the fleet attach script, run by %s", shellName => {
    beforeAll(() => { shell = shellName; });
    const failing = fleetAttachScript(FLEET, "alice", "fail");
    const emulating = fleetAttachScript(FLEET, "alice", "emulate");

    test("passes shellcheck as a POSIX sh script, and sh -n", () => {
        for (const script of [failing, emulating]) {
            const result = spawnSync("shellcheck", ["--shell=sh", "--severity=style", "-"], { input: script, encoding: "utf8" });
            if (result.error) {
                throw new Error(`shellcheck could not run (${result.error.message}); install it: apt-get install shellcheck`);
            }
            expect(result.stdout + result.stderr).toBe("");
            expect(spawnSync("sh", ["-n"], { input: script }).status).toBe(0);
        }
    });

    test("checks every member door with a bounded, non-interactive ssh that sends nothing", () => {
        const run = attach(failing, []);
        expect(run.ssh.sort()).toEqual(["2222", "2223"].map(port =>
            `-o ConnectTimeout=${NODE_CHECK_SECONDS} -o BatchMode=yes -o ServerAliveInterval=2 -o ServerAliveCountMax=2 ssh://alice@127.0.0.1:${port}`));
    });

    test("with every node answering, creates the builder as the plain commands do, each node on its platforms", () => {
        for (const script of [failing, emulating]) {
            const run = attach(script, []);
            expect([run.status, run.stderr]).toEqual([0, ""]);
            expect(run.docker).toEqual(CREATE_ALL);
            expect(run.stdout).toBe("buildx-host: lab-remote attached\n");
        }
    });

    test("fail: a node down is named with its platforms and ssh's reason; the builder keeps it, and the script exits 1", () => {
        const run = attach(failing, [2223]);
        expect(run.status).toBe(1);
        expect(run.docker).toEqual(CREATE_ALL);
        expect(run.stderr.split("\n")).toEqual([
            "buildx-host: error: node arm64 (ssh://alice@127.0.0.1:2223) did not answer: " +
                "ssh: connect to host 127.0.0.1 port 2223: Connection refused; linux/arm64 cannot be built there until it is back",
            "buildx-host: error: lab-remote keeps every node, so buildx sends linux/arm64 nowhere else: a build asking for it waits 20 s and fails; " +
                "build the other platforms, or run this again when the node is back",
            "",
        ]);
    });

    test("emulate: a node down is left out, and its platforms go to the first node that answers, with a warning", () => {
        const run = attach(emulating, [2223]);
        expect(run.status).toBe(0);
        expect(run.docker).toEqual([
            "buildx rm lab-remote",
            "buildx create --name lab-remote --driver remote --node amd64 --platform linux/amd64,linux/riscv64,linux/arm64 ssh://alice@127.0.0.1:2222 --use",
        ]);
        expect(run.stderr).toContain("buildx-host: warning: node arm64 (ssh://alice@127.0.0.1:2223) did not answer");
        expect(run.stderr).toContain("buildx-host: warning: linux/arm64 goes to node amd64, emulated (slower), until every node answers: run this again then\n");
        // The first node down: the second one takes its platforms, and is the builder's first node.
        expect(attach(emulating, [2222]).docker[1]).toBe(
            "buildx create --name lab-remote --driver remote --node arm64 --platform linux/arm64,linux/amd64,linux/riscv64 ssh://alice@127.0.0.1:2223 --use");
    });

    test("no node answering: both modes exit 1 and say so", () => {
        expect(attach(failing, [2222, 2223]).status).toBe(1);
        const run = attach(emulating, [2222, 2223]);
        expect([run.status, run.docker]).toEqual([1, []]);
        expect(run.stderr).toContain("buildx-host: error: no node answered: nothing to attach\n");
    });

    describe("in a GitHub Actions step (GITHUB_OUTPUT set)", () => {
        test("writes setup-buildx-action's endpoint, platforms and append inputs, and creates nothing", () => {
            const run = attach(failing, [], true);
            expect([run.status, run.docker]).toEqual([0, []]);
            expect(run.outputs).toMatchObject({ endpoint: "ssh://alice@127.0.0.1:2222", platforms: "linux/amd64,linux/riscv64" });
            expect(yaml.load(run.outputs!.append)).toEqual([{ name: "arm64", endpoint: "ssh://alice@127.0.0.1:2223", platforms: "linux/arm64" }]);
        });

        test("fail: stops the job at once with an error annotation naming the node, writing no inputs", () => {
            const run = attach(failing, [2223], true);
            expect([run.status, run.outputs]).toEqual([1, {}]);
            expect(run.stdout).toMatch(/^::error::node arm64 \(ssh:\/\/alice@127\.0\.0\.1:2223\) did not answer/);
        });

        test("emulate: the first node that answers takes the platforms, with a warning annotation; no append left", () => {
            const run = attach(emulating, [2223], true);
            expect(run.status).toBe(0);
            expect(run.outputs).toEqual({ endpoint: "ssh://alice@127.0.0.1:2222", platforms: "linux/amd64,linux/riscv64,linux/arm64", append: "" });
            expect(run.stdout).toContain("::warning::linux/arm64 goes to node amd64, emulated (slower)");
        });
    });
});
