/**
 * Idle power-off on a lab host, with a 1-minute threshold: the idle-stop step's timer powers the
 * host off when nothing runs, never during a build or while an SSH session is open; a wake (here
 * `docker start` of the host's container, where EC2 would start the stopped instance) brings the
 * builder back with its cache.
 *
 * The host is watched from this machine with `docker exec` into its container and `docker inspect`,
 * never over SSH: an SSH session of the test would itself keep the host on. The decisions are read
 * from the host's journal (persistent: the last one before the power-off is read after the wake).
 * Each test's waits are as short as the proof allows: the threshold plus one check.
 */
import { writeFileSync } from "fs";
import * as path from "path";

import { RawConfig } from "../../components/config";
import { buildkitContainerName } from "../../components/endpoint";
import { IDLE_CHECK_SECONDS } from "../../components/host-facts";
import { shellQuote } from "../../components/shell";
import { hostStepDefinitions } from "../../components/steps";
import { cacheUse, LabClient, waitFor } from "./client";
import {
    expectStepOk, labConfig, LabHost, local, localAsync, localOk, logDirectory, provisionLabHost, requiredEnv, runStep, sshArgs, stepNamed,
} from "./lab";

/** One decision of the idle check, from the journal. */
interface Decision {
    /** When it was logged, in seconds since the epoch. */
    readonly at: number;
    readonly message: string;
}

const IDLE_STOP_MINUTES = 1;
const THRESHOLD_SECONDS = IDLE_STOP_MINUTES * 60;
/** How late a check may come after it is due: the timer's accuracy and the check's own run. */
const CHECK_SLACK_SECONDS = 5;
/** Longer than an idle host stays on: the threshold and the next check after it. */
const BUSY_SECONDS = THRESHOLD_SECONDS + IDLE_CHECK_SECONDS + CHECK_SLACK_SECONDS;
const UNIT = "buildx-host-idle-stop.service";

/**
 * The idle power-off tests, on `lab` provisioned with `settings` and idleStopMinutes 1; `member`
 * builds through the member door with `memberKey` after `attachCommands`.
 */
export function idlePowerOffTests(lab: LabHost, client: LabClient, settings: RawConfig, member: string, memberKey: string,
                                  attachCommands: readonly string[]): void {
    const config = labConfig(lab, { ...settings, idleStopMinutes: String(IDLE_STOP_MINUTES) });
    const steps = hostStepDefinitions(config, lab.user);
    const idleStop = stepNamed(steps, "idle-stop");
    const buildkit = buildkitContainerName(config.builderName);
    const figures: string[] = [];

    /** Runs `command` as root in the host's container, without SSH. */
    const inHost = (command: string) => localOk(`docker exec ${lab.container} bash -c ${shellQuote(command)}`);
    const hostRunning = () => localOk(`docker inspect -f '{{.State.Running}}' ${lab.container}`).trim() === "true";
    const now = () => Date.now() / 1000;
    /**
     * The idle check's decisions since `since` (epoch seconds), across boots: the lab image's machine id
     * is made anew at each boot, so each boot's journal is a machine of its own (`--merge` reads them all).
     */
    const decisions = (since: number): Decision[] =>
        inHost(`journalctl --merge -u ${UNIT} -o json --output-fields=MESSAGE --since @${Math.floor(since)} --no-pager`)
            .split("\n").filter(Boolean)
            .map(line => JSON.parse(line) as { __REALTIME_TIMESTAMP: string; MESSAGE: string })
            .map(entry => ({ at: Number(entry.__REALTIME_TIMESTAMP) / 1e6, message: entry.MESSAGE }))
            .filter(d => /^(stay on|power off):/.test(d.message));
    /** What the host's container and, when it runs, its systemd say: for a failure's message. */
    const hostState = () => [
        local(`docker inspect -f 'container: {{.State.Status}} exit {{.State.ExitCode}} ` +
            `started {{.State.StartedAt}} finished {{.State.FinishedAt}}' ${lab.container}`).stdout,
        local(`docker logs --tail 40 ${lab.container} 2>&1`).stdout,
        local(`docker exec ${lab.container} bash -c 'systemctl --failed --no-pager; journalctl --merge --no-pager -n 60 -u ssh.service ` +
            `-u ${UNIT} -u docker.service; journalctl -b --no-pager -n 40' 2>&1`).stdout,
    ].join("\n");
    const note = (line: string) => {
        figures.push(line);
        console.log(line);
    };

    afterAll(() => writeFileSync(path.join(logDirectory(lab), "idle-power-off.txt"), figures.join("\n") + "\n"));

    describe("idle-power-off with a 1-minute threshold", () => {
        let buildEnded = 0;

        test("idle-power-off: the step installs the timer after the builder; a second run changes nothing; a member builds", () => {
            const reports = provisionLabHost(lab, config, "idle");
            expect(reports.get("idle-stop")).toMatchObject({ action: expect.stringMatching(/^(created|updated)$/), idleStopMinutes: 1,
                checkSeconds: IDLE_CHECK_SECONDS });
            expect(expectStepOk(runStep(lab, idleStop, "idle-again"))).toMatchObject({ changed: false, action: "unchanged" });
            expect(inHost("systemctl is-active buildx-host-idle-stop.timer; systemctl is-enabled buildx-host-idle-stop.timer").trim())
                .toBe("active\nenabled");
            client.build(member, memberKey, "idle-first", attachCommands);
        });

        /** Waits until a check after `start` plus the threshold has decided, and returns those late decisions. */
        const lateDecisions = (what: string, start: number): Decision[] => {
            let late: Decision[] = [];
            waitFor(`a check past the threshold ${what}`, THRESHOLD_SECONDS + IDLE_CHECK_SECONDS + 30, () => {
                late = decisions(start).filter(d => d.at >= start + THRESHOLD_SECONDS);
                return late.length > 0;
            });
            return late;
        };

        test("idle-power-off: an open SSH session keeps the host on past the threshold", async () => {
            const release = "/run/idle-power-off-release";
            inHost(`rm -f ${release}`);
            const opened = now();
            // The session lasts until the test, without SSH, releases it.
            const session = localAsync(["ssh", ...sshArgs(lab, lab.user, lab.key), `while [ ! -e ${release} ]; do sleep 1; done`]
                .map(shellQuote).join(" "), "", BUSY_SECONDS + 60);
            const late = lateDecisions("with the session open", opened);
            inHost(`touch ${release}`);
            expect((await session).status).toBe(0);
            expect(hostRunning()).toBe(true);
            for (const decision of late) {
                expect(decision.message).toMatch(new RegExp(`^stay on: busy: open SSH sessions: ${lab.user}$`));
            }
        });

        test("idle-power-off: a long build with no session open keeps the host on; its records say it runs", () => {
            const context = "/var/tmp/idle-build";
            // A directory of its own in BuildKit's container, whose image has no shell to clear one.
            const inBuildkit = `/idle-build-${Date.now()}`;
            localOk(`docker exec ${lab.container} mkdir -p ${context} && ` +
                `docker cp ${shellQuote(path.join(requiredEnv("HOSTLAB_BUSYBOX_DIR"), "busybox-amd64"))} ${lab.container}:${context}/busybox`);
            // Longer than an idle host stays on, and it ends on its own, as a real build does.
            const run = `RUN --network=none ["/bin/busybox", "sh", "-c", "echo ${Date.now()}; /bin/busybox sleep ${BUSY_SECONDS}"]`;
            inHost([
                `printf '%s\\n' 'FROM scratch' 'COPY busybox /bin/busybox' '${run}' > ${context}/Dockerfile`,
                `chmod 755 ${context}/busybox`,
                `docker cp ${context} ${buildkit}:${inBuildkit}`,
                // Started inside the host and detached: no SSH session carries it.
                `docker exec -d ${buildkit} buildctl build --frontend dockerfile.v0 --local context=${inBuildkit} --local dockerfile=${inBuildkit}`,
            ].join(" && "));
            const started = now();
            const records = () => inHost(`docker exec ${buildkit} buildctl debug histories --format '{{json .}}'`).split("\n").filter(Boolean)
                .map(line => (JSON.parse(line) as { record: { CompletedAt?: { seconds: number } } }).record);
            const running = () => records().some(record => record.CompletedAt === undefined);
            waitFor("the build to start", 30, running);
            const late = lateDecisions("with the build running", started);
            waitFor("the build to end", BUSY_SECONDS + 30, () => !running());
            buildEnded = Math.max(...records().map(record => record.CompletedAt!.seconds));
            expect(hostRunning()).toBe(true);
            for (const decision of late) {
                expect(decision.message).toMatch(/^stay on: busy: running builds: \w+$/);
            }
        });

        test("idle-power-off: idle, the host powers off after the threshold and before the next check after it", () => {
            expect(buildEnded).toBeGreaterThan(0);
            waitFor("the idle host to power off", THRESHOLD_SECONDS + IDLE_CHECK_SECONDS + 60, () => !hostRunning());
            const finished = Date.parse(localOk(`docker inspect -f '{{.State.FinishedAt}}' ${lab.container}`).trim()
                .replace(/(\.\d{3})\d*/, "$1")) / 1000;
            const idleToOff = finished - buildEnded;
            note(`idle power-off (threshold ${THRESHOLD_SECONDS}s, checks every ${IDLE_CHECK_SECONDS}s): ` +
                `the last build's end to the host off ${idleToOff.toFixed(1)}s`);
            expect(idleToOff).toBeGreaterThanOrEqual(THRESHOLD_SECONDS - 2);
            expect(idleToOff).toBeLessThanOrEqual(THRESHOLD_SECONDS + IDLE_CHECK_SECONDS + CHECK_SLACK_SECONDS + 10);
        });

        test("idle-power-off: after the wake the builder answers with its cache: the next build is all cache hits", () => {
            expect(hostRunning()).toBe(false);
            const woken = now();
            localOk(`docker start ${lab.container}`);
            let output = "";
            let lastError = "";
            try {
                waitFor("a member's first successful build after the wake", 180, () => {
                    try {
                        output = client.build(member, memberKey, "idle-after-wake", attachCommands).output;
                        return true;
                    } catch (error) {
                        lastError = (error as Error).message;
                        return false;
                    }
                });
            } catch (error) {
                throw new Error(`${(error as Error).message}\nthe last build's error: ${lastError.slice(-1500)}\n${hostState()}`);
            }
            const wakeToBuild = now() - woken;
            note(`wake (container start) to the first successful member build: ${wakeToBuild.toFixed(1)}s`);
            expect(cacheUse(output)).toEqual({ runSteps: 2, allCached: true });
            const last = decisions(woken - 600).filter(d => d.at < woken).pop();
            expect(last?.message)
                .toMatch(new RegExp(`^power off: idle \\d+s of ${THRESHOLD_SECONDS}s: no running build, no open SSH session since `));
            expect(inHost("systemctl is-active buildx-host-idle-stop.timer").trim()).toBe("active");
        });

        test("idle-power-off: set back to 0, the step's delete removes the timer and its files; again, it finds nothing", () => {
            const remove = { ...idleStop, environment: idleStop.deleteEnvironment! };
            expect(expectStepOk(runStep(lab, remove, "idle-delete"))).toMatchObject({ changed: true, action: "deleted", idleStopMinutes: 0 });
            expect(inHost("ls /etc/systemd/system/buildx-host-idle-stop.* /usr/local/libexec/buildx-host/idle-check " +
                "/etc/buildx-host/idle-stop.env 2>/dev/null; systemctl is-active buildx-host-idle-stop.timer || true").trim()).toBe("inactive");
            expect(expectStepOk(runStep(lab, remove, "idle-delete-again"))).toMatchObject({ changed: false, action: "absent" });
        });
    });
}
