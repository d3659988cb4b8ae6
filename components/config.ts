/**
 * Parses and validates the `buildx-host:*` stack configuration.
 *
 * Every key is checked and every problem is reported in one error, each line naming the key,
 * what is wrong and a valid example, so a bad stack fails at preview time before any host is touched.
 * Nothing here touches Pulumi: the host lab builds its configuration with the same function.
 */

import {
    CPU_ARCHITECTURES, CpuArchitecture, DEFAULT_PLATFORMS, EMULATED_PLATFORMS, emulatorOf, PATTERNS, SSH_KEY_TYPES, SUPPORTED_RELEASES,
} from "./host-facts";
import { routePlatforms } from "./routing";

/** The raw `buildx-host:*` values as `pulumi config` stores them (arrays arrive as JSON text). */
export type RawConfig = Readonly<Record<string, string | undefined>>;

export type HostMode = BuildHostConfig["mode"];
/** The Ubuntu releases an EC2 host may run (host-facts.ts). */
export type UbuntuRelease = Extract<typeof SUPPORTED_RELEASES[number], { os: "ubuntu" }>["version"];
const UBUNTU_RELEASES = SUPPORTED_RELEASES.filter(r => r.os === "ubuntu").map(r => r.version) as UbuntuRelease[];

/** A person who gets their own account on the host, in the docker group, with their SSH keys. */
export interface TeamMember {
    readonly name: string;
    /** One per `team` entry of this member (a laptop, a CI job, …), in the order listed. */
    readonly sshPublicKeys: readonly string[];
}

/** BuildKit garbage-collection limits, written to buildkitd.toml (`reservedSpace`, `maxUsedSpace`, `minFreeSpace`). */
export interface BuildkitGcLimits {
    readonly reservedSpace: string;
    readonly maxUsedSpace: string;
    readonly minFreeSpace: string;
}

/** Settings of mode "ec2": the instance Pulumi creates. */
export interface Ec2Settings {
    readonly instanceType: string;
    readonly architecture: CpuArchitecture;
    readonly ubuntuRelease: UbuntuRelease;
    /** Canonical's image serial (e.g. "20251015") to pin the AMI; undefined means the newest at creation. */
    readonly ubuntuAmiSerial?: string;
    readonly rootVolumeSizeGb: number;
    readonly allowedSshCidrs: readonly string[];
    readonly subnetId?: string;
    /** True when `loginPrivateKey` is set, so no key is generated. */
    readonly loginKeyProvided: boolean;
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
    readonly dockerCeVersion?: string;
    /** The platforms whose emulation the QEMU step checks and proves; a fleet node's are the ones it serves. */
    readonly platforms: readonly string[];
    readonly builderName: string;
    readonly buildkitImage: string;
    readonly buildkitGc: BuildkitGcLimits;
    readonly hostReadyTimeoutMinutes: number;
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
}

/**
 * Config keys whose values are secrets: they must be stored encrypted (`--secret`); parseConfig
 * checks their shape and never echoes them; index.ts wraps them with `pulumi.secret` as it reads them.
 */
export const SECRET_KEYS = ["loginPrivateKey", "existingHostPrivateKey"] as const;

/** Settings of one mode only; set in the other mode they are a mistake (Pulumi.yaml gives each its default). */
const EC2_ONLY_KEYS = ["instanceType", "architecture", "ubuntuRelease", "ubuntuAmiSerial", "rootVolumeSizeGb",
    "allowedSshCidrs", "allowOpenSsh", "subnetId", "loginPrivateKey"] as const;
const EXISTING_ONLY_KEYS = ["existingHostAddress", "existingHostPort", "existingHostUser", "existingHostPrivateKey",
    "existingHostPublicKey"] as const;

/** Where an existing host's settings are read: the stack's keys for the single host, a node's own for a fleet node. */
interface ExistingHostKeys {
    readonly address: string;
    readonly port: string;
    readonly user: string;
    readonly hostPublicKey: string;
    readonly privateKey: string;
}
const SINGLE_HOST_KEYS: ExistingHostKeys = {
    address: "existingHostAddress", port: "existingHostPort", user: "existingHostUser",
    hostPublicKey: "existingHostPublicKey", privateKey: "existingHostPrivateKey",
};
const NODE_HOST_KEYS: ExistingHostKeys = {
    address: "address", port: "port", user: "user", hostPublicKey: "hostPublicKey", privateKey: "privateKey",
};

/** The settings of a `nodes` entry, by the mode they belong to. */
const NODE_KEYS = {
    both: ["name", "mode", "architecture", "platforms"],
    ec2: ["instanceType"],
    existing: Object.values(NODE_HOST_KEYS),
} as const satisfies Readonly<Record<string, readonly string[]>>;
/** Single-host settings that a fleet sets per node instead: the stack key, and the node's. */
const PER_NODE_KEYS: Readonly<Record<string, string>> = {
    architecture: "architecture",
    ...Object.fromEntries(Object.entries(SINGLE_HOST_KEYS).map(([field, key]) => [key, NODE_HOST_KEYS[field as keyof ExistingHostKeys]])),
};
const NODE_NAME = /^[a-z][a-z0-9-]{0,30}$/;
const NODE_EXAMPLE_VALUES: Readonly<Record<string, string>> = {
    architecture: "arm64", address: "build1.example.com", port: "2222", user: "ubuntu",
    hostPublicKey: "\"$(ssh-keyscan -t ed25519 build1.example.com | cut -d' ' -f2-)\"",
};

/** Defaults; Pulumi.yaml declares the same values (a unit test keeps the two equal). */
export const DEFAULTS = {
    hostMode: "ec2",
    instanceType: "c7i.xlarge",
    ubuntuRelease: "24.04",
    rootVolumeSizeGb: 100,
    allowOpenSsh: false,
    dockerAptRepo: "https://download.docker.com/linux",
    platforms: DEFAULT_PLATFORMS,
    builderName: "buildx-host",
    buildkitImage: "moby/buildkit:v0.34.2",
    buildkitGcReservedSpace: "10GB",
    buildkitGcMaxUsedSpace: "80GB",
    buildkitGcMinFreeSpace: "20GB",
    existingHostPort: 22,
    hostReadyTimeoutMinutes: 15,
} as const;

/** Every key this project reads; anything else under `buildx-host:` is a typo. */
export const KNOWN_KEYS = [
    "hostMode", "instanceType", "architecture", "ubuntuRelease", "ubuntuAmiSerial", "rootVolumeSizeGb",
    "allowedSshCidrs", "allowOpenSsh", "subnetId", "loginPrivateKey", "team", "dockerAptRepo",
    "dockerCeVersion", "platforms", "builderName", "buildkitImage", "buildkitGcReservedSpace",
    "buildkitGcMaxUsedSpace", "buildkitGcMinFreeSpace", "existingHostAddress", "existingHostPort",
    "existingHostUser", "existingHostPrivateKey", "existingHostPublicKey", "hostReadyTimeoutMinutes", "nodes",
] as const;

/** Raised with every configuration problem at once. */
export class ConfigError extends Error {
    constructor(readonly problems: readonly string[]) {
        super(`Invalid buildx-host configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
            problems.map(p => `  - ${p}`).join("\n"));
        this.name = "ConfigError";
    }
}

const LINUX_USER_NAME = new RegExp(PATTERNS.accountName);
/** Accounts the host already has or this project uses itself. */
const RESERVED_USER_NAMES = new Set(["root", "ubuntu", "admin", "debian", "docker", "daemon", "bin", "sys", "nobody", "sshd", "syslog"]);
const KEY_TYPES = new Set<string>(SSH_KEY_TYPES);
const SIZE = new RegExp(PATTERNS.diskSize);
const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9-]+$/;
const KEY_EXAMPLE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICMuitBm3Na3mokQbnQlnPS+q4yZBeoCIqm3SvbczITp alice@laptop";

/**
 * Checks that `line` is an OpenSSH public key: a known type followed by base64 whose embedded
 * type name matches it (the first field of the decoded blob).
 */
export function isSshPublicKey(line: string): boolean {
    const [type, blob] = line.trim().split(/\s+/);
    if (!type || !blob || !KEY_TYPES.has(type) || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) {
        return false;
    }
    const bytes = Buffer.from(blob, "base64");
    if (bytes.length < 4) {
        return false;
    }
    const nameLength = bytes.readUInt32BE(0);
    return bytes.length >= 4 + nameLength && bytes.subarray(4, 4 + nameLength).toString("latin1") === type;
}

/** True for an IPv4 or IPv6 CIDR block such as "203.0.113.0/24" or "2001:db8::/32". */
export function isCidr(value: string): boolean {
    const match = /^([^/]+)\/(\d{1,3})$/.exec(value);
    if (!match) {
        return false;
    }
    const [, address, prefix] = match;
    if (isIpv4(address)) {
        return Number(prefix) <= 32;
    }
    return isIpv6(address) && Number(prefix) <= 128;
}

function isIpv4(address: string): boolean {
    const parts = address.split(".");
    return parts.length === 4 && parts.every(p => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

function isIpv6(address: string): boolean {
    if (!/^[0-9a-fA-F:]+$/.test(address) || (address.match(/::/g) ?? []).length > 1) {
        return false;
    }
    const groups = address.split(":").filter(g => g !== "");
    return groups.every(g => g.length <= 4) && (address.includes("::") ? groups.length < 8 : groups.length === 8);
}

/** CIDRs that open SSH to the whole internet. */
export function isOpenToWorld(cidr: string): boolean {
    return /^0\.0\.0\.0\/0$/.test(cidr) || /^::\/0$/.test(cidr);
}

/** The CPU architecture an EC2 instance type implies: Graviton families (a1, m7g, c7gn, …) are arm64. */
export function architectureOfInstanceType(instanceType: string): CpuArchitecture {
    const family = instanceType.split(".")[0];
    return family === "a1" || /^[a-z]+\d+g[a-z]*$/.test(family) ? "arm64" : "amd64";
}

/** Collects problems while reading keys, so that all of them are reported together. */
class Reader {
    constructor(private readonly raw: RawConfig, private readonly secretKeys?: readonly string[],
                readonly problems: string[] = []) {}

    /** Whether `key` is stored encrypted; unknown (no list given, as in the lab) counts as yes. */
    storedAsSecret(key: string): boolean {
        return this.secretKeys === undefined || this.secretKeys.includes(key);
    }

    problem(key: string, why: string, example: string): void {
        this.problems.push(`buildx-host:${key} ${why}. Example: pulumi config set ${example}`);
    }

    /** The keys given, set or not. */
    keys(): string[] {
        return Object.keys(this.raw);
    }

    has(key: string): boolean {
        const value = this.raw[key];
        return value !== undefined && value.trim() !== "";
    }

    /** Whether the stack sets `key` to something other than its Pulumi.yaml default (an empty list is no setting). */
    isSet(key: string): boolean {
        const fallback = (DEFAULTS as Readonly<Record<string, unknown>>)[key];
        const declared = fallback === undefined ? undefined : typeof fallback === "string" ? fallback : JSON.stringify(fallback);
        const value = this.string(key);
        return value !== undefined && value !== declared && value !== "[]";
    }

    string(key: string, fallback?: string): string | undefined {
        return this.has(key) ? this.raw[key]!.trim() : fallback;
    }

    oneOf<T extends string>(key: string, allowed: readonly T[], fallback: T, example: string): T {
        const value = this.string(key, fallback)!;
        if (!(allowed as readonly string[]).includes(value)) {
            this.problem(key, `must be one of ${allowed.map(a => `"${a}"`).join(", ")}, not "${value}"`, example);
            return fallback;
        }
        return value as T;
    }

    integer(key: string, fallback: number, min: number, max: number, example: string): number {
        const value = this.string(key);
        if (value === undefined) {
            return fallback;
        }
        if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
            this.problem(key, `must be a whole number from ${min} to ${max}, not "${value}"`, example);
            return fallback;
        }
        return Number(value);
    }

    boolean(key: string, fallback: boolean, example: string): boolean {
        const value = this.string(key);
        if (value === undefined) {
            return fallback;
        }
        if (value !== "true" && value !== "false") {
            this.problem(key, `must be true or false, not "${value}"`, example);
            return fallback;
        }
        return value === "true";
    }

    /** A list stored as a JSON array of strings (`pulumi config set --path 'key[0]' …` writes one). */
    stringList(key: string, fallback: readonly string[], example: string): readonly string[] {
        const value = this.string(key);
        if (value === undefined) {
            return fallback;
        }
        let parsed: unknown;
        try {
            parsed = JSON.parse(value);
        } catch {
            parsed = undefined;
        }
        if (!Array.isArray(parsed) || !parsed.every(item => typeof item === "string")) {
            this.problem(key, "must be a list of strings", example);
            return fallback;
        }
        return parsed.map(item => item.trim());
    }

    matching(key: string, pattern: RegExp, why: string, example: string, fallback?: string): string | undefined {
        const value = this.string(key, fallback);
        if (value !== undefined && !pattern.test(value)) {
            this.problem(key, `${why}, not "${value}"`, example);
            return fallback;
        }
        return value;
    }
}

/** An EC2 host's instance type and the architecture it implies; `fallback`: the instance type when none is set. */
function readInstance(r: Reader, fallback: string): Pick<Ec2Settings, "instanceType" | "architecture"> {
    const instanceType = r.matching("instanceType", INSTANCE_TYPE, "must be an EC2 instance type", "instanceType c7i.xlarge", fallback)!;
    const impliedArchitecture = architectureOfInstanceType(instanceType);
    const architecture = r.oneOf<CpuArchitecture>("architecture", CPU_ARCHITECTURES, impliedArchitecture, "architecture arm64");
    if (architecture !== impliedArchitecture) {
        r.problem("architecture", `is "${architecture}" but instance type ${instanceType} is ${impliedArchitecture}; ` +
            "leave it unset to derive it, or pick a matching instance type", `architecture ${impliedArchitecture}`);
    }
    return { instanceType, architecture };
}

/** The EC2 settings every EC2 host of the stack shares: release, disk, network, login key. */
function readEc2Shared(r: Reader): Omit<Ec2Settings, "instanceType" | "architecture"> {
    const allowOpenSsh = r.boolean("allowOpenSsh", DEFAULTS.allowOpenSsh, "allowOpenSsh true");
    const cidrExample = "--path 'allowedSshCidrs[0]' 203.0.113.0/24";
    const allowedSshCidrs = r.stringList("allowedSshCidrs", [], cidrExample);
    if (allowedSshCidrs.length === 0) {
        r.problem("allowedSshCidrs", "is required in ec2 mode: list the networks allowed to reach SSH", cidrExample);
    }
    for (const cidr of allowedSshCidrs) {
        if (!isCidr(cidr)) {
            r.problem("allowedSshCidrs", `has "${cidr}", which is not a CIDR block`, cidrExample);
        } else if (cidr.includes(":")) {
            r.problem("allowedSshCidrs", `has "${cidr}", an IPv6 network: the host has only an IPv4 address (its Elastic IP), ` +
                "so no IPv6 client could reach it; list the IPv4 networks your clients come from", cidrExample);
        } else if (isOpenToWorld(cidr) && !allowOpenSsh) {
            r.problem("allowedSshCidrs", `has "${cidr}", which opens SSH to the whole internet; ` +
                "set allowOpenSsh to true to accept that explicitly", "allowOpenSsh true");
        }
    }

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

function readExistingHostSettings(r: Reader, keys: ExistingHostKeys): ExistingHostSettings {
    const addressExample = `${keys.address} build1.example.com`;
    const address = r.matching(keys.address, /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^[0-9a-fA-F:]*:[0-9a-fA-F:]*$/,
        `must be a host name or IP address, without a port (that is ${keys.port})`, addressExample);
    if (address?.includes(":") && !isIpv6(address)) {
        r.problem(keys.address, `"${address}" is not an IPv6 address; give the port in ${keys.port}`, `${keys.port} 2222`);
    }
    if (!r.has(keys.address)) {
        r.problem(keys.address, "is required in existing mode", addressExample);
    }
    const user = r.matching(keys.user, LINUX_USER_NAME, "must be a Linux user name", `${keys.user} ubuntu`);
    if (!r.has(keys.user)) {
        r.problem(keys.user, "is required in existing mode: a user with passwordless sudo", `${keys.user} ubuntu`);
    }
    const hostPublicKey = r.string(keys.hostPublicKey);
    const port = r.string(keys.port, String(DEFAULTS.existingHostPort));
    const hostKeyExample = `${keys.hostPublicKey} "$(ssh-keyscan ${port === "22" ? "" : `-p ${port} `}-t ed25519 ${address || "build1.example.com"} | cut -d' ' -f2-)"`;
    if (hostPublicKey === undefined) {
        r.problem(keys.hostPublicKey, "is required in existing mode: the host's SSH public key, pinned on every connection", hostKeyExample);
    } else if (!isSshPublicKey(hostPublicKey) && isSshPublicKey(hostPublicKey.split(/\s+/).slice(1).join(" "))) {
        r.problem(keys.hostPublicKey, `starts with "${hostPublicKey.split(/\s+/)[0]}", the host name of a known_hosts line; ` +
            "give only the key type and the key", hostKeyExample);
    } else if (!isSshPublicKey(hostPublicKey)) {
        r.problem(keys.hostPublicKey, "is not an SSH public key", hostKeyExample);
    } else if (hostPublicKey.startsWith("ssh-rsa ")) {
        // @pulumi/command offers a pinned RSA key's type as its only algorithm, ssh-rsa (SHA-1), which OpenSSH 8.8+ refuses.
        r.problem(keys.hostPublicKey, "is an RSA key, which the SSH connection can only verify with SHA-1 signatures " +
            "that OpenSSH 8.8 and later refuse; pin the server's ed25519 (or ECDSA) key", hostKeyExample);
    }
    readPrivateKeyPresence(r, keys.privateKey, { required: true, opensshOnly: false });
    return {
        address: address ?? "",
        port: r.integer(keys.port, DEFAULTS.existingHostPort, 1, 65535, `${keys.port} 2222`),
        user: user ?? "",
        hostPublicKey: (hostPublicKey ?? "").split(/\s+/).slice(0, 2).join(" "),
    };
}

/**
 * Whether a private key is protected by a passphrase: a PEM key with an ENCRYPTED header or in
 * PKCS#8's encrypted form, or an OpenSSH key whose cipher (after "openssh-key-v1\0") is not "none".
 */
export function isEncryptedPrivateKey(key: string): boolean {
    if (/^-----BEGIN ENCRYPTED PRIVATE KEY-----|^Proc-Type: 4,ENCRYPTED/m.test(key)) {
        return true;
    }
    const body = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(key)?.[1];
    if (body === undefined) {
        return false;
    }
    const bytes = Buffer.from(body.replace(/\s+/g, ""), "base64");
    const magic = "openssh-key-v1\0";
    if (bytes.length < magic.length + 4 || bytes.subarray(0, magic.length).toString("latin1") !== magic) {
        return false;
    }
    const cipherLength = bytes.readUInt32BE(magic.length);
    return bytes.subarray(magic.length + 4, magic.length + 4 + cipherLength).toString("latin1") !== "none";
}

/**
 * Checks a secret private key's shape without ever echoing it. The login key must be OpenSSH
 * (its public half is derived from that format); the SSH client also reads PEM keys.
 */
function readPrivateKeyPresence(r: Reader, key: string, { required, opensshOnly }: { required: boolean; opensshOnly: boolean }): boolean {
    const example = `--secret ${key} < ~/.ssh/id_ed25519`;
    const value = r.string(key);
    if (value === undefined) {
        if (required) {
            r.problem(key, "is required in existing mode", example);
        }
        return false;
    }
    const accepted = opensshOnly ? /^-----BEGIN OPENSSH PRIVATE KEY-----/ : /^-----BEGIN (OPENSSH|RSA|EC) PRIVATE KEY-----/;
    if (!r.storedAsSecret(key)) {
        r.problem(key, "is stored in plain text in the stack's settings file (value not shown); store it encrypted", example);
    }
    if (!accepted.test(value)) {
        r.problem(key, opensshOnly
            ? "is not an OpenSSH private key (value not shown; `ssh-keygen -p -f KEY` rewrites a PEM key in OpenSSH format)"
            : "is not a PEM or OpenSSH private key (value not shown)", example);
    } else if (isEncryptedPrivateKey(value)) {
        // The SSH connection could take a passphrase, but it would be one more stack secret beside the key,
        // under the same protection; and the login key's public half is derived without one.
        r.problem(key, "is protected by a passphrase, which `pulumi up` cannot type (value not shown); use a key without " +
            "one, made for this host (ssh-keygen -t ed25519 -N '' -f ~/.ssh/buildx-host), or remove the passphrase " +
            "from a copy (ssh-keygen -p -N '' -f COPY)", example);
    }
    return true;
}

/**
 * Team members; `loginUsers` (existing hosts' users) are taken, as are system accounts. A member
 * listed more than once gets every key listed (a laptop and a CI job, say).
 */
function readTeam(r: Reader, loginUsers: readonly string[]): readonly TeamMember[] {
    const example = `--path 'team[0]' "alice ${KEY_EXAMPLE}"`;
    const keysOf = new Map<string, string[]>();
    for (const entry of r.stringList("team", [], example)) {
        const [name, ...keyFields] = entry.split(/\s+/);
        const sshPublicKey = keyFields.join(" ");
        if (!LINUX_USER_NAME.test(name) || RESERVED_USER_NAMES.has(name)) {
            r.problem("team", `member "${name}" is not a usable Linux user name (lowercase letters, digits, _ and -, ` +
                "at most 32, not a system account)", example);
        } else if (loginUsers.includes(name)) {
            r.problem("team", `member "${name}" is the login user of an existing host, whose account the team step must not take over`, example);
        } else if (!isSshPublicKey(sshPublicKey)) {
            r.problem("team", `member "${name}" has no valid SSH public key after the name`, example);
        } else if (keysOf.get(name)?.some(key => sameKey(key, sshPublicKey))) {
            r.problem("team", `lists the same key of member "${name}" twice`, example);
        } else {
            keysOf.set(name, [...keysOf.get(name) ?? [], sshPublicKey]);
        }
    }
    return [...keysOf].map(([name, sshPublicKeys]) => ({ name, sshPublicKeys }));
}

/** Same key type and key material, whatever the comments. */
function sameKey(a: string, b: string): boolean {
    return a.split(/\s+/).slice(0, 2).join(" ") === b.split(/\s+/).slice(0, 2).join(" ");
}

/** The host mode; undefined when the value is not one, so that neither mode's settings are judged. */
function readHostMode(r: Reader): HostMode | undefined {
    const value = r.string("hostMode", DEFAULTS.hostMode)!;
    const modes: readonly HostMode[] = ["ec2", "existing"];
    if (!(modes as readonly string[]).includes(value)) {
        const meant = modes.find(mode => mode === value.toLowerCase());
        r.problem("hostMode", `must be "ec2" or "existing", not "${value}"${meant ? ` (did you mean ${meant}?)` : ""}`,
            `hostMode ${meant ?? "existing"}`);
        return undefined;
    }
    return value as HostMode;
}

/** The single host's settings of the mode it is not in: set, they are a mistake. */
function refuseOtherModeKeys(r: Reader, mode: HostMode): void {
    const [otherKeys, otherMode] = mode === "ec2" ? [EXISTING_ONLY_KEYS, "existing"] : [EC2_ONLY_KEYS, "ec2"];
    const misplaced = otherKeys.filter(key => r.isSet(key));
    if (misplaced.length > 0) {
        const [what, fix] = mode === "ec2"
            ? [`hostMode is "ec2"${r.has("hostMode") ? "" : " (the default)"}, which creates an EC2 instance and ignores them`, "hostMode existing"]
            : ["they do nothing in existing mode", `hostMode ec2, or remove them: pulumi config rm ${misplaced[0]}`];
        r.problem(misplaced[0], `${misplaced.length === 1 ? "is a setting" : `and ${misplaced.slice(1).join(", ")} are settings`} ` +
            `of ${otherMode} mode, but ${what}`, fix);
    }
}

/** Docker's apt repository root, without the distro path the docker-engine step appends. */
function readDockerAptRepo(r: Reader): string {
    const repo = r.matching("dockerAptRepo", /^https?:\/\/[A-Za-z0-9.-]+(:\d+)?(\/[A-Za-z0-9._~%/-]*)?$/,
        "must be an http(s) URL of a Docker apt repository root", "dockerAptRepo https://download.docker.com/linux",
        DEFAULTS.dockerAptRepo)!.replace(/\/+$/, "");
    const distro = /\/(ubuntu|debian)$/.exec(repo);
    if (distro) {
        const root = repo.slice(0, -distro[0].length);
        r.problem("dockerAptRepo", `ends with "${distro[0]}", the distro path the host's own release adds; give the root`,
            `dockerAptRepo ${root}`);
    }
    return repo;
}

/** The platforms `key` lists, each one QEMU can emulate; `fallback` when it is unset. */
function readPlatforms(r: Reader, fallback: readonly string[] = DEFAULTS.platforms): readonly string[] {
    const example = "--path 'platforms[0]' linux/arm64";
    const platforms = r.stringList("platforms", fallback, example);
    const unknown = platforms.filter(p => emulatorOf(p) === undefined);
    if (unknown.length > 0) {
        r.problem("platforms", `has ${unknown.map(p => `"${p}"`).join(", ")}; supported: ${Object.keys(EMULATED_PLATFORMS).join(", ")}`, example);
    }
    if (platforms.length === 0) {
        r.problem("platforms", "must list at least one platform", example);
    }
    return [...new Set(platforms)];
}

/** What every host of the stack shares; `loginUsers`: the existing hosts' users, which no member may take. */
function readCommonSettings(r: Reader, loginUsers: readonly string[]): Omit<CommonSettings, "platforms"> {
    return {
        team: readTeam(r, loginUsers),
        dockerAptRepo: readDockerAptRepo(r),
        // Docker's packages always carry a Debian revision ("-1~ubuntu.24.04~noble"); "28.5.2" alone is no apt version.
        dockerCeVersion: r.matching("dockerCeVersion", /^(\d+:)?\d[A-Za-z0-9.+~]*-[A-Za-z0-9.+~]+$/,
            "must be an exact apt version as `apt-cache madison docker-ce` prints it, with its revision",
            "dockerCeVersion '5:28.5.2-1~ubuntu.24.04~noble'"),
        builderName: r.matching("builderName", new RegExp(PATTERNS.builderName),
            "must start with a lowercase letter, then lowercase letters, digits, _ and - (a buildx builder name)", "builderName team-builder",
            DEFAULTS.builderName)!,
        buildkitImage: r.matching("buildkitImage", /^[a-z0-9][a-z0-9._/:-]*(:(?!latest$)[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$/,
            "must be an image pinned by a version tag (not latest) or a digest", "buildkitImage moby/buildkit:v0.34.2",
            DEFAULTS.buildkitImage)!,
        buildkitGc: {
            reservedSpace: r.matching("buildkitGcReservedSpace", SIZE, "must be a size like 10GB or a percentage like 10%",
                "buildkitGcReservedSpace 10GB", DEFAULTS.buildkitGcReservedSpace)!,
            maxUsedSpace: r.matching("buildkitGcMaxUsedSpace", SIZE, "must be a size like 80GB or a percentage like 60%",
                "buildkitGcMaxUsedSpace 80GB", DEFAULTS.buildkitGcMaxUsedSpace)!,
            minFreeSpace: r.matching("buildkitGcMinFreeSpace", SIZE, "must be a size like 20GB or a percentage like 20%",
                "buildkitGcMinFreeSpace 20GB", DEFAULTS.buildkitGcMinFreeSpace)!,
        },
        hostReadyTimeoutMinutes: r.integer("hostReadyTimeoutMinutes", DEFAULTS.hostReadyTimeoutMinutes, 1, 120,
            "hostReadyTimeoutMinutes 20"),
    };
}

/** The one host a stack without `nodes` describes. */
function readSingleHost(r: Reader, mode: HostMode): BuildNode {
    refuseOtherModeKeys(r, mode);
    if (mode === "existing") {
        const existingHost = readExistingHostSettings(r, SINGLE_HOST_KEYS);
        const common = { ...readCommonSettings(r, [existingHost.user]), platforms: readPlatforms(r) };
        return { host: { ...common, mode, existingHost }, privateKey: "existingHostPrivateKey" };
    }
    const ec2 = { ...readInstance(r, DEFAULTS.instanceType), ...readEc2Shared(r) };
    const common = { ...readCommonSettings(r, []), platforms: readPlatforms(r) };
    return { host: { ...common, mode, ec2 }, privateKey: ec2.loginKeyProvided ? "loginPrivateKey" : undefined };
}

/**
 * Reads the settings of `nodes[index]` (a JSON object in the stack's config), naming them so in
 * problems and turning examples into `--path 'nodes[index].key'` ones.
 */
class NodeReader extends Reader {
    constructor(private readonly stack: Reader, readonly index: number, fields: RawConfig) {
        super(fields, undefined, stack.problems);
    }

    /** `pulumi config` encrypts `nodes` as a whole when any value in it is set with --secret. */
    override storedAsSecret(): boolean {
        return this.stack.storedAsSecret("nodes");
    }

    override problem(key: string, why: string, example: string): void {
        const node = `nodes[${this.index}]`;
        const pathExample = example
            .replace(/^--secret (\w+)/, `--secret --path '${node}.$1'`)
            .replace(/^--path '(\w+)/, `--path '${node}.$1`)
            .replace(/^(\w+) /, (whole, key: string) => NODE_SETTINGS.includes(key) ? `--path '${node}.${key}' ` : whole);
        super.problem(`${node}.${key}`, why, pathExample);
    }
}

const NODE_SETTINGS: readonly string[] = [...NODE_KEYS.both, ...NODE_KEYS.ec2, ...NODE_KEYS.existing];

/** The `nodes` entries as readers of their own settings; a problem for each entry that is not an object. */
function nodeReaders(r: Reader): NodeReader[] {
    const example = "--path 'nodes[0].name' amd64";
    let entries: unknown;
    try {
        entries = JSON.parse(r.string("nodes")!);
    } catch {
        entries = undefined;
    }
    if (!Array.isArray(entries)) {
        r.problem("nodes", "must be a list of nodes, each with its own settings", example);
        return [];
    }
    return entries.flatMap((entry: unknown, index) => {
        if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
            r.problem(`nodes[${index}]`, "must be a node's settings (name, mode, …), not a single value", `--path 'nodes[${index}].name' amd64`);
            return [];
        }
        const fields = Object.fromEntries(Object.entries(entry).map(([key, value]) =>
            [key, typeof value === "string" ? value : JSON.stringify(value)]));
        return [new NodeReader(r, index, fields)];
    });
}

/** A fleet node as read, before routing gives it its platforms. */
interface ReadNode {
    readonly name: string;
    readonly target: { readonly mode: "ec2"; readonly ec2: Pick<Ec2Settings, "instanceType" | "architecture"> }
        | { readonly mode: "existing"; readonly existingHost: ExistingHostSettings };
    readonly architecture: CpuArchitecture;
    readonly platforms?: readonly string[];
}

function readNode(n: NodeReader, defaultMode: HostMode, defaultInstanceType: string, names: Set<string>): ReadNode {
    for (const key of n.keys()) {
        if (!NODE_SETTINGS.includes(key)) {
            n.problem(key, `is not a setting of a node; a node has ${NODE_SETTINGS.join(", ")}`, "name amd64");
        }
    }
    const name = n.matching("name", NODE_NAME, "must start with a lowercase letter, then lowercase letters, digits and - (at most 31)",
        "name graviton", n.string("name", `node${n.index}`))!;
    if (!n.has("name")) {
        n.problem("name", "is required: the node's name in the builder and in the stack's outputs", "name graviton");
    } else if (names.has(name)) {
        n.problem("name", `"${name}" names another node too; node names must be unique`, `name ${name}-2`);
    }
    names.add(name);
    const mode = n.oneOf<HostMode>("mode", ["ec2", "existing"], defaultMode, "mode existing");
    for (const key of NODE_KEYS[mode === "ec2" ? "existing" : "ec2"].filter(k => n.has(k))) {
        n.problem(key, `is a setting of ${mode === "ec2" ? "an existing" : "an ec2"} node, but this node's mode is "${mode}"`,
            `mode ${mode === "ec2" ? "existing" : "ec2"}`);
    }
    const platforms = n.has("platforms") ? readPlatforms(n, []) : undefined;
    if (mode === "ec2") {
        const ec2 = readInstance(n, defaultInstanceType);
        return { name, target: { mode, ec2 }, architecture: ec2.architecture, platforms };
    }
    if (!n.has("architecture")) {
        n.problem("architecture", "is required for an existing node: its CPU, as `dpkg --print-architecture` prints it", "architecture arm64");
    }
    const architecture = n.oneOf<CpuArchitecture>("architecture", CPU_ARCHITECTURES, "amd64", "architecture arm64");
    return { name, target: { mode, existingHost: readExistingHostSettings(n, NODE_HOST_KEYS) }, architecture, platforms };
}

/** A stack that lists `nodes`: every node's host, and the platforms each serves. */
function readFleet(r: Reader, defaultMode: HostMode): BuildNode[] {
    for (const [key, nodeKey] of Object.entries(PER_NODE_KEYS).filter(([key]) => r.isSet(key))) {
        const setNode = nodeKey === "privateKey" ? "--secret --path 'nodes[0].privateKey' < ~/.ssh/id_ed25519"
            : `--path 'nodes[0].${nodeKey}' ${NODE_EXAMPLE_VALUES[nodeKey]}`;
        r.problem(key, `is a setting of a single host; with nodes, each node has its own: nodes[N].${nodeKey}`,
            `${setNode}; pulumi config rm ${key}`);
    }
    const defaultInstanceType = r.matching("instanceType", INSTANCE_TYPE, "must be an EC2 instance type",
        "instanceType c7i.xlarge", DEFAULTS.instanceType)!;
    const names = new Set<string>();
    const nodes = nodeReaders(r).map(n => ({ index: n.index, ...readNode(n, defaultMode, defaultInstanceType, names) }));

    const ec2Nodes = nodes.some(node => node.target.mode === "ec2");
    const ec2Shared = ec2Nodes ? readEc2Shared(r) : undefined;
    const idle = EC2_ONLY_KEYS.filter(key => !(key in PER_NODE_KEYS) && r.isSet(key));
    if (!ec2Nodes && idle.length > 0) {
        r.problem(idle[0], `${idle.length === 1 ? "is a setting" : `and ${idle.slice(1).join(", ")} are settings`} of ec2 nodes, ` +
            "but no node is in ec2 mode", `--path 'nodes[0].mode' ec2, or remove them: pulumi config rm ${idle[0]}`);
    }

    // Unset, the fleet builds the default platforms and whatever a node's own list adds.
    const listed = nodes.flatMap(node => node.platforms ?? []);
    const requested = r.isSet("platforms") ? readPlatforms(r) : [...new Set([...DEFAULTS.platforms, ...listed])];
    for (const node of nodes) {
        for (const platform of (node.platforms ?? []).filter(p => !requested.includes(p))) {
            r.problem(`nodes[${node.index}].platforms`, `has "${platform}", which platforms does not list; the fleet builds what platforms lists`,
                `--path 'platforms[${requested.length}]' ${platform}`);
        }
    }
    const routing = routePlatforms(requested, nodes);
    for (const problem of routing.problems) {
        r.problem(problem.key, problem.why, problem.example);
    }

    const existingUsers = nodes.flatMap(node => node.target.mode === "existing" ? [node.target.existingHost.user] : []);
    const common = readCommonSettings(r, existingUsers);
    return nodes.map((node, index): BuildNode => {
        const platforms = routing.served[index];
        if (node.target.mode === "existing") {
            return { name: node.name, host: { ...common, platforms, ...node.target }, privateKey: { node: node.index } };
        }
        return {
            name: node.name,
            host: { ...common, platforms, mode: "ec2", ec2: { ...node.target.ec2, ...ec2Shared! } },
            privateKey: ec2Shared!.loginKeyProvided ? "loginPrivateKey" : undefined,
        };
    });
}

/**
 * Parses and validates the configuration; throws one ConfigError listing every problem.
 * `secretKeys`: the settings the stack stores encrypted (Pulumi's runtime knows); unset, every
 * secret setting is taken to be stored encrypted.
 */
export function parseConfig(raw: RawConfig, secretKeys?: readonly string[]): StackConfig {
    const r = new Reader(raw, secretKeys);
    for (const key of Object.keys(raw)) {
        if (!(KNOWN_KEYS as readonly string[]).includes(key)) {
            const suggestion = KNOWN_KEYS.find(k => k.toLowerCase() === key.toLowerCase());
            r.problems.push(`buildx-host:${key} is not a setting of this project` +
                (suggestion ? `; did you mean ${suggestion}?` : `; known settings: ${KNOWN_KEYS.join(", ")}`));
        }
    }
    const mode = readHostMode(r);
    const fleet = r.isSet("nodes");
    const nodes = mode === undefined ? [] : fleet ? readFleet(r, mode) : [readSingleHost(r, mode)];
    if (r.problems.length > 0 || mode === undefined) {
        throw new ConfigError(r.problems);
    }
    return { fleet, nodes };
}

/** The value of a private key setting parseConfig accepted; a secret, to be wrapped with `pulumi.secret` where it is read. */
export function privateKeyValue(raw: RawConfig, setting: PrivateKeySetting): string {
    if (typeof setting === "string") {
        return raw[setting]!;
    }
    return (JSON.parse(raw.nodes!) as Record<string, string>[])[setting.node].privateKey;
}
