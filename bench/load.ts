/**
 * bench/load.sh's measurement: throughput of one builder under concurrent load. The lab host
 * ($HOSTLAB_ENV_FILE) is provisioned by the program's steps with one team member per concurrent
 * client (lab.ts provisionLabHost); each client is a client container of its own attached through
 * the member door (tests/hostlab/client.ts). A level runs BENCH_BUILDS distinct two-platform
 * projects (tests/hostlab/concurrent-load.ts: a shared base step, then the project's own step
 * hashing BENCH_WORK_BYTES zeros, emulated on arm64), at most N at a time, and counts builds per
 * minute of wall time.
 *
 * BuildKit's `max-parallelism` ([worker.oci] in the host's buildkitd.toml) is measured as the
 * settings in BENCH_MAX_PARALLELISM list ("unset", or a number): a lab-only experiment that writes
 * the key into the file the builder step placed and restarts the BuildKit container; the file is
 * put back at the end.
 *
 * Environment: HOSTLAB_* (tests/hostlab/infra/session.sh), and (defaults in brackets)
 *   BENCH_LEVELS          [1 4 8]  concurrent builds per level
 *   BENCH_BUILDS          [8]      builds per level
 *   BENCH_WORK_BYTES      [33554432]  zeros each project's step hashes (32 MiB)
 *   BENCH_MAX_PARALLELISM ["unset <host CPUs>"]
 * Output: progress on stderr; the Markdown table on stdout.
 */
import { knownHostsLine, memberBuildxCreateCommand } from "../components/endpoint";
import { LabClient } from "../tests/hostlab/client";
import { loadProject } from "../tests/hostlab/concurrent-load";
import {
    labAptSettings, labConfig, LabHost, memberKey, provisionLabHost, readLabHost, reportOf, requiredEnv, RunResult, ssh, sudoOk, tail, teamEntry,
} from "../tests/hostlab/lab";

const log = (message: string) => process.stderr.write(`bench-load: ${message}\n`);
const words = (name: string, fallback: string) => (process.env[name] || fallback).split(/[\s,]+/).filter(Boolean);
const positive = (name: string, value: string) => {
    if (!/^[1-9][0-9]*$/.test(value)) {
        throw new Error(`${name}: '${value}' is not a positive number`);
    }
    return Number(value);
};

const host: LabHost = readLabHost(requiredEnv("HOSTLAB_ENV_FILE"));
const levels = words("BENCH_LEVELS", "1 4 8").map(level => positive("BENCH_LEVELS", level));
const buildsPerLevel = positive("BENCH_BUILDS", process.env.BENCH_BUILDS || "8");
const workBytes = positive("BENCH_WORK_BYTES", process.env.BENCH_WORK_BYTES || "33554432");
const hostCpus = sudoOk(host, "nproc").trim();
const parallelismSettings = words("BENCH_MAX_PARALLELISM", `unset ${hostCpus}`)
    .map(setting => setting === "unset" ? setting : String(positive("BENCH_MAX_PARALLELISM", setting)));
const busyboxDir = requiredEnv("HOSTLAB_BUSYBOX_DIR");

const clientNames = Array.from({ length: Math.max(...levels) }, (_, index) => `load${index + 1}`);
const config = labConfig(host, {
    ...labAptSettings(), team: JSON.stringify(clientNames.map(name => teamEntry(host, name))),
});
const reports = provisionLabHost(host, config, "bench", run => log(`step ${run.step} done in ${run.seconds.toFixed(1)}s`));
const builder = reportOf(reports, "buildx-builder");
const endpoint = { host: host.host, port: host.port, user: host.user, hostPublicKey: host.hostPublicKey, builderName: config.builderName };
const client = new LabClient(host, requiredEnv("HOSTLAB_CLIENT_IMAGE"), busyboxDir, knownHostsLine(endpoint));
const container = `buildx_buildkit_${config.builderName}0`;
const TOML = "/etc/buildx-host/buildkitd.toml";

function mustSucceed(what: string, run: RunResult): void {
    if (run.status !== 0) {
        throw new Error(`${what} failed (exit ${run.status}):\n${tail(run.stdout + run.stderr)}`);
    }
}

/** Writes the setting into the builder's buildkitd.toml (under [worker.oci]) and restarts BuildKit; waits until it answers. */
function applyMaxParallelism(setting: string): void {
    const line = setting === "unset" ? "" : `  max-parallelism = ${setting}`;
    sudoOk(host, [
        `test -e ${TOML}.bench || cp -p ${TOML} ${TOML}.bench`,
        `cp -p ${TOML}.bench ${TOML}`,
        ...line ? [`sed -i 's/^\\[worker.oci\\]$/&\\n${line}/' ${TOML}`] : [],
        `docker restart ${container} >/dev/null`,
        `for i in $(seq 60); do docker exec ${container} buildctl debug workers >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1`,
    ].join("\n"));
}

interface Level { setting: string; concurrent: number; wall: number; durations: number[] }

/** BENCH_BUILDS new projects, at most `concurrent` at a time, each worker its own client. */
async function runLevel(setting: string, concurrent: number): Promise<Level> {
    const round = `mp-${setting}-c${concurrent}`;
    const projects = Array.from({ length: buildsPerLevel }, (_, index) =>
        loadProject(host.stateDir, busyboxDir, round, `p${index + 1}`, workBytes));
    // The round's base step first, so every timed build shares a cached base, as a team's builds do.
    mustSucceed(`the warm-up build of ${round}`, await client.buildAlongside(clientNames[0], `${round}-warm-up`,
        loadProject(host.stateDir, busyboxDir, round, "warm-up").context, `${host.stateDir}/load-output-${round}-warm-up`));
    const durations: number[] = [];
    let next = 0;
    const started = Date.now();
    await Promise.all(clientNames.slice(0, concurrent).map(async name => {
        for (let index = next++; index < projects.length; index = next++) {
            const run = await client.buildAlongside(name, `${round}-${index}`, projects[index].context,
                `${host.stateDir}/load-output-${round}-${index}`);
            mustSucceed(`build ${index + 1} of ${round}`, run);
            durations.push(run.seconds);
        }
    }));
    const level = { setting, concurrent, wall: (Date.now() - started) / 1000, durations };
    log(`max-parallelism ${setting}, ${concurrent} at once: ${buildsPerLevel} builds in ${level.wall.toFixed(1)}s`);
    return level;
}

function row(level: Level): string {
    const sorted = [...level.durations].sort((a, b) => a - b);
    const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
    return `| ${level.setting} | ${level.concurrent} | ${level.durations.length} | ${level.wall.toFixed(1)} | ` +
        `${(level.durations.length * 60 / level.wall).toFixed(1)} | ${median.toFixed(1)} / ${sorted[sorted.length - 1].toFixed(1)} |`;
}

async function main(): Promise<void> {
    for (const name of clientNames) {
        mustSucceed(`attaching ${name}`, client.attach(name, memberKey(host, name), [memberBuildxCreateCommand(endpoint, name)]));
    }
    const results: Level[] = [];
    try {
        for (const setting of parallelismSettings) {
            applyMaxParallelism(setting);
            for (const concurrent of levels) {
                results.push(await runLevel(setting, concurrent));
            }
        }
    } finally {
        ssh(host, `sudo -n sh -c 'test -e ${TOML}.bench && mv ${TOML}.bench ${TOML} && docker restart ${container} >/dev/null'`);
    }
    const cpu = sudoOk(host, "sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1").trim();
    console.log("| max-parallelism | concurrent builds | builds | wall s | builds/min | build s (median / max) |");
    console.log("|---|---:|---:|---:|---:|---:|");
    results.forEach(level => console.log(row(level)));
    console.log();
    console.log(`Host: ${cpu}, ${hostCpus} CPUs; BuildKit ${builder?.buildkitVersion ?? "unknown"}, client buildx through the member door ` +
        `(ssh://), each build linux/amd64 + linux/arm64 (QEMU), its own step hashing ${workBytes / 1048576} MiB of zeros per platform.`);
}

main().catch(error => {
    log(String(error instanceof Error ? error.stack : error));
    process.exit(1);
});
