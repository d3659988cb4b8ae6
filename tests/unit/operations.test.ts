/**
 * The README's "Upgrades and replacement" table and "Operations" IAM policy against the program:
 * each setting is changed under mocks and the resources whose inputs change are classified with
 * the providers' replacement rules; the policy file is derived from every type the program registers.
 */
import * as pulumi from "@pulumi/pulumi";
import { readFileSync, writeFileSync } from "fs";
import * as path from "path";

import { installMocks, RecordedResource, settle, valueOf } from "./mocks";

const recorder = installMocks();

// Imported after the mocks are installed, as a Pulumi program would be run under them.
import { BuildFleet } from "../../components/build-fleet";
import { KNOWN_KEYS, parseConfig, privateKeyValue, RawConfig } from "../../components/config";
import { AWS_CALLS, iamPolicy } from "../../components/iam-policy";
import { ubuntuAmiNamePattern } from "../../components/ec2-host";
import { STEP_NAMES } from "../../components/steps";

const ROOT = path.join(__dirname, "..", "..");
const README = readFileSync(path.join(ROOT, "README.md"), "utf8");
const IAM_POLICY_PATH = path.join(ROOT, "iam-policy.json");

const ALICE = "alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICMuitBm3Na3mokQbnQlnPS+q4yZBeoCIqm3SvbczITp alice@laptop";
const BOB = "bob ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF bob@ci";
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF";
const PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nbG9naW4ta2V5\n-----END OPENSSH PRIVATE KEY-----\n";
const OTHER_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3RoZXIta2V5\n-----END OPENSSH PRIVATE KEY-----\n";

const EC2: RawConfig = { allowedSshCidrs: JSON.stringify(["10.20.0.0/16"]), team: JSON.stringify([ALICE]) };
const EXISTING: RawConfig = {
    hostMode: "existing", existingHostAddress: "build1.example.com", existingHostUser: "builder",
    existingHostPrivateKey: PRIVATE_KEY, existingHostPublicKey: HOST_KEY, team: JSON.stringify([ALICE]),
};
const SUBNET = "subnet-0123456789abcdef0";
const CACHED: RawConfig = { ...EC2, subnetId: SUBNET, cacheVolumeSizeGb: "100" };
const FLEET: RawConfig = {
    ...EC2, nodes: JSON.stringify([{ name: "amd64", instanceType: "c7i.xlarge" }, { name: "graviton", instanceType: "c7g.xlarge" }]),
};

/** Each row of the README's table: the stack it starts from and the change it names. */
const CHANGES: Record<string, { readonly from: RawConfig; readonly to: RawConfig }> = {
    "hostMode": { from: EC2, to: EXISTING },
    "subnetId": { from: EC2, to: { ...EC2, subnetId: "subnet-0123456789abcdef0" } },
    "ubuntuAmiSerial": { from: EC2, to: { ...EC2, ubuntuAmiSerial: "20251015" } },
    "loginPrivateKey": { from: EC2, to: { ...EC2, loginPrivateKey: PRIVATE_KEY } },
    "instanceType, same architecture": { from: EC2, to: { ...EC2, instanceType: "c7i.2xlarge" } },
    "instanceType, other architecture; architecture": { from: EC2, to: { ...EC2, instanceType: "c7g.xlarge" } },
    "spot": { from: EC2, to: { ...EC2, spot: "true" } },
    "instanceType of a spot node": { from: { ...EC2, spot: "true" }, to: { ...EC2, spot: "true", instanceType: "c7i.2xlarge" } },
    "ubuntuRelease": { from: EC2, to: { ...EC2, ubuntuRelease: "22.04" } },
    "rootVolumeSizeGb": { from: EC2, to: { ...EC2, rootVolumeSizeGb: "200" } },
    "allowedSshCidrs, allowOpenSsh": { from: EC2, to: { ...EC2, allowedSshCidrs: JSON.stringify(["0.0.0.0/0"]), allowOpenSsh: "true" } },
    "hostReadyTimeoutMinutes": { from: EC2, to: { ...EC2, hostReadyTimeoutMinutes: "20" } },
    "dockerAptRepo, dockerAptKeyFingerprint": { from: EC2, to: { ...EC2, dockerAptRepo: "https://mirror.example.com/docker" } },
    "dockerCeVersion": { from: EC2, to: { ...EC2, dockerCeVersion: "5:28.5.2-1~ubuntu.24.04~noble" } },
    "platforms": { from: EC2, to: { ...EC2, platforms: JSON.stringify(["linux/amd64", "linux/arm64"]) } },
    "buildkitImage, allowInsecureEntitlements, buildkitGcReservedSpace, buildkitGcMaxUsedSpace, buildkitGcMinFreeSpace": {
        from: EC2, to: { ...EC2, buildkitImage: `moby/buildkit:v0.34.2@sha256:${"a".repeat(64)}` },
    },
    "builderName": { from: EC2, to: { ...EC2, builderName: "shared" } },
    "team": { from: EC2, to: { ...EC2, team: JSON.stringify([ALICE, BOB]) } },
    "existingHostAddress, existingHostPort": { from: EXISTING, to: { ...EXISTING, existingHostAddress: "build2.example.com" } },
    "existingHostUser": { from: EXISTING, to: { ...EXISTING, existingHostUser: "admin" } },
    "existingHostPrivateKey, existingHostPublicKey": { from: EXISTING, to: { ...EXISTING, existingHostPrivateKey: OTHER_PRIVATE_KEY } },
    "fleetFallback": { from: FLEET, to: { ...FLEET, fleetFallback: "emulate" } },
    "cacheVolumeSizeGb": { from: { ...EC2, subnetId: SUBNET }, to: CACHED },
    "retainCacheVolume": { from: CACHED, to: { ...CACHED, retainCacheVolume: "false" } },
    "nodes[N].name": { from: FLEET, to: { ...FLEET, nodes: FLEET.nodes!.replace("graviton", "arm64") } },
    "idleStopMinutes": { from: EC2, to: { ...EC2, idleStopMinutes: "60" } },
};

/**
 * Inputs whose change makes the provider replace the resource instead of updating it: ForceNew in
 * terraform-provider-aws v6's schemas (internal/service/ec2/ec2_instance.go: ami, subnet_id,
 * key_name, associate_public_ip_address, availability_zone, instance_market_options,
 * root_block_device.encrypted/kms_key_id;
 * instance_type, root volume size and metadata options are updated in place, the type with a
 * stop and start), and in terraform-provider-tls's private key. userData replaces only with
 * userDataReplaceOnChange; a resource's own `replaceOnChanges` (the command's `triggers`) adds to these.
 */
const REPLACED_ON_CHANGE: Readonly<Record<string, readonly string[]>> = {
    "aws:ec2/instance:Instance": ["ami", "subnetId", "keyName", "associatePublicIpAddress", "availabilityZone", "instanceMarketOptions",
        "rootBlockDevice.encrypted", "rootBlockDevice.kmsKeyId"],
    "aws:ec2/securityGroup:SecurityGroup": ["name", "description", "vpcId"],
    "aws:ec2/keyPair:KeyPair": ["keyName", "publicKey"],
    "aws:ec2/eip:Eip": ["domain", "address", "publicIpv4Pool", "networkBorderGroup"],
    "tls:index/privateKey:PrivateKey": ["algorithm", "ecdsaCurve", "rsaBits"],
    // ebs_volume.go and ebs_volume_attachment.go: a volume's size and type change in place.
    "aws:ebs/volume:Volume": ["availabilityZone", "encrypted", "kmsKeyId", "snapshotId", "outpostArn", "multiAttachEnabled"],
    "aws:ec2/volumeAttachment:VolumeAttachment": ["deviceName", "instanceId", "volumeId"],
};

/** The resources the table names, in the order it names them. */
const LABELS: readonly { readonly type: string; readonly nameEnd?: string; readonly label: string }[] = [
    { type: "tls:index/privateKey:PrivateKey", nameEnd: "-login-key", label: "login key" },
    { type: "tls:index/privateKey:PrivateKey", nameEnd: "-host-key", label: "host key" },
    { type: "aws:ec2/keyPair:KeyPair", label: "key pair" },
    { type: "aws:ec2/securityGroup:SecurityGroup", label: "security group" },
    { type: "aws:ec2/instance:Instance", label: "instance" },
    { type: "aws:ec2/eip:Eip", label: "Elastic IP" },
    { type: "aws:iam/policy:Policy", label: "wake policy" },
    { type: "aws:ebs/volume:Volume", label: "cache volume" },
    { type: "aws:ec2/volumeAttachment:VolumeAttachment", label: "its attachment" },
];

/** A deployment's resources keyed by type and name, with the deployment's name taken out. */
type Deployment = Map<string, { readonly record: RecordedResource; readonly inputs: Record<string, string> }>;

/** The leaves of an input object, by path (`rootBlockDevice.volumeSize`), as JSON; arrays are leaves. */
function leaves(value: unknown, prefix = ""): Record<string, string> {
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
        return { [prefix]: JSON.stringify(value) };
    }
    return Object.assign({}, ...Object.entries(value).map(([key, v]) => leaves(v, prefix ? `${prefix}.${key}` : key)));
}

let deployments = 0;
const baselines = new Map<RawConfig, Promise<Deployment>>();

/** A starting stack, deployed once for every row that starts from it. */
function baseline(raw: RawConfig): Promise<Deployment> {
    if (!baselines.has(raw)) {
        baselines.set(raw, deploy(raw));
    }
    return baselines.get(raw)!;
}

/** Runs the program for a configuration, as index.ts does, under a name of fixed length (the mocks' keys carry its length). */
async function deploy(raw: RawConfig): Promise<Deployment> {
    const name = `run${String(deployments++).padStart(3, "0")}`;
    const stack = parseConfig(raw);
    const fleet = new BuildFleet(name, {
        stack,
        privateKeys: stack.nodes.map(node => node.privateKey && pulumi.secret(privateKeyValue(raw, node.privateKey))),
        tags: { Project: "buildx-host" },
    });
    await Promise.all(fleet.hosts.map(host => valueOf(host.versions)));
    await settle();
    const mine = recorder.resources.filter(r => r.name.startsWith(name) && !r.type.startsWith("buildx-host:"));
    return new Map(mine.map(record => {
        const inputs = JSON.parse(JSON.stringify(record.inputs).split(name).join("X"));
        if (record.type === "aws:ec2/instance:Instance") {
            // The mocks answer every image lookup alike: the instance's image is the one its settings look up.
            const node = stack.nodes.find(n => record.name === `${[name, n.name].filter(Boolean).join("-")}-ec2-instance`)!;
            inputs.ami = node.host.mode === "ec2" && ubuntuAmiNamePattern(node.host.ec2);
        }
        return [`${record.type}::${record.name.replace(name, "X")}`, { record, inputs: leaves(inputs) }];
    }));
}

/** Whether a change of this input replaces the resource, by the provider's rules and the resource's options. */
function replaces(record: RecordedResource, inputs: Record<string, string>, inputPath: string): boolean {
    const own = record.replaceOnChanges.map(p => p.replace("[*]", ""));
    return [...REPLACED_ON_CHANGE[record.type] ?? [], ...own].some(p => inputPath === p || inputPath.startsWith(`${p}.`)) ||
        (inputPath === "userData" && inputs.userDataReplaceOnChange === "true");
}

type Outcome = "replaced" | "stopped and started" | "updated in place" | "re-associated" | "re-run" | "removed" | "created";

/** What `pulumi up` does to each resource when going from one deployment to the other. */
function outcomes(from: Deployment, to: Deployment): Map<string, Outcome> {
    const result = new Map<string, Outcome>();
    const changedPaths = new Map<string, string[]>();
    for (const [key, before] of from) {
        const after = to.get(key);
        if (!after) {
            result.set(key, "removed");
            continue;
        }
        const paths = new Set([...Object.keys(before.inputs), ...Object.keys(after.inputs)]);
        const ignored = after.record.ignoreChanges;
        changedPaths.set(key, [...paths].filter(p => before.inputs[p] !== after.inputs[p] && !ignored.includes(p.split(".")[0])));
    }
    for (const key of to.keys()) {
        if (!from.has(key)) {
            result.set(key, "created");
        }
    }
    // A replaced resource gets a new id: every input that names it changes too, until nothing more does.
    const replaced = (key: string) => result.get(key) === "replaced";
    let grew = true;
    while (grew) {
        grew = false;
        for (const [key, paths] of changedPaths) {
            const { record, inputs } = to.get(key)!;
            const named = Object.keys(inputs).filter(p => [...result.keys()].some(other =>
                replaced(other) && inputs[p].includes(other.split("::").pop()!)));
            const all = [...new Set([...paths, ...named])];
            const outcome: Outcome | undefined = all.length === 0 ? undefined
                : all.some(p => replaces(record, inputs, p)) ? "replaced"
                : record.type === "aws:ec2/instance:Instance" ? (all.includes("instanceType") ? "stopped and started" : "updated in place")
                : record.type === "aws:ec2/eip:Eip" && all.every(p => p === "instance") ? "re-associated"
                : record.type.startsWith("aws:") ? "updated in place" : "re-run";
            if (outcome !== result.get(key) && outcome !== undefined) {
                result.set(key, outcome);
                grew = true;
            }
        }
    }
    return result;
}

/**
 * The table's "Resources" cell: the host's resources by what happens to them, e.g. "instance
 * replaced; Elastic IP re-associated". One removed under one name and created under another is replaced.
 */
function resourcesCell(results: Map<string, Outcome>): string {
    const verbs: Outcome[] = ["replaced", "removed", "created", "stopped and started", "updated in place", "re-associated"];
    const byLabel = new Map<number, Set<Outcome>>();
    for (const [key, outcome] of results) {
        const [type, name] = key.split("::");
        const label = LABELS.findIndex(l => l.type === type && (!l.nameEnd || name.endsWith(l.nameEnd)));
        if (label >= 0) {
            byLabel.set(label, new Set([...byLabel.get(label) ?? [], outcome]));
        }
    }
    const labelOutcome = new Map([...byLabel].map(([label, found]) =>
        [label, found.has("removed") && found.has("created") ? "replaced" : [...found][0]]));
    const parts = verbs.flatMap(verb => {
        const labels = [...labelOutcome].filter(([, outcome]) => outcome === verb).map(([label]) => label).sort((a, b) => a - b);
        return labels.length === 0 ? [] : [`${labels.map(l => LABELS[l].label).join(", ")} ${verb}`];
    });
    return parts.join("; ") || "none";
}

const stepOf = (key: string) => STEP_NAMES.find(step => key.startsWith("command:remote:Command::") && key.endsWith(`-${step}-run`));

/** The steps a deployment runs, in their order (a feature left off runs no step). */
function stepOrder(...deployments: Deployment[]): string[] {
    const present = new Set(deployments.flatMap(deployment => [...deployment.keys()].map(stepOf)));
    return STEP_NAMES.filter(step => present.has(step));
}

/**
 * The table's "Steps" cell: the steps that run again (a suffix of `order`), those replaced, and
 * those a feature adds (only created) or drops (only removed).
 */
function stepsCell(results: Map<string, Outcome>, order: readonly string[]): string {
    const outcomesOf = new Map<number, Set<Outcome>>();
    for (const [key, outcome] of results) {
        const step = order.indexOf(stepOf(key) ?? "");
        if (step >= 0) {
            outcomesOf.set(step, new Set([...outcomesOf.get(step) ?? [], outcome]));
        }
    }
    if (outcomesOf.size === 0) {
        return "none";
    }
    const first = Math.min(...outcomesOf.keys());
    if (outcomesOf.size !== order.length - first) {
        return `not a suffix of the order: ${[...outcomesOf.keys()].map(i => order[i]).join(", ")}`;
    }
    const kind = (found: Set<Outcome>) => found.has("replaced") || (found.has("removed") && found.has("created")) ? "replaced"
        : found.has("created") ? "added" : found.has("removed") ? "removed" : undefined;
    const named = (steps: number[]) => steps.length === order.length ? "all" : steps.sort((a, b) => a - b).map(i => order[i]).join(", ");
    const ran = first === 0 ? "all" : first === order.length - 1 ? order[first] : `${order[first]} and after`;
    const changes = (["replaced", "added", "removed"] as const).flatMap(verb => {
        const steps = [...outcomesOf].filter(([, found]) => kind(found) === verb).map(([step]) => step);
        return steps.length === 0 ? [] : [`${named(steps)} ${verb}`];
    });
    // A step only added (an optional step turned on) is all that changed: say just that.
    const onlyAdded = [...outcomesOf.values()].every(found => kind(found) === "added");
    return (onlyAdded ? changes : [ran, ...changes]).join("; ");
}

/** The rows of the README table after an HTML comment marker, as cells of markdown. */
function markedTable(marker: string): string[][] {
    const lines = README.split(`<!-- ${marker} -->\n`)[1]?.split("\n") ?? [];
    const table = lines.slice(0, lines.findIndex(line => !line.startsWith("|")));
    return table.slice(2).map(line => line.replace(/^\| | \|$/g, "").split(" | "));
}

const plain = (cell: string) => cell.replace(/`/g, "");

describe("the README's replacement table", () => {
    const rows = markedTable("replacement-table");

    test("has one row per change the test makes, and names every setting", () => {
        expect(rows.map(([setting]) => plain(setting)).sort()).toEqual(Object.keys(CHANGES).sort());
        const named = rows.flatMap(([setting]) => [...setting.matchAll(/`(\w+)/g)].map(m => m[1]));
        expect([...new Set(named)].sort()).toEqual([...KNOWN_KEYS].sort());
    });

    // Every changed stack at once: the program's runs under mocks mostly wait, so they overlap well.
    const changed = new Map<string, Promise<Deployment>>();
    beforeAll(() => {
        Object.entries(CHANGES).forEach(([setting, { to }]) => changed.set(setting, deploy(to)));
    });

    test.each(Object.keys(CHANGES))("%s: the resources and steps it changes are the program's", async setting => {
        const row = rows.find(([name]) => plain(name) === setting)!.map(plain);
        const [from, to] = [await baseline(CHANGES[setting].from), await changed.get(setting)!];
        const results = outcomes(from, to);
        expect({ setting, resources: row[1], steps: row[2] })
            .toEqual({ setting, resources: resourcesCell(results), steps: stepsCell(results, stepOrder(from, to)) });
    });

    test("a replaced instance keeps its Elastic IP and host key: the address and known_hosts line stay", async () => {
        const results = outcomes(await baseline(EC2), await deploy({ ...EC2, subnetId: "subnet-0123456789abcdef0" }));
        expect(results.get("aws:ec2/instance:Instance::X-ec2-instance")).toBe("replaced");
        expect(results.get("aws:ec2/eip:Eip::X-ec2-ip")).toBe("re-associated");
        expect(results.get("tls:index/privateKey:PrivateKey::X-ec2-host-key")).toBeUndefined();
    });

    test("a replaced instance keeps its cache volume, which is in the subnet's zone: only the attachment is made anew", async () => {
        const results = outcomes(await baseline(CACHED), await deploy({ ...CACHED, ubuntuAmiSerial: "20251015" }));
        expect(results.get("aws:ec2/instance:Instance::X-ec2-instance")).toBe("replaced");
        expect(results.get("aws:ec2/volumeAttachment:VolumeAttachment::X-ec2-cache-attachment")).toBe("replaced");
        expect(results.get("aws:ebs/volume:Volume::X-ec2-cache")).toBeUndefined();
        // The steps run on the new instance; the cache-volume step finds the filesystem and mounts it.
        expect(results.get("command:remote:Command::X-cache-volume-run")).toBe("re-run");
    });
});

describe("the IAM policy", () => {
    test("iam-policy.json allows what every resource and lookup of ec2 mode needs (UPDATE_IAM_POLICY=1 npm test rewrites it)", async () => {
        await Promise.all([EC2, FLEET, { ...EC2, subnetId: SUBNET, loginPrivateKey: PRIVATE_KEY }, { ...EC2, idleStopMinutes: "60" },
            { ...EC2, cacheVolumeSizeGb: "50" }].map(deploy));
        const types = new Set([...recorder.resources.map(r => r.type), ...recorder.invokes.map(i => i.token)]
            .filter(type => !type.startsWith("buildx-host:")));
        // Every entry is one the program uses: none lingers after its resource is gone.
        expect(Object.keys(AWS_CALLS).filter(type => !types.has(type))).toEqual([]);
        const policy = `${JSON.stringify(iamPolicy(types), null, 2)}\n`;
        if (process.env.UPDATE_IAM_POLICY === "1") {
            writeFileSync(IAM_POLICY_PATH, policy);
        }
        expect(readFileSync(IAM_POLICY_PATH, "utf8")).toBe(policy);
    });

    test("a type with no entry fails instead of being left out", () => {
        expect(() => iamPolicy(["aws:s3/bucket:Bucket"])).toThrow(/aws:s3\/bucket:Bucket has no entry in AWS_CALLS/);
    });
});
