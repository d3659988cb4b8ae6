/**
 * BuildKit's GC limits against the disk: at preview for EC2 hosts (rootVolumeSizeGb), on the host
 * for existing ones (buildx-builder.sh, tests/unit/scripts.test.ts). Every problem names the keys and
 * its example, pasted, makes the stack valid.
 */
import { ConfigError, parseConfig, RawConfig } from "../../components/config";
import { gcLimitBytes, ROOT_VOLUME_ROOM_GIB } from "../../components/config/buildkit-gc";
import { hostConfig } from "../config-problems";

const GIB = 1024 ** 3;
const EC2: RawConfig = { allowedSshCidrs: JSON.stringify(["10.20.0.0/16"]) };
const EXISTING: RawConfig = {
    hostMode: "existing", existingHostAddress: "build1.example.com", existingHostUser: "builder",
    existingHostPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END OPENSSH PRIVATE KEY-----\n",
    existingHostPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF",
};

/** The problems about GC limits, and the stack with the first one's example applied (`pulumi config set KEY VALUE`). */
function gcProblems(raw: RawConfig): { problems: string[]; fixed: RawConfig } {
    let problems: string[] = [];
    try {
        parseConfig(raw);
    } catch (error) {
        problems = (error as ConfigError).problems.filter(p => /buildkitGc/.test(p));
    }
    const example = /Example: pulumi config set (\w+) (\S+)$/.exec(problems[0] ?? "");
    return { problems, fixed: example ? { ...raw, [example[1]]: example[2] } : raw };
}

test("limits are read as BuildKit reads them: 1024-based sizes, percentages rounded up to whole GiB in 10^9 bytes", () => {
    expect(gcLimitBytes("70GB", 0)).toBe(70 * GIB);
    expect(gcLimitBytes("512MiB", 0)).toBe(512 * 1024 ** 2);
    expect(gcLimitBytes("1.5TB", 0)).toBe(1.5 * 1024 ** 4);
    expect(gcLimitBytes("300B", 0)).toBe(300);
    // gcpolicy.go AsBytes: (total*p/100 / GiB + 1) * 1e9
    expect(gcLimitBytes("60%", 100 * GIB)).toBe(61e9);
    expect(gcLimitBytes("10%", 5 * GIB)).toBe(1e9);
});

describe("ec2 mode with a cache volume: the limits must fit on it instead", () => {
    test("a small root volume is fine: the cache is not on it; the cache volume less 1 GiB for the rest of Docker's data root counts", () => {
        expect(gcProblems({ ...EC2, rootVolumeSizeGb: "30", cacheVolumeSizeGb: "200" }).problems).toEqual([]);
        // Without the cache volume the same root volume could not hold the default limits.
        expect(gcProblems({ ...EC2, rootVolumeSizeGb: "30" }).problems).toHaveLength(1);
        const { problems, fixed } = gcProblems({ ...EC2, cacheVolumeSizeGb: "40", buildkitGcMaxUsedSpace: "35GB", buildkitGcMinFreeSpace: "5GB" });
        expect(problems).toEqual([expect.stringMatching(/^buildx-host:buildkitGcMaxUsedSpace \(35GB\) and buildkitGcMinFreeSpace \(5GB\) do not fit together on the 40 GiB cache volume \(cacheVolumeSizeGb\) beside the 1 GiB the rest of Docker needs.*Example: pulumi config set buildkitGcMaxUsedSpace 34GB$/)]);
        expect(() => parseConfig(fixed)).not.toThrow();
    });

    test("a cache volume too small even for minFreeSpace: the example grows the cache volume", () => {
        const { problems, fixed } = gcProblems({ ...EC2, cacheVolumeSizeGb: "4", buildkitGcMaxUsedSpace: "10GB", buildkitGcMinFreeSpace: "5GB" });
        expect(problems[0]).toMatch(/Example: pulumi config set cacheVolumeSizeGb 16$/);
        expect(() => parseConfig(fixed)).not.toThrow();
    });
});

describe("ec2 mode: the limits must fit on the root volume", () => {
    test("the defaults, shares of the disk, fit the default volume with the system's room to spare", () => {
        const config = hostConfig(EC2);
        expect(config.mode === "ec2" && config.ec2.rootVolumeSizeGb).toBe(100);
        expect(config.buildkitGc).toEqual({ reservedSpace: "10%", maxUsedSpace: "70%", minFreeSpace: "20%" });
        // 70% and 20% of 100 GiB: 71e9 + 21e9 bytes, 85.7 GiB
        expect(gcLimitBytes("70%", 100 * GIB) + gcLimitBytes("20%", 100 * GIB)).toBeLessThanOrEqual((100 - ROOT_VOLUME_ROOM_GIB) * GIB);
    });

    test("maxUsedSpace and minFreeSpace beyond the volume less the system's room: named, with a maxUsedSpace that fits", () => {
        const { problems, fixed } = gcProblems({ ...EC2, buildkitGcMaxUsedSpace: "80GB", buildkitGcMinFreeSpace: "20GB" });
        expect(problems).toEqual([expect.stringMatching(/^buildx-host:buildkitGcMaxUsedSpace \(80GB\) and buildkitGcMinFreeSpace \(20GB\) do not fit together on the 100 GiB root volume \(rootVolumeSizeGb\) beside the 10 GiB the system needs.*Example: pulumi config set buildkitGcMaxUsedSpace 70GB$/)]);
        expect(() => parseConfig(fixed)).not.toThrow();
    });

    test("a volume too small even for minFreeSpace: the example grows the volume", () => {
        const { problems, fixed } = gcProblems({ ...EC2, rootVolumeSizeGb: "25", buildkitGcMaxUsedSpace: "70GB", buildkitGcMinFreeSpace: "20GB" });
        expect(problems).toHaveLength(1);
        expect(problems[0]).toMatch(/Example: pulumi config set rootVolumeSizeGb 100$/);
        expect(() => parseConfig(fixed)).not.toThrow();
    });

    test("percentages count against the volume as BuildKit counts them against its filesystem", () => {
        // 80% and 20% of 100 GiB: 81e9 + 21e9 bytes, 95 GiB, more than 90
        expect(gcProblems({ ...EC2, buildkitGcMaxUsedSpace: "80%" }).problems).toHaveLength(1);
        expect(gcProblems({ ...EC2, rootVolumeSizeGb: "60" }).problems).toEqual([expect.stringMatching(/Example: pulumi config set buildkitGcMaxUsedSpace 37GB$/)]);
        expect(gcProblems({ ...EC2, rootVolumeSizeGb: "500", buildkitGcMaxUsedSpace: "400GB", buildkitGcMinFreeSpace: "10%" }).problems).toEqual([]);
    });

    test("a fleet's ec2 nodes share the volume size and the limits", () => {
        const nodes = JSON.stringify([{ name: "amd64", instanceType: "c7i.xlarge" }, { name: "graviton", instanceType: "c7g.xlarge" }]);
        const { problems, fixed } = gcProblems({ ...EC2, nodes, rootVolumeSizeGb: "60", buildkitGcMaxUsedSpace: "40GB", buildkitGcMinFreeSpace: "20GB" });
        expect(problems).toEqual([expect.stringMatching(/^buildx-host:buildkitGcMaxUsedSpace \(40GB\) .* 60 GiB root volume .*Example: pulumi config set buildkitGcMaxUsedSpace 30GB$/)]);
        expect(() => parseConfig(fixed)).not.toThrow();
    });
});

describe("any mode: reservedSpace above maxUsedSpace would override the cap", () => {
    test.each([["ec2", EC2], ["existing", EXISTING]])("%s mode: named, with a reservedSpace below the cap", (_, mode) => {
        const { problems, fixed } = gcProblems({ ...mode, buildkitGcReservedSpace: "75GB", buildkitGcMaxUsedSpace: "60GB" });
        expect(problems).toEqual([expect.stringMatching(/^buildx-host:buildkitGcReservedSpace \(75GB\) is above buildkitGcMaxUsedSpace \(60GB\).*Example: pulumi config set buildkitGcReservedSpace 7GB$/)]);
        expect(() => parseConfig(fixed)).not.toThrow();
    });

    test("two percentages compare on any disk; a percentage against a size waits for the host's disk in existing mode", () => {
        expect(gcProblems({ ...EXISTING, buildkitGcReservedSpace: "50%", buildkitGcMaxUsedSpace: "40%" }).problems).toHaveLength(1);
        expect(() => parseConfig({ ...EXISTING, buildkitGcReservedSpace: "50%", buildkitGcMaxUsedSpace: "1GB" })).not.toThrow();
    });

    test("existing mode: limits larger than any volume are left to the host's check", () => {
        expect(() => parseConfig({ ...EXISTING, buildkitGcMaxUsedSpace: "900GB", buildkitGcMinFreeSpace: "200GB" })).not.toThrow();
    });
});
