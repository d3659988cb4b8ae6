/** Settings of EC2 hosts: the instance type and its architecture, and what every EC2 host shares. */
import { CPU_ARCHITECTURES, CpuArchitecture } from "../host-facts";
import { documentationRange, documentationRangeReason, isCidr, isOpenToWorld, PUBLIC_ADDRESS_COMMAND } from "./networks";
import { Reader } from "./reader";
import { CacheVolumeSettings, DEFAULTS, Ec2Settings, UBUNTU_RELEASES, UbuntuRelease } from "./settings";
import { readPrivateKeyPresence } from "./ssh-keys";

const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9-]+$/;

/** The CPU architecture an EC2 instance type implies: Graviton families (a1, m7g, c7gn, …) are arm64. */
export function architectureOfInstanceType(instanceType: string): CpuArchitecture {
    const family = instanceType.split(".")[0];
    return family === "a1" || /^[a-z]+\d+g[a-z]*$/.test(family) ? "arm64" : "amd64";
}

/** The `instanceType` setting; `fallback` when it is unset or invalid. */
function readInstanceType(r: Reader, fallback: string): string {
    return r.matching("instanceType", INSTANCE_TYPE, "must be an EC2 instance type", "instanceType c7i.xlarge", fallback)!;
}

/** What each EC2 host has of its own: a fleet node's `nodes[i].<key>`, which defaults to the stack's `<key>`. */
export type Ec2NodeSettings = Pick<Ec2Settings, "instanceType" | "architecture" | "spot" | "cacheVolume">;

/**
 * The stack's values a fleet's EC2 nodes take when they do not set their own (the architecture follows
 * the type); the cache volume as asked for, size 0 for none.
 */
export type Ec2NodeDefaults = Pick<Ec2Settings, "instanceType" | "spot"> & { readonly cacheVolume: CacheVolumeSettings };

const SPOT_EXAMPLE = "spot true";

/** What an EC2 host has when the stack sets none of its keys. */
export const EC2_NODE_DEFAULTS: Ec2NodeDefaults = {
    instanceType: DEFAULTS.instanceType, spot: DEFAULTS.spot,
    cacheVolume: { sizeGb: DEFAULTS.cacheVolumeSizeGb, retain: DEFAULTS.retainCacheVolume },
};

/** The defaults a fleet's EC2 nodes take from the stack's keys. */
export function readEc2NodeDefaults(r: Reader): Ec2NodeDefaults {
    return {
        instanceType: readInstanceType(r, EC2_NODE_DEFAULTS.instanceType), spot: r.boolean("spot", EC2_NODE_DEFAULTS.spot, SPOT_EXAMPLE),
        cacheVolume: readCacheVolumeRequest(r, EC2_NODE_DEFAULTS.cacheVolume),
    };
}

/** An EC2 host's own settings (the single host's, or a fleet node's), each `defaults`' value when unset. */
export function readEc2Node(r: Reader, defaults: Ec2NodeDefaults): Ec2NodeSettings {
    return {
        ...readInstance(r, defaults.instanceType), spot: r.boolean("spot", defaults.spot, SPOT_EXAMPLE),
        ...cacheVolumeOf(readCacheVolumeRequest(r, defaults.cacheVolume)),
    };
}

/** An EC2 host's instance type and the architecture it implies; `fallback`: the instance type when none is set. */
function readInstance(r: Reader, fallback: string): Pick<Ec2Settings, "instanceType" | "architecture"> {
    const instanceType = readInstanceType(r, fallback);
    const impliedArchitecture = architectureOfInstanceType(instanceType);
    const architecture = r.oneOf<CpuArchitecture>("architecture", CPU_ARCHITECTURES, impliedArchitecture, "architecture arm64");
    if (architecture !== impliedArchitecture) {
        r.problem("architecture", `is "${architecture}" but instance type ${instanceType} is ${impliedArchitecture}; ` +
            "leave it unset to derive it, or pick a matching instance type", `architecture ${impliedArchitecture}`);
    }
    return { instanceType, architecture };
}

/**
 * What `cacheVolumeSizeGb` (0: none; gp3 holds up to 16 TiB) and `retainCacheVolume` ask for,
 * falling back to `defaults`: the stack's values for a fleet's node.
 */
function readCacheVolumeRequest(r: Reader, defaults: CacheVolumeSettings): CacheVolumeSettings {
    return {
        sizeGb: r.integer("cacheVolumeSizeGb", defaults.sizeGb, 0, 16384, "cacheVolumeSizeGb 200"),
        retain: r.boolean("retainCacheVolume", defaults.retain, "retainCacheVolume false"),
    };
}

/** The cache volume a request makes: none at size 0. */
function cacheVolumeOf(request: CacheVolumeSettings): Pick<Ec2Settings, "cacheVolume"> {
    return request.sizeGb > 0 ? { cacheVolume: request } : {};
}

/** The EC2 settings every EC2 host of the stack shares: release, disk, network, login key. */
export function readEc2Shared(r: Reader): Omit<Ec2Settings, keyof Ec2NodeSettings> {
    const allowOpenSsh = r.boolean("allowOpenSsh", DEFAULTS.allowOpenSsh, "allowOpenSsh true");
    const cidrExample = (index: number) => `--path 'allowedSshCidrs[${index}]' "$(${PUBLIC_ADDRESS_COMMAND})/32"`;
    const allowedSshCidrs = r.stringList("allowedSshCidrs", [], cidrExample(0));
    if (allowedSshCidrs.length === 0) {
        r.problem("allowedSshCidrs", "is required in ec2 mode: list the networks allowed to reach SSH", cidrExample(0));
    }
    allowedSshCidrs.forEach((cidr, index) => {
        const key = `allowedSshCidrs[${index}]`;
        const rfc = documentationRange(cidr);
        if (!isCidr(cidr)) {
            r.problem(key, `has "${cidr}", which is not a CIDR block`, cidrExample(index));
        } else if (cidr.includes(":")) {
            r.problem(key, `has "${cidr}", an IPv6 network: the host has only an IPv4 address (its Elastic IP), ` +
                "so no IPv6 client could reach it; list the IPv4 networks your clients come from", cidrExample(index));
        } else if (isOpenToWorld(cidr) && !allowOpenSsh) {
            r.problem(key, `has "${cidr}", which opens SSH to the whole internet; ` +
                "set allowOpenSsh to true to accept that explicitly", "allowOpenSsh true");
        } else if (rfc !== undefined) {
            r.problem(key, `has "${cidr}", ${documentationRangeReason(rfc)}; set your own`, cidrExample(index));
        }
    });

    return {
        ubuntuRelease: r.oneOf<UbuntuRelease>("ubuntuRelease", UBUNTU_RELEASES, DEFAULTS.ubuntuRelease, `ubuntuRelease ${UBUNTU_RELEASES[0]}`),
        ubuntuAmiSerial: r.matching("ubuntuAmiSerial", /^\d{8}(\.\d+)?$/, "must be a Canonical image serial",
            "ubuntuAmiSerial 20251015"),
        rootVolumeSizeGb: r.integer("rootVolumeSizeGb", DEFAULTS.rootVolumeSizeGb, 20, 16384, "rootVolumeSizeGb 200"),
        allowedSshCidrs,
        subnetId: r.matching("subnetId", /^subnet-[0-9a-f]{8,17}$/, "must be a subnet id", "subnetId subnet-0123456789abcdef0"),
        loginKeyProvided: readPrivateKeyPresence(r, "loginPrivateKey", { required: false, opensshOnly: true }),
    };
}
