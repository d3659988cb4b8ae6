/**
 * BuildKit's GC limits and whether they fit the disk its cache lives on. BuildKit (cache/manager.go,
 * calculateKeepBytes) keeps the cache under maxUsedSpace, lower while less than minFreeSpace is free,
 * never below reservedSpace. So maxUsedSpace is the cap only when it fits beside minFreeSpace and
 * what else the disk holds, and a reservedSpace above maxUsedSpace would override the cap.
 */
import { PATTERNS } from "../host-facts";
import { Reader } from "./reader";
import { BuildkitGcLimits, DEFAULTS, Ec2Settings } from "./settings";

const SIZE = new RegExp(PATTERNS.diskSize);
const GIB = 1024 ** 3;

/** What an EC2 host's root volume holds besides the cache: Ubuntu, Docker, the BuildKit image, logs. */
export const ROOT_VOLUME_ROOM_GIB = 10;
/** What a cache volume holds besides the cache: the rest of Docker's data root (the BuildKit image, its container). */
export const CACHE_VOLUME_ROOM_GIB = 1;

/** The disk of an EC2 host's Docker data root, where BuildKit's cache lives: its cache volume, else its root volume. */
export interface DataRootDisk {
    /** The setting that sizes it. */
    readonly key: "rootVolumeSizeGb" | "cacheVolumeSizeGb";
    readonly sizeGb: number;
    /** What it holds besides the cache, and whose that is. */
    readonly roomGib: number;
    readonly roomFor: string;
    readonly description: string;
}

export function dataRootDisk(ec2: Pick<Ec2Settings, "rootVolumeSizeGb" | "cacheVolume">): DataRootDisk {
    return ec2.cacheVolume
        ? { key: "cacheVolumeSizeGb", sizeGb: ec2.cacheVolume.sizeGb, roomGib: CACHE_VOLUME_ROOM_GIB, roomFor: "the rest of Docker", description: "cache volume" }
        : { key: "rootVolumeSizeGb", sizeGb: ec2.rootVolumeSizeGb, roomGib: ROOT_VOLUME_ROOM_GIB, roomFor: "the system", description: "root volume" };
}

/**
 * Bytes BuildKit takes a limit for (cmd/buildkitd/config/gcpolicy.go): a size through go-units'
 * RAMInBytes, 1024-based ("80GB" is 80 GiB); a percentage of the filesystem of `diskBytes`, which
 * BuildKit rounds up to whole GiB and counts in 10^9 bytes.
 */
export function gcLimitBytes(limit: string, diskBytes: number): number {
    const percent = /^(\d+)%$/.exec(limit);
    if (percent) {
        return (Math.floor(diskBytes * Number(percent[1]) / 100 / GIB) + 1) * 1e9;
    }
    const [, number, unit] = /^([0-9.]+)([KMGT]?)i?B$/.exec(limit)!;
    return Number(number) * 1024 ** (unit === "" ? 0 : "KMGT".indexOf(unit) + 1);
}

export function readBuildkitGc(r: Reader): BuildkitGcLimits {
    return {
        reservedSpace: r.matching("buildkitGcReservedSpace", SIZE, "must be a size like 10GB or a percentage like 10%",
            "buildkitGcReservedSpace 10GB", DEFAULTS.buildkitGcReservedSpace)!,
        maxUsedSpace: r.matching("buildkitGcMaxUsedSpace", SIZE, "must be a size like 70GB or a percentage like 60%",
            "buildkitGcMaxUsedSpace 70GB", DEFAULTS.buildkitGcMaxUsedSpace)!,
        minFreeSpace: r.matching("buildkitGcMinFreeSpace", SIZE, "must be a size like 20GB or a percentage like 20%",
            "buildkitGcMinFreeSpace 20GB", DEFAULTS.buildkitGcMinFreeSpace)!,
    };
}

/**
 * Checks the GC limits against the cache's disk: an EC2 host's data root disk (less what it holds
 * besides the cache; a fleet's smallest); undefined for existing hosts, whose disk the buildx-builder
 * step measures on the host, so that only what holds on any disk is checked here.
 */
export function checkGcFitsDisk(r: Reader, gc: BuildkitGcLimits, dataRoot?: DataRootDisk): void {
    const percents = [gc.reservedSpace, gc.maxUsedSpace].filter(limit => limit.endsWith("%")).length;
    if (dataRoot === undefined && percents === 1) {
        return;
    }
    // Two percentages of one disk compare alike on any disk.
    const disk = (dataRoot?.sizeGb ?? 1024) * GIB;
    const [reserved, maxUsed, minFree] = [gc.reservedSpace, gc.maxUsedSpace, gc.minFreeSpace].map(limit => gcLimitBytes(limit, disk));
    if (reserved > maxUsed) {
        r.problem("buildkitGcReservedSpace", `(${gc.reservedSpace}) is above buildkitGcMaxUsedSpace (${gc.maxUsedSpace}): BuildKit never ` +
            "collects the cache below reservedSpace, so it would grow past maxUsedSpace; keep reservedSpace below it",
            `buildkitGcReservedSpace ${Math.max(1, Math.floor(maxUsed / 8 / GIB))}GB`);
    }
    if (dataRoot === undefined) {
        return;
    }
    const room = dataRoot.sizeGb - dataRoot.roomGib;
    if (maxUsed + minFree > room * GIB) {
        const fittingMaxUsed = Math.floor(room - minFree / GIB);
        r.problem("buildkitGcMaxUsedSpace", `(${gc.maxUsedSpace}) and buildkitGcMinFreeSpace (${gc.minFreeSpace}) do not fit together ` +
            `on the ${dataRoot.sizeGb} GiB ${dataRoot.description} (${dataRoot.key}) beside the ${dataRoot.roomGib} GiB ` +
            `${dataRoot.roomFor} needs: ` +
            "BuildKit would collect the cache below maxUsedSpace to keep minFreeSpace free; lower them or grow the volume",
            fittingMaxUsed >= 1 ? `buildkitGcMaxUsedSpace ${fittingMaxUsed}GB`
                : `${dataRoot.key} ${Math.ceil((maxUsed + minFree) / GIB) + dataRoot.roomGib}`);
    }
}
