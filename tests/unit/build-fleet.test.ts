import { installMocks, isSecret, settle, valueOf } from "./mocks";

const recorder = installMocks();

// Imported after the mocks are installed, as a Pulumi program would be run under them.
import { BuildFleet } from "../../components/build-fleet";
import { parseConfig, RawConfig } from "../../components/config";
import { STEP_NAMES } from "../../components/steps";

const CIDRS = JSON.stringify(["203.0.113.0/24"]);
const ALICE = "alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICMuitBm3Na3mokQbnQlnPS+q4yZBeoCIqm3SvbczITp alice@laptop";

async function deploy(name: string, raw: RawConfig) {
    const stack = parseConfig(raw);
    const fleet = new BuildFleet(name, { stack, privateKeys: stack.nodes.map(() => undefined), tags: { Project: "buildx-host" } });
    await Promise.all(fleet.hosts.map(host => valueOf(host.versions)));
    await settle();
    const mine = recorder.resources.filter(r => r.name.startsWith(name));
    return { fleet, resources: mine, named: (n: string) => mine.find(r => r.name === n)! };
}

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
            .toEqual(STEP_NAMES.map(step => `single-${step}-run`));
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
            allowedSshCidrs: CIDRS, team: JSON.stringify([ALICE]),
            nodes: JSON.stringify([{ name: "amd64", instanceType: "c7i.xlarge" }, { name: "graviton", instanceType: "c7g.xlarge" }]),
        });
    });

    test("gives every node its own instance, host key, login key and seven steps", () => {
        const count = (type: string, node: string) => deployed.resources.filter(r => r.type === type && r.name.startsWith(`fleet-${node}-`)).length;
        for (const node of ["amd64", "graviton"]) {
            expect([node, count("aws:ec2/instance:Instance", node), count("tls:index/privateKey:PrivateKey", node),
                count("command:remote:Command", node)]).toEqual([node, 1, 2, 7]);
        }
        expect(deployed.named("fleet-graviton-ec2-instance").inputs.instanceType).toBe("c7g.xlarge");
        expect(deployed.named("fleet-graviton-ec2-instance").inputs.tags).toMatchObject({ Node: "graviton", Project: "buildx-host" });
    });

    test("provisions the nodes in parallel, each node's steps in order", () => {
        const steps = (node: string) => STEP_NAMES.map(step => deployed.named(`fleet-${node}-${step}-run`));
        for (const [node, other] of [["amd64", "graviton"], ["graviton", "amd64"]]) {
            const mine = steps(node);
            mine.slice(1).forEach((step, index) => expect(step.dependencies).toContain(mine[index].urn));
            const otherUrns = new Set(deployed.resources.filter(r => r.name.startsWith(`fleet-${other}-`)).map(r => r.urn));
            for (const resource of deployed.resources.filter(r => r.name.startsWith(`fleet-${node}-`))) {
                expect([resource.name, resource.dependencies.filter(d => otherUrns.has(d))]).toEqual([resource.name, []]);
            }
        }
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
        expect((await valueOf(deployed.fleet.teamGithubActionsWorkflows!)).alice).toContain("            - name: graviton\n");
        expect((await valueOf(deployed.fleet.teamHandOver!)).alice.split("\n").filter(line => line.startsWith("    echo "))).toHaveLength(2);
    });

    test("the generated login keys are one secret output, by node", async () => {
        expect(await isSecret(deployed.fleet.loginPrivateKeys!)).toBe(true);
        expect(Object.keys(await valueOf(deployed.fleet.loginPrivateKeys!))).toEqual(["amd64", "graviton"]);
        expect(await isSecret(deployed.fleet.nodes!)).toBe(false);
    });
});
