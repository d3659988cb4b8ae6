import { execFileSync } from "child_process";
import { mkdtempSync, readFileSync, rmSync } from "fs";
import * as yaml from "js-yaml";
import { tmpdir } from "os";
import * as path from "path";

import {
    architectureOfInstanceType, BuildHostConfig, DEFAULTS, documentationRange, Ec2Settings, ExistingHostSettings, isCidr, isEncryptedPrivateKey, isSshPublicKey,
    KNOWN_KEYS, RawConfig,
} from "../../components/config";
import { BUILDKIT_IMAGE, STEP_DEFAULTS } from "../../components/host-facts";
import { hostStepDefinitions } from "../../components/steps";
import { configProblems, hostConfig } from "../config-problems";

const ROOT = path.join(__dirname, "..", "..");
const ALICE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICMuitBm3Na3mokQbnQlnPS+q4yZBeoCIqm3SvbczITp alice@laptop";
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF";
const PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END OPENSSH PRIVATE KEY-----\n";

/** An ed25519 key made by `ssh-keygen -N passphrase` (its cipher field says aes256-ctr). */
const ENCRYPTED_OPENSSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\n" +
    Buffer.concat([Buffer.from("openssh-key-v1\0"), Buffer.from([0, 0, 0, 10]), Buffer.from("aes256-ctr"), Buffer.alloc(64)]).toString("base64") +
    "\n-----END OPENSSH PRIVATE KEY-----\n";

/** The settings of the mode parseConfig chose; throws when it chose the other one. */
function ec2Settings(config: BuildHostConfig): Ec2Settings {
    if (config.mode !== "ec2") {
        throw new Error(`expected ec2 mode, got ${config.mode}`);
    }
    return config.ec2;
}

function existingHostSettings(config: BuildHostConfig): ExistingHostSettings {
    if (config.mode !== "existing") {
        throw new Error(`expected existing mode, got ${config.mode}`);
    }
    return config.existingHost;
}

const EC2: RawConfig = { allowedSshCidrs: JSON.stringify(["10.20.0.0/16"]) };
const EXISTING: RawConfig = {
    hostMode: "existing",
    existingHostAddress: "build1.example.com",
    existingHostUser: "builder",
    existingHostPrivateKey: PRIVATE_KEY,
    existingHostPublicKey: HOST_KEY,
};

describe("parseConfig defaults", () => {
    test("ec2 mode fills every default", () => {
        const config = hostConfig(EC2);
        expect(config.mode).toBe("ec2");
        expect(ec2Settings(config)).toEqual({
            instanceType: "c7i.xlarge", architecture: "amd64", ubuntuRelease: "24.04", ubuntuAmiSerial: undefined,
            rootVolumeSizeGb: 100, allowedSshCidrs: ["10.20.0.0/16"], subnetId: undefined, loginKeyProvided: false, spot: false,
        });
        expect("existingHost" in config).toBe(false);
        expect(config.platforms).toEqual(["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x", "linux/riscv64"]);
        expect(config.buildkitImage).toBe(BUILDKIT_IMAGE);
        expect(config.buildkitGc).toEqual({ reservedSpace: "10%", maxUsedSpace: "70%", minFreeSpace: "20%" });
        expect(config.dockerAptRepo).toBe("https://download.docker.com/linux");
        expect(config.team).toEqual([]);
    });

    test("cacheVolumeSizeGb makes a cache volume, retained unless retainCacheVolume is false; 0 makes none", () => {
        expect(ec2Settings(hostConfig({ ...EC2, cacheVolumeSizeGb: "100" })).cacheVolume).toEqual({ sizeGb: 100, retain: true });
        expect(ec2Settings(hostConfig({ ...EC2, cacheVolumeSizeGb: "100", retainCacheVolume: "false" })).cacheVolume).toEqual({ sizeGb: 100, retain: false });
        expect(ec2Settings(hostConfig({ ...EC2, cacheVolumeSizeGb: "0" })).cacheVolume).toBeUndefined();
        expect("cacheVolume" in ec2Settings(hostConfig(EC2))).toBe(false);
    });

    test("existing mode needs no AWS settings and keeps the host key without its comment", () => {
        const config = hostConfig({ ...EXISTING, existingHostPublicKey: `${HOST_KEY} root@build1`, existingHostPort: "2222" });
        expect("ec2" in config).toBe(false);
        expect(existingHostSettings(config)).toEqual({ address: "build1.example.com", port: 2222, user: "builder", hostPublicKey: HOST_KEY });
    });

    test("Graviton instance types derive arm64, others amd64", () => {
        for (const type of ["c7g.xlarge", "m7gd.2xlarge", "t4g.small", "a1.large", "c7gn.medium", "im4gn.large", "c8g.4xlarge"]) {
            expect([type, architectureOfInstanceType(type)]).toEqual([type, "arm64"]);
        }
        for (const type of ["c7i.xlarge", "m7a.large", "t3.micro", "g5.xlarge", "p4d.24xlarge", "inf2.xlarge"]) {
            expect([type, architectureOfInstanceType(type)]).toEqual([type, "amd64"]);
        }
        expect(ec2Settings(hostConfig({ ...EC2, instanceType: "m7g.large" })).architecture).toBe("arm64");
    });

    test("team entries become members, a trailing slash leaves the repo URL", () => {
        const config = hostConfig({ ...EC2, team: JSON.stringify([`alice ${ALICE_KEY}`]), dockerAptRepo: "https://mirror.example.com/docker/" });
        expect(config.team).toEqual([{ name: "alice", keys: [{ sshPublicKey: ALICE_KEY, from: [] }] }]);
        expect(config.dockerAptRepo).toBe("https://mirror.example.com/docker");
    });

    test("0.0.0.0/0 is accepted with the explicit opt-in", () => {
        const config = hostConfig({ ...EC2, allowedSshCidrs: JSON.stringify(["0.0.0.0/0"]), allowOpenSsh: "true" });
        expect(ec2Settings(config).allowedSshCidrs).toEqual(["0.0.0.0/0"]);
    });

    test("a member listed once per key gets every key; the team step receives one line per key", () => {
        const ciKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF ci@runner";
        const config = hostConfig({ ...EC2, team: JSON.stringify([`alice ${ALICE_KEY}`, `bob ${ciKey}`, `alice ${ciKey}`]) });
        expect(config.team).toEqual([
            { name: "alice", keys: [{ sshPublicKey: ALICE_KEY, from: [] }, { sshPublicKey: ciKey, from: [] }] },
            { name: "bob", keys: [{ sshPublicKey: ciKey, from: [] }] },
        ]);
        const team = hostStepDefinitions(config, "ubuntu").find(step => step.name === "team-access")!;
        expect(team.environment.TEAM_MEMBERS).toBe(`alice ${ALICE_KEY}\nalice ${ciKey}\nbob ${ciKey}`);
    });

    test("a member's key may be limited to source networks with from=, which the team step receives", () => {
        const config = hostConfig({ ...EC2, team: JSON.stringify([`ci from=192.168.7.0/24,fd12:3456::/48,10.0.0.5 ${ALICE_KEY}`]) });
        expect(config.team).toEqual([{ name: "ci", keys: [{ sshPublicKey: ALICE_KEY, from: ["192.168.7.0/24", "fd12:3456::/48", "10.0.0.5"] }] }]);
        const team = hostStepDefinitions(config, "ubuntu").find(step => step.name === "team-access")!;
        expect(team.environment.TEAM_MEMBERS).toBe(`ci from=192.168.7.0/24,fd12:3456::/48,10.0.0.5 ${ALICE_KEY}`);
    });

    test("insecure entitlements are none by default and opted in by name; Docker's apt key is pinned by fingerprint", () => {
        const defaults = hostConfig(EC2);
        expect(defaults.allowInsecureEntitlements).toEqual([]);
        expect(defaults.dockerAptKeyFingerprint).toBe(STEP_DEFAULTS.dockerAptKeyFingerprint);
        const opted = hostConfig({ ...EC2, allowInsecureEntitlements: JSON.stringify(["network.host", "security.insecure"]),
            dockerAptKeyFingerprint: "1234 5678 9abc DEF0 1234 5678 9ABC DEF0 1234 5678" });
        expect(opted.allowInsecureEntitlements).toEqual(["network.host", "security.insecure"]);
        expect(opted.dockerAptKeyFingerprint).toBe("123456789ABCDEF0123456789ABCDEF012345678");
        const builder = hostStepDefinitions(opted, "ubuntu").find(step => step.name === "buildx-builder")!;
        expect(builder.environment.BUILDKIT_INSECURE_ENTITLEMENTS).toBe("network.host security.insecure");
    });

    test("http is accepted for Docker's repository only on a loopback address (a stand-in or a local mirror)", () => {
        expect(hostConfig({ ...EC2, dockerAptRepo: "http://127.0.0.1:8765/linux" }).dockerAptRepo).toBe("http://127.0.0.1:8765/linux");
        expect(hostConfig({ ...EC2, dockerAptRepo: "http://localhost/linux" }).dockerAptRepo).toBe("http://localhost/linux");
    });

    test("Pulumi.yaml's defaults of the other mode's settings are not mistaken for settings", () => {
        const declared = (yaml.load(readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as { config: Record<string, { default: unknown }> }).config;
        const defaults = Object.fromEntries(Object.entries(declared).map(([key, { default: value }]) =>
            [key, typeof value === "string" ? value : JSON.stringify(value)]));
        expect(() => hostConfig({ ...defaults, ...EXISTING, allowedSshCidrs: "[]", architecture: "", subnetId: "" })).not.toThrow();
        expect(() => hostConfig({ ...defaults, ...EC2, existingHostAddress: "", existingHostUser: "" })).not.toThrow();
    });
});

describe("parseConfig rejects bad input, naming the key and showing an example", () => {
    /** [what is wrong, raw config, the key the message must name first, text the message must show] */
    const cases: [string, RawConfig, string, string?][] = [
        ["unknown host mode", { ...EC2, hostMode: "lxd" }, "hostMode"],
        ["malformed instance type", { ...EC2, instanceType: "huge" }, "instanceType"],
        ["unsupported Ubuntu release", { ...EC2, ubuntuRelease: "20.04" }, "ubuntuRelease"],
        ["unknown architecture", { ...EC2, architecture: "sparc" }, "architecture"],
        ["architecture disagreeing with the instance type", { ...EC2, architecture: "arm64" }, "architecture"],
        ["bad AMI serial", { ...EC2, ubuntuAmiSerial: "latest" }, "ubuntuAmiSerial"],
        ["root volume not a number", { ...EC2, rootVolumeSizeGb: "big" }, "rootVolumeSizeGb"],
        ["root volume too small", { ...EC2, rootVolumeSizeGb: "8" }, "rootVolumeSizeGb"],
        ["spot not a boolean", { ...EC2, spot: "yes" }, "spot", "Example: pulumi config set spot true"],
        ["spot on an existing server", { ...EXISTING, spot: "true" }, "spot", "is a setting of ec2 mode"],
        ["cache volume not a number", { ...EC2, cacheVolumeSizeGb: "big" }, "cacheVolumeSizeGb"],
        ["cache volume beyond gp3's 16 TiB", { ...EC2, cacheVolumeSizeGb: "16385" }, "cacheVolumeSizeGb"],
        ["retainCacheVolume not a boolean", { ...EC2, cacheVolumeSizeGb: "100", retainCacheVolume: "keep" }, "retainCacheVolume"],
        ["a cache volume in existing mode", { ...EXISTING, cacheVolumeSizeGb: "100" }, "cacheVolumeSizeGb", "is a setting of ec2 mode"],
        ["no allowedSshCidrs in ec2 mode", {}, "allowedSshCidrs"],
        ["empty allowedSshCidrs", { allowedSshCidrs: "[]" }, "allowedSshCidrs"],
        ["allowedSshCidrs not a list", { allowedSshCidrs: "10.20.0.0/16" }, "allowedSshCidrs"],
        ["invalid CIDR", { allowedSshCidrs: JSON.stringify(["10.20.0.300/24"]) }, "allowedSshCidrs[0]"],
        ["0.0.0.0/0 without opt-in", { allowedSshCidrs: JSON.stringify(["0.0.0.0/0"]) }, "allowedSshCidrs[0]", "allowOpenSsh true"],
        ["an IPv6 network, which can never reach the IPv4-only host", { allowedSshCidrs: JSON.stringify(["10.20.0.0/16", "fd12:3456::/48"]) }, "allowedSshCidrs[1]", "only an IPv4 address"],
        ["existing-mode settings while hostMode is the default ec2", { ...EC2, existingHostAddress: "build1.example.com", existingHostUser: "builder" },
            "existingHostAddress", "and existingHostUser are settings of existing mode, but hostMode is \"ec2\" (the default), which creates an EC2 instance"],
        ["ec2-mode settings left over in existing mode", { ...EXISTING, instanceType: "c7g.large", allowedSshCidrs: JSON.stringify(["10.20.0.0/16"]) },
            "instanceType", "and allowedSshCidrs are settings of ec2 mode, but they do nothing in existing mode"],
        ["host mode in the wrong case", { ...EXISTING, hostMode: "Existing" }, "hostMode", "(did you mean existing?)"],
        ["a passphrase-protected OpenSSH key", { ...EXISTING, existingHostPrivateKey: ENCRYPTED_OPENSSH_KEY }, "existingHostPrivateKey", "ssh-keygen -p -N '' -f COPY"],
        ["a passphrase-protected PEM key", { ...EXISTING, existingHostPrivateKey: "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMIIE\n-----END RSA PRIVATE KEY-----\n" }, "existingHostPrivateKey", "passphrase"],
        ["a host key pasted with the host name in front", { ...EXISTING, existingHostPort: "2222", existingHostPublicKey: `[build1.example.com]:2222 ${HOST_KEY}` },
            "existingHostPublicKey", "ssh-keyscan -p 2222 -t ed25519 build1.example.com | cut -d' ' -f2-"],
        ["an RSA host key, which the connection could only check with SHA-1", { ...EXISTING, existingHostPublicKey: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7" }, "existingHostPublicKey", "pin the server's ed25519"],
        ["Docker's repo URL with the distro path", { ...EC2, dockerAptRepo: "https://download.docker.com/linux/ubuntu" }, "dockerAptRepo", "dockerAptRepo https://download.docker.com/linux"],
        ["docker-ce version without the package revision", { ...EC2, dockerCeVersion: "28.5.2" }, "dockerCeVersion", "5:28.5.2-1~ubuntu.24.04~noble"],
        ["allowOpenSsh not a boolean", { ...EC2, allowOpenSsh: "yes" }, "allowOpenSsh"],
        ["malformed subnet id", { ...EC2, subnetId: "my-subnet" }, "subnetId"],
        ["login key not a private key", { ...EC2, loginPrivateKey: "ssh-ed25519 AAAA" }, "loginPrivateKey"],
        ["login key in PEM format", { ...EC2, loginPrivateKey: "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n" }, "loginPrivateKey", "ssh-keygen -p -f KEY"],
        ["team member with an invalid user name", { ...EC2, team: JSON.stringify([`Alice ${ALICE_KEY}`]) }, "team[0]"],
        ["team member named like a system account", { ...EC2, team: JSON.stringify([`root ${ALICE_KEY}`]) }, "team[0]"],
        ["team member with a broken key", { ...EC2, team: JSON.stringify(["alice ssh-ed25519 AAAAnotakey"]) }, "team[0]"],
        ["team member without a key", { ...EC2, team: JSON.stringify(["alice"]) }, "team[0]"],
        ["team member listed twice with the same key", { ...EC2, team: JSON.stringify([`alice ${ALICE_KEY}`, `alice ${ALICE_KEY} other comment`]) }, "team[1]"],
        ["docker repo not a URL", { ...EC2, dockerAptRepo: "download.docker.com" }, "dockerAptRepo"],
        ["docker repo over plain http on a non-loopback address", { ...EC2, dockerAptRepo: "http://mirror.example.com/docker" }, "dockerAptRepo",
            "dockerAptRepo https://mirror.example.com/docker"],
        ["apt key fingerprint too short", { ...EC2, dockerAptKeyFingerprint: "0EBFCD88" }, "dockerAptKeyFingerprint", STEP_DEFAULTS.dockerAptKeyFingerprint],
        ["an unknown insecure entitlement", { ...EC2, allowInsecureEntitlements: JSON.stringify(["network.host", "device"]) }, "allowInsecureEntitlements",
            "--path 'allowInsecureEntitlements[0]' network.host"],
        ["insecure entitlements not a list", { ...EC2, allowInsecureEntitlements: "network.host" }, "allowInsecureEntitlements"],
        ["team member's from= not addresses", { ...EC2, team: JSON.stringify([`ci from=*.example.com ${ALICE_KEY}`]) }, "team[0]", "from=10.1.2.3/32,192.168.7.0/24"],
        ["team member named like the member door's group", { ...EC2, team: JSON.stringify([`buildx-members ${ALICE_KEY}`]) }, "team[0]"],
        ["docker-ce version with spaces", { ...EC2, dockerCeVersion: "28 latest" }, "dockerCeVersion"],
        ["unsupported platform", { ...EC2, platforms: JSON.stringify(["linux/arm64", "windows/amd64"]) }, "platforms"],
        ["no platforms", { ...EC2, platforms: "[]" }, "platforms"],
        ["builder name with capitals", { ...EC2, builderName: "Team Builder" }, "builderName"],
        ["builder name starting with a digit", { ...EC2, builderName: "2team" }, "builderName"],
        ["team member named like the existing host's login user", { ...EXISTING, team: JSON.stringify([`builder ${ALICE_KEY}`]) }, "team[0]", "login user"],
        ["BuildKit image not pinned", { ...EC2, buildkitImage: "moby/buildkit:latest" }, "buildkitImage"],
        ["BuildKit image without a tag", { ...EC2, buildkitImage: "moby/buildkit" }, "buildkitImage"],
        ["GC size without a unit", { ...EC2, buildkitGcMaxUsedSpace: "80" }, "buildkitGcMaxUsedSpace"],
        ["timeout zero", { ...EC2, hostReadyTimeoutMinutes: "0" }, "hostReadyTimeoutMinutes"],
        ["misspelt key", { ...EC2, instancetype: "c7i.large" }, "instancetype", "did you mean instanceType?"],
        ["existing mode without an address", { ...EXISTING, existingHostAddress: undefined }, "existingHostAddress"],
        ["existing mode with a bad address", { ...EXISTING, existingHostAddress: "bad host!" }, "existingHostAddress"],
        ["existing mode address with a port", { ...EXISTING, existingHostAddress: "build1.example.com:2222" }, "existingHostAddress", "existingHostPort"],
        ["existing mode port out of range", { ...EXISTING, existingHostPort: "70000" }, "existingHostPort"],
        ["existing mode without a user", { ...EXISTING, existingHostUser: undefined }, "existingHostUser"],
        ["existing mode without a private key", { ...EXISTING, existingHostPrivateKey: undefined }, "existingHostPrivateKey"],
        ["existing mode without the host key", { ...EXISTING, existingHostPublicKey: undefined }, "existingHostPublicKey"],
        ["existing mode with a bad host key", { ...EXISTING, existingHostPublicKey: "ssh-ed25519 AAAAC3Nza" }, "existingHostPublicKey"],
    ];

    // Every row has four cells: jest would take a missing fourth argument for a `done` callback.
    test.each(cases.map(([what, raw, key, shown]) => [what, raw, key, shown ?? ""] as const))("%s", (_, raw, key, shown) => {
        const problem = configProblems(raw).find(p => p.startsWith(`buildx-host:${key} `));
        expect(problem).toBeDefined();
        expect(problem).toContain(shown || "Example: pulumi config set ");
        if (!shown) {
            expect(problem).toMatch(new RegExp(`Example: pulumi config set (--secret |--path ')?${key.replace(/[[\]]/g, "\\$&")}`));
        }
    });

    test(`covers at least 15 distinct bad inputs (${cases.length})`, () => {
        expect(new Set(cases.map(([, , key]) => key)).size).toBeGreaterThanOrEqual(15);
    });

    test("reports every problem at once", () => {
        const problems = configProblems({ hostMode: "ec2", instanceType: "huge", ubuntuRelease: "18.04", builderName: "A B", platforms: "[\"linux/vax\"]" });
        expect(problems.length).toBeGreaterThanOrEqual(5);
        const message = (() => { try { hostConfig({ instanceType: "huge" }); } catch (e) { return (e as Error).message; } return ""; })();
        expect(message).toMatch(/^Invalid buildx-host configuration \(2 problems\):\n {2}- /);
    });

    test("an invalid value is reported once, not also as missing", () => {
        const problems = configProblems({ ...EXISTING, existingHostUser: "Bad User", existingHostAddress: "bad host!" });
        expect(problems.filter(p => p.startsWith("buildx-host:existingHostUser "))).toHaveLength(1);
        expect(problems.filter(p => p.startsWith("buildx-host:existingHostAddress "))).toHaveLength(1);
    });

    test("a host mode in the wrong case is named, and no other mode's settings are judged", () => {
        expect(configProblems({ ...EXISTING, hostMode: "Existing" })).toEqual([
            "buildx-host:hostMode must be \"ec2\" or \"existing\", not \"Existing\" (did you mean existing?). Example: pulumi config set hostMode existing",
        ]);
    });

    test("a private key stored in plain text is refused, showing the --secret command, value unseen", () => {
        const problems = configProblems({ ...EC2, loginPrivateKey: PRIVATE_KEY }, ["someOtherKey"]);
        expect(problems).toEqual(["buildx-host:loginPrivateKey is stored in plain text in the stack's settings file (value not shown); " +
            "store it encrypted. Example: pulumi config set --secret loginPrivateKey < ~/.ssh/id_ed25519"]);
        expect(configProblems({ ...EXISTING, existingHostAddress: "bad host!" }, ["existingHostPrivateKey"])
            .filter(p => p.includes("plain text"))).toEqual([]);
    });

    test("never echoes a secret", () => {
        const secret = "-----BEGIN SOMETHING-----supersecretmaterial";
        const problems = configProblems({ ...EXISTING, existingHostPrivateKey: secret });
        expect(problems.join("\n")).not.toContain("supersecretmaterial");
        expect(problems.join("\n")).toContain("existingHostPrivateKey");
    });
});

describe("documentation ranges are refused: no client connects from one, so a host allowing only them locks everyone out", () => {
    const MY_ADDRESS = `"$(curl -s https://checkip.amazonaws.com)/32"`;

    test("in allowedSshCidrs, each entry named by its index, all at once, with the command that sets this machine's address", () => {
        expect(configProblems({ allowedSshCidrs: JSON.stringify(["10.20.0.0/16", "203.0.113.0/24", "198.51.100.0/25", "192.0.2.7/32"]) })).toEqual([
            ["1", "203.0.113.0/24"], ["2", "198.51.100.0/25"], ["3", "192.0.2.7/32"],
        ].map(([index, cidr]) => `buildx-host:allowedSshCidrs[${index}] has "${cidr}", a documentation range (RFC 5737): no real client has such an ` +
            `address; set your own. Example: pulumi config set --path 'allowedSshCidrs[${index}]' ${MY_ADDRESS}`));
    });

    test("allowedSshCidrs missing: the example is this machine's address, not a documentation range", () => {
        expect(configProblems({})).toEqual([`buildx-host:allowedSshCidrs is required in ec2 mode: list the networks allowed to reach SSH. ` +
            `Example: pulumi config set --path 'allowedSshCidrs[0]' ${MY_ADDRESS}`]);
    });

    test("neighbours, and wider networks that only contain a documentation range, let real clients in and are accepted", () => {
        const cidrs = ["203.0.112.0/23", "198.51.101.0/24", "192.0.3.1/32", "203.0.114.0/24", "0.0.0.0/0"];
        expect(ec2Settings(hostConfig({ allowedSshCidrs: JSON.stringify(cidrs), allowOpenSsh: "true" })).allowedSshCidrs).toEqual(cidrs);
    });

    test("in a member's from=, IPv4 (RFC 5737) and IPv6 (RFC 3849), as blocks or single addresses; the example keeps the rest of the entry", () => {
        const problems = configProblems({ ...EC2, team: JSON.stringify([`alice ${ALICE_KEY}`, `ci from=10.1.2.3,198.51.100.7 ${ALICE_KEY}`,
            `bob from=2001:db8::/48 ${ALICE_KEY}`]) });
        const refused = (index: number, name: string, from: string, rfc: string, fixed: string) => `buildx-host:team[${index}] member "${name}" ` +
            `has from=${from}, a documentation range (${rfc}): no real client has such an address, so this key could never log in; give the ` +
            "addresses the member really connects from (`curl -s https://checkip.amazonaws.com` on their machine prints theirs), or no from=. " +
            `Example: pulumi config set --path 'team[${index}]' "${fixed}"`;
        expect(problems).toEqual([
            refused(1, "ci", "198.51.100.7", "RFC 5737", `ci from=10.1.2.3 ${ALICE_KEY}`),
            refused(2, "bob", "2001:db8::/48", "RFC 3849", `bob ${ALICE_KEY}`),
        ]);
    });

    test("documentationRange names the RFC of the range a network or address lies in, and nothing for any other", () => {
        for (const [network, rfc] of [["192.0.2.0/24", "RFC 5737"], ["198.51.100.128/25", "RFC 5737"], ["203.0.113.255", "RFC 5737"],
            ["2001:db8:1::/48", "RFC 3849"], ["2001:db8::7", "RFC 3849"]]) {
            expect([network, documentationRange(network)]).toEqual([network, rfc]);
        }
        for (const network of ["192.0.0.0/16", "198.51.0.0/16", "203.0.113.0/23", "10.0.0.0/8", "203.0.114.1", "2001:db9::/32", "2001::/16", "::/0"]) {
            expect([network, documentationRange(network)]).toEqual([network, undefined]);
        }
    });
});

describe("validators", () => {
    test("CIDR blocks", () => {
        for (const good of ["10.0.0.0/8", "203.0.113.7/32", "0.0.0.0/0", "2001:db8::/32", "::/0", "fe80::1/128"]) {
            expect([good, isCidr(good)]).toEqual([good, true]);
        }
        for (const bad of ["10.0.0.0", "10.0.0.0/33", "256.0.0.0/8", "2001:db8::/129", "2001::db8::/32", "a.b.c.d/8", "/24", "fe80::1%eth0/64", "10.0.0/8"]) {
            expect([bad, isCidr(bad)]).toEqual([bad, false]);
        }
    });

    test("an existing host's address: a name, an IPv4 or an IPv6 address, never with a port", () => {
        for (const good of ["build1.example.com", "198.51.100.7", "2001:db8::7", "::1"]) {
            expect(existingHostSettings(hostConfig({ ...EXISTING, existingHostAddress: good })).address).toBe(good);
        }
        for (const bad of ["2001:db8::7:2222::", "1:2:3:4:5:6:7:8:9", "[2001:db8::7]:22"]) {
            expect([bad, configProblems({ ...EXISTING, existingHostAddress: bad }).some(p => p.startsWith("buildx-host:existingHostAddress "))])
                .toEqual([bad, true]);
        }
    });

    test("passphrase-protected private keys are told from plain ones, as ssh-keygen writes them", () => {
        const dir = mkdtempSync(path.join(tmpdir(), "keys-"));
        try {
            for (const [type, passphrase, encrypted] of [["ed25519", "", false], ["ed25519", "secret words", true],
                ["rsa", "", false], ["rsa", "secret words", true], ["ecdsa", "secret words", true]] as const) {
                const file = path.join(dir, `${type}-${encrypted}`);
                execFileSync("ssh-keygen", ["-q", "-t", type, "-N", passphrase, "-f", file]);
                expect([type, passphrase, isEncryptedPrivateKey(readFileSync(file, "utf8"))]).toEqual([type, passphrase, encrypted]);
            }
            expect(isEncryptedPrivateKey(ENCRYPTED_OPENSSH_KEY)).toBe(true);
            expect(isEncryptedPrivateKey(PRIVATE_KEY)).toBe(false);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    test("SSH public keys must carry their own type inside the blob", () => {
        expect(isSshPublicKey(ALICE_KEY)).toBe(true);
        expect(isSshPublicKey(HOST_KEY)).toBe(true);
        expect(isSshPublicKey(ALICE_KEY.replace("ssh-ed25519", "ssh-rsa"))).toBe(false);
        expect(isSshPublicKey("ssh-ed25519")).toBe(false);
        expect(isSshPublicKey("ssh-ed25519 !!!")).toBe(false);
    });
});

describe("project files", () => {
    const project = yaml.load(readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as any;

    test("Pulumi.yaml declares the same defaults as components/config", () => {
        for (const [key, value] of Object.entries(DEFAULTS)) {
            expect([key, project.config[key]?.default]).toEqual([key, value]);
        }
    });

    test("Pulumi.yaml describes every setting", () => {
        for (const [key, declaration] of Object.entries<any>(project.config)) {
            expect([key, typeof declaration.description]).toEqual([key, "string"]);
        }
    });

    test("Pulumi.yaml declares exactly the settings parseConfig knows", () => {
        expect(Object.keys(project.config).sort()).toEqual([...KNOWN_KEYS].sort());
    });

    test("the example stack Pulumi.dev.yaml lacks only allowedSshCidrs, which Quick start and the file's comment set from this machine", () => {
        const text = readFileSync(path.join(ROOT, "Pulumi.dev.yaml"), "utf8");
        const stack = (yaml.load(text) as any).config;
        const raw = Object.fromEntries(Object.entries<any>(stack)
            .filter(([key]) => key.startsWith("buildx-host:"))
            .map(([key, value]) => [key.slice("buildx-host:".length), typeof value === "string" ? value : JSON.stringify(value)]));
        const [required] = configProblems(raw);
        expect(configProblems(raw)).toEqual([required]);
        const command = /Example: (pulumi config set --path 'allowedSshCidrs\[0\]' "\$\(curl -s https:\/\/checkip\.amazonaws\.com\)\/32")$/.exec(required)![1];
        expect(required).toMatch(/^buildx-host:allowedSshCidrs is required in ec2 mode/);
        expect(text).toContain(`#   ${command}\n`);
        expect(readFileSync(path.join(ROOT, "README.md"), "utf8")).toContain(`\n${command}\n`);
        expect(stack["aws:region"]).toMatch(/^[a-z]{2}-[a-z]+-\d$/);
        // An example must never grant access: whoever uses it adds their own keys.
        const config = hostConfig({ ...raw, allowedSshCidrs: JSON.stringify(["10.20.0.0/16"]) });
        expect(config.team).toEqual([]);
        expect(ec2Settings(config).loginKeyProvided).toBe(false);
    });
});
