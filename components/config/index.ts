/**
 * Parses and validates the `buildx-host:*` stack configuration.
 *
 * Every key is checked and every problem is reported in one error, each line naming the key,
 * what is wrong and a valid example, so a bad stack fails at preview time before any host is touched.
 * Nothing here touches Pulumi: the host lab builds its configuration with the same function.
 * One module per area: settings (types, defaults), ec2, existing-host, team, common, fleet.
 */
import { checkGcFitsDisk, dataRootDisk } from "./buildkit-gc";
import { readCommonSettings, readPlatforms } from "./common";
import { EC2_NODE_DEFAULTS, readEc2Node, readEc2Shared } from "./ec2";
import { readExistingHostSettings, SINGLE_HOST_KEYS } from "./existing-host";
import { readFleet } from "./fleet";
import { ConfigError, Reader } from "./reader";
import {
    BuildNode, DEFAULTS, EC2_ONLY_KEYS, EXISTING_ONLY_KEYS, FLEET_FALLBACKS, HostMode, KNOWN_KEYS, PrivateKeySetting, RawConfig, StackConfig,
} from "./settings";

export { DEFAULTS, KNOWN_KEYS, SECRET_KEYS } from "./settings";
export type {
    BuildHostConfig, BuildkitGcLimits, BuildNode, CacheVolumeSettings, CommonSettings, Ec2Settings, ExistingHostSettings, FleetFallback, HostMode, PrivateKeySetting,
    RawConfig, StackConfig, TeamMember, UbuntuRelease,
} from "./settings";
export { ConfigError } from "./reader";
export { architectureOfInstanceType } from "./ec2";
export { documentationRange, isCidr, isOpenToWorld } from "./networks";
export { isEncryptedPrivateKey, isSshPublicKey } from "./ssh-keys";

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

/** The one host a stack without `nodes` describes. */
function readSingleHost(r: Reader, mode: HostMode): BuildNode {
    refuseOtherModeKeys(r, mode);
    if (mode === "existing") {
        const existingHost = readExistingHostSettings(r, SINGLE_HOST_KEYS);
        const common = { ...readCommonSettings(r, [existingHost.user]), platforms: readPlatforms(r) };
        checkGcFitsDisk(r, common.buildkitGc);
        return { host: { ...common, mode, existingHost }, privateKey: "existingHostPrivateKey" };
    }
    const ec2 = { ...readEc2Node(r, EC2_NODE_DEFAULTS), ...readEc2Shared(r) };
    const common = { ...readCommonSettings(r, []), platforms: readPlatforms(r) };
    checkGcFitsDisk(r, common.buildkitGc, dataRootDisk(ec2));
    return { host: { ...common, mode, ec2 }, privateKey: ec2.loginKeyProvided ? "loginPrivateKey" : undefined };
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
    const fleetFallback = r.oneOf("fleetFallback", FLEET_FALLBACKS, DEFAULTS.fleetFallback, "fleetFallback emulate");
    if (!fleet && fleetFallback !== DEFAULTS.fleetFallback) {
        r.problem("fleetFallback", "is a setting of a fleet (a client attaching to nodes), but the stack lists no `nodes`",
            "--path 'nodes[0].name' amd64 (a fleet), or remove it: pulumi config rm fleetFallback");
    }
    if (r.problems.length > 0 || mode === undefined) {
        throw new ConfigError(r.problems);
    }
    return { fleet, nodes, fleetFallback };
}

/** The value of a private key setting parseConfig accepted; a secret, to be wrapped with `pulumi.secret` where it is read. */
export function privateKeyValue(raw: RawConfig, setting: PrivateKeySetting): string {
    if (typeof setting === "string") {
        return raw[setting]!;
    }
    return (JSON.parse(raw.nodes!) as Record<string, string>[])[setting.node].privateKey;
}
