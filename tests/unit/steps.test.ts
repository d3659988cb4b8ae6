import { execFileSync } from "child_process";
import { readFileSync } from "fs";

import { hostConfig } from "../config-problems";
import { BUILDKIT_IMAGE, STEP_DEFAULTS } from "../../components/host-facts";
import { shellQuote } from "../../components/shell";
import {
    COMMON_LIBRARY_PATH, EVERY_HOST_STEPS, HOST_FACTS_PATH, HostStepDefinition, hostStepDefinitions, STEP_NAMES, stepCommand,
    stepFingerprints, stepRunCommand,
} from "../../components/steps";

const RAW = {
    allowedSshCidrs: JSON.stringify(["10.20.0.0/16"]),
    team: JSON.stringify([
        "alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICMuitBm3Na3mokQbnQlnPS+q4yZBeoCIqm3SvbczITp alice@laptop",
        "bob ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF bob@ci",
    ]),
    dockerCeVersion: "5:28.5.2-1~ubuntu.24.04~noble",
    cacheVolumeSizeGb: "100",
};
const CONFIG = hostConfig(RAW);

describe("host step definitions", () => {
    const steps = hostStepDefinitions(CONFIG, "ubuntu");

    test("run in the program's order, one script each", () => {
        // CONFIG has a cache volume and no idle power-off.
        const names = STEP_NAMES.filter(name => name !== "idle-stop");
        expect(steps.map(s => s.name)).toEqual(names);
        expect(steps.map(s => s.scriptPath.split("/").slice(-2).join("/"))).toEqual(names.map(name => `scripts/${name}.sh`));
    });

    test("send the shared functions and the host facts ahead of each step's own script", () => {
        const library = readFileSync(COMMON_LIBRARY_PATH, "utf8");
        const facts = readFileSync(HOST_FACTS_PATH, "utf8");
        for (const step of steps) {
            expect(step.script).toBe(`${library}\n${facts}\n${readFileSync(step.scriptPath, "utf8")}`);
        }
    });

    test("pass the configuration as the scripts' documented environment", () => {
        const env = Object.fromEntries(steps.map(s => [s.name, s.environment]));
        expect(env["wait-for-host"]).toEqual({ WAIT_TIMEOUT_SECONDS: "900" });
        expect(env["metadata-guard"]).toEqual({ GUARD_ACTION: "create" });
        expect(env["cache-volume"]).toEqual({ CACHE_VOLUME_ACTION: "create" });
        expect(env["docker-engine"]).toEqual({
            DOCKER_APT_REPO: "https://download.docker.com/linux",
            DOCKER_APT_KEY_FINGERPRINT: STEP_DEFAULTS.dockerAptKeyFingerprint,
            DOCKER_CE_VERSION: "5:28.5.2-1~ubuntu.24.04~noble",
            DOCKER_GROUP_USERS: "ubuntu",
        });
        expect(env["qemu-binfmt"]).toEqual({ QEMU_PLATFORMS: "linux/amd64 linux/arm64 linux/arm/v7 linux/ppc64le linux/s390x linux/riscv64" });
        expect(env["buildx-builder"]).toEqual({
            BUILDER_ACTION: "create",
            BUILDER_KEEP_CACHE: "true",
            BUILDER_NAME: "buildx-host",
            BUILDER_USER: "ubuntu",
            BUILDKIT_IMAGE: BUILDKIT_IMAGE,
            BUILDKIT_INSECURE_ENTITLEMENTS: "",
            BUILDKIT_GC_RESERVED_SPACE: "10%",
            BUILDKIT_GC_MAX_USED_SPACE: "70%",
            BUILDKIT_GC_MIN_FREE_SPACE: "20%",
        });
        expect(env["team-access"].TEAM_MEMBERS.split("\n").map(line => line.split(" ")[0])).toEqual(["alice", "bob"]);
        expect(env["team-access"].BUILDER_NAME).toBe("buildx-host");
    });

    test("every variable a step passes is one its script reads", () => {
        for (const step of steps) {
            for (const name of [...Object.keys({ ...step.environment, ...step.deleteEnvironment }), ...step.resourceParameters ?? []]) {
                expect([step.name, name, step.script.includes(`${name}:-`) || step.script.includes(`${name}=`)])
                    .toEqual([step.name, name, true]);
            }
        }
    });

    test("delete removes the metadata guard, the cache volume's mount entries and the builder, and revokes every team account", () => {
        expect(steps.filter(s => s.deleteEnvironment).map(s => s.name)).toEqual(["metadata-guard", "cache-volume", "buildx-builder", "team-access"]);
        expect(steps.find(s => s.name === "metadata-guard")!.deleteEnvironment).toEqual({ GUARD_ACTION: "delete" });
        expect(steps.find(s => s.name === "cache-volume")!.deleteEnvironment).toEqual({ CACHE_VOLUME_ACTION: "delete" });
        expect(steps.find(s => s.name === "buildx-builder")!.deleteEnvironment!.BUILDER_ACTION).toBe("delete");
        expect(steps.find(s => s.name === "team-access")!.deleteEnvironment).toEqual({ TEAM_MEMBERS: "", BUILDER_NAME: "buildx-host" });
    });
});

describe("the cache-volume step", () => {
    const cacheStep = hostStepDefinitions(CONFIG, "ubuntu").find(s => s.name === "cache-volume")!;
    const fingerprint = stepFingerprints([cacheStep])[0];

    test("is there only with a cache volume: not for cacheVolumeSizeGb 0, nor in existing mode", () => {
        const names = (config: typeof CONFIG) => hostStepDefinitions(config, "ubuntu").map(s => s.name);
        expect(names(hostConfig({ ...RAW, cacheVolumeSizeGb: "0" }))).toEqual(EVERY_HOST_STEPS);
        expect(names(hostConfig({ hostMode: "existing", existingHostAddress: "build1.example.com", existingHostUser: "builder",
            existingHostPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n",
            existingHostPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF" })))
            .not.toContain("cache-volume");
    });

    test("runs with the volume's id, which only the component knows once the volume exists; without it, no command", () => {
        const builder = hostStepDefinitions(CONFIG, "ubuntu").find(s => s.name === "buildx-builder")!;
        expect(stepRunCommand(builder, fingerprint, "i-0abc", { CACHE_VOLUME_ID: "vol-0123456789abcdef0" })).not.toContain("CACHE_VOLUME_ID");
        expect(cacheStep.resourceParameters).toEqual(["CACHE_VOLUME_ID"]);
        expect(stepRunCommand(cacheStep, fingerprint, "i-0abc", { CACHE_VOLUME_ID: "vol-0123456789abcdef0" }))
            .toMatch(/ CACHE_VOLUME_ACTION='create' CACHE_VOLUME_ID='vol-0123456789abcdef0' bash -s$/);
        expect(() => stepRunCommand(cacheStep, fingerprint, "i-0abc"))
            .toThrow("host step cache-volume runs with CACHE_VOLUME_ID, which the component did not give");
    });

    test("a cache volume kept on delete keeps the builder's cache on delete too", () => {
        const builderEnvironment = (retain: boolean) => hostStepDefinitions(hostConfig({ ...RAW, retainCacheVolume: String(retain) }), "ubuntu")
            .find(s => s.name === "buildx-builder")!.deleteEnvironment;
        expect([builderEnvironment(true)!.BUILDER_KEEP_CACHE, builderEnvironment(false)!.BUILDER_KEEP_CACHE]).toEqual(["true", "false"]);
    });
});

describe("stepCommand", () => {
    test("runs the script from stdin as root with env assignments", () => {
        expect(stepCommand({ A: "1", B: "two words" })).toBe("sudo -n env A='1' B='two words' bash -s");

    });

    test("quoting survives a real shell, whatever the value holds", () => {
        const nasty = "it's $(rm -rf /) `id` \"q\" \\ ; & | \n second line";
        const printed = execFileSync("bash", ["-c", `printf %s ${shellQuote(nasty)}`]).toString();
        expect(printed).toBe(nasty);
        const command = stepCommand({ VALUE: nasty }).replace("sudo -n env", "env").replace("bash -s", "bash -c 'printf %s \"$VALUE\"'");
        expect(execFileSync("bash", ["-c", command]).toString()).toBe(nasty);
    });
});

/** The cache volume's id, as the component gives it to every step: only the step that runs with it takes it. */
const VOLUME = { CACHE_VOLUME_ID: "vol-0123456789abcdef0" };

describe("what re-runs a step", () => {
    const steps = hostStepDefinitions(CONFIG, "ubuntu");

    /** The inputs of each step's remote command that re-run it in place when they change. */
    function runInputs(definitions: HostStepDefinition[]) {
        const fingerprints = stepFingerprints(definitions);
        return definitions.map((step, i) => ({ create: stepRunCommand(step, fingerprints[i], "i-0abc", VOLUME), stdin: step.script }));
    }
    const before = runInputs(steps);

    test("editing one script re-runs that step and the steps after it, never those before", () => {
        const index = STEP_NAMES.indexOf("experimental-mode");
        const edited = steps.map((s, i) => i === index ? { ...s, script: `${s.script}\n# edited\n` } : s);
        runInputs(edited).forEach((inputs, i) => {
            expect([STEP_NAMES[i], inputs.stdin !== before[i].stdin]).toEqual([STEP_NAMES[i], i === index]);
            // The edited step's own command changes too: it carries SCRIPT_SHA256, printed in its report.
            expect([STEP_NAMES[i], inputs.create !== before[i].create]).toEqual([STEP_NAMES[i], i >= index]);
        });
        const [original, changed] = [stepFingerprints(steps), stepFingerprints(edited)];
        changed.forEach((fingerprint, i) => expect(fingerprint.scriptSha256 !== original[i].scriptSha256).toBe(i === index));
    });

    test("changing one parameter re-runs that step and the steps after it, in place", () => {
        const changed = hostStepDefinitions({ ...CONFIG, buildkitGc: { ...CONFIG.buildkitGc, maxUsedSpace: "120GB" } }, "ubuntu");
        const index = STEP_NAMES.indexOf("buildx-builder");
        runInputs(changed).forEach((inputs, i) => {
            expect([STEP_NAMES[i], inputs.create !== before[i].create]).toEqual([STEP_NAMES[i], i >= index]);
            expect(inputs.stdin).toBe(before[i].stdin);
        });
        expect(changed[index].identity).toEqual(steps[index].identity);
    });

    test("only a new builder name or owner replaces the builder step", () => {
        const builder = (definitions: HostStepDefinition[]) => definitions.find(s => s.name === "buildx-builder")!;
        expect(builder(steps).identity).toEqual(["buildx-host", "ubuntu"]);
        expect(builder(hostStepDefinitions({ ...CONFIG, builderName: "other" }, "ubuntu")).identity).toEqual(["other", "ubuntu"]);
        expect(builder(hostStepDefinitions(CONFIG, "admin")).identity).toEqual(["buildx-host", "admin"]);
        expect(steps.filter(s => s.identity).map(s => s.name)).toEqual(["buildx-builder"]);
    });

    test("editing the shared functions re-runs every step", () => {
        runInputs(steps.map(s => ({ ...s, script: `# edited\n${s.script}` })))
            .forEach((inputs, i) => expect(inputs.stdin).not.toBe(before[i].stdin));
    });

    test("a different machine behind the connection re-runs every step", () => {
        const fingerprints = stepFingerprints(steps);
        steps.forEach((step, i) => {
            expect(stepRunCommand(step, fingerprints[i], "i-0def", VOLUME)).not.toBe(before[i].create);
            expect(stepRunCommand(step, fingerprints[i], "i-0def", VOLUME)).toMatch(/^sudo -n env UPSTREAM_STEPS_SHA256='[0-9a-f]{64}' HOST_ID='i-0def' /);
        });
    });

    test("the same inputs give the same commands", () => {
        expect(runInputs(hostStepDefinitions(CONFIG, "ubuntu"))).toEqual(before);
    });
});
