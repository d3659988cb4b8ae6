/**
 * Host lab, second host: Debian 12 (bookworm) with Debian's own Docker 20.10, the oldest engine and
 * QEMU (7.2) the scripts support. Docker's apt repository has no stand-in for bookworm here (Debian 12
 * ships no docker-buildx to repack), so the engine comes from Debian and the suite runs the steps
 * that follow it: experimental mode and QEMU, as the program defines them.
 *
 * Run through tests/hostlab/run.sh, after the Debian 13 suite, on a host of its own.
 */
import { StepReport } from "../../components/step-reports";
import { hostStepDefinitions, StepName } from "../../components/steps";
import { binfmtFlags, expectStepOk, labConfig, readLabHost, requiredEnv, runStep, ssh, stepNamed, sudoOk } from "./lab";

const lab = readLabHost(requiredEnv("HOSTLAB_ENV_FILE"));
const config = labConfig(lab);
const steps = hostStepDefinitions(config, lab.user);

const step = <S extends StepName>(name: S) => stepNamed(steps, name);

function outputs(report: StepReport<"qemu-binfmt">): Record<string, string | null> {
    return Object.fromEntries(Object.entries(report.platforms).map(([p, r]) => [p, r.ok ? r.output : null]));
}

const EVERY_PLATFORM_PROVED = {
    "linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l",
    "linux/ppc64le": "ppc64le", "linux/s390x": "s390x", "linux/riscv64": "riscv64",
};

describe("a Debian 12 host with Debian's Docker 20.10", () => {
    beforeAll(() => {
        sudoOk(lab, "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q " +
            "-o DPkg::Lock::Timeout=600 --no-install-recommends docker.io >/dev/null");
        expect(ssh(lab, "sudo -n docker version -f '{{.Server.Version}}'").stdout).toMatch(/^20\.10\./);
        sudoOk(lab, `usermod -aG docker ${lab.user}`);
    });

    test("experimental mode and QEMU steps succeed; every default platform runs its proof binary in a container", () => {
        expect(expectStepOk(runStep(lab, step("experimental-mode"), "bookworm-first"))).toMatchObject({ experimental: true });
        const qemu = expectStepOk(runStep(lab, step("qemu-binfmt"), "bookworm-first"));
        expect(String(qemu.qemuVersion)).toMatch(/^1:7\.2/);
        expect(outputs(qemu)).toEqual(EVERY_PLATFORM_PROVED);
    });

    test("an emulator registered without F is re-registered with F and proved again", () => {
        sudoOk(lab, [
            "conf=/usr/lib/binfmt.d/qemu-arm.conf",
            "line=$(grep -v '^#' $conf | grep :)",
            "echo -1 > /proc/sys/fs/binfmt_misc/qemu-arm",
            "rm -f /etc/binfmt.d/qemu-arm.conf",
            "printf '%s\\n' \"${line%:*}:P\" > $conf",
            "/usr/lib/systemd/systemd-binfmt $conf",
        ].join("\n"));
        expect(binfmtFlags(sudoOk(lab, "cat /proc/sys/fs/binfmt_misc/qemu-arm"))).toBe("P");
        const fixed = expectStepOk(runStep(lab, step("qemu-binfmt"), "bookworm-fix-F"));
        expect(fixed.changed).toBe(true);
        expect(fixed.emulators["qemu-arm"].fixed).toBe(true);
        expect(binfmtFlags(sudoOk(lab, "cat /proc/sys/fs/binfmt_misc/qemu-arm"))).toContain("F");
        expect(sudoOk(lab, "cat /etc/binfmt.d/qemu-arm.conf")).toMatch(/:[A-Z]*F[A-Z]*$/m);
        expect(outputs(fixed)).toEqual(EVERY_PLATFORM_PROVED);
    });

    test("a second run changes nothing", () => {
        expect(expectStepOk(runStep(lab, step("experimental-mode"), "bookworm-second")).changed).toBe(false);
        expect(expectStepOk(runStep(lab, step("qemu-binfmt"), "bookworm-second")).changed).toBe(false);
    });
});
