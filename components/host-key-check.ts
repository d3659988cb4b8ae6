import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { readFileSync } from "fs";
import * as path from "path";

import { HostMode } from "./config";

/**
 * The probe's source, run by `node -` on the machine that runs Pulumi, in the project directory: it loads
 * ssh2 from the project's node_modules, so no path of this machine goes into the command's inputs.
 */
export const HOST_KEY_PROBE_PATH = path.join(__dirname, "host-key-probe.js");

/** Arguments of the host key check. */
export interface HostKeyCheckArgs {
    /** The SSH server: address or DNS name. */
    readonly host: pulumi.Input<string>;
    readonly port: number;
    /** The pinned host key, "ssh-ed25519 AAAA…". */
    readonly hostPublicKey: pulumi.Input<string>;
    /** Where the pinned key comes from, named in the mismatch error (a setting, or the generated key). */
    readonly pinnedKeySource: string;
    /** How the host is reached, which says what a host that never answers is checked for: allowedSshCidrs (ec2), or the address and firewall. */
    readonly hostMode: HostMode;
    /** How long a host that does not answer SSH yet (a booting instance) is waited for. */
    readonly timeoutMinutes: number;
    /** Changes whenever the first host step will run again, so that the check runs right before it. */
    readonly runWith: pulumi.Input<string>;
    /** Mode "ec2": empty, or why the host cannot answer (EC2 reports it stopped) and how to wake it: the check then fails at once with it. */
    readonly stoppedMessage?: pulumi.Input<string>;
}

/**
 * Waits until the host answers SSH and checks that it presents the pinned host key, on the machine
 * that runs Pulumi, before the first host step connects. @pulumi/command counts a host key mismatch
 * as one more dial error, so patient dialling through it found a wrong key only at the timeout, with
 * "context canceled". The probe waits for a booting host itself and fails at once on a mismatch,
 * naming the host and both keys, with nothing run on the host; the steps then dial with bounded retries.
 */
export class HostKeyCheck extends pulumi.ComponentResource {
    /** The probe's JSON line: host, port, key type and fingerprint it found, seconds waited. */
    public readonly result: pulumi.Output<string>;

    /**
     * @param name the component's name; its children are named from it
     * @param args what the component needs (see the Args interface)
     * @param opts options of the component
     */
    constructor(name: string, args: HostKeyCheckArgs, opts?: pulumi.ComponentResourceOptions) {
        super("buildx-host:host:HostKeyCheck", name, {}, opts);
        const timeoutSeconds = args.timeoutMinutes * 60;
        const probe = new command.local.Command(`${name}-probe`, {
            create: "node -",
            stdin: readFileSync(HOST_KEY_PROBE_PATH, "utf8"),
            environment: {
                PROBE_HOST: args.host,
                PROBE_PORT: String(args.port),
                PROBE_PINNED_KEY: args.hostPublicKey,
                PROBE_PINNED_KEY_SETTING: args.pinnedKeySource,
                PROBE_HOST_MODE: args.hostMode,
                PROBE_TIMEOUT_SECONDS: String(timeoutSeconds),
                PROBE_RUN_WITH: args.runWith,
                ...args.stoppedMessage === undefined ? {} : { PROBE_HOST_STOPPED: args.stoppedMessage },
            },
            addPreviousOutputInEnv: false,
        }, {
            parent: this,
            dependsOn: opts?.dependsOn,
            customTimeouts: { create: `${args.timeoutMinutes + 5}m`, update: `${args.timeoutMinutes + 5}m` },
        });
        this.result = probe.stdout;
        this.registerOutputs({ result: this.result });
    }
}
