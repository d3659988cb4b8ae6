/**
 * The step reports: the JSON object each host step prints as the last line of its stdout (jq builds
 * it: `report` in scripts/lib/common.sh). Each step's contract is declared once here; its type is
 * derived from it, and `parseStepReport` checks every report against it, so a key a script renames,
 * drops or adds fails there, naming the step and the key. Pure: no Pulumi calls.
 */
import type { StepName } from "./steps";

/** The shape of a JSON value in a report. */
type Shape =
    | "string" | "number" | "boolean"
    | { readonly nullable: Shape }
    | { readonly arrayOf: Shape }
    /** An object whose keys are data (an emulator's name, a platform). */
    | { readonly recordOf: Shape }
    | { readonly oneOf: readonly (string | boolean)[] }
    | { readonly fields: Fields };
type Fields = { readonly [key: string]: Shape };

const nullable = <S extends Shape>(shape: S) => ({ nullable: shape });
const arrayOf = <S extends Shape>(shape: S) => ({ arrayOf: shape });
const recordOf = <S extends Shape>(shape: S) => ({ recordOf: shape });
const oneOf = <const V extends readonly (string | boolean)[]>(...values: V) => ({ oneOf: values });
const fields = <const F extends Fields>(shape: F) => ({ fields: shape });
const strings = arrayOf("string");

type ValueOf<S> =
    S extends "string" ? string :
    S extends "number" ? number :
    S extends "boolean" ? boolean :
    S extends { readonly nullable: infer T } ? ValueOf<T> | null :
    S extends { readonly arrayOf: infer T } ? readonly ValueOf<T>[] :
    S extends { readonly recordOf: infer T } ? Readonly<Record<string, ValueOf<T>>> :
    S extends { readonly oneOf: readonly (infer V)[] } ? V :
    S extends { readonly fields: infer F } ? ObjectOf<F> :
    never;
type ObjectOf<F> = { readonly [K in keyof F]: ValueOf<F[K]> };

/** Every report's keys besides the step's own; `report` adds them. */
const COMMON_FIELDS = {
    changed: "boolean",
    /** Which version of the script ran (SCRIPT_SHA256 from the program); null when run by hand. */
    scriptSha256: nullable("string"),
} as const;

/** Each step's own keys. */
const STEP_FIELDS = {
    "wait-for-host": {
        os: "string", osVersion: "string", codename: "string",
        /** `dpkg --print-architecture`. */
        arch: "string",
        /** `uname -r`. */
        kernel: "string",
        cloudInit: oneOf("done", "disabled", "absent"),
        waitedSeconds: "number",
    },
    "metadata-guard": {
        action: oneOf("created", "updated", "unchanged", "deleted", "absent"),
        addresses: strings,
        table: "string",
    },
    "cache-volume": {
        /** mounted: Docker's data root is the volume; released / absent: the delete run, which found our files / none. */
        action: oneOf("mounted", "released", "absent"),
        volumeId: nullable("string"),
        device: nullable("string"),
        uuid: nullable("string"),
        filesystem: nullable("string"),
        /** This run made the filesystem: blkid found none on the volume. */
        formatted: "boolean",
        /** Bytes of an earlier data root this run moved onto the volume. */
        movedBytes: "number",
        /** The filesystem's size, when mounted. */
        sizeBytes: nullable("number"),
    },
    "docker-engine": {
        repo: "string",
        /** Installed version per Docker package. */
        packages: recordOf("string"),
        dockerVersion: "string",
        buildxVersion: "string",
        /** docker-ce and docker-ce-cli are held at DOCKER_CE_VERSION. */
        held: "boolean",
        /** Conflicting packages removed this run. */
        removed: strings,
        groupAdded: strings,
    },
    "experimental-mode": {
        restarted: "boolean",
        experimental: oneOf(true),
        daemonJson: "string",
    },
    "qemu-binfmt": {
        qemuVersion: nullable("string"),
        /** Klauser's preflight checks. */
        preflight: fields({
            kernel: "string", kernelOk: "boolean", binfmtMounted: "boolean", mountedNow: "boolean",
            updateBinfmts: nullable("string"),
            /** How the registrations persist: systemd-binfmt, binfmt-support, or both joined by "+". */
            persistence: nullable("string"),
        }),
        /** Per qemu-* entry. */
        emulators: recordOf(fields({
            flags: "string", fixBinary: "boolean", static: "boolean",
            /** This run repaired the emulator's boot-time registration or its kernel entry. */
            fixed: "boolean",
            enabled: "boolean", interpreter: nullable("string"),
            /** The file that registers it at boot. */
            source: "string",
        })),
        /** Per configured platform. */
        platforms: recordOf(fields({
            /** null: the host's CPU runs it (native). */
            emulator: nullable("string"), native: "boolean",
            /** A proof binary ran in an empty container; false: none is embedded, only the registration was checked. */
            proved: "boolean",
            /** What the proof binary printed. */
            output: nullable("string"),
            ok: "boolean",
            error: nullable("string"),
        })),
    },
    "buildx-builder": {
        action: oneOf("created", "recreated", "started", "unchanged", "deleted", "absent"),
        builder: "string", node: "string", container: "string",
        network: nullable(oneOf("bridge", "host")),
        platforms: strings,
        /** What the running buildkitd was started with. */
        insecureEntitlements: strings,
        /** The registry digest of the image the container runs (pin it as BUILDKIT_IMAGE), or its image id when it came from no registry. */
        imageDigest: nullable("string"),
        buildkitVersion: nullable("string"),
        buildxVersion: nullable("string"),
    },
    "team-access": {
        members: strings,
        /** Members who got access this run (account created, or unlocked after a removal). */
        added: strings,
        /** Members whose keys or groups were put right. */
        updated: strings,
        /** Accounts that lost access this run. */
        removed: strings,
        /** Accounts whose running processes were ended. */
        sessionsEnded: strings,
        door: oneOf("open", "closed"),
    },
    "idle-stop": {
        action: oneOf("created", "updated", "unchanged", "deleted", "absent"),
        /** 0 after a removal. */
        idleStopMinutes: "number",
        /** How often the timer checks (IDLE_CHECK_SECONDS). */
        checkSeconds: "number",
        timer: "string",
    },
} as const satisfies Record<StepName, Fields>;

/** Each step's report, by step name. */
export type StepReports = {
    readonly [S in StepName]: { readonly step: S } & ObjectOf<typeof COMMON_FIELDS> & ObjectOf<typeof STEP_FIELDS[S]>;
};
/** A step's report (for any step: the union of them). */
export type StepReport<S extends StepName = StepName> = StepReports[S];

const isObject = (value: unknown): value is Record<string, unknown> =>
    typeof value === "object" && value !== null && !Array.isArray(value);

/** Where the problems of `value` against `shape` are, each as "<path> <what is wrong>". */
function problems(shape: Shape, value: unknown, path: string): string[] {
    const wrong = (expected: string) => [`${path} should be ${expected}, is ${JSON.stringify(value)?.slice(0, 80)}`];
    if (typeof shape === "string") {
        return typeof value === shape ? [] : wrong(`a ${shape}`);
    }
    if ("nullable" in shape) {
        return value === null ? [] : problems(shape.nullable, value, path);
    }
    if ("oneOf" in shape) {
        return shape.oneOf.includes(value as string | boolean) ? [] : wrong(`one of ${JSON.stringify(shape.oneOf)}`);
    }
    if ("arrayOf" in shape) {
        return Array.isArray(value) ? value.flatMap((item, i) => problems(shape.arrayOf, item, `${path}[${i}]`)) : wrong("an array");
    }
    if (!isObject(value)) {
        return wrong("an object");
    }
    if ("recordOf" in shape) {
        return Object.entries(value).flatMap(([key, item]) => problems(shape.recordOf, item, `${path}[${JSON.stringify(key)}]`));
    }
    const at = (key: string) => path ? `${path}.${key}` : key;
    return [
        ...Object.keys(shape.fields).filter(key => !(key in value)).map(key => `${at(key)} is missing`),
        ...Object.keys(value).filter(key => !(key in shape.fields)).map(key => `${at(key)} is not in the contract`),
        ...Object.entries(shape.fields).filter(([key]) => key in value).flatMap(([key, item]) => problems(item, value[key], at(key))),
    ];
}

/**
 * The report on the last line of a step's stdout, checked against the step's contract. Throws when
 * the last line is not this step's JSON report, or when the report breaks the contract (naming each key).
 */
export function parseStepReport<S extends StepName>(step: S, stdout: string): StepReport<S> {
    const lastLine = stdout.trim().split("\n").pop() ?? "";
    let report: unknown;
    try {
        report = JSON.parse(lastLine);
    } catch {
        // The check below says what the step printed instead.
    }
    if (!isObject(report) || report.step !== step) {
        throw new Error(`host step ${step} did not end with its JSON report; last line was: ${lastLine.slice(0, 200)}`);
    }
    const found = problems({ fields: { step: oneOf(step), ...COMMON_FIELDS, ...STEP_FIELDS[step] } }, report, "");
    if (found.length > 0) {
        throw new Error(`host step ${step}: its report breaks its contract (components/step-reports.ts): ${found.join("; ")}`);
    }
    return report as StepReport<S>;
}
