/**
 * A fleet: the `nodes` list, each node read with its own settings (named `nodes[i].key` in problems,
 * with `--path` examples), and the platforms routing gives each.
 */
import { CPU_ARCHITECTURES, CpuArchitecture } from "../host-facts";
import { routePlatforms } from "../routing";
import { checkGcFitsDisk, dataRootDisk } from "./buildkit-gc";
import { readCommonSettings, readIdleStopMinutes, readPlatforms } from "./common";
import { Ec2NodeDefaults, Ec2NodeSettings, readEc2Node, readEc2NodeDefaults, readEc2Shared } from "./ec2";
import { ExistingHostKeys, NODE_HOST_KEYS, readExistingHostSettings, SINGLE_HOST_KEYS } from "./existing-host";
import { Reader } from "./reader";
import { BuildNode, DEFAULTS, EC2_ONLY_KEYS, ExistingHostSettings, HostMode, RawConfig } from "./settings";

/** The settings of a `nodes` entry, by the mode they belong to. */
const NODE_KEYS = {
    both: ["name", "mode", "architecture", "platforms", "idleStopMinutes"],
    ec2: ["instanceType", "spot", "cacheVolumeSizeGb", "retainCacheVolume"],
    existing: Object.values(NODE_HOST_KEYS),
} as const satisfies Readonly<Record<string, readonly string[]>>;

/** Single-host settings that a fleet sets per node instead: the stack key, and the node's. */
const PER_NODE_KEYS: Readonly<Record<string, string>> = {
    architecture: "architecture",
    ...Object.fromEntries(Object.entries(SINGLE_HOST_KEYS).map(([field, key]) => [key, NODE_HOST_KEYS[field as keyof ExistingHostKeys]])),
};

const NODE_NAME = /^[a-z][a-z0-9-]{0,30}$/;

const NODE_EXAMPLE_VALUES: Readonly<Record<string, string>> = {
    architecture: "arm64", address: "build1.example.com", port: "2222", user: "ubuntu",
    hostPublicKey: "\"$(ssh-keyscan -t ed25519 build1.example.com | cut -d' ' -f2-)\"",
};

/**
 * Reads the settings of `nodes[index]` (a JSON object in the stack's config), naming them so in
 * problems and turning examples into `--path 'nodes[index].key'` ones.
 */
class NodeReader extends Reader {
    constructor(private readonly stack: Reader, readonly index: number, fields: RawConfig) {
        super(fields, undefined, stack.problems);
    }

    /** `pulumi config` encrypts `nodes` as a whole when any value in it is set with --secret. */
    override storedAsSecret(): boolean {
        return this.stack.storedAsSecret("nodes");
    }

    override problem(key: string, why: string, example: string): void {
        const node = `nodes[${this.index}]`;
        const pathExample = example
            .replace(/^--secret (\w+)/, `--secret --path '${node}.$1'`)
            .replace(/^--path '(\w+)/, `--path '${node}.$1`)
            .replace(/^(\w+) /, (whole, key: string) => NODE_SETTINGS.includes(key) ? `--path '${node}.${key}' ` : whole);
        super.problem(`${node}.${key}`, why, pathExample);
    }
}

const NODE_SETTINGS: readonly string[] = [...NODE_KEYS.both, ...NODE_KEYS.ec2, ...NODE_KEYS.existing];

/** The `nodes` entries as readers of their own settings; a problem for each entry that is not an object. */
function nodeReaders(r: Reader): NodeReader[] {
    const example = "--path 'nodes[0].name' amd64";
    let entries: unknown;
    try {
        entries = JSON.parse(r.string("nodes")!);
    } catch {
        entries = undefined;
    }
    if (!Array.isArray(entries)) {
        r.problem("nodes", "must be a list of nodes, each with its own settings", example);
        return [];
    }
    return entries.flatMap((entry: unknown, index) => {
        if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
            r.problem(`nodes[${index}]`, "must be a node's settings (name, mode, …), not a single value", `--path 'nodes[${index}].name' amd64`);
            return [];
        }
        const fields = Object.fromEntries(Object.entries(entry).map(([key, value]) =>
            [key, typeof value === "string" ? value : JSON.stringify(value)]));
        return [new NodeReader(r, index, fields)];
    });
}

/** A fleet node as read, before routing gives it its platforms. */
interface ReadNode {
    readonly name: string;
    readonly target: { readonly mode: "ec2"; readonly ec2: Ec2NodeSettings }
        | { readonly mode: "existing"; readonly existingHost: ExistingHostSettings };
    readonly architecture: CpuArchitecture;
    readonly platforms?: readonly string[];
    /** Its own idleStopMinutes; undefined: the stack's. */
    readonly idleStopMinutes?: number;
}

function readNode(n: NodeReader, defaultMode: HostMode, ec2Defaults: Ec2NodeDefaults, names: Set<string>): ReadNode {
    for (const key of n.keys()) {
        if (!NODE_SETTINGS.includes(key)) {
            n.problem(key, `is not a setting of a node; a node has ${NODE_SETTINGS.join(", ")}`, "name amd64");
        }
    }
    const name = n.matching("name", NODE_NAME, "must start with a lowercase letter, then lowercase letters, digits and - (at most 31)",
        "name graviton", n.string("name", `node${n.index}`))!;
    if (!n.has("name")) {
        n.problem("name", "is required: the node's name in the builder and in the stack's outputs", "name graviton");
    } else if (names.has(name)) {
        n.problem("name", `"${name}" names another node too; node names must be unique`, `name ${name}-2`);
    }
    names.add(name);
    const mode = n.oneOf<HostMode>("mode", ["ec2", "existing"], defaultMode, "mode existing");
    for (const key of NODE_KEYS[mode === "ec2" ? "existing" : "ec2"].filter(k => n.has(k))) {
        n.problem(key, `is a setting of ${mode === "ec2" ? "an existing" : "an ec2"} node, but this node's mode is "${mode}"`,
            `mode ${mode === "ec2" ? "existing" : "ec2"}`);
    }
    const platforms = n.has("platforms") ? readPlatforms(n, []) : undefined;
    const idleStopMinutes = n.has("idleStopMinutes") ? readIdleStopMinutes(n) : undefined;
    if (mode === "ec2") {
        const ec2 = readEc2Node(n, ec2Defaults);
        return { name, target: { mode, ec2 }, architecture: ec2.architecture, platforms, idleStopMinutes };
    }
    if (!n.has("architecture")) {
        n.problem("architecture", "is required for an existing node: its CPU, as `dpkg --print-architecture` prints it", "architecture arm64");
    }
    const architecture = n.oneOf<CpuArchitecture>("architecture", CPU_ARCHITECTURES, "amd64", "architecture arm64");
    return { name, target: { mode, existingHost: readExistingHostSettings(n, NODE_HOST_KEYS) }, architecture, platforms, idleStopMinutes };
}

/** A stack that lists `nodes`: every node's host, and the platforms each serves. */
export function readFleet(r: Reader, defaultMode: HostMode): BuildNode[] {
    for (const [key, nodeKey] of Object.entries(PER_NODE_KEYS).filter(([key]) => r.isSet(key))) {
        const setNode = nodeKey === "privateKey" ? "--secret --path 'nodes[0].privateKey' < ~/.ssh/id_ed25519"
            : `--path 'nodes[0].${nodeKey}' ${NODE_EXAMPLE_VALUES[nodeKey]}`;
        r.problem(key, `is a setting of a single host; with nodes, each node has its own: nodes[N].${nodeKey}`,
            `${setNode}; pulumi config rm ${key}`);
    }
    const ec2Defaults = readEc2NodeDefaults(r);
    const names = new Set<string>();
    const nodes = nodeReaders(r).map(n => ({ index: n.index, ...readNode(n, defaultMode, ec2Defaults, names) }));

    const ec2Nodes = nodes.some(node => node.target.mode === "ec2");
    const ec2Shared = ec2Nodes ? readEc2Shared(r) : undefined;
    const idle = EC2_ONLY_KEYS.filter(key => !(key in PER_NODE_KEYS) && r.isSet(key));
    if (!ec2Nodes && idle.length > 0) {
        r.problem(idle[0], `${idle.length === 1 ? "is a setting" : `and ${idle.slice(1).join(", ")} are settings`} of ec2 nodes, ` +
            "but no node is in ec2 mode", `--path 'nodes[0].mode' ec2, or remove them: pulumi config rm ${idle[0]}`);
    }

    // Unset, the fleet builds the default platforms and whatever a node's own list adds.
    const listed = nodes.flatMap(node => node.platforms ?? []);
    const requested = r.isSet("platforms") ? readPlatforms(r) : [...new Set([...DEFAULTS.platforms, ...listed])];
    for (const node of nodes) {
        for (const platform of (node.platforms ?? []).filter(p => !requested.includes(p))) {
            r.problem(`nodes[${node.index}].platforms`, `has "${platform}", which platforms does not list; the fleet builds what platforms lists`,
                `--path 'platforms[${requested.length}]' ${platform}`);
        }
    }
    const routing = routePlatforms(requested, nodes);
    for (const problem of routing.problems) {
        r.problem(problem.key, problem.why, problem.example);
    }

    const existingUsers = nodes.flatMap(node => node.target.mode === "existing" ? [node.target.existingHost.user] : []);
    const common = readCommonSettings(r, existingUsers);
    // The GC limits are the stack's: they must fit the smallest data root disk of the EC2 nodes.
    const disks = nodes.flatMap(node => node.target.mode === "ec2" ? [dataRootDisk({ ...ec2Shared!, ...node.target.ec2 })] : []);
    checkGcFitsDisk(r, common.buildkitGc, disks.sort((a, b) => (a.sizeGb - a.roomGib) - (b.sizeGb - b.roomGib))[0]);
    return nodes.map((node, index): BuildNode => {
        const platforms = routing.served[index];
        const idleStopMinutes = node.idleStopMinutes ?? common.idleStopMinutes;
        if (node.target.mode === "existing") {
            return { name: node.name, host: { ...common, platforms, idleStopMinutes, ...node.target }, privateKey: { node: node.index } };
        }
        return {
            name: node.name,
            host: { ...common, platforms, idleStopMinutes, mode: "ec2", ec2: { ...node.target.ec2, ...ec2Shared! } },
            privateKey: ec2Shared!.loginKeyProvided ? "loginPrivateKey" : undefined,
        };
    });
}
