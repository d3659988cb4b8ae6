/**
 * The stack's settings: their types once validated, their defaults (Pulumi.yaml declares the same)
 * and which belong to which mode. Pure data.
 */
import { CpuArchitecture, DEFAULT_PLATFORMS, STEP_DEFAULTS, SUPPORTED_RELEASES } from "../host-facts";

/** The raw `buildx-host:*` values as `pulumi config` stores them (arrays arrive as JSON text). */
export type RawConfig = Readonly<Record<string, string | undefined>>;

export type HostMode = BuildHostConfig["mode"];

/** The Ubuntu releases an EC2 host may run (host-facts.ts). */
export type UbuntuRelease = Extract<typeof SUPPORTED_RELEASES[number], { os: "ubuntu" }>["version"];

export const UBUNTU_RELEASES = SUPPORTED_RELEASES.filter(r => r.os === "ubuntu").map(r => r.version) as UbuntuRelease[];

/** One key of a team member, and where it may be used from. */
export interface MemberKey {
    /** The OpenSSH public key line, "ssh-ed25519 AAAA… comment". */
    readonly sshPublicKey: string;
    /** Source addresses or networks the key is accepted from (sshd's `from=`); empty: anywhere `allowedSshCidrs` lets in. */
    readonly from: readonly string[];
}

/** A person (or CI job) who reaches the shared BuildKit through the member door, with their own account and keys. */
export interface TeamMember {
    readonly name: string;
    /** One per `team` entry of this member (a laptop, a CI job, …), in the order listed. */
    readonly keys: readonly MemberKey[];
}

/** The insecure entitlements BuildKit may grant a build that asks for them. */
export const INSECURE_ENTITLEMENTS = ["network.host", "security.insecure"] as const;

export type InsecureEntitlement = typeof INSECURE_ENTITLEMENTS[number];

/** BuildKit garbage-collection limits, written to buildkitd.toml (`reservedSpace`, `maxUsedSpace`, `minFreeSpace`). */
export interface BuildkitGcLimits {
    readonly reservedSpace: string;
    readonly maxUsedSpace: string;
    readonly minFreeSpace: string;
}

/** An EBS volume that holds Docker's data root, BuildKit's cache with it (`cacheVolumeSizeGb`, `retainCacheVolume`). */
export interface CacheVolumeSettings {
    readonly sizeGb: number;
    /** Whether `pulumi destroy` (or removing the node) keeps the volume, and the builder's cache on it. */
    readonly retain: boolean;
}

/** Settings of mode "ec2": the instance Pulumi creates. */
export interface Ec2Settings {
    readonly instanceType: string;
    readonly architecture: CpuArchitecture;
    readonly ubuntuRelease: UbuntuRelease;
    /** Canonical's image serial (e.g. "20251015") to pin the AMI; undefined means the newest at creation. */
    readonly ubuntuAmiSerial?: string;
    readonly rootVolumeSizeGb: number;
    /** Undefined: no cache volume; Docker's data root stays on the root volume. */
    readonly cacheVolume?: CacheVolumeSettings;
    readonly allowedSshCidrs: readonly string[];
    readonly subnetId?: string;
    /** True when `loginPrivateKey` is set, so no key is generated. */
    readonly loginKeyProvided: boolean;
    /** A spot instance: a persistent request that stops the instance on an interruption (README "Spot"). */
    readonly spot: boolean;
}

/** Settings of mode "existing": a server reached over SSH. The private key is read as a secret elsewhere. */
export interface ExistingHostSettings {
    readonly address: string;
    readonly port: number;
    readonly user: string;
    /** The host's SSH public key ("ssh-ed25519 AAAA…"), pinned on every connection. */
    readonly hostPublicKey: string;
}

/** What both modes share. */
export interface CommonSettings {
    readonly team: readonly TeamMember[];
    readonly dockerAptRepo: string;
    /** The fingerprint Docker's apt key (or a mirror's) must have: 40 hex digits, upper case. */
    readonly dockerAptKeyFingerprint: string;
    readonly dockerCeVersion?: string;
    /** The platforms whose emulation the QEMU step checks and proves; a fleet node's are the ones it serves. */
    readonly platforms: readonly string[];
    readonly builderName: string;
    readonly buildkitImage: string;
    /** Insecure entitlements BuildKit grants builds that ask for them; none by default. */
    readonly allowInsecureEntitlements: readonly InsecureEntitlement[];
    readonly buildkitGc: BuildkitGcLimits;
    readonly hostReadyTimeoutMinutes: number;
    /** Minutes with no running build and no open SSH session before the host powers off; 0: never. Per node in a fleet. */
    readonly idleStopMinutes: number;
}

/** The validated configuration, defaults filled: one mode and that mode's settings. */
export type BuildHostConfig = CommonSettings & (
    | { readonly mode: "ec2"; readonly ec2: Ec2Settings }
    | { readonly mode: "existing"; readonly existingHost: ExistingHostSettings });

/** A setting holding an SSH private key: a stack key, or the `privateKey` of `nodes[node]`. */
export type PrivateKeySetting = typeof SECRET_KEYS[number] | { readonly node: number };

/** One build host of the stack, and what its steps are made from. */
export interface BuildNode {
    /** Its name in `nodes` (buildx's node name); undefined for the single host of a stack without `nodes`. */
    readonly name?: string;
    readonly host: BuildHostConfig;
    /** The setting that gives its SSH private key; undefined when none is set (ec2 mode generates one). */
    readonly privateKey?: PrivateKeySetting;
}

/** The validated stack: one host, or a fleet of `nodes` joined into one buildx builder. */
export interface StackConfig {
    /** Whether the stack lists `nodes`; without them `nodes` holds the one host the single-host settings describe. */
    readonly fleet: boolean;
    readonly nodes: readonly BuildNode[];
    /** What a client's attach does with a node that does not answer (`fleetFallback`). */
    readonly fleetFallback: FleetFallback;
}

/**
 * A fleet client's attach, for a node that does not answer: `fail` keeps it in the builder and
 * stops, naming it; `emulate` gives its platforms to the first node that answers, with a warning.
 */
export const FLEET_FALLBACKS = ["fail", "emulate"] as const;
export type FleetFallback = typeof FLEET_FALLBACKS[number];

/**
 * Config keys whose values are secrets: they must be stored encrypted (`--secret`); parseConfig
 * checks their shape and never echoes them; index.ts wraps them with `pulumi.secret` as it reads them.
 */
export const SECRET_KEYS = ["loginPrivateKey", "existingHostPrivateKey"] as const;

/** Settings of one mode only; set in the other mode they are a mistake (Pulumi.yaml gives each its default). */
export const EC2_ONLY_KEYS = ["instanceType", "architecture", "ubuntuRelease", "ubuntuAmiSerial", "rootVolumeSizeGb",
    "allowedSshCidrs", "allowOpenSsh", "subnetId", "loginPrivateKey", "spot", "cacheVolumeSizeGb", "retainCacheVolume"] as const;

export const EXISTING_ONLY_KEYS = ["existingHostAddress", "existingHostPort", "existingHostUser", "existingHostPrivateKey",
    "existingHostPublicKey"] as const;

/** Defaults; Pulumi.yaml declares the same values (a unit test keeps the two equal); the scripts share STEP_DEFAULTS. */
export const DEFAULTS = {
    hostMode: "ec2",
    instanceType: "c7i.xlarge",
    ubuntuRelease: "24.04",
    rootVolumeSizeGb: 100,
    cacheVolumeSizeGb: 0,
    retainCacheVolume: true,
    allowOpenSsh: false,
    spot: false,
    ...STEP_DEFAULTS,
    platforms: DEFAULT_PLATFORMS,
    allowInsecureEntitlements: [] as readonly InsecureEntitlement[],
    existingHostPort: 22,
    fleetFallback: "fail" as FleetFallback,
    idleStopMinutes: 0,
} as const;

/** Every key this project reads; anything else under `buildx-host:` is a typo. */
export const KNOWN_KEYS = [
    "hostMode", "instanceType", "architecture", "ubuntuRelease", "ubuntuAmiSerial", "rootVolumeSizeGb",
    "allowedSshCidrs", "allowOpenSsh", "subnetId", "loginPrivateKey", "team", "dockerAptRepo",
    "dockerAptKeyFingerprint", "dockerCeVersion", "platforms", "builderName", "buildkitImage", "allowInsecureEntitlements", "buildkitGcReservedSpace",
    "buildkitGcMaxUsedSpace", "buildkitGcMinFreeSpace", "existingHostAddress", "existingHostPort",
    "existingHostUser", "existingHostPrivateKey", "existingHostPublicKey", "hostReadyTimeoutMinutes", "nodes", "fleetFallback",
    "spot", "idleStopMinutes", "cacheVolumeSizeGb", "retainCacheVolume",
] as const;
