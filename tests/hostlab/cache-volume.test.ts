/**
 * Cache volume: BuildKit's cache outlives the machine. The steps of an EC2 host with
 * `cacheVolumeSizeGb` (ec2 mode's configuration, run over SSH on a lab host as on the instance)
 * put Docker's data root on the volume; host A builds and is removed; host B, a new machine, gets
 * the same volume, and the same build is all cache hits.
 *
 * STANDS IN: a file-backed loop device of this machine (run.sh's `cache-volume` suite) is the EBS
 * volume, given to the host container as a device (start-host.sh's HOSTLAB_BLOCK_DEVICE); the TEST
 * makes the link udev makes on a Nitro instance, /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…,
 * since no udev runs in the container. systemd in a container ignores fstab's device entries, so
 * the boot-time mount is not exercised here; the step itself mounts through the same fstab line
 * (`mount /var/lib/docker`), which resolves the UUID as at boot. `pulumi destroy` with
 * retainCacheVolume runs the steps' deletes before the volume is detached: host A gets them.
 */
import { writeFileSync } from "fs";
import * as path from "path";

import { BuildHostConfig } from "../../components/config";
import { knownHostsLine, memberBuildxCreateCommand } from "../../components/endpoint";
import { ebsDeviceLink } from "../../components/host-facts";
import { StepReport } from "../../components/step-reports";
import { HostStepDefinition, hostStepDefinitions, StepName } from "../../components/steps";
import { hostConfig } from "../config-problems";
import { cacheUse, LabClient } from "./client";
import {
    expectStepOk, LabHost, labAptSettings, localOk, logDirectory, memberKey, provisionLabHost, readLabHost, reportOf, requiredEnv, runStep,
    stepNamed, sudoOk, teamEntry,
} from "./lab";

const VOLUME_ID = "vol-0ab5ca1ef00c0ffee";
const DEVICE = requiredEnv("HOSTLAB_BLOCK_DEVICE");
const DATA_ROOT = "/var/lib/docker";
const MEMBER = "alice";
const envFile = requiredEnv("HOSTLAB_ENV_FILE");
const figures: string[] = [];

/** An EC2 host's configuration with a 2 GiB cache volume; the lab host plays the instance. */
function cacheVolumeConfig(lab: LabHost): BuildHostConfig {
    return hostConfig({
        allowedSshCidrs: JSON.stringify(["127.0.0.1/32"]), ...labAptSettings(), team: JSON.stringify([teamEntry(lab, MEMBER)]),
        cacheVolumeSizeGb: "2",
        // The 2 GiB stand-in is too small for the default shares beside minFreeSpace: sizes, as the disk suite sets.
        buildkitGcReservedSpace: "64MB", buildkitGcMaxUsedSpace: "512MB", buildkitGcMinFreeSpace: "256MB",
    });
}

/** The steps `pulumi up` runs on that host. */
function stepsFor(lab: LabHost): HostStepDefinition[] {
    return hostStepDefinitions(cacheVolumeConfig(lab), lab.user);
}

/** What udev does on a Nitro instance when the volume is attached: the by-id link the step looks for. */
function attachStandIn(lab: LabHost): void {
    sudoOk(lab, `mkdir -p /dev/disk/by-id && ln -sfn ${DEVICE} ${ebsDeviceLink(VOLUME_ID)}`);
}

/** Every step in order, the cache-volume step with the volume's id as the component gives it. */
function provision(lab: LabHost, label: string): Map<StepName, StepReport> {
    return provisionLabHost(lab, cacheVolumeConfig(lab), label, () => undefined, { CACHE_VOLUME_ID: VOLUME_ID });
}

/** Where the data root's filesystem comes from, and the fstab entry of the volume. */
function mountState(lab: LabHost): { source: string; fstab: string; dropIn: string } {
    return {
        source: sudoOk(lab, `findmnt -rn -o SOURCE --mountpoint ${DATA_ROOT} | tail -n 1`).trim(),
        fstab: sudoOk(lab, "grep -A1 'buildx-host' /etc/fstab || true").trim(),
        dropIn: sudoOk(lab, "cat /etc/systemd/system/docker.service.d/10-buildx-host-cache-volume.conf 2>/dev/null || true").trim(),
    };
}

function build(lab: LabHost, label: string) {
    const endpoint = { host: lab.host, port: lab.port, user: lab.user, hostPublicKey: lab.hostPublicKey, builderName: "buildx-host" };
    const client = new LabClient(lab, requiredEnv("HOSTLAB_CLIENT_IMAGE"), requiredEnv("HOSTLAB_BUSYBOX_DIR"), knownHostsLine(endpoint));
    const start = Date.now();
    const result = client.build(MEMBER, memberKey(lab, MEMBER), label, [memberBuildxCreateCommand(endpoint, MEMBER)]);
    return { ...result, seconds: (Date.now() - start) / 1000, use: cacheUse(result.output) };
}

function note(line: string): void {
    figures.push(line);
    console.log(line);
}

let hostA: LabHost;
let hostB: LabHost;
/** The image host A was started from: host B is the same kind of machine. */
let hostImage: string;

afterAll(() => writeFileSync(path.join(logDirectory(hostB ?? hostA), "cache-volume.txt"), figures.join("\n") + "\n"));

describe("a cache volume carries BuildKit's cache from one machine to the next", () => {
    test("host A: the step formats the empty volume, moves what the data root held onto it, mounts it by UUID through fstab; the steps after it run on it", () => {
        hostA = readLabHost(envFile);
        attachStandIn(hostA);
        // Something already in the data root, as on a host that ran Docker before the volume came.
        sudoOk(hostA, `mkdir -p ${DATA_ROOT}/before-the-volume && echo kept > ${DATA_ROOT}/before-the-volume/file`);
        const start = Date.now();
        const reports = provision(hostA, "host-a");
        note(`host A provisioned in ${((Date.now() - start) / 1000).toFixed(0)} s`);
        const first = reportOf(reports, "cache-volume")!;
        expect(first).toMatchObject({ action: "mounted", volumeId: VOLUME_ID, device: DEVICE, filesystem: "ext4", formatted: true, changed: true });
        expect(first.movedBytes).toBeGreaterThan(0);
        const state = mountState(hostA);
        expect(state.source).toBe(DEVICE);
        expect(state.fstab).toBe(`# buildx-host: Docker's data root on the cache volume ${VOLUME_ID} (cache-volume.sh)\n` +
            `UUID=${first.uuid} ${DATA_ROOT} ext4 defaults,nofail 0 2`);
        expect(state.dropIn).toContain(`RequiresMountsFor=${DATA_ROOT}`);
        expect(sudoOk(hostA, "systemctl show -p RequiresMountsFor --value docker.service").trim()).toContain(DATA_ROOT);
        // What was there is on the volume now, not hidden under it; Docker and BuildKit's cache live on it.
        expect(sudoOk(hostA, `cat ${DATA_ROOT}/before-the-volume/file`).trim()).toBe("kept");
        // The last line: the volume is mounted over the lab's own mount there.
        expect(sudoOk(hostA, `findmnt -rn -o SOURCE -T "$(docker volume inspect -f '{{.Mountpoint}}' buildx_buildkit_buildx-host0_state)" | tail -n 1`)
            .trim()).toBe(DEVICE);
        // Run again, it changes nothing.
        const again = expectStepOk(runStep(hostA, stepNamed(stepsFor(hostA), "cache-volume"), "host-a-again", {}, { CACHE_VOLUME_ID: VOLUME_ID }));
        expect(again).toMatchObject({ action: "mounted", changed: false, formatted: false, movedBytes: 0, uuid: first.uuid });
    });

    test("a volume whose device never appears fails the step after its bounded wait, naming the volume", () => {
        const run = runStep(hostA, stepNamed(stepsFor(hostA), "cache-volume"), "missing-volume",
            { CACHE_VOLUME_WAIT_SECONDS: "2" }, { CACHE_VOLUME_ID: "vol-0fffffffffffffff0" });
        expect(run.status).not.toBe(0);
        expect(run.stderr).toContain(`no device ${ebsDeviceLink("vol-0fffffffffffffff0")} after 2s: is vol-0fffffffffffffff0 attached`);
        expect(run.seconds).toBeLessThan(20);
    });

    test("host A builds (cold), then is destroyed with the volume retained: the builder's delete keeps its cache; the machine is removed", () => {
        const cold = build(hostA, "host-a-cold");
        note(`host A, first build: ${cold.seconds.toFixed(1)} s, ${cold.use.runSteps} RUN steps, all cached: ${cold.use.allCached}`);
        expect(cold.use.allCached).toBe(false);
        // `pulumi destroy`: each step's delete, last step first.
        const steps = stepsFor(hostA);
        for (const step of [...steps].reverse().filter(s => s.deleteEnvironment)) {
            // As stepDeleteCommand: the delete environment alone.
            const deleted = expectStepOk(runStep(hostA, { ...step, environment: step.deleteEnvironment!, resourceParameters: undefined }, "destroy"));
            if (deleted.step === "cache-volume") {
                expect(deleted).toMatchObject({ action: "released" });
            }
        }
        expect(mountState(hostA)).toMatchObject({ fstab: "", dropIn: "" });
        expect(sudoOk(hostA, "docker volume ls -q").split("\n")).toContain("buildx_buildkit_buildx-host0_state");
        // The instance is stopped (the attachment's stopInstanceBeforeDetaching) and terminated: the container goes.
        hostImage = localOk(`docker inspect -f '{{.Config.Image}}' ${hostA.container}`).trim();
        localOk(`${path.join(__dirname, "infra", "stop-host.sh")} ${hostA.container}`);
        expect(localOk(`docker ps -aq --filter name=^${hostA.container}$`).trim()).toBe("");
    });

    test("host B, a new machine with the same volume: no mkfs, nothing to move, the builder takes up the cache; the same build is all cache hits", () => {
        localOk(`HOST_IMAGE=${hostImage} HOSTLAB_BLOCK_DEVICE=${DEVICE} ${path.join(__dirname, "infra", "start-host.sh")} ${hostA.container} ${hostA.port}`);
        hostB = readLabHost(envFile);
        expect(hostB.hostPublicKey).not.toBe(hostA.hostPublicKey);
        attachStandIn(hostB);
        // Data in the new machine's data root too: the step refuses to hide it, and changes nothing.
        sudoOk(hostB, `mkdir -p ${DATA_ROOT}/other-data`);
        const cacheStep = stepNamed(stepsFor(hostB), "cache-volume");
        expect(expectStepOk(runStep(hostB, stepNamed(stepsFor(hostB), "wait-for-host"), "host-b-wait")).step).toBe("wait-for-host");
        const refused = runStep(hostB, cacheStep, "host-b-both-hold-data", {}, { CACHE_VOLUME_ID: VOLUME_ID });
        expect(refused.status).not.toBe(0);
        expect(refused.stderr).toMatch(new RegExp(`${DATA_ROOT} holds data .* and the cache volume ${VOLUME_ID} holds a data root too .*Nothing was changed`));
        expect(mountState(hostB)).toEqual({ source: expect.not.stringContaining(DEVICE), fstab: "", dropIn: "" });
        sudoOk(hostB, `rmdir ${DATA_ROOT}/other-data`);

        const start = Date.now();
        const reports = provision(hostB, "host-b");
        note(`host B provisioned in ${((Date.now() - start) / 1000).toFixed(0)} s`);
        expect(reportOf(reports, "cache-volume")).toMatchObject({ action: "mounted", formatted: false, movedBytes: 0, device: DEVICE });
        // The destroy removed A's BuildKit container and kept its cache volume: a new container takes the cache up.
        expect(reportOf(reports, "buildx-builder")!.action).toBe("created");
        expect(sudoOk(hostB, `cat ${DATA_ROOT}/before-the-volume/file`).trim()).toBe("kept");
        const warm = build(hostB, "host-b-warm");
        note(`host B, the same build: ${warm.seconds.toFixed(1)} s, ${warm.use.runSteps} RUN steps, all cached: ${warm.use.allCached}`);
        expect(warm.use.allCached).toBe(true);
        expect(warm.arches).toEqual({ linux_amd64: "x86_64", linux_arm64: "aarch64" });
    });
});
