import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";

import { parseStepReport, StepReport } from "./step-reports";
import { HostStepDefinition, StepFingerprint, stepDeleteCommand, StepName, stepRunCommand } from "./steps";

/** Arguments of one host step. */
export interface HostStepArgs<S extends StepName> {
    /** The script and parameters to run (from `hostStepDefinitions`). */
    readonly definition: HostStepDefinition<S>;
    /** What the step's run depends on (from `stepFingerprints`). */
    readonly fingerprint: StepFingerprint;
    /** The machine the steps run on (instance id, or address:port of an existing host). */
    readonly hostId: pulumi.Input<string>;
    /** The values of the definition's `resourceParameters`, by name (the cache volume's id). Default: none. */
    readonly resourceValues?: Readonly<Record<string, pulumi.Input<string>>>;
    /** How to reach the host; `hostKey` must be set so the host's identity is checked. */
    readonly connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** Upper bound for one run of the script, e.g. "20m". Default: the provider's. */
    readonly timeout?: string;
}

/**
 * Runs one idempotent script from components/scripts on the host over SSH, as root, and exposes the
 * JSON report of its last stdout line.
 *
 * A changed script (stdin), parameter, upstream step or machine changes the command's inputs, which
 * re-runs it in place. Not through `triggers`: @pulumi/command replaces on any trigger change, and a replaced
 * step runs its old `delete` after the new `create`, which would remove the builder it just made.
 * Only a change of what the step owns (its `identity`) replaces it, deleting the old one first.
 */
export class HostStep<S extends StepName = StepName> extends pulumi.ComponentResource {
    /** The step's full standard output. */
    public readonly stdout: pulumi.Output<string>;
    /** The step's JSON report (what it found and changed), checked against its contract. */
    public readonly report: pulumi.Output<StepReport<S>>;

    /**
     * @param name the component's name; its children are named from it
     * @param args what the component needs (see the Args interface)
     * @param opts options of the component
     */
    constructor(name: string, args: HostStepArgs<S>, opts?: pulumi.ComponentResourceOptions) {
        super("buildx-host:host:HostStep", name, {}, opts);

        const { definition, fingerprint } = args;
        const remoteCommand = new command.remote.Command(`${name}-run`, {
            connection: args.connection,
            create: pulumi.all([args.hostId, pulumi.output(args.resourceValues ?? {})])
                .apply(([hostId, resourceValues]) => stepRunCommand(definition, fingerprint, hostId, resourceValues)),
            delete: stepDeleteCommand(definition, fingerprint),
            stdin: definition.script,
            triggers: definition.identity ? [...definition.identity] : undefined,
            addPreviousOutputInEnv: false,
        }, {
            parent: this,
            // Options are not inherited by children: the command itself must wait for the step before.
            dependsOn: opts?.dependsOn,
            deleteBeforeReplace: definition.deleteEnvironment !== undefined,
            customTimeouts: args.timeout ? { create: args.timeout, update: args.timeout } : undefined,
        });

        this.stdout = remoteCommand.stdout;
        this.report = remoteCommand.stdout.apply(stdout => parseStepReport(definition.name, stdout));
        this.registerOutputs({ stdout: this.stdout, report: this.report });
    }
}
