import { execFileSync, spawnSync } from "child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";

import { gcLimitBytes } from "../../components/config/buildkit-gc";
import { COMMON_LIBRARY_PATH, HOST_FACTS_PATH, hostStepDefinitions, SCRIPTS_DIR, STEP_NAMES } from "../../components/steps";
import { hostConfig } from "../config-problems";

const scripts = readdirSync(SCRIPTS_DIR).filter(f => f.endsWith(".sh")).sort();

test("components/scripts holds exactly one script per step", () => {
    expect(scripts).toEqual([...STEP_NAMES].map(name => `${name}.sh`).sort());
});

/** Runs shellcheck (installed by .ci/run) on files, or on `input` as standard input. */
function shellcheck(args: string[], input?: string) {
    const result = spawnSync("shellcheck", ["--shell=bash", "--severity=style", "--external-sources", "--source-path=SCRIPTDIR", ...args],
        { encoding: "utf8", input, cwd: SCRIPTS_DIR });
    if (result.error) {
        throw new Error(`shellcheck could not run (${result.error.message}); install it: apt-get install shellcheck`);
    }
    expect(result.stdout + result.stderr).toBe("");
    expect(result.status).toBe(0);
}

test.each([...scripts, "lib/common.sh", "lib/host-facts.sh"])("%s passes shellcheck", script => {
    shellcheck([path.join(SCRIPTS_DIR, script)]);
});

test("what each step really sends (shared functions + script) passes shellcheck and bash -n", () => {
    const config = hostConfig({ allowedSshCidrs: JSON.stringify(["10.20.0.0/16"]) });
    for (const step of hostStepDefinitions(config, "ubuntu")) {
        shellcheck(["-"], step.script);
        execFileSync("bash", ["-n"], { input: step.script });
    }
});

test.each(scripts)("%s is valid bash that with strict mode and a main at the bottom", script => {
    const file = path.join(SCRIPTS_DIR, script);
    execFileSync("bash", ["-n", file]);
    const text = readFileSync(file, "utf8");
    expect(text).toMatch(/^#!\/usr\/bin\/env bash\n/);
    expect(text).toContain("set -euo pipefail");
    expect(text).toMatch(/\nmain "\$@"\n?$/);
});

test("the QEMU step's embedded proof binary for this machine's architecture runs and prints its name", () => {
    const script = readFileSync(path.join(SCRIPTS_DIR, "qemu-binfmt.sh"), "utf8");
    const native = process.arch === "arm64" ? "aarch64" : "x86_64";
    const encoded = new RegExp(`^PROOF_ELF_${native}='([A-Za-z0-9+/=]+)'$`, "m").exec(script)?.[1];
    expect(encoded).toBeDefined();
    const dir = mkdtempSync(path.join(tmpdir(), "proof-"));
    try {
        const binary = path.join(dir, native);
        writeFileSync(binary, Buffer.from(encoded!, "base64"));
        chmodSync(binary, 0o755);
        expect(execFileSync(binary).toString()).toBe(`${native}\n`);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

/** buildx-builder.sh's functions with the shared ones, main left out, run after `body` in bash. */
function builderFunctions(body: string, env: Record<string, string> = {}): string {
    const script = readFileSync(path.join(SCRIPTS_DIR, "buildx-builder.sh"), "utf8").replace(/^main "\$@"$/m, "");
    return execFileSync("bash", ["-s"], {
        input: `${readFileSync(COMMON_LIBRARY_PATH, "utf8")}\n${readFileSync(HOST_FACTS_PATH, "utf8")}\n${script}\n${body}`,
        env: { ...process.env, ...env },
    }).toString().trim();
}

test("the builder runs on Docker's bridge, and on the host network only when the daemon has none", () => {
    const choose = (bridgeExists: boolean) => builderFunctions(
        `docker() { [[ "$1 $2 $3" == "network inspect bridge" ]] && ${bridgeExists}; }\nchoose_network 2>/dev/null\necho "\${NETWORK}"`);
    expect(choose(true)).toBe("bridge");
    expect(choose(false)).toBe("host");
});

test("buildkitd gets no insecure entitlement unless BUILDKIT_INSECURE_ENTITLEMENTS lists it, and an unknown one is refused", () => {
    const args = (entitlements: string) => builderFunctions("validate_input\nbuildkitd_args", { BUILDKIT_INSECURE_ENTITLEMENTS: entitlements });
    expect(args("")).toBe("--config\n/etc/buildkit/buildkitd.toml");
    expect(args("network.host security.insecure")).toBe("--config\n/etc/buildkit/buildkitd.toml\n" +
        "--allow-insecure-entitlement=network.host\n--allow-insecure-entitlement=security.insecure");
    expect(() => args("device")).toThrow(/BUILDKIT_INSECURE_ENTITLEMENTS: 'device' is not one of network.host security.insecure/);
});

describe("the builder step checks the GC limits against the filesystem of Docker's data root before changing anything", () => {
    const GIB = 1024 ** 3;
    /** check_gc_fits_data_root with docker and df answering for a data root on a filesystem of `bytes`. */
    const check = (bytes: number, limits: Record<string, string>) => {
        try {
            return { ok: true, output: builderFunctions(
                `docker() { echo /srv/docker; }\ndf() { printf '1B-blocks\\n%s\\n' ${bytes}; }\ncheck_gc_fits_data_root 2>&1`, limits) };
        } catch (error) {
            return { ok: false, output: String((error as { stdout?: Buffer }).stdout) };
        }
    };
    const limits = (reserved: string, maxUsed: string, minFree: string) =>
        ({ BUILDKIT_GC_RESERVED_SPACE: reserved, BUILDKIT_GC_MAX_USED_SPACE: maxUsed, BUILDKIT_GC_MIN_FREE_SPACE: minFree });

    test("limits that fit pass, sizes read 1024-based and percentages as BuildKit reads them", () => {
        expect(check(GIB, limits("32MB", "512MiB", "0.5GB"))).toEqual({ ok: true, output: "buildx-builder: GC limits fit the filesystem of /srv/docker (1024 MiB)" });
        // 80% and 20% of 1 TiB: 820e9 + 205e9 bytes, less than 1 TiB
        expect(check(1024 * GIB, limits("10%", "80%", "20%")).ok).toBe(true);
    });

    test("maxUsedSpace and minFreeSpace beyond the filesystem fail, naming both keys, with a maxUsedSpace that fits", () => {
        const result = check(GIB, limits("32MB", "1GB", "256MB"));
        expect(result.ok).toBe(false);
        expect(result.output).toContain("buildkitGcMaxUsedSpace (BUILDKIT_GC_MAX_USED_SPACE=1GB) and buildkitGcMinFreeSpace " +
            "(BUILDKIT_GC_MIN_FREE_SPACE=256MB) do not fit together on the filesystem of /srv/docker (1024 MiB)");
        expect(result.output).toContain("(example: pulumi config set buildkitGcMaxUsedSpace 768MB)");
        expect(check(GIB, limits("32MB", "768MB", "256MB")).ok).toBe(true);
        expect(check(200 * GIB, limits("10GB", "190GB", "20GB")).output).toContain("pulumi config set buildkitGcMaxUsedSpace 180GB");
    });

    test("reservedSpace above maxUsedSpace fails, naming both", () => {
        const result = check(1024 * GIB, limits("50%", "100GB", "20GB"));
        expect(result.ok).toBe(false);
        expect(result.output).toContain("buildkitGcReservedSpace (BUILDKIT_GC_RESERVED_SPACE=50%) is above buildkitGcMaxUsedSpace (BUILDKIT_GC_MAX_USED_SPACE=100GB)");
    });

    test("the step reads each limit as the program's preview check does (gcLimitBytes): the two cannot drift apart", () => {
        for (const disk of [GIB, 100 * GIB, 1536 * 1024 ** 2]) {
            for (const limit of ["10%", "70%", "20%", "99%", "32MB", "0.5GB", "512MiB", "80GB", "2TB", "1024KB", "4096B"]) {
                expect({ limit, disk, bytes: Number(builderFunctions(`gc_limit_bytes '${limit}' ${disk}`)) })
                    .toEqual({ limit, disk, bytes: gcLimitBytes(limit, disk) });
            }
        }
    });

    test("the check runs before the step writes or starts anything", () => {
        const main = /\nmain\(\) \{\n([\s\S]*?)\n\}/.exec(readFileSync(path.join(SCRIPTS_DIR, "buildx-builder.sh"), "utf8"))![1];
        expect(main.indexOf("check_gc_fits_data_root")).toBeGreaterThan(0);
        expect(main.indexOf("check_gc_fits_data_root")).toBeLessThan(main.indexOf("write_buildkitd_toml"));
    });
});

describe("the run log (one line per step run, for operators and for counting what ran)", () => {
    /** Runs `body` as a step's main with the shared functions, the run log in a temporary file. */
    function runLogged(body: string): { status: number | null; lines: string[] } {
        const dir = mkdtempSync(path.join(tmpdir(), "run-log-"));
        const runLog = path.join(dir, "log", "steps.log");
        try {
            const result = spawnSync("bash", ["-s"], {
                input: `${readFileSync(COMMON_LIBRARY_PATH, "utf8")}\nreadonly STEP=demo\nCHANGED=false\nmain() { begin_step; ${body}; }\nmain\n`,
                env: { ...process.env, BUILDX_HOST_RUN_LOG: runLog }, encoding: "utf8",
            });
            return { status: result.status, lines: readFileSync(runLog, "utf8").trimEnd().split("\n") };
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    }
    const LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ demo (\S+) seconds=\d+\.\d( .*)?$/;

    test("a run that changed something logs changed=true with its report", () => {
        const { status, lines } = runLogged(`CHANGED=true; report '{}'`);
        expect(status).toBe(0);
        expect(lines).toHaveLength(1);
        expect(LINE.exec(lines[0])?.slice(1)).toEqual(["changed=true", ' {"step":"demo","changed":true,"scriptSha256":null}']);
    });

    test("the report says which version of the script ran", () => {
        const { lines } = runLogged(`SCRIPT_SHA256=abc123; report '{}'`);
        expect(LINE.exec(lines[0])?.[2]).toBe(' {"step":"demo","changed":false,"scriptSha256":"abc123"}');
    });

    test("a run that changed nothing logs changed=false", () => {
        const { lines } = runLogged(`report '{}'`);
        expect(LINE.exec(lines[0])?.[1]).toBe("changed=false");
    });

    test("a failing run logs how it failed, with the report it printed if any", () => {
        const { status, lines } = runLogged(`CHANGED=true; report '{}'; die "proof failed"`);
        expect(status).toBe(1);
        expect(LINE.exec(lines[0])?.slice(1)).toEqual(["failed(exit=1)", ' {"step":"demo","changed":true,"scriptSha256":null}']);
        expect(LINE.exec(runLogged("false").lines[0])?.slice(1)).toEqual(["failed(exit=1)", undefined]);
    });

    test.each(scripts)("%s starts its main with begin_step and prints its report through report, as jq builds it", script => {
        const text = readFileSync(path.join(SCRIPTS_DIR, script), "utf8");
        expect(text).toMatch(/\nmain\(\) \{\n {2}begin_step\n/);
        expect(text).toMatch(/\nprint_report\(\) \{\n(.*\n)*? {2}report '\{/);
        // No JSON written by hand: no "key": pair in a shell string (a log line may quote one, with a space).
        expect(text).not.toMatch(/\\"\w+\\":\S|'\{"/);
    });
});

test("the member door refuses to open while the login user running the step is in the members' group", () => {
    const script = readFileSync(path.join(SCRIPTS_DIR, "team-access.sh"), "utf8").replace(/^main "\$@"$/m, "");
    const check = (sudoUser: string) => spawnSync("bash", ["-s"], {
        input: `${readFileSync(COMMON_LIBRARY_PATH, "utf8")}\n${readFileSync(HOST_FACTS_PATH, "utf8")}\n${script}\n` +
            // A host where the group exists and "builder" was put in it by hand.
            'getent() { [[ "$1 $2" == "group buildx-members" ]]; }\nin_group() { [[ "$1 $2" == "builder buildx-members" ]]; }\n' +
            "check_login_user && echo allowed\n",
        encoding: "utf8", env: { ...process.env, SUDO_USER: sudoUser },
    });
    const inGroup = check("builder");
    expect(inGroup.status).not.toBe(0);
    expect(inGroup.stderr).toContain("the login user builder is in the group buildx-members, which sshd confines to BuildKit");
    expect(check("ubuntu").stdout.trim()).toBe("allowed");
});
