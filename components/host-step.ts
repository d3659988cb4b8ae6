import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";

import { HostStepDefinition, parseStepReport, StepReport, stepCommand, StepTriggers } from "./steps";

/** Arguments of one host step. */
export interface HostStepArgs {
    /** The script and parameters to run (from `hostStepDefinitions`). */
    readonly definition: HostStepDefinition;
    /** What re-runs the step (from `stepTriggers`): its script, its parameters and the step before it. */
    readonly triggers: StepTriggers;
    /** How to reach the host; `hostKey` must be set so the host's identity is checked. */
    readonly connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** Upper bound for one run of the script, e.g. "20m". Default: the provider's. */
    readonly timeout?: string;
}

/**
 * Runs one idempotent script from components/scripts on the host over SSH, as root, and exposes the
 * JSON report of its last stdout line. A changed script or parameter re-runs it in place (the same
 * command serves create and update); `delete` runs only for steps that own something to remove.
 */
export class HostStep extends pulumi.ComponentResource {
    /** The step's full standard output. */
    public readonly stdout: pulumi.Output<string>;
    /** The step's JSON report (what it found and changed). */
    public readonly report: pulumi.Output<StepReport>;

    constructor(name: string, args: HostStepArgs, opts?: pulumi.ComponentResourceOptions) {
        super("buildx-host:host:HostStep", name, {}, opts);

        const { definition, triggers } = args;
        const run = stepCommand(definition.environment);
        const remoteCommand = new command.remote.Command(`${name}-run`, {
            connection: args.connection,
            create: run,
            update: run,
            delete: definition.deleteEnvironment ? stepCommand(definition.deleteEnvironment) : undefined,
            stdin: definition.script,
            triggers: [triggers.scriptSha256, triggers.parametersSha256, triggers.upstreamSha256],
            addPreviousOutputInEnv: false,
        }, {
            parent: this,
            // Options are not inherited by children: the command itself must wait for the step before.
            dependsOn: opts?.dependsOn,
            customTimeouts: args.timeout ? { create: args.timeout, update: args.timeout } : undefined,
        });

        this.stdout = remoteCommand.stdout;
        this.report = remoteCommand.stdout.apply(stdout => parseStepReport(definition.name, stdout));
        this.registerOutputs({ stdout: this.stdout, report: this.report });
    }
}
