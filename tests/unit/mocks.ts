/**
 * Pulumi mocks that record every registered resource with its inputs and dependencies, and answer
 * the invokes and commands the program makes with realistic values.
 */
import * as pulumi from "@pulumi/pulumi";

import { BUILDKIT_VERSION } from "../../components/host-facts";
import { StepReports } from "../../components/step-reports";
import { STEP_NAMES } from "../../components/steps";

export interface RecordedResource {
    readonly type: string;
    readonly name: string;
    /** Inputs as the mocks see them (secrets unwrapped). */
    inputs: Record<string, any>;
    /** Inputs as sent to the engine: secret values are wrapped with the secret signature. */
    wireInputs: Record<string, any>;
    /** The parent's URN; empty for none. */
    parent: string;
    /** URNs this resource was registered as depending on. */
    dependencies: string[];
    deleteBeforeReplace: boolean;
    retainOnDelete: boolean;
    replaceOnChanges: string[];
    ignoreChanges: string[];
    /** Aliases as URNs, or as specs where the engine takes those (the SDK then leaves children's to the engine). */
    aliasUrns: string[];
    aliasSpecs: Record<string, unknown>[];
    urn: string;
}

/** The key Pulumi's wire format uses to mark a secret value. */
export const SECRET_SIGNATURE_KEY = "4dabf18193072939515e22adb298388d";

export interface Recorder {
    readonly resources: RecordedResource[];
    readonly invokes: { token: string; inputs: Record<string, any> }[];
    ofType(type: string): RecordedResource[];
    named(name: string): RecordedResource;
}

const SCRIPT_SHA256 = "0".repeat(64);

/** A report each step would print as its last line, so outputs can be computed (the program checks it against the contract). */
const STEP_REPORTS: StepReports = {
    "wait-for-host": { step: "wait-for-host", changed: false, scriptSha256: SCRIPT_SHA256, os: "ubuntu", osVersion: "24.04", codename: "noble",
        arch: "amd64", kernel: "6.8.0-1021-aws", cloudInit: "done", waitedSeconds: 12 },
    "metadata-guard": { step: "metadata-guard", changed: true, scriptSha256: SCRIPT_SHA256, action: "created",
        addresses: ["169.254.169.254", "fd00:ec2::254"], table: "inet buildx_host_metadata_guard" },
    "cache-volume": { step: "cache-volume", changed: true, scriptSha256: SCRIPT_SHA256, action: "mounted", volumeId: "vol-0123456789abcdef0",
        device: "/dev/nvme1n1", uuid: "2f7a66ac-ef0a-40cb-9b35-80fd2a7dbe01", filesystem: "ext4", formatted: true, movedBytes: 0,
        sizeBytes: 105089261568 },
    "docker-engine": { step: "docker-engine", changed: true, scriptSha256: SCRIPT_SHA256, repo: "https://download.docker.com/linux/ubuntu",
        packages: { "docker-ce": "5:28.5.2-1~ubuntu.24.04~noble" }, dockerVersion: "28.5.2", buildxVersion: "v0.29.1", held: false,
        removed: [], groupAdded: ["ubuntu"] },
    "experimental-mode": { step: "experimental-mode", changed: true, scriptSha256: SCRIPT_SHA256, restarted: true, experimental: true,
        daemonJson: "/etc/docker/daemon.json" },
    "qemu-binfmt": {
        step: "qemu-binfmt", changed: false, scriptSha256: SCRIPT_SHA256, qemuVersion: "8.2.2",
        preflight: { kernel: "6.8.0-1021-aws", kernelOk: true, binfmtMounted: true, mountedNow: false, updateBinfmts: null, persistence: "systemd-binfmt" },
        emulators: { "qemu-aarch64": { flags: "POCF", fixBinary: true, static: true, fixed: false, enabled: true,
            interpreter: "/usr/libexec/qemu-binfmt/aarch64-binfmt-P", source: "/usr/lib/binfmt.d/qemu-aarch64.conf" } },
        platforms: { "linux/arm64": { emulator: "qemu-aarch64", native: false, proved: true, output: "aarch64", ok: true, error: null } },
    },
    "buildx-builder": { step: "buildx-builder", changed: true, scriptSha256: SCRIPT_SHA256, action: "created", builder: "buildx-host",
        node: "buildx-host0", container: "buildx_buildkit_buildx-host0", network: "bridge", platforms: ["linux/amd64", "linux/arm64"],
        insecureEntitlements: [], imageDigest: `moby/buildkit@sha256:${"0".repeat(64)}`, buildkitVersion: BUILDKIT_VERSION, buildxVersion: "v0.29.1" },
    "team-access": { step: "team-access", changed: true, scriptSha256: SCRIPT_SHA256, members: ["alice"], added: ["alice"], updated: [],
        removed: [], sessionsEnded: [], door: "open" },
    "idle-stop": { step: "idle-stop", changed: true, scriptSha256: SCRIPT_SHA256, action: "created", idleStopMinutes: 60, checkSeconds: 15,
        timer: "buildx-host-idle-stop.timer" },
};

/** Replaces every wire-format secret wrapper with the value it holds. */
export function unwrapSecrets(value: any): any {
    if (Array.isArray(value)) {
        return value.map(unwrapSecrets);
    }
    if (value !== null && typeof value === "object") {
        if (SECRET_SIGNATURE_KEY in value) {
            return unwrapSecrets(value.value);
        }
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v)]));
    }
    return value;
}

/**
 * Mock options: `stoppedInstances`, EC2 reports every instance stopped (the idle power-off's work);
 * `cacheVolumeAttached`, every instance has a volume at the cache volume's device name.
 */
export function installMocks(options: { readonly stoppedInstances?: boolean; readonly cacheVolumeAttached?: boolean } = {}): Recorder {
    const resources: RecordedResource[] = [];
    const invokes: Recorder["invokes"] = [];
    pulumi.runtime.setMocks({
        newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, any> } {
            const record = resources.find(r => r.type === args.type && r.name === args.name);
            if (record) {
                record.inputs = unwrapSecrets(args.inputs);
            }
            const state: Record<string, any> = { ...args.inputs };
            switch (args.type) {
                case "tls:index/privateKey:PrivateKey":
                    state.privateKeyOpenssh = `-----BEGIN OPENSSH PRIVATE KEY-----\n${args.name}\n-----END OPENSSH PRIVATE KEY-----\n`;
                    state.publicKeyOpenssh = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${args.name.length}fake${args.name}\n`;
                    break;
                case "aws:ec2/instance:Instance":
                    state.arn = `arn:aws:ec2:eu-west-1:123456789012:instance/${args.name}-id`;
                    state.publicIp = "198.51.100.99";
                    state.publicDns = "ec2-198-51-100-99.eu-west-1.compute.amazonaws.com";
                    break;
                case "aws:ec2/eip:Eip":
                    state.publicIp = "198.51.100.7";
                    state.publicDns = "ec2-198-51-100-7.eu-west-1.compute.amazonaws.com";
                    break;
                case "aws:iam/policy:Policy":
                    state.arn = `arn:aws:iam::123456789012:policy/${args.name}-1a2b3c4`;
                    break;
                case "aws:ec2/keyPair:KeyPair":
                    state.keyName = `${args.name}-key`;
                    break;
                case "command:remote:Command": {
                    const step = STEP_NAMES.find(s => args.name.endsWith(`-${s}-run`));
                    state.stdout = `progress line\n${JSON.stringify(step ? STEP_REPORTS[step] : {})}\n`;
                    state.stderr = "";
                    break;
                }
            }
            return { id: `${args.name}-id`, state };
        },
        call(args: pulumi.runtime.MockCallArgs): Record<string, any> {
            invokes.push({ token: args.token, inputs: args.inputs });
            switch (args.token) {
                case "aws:ec2/getAmi:getAmi":
                    return { id: "ami-0123456789abcdef0", name: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20251015" };
                case "aws:ec2/getVpc:getVpc":
                    return { id: "vpc-default" };
                case "aws:ec2/getSubnet:getSubnet":
                    // By id, or the default VPC's default subnet of a zone.
                    return args.inputs.id
                        ? { id: args.inputs.id, vpcId: "vpc-of-subnet", availabilityZone: "eu-west-1b" }
                        : { id: `subnet-default-${args.inputs.availabilityZone}`, vpcId: args.inputs.vpcId, availabilityZone: args.inputs.availabilityZone };
                case "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
                    return { locations: ["eu-west-1c", "eu-west-1a", "eu-west-1b"], locationTypes: ["availability-zone"], instanceTypes: [] };
                case "aws:ec2/getInstances:getInstances": {
                    const byDevice = args.inputs.filters.some((f: { name: string }) => f.name === "block-device-mapping.device-name");
                    const found = byDevice ? options.cacheVolumeAttached : options.stoppedInstances;
                    return { ids: found ? args.inputs.filters[0].values : [] };
                }
                case "tls:index/getPublicKey:getPublicKey":
                    return { publicKeyOpenssh: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIgivenkey\n" };
                default:
                    return {};
            }
        },
    }, "buildx-host", "test", false);

    // The mock callbacks do not see dependencies or secrecy: record them from the monitor's requests.
    const monitor = (pulumi.runtime as any).getMonitor();
    const registerResource = monitor.registerResource.bind(monitor);
    monitor.registerResource = (request: any, callback: (err: any, response: any) => void) => {
        resources.push({
            type: request.getType(),
            name: request.getName(),
            inputs: {},
            wireInputs: request.getObject()?.toJavaScript() ?? {},
            parent: request.getParent(),
            dependencies: request.getDependenciesList(),
            deleteBeforeReplace: request.getDeletebeforereplace(),
            retainOnDelete: request.getRetainondelete(),
            replaceOnChanges: request.getReplaceonchangesList(),
            ignoreChanges: request.getIgnorechangesList(),
            aliasUrns: request.getAliasurnsList(),
            aliasSpecs: request.getAliasesList().map((alias: any) => alias.toObject()),
            urn: monitor.newUrn(request.getParent(), request.getType(), request.getName()),
        });
        return registerResource(request, callback);
    };

    return {
        resources,
        invokes,
        ofType: type => resources.filter(r => r.type === type),
        named: name => {
            const found = resources.find(r => r.name === name);
            if (!found) {
                throw new Error(`no resource named ${name}; have ${resources.map(r => r.name).join(", ")}`);
            }
            return found;
        },
    };
}

/** Resolves an output (test-only: mocks resolve everything). */
export function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
    return new Promise(resolve => output.apply(value => { resolve(value); return value; }));
}

export function isSecret<T>(output: pulumi.Output<T>): Promise<boolean> {
    return (output as any).isSecret as Promise<boolean>;
}

/** Waits until every registration the program started has reached the mocks. */
export async function settle(): Promise<void> {
    for (let i = 0; i < 20; i++) {
        await new Promise(resolve => setImmediate(resolve));
    }
}
