/**
 * Host lab plumbing: the lab host's coordinates, SSH to it as a real client does (pinned host key,
 * no StrictHostKeyChecking=no), running the program's host steps exactly as `pulumi up` renders
 * them, and timing them. tests/hostlab/run.sh prepares the lab and sets the environment read here.
 */
import { spawn, spawnSync } from "child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "fs";
import * as path from "path";

import { BuildHostConfig, RawConfig } from "../../components/config";
import { hostConfig } from "../config-problems";
import { shellQuote } from "../../components/shell";
import { parseStepReport, StepReport } from "../../components/step-reports";
import { HostStepDefinition, hostStepDefinitions, stepFingerprints, StepName, stepRunCommand } from "../../components/steps";

/** What start-host.sh wrote about the lab host (host.env). */
export interface LabHost {
    readonly container: string;
    readonly host: string;
    readonly port: number;
    readonly user: string;
    readonly key: string;
    readonly hostPublicKey: string;
    readonly knownHosts: string;
    readonly stateDir: string;
    /** The daemon.json start-host.sh put on the host before Docker was installed. */
    readonly daemonJsonSeed: string;
}

/**
 * The program's configuration for a lab host, as a user would give it in existing-host mode;
 * `settings` adds what a suite changes (team, dockerAptRepo).
 */
export function labConfig(lab: LabHost, settings: RawConfig = {}): BuildHostConfig {
    return hostConfig({ ...existingHostSettings(lab), existingHostPrivateKey: readFileSync(lab.key, "utf8"), ...settings });
}

/** The existing-host settings that reach a lab host, but for the private key (a secret: `lab.key` holds it). */
export function existingHostSettings(lab: LabHost): Record<string, string> {
    return {
        hostMode: "existing",
        existingHostAddress: lab.host,
        existingHostPort: String(lab.port),
        existingHostUser: lab.user,
        existingHostPublicKey: lab.hostPublicKey,
    };
}

/**
 * The stand-in for Docker's apt repository (infra/build-apt-repo.sh) and the fingerprint of its own
 * key, which the lab pins as a mirror's user would (run.sh reads it once).
 */
export function labAptSettings(): { dockerAptRepo: string; dockerAptKeyFingerprint: string } {
    return {
        dockerAptRepo: requiredEnv("HOSTLAB_DOCKER_APT_REPO"),
        dockerAptKeyFingerprint: requiredEnv("HOSTLAB_DOCKER_APT_KEY_FINGERPRINT"),
    };
}

/** A team member's key pair, made once per lab host; returns the private key's path. */
export function memberKey(lab: LabHost, name: string): string {
    const key = path.join(lab.stateDir, `${name}_ed25519`);
    if (!existsSync(key)) {
        localOk(`ssh-keygen -q -t ed25519 -N '' -C ${name}@buildx-host-lab -f ${key}`);
    }
    return key;
}

/** A member's `team` entry, "<name> <public key>". */
export function teamEntry(lab: LabHost, name: string): string {
    return `${name} ${readFileSync(`${memberKey(lab, name)}.pub`, "utf8").trim()}`;
}

export function requiredEnv(name: string): string {
    const value = process.env[name];
    if (!value) {
        throw new Error(`${name} is not set: run the host lab through tests/hostlab/run.sh`);
    }
    return value;
}

export function readLabHost(envFile: string): LabHost {
    const values: Record<string, string> = {};
    for (const line of readFileSync(envFile, "utf8").split("\n")) {
        const match = /^([A-Z_]+)=(.*)$/.exec(line);
        if (match) {
            values[match[1]] = match[2];
        }
    }
    return {
        container: values.HOSTLAB_CONTAINER,
        host: values.HOSTLAB_HOST,
        port: Number(values.HOSTLAB_PORT),
        user: values.HOSTLAB_USER,
        key: values.HOSTLAB_KEY,
        hostPublicKey: readFileSync(values.HOSTLAB_HOST_PUBLIC_KEY_FILE, "utf8").trim().split(/\s+/).slice(0, 2).join(" "),
        knownHosts: values.HOSTLAB_KNOWN_HOSTS,
        stateDir: values.HOSTLAB_STATE_DIR,
        daemonJsonSeed: values.HOSTLAB_DAEMON_JSON_SEED,
    };
}

export interface RunResult {
    readonly status: number | null;
    readonly stdout: string;
    readonly stderr: string;
    readonly seconds: number;
}

const MAX_BUFFER = 256 * 1024 * 1024;

/**
 * Runs a command on this machine (bash -c), never throwing; `input` goes to its stdin, `env` adds
 * to its environment (for values that must not appear on a command line).
 */
export function local(command: string, input?: string | Buffer, timeoutSeconds = 1800,
                      env: Readonly<Record<string, string>> = {}): RunResult {
    const start = Date.now();
    const result = spawnSync("bash", ["-c", command], {
        input, encoding: "utf8", maxBuffer: MAX_BUFFER, timeout: timeoutSeconds * 1000, env: { ...process.env, ...env },
    });
    return {
        status: result.status,
        stdout: result.stdout ?? "",
        stderr: (result.stderr ?? "") + (result.error ? `\n${result.error.message}` : ""),
        seconds: (Date.now() - start) / 1000,
    };
}

/** Like `local`, but runs alongside other commands: resolves when it ends, never rejects. */
export function localAsync(command: string, input = "", timeoutSeconds = 1800): Promise<RunResult> {
    const start = Date.now();
    return new Promise(resolve => {
        const child = spawn("bash", ["-c", command], { timeout: timeoutSeconds * 1000 });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (chunk: Buffer) => { stdout += chunk.toString(); });
        child.stderr.on("data", (chunk: Buffer) => { stderr += chunk.toString(); });
        child.on("error", error => { stderr += `\n${error.message}`; });
        child.on("close", status => resolve({ status, stdout, stderr, seconds: (Date.now() - start) / 1000 }));
        child.stdin.end(input);
    });
}

/** Like `local`, but throws with the command's output when it fails. */
export function localOk(command: string, input?: string | Buffer, timeoutSeconds?: number): string {
    const result = local(command, input, timeoutSeconds);
    if (result.status !== 0) {
        throw new Error(`command failed (exit ${result.status}): ${command}\n${tail(result.stdout + result.stderr)}`);
    }
    return result.stdout;
}

export function tail(text: string, lines = 40): string {
    return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** The ssh arguments of a client that pins the host key and uses one identity. */
export function sshArgs(lab: LabHost, user: string, key: string): string[] {
    return [
        "-i", key, "-o", "IdentitiesOnly=yes",
        "-o", `UserKnownHostsFile=${lab.knownHosts}`, "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
        "-p", String(lab.port), `${user}@${lab.host}`,
    ];
}

/** Runs `command` on the lab host over SSH as `user` (the login user by default). */
export function ssh(lab: LabHost, command: string, input?: string | Buffer,
                    opts: { user?: string; key?: string; timeoutSeconds?: number } = {}): RunResult {
    const start = Date.now();
    const result = spawnSync("ssh", [...sshArgs(lab, opts.user ?? lab.user, opts.key ?? lab.key), command], {
        input, encoding: "utf8", maxBuffer: MAX_BUFFER, timeout: (opts.timeoutSeconds ?? 1800) * 1000,
    });
    return {
        status: result.status,
        stdout: result.stdout ?? "",
        stderr: (result.stderr ?? "") + (result.error ? `\n${result.error.message}` : ""),
        seconds: (Date.now() - start) / 1000,
    };
}

/** Runs `command` on the lab host as root (through the login user's sudo) and returns stdout. */
export function sudoOk(lab: LabHost, command: string, input?: string | Buffer): string {
    const result = ssh(lab, `sudo -n bash -c ${shellQuote(command)}`, input);
    if (result.status !== 0) {
        throw new Error(`on the lab host, failed (exit ${result.status}): ${command}\n${tail(result.stdout + result.stderr)}`);
    }
    return result.stdout;
}

/** The run log every host step appends one line to (components/scripts/lib/common.sh). */
export const RUN_LOG = "/var/log/buildx-host/steps.log";

/** One line of a host's run log: "<time> <step> <outcome> seconds=<s> <report>". */
export interface RunLogLine {
    /** When the step ended (UTC, to the second). */
    readonly time: string;
    readonly step: string;
    readonly outcome: string;
    readonly report: Record<string, unknown>;
}

/** The host's run log, oldest line first (empty before any step ran). */
export function runLog(lab: LabHost): RunLogLine[] {
    const text = sudoOk(lab, `cat ${RUN_LOG} 2>/dev/null || true`);
    return text.split("\n").filter(Boolean).map(line => {
        const match = /^(\S+) (\S+) (\S+) seconds=\S+ ?(.*)$/.exec(line);
        if (!match) {
            throw new Error(`unexpected run log line: ${line}`);
        }
        return { time: match[1], step: match[2], outcome: match[3], report: match[4] ? JSON.parse(match[4]) as Record<string, unknown> : {} };
    });
}

/** Where step and build logs go: $HOSTLAB_LOG_DIR (run.sh keeps it after the host is gone), else the state dir. */
export function logDirectory(lab: LabHost): string {
    const dir = process.env.HOSTLAB_LOG_DIR || path.join(lab.stateDir, "logs");
    mkdirSync(dir, { recursive: true });
    return dir;
}

/** The step of that name among the program's steps, typed as that step's. */
export function stepNamed<S extends StepName>(steps: readonly HostStepDefinition[], name: S): HostStepDefinition<S> {
    const found = steps.find((s): s is HostStepDefinition<S> => s.name === name);
    if (!found) {
        throw new Error(`components/steps.ts has no step ${name}`);
    }
    return found;
}

/** The report of step `name` among `reports` (each kept under its step's name), typed as that step's. */
export function reportOf<S extends StepName>(reports: ReadonlyMap<StepName, StepReport>, name: S): StepReport<S> | undefined {
    const report = reports.get(name);
    return report?.step === name ? report as StepReport<S> : undefined;
}

/** One run of one host step. */
export interface StepRun<S extends StepName = StepName> {
    readonly step: S;
    readonly label: string;
    readonly status: number | null;
    readonly seconds: number;
    readonly stdout: string;
    readonly stderr: string;
    /** The report, checked against its contract; undefined when there is none or it breaks the contract (see reportError). */
    readonly report?: StepReport<S>;
    readonly reportError?: string;
}

/**
 * Runs a step the way the HostStep component does: `stepRunCommand` as the SSH command, the script's
 * text on stdin, HOST_ID as existing mode gives it, `resourceValues` as the component gives them
 * (the cache volume's id). `overrides` replace environment values for lab-only experiments.
 */
export function runStep<S extends StepName>(lab: LabHost, step: HostStepDefinition<S>, label: string,
                                           overrides: Record<string, string> = {}, resourceValues: Record<string, string> = {}): StepRun<S> {
    const withOverrides = { ...step, environment: { ...step.environment, ...overrides } };
    const command = stepRunCommand(withOverrides, stepFingerprints([withOverrides])[0], `${lab.host}:${lab.port}`, resourceValues);
    const result = ssh(lab, command, step.script);
    let report: StepReport<S> | undefined;
    let reportError: string | undefined;
    try {
        report = parseStepReport(step.name, result.stdout);
    } catch (error) {
        reportError = (error as Error).message;
    }
    const run: StepRun<S> = { step: step.name, label, status: result.status, seconds: result.seconds,
        stdout: result.stdout, stderr: result.stderr, report, reportError };
    const logDir = logDirectory(lab);
    writeFileSync(path.join(logDir, `${label}-${step.name}.log`),
        `exit ${result.status} after ${result.seconds.toFixed(1)}s\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`);
    return run;
}

/** Throws with the step's own words when it did not succeed with a report. */
export function expectStepOk<S extends StepName>(run: StepRun<S>): StepReport<S> {
    if (run.status !== 0 || !run.report) {
        throw new Error(`step ${run.step} (${run.label}) failed with exit ${run.status} after ${run.seconds.toFixed(1)}s:\n` +
            tail(run.stderr) + "\n--- last stdout lines\n" + tail(run.stdout, 5) + (run.reportError ? `\n--- ${run.reportError}` : ""));
    }
    return run.report;
}

/**
 * Runs the program's host steps for `config` on the lab host in order, as the lab's first run does,
 * with the lab's BuildKit image loaded before the builder step (loadBuildkitImage); `onStep` hears
 * of each step done; `resourceValues` as `runStep`'s. Returns the steps' reports.
 */
export function provisionLabHost(lab: LabHost, config: BuildHostConfig, label: string,
                                 onStep: (run: StepRun) => void = () => undefined,
                                 resourceValues: Record<string, string> = {}): Map<StepName, StepReport> {
    const reports = new Map<StepName, StepReport>();
    for (const step of hostStepDefinitions(config, lab.user)) {
        if (step.name === "buildx-builder") {
            loadBuildkitImage(lab);
        }
        const run = runStep(lab, step, label, {}, resourceValues);
        reports.set(step.name, expectStepOk(run));
        onStep(run);
    }
    return reports;
}

/** The flags line of a binfmt_misc entry file ("flags: POCF" → "POCF"). */
export function binfmtFlags(entry: string): string {
    return /^flags: (\S*)$/m.exec(entry)?.[1] ?? "";
}

/**
 * Stand-in for the registry pull the builder step would do (no registry is reachable in the lab):
 * the lab's BuildKit image (run.sh's HOSTLAB_BUILDKIT_IMAGE_TAR) loaded into the host's engine.
 */
export function loadBuildkitImage(lab: LabHost): void {
    const tar = requiredEnv("HOSTLAB_BUILDKIT_IMAGE_TAR");
    const result = local(`ssh ${sshArgs(lab, lab.user, lab.key).map(shellQuote).join(" ")} 'sudo -n docker load' < '${tar}'`);
    if (result.status !== 0) {
        throw new Error(`loading ${tar} into the host's engine failed:\n${tail(result.stdout + result.stderr)}`);
    }
}
