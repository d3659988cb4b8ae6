/**
 * Concurrent load on one builder: projects of their own, each built for linux/amd64 and linux/arm64
 * by a client of its own through the member door, over a base step every project of a round shares.
 * The base step appends the architecture it ran on to a BuildKit cache mount, so a later build that
 * reads the mount counts how often BuildKit really ran it. Used by hostlab.test.ts (the proof) and
 * bench/load.ts (throughput).
 */
import { createHash } from "crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "fs";
import * as path from "path";

import { cacheUse, LabClient } from "./client";
import { RunResult } from "./lab";

/** The architecture `uname -m` prints for each platform's output directory. */
const ARCH_OF: Readonly<Record<string, string>> = { linux_amd64: "x86_64", linux_arm64: "aarch64" };

export interface LoadProject {
    readonly name: string;
    readonly context: string;
    /** What each platform's /result must hold: the project file's sha256 line, then the architecture. */
    readonly expected: Readonly<Record<string, string>>;
}

/** One build of a round: a project, built by the client attached under that name. */
export interface LoadBuild {
    readonly client: string;
    readonly project: LoadProject;
}

export interface LoadBuildResult extends LoadBuild {
    readonly run: RunResult;
    /** Each platform's /result, as exported. */
    readonly results: Readonly<Record<string, string>>;
    /** The build's plain-progress log: every COPY and RUN step a cache hit? */
    readonly allCached: boolean;
}

function contextDir(stateDir: string, busyboxDir: string, name: string, dockerfile: readonly string[]): string {
    const dir = path.join(stateDir, `load-context-${name}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (const arch of ["amd64", "arm64"]) {
        copyFileSync(path.join(busyboxDir, `busybox-${arch}`), path.join(dir, `busybox-${arch}`));
        chmodSync(path.join(dir, `busybox-${arch}`), 0o755);
    }
    writeFileSync(path.join(dir, "Dockerfile"), [...dockerfile, ""].join("\n"));
    return dir;
}

const BUSYBOX_STAGE = ["FROM scratch", "ARG TARGETARCH", "COPY busybox-${TARGETARCH} /bin/busybox"];

/** A RUN step of busybox shell commands; with `runs`, the round's cache mount at /runs. */
const busyboxRun = (commands: string, runs?: string) =>
    `RUN --network=none ${runs ? `--mount=type=cache,id=load-base-${runs},target=/runs ` : ""}` +
    `["/bin/busybox", "sh", "-c", ${JSON.stringify(commands)}]`;

/**
 * A project of round `round`: the round's base step, then its own file and a step that hashes
 * `workBytes` zeros (CPU work, emulated on arm64) and the file.
 */
export function loadProject(stateDir: string, busyboxDir: string, round: string, name: string, workBytes = 0): LoadProject {
    const context = contextDir(stateDir, busyboxDir, `${round}-${name}`, [
        ...BUSYBOX_STAGE,
        busyboxRun(`/bin/busybox uname -m >> /runs/ran; /bin/busybox echo ${round} > /base`, round),
        "COPY project.txt /project.txt",
        busyboxRun(`/bin/busybox head -c ${workBytes} /dev/zero | /bin/busybox sha256sum > /work && ` +
            "/bin/busybox sha256sum /project.txt > /result && /bin/busybox uname -m >> /result"),
    ]);
    const content = `project ${name} of round ${round}\n`;
    writeFileSync(path.join(context, "project.txt"), content);
    const line = `${createHash("sha256").update(content).digest("hex")}  /project.txt`;
    return {
        name, context,
        expected: Object.fromEntries(Object.entries(ARCH_OF).map(([platform, arch]) => [platform, `${line}\n${arch}`])),
    };
}

function readResults(out: string, file: string): Record<string, string> {
    return Object.fromEntries(Object.keys(ARCH_OF).map(platform => {
        const result = path.join(out, platform, file);
        return [platform, existsSync(result) ? readFileSync(result, "utf8").trim() : "(missing)"];
    }));
}

/** Starts every build at once, each into an output directory of its own; resolves when all have ended. */
export async function buildAtOnce(client: LabClient, stateDir: string, label: string,
                                  builds: readonly LoadBuild[]): Promise<LoadBuildResult[]> {
    return Promise.all(builds.map(async (build, index) => {
        const out = path.join(stateDir, `load-output-${label}-${index}`);
        const run = await client.buildAlongside(build.client, `${label}-${index}-${build.client}`, build.project.context, out);
        return { ...build, run, results: readResults(out, "result"), allCached: cacheUse(run.stdout + run.stderr).allCached };
    }));
}

/**
 * How many times the base step of `round` ran for each platform, read from its cache mount by a
 * build as `client` (a new step, so it really runs; BuildKit may or may not share a cache mount
 * across platforms, so each platform counts only its own architecture's lines).
 */
export async function baseStepRuns(client: LabClient, stateDir: string, busyboxDir: string, round: string,
                                   clientName: string): Promise<Record<string, number>> {
    const context = contextDir(stateDir, busyboxDir, `${round}-base-runs`,
        [...BUSYBOX_STAGE, busyboxRun("/bin/busybox cat /runs/ran > /ran", round)]);
    const out = path.join(stateDir, `load-output-${round}-base-runs`);
    const run = await client.buildAlongside(clientName, `${round}-base-runs`, context, out);
    if (run.status !== 0) {
        throw new Error(`reading the base step's runs failed (exit ${run.status}):\n${run.stderr.slice(-3000)}`);
    }
    const ran = readResults(out, "ran");
    return Object.fromEntries(Object.entries(ARCH_OF).map(([platform, arch]) =>
        [platform, ran[platform].split("\n").filter(line => line.trim() === arch).length]));
}
