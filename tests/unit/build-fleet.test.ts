import { EVERY_HOST_STEPS, STEP_NAMES } from "../../components/steps";
import { installMocks, isSecret, RecordedResource, valueOf } from "./mocks";

const recorder = installMocks();

// Imported after the mocks are installed, as a Pulumi program would be run under them.
import { RawConfig } from "../../components/config";
import { deployFleet } from "./deploy-fleet";
import type { Workflow } from "../../components/endpoint";
import * as yaml from "js-yaml";

const CIDRS = JSON.stringify(["10.20.0.0/16"]);
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF";
const PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nbG9naW4ta2V5\n-----END OPENSSH PRIVATE KEY-----\n";
const ALICE = "alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICMuitBm3Na3mokQbnQlnPS+q4yZBeoCIqm3SvbczITp alice@laptop";

const deploy = (name: string, raw: RawConfig, privateKey?: string) => deployFleet(recorder, name, raw, privateKey);

describe("a stack without nodes", () => {
    let deployed: Awaited<ReturnType<typeof deploy>>;
    beforeAll(async () => { deployed = await deploy("single", { allowedSshCidrs: CIDRS }); });

    test("keeps its one host under the name it had, aliased to where it was: the stack's top component", () => {
        const [host, ...others] = deployed.resources.filter(r => r.type === "buildx-host:index:BuildHost");
        expect([host.name, others]).toEqual(["single", []]);
        expect(host.urn).toContain("buildx-host:index:BuildFleet$buildx-host:index:BuildHost::single");
        expect(host.aliasSpecs).toEqual([{ spec: expect.objectContaining({ noparent: true }) }]);
        // Its children keep their own names: the engine moves them with their parent's alias.
        expect(deployed.resources.filter(r => r.type === "command:remote:Command").map(r => r.name))
            .toEqual(EVERY_HOST_STEPS.map(step => `single-${step}-run`));
    });

    test("has no fleet outputs", () => {
        expect(deployed.fleet.nodes).toBeUndefined();
        expect(deployed.fleet.buildxCreateCommand).toBeUndefined();
    });
});

describe("a fleet of an amd64 and a Graviton node", () => {
    let deployed: Awaited<ReturnType<typeof deploy>>;
    beforeAll(async () => {
        deployed = await deploy("fleet", {
            allowedSshCidrs: CIDRS, team: JSON.stringify([ALICE]), cacheVolumeSizeGb: "100",
            nodes: JSON.stringify([{ name: "amd64", instanceType: "c7i.xlarge" },
                { name: "graviton", instanceType: "c7g.xlarge", cacheVolumeSizeGb: 30, retainCacheVolume: false }]),
            fleetFallback: "emulate",
        });
    });

    test("gives every node its own instance, host key, login key, cache volume and eight steps", () => {
        const count = (type: string, node: string) => deployed.resources.filter(r => r.type === type && r.name.startsWith(`fleet-${node}-`)).length;
        for (const node of ["amd64", "graviton"]) {
            expect([node, count("aws:ec2/instance:Instance", node), count("tls:index/privateKey:PrivateKey", node),
                count("aws:ebs/volume:Volume", node), count("aws:ec2/volumeAttachment:VolumeAttachment", node),
                count("command:remote:Command", node)]).toEqual([node, 1, 2, 1, 1, 8]);
        }
        expect(deployed.named("fleet-graviton-ec2-instance").inputs.instanceType).toBe("c7g.xlarge");
        expect(deployed.named("fleet-graviton-ec2-instance").inputs.tags).toMatchObject({ Node: "graviton", Project: "buildx-host" });
    });

    test("provisions the nodes in parallel, each node's steps in order", () => {
        // Both nodes have a cache volume (the stack's, and the graviton node's own); neither idles.
        const steps = (node: string) => STEP_NAMES.filter(step => step !== "idle-stop").map(step => deployed.named(`fleet-${node}-${step}-run`));
        expect(steps("amd64").every(Boolean)).toBe(true);
        for (const [node, other] of [["amd64", "graviton"], ["graviton", "amd64"]]) {
            const mine = steps(node);
            mine.slice(1).forEach((step, index) => expect(step.dependencies).toContain(mine[index].urn));
            const otherUrns = new Set(deployed.resources.filter(r => r.name.startsWith(`fleet-${other}-`)).map(r => r.urn));
            for (const resource of deployed.resources.filter(r => r.name.startsWith(`fleet-${node}-`))) {
                expect([resource.name, resource.dependencies.filter(d => otherUrns.has(d))]).toEqual([resource.name, []]);
            }
        }
    });

    test("each node's cache volume has the node's own size and retention, the stack's where it sets none", async () => {
        const volume = (node: string) => deployed.named(`fleet-${node}-ec2-cache`);
        expect([volume("amd64").inputs.size, volume("amd64").retainOnDelete]).toEqual([100, true]);
        expect([volume("graviton").inputs.size, volume("graviton").retainOnDelete]).toEqual([30, false]);
        // Each in its own instance's subnet zone, attached to its own instance, mounted by its own step.
        for (const node of ["amd64", "graviton"]) {
            expect(volume(node).inputs).toMatchObject({ type: "gp3", encrypted: true, availabilityZone: "eu-west-1a" });
            expect(deployed.named(`fleet-${node}-ec2-cache-attachment`).inputs)
                .toMatchObject({ instanceId: `fleet-${node}-ec2-instance-id`, volumeId: `fleet-${node}-ec2-cache-id` });
            expect(deployed.named(`fleet-${node}-cache-volume-run`).inputs.create).toContain(`CACHE_VOLUME_ID='fleet-${node}-ec2-cache-id'`);
        }
        expect(deployed.named("fleet-amd64-buildx-builder-run").inputs.delete).toContain("BUILDER_KEEP_CACHE='true'");
        expect(deployed.named("fleet-graviton-buildx-builder-run").inputs.delete).toContain("BUILDER_KEEP_CACHE='false'");
        const nodes = await valueOf(deployed.fleet.nodes!);
        expect([nodes.amd64.cacheVolumeId, nodes.graviton.cacheVolumeId]).toEqual(["fleet-amd64-ec2-cache-id", "fleet-graviton-ec2-cache-id"]);
    });

    test("each node's QEMU step proves only the platforms it serves", () => {
        const qemu = (node: string) => deployed.named(`fleet-${node}-qemu-binfmt-run`).inputs.create as string;
        expect(qemu("amd64")).toContain("QEMU_PLATFORMS='linux/amd64 linux/arm/v7 linux/ppc64le linux/s390x linux/riscv64'");
        expect(qemu("graviton")).toContain("QEMU_PLATFORMS='linux/arm64'");
    });

    test("outputs each node's endpoint, and one client builder over both", async () => {
        const nodes = await valueOf(deployed.fleet.nodes!);
        expect(Object.keys(nodes)).toEqual(["amd64", "graviton"]);
        expect(nodes.graviton).toMatchObject({
            address: "ec2-198-51-100-7.eu-west-1.compute.amazonaws.com",
            sshEndpoint: "ssh://ubuntu@ec2-198-51-100-7.eu-west-1.compute.amazonaws.com",
            dockerContextCommand: "docker context create buildx-host-graviton --docker host=ssh://ubuntu@ec2-198-51-100-7.eu-west-1.compute.amazonaws.com",
            platforms: ["linux/arm64"],
            instanceId: "fleet-graviton-ec2-instance-id",
        });
        expect(nodes.graviton.knownHostsLine).toMatch(/^ec2-198-51-100-7\.eu-west-1\.compute\.amazonaws\.com ssh-ed25519 /);
        expect((await valueOf(deployed.fleet.buildxCreateCommand!)).split("\n")).toEqual([
            "docker buildx create --name buildx-host-remote --driver remote --node amd64 --platform linux/amd64,linux/arm/v7,linux/ppc64le,linux/s390x,linux/riscv64 " +
                "'docker-container://buildx_buildkit_buildx-host0?context=buildx-host-amd64' --use",
            "docker buildx create --name buildx-host-remote --append --node graviton --platform linux/arm64 " +
                "'docker-container://buildx_buildkit_buildx-host0?context=buildx-host-graviton'",
        ]);
        expect(await valueOf(deployed.fleet.platformNodes!)).toEqual({
            "linux/amd64": "amd64", "linux/arm/v7": "amd64", "linux/ppc64le": "amd64", "linux/s390x": "amd64", "linux/riscv64": "amd64",
            "linux/arm64": "graviton",
        });
        expect((await valueOf(deployed.fleet.knownHostsLines!)).split("\n")).toHaveLength(2);
    });

    test("each team member gets a buildx command over every node's member door, a fleet workflow and a hand-over", async () => {
        expect((await valueOf(deployed.fleet.teamBuildxCreateCommands!)).alice.split("\n")).toEqual([
            "docker buildx create --name buildx-host-remote --driver remote --node amd64 --platform linux/amd64,linux/arm/v7,linux/ppc64le,linux/s390x,linux/riscv64 " +
                "ssh://alice@ec2-198-51-100-7.eu-west-1.compute.amazonaws.com --use",
            "docker buildx create --name buildx-host-remote --append --node graviton --platform linux/arm64 " +
                "ssh://alice@ec2-198-51-100-7.eu-west-1.compute.amazonaws.com",
        ]);
        const script = (await valueOf(deployed.fleet.teamAttachScripts!)).alice;
        expect(script).toContain("\nfallback=emulate\n");
        expect(script).toContain("\ngraviton ssh://alice@ec2-198-51-100-7.eu-west-1.compute.amazonaws.com linux/arm64'\n");
        const workflow = yaml.load((await valueOf(deployed.fleet.teamGithubActionsWorkflows!)).alice) as Workflow;
        expect(workflow.jobs.build.steps.find(step => step.id === "fleet")!.run).toBe(script);
        const handOver = (await valueOf(deployed.fleet.teamHandOver!)).alice;
        expect(handOver.split("\n").filter(line => line.startsWith("    echo ") && line.endsWith("known_hosts"))).toHaveLength(2);
        expect(handOver).toContain("\n    cat > ~/buildx-host-remote-attach.sh <<'BUILDX_HOST_ATTACH'\n    #!/bin/sh\n");
    });

    test("the generated login keys are one secret output, by node", async () => {
        expect(await isSecret(deployed.fleet.loginPrivateKeys!)).toBe(true);
        expect(Object.keys(await valueOf(deployed.fleet.loginPrivateKeys!))).toEqual(["amd64", "graviton"]);
        expect(await isSecret(deployed.fleet.nodes!)).toBe(false);
    });
});

describe("a fleet with a spot node and an on-demand one", () => {
    let deployed: Awaited<ReturnType<typeof deploy>>;
    beforeAll(async () => {
        deployed = await deploy("spotfleet", {
            allowedSshCidrs: CIDRS,
            nodes: JSON.stringify([{ name: "amd64" }, { name: "graviton", instanceType: "c7g.xlarge", spot: true }]),
        });
    });
    const instance = (node: string) => deployed.named(`spotfleet-${node}-ec2-instance`);

    test("only the spot node's instance is a persistent spot request that stops on an interruption", () => {
        expect(instance("graviton").inputs.instanceMarketOptions).toEqual({
            marketType: "spot", spotOptions: { spotInstanceType: "persistent", instanceInterruptionBehavior: "stop" },
        });
        expect(instance("amd64").inputs.instanceMarketOptions).toBeUndefined();
    });

    test("both stop, never terminate, when powered off from the host", () => {
        expect(["amd64", "graviton"].map(node => instance(node).inputs.instanceInitiatedShutdownBehavior)).toEqual(["stop", "stop"]);
    });

    test("a new instance type replaces the spot node's instance (EC2 cannot change it) and stops and starts the other", () => {
        expect(instance("graviton").replaceOnChanges).toEqual(["instanceType"]);
        expect(instance("amd64").replaceOnChanges).toEqual([]);
    });
});

/** A single-host stack, then the same stack with `nodes`: the first node is that host, as the README tells. */
const GROWTH = {
    ec2: {
        single: { allowedSshCidrs: CIDRS },
        fleet: { allowedSshCidrs: CIDRS, nodes: JSON.stringify([{ name: "amd64" }, { name: "graviton", instanceType: "c7g.xlarge" }]) },
    },
    existing: {
        single: {
            hostMode: "existing", existingHostAddress: "build1.example.com", existingHostPort: "2222", existingHostUser: "builder",
            existingHostPublicKey: HOST_KEY, existingHostPrivateKey: PRIVATE_KEY,
        },
        fleet: {
            hostMode: "existing",
            nodes: JSON.stringify([
                { name: "amd64", address: "build1.example.com", port: 2222, user: "builder", hostPublicKey: HOST_KEY, privateKey: PRIVATE_KEY,
                    architecture: "amd64" },
                { name: "arm64", address: "build2.example.com", user: "builder", hostPublicKey: HOST_KEY, privateKey: PRIVATE_KEY, architecture: "arm64" },
            ]),
        },
    },
} as const satisfies Record<string, { single: RawConfig; fleet: RawConfig }>;

const urnQualifiedType = (urn: string) => urn.split("::")[2];
const urnName = (urn: string) => urn.split("::").slice(3).join("::");
const urnOf = (parentUrn: string, type: string, name: string) =>
    `urn:pulumi:test::buildx-host::${parentUrn ? `${urnQualifiedType(parentUrn)}$` : ""}${type}::${name}`;

/** Each resource's URN as the engine makes it, by its mock URN: every ancestor's type in it (the mocks keep only the parent's). */
function engineUrns(resources: readonly RecordedResource[]): Map<string, string> {
    const urns = new Map<string, string>();
    for (const r of resources) {
        urns.set(r.urn, urnOf(r.parent && urns.get(r.parent)!, r.type, r.name));
    }
    return urns;
}

/**
 * The state entry `up` takes each resource for, by the engine's rule (pkg/resource/deploy/step_generator.go,
 * getOldResource, v3.248.0): its own URN, else the first of its aliases found in the state. Its aliases are its
 * own (alias specs) and the one it inherits from a parent found by an alias: that entry as parent, and the
 * child's name with the parent's name at its start replaced by the entry's (inheritedChildAlias), so grandchildren too.
 */
function stateEntries(resources: readonly RecordedResource[], state: ReadonlySet<string>): Map<string, string> {
    const urns = engineUrns(resources);
    const found = new Map<string, string>();
    const aliasedParents = new Map<string, string>();
    for (const r of resources) {
        const parent = r.parent && urns.get(r.parent)!;
        const specs = r.aliasSpecs.map(({ spec }) => spec as { name?: string; parenturn?: string; noparent?: boolean });
        const own = specs.map(spec => {
            const specParent = spec.parenturn ? urns.get(spec.parenturn)! : parent;
            return urnOf(spec.noparent ? "" : aliasedParents.get(specParent) ?? specParent, r.type, spec.name || r.name);
        });
        const parentWas = aliasedParents.get(parent);
        const inherited = parentWas === undefined ? [] : [urnOf(parentWas, r.type,
            r.name.startsWith(urnName(parent)) ? urnName(parentWas) + r.name.slice(urnName(parent).length) : r.name)];
        const urn = urns.get(r.urn)!;
        const entry = [urn, ...own, ...inherited].find(candidate => state.has(candidate));
        if (entry !== undefined) {
            found.set(urn, entry);
            if (entry !== urn) {
                aliasedParents.set(urn, entry);
            }
        }
    }
    return found;
}

describe.each(Object.keys(GROWTH) as (keyof typeof GROWTH)[])("a single-host stack in %s mode grown into a fleet", mode => {
    const name = `grown-${mode}`;
    let single: Awaited<ReturnType<typeof deploy>>;
    let grown: Awaited<ReturnType<typeof deploy>>;
    beforeAll(async () => {
        // The key an existing host needs; an ec2 host's login key is generated.
        const privateKey = mode === "existing" ? PRIVATE_KEY : undefined;
        single = await deploy(name, GROWTH[mode].single, privateKey);
        grown = await deploy(name, GROWTH[mode].fleet, privateKey);
    });

    /** The single host's resources (the fleet component stays itself): where they are, and where they were before fleets. */
    const singleHost = (place: "under the fleet component" | "at the stack's top, before fleets") => {
        const urns = [...engineUrns(single.resources).values()].filter(urn => !urn.endsWith(`BuildFleet::${name}`));
        return place === "under the fleet component" ? urns : urns.map(urn => urn.replace("::buildx-host:index:BuildFleet$", "::"));
    };

    test.each(["under the fleet component", "at the stack's top, before fleets"] as const)(
        "`up` takes the first node, down to each step's command, for the single host %s; the second node is new", place => {
            const state = singleHost(place);
            const found = stateEntries(grown.resources, new Set(state));
            const firstNode = [...engineUrns(grown.resources).values()].filter(urn => urnName(urn).startsWith(`${name}-amd64`));
            expect(firstNode.map(urn => [urnName(urn), found.has(urn)])).toEqual(firstNode.map(urn => [urnName(urn), true]));
            expect([found.size, [...found.values()].sort()]).toEqual([firstNode.length, [...state].sort()]);
            // A moved resource keeps its name less the node's part.
            expect(found.get(firstNode.find(urn => urn.endsWith("-amd64-qemu-binfmt-run"))!))
                .toBe(state.find(urn => urn.endsWith(`::${name}-qemu-binfmt-run`)));
        });

    // In ec2 mode the mocks name each instance's id after it, so every step's HOST_ID would differ; a real `up` keeps the instance.
    if (mode === "existing") {
        test("its commands differ from the single host's only where the first node serves fewer platforms: QEMU's, and the two steps after it", () => {
            const state = singleHost("under the fleet component");
            const singleByUrn = new Map([...engineUrns(single.resources)].map(([mock, urn]) => [urn, single.resources.find(r => r.urn === mock)!]));
            const found = stateEntries(grown.resources, new Set(state));
            const grownUrns = engineUrns(grown.resources);
            const changed = grown.resources.filter(r => r.type.startsWith("command:") && found.has(grownUrns.get(r.urn)!)).flatMap(r => {
                const before = singleByUrn.get(found.get(grownUrns.get(r.urn)!)!)!;
                const keys = Object.keys({ ...r.inputs, ...before.inputs }).filter(key => JSON.stringify(r.inputs[key]) !== JSON.stringify(before.inputs[key]));
                return keys.length === 0 ? [] : [[r.name, keys]];
            });
            expect(changed).toEqual(["qemu-binfmt", "buildx-builder", "team-access"].map(step => [`${name}-amd64-${step}-run`, ["create"]]));
            expect(grown.named(`${name}-amd64-qemu-binfmt-run`).inputs.create).toContain("QEMU_PLATFORMS='linux/amd64 linux/arm/v7 linux/ppc64le linux/s390x linux/riscv64'");
        });
    }
});
