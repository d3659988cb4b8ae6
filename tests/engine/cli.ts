/**
 * The Pulumi CLI as a user runs it: `pulumi stack init`, `pulumi config set …`, `pulumi up`, in a
 * copy of this project (so a test can edit a script without touching the checkout), on a local
 * file backend with a passphrase. The CLI and its two plugins come from tools/build-pulumi.sh and
 * tools/build-plugins.sh (tests/hostlab/run.sh builds them and sets PULUMI_TOOLS_DIR).
 *
 * Every command's output is kept, so that a test can search all of it for secrets.
 */
import { spawnSync } from "child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";

export const ROOT = path.resolve(__dirname, "..", "..");

/** What `pulumi up` runs: the program and its project files. */
export const PROGRAM_FILES = ["Pulumi.yaml", "package.json", "tsconfig.json", "index.ts", "components"];

/** What one CLI command did. */
export interface CliRun {
    readonly args: readonly string[];
    readonly status: number | null;
    readonly stdout: string;
    readonly stderr: string;
    readonly seconds: number;
}

/** What `pulumi up`/`preview`/`destroy` print last: "Resources:\n    + 14 created\n …". */
export function resourceSummary(output: string): Record<string, number> {
    const summary: Record<string, number> = {};
    const block = /\nResources:\n((?: {4}.*\n?)+)/.exec(output)?.[1] ?? "";
    for (const match of block.matchAll(/^ {4}(?:[+~\-±]+ )?(\d+) (\w[\w ]*?)$/gm)) {
        summary[match[2]] = Number(match[1]);
    }
    return summary;
}

export class PulumiProject {
    /** The copy of the project the CLI runs in. */
    readonly dir: string;
    private readonly env: NodeJS.ProcessEnv;
    /** Every command run so far, in order. */
    readonly transcript: CliRun[] = [];

    /**
     * @param toolsDir tools/build-pulumi.sh's directory: bin/ (CLI, language host) and home/ (plugins)
     * @param passphrase the stack's secrets passphrase
     * @param programDir where the program's files come from: this checkout, or an earlier version of it
     */
    constructor(toolsDir: string, passphrase: string, programDir = ROOT) {
        const work = mkdtempSync(path.join(tmpdir(), "buildx-host-engine-"));
        this.dir = path.join(work, "project");
        mkdirSync(this.dir);
        this.useProgram(programDir);
        symlinkSync(path.join(ROOT, "node_modules"), path.join(this.dir, "node_modules"));
        mkdirSync(path.join(work, "state"));
        this.env = {
            ...process.env,
            PATH: `${path.join(toolsDir, "bin")}:${process.env.PATH}`,
            PULUMI_HOME: path.join(toolsDir, "home"),
            PULUMI_BACKEND_URL: `file://${path.join(work, "state")}`,
            PULUMI_CONFIG_PASSPHRASE: passphrase,
            PULUMI_SKIP_UPDATE_CHECK: "true",
            // Only the plugins built for the test, and no attempt to download others.
            PULUMI_IGNORE_AMBIENT_PLUGINS: "true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        };
    }

    /** Puts the program in `programDir` in place of the current one (an upgrade); stacks and their settings stay. */
    useProgram(programDir: string): void {
        for (const entry of PROGRAM_FILES) {
            rmSync(path.join(this.dir, entry), { recursive: true, force: true });
            cpSync(path.join(programDir, entry), path.join(this.dir, entry), { recursive: true });
        }
    }

    /** Runs `pulumi <args>` in the project; `input` goes to its standard input. Never throws. */
    run(args: readonly string[], input?: string, timeoutSeconds = 900): CliRun {
        const started = Date.now();
        const result = spawnSync("pulumi", [...args, "--non-interactive", "--color=never"], {
            cwd: this.dir, env: this.env, input: input ?? "", encoding: "utf8",
            maxBuffer: 64 * 1024 * 1024, timeout: timeoutSeconds * 1000,
        });
        const run: CliRun = {
            args, status: result.status, stdout: result.stdout ?? "",
            stderr: (result.stderr ?? "") + (result.error ? `\n${result.error.message}` : ""),
            seconds: (Date.now() - started) / 1000,
        };
        this.transcript.push(run);
        return run;
    }

    /** Like `run`, but throws with the command's output when it fails. */
    ok(args: readonly string[], input?: string, timeoutSeconds?: number): CliRun {
        const run = this.run(args, input, timeoutSeconds);
        if (run.status !== 0) {
            throw new Error(`pulumi ${args.join(" ")} failed (exit ${run.status}) after ${run.seconds.toFixed(1)}s:\n` +
                `${run.stdout.slice(-6000)}\n--- stderr\n${run.stderr.slice(-4000)}`);
        }
        return run;
    }

    /** `pulumi stack output NAME [FLAG…]` exactly as a user copies it. */
    output(name: string, ...flags: string[]): string {
        return this.ok(["stack", "output", name, ...flags]).stdout.replace(/\n$/, "");
    }

    /** The environment the CLI runs with, for a user's shell recipe. */
    environment(): Record<string, string> {
        return Object.fromEntries(Object.entries(this.env).filter((entry): entry is [string, string] => entry[1] !== undefined));
    }

    /** Every byte the CLI printed so far. */
    allOutput(): string {
        return this.transcript.map(run => run.stdout + run.stderr).join("\n");
    }
}
