/**
 * One home per host fact (components/host-facts.ts): the program validates against it and the
 * scripts read the shell block generated from it, so a changed table changes both.
 */
import { execFileSync, spawnSync } from "child_process";
import { readFileSync, writeFileSync } from "fs";
import * as path from "path";

import { DEFAULTS } from "../../components/config";
import { ubuntuAmiNamePattern } from "../../components/ec2-host";
import * as facts from "../../components/host-facts";
import { COMMON_LIBRARY_PATH, HOST_FACTS_PATH, SCRIPTS_DIR } from "../../components/steps";
import { configProblems, hostConfig } from "../config-problems";

const EC2 = { allowedSshCidrs: JSON.stringify(["10.20.0.0/16"]) };

test("lib/host-facts.sh is generated from host-facts.ts (UPDATE_HOST_FACTS=1 npm test rewrites it)", () => {
    if (process.env.UPDATE_HOST_FACTS === "1") {
        writeFileSync(HOST_FACTS_PATH, facts.hostFactsShell());
    }
    expect(readFileSync(HOST_FACTS_PATH, "utf8")).toBe(facts.hostFactsShell());
});

/** Runs `body` in bash after the facts and the given script's functions (its `main` call removed). */
function withScript(script: string, body: string, factsText = facts.hostFactsShell()): { status: number | null; output: string } {
    const text = readFileSync(path.join(SCRIPTS_DIR, script), "utf8").replace(/^main "\$@"$/m, "");
    const result = spawnSync("bash", ["-s"], {
        input: `${readFileSync(COMMON_LIBRARY_PATH, "utf8")}\n${factsText}\n${text}\n${body}\n`, encoding: "utf8",
    });
    return { status: result.status, output: (result.stdout + result.stderr).trim() };
}

describe("the program and the scripts read the same table", () => {
    test("platforms: what config accepts the QEMU step maps to the same emulator; what it refuses, the step refuses", () => {
        for (const [platform, emulator] of Object.entries(facts.EMULATED_PLATFORMS)) {
            expect([platform, withScript("qemu-binfmt.sh", `qemu_name_for ${platform}`).output]).toEqual([platform, emulator]);
        }
        for (const platform of ["linux/arm64/v8", "windows/amd64"]) {
            expect(configProblems({ ...EC2, platforms: JSON.stringify([platform]) }).some(p => p.startsWith("buildx-host:platforms "))).toBe(true);
            expect([platform, withScript("qemu-binfmt.sh", `qemu_name_for ${platform}`).status]).toEqual([platform, 1]);
        }
    });

    test("the default platforms are the same for the program and the script run on its own", () => {
        expect(DEFAULTS.platforms).toEqual(facts.DEFAULT_PLATFORMS);
        expect(withScript("qemu-binfmt.sh", 'echo "$QEMU_PLATFORMS"').output).toBe(facts.DEFAULT_PLATFORMS.join(" "));
    });

    test("a script run on its own takes the settings' defaults (STEP_DEFAULTS, each read by a script)", () => {
        const readBy: Record<string, (keyof typeof facts.STEP_DEFAULTS)[]> = {
            "buildx-builder.sh": ["builderName", "buildkitImage", "buildkitGcReservedSpace", "buildkitGcMaxUsedSpace", "buildkitGcMinFreeSpace"],
            "team-access.sh": ["builderName"],
            "docker-engine.sh": ["dockerAptRepo", "dockerAptKeyFingerprint"],
        };
        for (const [script, settings] of Object.entries(readBy)) {
            const printed = withScript(script, settings.map(setting => `echo "$${facts.shellName(setting)}"`).join("\n")).output;
            expect([script, printed.split("\n")]).toEqual([script, settings.map(setting => String(DEFAULTS[setting]))]);
        }
        expect(withScript("wait-for-host.sh", 'echo "$WAIT_TIMEOUT_SECONDS"').output).toBe(String(DEFAULTS.hostReadyTimeoutMinutes * 60));
        expect(new Set([...Object.values(readBy).flat(), "hostReadyTimeoutMinutes"])).toEqual(new Set(Object.keys(facts.STEP_DEFAULTS)));
    });

    test("builder names: the builder step accepts exactly what config accepts", () => {
        for (const name of ["buildx-host", "team_b2", "a", "Team", "team.builder", "2team", "x".repeat(64)]) {
            const configOk = !configProblems({ ...EC2, builderName: name, instanceType: "bad type" }).some(p => p.startsWith("buildx-host:builderName "));
            const scriptOk = withScript("buildx-builder.sh",
                `BUILDER_ACTION=create BUILDER_NAME='${name}' BUILDER_USER=u BUILDKIT_IMAGE=${facts.BUILDKIT_IMAGE} ` +
                "BUILDKIT_GC_RESERVED_SPACE=10GB BUILDKIT_GC_MAX_USED_SPACE=80GB BUILDKIT_GC_MIN_FREE_SPACE=20GB validate_input").status === 0;
            expect([name, scriptOk]).toEqual([name, configOk]);
        }
    });

    test("disk sizes: the builder step accepts exactly the GC limits config accepts", () => {
        for (const size of ["10GB", "512MiB", "1.5TB", "10%", "80", "10 GB", "10gb", "100%", "-1GB"]) {
            const configOk = !configProblems({ ...EC2, buildkitGcMaxUsedSpace: size, rootVolumeSizeGb: "16384", instanceType: "bad type" })
                .some(p => p.startsWith("buildx-host:buildkitGcMaxUsedSpace "));
            const scriptOk = withScript("buildx-builder.sh", `validate_disk_space LIMIT '${size}'`).status === 0;
            expect([size, scriptOk]).toEqual([size, configOk]);
        }
    });

    test("releases: wait-for-host accepts exactly the supported releases; the EC2 AMIs are the Ubuntu ones", () => {
        const accepts = (os: string, version: string, codename: string) => withScript("wait-for-host.sh",
            `os_release_field() { case "$1" in ID) echo ${os} ;; VERSION_ID) echo ${version} ;; VERSION_CODENAME) echo ${codename} ;; esac; }\nread_os_release`).status === 0;
        for (const release of facts.SUPPORTED_RELEASES) {
            expect([release, accepts(release.os, release.version, release.codename)]).toEqual([release, true]);
        }
        expect(accepts("ubuntu", "20.04", "focal")).toBe(false);
        // docker-engine takes the repository tree from the same table: the OS, never a version or codename.
        const repoFor = (os: string) => withScript("docker-engine.sh",
            `os_release_field() { case "$1" in ID) echo ${os} ;; VERSION_CODENAME) echo x ;; esac; }\n` +
            "dpkg() { echo amd64; }\nDOCKER_APT_REPO=https://repo.example\nread_platform\necho \"$REPO_URL\"");
        expect([repoFor("ubuntu"), repoFor("debian")].map(r => r.output)).toEqual(["https://repo.example/ubuntu", "https://repo.example/debian"]);
        expect([repoFor("noble").status, repoFor("12").status]).toEqual([1, 1]);
        expect(accepts("fedora", "41", "")).toBe(false);
        for (const release of facts.SUPPORTED_RELEASES.filter(r => r.os === "ubuntu")) {
            expect(hostConfig({ ...EC2, ubuntuRelease: release.version }).mode).toBe("ec2");
            expect(ubuntuAmiNamePattern({ ubuntuRelease: release.version, architecture: "amd64" })).toContain(`ubuntu-${release.codename}-${release.version}-amd64`);
        }
        expect(configProblems({ ...EC2, ubuntuRelease: "20.04" }).some(p => p.includes("\"22.04\", \"24.04\""))).toBe(true);
    });

    test("team members: the team step accepts exactly the account names and key types config accepts", () => {
        const ed25519 = "AAAAC3NzaC1lZDI1NTE5AAAAICMuitBm3Na3mokQbnQlnPS+q4yZBeoCIqm3SvbczITp";
        const scriptAccepts = (name: string, key: string) => withScript("team-access.sh",
            `TEAM_MEMBERS='${name} ${key}'\nssh-keygen() { return 0; }\nparse_members`).status === 0;
        const configAccepts = (name: string, key: string) =>
            !configProblems({ ...EC2, instanceType: "bad type", team: JSON.stringify([`${name} ${key}`]) }).some(p => p.startsWith("buildx-host:team[0] "));
        for (const name of ["alice", "_ci", "bob-2", "Alice", "2bob", "a".repeat(33)]) {
            expect([name, scriptAccepts(name, `ssh-ed25519 ${ed25519}`)]).toEqual([name, configAccepts(name, `ssh-ed25519 ${ed25519}`)]);
        }
        for (const type of facts.SSH_KEY_TYPES) {
            expect([type, withScript("team-access.sh", `[[ '${type} AAAA' =~ \${KEY_PATTERN} ]]`).status]).toEqual([type, 0]);
        }
        expect(withScript("team-access.sh", "[[ 'ssh-dss AAAA' =~ ${KEY_PATTERN} ]]").status).toBe(1);
        expect(withScript("team-access.sh", "[[ 'sk-ssh-ed25519@opensshXcom AAAA' =~ ${KEY_PATTERN} ]]").status).toBe(1);
        expect(configAccepts("alice", `ssh-dss ${ed25519}`)).toBe(false);
    });

    test("a changed table changes the shell block the scripts read", () => {
        const original = facts.hostFactsShell();
        const emulators = facts.EMULATED_PLATFORMS as Record<string, string>;
        emulators["linux/loong64"] = "loongarch64";
        try {
            const changed = facts.hostFactsShell();
            expect(changed).not.toBe(original);
            expect(withScript("qemu-binfmt.sh", "qemu_name_for linux/loong64", changed).output).toBe("loongarch64");
            expect(withScript("qemu-binfmt.sh", "qemu_name_for linux/loong64", original).status).toBe(1);
        } finally {
            delete emulators["linux/loong64"];
        }
        expect(execFileSync("bash", ["-n"], { input: original }).toString()).toBe("");
    });
});
