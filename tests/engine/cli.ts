/**
 * The Pulumi CLI as a user runs it: `pulumi stack init`, `pulumi config set …`, `pulumi up`, in a
 * copy of this project (so a test can edit a script without touching the checkout), on a local
 * file backend with a passphrase. The CLI and its two plugins come from tools/build-pulumi.sh and
 * tools/build-plugins.sh (tests/hostlab/run.sh builds them and sets PULUMI_TOOLS_DIR).
 *
 * `up`, `preview` and `destroy` go through Pulumi's Automation API, on the same CLI, project copy and
 * environment: what they changed comes from the engine (its summary and its events), not from the
 * text it prints. Every command's output is kept, so that a test can search all of it for secrets.
 */
import { EngineEvent, LocalWorkspace, OpMap, OpType, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { execFileSync, spawnSync } from "child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";

export const ROOT = path.resolve(__dirname, "..", "..");

/** What `pulumi up` runs: the program and its project files. */
export const PROGRAM_FILES = ["Pulumi.yaml", "package.json", "tsconfig.json", "tsconfig.pulumi.json", "index.ts", "components"];

/** What one command printed. */
export interface CommandOutput {
    /** The command, as a user would type it: `pulumi config set …`. */
    readonly command: string;
    readonly stdout: string;
    readonly stderr: string;
    readonly seconds: number;
}

/** What one CLI command did. */
export interface CliRun extends CommandOutput {
    readonly status: number | null;
}

/** The step the engine took (or, in a preview, would take) on one resource. */
export interface EngineStep {
    readonly op: OpType;
    readonly urn: string;
    /** The resource's type token: `command:remote:Command`. */
    readonly type: string;
}

/** What `up`, `preview` or `destroy` did, as the engine reports it. */
export interface EngineRun extends CommandOutput {
    readonly succeeded: boolean;
    /** Resources by operation: the update's summary (a preview's change summary); empty when it failed. */
    readonly changes: OpMap;
    /** One per resource, in the order the engine reached them. */
    readonly steps: readonly EngineStep[];
    /** The warnings and errors the engine reported (the program's and the providers'). */
    readonly warnings: readonly string[];
    readonly errors: readonly string[];
}

export type EngineOperation = "up" | "preview" | "destroy";

/** The program's whole tree at `commit`, from this checkout's history (an earlier commit's file list may differ from today's). */
export function programAt(commit: string): string {
    const dir = mkdtempSync(path.join(tmpdir(), "buildx-host-program-"));
    execFileSync("sh", ["-c", 'git -C "$1" archive "$2" | tar -x -C "$3"', "sh", ROOT, commit, dir], { stdio: ["ignore", "ignore", "pipe"] });
    return dir;
}

export class PulumiProject {
    /** The copy of the project the CLI runs in. */
    readonly dir: string;
    private readonly env: Record<string, string>;
    private readonly toolsDir: string;
    /** Every command run so far, in order. */
    readonly transcript: CommandOutput[] = [];

    /**
     * @param toolsDir tools/build-pulumi.sh's directory: bin/ (CLI, language host) and home/ (plugins)
     * @param passphrase the stack's secrets passphrase
     * @param programDir where the program's files come from: this checkout, or an earlier version of it
     */
    constructor(toolsDir: string, passphrase: string, programDir = ROOT) {
        const work = mkdtempSync(path.join(tmpdir(), "buildx-host-engine-"));
        this.toolsDir = toolsDir;
        this.dir = path.join(work, "project");
        mkdirSync(this.dir);
        this.useProgram(programDir);
        symlinkSync(path.join(ROOT, "node_modules"), path.join(this.dir, "node_modules"));
        mkdirSync(path.join(work, "state"));
        this.env = {
            ...Object.fromEntries(Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined)),
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
            // An earlier version of the program may not have every file this one has.
            if (existsSync(path.join(programDir, entry))) {
                cpSync(path.join(programDir, entry), path.join(this.dir, entry), { recursive: true });
            }
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
            command: `pulumi ${args.join(" ")}`, status: result.status, stdout: result.stdout ?? "",
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
            throw failure(run, `exit ${run.status}`);
        }
        return run;
    }

    /** `pulumi stack output NAME [FLAG…]` exactly as a user copies it. */
    output(name: string, ...flags: string[]): string {
        return this.ok(["stack", "output", name, ...flags]).stdout.replace(/\n$/, "");
    }

    /**
     * `up` (`--yes --skip-preview`), `preview` or `destroy` (`--yes --skip-preview`) of the selected
     * stack through the Automation API. Never throws for the operation's own failure.
     */
    async engine(operation: EngineOperation, options: { expectNoChanges?: boolean; timeoutSeconds?: number } = {}): Promise<EngineRun> {
        const stack = await this.selectedStack();
        const output = { stdout: "", stderr: "" };
        const steps = new Map<string, EngineStep>();
        const diagnostics: { severity: string; message: string }[] = [];
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(), (options.timeoutSeconds ?? 900) * 1000);
        const common = {
            color: "never" as const, showSecrets: false, signal: abort.signal,
            onOutput: (text: string) => { output.stdout += text; },
            onError: (text: string) => { output.stderr += text; },
            onEvent: (event: EngineEvent) => {
                if (event.resourcePreEvent) {
                    const { op, urn, type } = event.resourcePreEvent.metadata;
                    steps.set(urn, { op, urn, type });
                }
                if (event.diagnosticEvent) {
                    diagnostics.push(event.diagnosticEvent);
                }
            },
        };
        const started = Date.now();
        let changes: OpMap | undefined;
        let error = "";
        try {
            changes = operation === "preview" ? (await stack.preview({ ...common, expectNoChanges: options.expectNoChanges })).changeSummary
                : operation === "up" ? (await stack.up({ ...common, expectNoChanges: options.expectNoChanges })).summary.resourceChanges
                    : (await stack.destroy(common)).summary.resourceChanges;
        } catch (thrown) {
            error = thrown instanceof Error ? thrown.message : String(thrown);
        } finally {
            clearTimeout(timer);
        }
        const run: EngineRun = {
            command: `pulumi ${operation}${options.expectNoChanges ? " --expect-no-changes" : ""} (Automation API)`,
            stdout: output.stdout, stderr: output.stderr + (error && `\n${error}`), seconds: (Date.now() - started) / 1000,
            succeeded: changes !== undefined, changes: changes ?? {}, steps: [...steps.values()],
            warnings: diagnostics.filter(d => d.severity === "warning").map(d => d.message),
            errors: diagnostics.filter(d => d.severity === "error").map(d => d.message),
        };
        this.transcript.push(run);
        return run;
    }

    /** Like `engine`, but throws with the operation's output when it fails. */
    async engineOk(operation: EngineOperation, options?: { expectNoChanges?: boolean; timeoutSeconds?: number }): Promise<EngineRun> {
        const run = await this.engine(operation, options);
        if (!run.succeeded) {
            throw failure(run, "failed");
        }
        return run;
    }

    /** The stack the CLI has selected (`pulumi stack init` selects the new one), in an Automation API workspace on this project copy. */
    private async selectedStack(): Promise<Stack> {
        const pulumiCommand = await PulumiCommand.get({ root: this.toolsDir });
        const workspace = await LocalWorkspace.create({ workDir: this.dir, envVars: this.env, pulumiCommand });
        const selected = await workspace.stack();
        if (!selected) {
            throw new Error(`no stack is selected in ${this.dir}`);
        }
        return Stack.select(selected.name, workspace);
    }

    /** The environment the CLI runs with, for a user's shell recipe. */
    environment(): Record<string, string> {
        return { ...this.env };
    }

    /** Every byte the CLI printed so far. */
    allOutput(): string {
        return this.transcript.map(run => run.stdout + run.stderr).join("\n");
    }
}

function failure(run: CommandOutput, how: string): Error {
    return new Error(`${run.command} ${how} after ${run.seconds.toFixed(1)}s:\n` +
        `${run.stdout.slice(-6000)}\n--- stderr\n${run.stderr.slice(-4000)}`);
}
