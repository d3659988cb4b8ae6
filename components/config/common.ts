/** What every host of a stack shares: the team, Docker's repository, the platforms, the builder and BuildKit. */
import { EMULATED_PLATFORMS, emulatorOf, PATTERNS } from "../host-facts";
import { readBuildkitGc } from "./buildkit-gc";
import { Reader } from "./reader";
import { CommonSettings, DEFAULTS, INSECURE_ENTITLEMENTS, InsecureEntitlement } from "./settings";
import { readTeam } from "./team";

/** Docker's apt repository root, without the distro path the docker-engine step appends. */
function readDockerAptRepo(r: Reader): string {
    const repo = r.matching("dockerAptRepo", /^https?:\/\/[A-Za-z0-9.-]+(:\d+)?(\/[A-Za-z0-9._~%/-]*)?$/,
        "must be an http(s) URL of a Docker apt repository root", "dockerAptRepo https://download.docker.com/linux",
        DEFAULTS.dockerAptRepo)!.replace(/\/+$/, "");
    // Plain http only for a stand-in on this very host: anything else could be answered by the network.
    const host = /^https?:\/\/([^/:]+)/.exec(repo)?.[1] ?? "";
    if (repo.startsWith("http://") && !/^(127\.\d+\.\d+\.\d+|localhost)$/.test(host)) {
        r.problem("dockerAptRepo", "must be an https URL (http only on a loopback address such as 127.0.0.1): " +
            "apt would otherwise fetch the Docker packages over a connection anyone on the path can change",
            `dockerAptRepo ${repo.replace(/^http:/, "https:")}`);
    }
    const distro = /\/(ubuntu|debian)$/.exec(repo);
    if (distro) {
        const root = repo.slice(0, -distro[0].length);
        r.problem("dockerAptRepo", `ends with "${distro[0]}", the distro path the host's own release adds; give the root`,
            `dockerAptRepo ${root}`);
    }
    return repo;
}

/** The fingerprint the repository's key must have: 40 hex digits, spaces allowed as Docker prints them. */
function readDockerAptKeyFingerprint(r: Reader): string {
    const value = r.matching("dockerAptKeyFingerprint", /^[0-9A-Fa-f]{4}( ?[0-9A-Fa-f]{4}){9}$/,
        "must be the repository key's full fingerprint, 40 hex digits (`gpg --show-keys KEYFILE`)",
        `dockerAptKeyFingerprint '${DEFAULTS.dockerAptKeyFingerprint}'`, DEFAULTS.dockerAptKeyFingerprint)!;
    return value.replace(/ /g, "").toUpperCase();
}

/** The insecure entitlements the stack opts in to: none unless listed. */
function readInsecureEntitlements(r: Reader): readonly InsecureEntitlement[] {
    const example = "--path 'allowInsecureEntitlements[0]' network.host";
    const listed = r.stringList("allowInsecureEntitlements", DEFAULTS.allowInsecureEntitlements, example);
    const unknown = listed.filter(e => !(INSECURE_ENTITLEMENTS as readonly string[]).includes(e));
    if (unknown.length > 0) {
        r.problem("allowInsecureEntitlements", `has ${unknown.map(e => `"${e}"`).join(", ")}; BuildKit's insecure entitlements are ` +
            INSECURE_ENTITLEMENTS.join(", "), example);
    }
    return [...new Set(listed.filter((e): e is InsecureEntitlement => (INSECURE_ENTITLEMENTS as readonly string[]).includes(e)))];
}

/** The platforms `key` lists, each one QEMU can emulate; `fallback` when it is unset. */
export function readPlatforms(r: Reader, fallback: readonly string[] = DEFAULTS.platforms): readonly string[] {
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

/** A week: longer than that, a host is not idle in any useful sense. */
const IDLE_STOP_MAX_MINUTES = 7 * 24 * 60;

/** `idleStopMinutes`: the stack's, or a node's own (read with the stack's as `fallback`). */
export function readIdleStopMinutes(r: Reader, fallback: number = DEFAULTS.idleStopMinutes): number {
    return r.integer("idleStopMinutes", fallback, 0, IDLE_STOP_MAX_MINUTES, "idleStopMinutes 60");
}

/** What every host of the stack shares; `loginUsers`: the existing hosts' users, which no member may take. */
export function readCommonSettings(r: Reader, loginUsers: readonly string[]): Omit<CommonSettings, "platforms"> {
    return {
        team: readTeam(r, loginUsers),
        dockerAptRepo: readDockerAptRepo(r),
        dockerAptKeyFingerprint: readDockerAptKeyFingerprint(r),
        // Docker's packages always carry a Debian revision ("-1~ubuntu.24.04~noble"); "28.5.2" alone is no apt version.
        dockerCeVersion: r.matching("dockerCeVersion", /^(\d+:)?\d[A-Za-z0-9.+~]*-[A-Za-z0-9.+~]+$/,
            "must be an exact apt version as `apt-cache madison docker-ce` prints it, with its revision",
            "dockerCeVersion '5:28.5.2-1~ubuntu.24.04~noble'"),
        builderName: r.matching("builderName", new RegExp(PATTERNS.builderName),
            "must start with a lowercase letter, then lowercase letters, digits, _ and - (a buildx builder name)", "builderName team-builder",
            DEFAULTS.builderName)!,
        buildkitImage: r.matching("buildkitImage", /^[a-z0-9][a-z0-9._/:-]*(:(?!latest$)[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$/,
            "must be an image pinned by a version tag (not latest) or a digest", `buildkitImage ${DEFAULTS.buildkitImage}`,
            DEFAULTS.buildkitImage)!,
        allowInsecureEntitlements: readInsecureEntitlements(r),
        buildkitGc: readBuildkitGc(r),
        hostReadyTimeoutMinutes: r.integer("hostReadyTimeoutMinutes", DEFAULTS.hostReadyTimeoutMinutes, 1, 120,
            "hostReadyTimeoutMinutes 20"),
        idleStopMinutes: readIdleStopMinutes(r),
    };
}
