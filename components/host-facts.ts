/**
 * Facts about build hosts that both the program and the host scripts need: one home for each, the
 * way tonistiigi/binfmt keeps its table apart from its logic. components/config/ validates against them;
 * the scripts read them from components/scripts/lib/host-facts.sh, which `hostFactsShell` generates
 * from this file (a unit test keeps the two equal; `UPDATE_HOST_FACTS=1 npm test` rewrites it).
 * Pure data: no Pulumi calls.
 */
import { shellQuote as quoted } from "./shell";

/** The releases a host may run: what wait-for-host accepts, docker-engine's repository trees, the EC2 AMIs. */
export const SUPPORTED_RELEASES = [
    { os: "ubuntu", version: "22.04", codename: "jammy" },
    { os: "ubuntu", version: "24.04", codename: "noble" },
    { os: "debian", version: "12", codename: "bookworm" },
    { os: "debian", version: "13", codename: "trixie" },
] as const;

/** The CPU architectures a build host may have (Debian's names): EC2 offers both. */
export const CPU_ARCHITECTURES = ["amd64", "arm64"] as const;

export type CpuArchitecture = typeof CPU_ARCHITECTURES[number];

/** The platforms QEMU can emulate for a build, each with its emulator's binfmt name (qemu-<name>). */
export const EMULATED_PLATFORMS = {
    "linux/amd64": "x86_64",
    "linux/arm64": "aarch64",
    "linux/arm/v7": "arm",
    "linux/arm/v6": "arm",
    "linux/ppc64le": "ppc64le",
    "linux/s390x": "s390x",
    "linux/riscv64": "riscv64",
    "linux/386": "i386",
    "linux/mips64le": "mips64el",
} as const satisfies Readonly<Record<string, string>>;

export type EmulatedPlatform = keyof typeof EMULATED_PLATFORMS;

/** The emulator's binfmt name for a platform, or undefined when QEMU cannot emulate it. */
export function emulatorOf(platform: string): string | undefined {
    return Object.hasOwn(EMULATED_PLATFORMS, platform) ? (EMULATED_PLATFORMS as Readonly<Record<string, string>>)[platform] : undefined;
}

/** The platforms the QEMU step checks and proves unless told otherwise (the host's own is skipped). */
export const DEFAULT_PLATFORMS: readonly EmulatedPlatform[] = [
    "linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x", "linux/riscv64",
];

/**
 * The BuildKit the builder runs unless `buildkitImage` says otherwise; the host lab builds this
 * version (tests/hostlab/infra/build-buildkit-image.sh). A digest, once verified, is pinned here:
 * `${BUILDKIT_REPOSITORY}:${BUILDKIT_VERSION}@sha256:…`.
 */
export const BUILDKIT_REPOSITORY = "moby/buildkit";
export const BUILDKIT_VERSION = "v0.34.2";
export const BUILDKIT_IMAGE = `${BUILDKIT_REPOSITORY}:${BUILDKIT_VERSION}`;

/**
 * Settings' defaults that a step's script also takes when run on its own (config/settings.ts
 * DEFAULTS spreads them; the scripts read HOST_FACTS_DEFAULT[<NAME>], e.g. [BUILDKIT_IMAGE]).
 */
export const STEP_DEFAULTS = {
    dockerAptRepo: "https://download.docker.com/linux",
    // Docker's apt key as docs.docker.com publishes it (9DC8 5822 9FC7 DD38 854A E2D8 8D81 803C 0EBF CD88).
    dockerAptKeyFingerprint: "9DC858229FC7DD38854AE2D88D81803C0EBFCD88",
    builderName: "buildx-host",
    buildkitImage: BUILDKIT_IMAGE,
    // Shares of the cache's filesystem, as BuildKit's own defaults are: they fit any disk.
    buildkitGcReservedSpace: "10%",
    buildkitGcMaxUsedSpace: "70%",
    buildkitGcMinFreeSpace: "20%",
    hostReadyTimeoutMinutes: 15,
} as const;

/** A setting's name as a shell variable's: buildkitGcReservedSpace → BUILDKIT_GC_RESERVED_SPACE. */
export function shellName(setting: string): string {
    return setting.replace(/[A-Z]/g, letter => `_${letter}`).toUpperCase();
}

/** How often the idle-stop step's timer checks whether the host is idle: a power-off comes at most this late. */
export const IDLE_CHECK_SECONDS = 15;

/** The SSH public key types a team member's key may have (OpenSSH's names). */
export const SSH_KEY_TYPES = [
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
] as const;

/**
 * Where udev links an EBS volume on a Nitro instance (an NVMe device whose serial is the volume id
 * without its dash): this prefix, then "vol0123…". The cache-volume step finds its volume there.
 */
export const EBS_DEVICE_LINK_PREFIX = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_";

/** The device link of an EBS volume, by its id (vol-0123…). */
export function ebsDeviceLink(volumeId: string): string {
    return `${EBS_DEVICE_LINK_PREFIX}${volumeId.replace("-", "")}`;
}

/** The group of the team members' accounts: sshd's member door matches it. */
export const MEMBERS_GROUP = "buildx-members";

/**
 * Patterns as POSIX extended regular expressions, the common ground of JavaScript's RegExp and
 * bash's `=~`: no \d, no lookaround.
 */
export const PATTERNS = {
    /** A Linux account name the team step creates (and the existing host's login user). */
    accountName: "^[a-z_][a-z0-9_-]{0,31}$",
    /** A buildx builder name, also the clients' docker context name. */
    builderName: "^[a-z][a-z0-9_-]{0,62}$",
    /** A BuildKit GC limit: a size with a unit BuildKit reads, or a percentage of the disk. */
    diskSize: "^[0-9]+(\\.[0-9]+)?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$|^[0-9]{1,2}%$",
} as const;

/** components/scripts/lib/host-facts.sh, as generated from the tables above. */
export function hostFactsShell(): string {
    return [
        "# shellcheck shell=bash disable=SC2034 # the steps read these",
        "# Generated from components/host-facts.ts (UPDATE_HOST_FACTS=1 npm test); do not edit.",
        "# steps.ts sends it after lib/common.sh, ahead of every step's script.",
        `readonly HOST_FACTS_SUPPORTED_RELEASES=(${SUPPORTED_RELEASES.map(r => quoted(`${r.os} ${r.version} ${r.codename}`)).join(" ")})`,
        `readonly HOST_FACTS_SSH_KEY_TYPES=(${SSH_KEY_TYPES.join(" ")})`,
        `readonly HOST_FACTS_MEMBERS_GROUP=${quoted(MEMBERS_GROUP)}`,
        `readonly HOST_FACTS_EBS_DEVICE_LINK_PREFIX=${quoted(EBS_DEVICE_LINK_PREFIX)}`,
        `readonly HOST_FACTS_ACCOUNT_NAME_PATTERN=${quoted(PATTERNS.accountName)}`,
        `declare -rA HOST_FACTS_EMULATOR_OF=(${Object.entries(EMULATED_PLATFORMS).map(([p, e]) => `[${p}]=${e}`).join(" ")})`,
        `readonly HOST_FACTS_DEFAULT_PLATFORMS=${quoted(DEFAULT_PLATFORMS.join(" "))}`,
        `readonly HOST_FACTS_BUILDER_NAME_PATTERN=${quoted(PATTERNS.builderName)}`,
        `readonly HOST_FACTS_DISK_SIZE_PATTERN=${quoted(PATTERNS.diskSize)}`,
        `readonly HOST_FACTS_BUILDKIT_REPOSITORY=${quoted(BUILDKIT_REPOSITORY)}`,
        `readonly HOST_FACTS_BUILDKIT_VERSION=${quoted(BUILDKIT_VERSION)}`,
        `readonly HOST_FACTS_IDLE_CHECK_SECONDS=${IDLE_CHECK_SECONDS}`,
        `declare -rA HOST_FACTS_DEFAULT=(${Object.entries(STEP_DEFAULTS).map(([setting, value]) => `[${shellName(setting)}]=${quoted(String(value))}`).join(" ")})`,
        "",
    ].join("\n");
}
