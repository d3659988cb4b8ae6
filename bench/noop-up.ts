/**
 * bench/noop-up.sh's driver: `pulumi up` wall times of an earlier program (the git revision given as
 * the argument) and of this checkout's, side by side, against one lab host ($HOSTLAB_ENV_FILE),
 * through the real CLI and plugins (tests/engine/cli.ts: a project copy each, file backend,
 * passphrase). Markdown table on stdout, progress on stderr, every run's figures in
 * $HOSTLAB_LOG_DIR/noop-up.tsv.
 */
import { readFileSync, rmSync, writeFileSync } from "fs";
import { cpus } from "os";
import * as path from "path";

import { PROGRAM_FILES, programAt, PulumiProject, ROOT } from "../tests/engine/cli";
import { existingHostSettings, labAptSettings, localOk, logDirectory, readLabHost, requiredEnv, runLog, teamEntry } from "../tests/hostlab/lab";

const lab = readLabHost(requiredEnv("HOSTLAB_ENV_FILE"));
const toolsDir = requiredEnv("PULUMI_TOOLS_DIR");
const rounds = Number(process.env.BENCH_ROUNDS ?? "5");
const PASSPHRASE = "noop-up-bench-passphrase";
const WARM_UP_STACK = "warm-up";
const NOOP_TARGET_SECONDS = 5;

/** One version of the program, in a project copy of its own, and its timings. */
interface Program {
    readonly label: string;
    readonly project: PulumiProject;
    readonly firstUp: number[];
    readonly noOpUp: number[];
}

const progress = (message: string) => process.stderr.write(`bench-noop-up: ${message}\n`);
const git = (args: string) => localOk(`git -C '${ROOT}' ${args}`).trim();

/** A new stack in existing mode for the lab host with alice on the team, as tests/engine/engine.test.ts sets one up. */
function configureStack(project: PulumiProject, stack: string): void {
    project.ok(["stack", "init", stack]);
    const settings = { ...existingHostSettings(lab), ...labAptSettings(), buildkitImage: requiredEnv("HOSTLAB_BUILDKIT_IMAGE_REF") };
    for (const [key, value] of Object.entries(settings)) {
        project.ok(["config", "set", key, value]);
    }
    project.ok(["config", "set", "--secret", "existingHostPrivateKey"], readFileSync(lab.key, "utf8"));
    project.ok(["config", "set", "--path", "team[0]", teamEntry(lab, "alice")]);
}

/** `pulumi up` of one stack: its wall time and how many host steps ran (the host's run log). */
function up(program: Program, stack: string): { seconds: number; hostSteps: number } {
    const before = runLog(lab).length;
    const run = program.project.ok(["up", "--yes", "--stack", stack], undefined, 1200);
    return { seconds: run.seconds, hostSteps: runLog(lab).length - before };
}

/** "min / median / max" of some seconds. */
function spread(values: readonly number[]): string {
    const sorted = [...values].sort((a, b) => a - b);
    const middle = sorted.length / 2;
    const median = sorted.length % 2 ? sorted[Math.floor(middle)] : (sorted[middle - 1] + sorted[middle]) / 2;
    return [sorted[0], median, sorted[sorted.length - 1]].map(s => s.toFixed(1)).join(" / ");
}

function main(): void {
    const baseRev = process.argv[2] ?? "HEAD~1";
    const baseCommit = git(`rev-parse --short ${baseRev}^{commit}`);
    const changed = git(`status --porcelain -- ${PROGRAM_FILES.join(" ")}`) !== "";
    const programs: Program[] = [
        { label: `${baseRev} (${baseCommit})`, project: new PulumiProject(toolsDir, PASSPHRASE, programAt(baseCommit)), firstUp: [], noOpUp: [] },
        { label: `this checkout (${git("rev-parse --short HEAD")}${changed ? " + uncommitted changes" : ""})`,
          project: new PulumiProject(toolsDir, PASSPHRASE), firstUp: [], noOpUp: [] },
    ];
    const rows = ["round\tprogram\tfigure\tseconds\thost_steps"];
    const hostSteps = new Set<number>();

    // Untimed: the first program's warm-up provisions the host for real; the second's then finds it provisioned.
    for (const program of programs) {
        configureStack(program.project, WARM_UP_STACK);
        const warmUp = up(program, WARM_UP_STACK);
        progress(`warm-up ${program.label}: ${warmUp.seconds.toFixed(1)}s, ${warmUp.hostSteps} host steps`);
    }
    for (let round = 1; round <= rounds; round++) {
        // The program that goes first alternates, so that neither always follows the other.
        const order = round % 2 ? programs : [...programs].reverse();
        const stack = `round-${round}`;
        for (const program of order) {
            program.project.ok(["stack", "init", stack, "--copy-config-from", WARM_UP_STACK]);
            const first = up(program, stack);
            if (first.hostSteps === 0) {
                throw new Error(`the first up of ${program.label}'s stack ${stack} ran no host step`);
            }
            program.firstUp.push(first.seconds);
            hostSteps.add(first.hostSteps);
            rows.push(`${round}\t${program.label}\tfirst up\t${first.seconds}\t${first.hostSteps}`);
            progress(`round ${round}/${rounds} ${program.label}: first up ${first.seconds.toFixed(1)}s (${first.hostSteps} host steps)`);
        }
        for (const program of order) {
            const noOp = up(program, stack);
            if (noOp.hostSteps !== 0) {
                throw new Error(`the second up of ${program.label}'s stack ${stack} ran ${noOp.hostSteps} host steps: not a no-op`);
            }
            program.noOpUp.push(noOp.seconds);
            rows.push(`${round}\t${program.label}\tno-op up\t${noOp.seconds}\t0`);
            progress(`round ${round}/${rounds} ${program.label}: no-op up ${noOp.seconds.toFixed(1)}s`);
        }
    }
    writeFileSync(path.join(logDirectory(lab), "noop-up.tsv"), `${rows.join("\n")}\n`);

    const cpu = cpus();
    console.log(`### \`pulumi up\` wall time, s (min / median / max of ${rounds} rounds)\n`);
    console.log(`| figure | ${programs.map(p => p.label).join(" | ")} |`);
    console.log(`|---|${programs.map(() => "---:").join("|")}|`);
    console.log(`| first up of a new stack | ${programs.map(p => spread(p.firstUp)).join(" | ")} |`);
    console.log(`| no-op up | ${programs.map(p => spread(p.noOpUp)).join(" | ")} |`);
    console.log();
    console.log(`No-op up target ≤ ${NOOP_TARGET_SECONDS} s on every run: ` +
        programs.map(p => `${p.label} ${Math.max(...p.noOpUp) <= NOOP_TARGET_SECONDS ? "met" : "missed"}`).join("; ") + ".");
    console.log("A first up is a new stack's first `up` against the lab host that earlier ups already provisioned: every " +
        `host step runs (${[...hostSteps].join(" or ")} of them), idempotently, changing nothing on the host; a no-op up is ` +
        "the same stack's next `up`, which runs no host command. Each round runs both programs, in alternating order.");
    console.log(`Lab: ${cpu[0]?.model ?? "unknown CPU"}, ${cpu.length} cores; Pulumi CLI ` +
        `${programs[1].project.ok(["version"]).stdout.trim()}, the file backend; a Debian 13 lab host over SSH on 127.0.0.1.`);
    for (const program of programs) {
        rmSync(path.dirname(program.project.dir), { recursive: true, force: true });
    }
}

main();
