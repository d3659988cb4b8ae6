/**
 * The step reports' contract (components/step-reports.ts) against what the scripts really print:
 * each script's own print_report runs in bash, its jq program for real (jq is installed by .ci/run),
 * on a stub host, and the program's parser checks the result.
 */
import { spawnSync } from "child_process";
import { readFileSync } from "fs";
import * as path from "path";

import { BUILDKIT_VERSION } from "../../components/host-facts";
import { parseStepReport } from "../../components/step-reports";
import { COMMON_LIBRARY_PATH, HOST_FACTS_PATH, SCRIPTS_DIR, StepName, STEP_NAMES } from "../../components/steps";

const BUILDX_VERSION_LINE = "github.com/docker/buildx v0.29.1 a1b2c3d";

/**
 * What each step's print_report reads, as a host in the middle of a run would have it: variables
 * the step sets and commands it calls. Where a step has a function that records part of the
 * report, the stub calls it.
 */
const STUB_HOSTS: Record<StepName, string> = {
    "wait-for-host": `
        dpkg() { echo amd64; }
        uname() { echo 6.12.48+deb13-amd64; }
        OS_ID=debian OS_VERSION=13 OS_CODENAME=trixie CLOUD_INIT=done`,
    "metadata-guard": `
        validate_input
        CHANGED=true ACTION=created`,
    "cache-volume": `
        df() { echo Size; echo 105089261568; }
        CHANGED=true ACTION=mounted CACHE_VOLUME_ID=vol-0123456789abcdef0 DEVICE=/dev/nvme1n1 FS_TYPE=ext4 FORMATTED=true
        UUID=2f7a66ac-ef0a-40cb-9b35-80fd2a7dbe01 MOVED_BYTES=4096`,
    "docker-engine": `
        installed_version() { echo "5:28.5.2-1~debian.13~trixie"; }
        is_held() { [[ "$1" == docker-ce ]]; }
        docker() { if [[ "$1" == version ]]; then echo 28.5.2; else echo "${BUILDX_VERSION_LINE}"; fi; }
        CHANGED=true REPO_URL=https://download.docker.com/linux/debian REMOVED=(docker.io runc) GROUP_ADDED=(admin)`,
    "experimental-mode": `
        CHANGED=true RESTARTED=true`,
    "qemu-binfmt": `
        dpkg() { echo amd64; }
        dpkg-query() { echo "1:10.0.2+ds-2"; }
        parse_platforms
        KERNEL=6.12.48+deb13-amd64 MECHANISMS[systemd-binfmt]=1
        record_emulator qemu-aarch64 POCF enabled /usr/libexec/qemu-binfmt/aarch64-binfmt-P true false /usr/lib/binfmt.d/qemu-aarch64.conf
        record_proof linux/amd64 "" true true x86_64 ""
        record_proof linux/arm64 qemu-aarch64 true true aarch64 ""`,
    "buildx-builder": `
        docker() { echo "${BUILDX_VERSION_LINE}"; }
        CHANGED=true ACTION=created NETWORK=bridge PLATFORMS=(linux/amd64 linux/arm64) RUNNING_ENTITLEMENTS=(network.host)
        IMAGE_DIGEST="moby/buildkit@sha256:${"0".repeat(64)}" BUILDKIT_VERSION=${BUILDKIT_VERSION}`,
    "team-access": `
        MEMBERS=(alice bob) ADDED=(bob) UPDATED=(alice) REMOVED=(carol) SESSIONS_ENDED=(carol)`,
    "idle-stop": `
        IDLE_STOP_MINUTES=060 validate_input
        CHANGED=true ACTION=created`,
};
const STUB_ENVIRONMENT = { QEMU_PLATFORMS: "linux/amd64 linux/arm64", SCRIPT_SHA256: "f".repeat(64), BUILDX_VERSION_LINE };

/**
 * Runs a step's script with its main left out, then `stub` and `body`, in bash; the script's text may
 * be edited first. Like a step's main, the stub and body are read whole before they run, and with
 * nothing on stdin (the script arrives there).
 */
function runScript(step: StepName, stub: string, body: string, edit: (script: string) => string = script => script) {
    const script = edit(readFileSync(path.join(SCRIPTS_DIR, `${step}.sh`), "utf8")).replace(/^main "\$@"$/m, "");
    const result = spawnSync("bash", ["-s"], {
        input: [readFileSync(COMMON_LIBRARY_PATH, "utf8"), readFileSync(HOST_FACTS_PATH, "utf8"), script,
            "{", "exec </dev/null", stub, body, "}"].join("\n"),
        env: { ...process.env, ...STUB_ENVIRONMENT }, encoding: "utf8",
    });
    if (result.status !== 0) {
        throw new Error(`${step}.sh exited ${result.status}:\n${result.stderr}`);
    }
    return result.stdout;
}

describe("each script's report meets its contract", () => {
    test.each([...STEP_NAMES])("%s", step => {
        const report = parseStepReport(step, runScript(step, STUB_HOSTS[step], "print_report"));
        expect(report).toMatchObject({ step, scriptSha256: "f".repeat(64) });
    });

    test("empty values become null where the contract allows it (a deleted builder)", () => {
        const stub = 'docker() { return 1; }\nCHANGED=true ACTION=deleted NETWORK="" IMAGE_DIGEST="" BUILDKIT_VERSION=""';
        expect(parseStepReport("buildx-builder", runScript("buildx-builder", stub, "print_report"))).toMatchObject({
            action: "deleted", network: null, platforms: [], insecureEntitlements: [], imageDigest: null, buildkitVersion: null,
            buildxVersion: null,
        });
    });

    test("a key renamed in a script's jq program fails, naming the step and both keys", () => {
        const renamed = (script: string) => script.replace("arch: $arch", "architecture: $arch");
        const stdout = runScript("wait-for-host", STUB_HOSTS["wait-for-host"], "print_report", renamed);
        expect(() => parseStepReport("wait-for-host", stdout)).toThrow(
            "host step wait-for-host: its report breaks its contract (components/step-reports.ts): " +
            "arch is missing; architecture is not in the contract");
    });
});

test("control characters and invalid UTF-8 in a failed proof's captured stderr reach the report as valid JSON", () => {
    // The proof container "fails" with hostile bytes on stderr; prove_platform captures them into the report.
    const docker = String.raw`docker() {
        case "$1" in
            run) printf 'exec /proof: exec format error\x01 \x1b[31mred\x1b[0m \xff\xfe\tend\n' >&2; return 1 ;;
            import) cat >/dev/null ;;
        esac
    }
    timeout() { shift; "$@"; }`;
    const stdout = runScript("qemu-binfmt", `${STUB_HOSTS["qemu-binfmt"]}\n${docker}`,
        'TMP_ERR="$(mktemp)"\nprove_platform linux/arm64 2>/dev/null\nrm -f "${TMP_ERR}"\nprint_report');
    const report = parseStepReport("qemu-binfmt", stdout);
    expect(report.platforms["linux/arm64"]).toEqual({
        emulator: "qemu-aarch64", native: false, proved: true, output: null, ok: false,
        error: "exec /proof: exec format error\u0001 \u001b[31mred\u001b[0m \ufffd\ufffd\tend ",
    });
});

describe("parseStepReport", () => {
    const line = (report: object) => `apt noise\n${JSON.stringify(report)}\n`;
    const guard = { step: "metadata-guard", changed: false, scriptSha256: null, action: "unchanged", addresses: ["169.254.169.254"], table: "inet t" };

    test("reads the report on the last line", () => {
        expect(parseStepReport("metadata-guard", line(guard))).toEqual(guard);
    });

    test("fails clearly when the last line is not the step's report", () => {
        expect(() => parseStepReport("docker-engine", "E: Unable to locate package docker-ce"))
            .toThrow(/docker-engine did not end with its JSON report; last line was: E: Unable/);
        expect(() => parseStepReport("docker-engine", line({ ...guard })))
            .toThrow(/docker-engine did not end with its JSON report/);
    });

    test("names every missing key, key of the wrong type and key outside the contract, nested ones by their path", () => {
        const { table: _table, ...withoutTable } = guard;
        expect(() => parseStepReport("metadata-guard", line({ ...withoutTable, changed: "yes", addresses: ["a", 7], action: "made", extra: 1 })))
            .toThrow("host step metadata-guard: its report breaks its contract (components/step-reports.ts): table is missing; " +
                'extra is not in the contract; changed should be a boolean, is "yes"; ' +
                'action should be one of ["created","updated","unchanged","deleted","absent"], is "made"; addresses[1] should be a string, is 7');
        const qemu = JSON.parse(runScript("qemu-binfmt", STUB_HOSTS["qemu-binfmt"], "print_report")) as Record<string, any>;
        qemu.platforms["linux/arm64"].ok = "yes";
        delete qemu.preflight.kernel;
        expect(() => parseStepReport("qemu-binfmt", JSON.stringify(qemu)))
            .toThrow('preflight.kernel is missing; platforms["linux/arm64"].ok should be a boolean, is "yes"');
    });
});
