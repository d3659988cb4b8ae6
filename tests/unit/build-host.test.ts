import * as pulumi from "@pulumi/pulumi";
import { readFileSync } from "fs";
import * as yaml from "js-yaml";

import { installMocks, isSecret, SECRET_SIGNATURE_KEY, settle, valueOf } from "./mocks";

const mockOptions = { cacheVolumeAttached: false };
const recorder = installMocks(mockOptions);

// Imported after the mocks are installed, as a Pulumi program would be run under them.
import { BuildHost } from "../../components/build-host";
import { DEFAULTS, RawConfig } from "../../components/config";
import { hostConfig } from "../config-problems";
import { CACHE_VOLUME_DEVICE_NAME, cacheVolumeRemovalMessage, CANONICAL_OWNER_ID, cloudInitUserData } from "../../components/ec2-host";
import { Workflow } from "../../components/endpoint";
import { BUILDKIT_VERSION } from "../../components/host-facts";
import { HOST_KEY_PROBE_PATH } from "../../components/host-key-check";
import { EVERY_HOST_STEPS, hostStepDefinitions, STEP_NAMES, sha256, stepFingerprints, stepRunCommand } from "../../components/steps";

const ALICE = "alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICMuitBm3Na3mokQbnQlnPS+q4yZBeoCIqm3SvbczITp alice@laptop";
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF";
const PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nbG9naW4ta2V5\n-----END OPENSSH PRIVATE KEY-----\n";

async function deploy(name: string, raw: RawConfig, secrets: { loginPrivateKey?: string; existingHostPrivateKey?: string } = {}) {
    const host = new BuildHost(name, {
        config: hostConfig(raw),
        loginPrivateKey: secrets.loginPrivateKey ? pulumi.secret(secrets.loginPrivateKey) : undefined,
        existingHostPrivateKey: secrets.existingHostPrivateKey ? pulumi.secret(secrets.existingHostPrivateKey) : undefined,
        tags: { Project: "buildx-host", Stack: "test" },
    });
    await valueOf(host.versions);
    await settle();
    const mine = recorder.resources.filter(r => r.urn.includes(`::${name}`) || r.name.startsWith(name));
    return { host, resources: mine, ofType: (type: string) => mine.filter(r => r.type === type) };
}

/** Whether a wire value is a Pulumi secret. */
function wireSecret(value: any): boolean {
    return value !== null && typeof value === "object" && SECRET_SIGNATURE_KEY in value;
}

/**
 * The error an output fails with. Every promise the output holds is handled here: an apply that
 * throws rejects them all, and one left unhandled would end the test run (as it fails a program).
 */
async function rejectionOf(output: pulumi.Output<unknown>): Promise<Error> {
    const held = output as unknown as { promise(): Promise<unknown>; isKnown: Promise<boolean>; isSecret: Promise<boolean>;
        allResources?: () => Promise<unknown> };
    for (const promise of [held.isKnown, held.isSecret, held.allResources?.()]) {
        promise?.catch(() => undefined);
    }
    return held.promise().then(() => { throw new Error("the output did not fail"); }, (error: Error) => error);
}

/** The host's step commands in the order they run: every step it has, optional ones included. */
function commandsInOrder(resources: { type: string; name: string }[], name: string) {
    return STEP_NAMES.flatMap(step => resources.filter(r => r.type === "command:remote:Command" && r.name === `${name}-${step}-run`));
}

describe("ec2 mode", () => {
    const config: RawConfig = {
        allowedSshCidrs: JSON.stringify(["10.20.0.0/16", "172.16.0.0/12"]),
        rootVolumeSizeGb: "200",
        cacheVolumeSizeGb: "100",
        team: JSON.stringify([ALICE]),
    };
    let deployed: Awaited<ReturnType<typeof deploy>>;
    beforeAll(async () => { deployed = await deploy("ec2", config); });

    test("creates the host with its cache volume and runs the eight steps on it", () => {
        const counts = (type: string) => deployed.ofType(type).length;
        expect(counts("aws:ec2/instance:Instance")).toBe(1);
        expect(counts("aws:ec2/securityGroup:SecurityGroup")).toBe(1);
        expect(counts("aws:ec2/keyPair:KeyPair")).toBe(1);
        expect(counts("aws:ec2/eip:Eip")).toBe(1);
        expect(counts("aws:ebs/volume:Volume")).toBe(1);
        expect(counts("aws:ec2/volumeAttachment:VolumeAttachment")).toBe(1);
        expect(counts("tls:index/privateKey:PrivateKey")).toBe(2);
        expect(counts("command:remote:Command")).toBe(8);
        expect(counts("buildx-host:host:HostStep")).toBe(8);
        expect(counts("buildx-host:aws:Ec2Host")).toBe(1);
    });

    test("requires IMDSv2 with a hop limit that keeps containers away from the credentials", () => {
        const instance = deployed.ofType("aws:ec2/instance:Instance")[0].inputs;
        expect(instance.metadataOptions).toEqual({ httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 });
    });

    test("root volume is encrypted gp3 of the configured size", () => {
        const root = deployed.ofType("aws:ec2/instance:Instance")[0].inputs.rootBlockDevice;
        expect(root).toMatchObject({ volumeType: "gp3", volumeSize: 200, encrypted: true, deleteOnTermination: true });
    });

    test("the cache volume: encrypted gp3 in the zone of the instance's subnet, kept on delete, attached to the instance", async () => {
        const [volume] = deployed.ofType("aws:ebs/volume:Volume");
        // No subnetId: the default VPC's subnet in the first zone (by name) that offers the instance type, for both.
        const offerings = recorder.invokes.find(i => i.token === "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings")!;
        expect(offerings.inputs).toEqual({ locationType: "availability-zone", filters: [{ name: "instance-type", values: ["c7i.xlarge"] }] });
        expect(volume.inputs).toEqual({ availabilityZone: "eu-west-1a", size: 100, type: "gp3", encrypted: true,
            tags: { Project: "buildx-host", Stack: "test", Name: "ec2-ec2-cache" } });
        expect(volume.retainOnDelete).toBe(true);
        expect(deployed.ofType("aws:ec2/instance:Instance")[0].inputs.subnetId).toBe("subnet-default-eu-west-1a");
        const [attachment] = deployed.ofType("aws:ec2/volumeAttachment:VolumeAttachment");
        expect(attachment.inputs).toEqual({ instanceId: "ec2-ec2-instance-id", volumeId: "ec2-ec2-cache-id", deviceName: "/dev/sdf",
            stopInstanceBeforeDetaching: true });
        expect(attachment.deleteBeforeReplace).toBe(true);
        expect(await valueOf(deployed.host.cacheVolumeId!)).toBe("ec2-ec2-cache-id");
    });

    test("the cache-volume step runs before docker-engine with the attached volume's id, after the attachment; the builder keeps the cache on delete", () => {
        const commands = commandsInOrder(deployed.resources, "ec2") as any[];
        const cacheStep = commands[STEP_NAMES.indexOf("cache-volume")];
        expect(STEP_NAMES.indexOf("cache-volume")).toBe(STEP_NAMES.indexOf("docker-engine") - 1);
        expect(cacheStep.inputs.create).toContain(" CACHE_VOLUME_ACTION='create' CACHE_VOLUME_ID='ec2-ec2-cache-id' bash -s");
        expect(cacheStep.dependencies).toContain(deployed.ofType("aws:ec2/volumeAttachment:VolumeAttachment")[0].urn);
        const builder = commands[STEP_NAMES.indexOf("buildx-builder")];
        expect([builder.inputs.create, builder.inputs.delete]).toEqual([expect.stringContaining("BUILDER_KEEP_CACHE='true'"),
            expect.stringContaining("BUILDER_KEEP_CACHE='true'")]);
    });

    test("SSH is open only to the allowed networks, nothing else comes in", () => {
        const group = deployed.ofType("aws:ec2/securityGroup:SecurityGroup")[0].inputs;
        expect(group.ingress).toHaveLength(1);
        expect(group.ingress[0].ipv6CidrBlocks).toBeUndefined();
        expect(group.ingress[0]).toMatchObject({
            protocol: "tcp", fromPort: 22, toPort: 22, cidrBlocks: ["10.20.0.0/16", "172.16.0.0/12"],
        });
        expect(group.vpcId).toBe("vpc-default");
    });

    test("an Elastic IP gives the endpoint an address that survives a stop/start", () => {
        const eip = deployed.ofType("aws:ec2/eip:Eip")[0];
        expect(eip.inputs).toMatchObject({ domain: "vpc", instance: "ec2-ec2-instance-id" });
    });

    test("the AMI is Canonical's Ubuntu 24.04 for the instance's architecture", () => {
        const lookup = recorder.invokes.find(i => i.token === "aws:ec2/getAmi:getAmi")!;
        expect(lookup.inputs.owners).toEqual([CANONICAL_OWNER_ID]);
        expect(lookup.inputs.filters).toEqual(expect.arrayContaining([
            { name: "name", values: ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"] },
            { name: "architecture", values: ["x86_64"] },
        ]));
        expect(deployed.ofType("aws:ec2/instance:Instance")[0].inputs.ami).toBe("ami-0123456789abcdef0");
    });

    test("the host key is generated by Pulumi and installed through cloud-init, as a secret", () => {
        const instance = deployed.ofType("aws:ec2/instance:Instance")[0];
        expect(instance.inputs.userData.split("\n")[0]).toBe("#cloud-config");
        expect(yaml.load(instance.inputs.userData)).toEqual({
            ssh_deletekeys: true,
            ssh_keys: {
                ed25519_private: "-----BEGIN OPENSSH PRIVATE KEY-----\nec2-ec2-host-key\n-----END OPENSSH PRIVATE KEY-----\n",
                ed25519_public: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI16fakeec2-ec2-host-key",
            },
            ssh_pwauth: false,
        });
        expect(wireSecret(instance.wireInputs.userData)).toBe(true);
        expect(instance.inputs.userDataReplaceOnChange).toBe(true);
        const keys = deployed.ofType("tls:index/privateKey:PrivateKey").map(k => [k.name, k.inputs.algorithm]);
        expect(keys).toEqual(expect.arrayContaining([["ec2-ec2-host-key", "ED25519"], ["ec2-ec2-login-key", "ED25519"]]));
    });

    test("the user data keeps the bytes existing hosts were made with: a change would replace every EC2 instance", () => {
        // The text the hand-joined renderer gave for these keys (the private key a `|` block scalar), by hash.
        expect(sha256(cloudInitUserData(PRIVATE_KEY, `${HOST_KEY} host\n`))).toBe("66b7c289b77db21016ab63cfa2aa7072afaa77d66934ce5e2f2e59c1a7258689");
        expect(deployed.ofType("aws:ec2/instance:Instance")[0].inputs.userDataReplaceOnChange).toBe(true);
    });

    test("every SSH connection checks the pinned host key and carries the private key as a secret", () => {
        for (const command of deployed.ofType("command:remote:Command")) {
            expect([command.name, command.inputs.connection.hostKey]).toEqual(
                [command.name, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI16fakeec2-ec2-host-key"]);
            expect(command.inputs.connection).toMatchObject({ host: "ec2-198-51-100-7.eu-west-1.compute.amazonaws.com", port: 22, user: "ubuntu" });
            expect(wireSecret(command.wireInputs.connection) || wireSecret(command.wireInputs.connection.privateKey)).toBe(true);
        }
    });

    test("the login private key is a secret output", async () => {
        expect(await isSecret(deployed.host.loginPrivateKey!)).toBe(true);
        expect(await valueOf(deployed.host.loginPrivateKey!)).toContain("ec2-ec2-login-key");
    });

    test("before the first step, the host key probe runs on the Pulumi machine: it waits for a booting host, then checks the pinned key", () => {
        const [probe] = deployed.ofType("command:local:Command");
        expect(probe.name).toBe("ec2-host-key-probe");
        expect(probe.inputs).toMatchObject({
            create: "node -",
            stdin: readFileSync(HOST_KEY_PROBE_PATH, "utf8"),
            addPreviousOutputInEnv: false,
            environment: {
                PROBE_HOST: "ec2-198-51-100-7.eu-west-1.compute.amazonaws.com",
                PROBE_PORT: "22",
                PROBE_PINNED_KEY: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI16fakeec2-ec2-host-key",
                PROBE_PINNED_KEY_SETTING: "the host key Pulumi generated for this instance",
                PROBE_HOST_MODE: "ec2",
                PROBE_TIMEOUT_SECONDS: "900",
            },
        });
        const [wait, ...rest] = commandsInOrder(deployed.resources, "ec2") as any[];
        expect(wait.dependencies).toEqual(expect.arrayContaining([probe.urn]));
        // Once the probe saw the pinned key, SSH answers: every step, the first too, fails after the provider's 10 dials.
        for (const command of [wait, ...rest]) {
            expect(command.inputs.connection.dialErrorLimit).toBe(10);
        }
    });

    test("the probe runs again exactly when the first step will: its fingerprint or the machine changed", async () => {
        const [probe] = deployed.ofType("command:local:Command");
        const definitions = hostStepDefinitions(hostConfig(config), "ubuntu");
        const expected = sha256(JSON.stringify({ fingerprint: stepFingerprints(definitions)[0], hostId: "ec2-ec2-instance-id" }));
        expect(probe.inputs.environment.PROBE_RUN_WITH).toBe(expected);
        // A longer wait changes the first step's parameters, so both run again, the probe with the new bound.
        const slower = { ...config, hostReadyTimeoutMinutes: "20" };
        const otherProbe = (await deploy("ec2slow", slower)).ofType("command:local:Command")[0].inputs.environment;
        const slowerFirstStep = stepFingerprints(hostStepDefinitions(hostConfig(slower), "ubuntu"))[0];
        expect(slowerFirstStep).not.toEqual(stepFingerprints(definitions)[0]);
        expect(otherProbe.PROBE_RUN_WITH).toBe(sha256(JSON.stringify({ fingerprint: slowerFirstStep, hostId: "ec2slow-ec2-instance-id" })));
        expect(otherProbe.PROBE_TIMEOUT_SECONDS).toBe("1200");
        // A change that re-runs only later steps leaves the first step, and so the probe, alone.
        const gcOnly = await deploy("ec2gc", { ...config, buildkitGcMaxUsedSpace: "60GB" });
        const [gcProbe] = gcOnly.ofType("command:local:Command");
        const [gcWait] = commandsInOrder(gcOnly.resources, "ec2gc") as any[];
        expect(gcWait.inputs.create).toBe((commandsInOrder(deployed.resources, "ec2")[0] as any).inputs.create
            .replace("ec2-ec2-instance-id", "ec2gc-ec2-instance-id"));
        expect(gcProbe.inputs.environment.PROBE_RUN_WITH)
            .toBe(sha256(JSON.stringify({ fingerprint: stepFingerprints(definitions)[0], hostId: "ec2gc-ec2-instance-id" })));
    });

    test("steps run in order: each command depends on the step before it", () => {
        const commands = commandsInOrder(deployed.resources, "ec2") as any[];
        const stepUrns = EVERY_HOST_STEPS.map(step => deployed.resources.find(r => r.name === `ec2-${step}` && r.type === "buildx-host:host:HostStep")!.urn);
        commands.forEach((command, i) => {
            if (i === 0) {
                expect(command.dependencies.filter((urn: string) => urn.includes("command:remote:Command"))).toEqual([]);
                expect(command.dependencies).toEqual(expect.arrayContaining([deployed.ofType("command:local:Command")[0].urn]));
            } else {
                expect(command.dependencies).toEqual(expect.arrayContaining([commands[i - 1].urn]));
            }
            expect(command.dependencies).not.toContain(stepUrns[i]);
        });
    });

    test("each command runs its script from stdin as root; only what owns something deletes it, first", () => {
        const commands = commandsInOrder(deployed.resources, "ec2") as any[];
        const definitions = hostStepDefinitions(hostConfig(config), "ubuntu");
        const fingerprints = stepFingerprints(definitions);
        for (const [i, command] of commands.entries()) {
            expect(command.inputs.create).toBe(stepRunCommand(definitions[i], fingerprints[i], "ec2-ec2-instance-id", { CACHE_VOLUME_ID: "ec2-ec2-cache-id" }));
            expect(command.inputs.update).toBeUndefined();
            const step = definitions[i].name;
            expect(command.inputs.stdin).toContain(`\n#!/usr/bin/env bash\n# ${step}.sh`);
            const owns = ["metadata-guard", "cache-volume", "buildx-builder", "team-access"].includes(step);
            expect([step, command.inputs.delete !== undefined, command.deleteBeforeReplace]).toEqual([step, owns, owns]);
        }
        expect(commands[1].inputs.delete).toBe(`sudo -n env SCRIPT_SHA256='${fingerprints[1].scriptSha256}' GUARD_ACTION='delete' bash -s`);
        expect(commands[2].inputs.delete).toBe(`sudo -n env SCRIPT_SHA256='${fingerprints[2].scriptSha256}' CACHE_VOLUME_ACTION='delete' bash -s`);
        expect(commands[6].inputs.delete).toContain("BUILDER_ACTION='delete'");
        expect(commands[7].inputs.delete)
            .toBe(`sudo -n env SCRIPT_SHA256='${fingerprints[7].scriptSha256}' TEAM_MEMBERS='' BUILDER_NAME='buildx-host' bash -s`);
    });

    test("triggers (which replace) carry only the builder's identity; every other change re-runs in place", () => {
        const commands = commandsInOrder(deployed.resources, "ec2") as any[];
        expect(commands.map(c => c.inputs.triggers)).toEqual([undefined, undefined, undefined, undefined, undefined, undefined, ["buildx-host", "ubuntu"], undefined]);
        expect(commands[6].replaceOnChanges).toEqual(["triggers[*]"]);
    });

    test("outputs are ready to paste", async () => {
        const host = deployed.host;
        const dns = "ec2-198-51-100-7.eu-west-1.compute.amazonaws.com";
        expect(await valueOf(host.sshEndpoint)).toBe(`ssh://ubuntu@${dns}`);
        expect(await valueOf(host.knownHostsLine)).toBe(`${dns} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI16fakeec2-ec2-host-key`);
        expect(await valueOf(host.dockerContextCommand)).toBe(`docker context create buildx-host --docker host=ssh://ubuntu@${dns}`);
        expect(await valueOf(host.buildxCreateCommand)).toBe("docker buildx create --name buildx-host-remote --driver remote 'docker-container://buildx_buildkit_buildx-host0?context=buildx-host' --use");
        expect(await valueOf(host.teamBuildxCreateCommands)).toEqual({
            alice: `docker buildx create --name buildx-host-remote --driver remote ssh://alice@${dns} --use`,
        });
        const workflows = await valueOf(host.teamGithubActionsWorkflows);
        expect(Object.keys(workflows)).toEqual(["alice"]);
        const job = (yaml.load(workflows.alice) as Workflow).jobs.build;
        expect(job["runs-on"]).toBe("self-hosted");
        expect(job.steps[2].with).toEqual({ driver: "remote", endpoint: `ssh://alice@${dns}` });
        // The stack's platforms, not every platform the builder offers.
        expect(job.steps[4].with!.platforms).toBe(DEFAULTS.platforms.join(","));
        const handOver = await valueOf(host.teamHandOver);
        expect(Object.keys(handOver)).toEqual(["alice"]);
        expect(handOver.alice).toContain(`\n    echo '${await valueOf(host.knownHostsLine)}' >> ~/.ssh/known_hosts\n`);
        expect(handOver.alice).toContain(`\n    docker buildx create --name buildx-host-remote --driver remote ssh://alice@${dns} --use\n`);
        expect(handOver.alice).toContain(workflows.alice.split("\n").map(line => line && `    ${line}`).join("\n"));
        // Made from public parts only: no secret flowed into it.
        expect([await isSecret(host.teamHandOver), await isSecret(host.teamGithubActionsWorkflows)]).toEqual([false, false]);
        expect(handOver.alice).not.toMatch(/PRIVATE KEY/);
        expect(await valueOf(host.buildkitImageDigest)).toBe("moby/buildkit@sha256:" + "0".repeat(64));
        expect(await valueOf(host.publicIp!)).toBe("198.51.100.7");
        expect(await valueOf(host.address)).toBe(dns);
        expect(await valueOf(host.instanceId!)).toBe("ec2-ec2-instance-id");
        expect(await valueOf(host.platforms)).toEqual(["linux/amd64", "linux/arm64"]);
        expect(await valueOf(host.versions)).toEqual({ docker: "28.5.2", buildx: "v0.29.1", buildkit: BUILDKIT_VERSION, qemu: "8.2.2", kernel: "6.8.0-1021-aws" });
        expect(await valueOf(host.preflight)).toMatchObject({ checks: { kernelOk: true, binfmtMounted: true }, emulationProofs: { "linux/arm64": { ok: true } } });
    });
});

describe("ec2 mode variants", () => {
    test("SSH open to the whole internet (allowOpenSsh) lets the workflow run on GitHub's own runners", async () => {
        const { host } = await deploy("open", { allowedSshCidrs: "[\"0.0.0.0/0\"]", allowOpenSsh: "true", team: JSON.stringify([ALICE]) });
        expect((yaml.load((await valueOf(host.teamGithubActionsWorkflows)).alice) as Workflow).jobs.build["runs-on"]).toBe("ubuntu-latest");
    });

    test("without cacheVolumeSizeGb: no volume, no cache-volume step, no zone lookup; the builder's delete removes its cache", async () => {
        const before = recorder.invokes.length;
        const { ofType } = await deploy("nocache", { allowedSshCidrs: "[\"10.20.0.0/16\"]" });
        expect([ofType("aws:ebs/volume:Volume"), ofType("aws:ec2/volumeAttachment:VolumeAttachment")]).toEqual([[], []]);
        expect(ofType("command:remote:Command").map(c => c.name)).not.toContain("nocache-cache-volume-run");
        expect(ofType("command:remote:Command")).toHaveLength(7);
        expect(recorder.invokes.slice(before).map(i => i.token)).not.toContain("aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings");
        expect(ofType("aws:ec2/instance:Instance")[0].inputs.subnetId).toBeUndefined();
        expect(ofType("command:remote:Command").find(c => c.name === "nocache-buildx-builder-run")!.inputs.delete).toContain("BUILDER_KEEP_CACHE='false'");
    });

    test("cacheVolumeSizeGb back to 0 while the instance has its volume: refused before any step or detach, with the --replace to run", async () => {
        // The Ec2Host alone: its stoppedMessage is what the host key check, the first thing to touch the host, waits on.
        const { Ec2Host } = await import("../../components/ec2-host");
        const ec2Host = (name: string, raw: RawConfig) => {
            const config = hostConfig(raw);
            return new Ec2Host(name, { settings: config.mode === "ec2" ? config.ec2 : fail("ec2 mode"), tags: {} });
        };
        const CIDRS = { allowedSshCidrs: "[\"10.20.0.0/16\"]" };
        mockOptions.cacheVolumeAttached = true;
        try {
            const before = recorder.invokes.length;
            expect(await valueOf(ec2Host("kept", { ...CIDRS, cacheVolumeSizeGb: "50" }).stoppedMessage)).toBe("");
            // With a cache volume configured, nothing is looked up for a volume left over.
            expect(recorder.invokes.slice(before).filter(i => i.token === "aws:ec2/getInstances:getInstances")).toHaveLength(1);
            const removed = ec2Host("uncache", CIDRS);
            const refusal = await rejectionOf(removed.stoppedMessage);
            expect(refusal).toBeInstanceOf(pulumi.ResourceError);
            const urn = /--replace '(urn:pulumi:[^']+::uncache-instance)'/.exec(refusal.message)?.[1];
            expect(refusal.message).toBe(cacheVolumeRemovalMessage("uncache-instance-id", urn!));
            const lookup = recorder.invokes.filter(i => i.token === "aws:ec2/getInstances:getInstances").pop()!;
            expect(lookup.inputs.filters).toEqual([{ name: "instance-id", values: ["uncache-instance-id"] },
                { name: "block-device-mapping.device-name", values: [CACHE_VOLUME_DEVICE_NAME] }]);
        } finally {
            mockOptions.cacheVolumeAttached = false;
        }
        expect(cacheVolumeRemovalMessage("i-0abc", "urn:x")).toMatch(/^cacheVolumeSizeGb is 0, .* Nothing was changed\. .*\n    pulumi up --replace 'urn:x'\n/s);
    });

    test("a given login key is used instead of a generated one", async () => {
        const { ofType } = await deploy("ownkey", { allowedSshCidrs: "[\"10.20.0.0/16\"]" }, { loginPrivateKey: PRIVATE_KEY });
        expect(ofType("tls:index/privateKey:PrivateKey").map(k => k.name)).toEqual(["ownkey-ec2-host-key"]);
        expect(ofType("aws:ec2/keyPair:KeyPair")[0].inputs.publicKey).toBe("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIgivenkey");
        const commands = ofType("command:remote:Command");
        expect(commands.every(c => c.inputs.connection.privateKey === PRIVATE_KEY)).toBe(true);
    });

    test("Graviton and 22.04 pick the arm64 jammy image; a subnet puts the group in its VPC and the cache volume in its zone", async () => {
        const before = recorder.invokes.length;
        const { ofType } = await deploy("graviton", {
            allowedSshCidrs: "[\"10.20.0.0/16\"]", instanceType: "c7g.large", ubuntuRelease: "22.04",
            subnetId: "subnet-0123456789abcdef0", ubuntuAmiSerial: "20251015", cacheVolumeSizeGb: "20", retainCacheVolume: "false",
        });
        const lookup = recorder.invokes.slice(before).find(i => i.token === "aws:ec2/getAmi:getAmi")!;
        expect(lookup.inputs.filters).toEqual(expect.arrayContaining([
            { name: "name", values: ["ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-arm64-server-20251015"] },
            { name: "architecture", values: ["arm64"] },
        ]));
        expect(ofType("aws:ec2/securityGroup:SecurityGroup")[0].inputs.vpcId).toBe("vpc-of-subnet");
        expect(ofType("aws:ec2/instance:Instance")[0].inputs.subnetId).toBe("subnet-0123456789abcdef0");
        // The cache volume in that subnet's zone, deleted with the stack.
        const [volume] = ofType("aws:ebs/volume:Volume");
        expect([volume.inputs.availabilityZone, volume.inputs.size, volume.retainOnDelete]).toEqual(["eu-west-1b", 20, false]);
        expect(recorder.invokes.slice(before).map(i => i.token)).not.toContain("aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings");
    });
});

describe("existing-host mode", () => {
    const config: RawConfig = {
        hostMode: "existing",
        existingHostAddress: "127.0.0.1",
        existingHostPort: "2222",
        existingHostUser: "builder",
        existingHostPrivateKey: PRIVATE_KEY,
        existingHostPublicKey: HOST_KEY,
        builderName: "lab",
    };
    let deployed: Awaited<ReturnType<typeof deploy>>;
    beforeAll(async () => {
        recorder.invokes.length = 0;
        deployed = await deploy("onprem", config, { existingHostPrivateKey: PRIVATE_KEY });
    });

    test("creates no AWS or TLS resource and calls no AWS API", () => {
        expect(deployed.resources.filter(r => /^(aws|tls):/.test(r.type))).toEqual([]);
        expect(recorder.invokes.filter(i => /^(aws|tls):/.test(i.token))).toEqual([]);
        expect(deployed.ofType("command:remote:Command")).toHaveLength(7);
    });

    test("connects as the given user, pinning the given host key", () => {
        for (const command of deployed.ofType("command:remote:Command")) {
            expect(command.inputs.connection).toMatchObject({ host: "127.0.0.1", port: 2222, user: "builder", hostKey: HOST_KEY, privateKey: PRIVATE_KEY });
            expect(wireSecret(command.wireInputs.connection) || wireSecret(command.wireInputs.connection.privateKey)).toBe(true);
        }
        const docker = deployed.ofType("command:remote:Command").find(c => c.name === "onprem-docker-engine-run")!;
        expect(docker.inputs.create).toContain("DOCKER_GROUP_USERS='builder'");
        const probe = deployed.ofType("command:local:Command")[0].inputs.environment;
        expect(probe).toMatchObject({ PROBE_HOST: "127.0.0.1", PROBE_PORT: "2222", PROBE_PINNED_KEY: HOST_KEY, PROBE_PINNED_KEY_SETTING: "existingHostPublicKey" });
        // Pointing the stack at another server re-runs every step there.
        expect(docker.inputs.create).toContain("HOST_ID='127.0.0.1:2222'");
    });

    test("outputs carry the port where it is not 22, and no login key", async () => {
        expect(deployed.host.loginPrivateKey).toBeUndefined();
        expect(deployed.host.instanceId).toBeUndefined();
        expect([deployed.host.publicIp, deployed.host.publicDns]).toEqual([undefined, undefined]);
        expect(await valueOf(deployed.host.address)).toBe("127.0.0.1");
        expect(await valueOf(deployed.host.sshEndpoint)).toBe("ssh://builder@127.0.0.1:2222");
        expect(await valueOf(deployed.host.knownHostsLine)).toBe(`[127.0.0.1]:2222 ${HOST_KEY}`);
        expect(await valueOf(deployed.host.dockerContextCommand)).toBe("docker context create lab --docker host=ssh://builder@127.0.0.1:2222");
    });

    test("refuses to run without the private key", () => {
        expect(() => new BuildHost("nokey", { config: hostConfig(config) })).toThrow(pulumi.ResourceError);
        expect(() => new BuildHost("nokey2", { config: hostConfig(config) })).toThrow(/existingHostPrivateKey is required/);
    });
});
