/**
 * The host steps: which script runs, in which order, with which parameters.
 *
 * This is the single definition both the Pulumi components and the host lab use: both build the
 * command a step runs with `stepRunCommand`. Pure: no Pulumi calls.
 */
import { createHash } from "crypto";
import { readFileSync } from "fs";
import * as path from "path";

import { BuildHostConfig, CacheVolumeSettings } from "./config";
import { shellQuote } from "./shell";

export const STEP_NAMES = [
    "wait-for-host",
    "metadata-guard",
    "cache-volume",
    "docker-engine",
    "experimental-mode",
    "qemu-binfmt",
    "buildx-builder",
    "team-access",
    "idle-stop",
] as const;

export type StepName = typeof STEP_NAMES[number];

/** The steps a host runs only when its configuration asks for them (see `stepParameters`). */
export const OPTIONAL_STEPS = ["cache-volume", "idle-stop"] as const satisfies readonly StepName[];

export type OptionalStepName = typeof OPTIONAL_STEPS[number];

/** The steps every host runs, in order: all but the optional ones. */
export const EVERY_HOST_STEPS = STEP_NAMES.filter(step => !(OPTIONAL_STEPS as readonly StepName[]).includes(step));

/** One host step: a script from components/scripts and the environment it runs with. */
export interface HostStepDefinition<S extends StepName = StepName> {
    readonly name: S;
    readonly scriptPath: string;
    /** What runs, fed on stdin: the shared functions (scripts/lib/common.sh), the host facts, then the step's script. */
    readonly script: string;
    readonly environment: Readonly<Record<string, string>>;
    /** Environment of the delete run, for steps that own something on the host to remove. */
    readonly deleteEnvironment?: Readonly<Record<string, string>>;
    /**
     * Parameters whose values exist only once the cloud made what they name (the cache volume's
     * id): the component adds them to the create command (`stepRunCommand`).
     */
    readonly resourceParameters?: readonly string[];
    /**
     * Parameters naming what the step owns (the builder's name and owner): a change replaces the
     * step, removing the old thing before the new one is made. Any other change re-runs it in place.
     */
    readonly identity?: readonly string[];
}

export const SCRIPTS_DIR = path.join(__dirname, "scripts");
export const COMMON_LIBRARY_PATH = path.join(SCRIPTS_DIR, "lib", "common.sh");
/** Generated from host-facts.ts: the tables the scripts share with the program. */
export const HOST_FACTS_PATH = path.join(SCRIPTS_DIR, "lib", "host-facts.sh");

/** What a step runs with, besides its script. */
type StepParameters = Pick<HostStepDefinition, "environment" | "deleteEnvironment" | "identity" | "resourceParameters">;

function loadStep(name: StepName, parameters: StepParameters): HostStepDefinition {
    const scriptPath = path.join(SCRIPTS_DIR, `${name}.sh`);
    const script = [COMMON_LIBRARY_PATH, HOST_FACTS_PATH, scriptPath].map(file => readFileSync(file, "utf8")).join("\n");
    return { name, scriptPath, script, ...parameters };
}

/** team-access.sh's TEAM_MEMBERS: one line per key, "<name> [from=<cidr>,…] <key>". */
function teamMembersLines(config: BuildHostConfig): string {
    return config.team.flatMap(member => member.keys.map(key =>
        [member.name, ...key.from.length > 0 ? [`from=${key.from.join(",")}`] : [], key.sshPublicKey].join(" "))).join("\n");
}

/** The cache volume a host's configuration asks for; none in existing mode. */
function cacheVolumeOf(config: BuildHostConfig): CacheVolumeSettings | undefined {
    return config.mode === "ec2" ? config.ec2.cacheVolume : undefined;
}

/**
 * Each step's parameters, taken from the configuration; the order is STEP_NAMES'. An optional step
 * that is off has none: it is not run, and a host that had it runs its delete (the step's resource goes).
 */
function stepParameters(config: BuildHostConfig, loginUser: string):
        Record<Exclude<StepName, OptionalStepName>, StepParameters> & Record<OptionalStepName, StepParameters | undefined> {
    const cacheVolume = cacheVolumeOf(config);
    const builderEnvironment = {
        BUILDER_NAME: config.builderName,
        BUILDER_USER: loginUser,
        BUILDKIT_IMAGE: config.buildkitImage,
        BUILDKIT_INSECURE_ENTITLEMENTS: config.allowInsecureEntitlements.join(" "),
        BUILDKIT_GC_RESERVED_SPACE: config.buildkitGc.reservedSpace,
        BUILDKIT_GC_MAX_USED_SPACE: config.buildkitGc.maxUsedSpace,
        BUILDKIT_GC_MIN_FREE_SPACE: config.buildkitGc.minFreeSpace,
        // A retained cache volume keeps the cache on it: the builder's delete leaves its cache volume.
        BUILDER_KEEP_CACHE: String(cacheVolume?.retain ?? false),
    };
    return {
        "wait-for-host": { environment: { WAIT_TIMEOUT_SECONDS: String(config.hostReadyTimeoutMinutes * 60) } },
        // On delete the guard goes too: a server given back keeps no rule of ours.
        "metadata-guard": {
            environment: { GUARD_ACTION: "create" },
            deleteEnvironment: { GUARD_ACTION: "delete" },
        },
        "cache-volume": cacheVolume && {
            environment: { CACHE_VOLUME_ACTION: "create" },
            deleteEnvironment: { CACHE_VOLUME_ACTION: "delete" },
            resourceParameters: ["CACHE_VOLUME_ID"],
        },
        "docker-engine": {
            environment: {
                DOCKER_APT_REPO: config.dockerAptRepo,
                DOCKER_APT_KEY_FINGERPRINT: config.dockerAptKeyFingerprint,
                DOCKER_CE_VERSION: config.dockerCeVersion ?? "",
                DOCKER_GROUP_USERS: loginUser,
            },
        },
        "experimental-mode": { environment: {} },
        "qemu-binfmt": { environment: { QEMU_PLATFORMS: config.platforms.join(" ") } },
        "buildx-builder": {
            environment: { ...builderEnvironment, BUILDER_ACTION: "create" },
            deleteEnvironment: { ...builderEnvironment, BUILDER_ACTION: "delete" },
            identity: [config.builderName, loginUser],
        },
        // On delete, an empty team: every account the step made loses its keys, and the member door closes.
        "team-access": {
            environment: { TEAM_MEMBERS: teamMembersLines(config), BUILDER_NAME: config.builderName },
            deleteEnvironment: { TEAM_MEMBERS: "", BUILDER_NAME: config.builderName },
        },
        // Set back to 0, the step goes and its delete removes the timer.
        "idle-stop": config.idleStopMinutes === 0 ? undefined : {
            environment: { IDLE_STOP_MINUTES: String(config.idleStopMinutes), BUILDER_NAME: config.builderName },
            deleteEnvironment: { IDLE_STOP_MINUTES: "0", BUILDER_NAME: config.builderName },
        },
    };
}

/** The steps the configuration asks for, in the order they run (STEP_NAMES), with their parameters. */
export function hostStepDefinitions(config: BuildHostConfig, loginUser: string): HostStepDefinition[] {
    const parameters: Record<StepName, StepParameters | undefined> = stepParameters(config, loginUser);
    return STEP_NAMES.flatMap(name => {
        const stepParameters = parameters[name];
        return stepParameters === undefined ? [] : [loadStep(name, stepParameters)];
    });
}

/**
 * The command that runs a step's script, fed on stdin, as root with its parameters.
 * Parameters travel as `env` assignments because sshd's AcceptEnv usually drops SSH environment requests.
 */
export function stepCommand(environment: Readonly<Record<string, string>>): string {
    const assignments = Object.entries(environment).map(([name, value]) => `${name}=${shellQuote(value)}`);
    return ["sudo", "-n", "env", ...assignments, "bash", "-s"].join(" ");
}

/**
 * The create command of a step as `pulumi up` runs it (and the host lab too). Three assignments
 * besides the step's parameters: `SCRIPT_SHA256`, which the step prints in its report (which
 * version of it ran); and two the scripts ignore, which make the command change, and so re-run the
 * step in place, when the steps before it change (`UPSTREAM_STEPS_SHA256`) and when the machine
 * behind the connection changes (`HOST_ID`: a replaced instance keeps its Elastic IP, so the
 * connection alone would not show it). `resourceValues` gives the step's `resourceParameters`.
 */
export function stepRunCommand(step: HostStepDefinition, fingerprint: StepFingerprint, hostId: string,
                               resourceValues: Readonly<Record<string, string>> = {}): string {
    const parameters = step.resourceParameters ?? [];
    const missing = parameters.filter(name => resourceValues[name] === undefined);
    if (missing.length > 0) {
        throw new Error(`host step ${step.name} runs with ${missing.join(", ")}, which the component did not give`);
    }
    return stepCommand({
        UPSTREAM_STEPS_SHA256: fingerprint.upstreamSha256, HOST_ID: hostId, SCRIPT_SHA256: fingerprint.scriptSha256,
        ...step.environment, ...Object.fromEntries(parameters.map(name => [name, resourceValues[name]])),
    });
}

/** The delete command of a step that owns something on the host; undefined for the others. */
export function stepDeleteCommand(step: HostStepDefinition, fingerprint: StepFingerprint): string | undefined {
    return step.deleteEnvironment && stepCommand({ SCRIPT_SHA256: fingerprint.scriptSha256, ...step.deleteEnvironment });
}

export function sha256(text: string): string {
    return createHash("sha256").update(text).digest("hex");
}

/** What a step's run depends on: its own script and parameters, and the steps before it. */
export interface StepFingerprint {
    readonly scriptSha256: string;
    readonly parametersSha256: string;
    readonly upstreamSha256: string;
}

/**
 * Fingerprints for every step, in order. Each carries the fingerprint of the steps before it, so a
 * change to one step re-runs it and the steps after it (they may depend on what it did), never those before.
 */
export function stepFingerprints(steps: readonly HostStepDefinition[]): StepFingerprint[] {
    let upstreamSha256 = sha256("");
    return steps.map(step => {
        const fingerprint = {
            scriptSha256: sha256(step.script),
            parametersSha256: sha256(JSON.stringify(step.environment)),
            upstreamSha256,
        };
        upstreamSha256 = sha256(JSON.stringify(fingerprint));
        return fingerprint;
    });
}
