/**
 * Disk pressure: BuildKit's garbage collection on a host whose Docker data root is a small
 * filesystem. A 1.5 GiB tmpfs mounted as the host's /var/lib/docker stands in for a small disk
 * (run.sh's `disk` suite, HOSTLAB_DOCKER_ROOT_SIZE in infra/start-host.sh); BuildKit's cache volume
 * lives there, as on a real host. Small GC limits are set as a user would (existing mode), and
 * builds go through the member door, each adding a distinct layer of random bytes.
 *
 * When BuildKit collects (moby/buildkit v0.34 control/control.go): 1 s after each build ends, but at
 * most once a minute (`throttle.After(time.Minute, c.gc)`). So between two runs the cache grows by
 * what builds add in up to a minute; each run brings it under maxUsedSpace, and lower while less
 * than minFreeSpace is free (cache/manager.go calculateKeepBytes), never below reservedSpace.
 */
import { writeFileSync } from "fs";
import * as path from "path";

import { buildkitContainerName, knownHostsLine, memberBuildxCreateCommand } from "../../components/endpoint";
import { hostStepDefinitions } from "../../components/steps";
import { LabClient, waitFor } from "./client";
import {
    expectStepOk, labAptSettings, labConfig, loadBuildkitImage, logDirectory, memberKey, readLabHost, requiredEnv, RunResult, runStep,
    sudoOk, tail, teamEntry,
} from "./lab";

const lab = readLabHost(requiredEnv("HOSTLAB_ENV_FILE"));
const MEMBER = "alice";
const MIB = 1024 ** 2;
/** The GC limits, in MiB (BuildKit reads "128MB" as 128 MiB). */
const GC = { reservedSpace: 32, maxUsedSpace: 128, minFreeSpace: 256 };
/** What each build of the stream adds. */
const LAYER_MIB = 16;
/** How long after a build ends BuildKit has collected for sure: the minute's throttle, the 1 s delay, a run's own time. */
const GC_WINDOW_SECONDS = 63;
/** BuildKit's own records per build (the build's context and Dockerfile), beside its layer. */
const RECORDS_MIB_PER_BUILD = 1;

const config = labConfig(lab, {
    team: JSON.stringify([teamEntry(lab, MEMBER)]), ...labAptSettings(),
    buildkitGcReservedSpace: `${GC.reservedSpace}MB`, buildkitGcMaxUsedSpace: `${GC.maxUsedSpace}MB`, buildkitGcMinFreeSpace: `${GC.minFreeSpace}MB`,
});
const steps = hostStepDefinitions(config, lab.user);
const endpoint = { host: lab.host, port: lab.port, user: lab.user, hostPublicKey: lab.hostPublicKey, builderName: config.builderName };
const client = new LabClient(lab, requiredEnv("HOSTLAB_CLIENT_IMAGE"), requiredEnv("HOSTLAB_BUSYBOX_DIR"), knownHostsLine(endpoint));
const BUILDKIT = buildkitContainerName(config.builderName);
const DATA_ROOT = "/var/lib/docker";
const FILLER = `${DATA_ROOT}/buildx-host-lab-filler`;
const figures: string[] = [];

/** BuildKit's cache as `buildctl du` reports it on the host, in the BuildKit container: every record's size, in MiB. */
function cacheMib(): number {
    const records = JSON.parse(sudoOk(lab, `docker exec ${BUILDKIT} buildctl du --format '{{json .}}' </dev/null`)) as { size: number }[] | null;
    return (records ?? []).reduce((sum, record) => sum + Math.max(record.size, 0), 0) / MIB;
}

/** Free space of the data root's filesystem as BuildKit's GC reads it (statfs: free blocks), in MiB. */
function freeMib(): number {
    const [free, blockSize] = sudoOk(lab, `stat -f -c '%f %S' ${DATA_ROOT}`).trim().split(" ").map(Number);
    return free * blockSize / MIB;
}

/** A member's build whose one RUN step writes `mib` MiB of random bytes to /<label>: a layer no other build has. */
function buildLayer(label: string, mib: number): RunResult {
    return client.buildDockerfile(MEMBER, label, [
        "FROM scratch",
        "COPY busybox /bin/busybox",
        `RUN ["/bin/busybox", "sh", "-c", "/bin/busybox head -c ${mib * MIB} /dev/urandom > /${label}"]`,
        "",
    ].join("\n"));
}

function note(line: string): void {
    figures.push(line);
    console.log(line);
}

afterAll(() => writeFileSync(path.join(logDirectory(lab), "disk-pressure.txt"), figures.join("\n") + "\n"));

describe("BuildKit's GC on a small data root", () => {
    test("limits that do not fit the data root's filesystem fail the builder step, naming the keys, before it changes anything", () => {
        for (const step of steps) {
            if (step.name === "buildx-builder") {
                loadBuildkitImage(lab);
                const refused = runStep(lab, step, "gc-too-large", { BUILDKIT_GC_MAX_USED_SPACE: "2GB" });
                expect(refused.status).not.toBe(0);
                expect(refused.stderr).toContain("buildkitGcMaxUsedSpace (BUILDKIT_GC_MAX_USED_SPACE=2GB) and buildkitGcMinFreeSpace " +
                    `(BUILDKIT_GC_MIN_FREE_SPACE=${GC.minFreeSpace}MB) do not fit together on the filesystem of ${DATA_ROOT}/volumes (1536 MiB)`);
                expect(refused.stderr).toContain(`example: pulumi config set buildkitGcMaxUsedSpace ${1536 - GC.minFreeSpace}MB`);
                expect(sudoOk(lab, `ls /etc/buildx-host/buildkitd.toml 2>/dev/null; docker ps -aq --filter name=${BUILDKIT} </dev/null`).trim()).toBe("");
            }
            expectStepOk(runStep(lab, step, "first"));
        }
        expect(sudoOk(lab, `stat -f -c %T ${DATA_ROOT}`).trim()).toBe("tmpfs");
        // buildctl prints them in decimal units: 32 MiB is 33.554432MB.
        expect(sudoOk(lab, `docker exec ${BUILDKIT} buildctl debug workers --verbose </dev/null`))
            .toMatch(/Reserved space:\s+33.554432MB\s+Minimum free space:\s+268.435456MB\s+Maximum used space:\s+134.217728MB/);
        expect(client.attach(MEMBER, memberKey(lab, MEMBER), [memberBuildxCreateCommand(endpoint, MEMBER)]).status).toBe(0);
    });

    test("a stream of builds, each adding a layer: every build succeeds, and the cache stays under maxUsedSpace plus what the last minute added", () => {
        const start = Date.now();
        const seconds = () => (Date.now() - start) / 1000;
        const rows: { build: number; end: number; cache: number; free: number; status: number | null }[] = [];
        let collectedAt: number | undefined;
        // Long enough for a collection in the middle of the stream and two builds after it.
        while (seconds() < 120 && !(collectedAt !== undefined && rows.length - collectedAt >= 2 && seconds() >= 60)) {
            const build = rows.length + 1;
            const { status } = buildLayer(`stream-${build}`, LAYER_MIB);
            rows.push({ build, end: seconds(), cache: cacheMib(), free: freeMib(), status });
            if (collectedAt === undefined && rows.length > 1 && rows[rows.length - 1].cache < rows[rows.length - 2].cache) {
                collectedAt = rows.length;
            }
        }
        note(`stream: ${rows.length} builds of ${LAYER_MIB} MiB in ${seconds().toFixed(0)} s; maxUsedSpace ${GC.maxUsedSpace} MiB`);
        note("  build  end(s)  cache(MiB)  bound(MiB)  free(MiB)");
        const bounds = rows.map(row => {
            const recent = rows.filter(other => other.end <= row.end && other.end > row.end - GC_WINDOW_SECONDS).length;
            return GC.maxUsedSpace + recent * (LAYER_MIB + RECORDS_MIB_PER_BUILD);
        });
        rows.forEach((row, i) => note(`  ${String(row.build).padStart(5)}  ${row.end.toFixed(1).padStart(6)}  ${row.cache.toFixed(1).padStart(10)}` +
            `  ${String(bounds[i]).padStart(10)}  ${row.free.toFixed(0).padStart(9)}`));
        expect(rows.filter(row => row.status !== 0).map(row => row.build)).toEqual([]);
        expect(collectedAt).toBeDefined();
        expect(rows.filter((row, i) => row.cache > bounds[i]).map(row => row.build)).toEqual([]);
        // minFreeSpace never had to act: the stream shows maxUsedSpace alone.
        expect(Math.min(...rows.map(row => row.free))).toBeGreaterThan(GC.minFreeSpace);
    });

    test("with the disk nearly full, GC frees down to minFreeSpace; a build that cannot fit fails with its write error and BuildKit's step error; with space back the same build works", () => {
        const cache = cacheMib();
        const free = freeMib();
        // Leave less than minFreeSpace free, by no more than the cache can give back above reservedSpace.
        const shortOfMinFree = Math.min(64, Math.floor((cache - GC.reservedSpace) / 2));
        expect(shortOfMinFree).toBeGreaterThan(8);
        const filler = Math.floor(free - GC.minFreeSpace + shortOfMinFree);
        sudoOk(lab, `fallocate -l ${filler}MiB ${FILLER}`);
        const filled = freeMib();
        expect(filled).toBeLessThan(GC.minFreeSpace);
        // A build, so that a collection is due (BuildKit collects only after builds).
        expect(buildLayer("after-filler", 1).status).toBe(0);
        const started = Date.now();
        waitFor("BuildKit's GC to free space up to minFreeSpace", 75, () => freeMib() >= GC.minFreeSpace);
        const after = { cache: cacheMib(), free: freeMib(), seconds: (Date.now() - started) / 1000 };
        note(`nearly full: free ${filled.toFixed(0)} MiB < minFreeSpace ${GC.minFreeSpace} MiB with the cache at ${cache.toFixed(0)} MiB; ` +
            `${after.seconds.toFixed(0)} s after the next build, free ${after.free.toFixed(0)} MiB, cache ${after.cache.toFixed(0)} MiB`);
        expect(after.cache).toBeLessThanOrEqual(GC.maxUsedSpace);

        const tooLarge = Math.ceil(after.free) + 64;
        const failed = buildLayer("too-large", tooLarge);
        const output = failed.stdout + failed.stderr;
        note(`a ${tooLarge} MiB layer with ${after.free.toFixed(0)} MiB free: exit ${failed.status}; BuildKit says:\n` +
            output.split("\n").filter(line => /I\/O error|No space left|ERROR|did not complete/.test(line)).map(line => `    ${line}`).join("\n"));
        expect(failed.status).not.toBe(0);
        // busybox's head reports the failed write (ENOSPC) without naming it; BuildKit names the step and its exit code.
        expect(output).toMatch(/head: standard output: I\/O error/);
        expect(output).toMatch(/process "\/bin\/busybox sh -c .*" did not complete successfully: exit code: 1/);

        sudoOk(lab, `rm -f ${FILLER}`);
        const retried = buildLayer("too-large", tooLarge);
        if (retried.status !== 0) {
            throw new Error(`the build after space returned failed:\n${tail(retried.stdout + retried.stderr)}`);
        }
        note(`after the filler went (free ${freeMib().toFixed(0)} MiB), the same ${tooLarge} MiB build: exit 0`);
    });
});
