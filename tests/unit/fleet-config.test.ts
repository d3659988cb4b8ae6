/**
 * A fleet's configuration: the `nodes` list, which node serves which platform, and the problems a
 * bad fleet reports, each naming its key (`nodes[1].platforms`) with a `--path` example.
 */
import { BuildNode, DEFAULTS, parseConfig, privateKeyValue, RawConfig, StackConfig } from "../../components/config";
import { routePlatforms } from "../../components/routing";
import { configProblems, hostConfig } from "../config-problems";

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF";
const PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END OPENSSH PRIVATE KEY-----\n";
const ALICE = "alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICMuitBm3Na3mokQbnQlnPS+q4yZBeoCIqm3SvbczITp alice@laptop";
const CIDRS = JSON.stringify(["10.20.0.0/16"]);

/** An existing server as a node, the way `pulumi config set --path 'nodes[i].…'` stores it. */
function server(name: string, architecture: string, more: Record<string, unknown> = {}) {
    return { name, mode: "existing", address: `${name}.example.com`, user: "builder", hostPublicKey: HOST_KEY,
        privateKey: PRIVATE_KEY, architecture, ...more };
}

function fleet(nodes: unknown[], settings: RawConfig = {}): RawConfig {
    return { nodes: JSON.stringify(nodes), ...settings };
}

const served = (stack: StackConfig) => Object.fromEntries(stack.nodes.map(node => [node.name, node.host.platforms]));

describe("a stack without nodes", () => {
    test("is the single host it always was", () => {
        const stack = parseConfig({ allowedSshCidrs: CIDRS, nodes: "[]" });
        expect(stack.fleet).toBe(false);
        expect(stack.nodes).toHaveLength(1);
        expect(stack.nodes[0].name).toBeUndefined();
        expect(stack.nodes[0].host.platforms).toEqual(DEFAULTS.platforms);
        expect(stack.nodes[0].privateKey).toBeUndefined();
    });
});

describe("routing", () => {
    test("a Graviton node takes arm64; the amd64 node its own and every emulated platform", () => {
        const stack = parseConfig(fleet([{ name: "amd64", instanceType: "c7i.xlarge" }, { name: "graviton", instanceType: "c7g.xlarge" }],
            { allowedSshCidrs: CIDRS }));
        expect(stack.fleet).toBe(true);
        expect(served(stack)).toEqual({
            amd64: ["linux/amd64", "linux/arm/v7", "linux/ppc64le", "linux/s390x", "linux/riscv64"],
            graviton: ["linux/arm64"],
        });
        expect(stack.nodes.map(n => n.host.mode === "ec2" && n.host.ec2.architecture)).toEqual(["amd64", "arm64"]);
    });

    test("emulation goes to the first amd64 node even when an arm64 node comes first", () => {
        const stack = parseConfig(fleet([server("pi", "arm64"), server("x86", "amd64")], { platforms: JSON.stringify(["linux/arm64", "linux/riscv64", "linux/amd64"]) }));
        expect(served(stack)).toEqual({ pi: ["linux/arm64"], x86: ["linux/amd64", "linux/riscv64"] });
    });

    test("an all-arm64 fleet emulates on its first node without a list", () => {
        const routing = routePlatforms(["linux/amd64", "linux/arm64"], [
            { name: "a", architecture: "arm64", platforms: ["linux/arm64"] }, { name: "b", architecture: "arm64" }]);
        expect(routing.problems).toEqual([]);
        expect(routing.served).toEqual([["linux/arm64"], ["linux/amd64"]]);
    });

    test("a node's own list is taken as given, and the rest is routed around it", () => {
        const stack = parseConfig(fleet([server("x86", "amd64"), server("pi", "arm64", { platforms: ["linux/arm64", "linux/arm/v7"] })]));
        expect(served(stack)).toEqual({ x86: ["linux/amd64", "linux/ppc64le", "linux/s390x", "linux/riscv64"], pi: ["linux/arm64", "linux/arm/v7"] });
    });

    test("a node's list adds to the default platforms", () => {
        const stack = parseConfig(fleet([server("x86", "amd64", { platforms: ["linux/amd64", "linux/386"] }), server("pi", "arm64")]));
        expect(stack.nodes.flatMap(n => n.host.platforms).sort()).toEqual([...DEFAULTS.platforms, "linux/386"].sort());
        // x86 lists its own, so the arm64 node, the only one without a list, emulates the rest.
        expect(served(stack).pi).toEqual(["linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x", "linux/riscv64"]);
    });

    test("every platform is served by exactly one node", () => {
        const stack = parseConfig(fleet([server("a", "amd64"), server("b", "arm64"), server("c", "amd64", { platforms: ["linux/s390x"] })]));
        const all = stack.nodes.flatMap(n => n.host.platforms);
        expect(all.sort()).toEqual([...DEFAULTS.platforms].sort());
        expect(new Set(all).size).toBe(all.length);
    });
});

describe("node settings", () => {
    test("existing nodes keep their own address, port, user, pinned key and private key", () => {
        const raw = fleet([server("x86", "amd64", { port: 2222 }), server("pi", "arm64", { privateKey: PRIVATE_KEY.replace("c2Vj", "b3Ro") })]);
        const stack = parseConfig(raw);
        const [x86, pi] = stack.nodes as BuildNode[];
        expect(x86.host.mode === "existing" && x86.host.existingHost).toEqual({ address: "x86.example.com", port: 2222, user: "builder", hostPublicKey: HOST_KEY });
        expect(pi.host.mode === "existing" && pi.host.existingHost.port).toBe(22);
        expect(x86.privateKey).toEqual({ node: 0 });
        expect(privateKeyValue(raw, pi.privateKey!)).toContain("b3Ro");
    });

    test("a node's mode defaults to hostMode; ec2 nodes share the stack's ec2 settings and login key", () => {
        const stack = parseConfig(fleet([{ name: "amd64" }, { name: "graviton", instanceType: "m7g.large" }],
            { allowedSshCidrs: CIDRS, rootVolumeSizeGb: "300", instanceType: "c7a.large", loginPrivateKey: PRIVATE_KEY }));
        for (const node of stack.nodes) {
            expect(node.host.mode).toBe("ec2");
            expect(node.host.mode === "ec2" && node.host.ec2.rootVolumeSizeGb).toBe(300);
            expect(node.privateKey).toBe("loginPrivateKey");
        }
        expect(stack.nodes.map(n => n.host.mode === "ec2" && n.host.ec2.instanceType)).toEqual(["c7a.large", "m7g.large"]);
    });

    test("spot is each ec2 node's own, defaulting to the stack's spot; a single host takes the stack's", () => {
        const spotOf = (stack: StackConfig) => stack.nodes.map(n => n.host.mode === "ec2" && n.host.ec2.spot);
        const nodes = [{ name: "amd64" }, { name: "graviton", instanceType: "c7g.xlarge", spot: true }];
        expect(spotOf(parseConfig(fleet(nodes, { allowedSshCidrs: CIDRS })))).toEqual([false, true]);
        expect(spotOf(parseConfig(fleet([{ name: "amd64", spot: false }, nodes[1]], { allowedSshCidrs: CIDRS, spot: "true" })))).toEqual([false, true]);
        expect(spotOf(parseConfig(fleet(nodes, { allowedSshCidrs: CIDRS, spot: "true" })))).toEqual([true, true]);
        expect(spotOf(parseConfig({ allowedSshCidrs: CIDRS, spot: "true" }))).toEqual([true]);
    });

    test("the stack's team and builder settings reach every node", () => {
        const stack = parseConfig(fleet([server("a", "amd64"), server("b", "arm64")], { team: JSON.stringify([ALICE]), builderName: "team" }));
        for (const node of stack.nodes) {
            expect(node.host.team.map(m => m.name)).toEqual(["alice"]);
            expect(node.host.builderName).toBe("team");
        }
    });
});

describe("a bad fleet fails at preview, each problem naming its key with a --path example", () => {
    /** [what is wrong, raw config, the key the message names, text the message must show] */
    const cases: [string, RawConfig, string, string][] = [
        ["nodes not a list", { nodes: "{\"name\":\"a\"}" }, "nodes", "--path 'nodes[0].name'"],
        ["a node that is a string", fleet(["amd64"]), "nodes[0]", "--path 'nodes[0].name' amd64"],
        ["a node without a name", fleet([{ instanceType: "c7i.large" }], { allowedSshCidrs: CIDRS }), "nodes[0].name", "--path 'nodes[0].name' graviton"],
        ["a node name with capitals", fleet([server("Arm", "arm64")]), "nodes[0].name", "--path 'nodes[0].name' graviton"],
        ["two nodes with one name", fleet([server("a", "amd64"), server("a", "arm64")]), "nodes[1].name", "names another node too"],
        ["a misspelt node setting", fleet([{ ...server("a", "amd64"), adress: "x" }]), "nodes[0].adress", "is not a setting of a node"],
        ["an unknown mode", fleet([{ name: "a", mode: "lxd" }], { allowedSshCidrs: CIDRS }), "nodes[0].mode", "--path 'nodes[0].mode' existing"],
        ["an existing node without an address", fleet([{ ...server("a", "amd64"), address: undefined }]), "nodes[0].address", "--path 'nodes[0].address' build1.example.com"],
        ["an existing node without its architecture", fleet([{ ...server("a", "amd64"), architecture: undefined }]), "nodes[0].architecture", "dpkg --print-architecture"],
        ["an existing node's pinned key pasted from known_hosts", fleet([server("a", "amd64", { port: 2222, hostPublicKey: `[a]:2222 ${HOST_KEY}` })]),
            "nodes[0].hostPublicKey", "--path 'nodes[0].hostPublicKey' \"$(ssh-keyscan -p 2222 -t ed25519 a.example.com"],
        ["an existing node without a private key", fleet([{ ...server("a", "amd64"), privateKey: undefined }]), "nodes[0].privateKey",
            "--secret --path 'nodes[0].privateKey' < ~/.ssh/id_ed25519"],
        ["an existing node's port out of range", fleet([server("a", "amd64", { port: 70000 })]), "nodes[0].port", "--path 'nodes[0].port' 2222"],
        ["an ec2 node's architecture against its instance type", fleet([{ name: "g", instanceType: "c7g.large", architecture: "amd64" }], { allowedSshCidrs: CIDRS }),
            "nodes[0].architecture", "--path 'nodes[0].architecture' arm64"],
        ["an ec2 node with an existing node's setting", fleet([{ name: "a", address: "a.example.com" }], { allowedSshCidrs: CIDRS }), "nodes[0].address",
            "is a setting of an existing node"],
        ["an existing node with an instance type", fleet([server("a", "amd64", { instanceType: "c7i.large" })]), "nodes[0].instanceType", "is a setting of an ec2 node"],
        ["an existing node asking for spot", fleet([server("a", "amd64", { spot: true })]), "nodes[0].spot", "is a setting of an ec2 node"],
        ["a node's spot not a boolean", fleet([{ name: "a", spot: "yes" }], { allowedSshCidrs: CIDRS }), "nodes[0].spot",
            "must be true or false, not \"yes\". Example: pulumi config set --path 'nodes[0].spot' true"],
        ["the stack's spot not a boolean", fleet([{ name: "a" }], { allowedSshCidrs: CIDRS, spot: "1" }), "spot", "Example: pulumi config set spot true"],
        ["spot with no ec2 node", fleet([server("a", "amd64")], { spot: "true" }), "spot", "no node is in ec2 mode"],
        ["an existing node with a cache volume", fleet([server("a", "amd64", { cacheVolumeSizeGb: 100 })]), "nodes[0].cacheVolumeSizeGb",
            "is a setting of an ec2 node"],
        ["an ec2 node's cache volume too large", fleet([{ name: "a", cacheVolumeSizeGb: 20000 }], { allowedSshCidrs: CIDRS }), "nodes[0].cacheVolumeSizeGb",
            "--path 'nodes[0].cacheVolumeSizeGb' 200"],
        ["an ec2 node's retainCacheVolume not a boolean", fleet([{ name: "a", retainCacheVolume: "yes" }], { allowedSshCidrs: CIDRS }),
            "nodes[0].retainCacheVolume", "--path 'nodes[0].retainCacheVolume' false"],
        ["a cache volume with no ec2 node", fleet([server("a", "amd64")], { cacheVolumeSizeGb: "100" }), "cacheVolumeSizeGb", "no node is in ec2 mode"],
        ["ec2 nodes without allowedSshCidrs", fleet([{ name: "a" }]), "allowedSshCidrs", "is required in ec2 mode"],
        ["a single-host setting beside nodes", fleet([server("a", "amd64")], { existingHostAddress: "b.example.com", hostMode: "existing" }),
            "existingHostAddress", "with nodes, each node has its own: nodes[N].address"],
        ["an ec2 setting with no ec2 node", fleet([server("a", "amd64")], { rootVolumeSizeGb: "300" }), "rootVolumeSizeGb", "no node is in ec2 mode"],
        ["an unknown platform in a node's list", fleet([server("a", "amd64", { platforms: ["linux/vax"] })]), "nodes[0].platforms", "supported:"],
        ["a platform on two nodes", fleet([server("a", "amd64", { platforms: ["linux/arm64"] }), server("b", "arm64", { platforms: ["linux/arm64"] })]),
            "nodes[1].platforms", "which nodes[0] (a) serves already"],
        ["a node's platform the fleet does not build", fleet([server("a", "amd64", { platforms: ["linux/386"] }), server("b", "arm64")],
            { platforms: JSON.stringify(["linux/amd64", "linux/arm64"]) }), "nodes[0].platforms", "--path 'platforms[2]' linux/386"],
        ["a platform no node serves", fleet([server("a", "amd64", { platforms: ["linux/amd64"] }), server("b", "arm64", { platforms: ["linux/arm64"] })]),
            "platforms", "which no node serves"],
        ["a second amd64 node with nothing to build", fleet([server("a", "amd64"), server("b", "amd64")]), "nodes[1]",
            "(b) serves no platform: linux/amd64 goes to nodes[0] (a)"],
        ["a team member named like a node's login user", fleet([server("a", "amd64", { user: "alice" })], { team: JSON.stringify([ALICE]) }), "team[0]", "login user"],
        ["an unknown fleetFallback", fleet([server("a", "amd64")], { fleetFallback: "queue" }), "fleetFallback",
            "must be one of \"fail\", \"emulate\", not \"queue\". Example: pulumi config set fleetFallback emulate"],
        ["ec2 nodes allowed in from a documentation range only", fleet([{ name: "a" }], { allowedSshCidrs: JSON.stringify(["198.51.100.0/24"]) }),
            "allowedSshCidrs[0]", "a documentation range (RFC 5737)"],
        ["existing nodes' member limited to a documentation range", fleet([server("a", "amd64")],
            { team: JSON.stringify([ALICE.replace("alice ", "alice from=192.0.2.10 ")]) }), "team[0]", "a documentation range (RFC 5737)"],
    ];

    test.each(cases)("%s", (_, raw, key, shown) => {
        const problems = configProblems(raw);
        const problem = problems.find(p => p.startsWith(`buildx-host:${key} `));
        expect([problem, problems]).toEqual([expect.stringContaining(shown), problems]);
        expect(problem).toContain("Example: pulumi config set ");
    });

    test("a private key in nodes stored in plain text is refused, value unseen", () => {
        const problems = configProblems(fleet([server("a", "amd64")]), ["existingHostPrivateKey"]);
        expect(problems).toEqual([expect.stringMatching(/^buildx-host:nodes\[0\]\.privateKey is stored in plain text .*--secret --path 'nodes\[0\]\.privateKey'/)]);
        expect(problems.join("\n")).not.toContain("c2VjcmV0");
        expect(() => parseConfig(fleet([server("a", "amd64")]), ["nodes"])).not.toThrow();
    });

    test("every problem is reported at once", () => {
        const problems = configProblems(fleet([{ name: "A" }, server("b", "amd64", { port: "x" }), server("c", "amd64")]));
        expect(problems.length).toBeGreaterThanOrEqual(4);
    });
});

test("fleetFallback reaches the stack: fail unless set to emulate; emulate on a single host is refused, naming nodes", () => {
    expect(parseConfig(fleet([server("a", "amd64")])).fleetFallback).toBe("fail");
    expect(parseConfig(fleet([server("a", "amd64")], { fleetFallback: "emulate" })).fleetFallback).toBe("emulate");
    const problems = configProblems({ allowedSshCidrs: CIDRS, fleetFallback: "emulate" });
    expect(problems).toEqual([expect.stringMatching(/^buildx-host:fleetFallback is a setting of a fleet .*--path 'nodes\[0\]\.name' amd64 \(a fleet\)/)]);
});

test("each ec2 node's cache volume: its own cacheVolumeSizeGb and retainCacheVolume, the stack's where it sets none, none at 0", () => {
    const stack = parseConfig(fleet([{ name: "a" }, { name: "b", instanceType: "c7g.xlarge", cacheVolumeSizeGb: 30, retainCacheVolume: false },
        { name: "c", cacheVolumeSizeGb: 0, platforms: ["linux/riscv64"] }, server("d", "amd64", { platforms: ["linux/s390x"] })], {
        allowedSshCidrs: CIDRS, cacheVolumeSizeGb: "200", platforms: JSON.stringify(["linux/amd64", "linux/arm64", "linux/riscv64", "linux/s390x"]),
        buildkitGcMaxUsedSpace: "10GB", buildkitGcMinFreeSpace: "5GB",
    }));
    expect(stack.nodes.map(node => node.host.mode === "ec2" ? node.host.ec2.cacheVolume ?? "none" : "existing")).toEqual([
        { sizeGb: 200, retain: true }, { sizeGb: 30, retain: false }, "none", "existing"]);
});

test("the GC limits must fit the smallest data root of a fleet's ec2 nodes: a node's small cache volume is named", () => {
    const problems = configProblems(fleet([{ name: "a" }, { name: "b", instanceType: "c7g.xlarge", cacheVolumeSizeGb: 30 }],
        { allowedSshCidrs: CIDRS, cacheVolumeSizeGb: "500", buildkitGcMaxUsedSpace: "40GB" }));
    expect(problems).toEqual([expect.stringContaining("do not fit together on the 30 GiB cache volume (cacheVolumeSizeGb) beside the 1 GiB the rest of Docker needs")]);
});

test("the single-host helper refuses a fleet", () => {
    expect(() => hostConfig(fleet([server("a", "amd64")]))).toThrow(/fleet/);
});
