/**
 * Which node of a fleet builds which platform. buildx sends a platform to the first node of a
 * builder that offers it, without a word (docker/buildx#1686, #2119), so every platform the fleet
 * builds is given to exactly one node here, and the node is told to offer only those.
 * Pure: no Pulumi calls.
 */
import { CpuArchitecture } from "./host-facts";

/** What routing needs of a node. */
export interface RoutableNode {
    readonly name: string;
    readonly architecture: CpuArchitecture;
    /** The platforms the node's settings give it; undefined: routing decides. */
    readonly platforms?: readonly string[];
}

/** A routing problem: the setting it is about, what is wrong, and a `pulumi config set` example that fixes it. */
export interface RoutingProblem {
    readonly key: string;
    readonly why: string;
    readonly example: string;
}

export interface Routing {
    /** Per node, in the order given: the platforms it serves, its native one first. */
    readonly served: readonly (readonly string[])[];
    readonly problems: readonly RoutingProblem[];
}

export function nativePlatform(architecture: CpuArchitecture): string {
    return `linux/${architecture}`;
}

/**
 * Gives each platform of `requested` to one node: a node's own list is taken as given; a platform
 * no list names goes to the first node without a list whose CPU runs it natively, and failing
 * that to the fleet's emulation node, the first amd64 node without a list (else the first node
 * without one). Every node must end up serving something.
 */
export function routePlatforms(requested: readonly string[], nodes: readonly RoutableNode[]): Routing {
    const problems: RoutingProblem[] = [];
    const owner = new Map<string, number>();
    nodes.forEach((node, index) => {
        for (const platform of node.platforms ?? []) {
            const first = owner.get(platform);
            if (first !== undefined) {
                problems.push({
                    key: `nodes[${index}].platforms`,
                    why: `has "${platform}", which nodes[${first}] (${nodes[first].name}) serves already; buildx would send it ` +
                        "to one of them without a word (docker/buildx#1686), so give each platform to one node",
                    example: `--path 'nodes[${index}].platforms[0]' ${nativePlatform(node.architecture)}`,
                });
            } else {
                owner.set(platform, index);
            }
        }
    });

    const routed = nodes.map((_, index) => index).filter(index => nodes[index].platforms === undefined);
    const emulationNode = routed.find(index => nodes[index].architecture === "amd64") ?? routed[0];
    for (const platform of requested.filter(p => !owner.has(p))) {
        const native = routed.find(index => nativePlatform(nodes[index].architecture) === platform);
        if (native !== undefined) {
            owner.set(platform, native);
        } else if (emulationNode !== undefined) {
            owner.set(platform, emulationNode);
        } else {
            problems.push({
                key: "platforms",
                why: `has "${platform}", which no node serves: every node lists its platforms; add it to one node's list`,
                example: `--path 'nodes[0].platforms[${nodes[0]?.platforms?.length ?? 0}]' ${platform}`,
            });
        }
    }

    const served = nodes.map((node, index) => {
        const own = [...owner].filter(([, owning]) => owning === index).map(([platform]) => platform);
        const native = nativePlatform(node.architecture);
        return own.includes(native) ? [native, ...own.filter(p => p !== native)] : own;
    });
    served.forEach((platforms, index) => {
        // A node whose own list came up empty lost every platform to an earlier node: reported above.
        if (platforms.length === 0 && nodes[index].platforms === undefined) {
            const taker = owner.get(nativePlatform(nodes[index].architecture));
            problems.push({
                key: `nodes[${index}]`,
                why: `(${nodes[index].name}) serves no platform` +
                    (taker !== undefined ? `: ${nativePlatform(nodes[index].architecture)} goes to nodes[${taker}] (${nodes[taker].name})` : "") +
                    "; give it the platforms it should build, or remove it",
                example: `--path 'nodes[${index}].platforms[0]' ${nativePlatform(nodes[index].architecture)}`,
            });
        }
    });
    return { served, problems };
}
