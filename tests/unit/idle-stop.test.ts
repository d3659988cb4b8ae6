/**
 * Idle power-off and wake (idleStopMinutes): the setting per node, the optional step, the check the
 * step installs (run in bash on a stub host), the EC2 instance's shutdown behaviour, the wake
 * commands, the wake policy and the workflows' wake steps, and what a stopped host does to a run.
 */
import { spawnSync } from "child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";

import * as pulumi from "@pulumi/pulumi";

import { installMocks, valueOf } from "./mocks";

const mockOptions = { stoppedInstances: false };
const recorder = installMocks(mockOptions);

// Imported after the mocks are installed, as a Pulumi program would be run under them.
import { parseConfig, RawConfig } from "../../components/config";
import { deployFleet } from "./deploy-fleet";
import { HOST_KEY_PROBE_PATH } from "../../components/host-key-check";
import { AWS_CREDENTIALS_ACTION, Workflow, WAKE_ROLE_VARIABLE } from "../../components/endpoint";
import { iamPolicy, PROGRAM_POLICIES_ARN } from "../../components/iam-policy";
import { COMMON_LIBRARY_PATH, HOST_FACTS_PATH, hostStepDefinitions, SCRIPTS_DIR, sha256, stepFingerprints } from "../../components/steps";
import { existingHostIdleStopWarning, stoppedHostMessage, wakeCommand, wakePolicyDocument } from "../../components/wake";
import { configProblems, hostConfig } from "../config-problems";
import * as yaml from "js-yaml";

const CIDRS = JSON.stringify(["10.20.0.0/16"]);
const ALICE = "alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICMuitBm3Na3mokQbnQlnPS+q4yZBeoCIqm3SvbczITp alice@laptop";
const EC2: RawConfig = { allowedSshCidrs: CIDRS, team: JSON.stringify([ALICE]) };
const NODES = [{ name: "amd64", instanceType: "c7i.xlarge" }, { name: "graviton", instanceType: "c7g.xlarge", idleStopMinutes: 0 }];
const TARGET = { instanceId: "i-0123456789abcdef0", instanceArn: "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0" };

const deploy = (name: string, raw: RawConfig, privateKey?: string) => deployFleet(recorder, name, raw, privateKey);

const workflowOf = (text: string) => yaml.load(text) as Workflow;

describe("idleStopMinutes", () => {
    test("is 0 (never) unless set; a node's own value overrides the stack's, which the others take", () => {
        expect(hostConfig(EC2).idleStopMinutes).toBe(0);
        expect(hostConfig({ ...EC2, idleStopMinutes: "45" }).idleStopMinutes).toBe(45);
        const fleet = parseConfig({ ...EC2, idleStopMinutes: "30", nodes: JSON.stringify(NODES) });
        expect(fleet.nodes.map(node => [node.name, node.host.idleStopMinutes])).toEqual([["amd64", 30], ["graviton", 0]]);
    });

    test("must be whole minutes up to a week, named with a fix to paste, per node too", () => {
        expect(configProblems({ ...EC2, idleStopMinutes: "1.5" })).toEqual([
            "buildx-host:idleStopMinutes must be a whole number from 0 to 10080, not \"1.5\". Example: pulumi config set idleStopMinutes 60"]);
        expect(configProblems({ ...EC2, nodes: JSON.stringify([{ name: "amd64", idleStopMinutes: 20000 }]) })).toEqual([
            "buildx-host:nodes[0].idleStopMinutes must be a whole number from 0 to 10080, not \"20000\". " +
                "Example: pulumi config set --path 'nodes[0].idleStopMinutes' 60"]);
    });
});

describe("the idle-stop step", () => {
    const off = hostStepDefinitions(hostConfig(EC2), "ubuntu");
    const on = hostStepDefinitions(hostConfig({ ...EC2, idleStopMinutes: "45" }), "ubuntu");

    test("runs only when idleStopMinutes is above 0, last, after the member door", () => {
        expect(off.map(step => step.name)).not.toContain("idle-stop");
        expect(on.map(step => step.name)).toEqual([...off.map(step => step.name), "idle-stop"]);
        expect(on[on.length - 1]).toMatchObject({
            environment: { IDLE_STOP_MINUTES: "45", BUILDER_NAME: "buildx-host" },
            // Set back to 0, the step's resource goes and this delete removes the timer.
            deleteEnvironment: { IDLE_STOP_MINUTES: "0", BUILDER_NAME: "buildx-host" },
        });
    });

    test("turning it on or off runs no other step again", () => {
        expect(stepFingerprints(on).slice(0, off.length)).toEqual(stepFingerprints(off));
    });
});

/**
 * The check the step installs, as it writes it (render_checker), run in bash with stubs on PATH for
 * what it reads: ps, docker (and BuildKit's records through it), date's clock, systemctl.
 */
describe("the installed idle check", () => {
    const NOW = 1_800_000_000;
    const dir = mkdtempSync(path.join(tmpdir(), "idle-check-"));
    const stateFile = path.join(dir, "last-busy");
    const rendered = spawnSync("bash", ["-s"], {
        input: [readFileSync(COMMON_LIBRARY_PATH, "utf8"), readFileSync(HOST_FACTS_PATH, "utf8"),
            readFileSync(path.join(SCRIPTS_DIR, "idle-stop.sh"), "utf8").replace(/^main "\$@"$/m, ""),
            "IDLE_STOP_MINUTES=1 validate_input", "render_checker"].join("\n"),
        encoding: "utf8",
    });
    const nologin = path.join(dir, "nologin");
    const psCalls = path.join(dir, "ps-calls");
    const checker = rendered.stdout.replace("/run/buildx-host/idle-stop.last-busy", stateFile).replace('"/run/nologin"', `"${nologin}"`);
    if (checker.includes("/run/")) {
        // Run as root, the check would refuse this machine's logins.
        throw new Error("the rendered check still names a path under /run: give it this test's stand-in");
    }
    const stubs: Record<string, string> = {
        // STUB_PS_LATER: what ps says from its second call on (the check's second look).
        ps: `echo >> ${psCalls}; if [ -n "\${STUB_PS_LATER:-}" ] && [ "$(wc -l < ${psCalls})" -gt 1 ]; then ` +
            'printf "%s\\n" "$STUB_PS_LATER"; else printf "%s\\n" "${STUB_PS:-}"; fi',
        date: `if [ "$1" = +%s ]; then echo ${NOW}; else exec /bin/date "$@"; fi`,
        docker: [
            'case "$1" in',
            '  info) exit "${STUB_DOCKER_DOWN:-0}" ;;',
            '  inspect) echo "${STUB_BUILDER_RUNNING:-true}" ;;',
            '  exec) [ -z "${STUB_BUILDKIT_DOWN:-}" ] || { echo "connection refused" >&2; exit 1; }',
            `        if [ -n "\${STUB_RECORDS_LATER:-}" ] && [ "$(wc -l < ${psCalls})" -gt 1 ]; then printf "%s" "$STUB_RECORDS_LATER"; ` +
                'else printf "%s" "${STUB_RECORDS:-}"; fi ;;',
            "esac",
        ].join("\n"),
        systemctl: `echo "systemctl $*" >> ${path.join(dir, "systemctl.log")}`,
    };
    for (const [name, body] of Object.entries(stubs)) {
        writeFileSync(path.join(dir, name), `#!/bin/bash\n${body}\n`, { mode: 0o755 });
    }

    /** Runs one check with `env`, the last busy time `lastBusy` seconds ago (none: unset); its decision and what it ran. */
    function check(env: Record<string, string>, lastBusy?: number) {
        spawnSync("rm", ["-f", stateFile, path.join(dir, "systemctl.log"), psCalls, nologin]);
        if (lastBusy !== undefined) {
            writeFileSync(stateFile, `${NOW - lastBusy}\n`);
        }
        const result = spawnSync("bash", ["-c", checker], {
            env: { PATH: `${dir}:/usr/bin:/bin`, IDLE_STOP_SECONDS: "60", BUILDKIT_CONTAINER: "buildx_buildkit_buildx-host0", ...env },
            encoding: "utf8",
        });
        const ran = (() => {
            try {
                return readFileSync(path.join(dir, "systemctl.log"), "utf8");
            } catch {
                return "";
            }
        })();
        return { status: result.status, decision: result.stdout.trim(), stderr: result.stderr,
            lastBusy: Number(readFileSync(stateFile, "utf8")), ran, loginsRefused: existsSync(nologin) };
    }
    const record = (ref: string, completed?: number) =>
        JSON.stringify({ type: completed === undefined ? undefined : 1, record: { Ref: ref, CreatedAt: { seconds: NOW - 500 },
            ...completed === undefined ? {} : { CompletedAt: { seconds: completed, nanos: 5 } } } });

    test("is written as one script that runs the check", () => {
        expect(rendered.status).toBe(0);
        expect(checker).toMatch(/^#!\/bin\/bash\n/);
        expect(checker).toMatch(/\nidle_check\n$/);
    });

    test("a first check starts the clock: idle 0 s, staying on", () => {
        expect(check({})).toMatchObject({
            status: 0, decision: "stay on: idle 0s of 60s: no running build, no open SSH session", lastBusy: NOW, ran: "" });
    });

    test("open SSH sessions, counted per user from sshd's session processes, keep the host on and reset the clock", () => {
        const lines = ["sshd-session: alice@notty", "sshd: builder@pts/0", "sshd-session: alice@notty", "sshd-session: alice [priv]",
            "/usr/sbin/sshd -D", "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"].join("\n");
        expect(check({ STUB_PS: lines }, 600)).toMatchObject({
            decision: "stay on: busy: open SSH sessions: alice (2), builder", lastBusy: NOW, ran: "" });
    });

    test("a build record without a completion time is a running build: the host stays on", () => {
        const records = [record("done1", NOW - 400), record("running1")].join("\n");
        expect(check({ STUB_RECORDS: records }, 600)).toMatchObject({ decision: "stay on: busy: running builds: running1", lastBusy: NOW, ran: "" });
    });

    test("idle time counts from the latest build's completion when it is later than the last busy check", () => {
        const records = [record("done1", NOW - 400), record("done2", NOW - 30)].join("\n");
        expect(check({ STUB_RECORDS: records }, 600)).toMatchObject({
            decision: "stay on: idle 30s of 60s: no running build, no open SSH session", ran: "" });
    });

    test("idle for the threshold, it says so with the time since when, and powers off", () => {
        const { decision, ran } = check({ STUB_RECORDS: record("done1", NOW - 400) }, 61);
        const since = new Date((NOW - 61) * 1000).toISOString().replace(".000", "");
        expect(decision).toBe(`power off: idle 61s of 60s: no running build, no open SSH session since ${since}`);
        expect(ran).toBe("systemctl --no-block poweroff\n");
    });

    test("before the power-off it refuses new logins and looks again: a session begun meanwhile keeps the host on, logins allowed again", () => {
        expect(check({ STUB_PS_LATER: "sshd-session: alice@notty" }, 61)).toMatchObject({
            decision: "stay on: busy: open SSH sessions: alice (seen at the second look, with logins refused; allowed again)",
            lastBusy: NOW, ran: "", loginsRefused: false });
        // Powering off, the door stays closed (pam_nologin: /run/nologin) until the boot, when systemd removes it.
        expect(check({}, 61)).toMatchObject({ decision: expect.stringMatching(/^power off: /), loginsRefused: true });
        expect(readFileSync(nologin, "utf8")).toBe("powering off: idle for 60s, so it refuses new logins and looks again\n");
    });

    test("a second look that fails opens the door again and powers nothing off", () => {
        // Records that jq cannot read at the second look (ps is called once per look, first).
        const result = check({ STUB_RECORDS_LATER: "{not json" }, 61);
        expect(result.status).not.toBe(0);
        expect(result).toMatchObject({ ran: "", loginsRefused: false });
    });

    test("a builder container that is not running runs no build", () => {
        expect(check({ STUB_BUILDER_RUNNING: "false", STUB_BUILDKIT_DOWN: "yes" }, 120)).toMatchObject({
            decision: expect.stringMatching(/^power off: idle 120s of 60s/), ran: "systemctl --no-block poweroff\n" });
    });

    test("a BuildKit or a Docker that does not answer keeps the host on: never a power-off on a guess", () => {
        expect(check({ STUB_BUILDKIT_DOWN: "yes" }, 600)).toMatchObject({
            decision: "stay on: BuildKit in buildx_buildkit_buildx-host0 does not answer, so whether a build runs is unknown: connection refused",
            lastBusy: NOW, ran: "" });
        expect(check({ STUB_DOCKER_DOWN: "1" }, 600)).toMatchObject({
            decision: "stay on: Docker does not answer, so whether a build runs is unknown", lastBusy: NOW, ran: "" });
    });
});

describe("waking", () => {
    test("the wake command starts the instances in their region, then waits until EC2 reports them healthy", () => {
        expect(wakeCommand([TARGET])).toBe("aws ec2 start-instances --region eu-west-1 --instance-ids i-0123456789abcdef0 && " +
            "aws ec2 wait instance-status-ok --region eu-west-1 --instance-ids i-0123456789abcdef0");
    });

    test("the wake policy allows starting these instances only; the waits' describe calls, which take no resource, on *", () => {
        expect(wakePolicyDocument([TARGET.instanceArn]).Statement).toEqual([
            { Sid: "StartTheBuildHosts", Effect: "Allow", Action: ["ec2:StartInstances"], Resource: [TARGET.instanceArn] },
            { Sid: "WatchThemWake", Effect: "Allow", Action: ["ec2:DescribeInstances", "ec2:DescribeInstanceStatus"], Resource: "*" },
        ]);
    });

    test("the operator's policy may make and remove the wake policy, and no other IAM policy", () => {
        const statements = iamPolicy(["aws:iam/policy:Policy", "aws:ec2/getInstances:getInstances"]).Statement;
        expect(statements.map(s => [s.Sid, s.Resource])).toEqual([["BuildxHostEc2", "*"], ["BuildxHostWakePolicy", PROGRAM_POLICIES_ARN]]);
        expect(statements[1].Action).toEqual(expect.arrayContaining(["iam:CreatePolicy", "iam:DeletePolicy", "iam:CreatePolicyVersion"]));
        expect(iamPolicy(["aws:ec2/getInstances:getInstances"]).Statement.map(s => s.Sid)).toEqual(["BuildxHostEc2"]);
    });
});

describe("a fleet whose amd64 node powers off when idle", () => {
    let deployed: Awaited<ReturnType<typeof deploy>>;
    beforeAll(async () => {
        deployed = await deploy("idle", { ...EC2, idleStopMinutes: "30", nodes: JSON.stringify(NODES) });
    });

    test("every instance stops, never terminates, when powered off from inside", () => {
        expect(deployed.ofType("aws:ec2/instance:Instance").map(r => r.inputs.instanceInitiatedShutdownBehavior)).toEqual(["stop", "stop"]);
    });

    test("only that node runs the idle-stop step", () => {
        expect(deployed.ofType("command:remote:Command").map(r => r.name).filter(name => name.endsWith("-idle-stop-run")))
            .toEqual(["idle-amd64-idle-stop-run"]);
    });

    test("every ec2 node has a wake command; the wake policy starts only the node that powers off", async () => {
        const commands = await valueOf(deployed.fleet.wakeCommands!);
        expect(Object.keys(commands)).toEqual(["amd64", "graviton"]);
        expect(commands.amd64).toBe(wakeCommand([{ instanceId: "idle-amd64-ec2-instance-id",
            instanceArn: "arn:aws:ec2:eu-west-1:123456789012:instance/idle-amd64-ec2-instance-id" }]));
        const [policy] = deployed.ofType("aws:iam/policy:Policy");
        expect(policy.name).toBe("idle-wake");
        expect(JSON.parse(policy.inputs.policy)).toEqual(
            wakePolicyDocument(["arn:aws:ec2:eu-west-1:123456789012:instance/idle-amd64-ec2-instance-id"]));
        expect(await valueOf(deployed.fleet.wakePolicyArn!)).toBe("arn:aws:iam::123456789012:policy/idle-wake-1a2b3c4");
    });

    test("a member's workflow wakes that node with the role's OIDC credentials, and waits for its door before the fleet check", async () => {
        const workflow = workflowOf((await valueOf(deployed.fleet.teamGithubActionsWorkflows!)).alice);
        expect(workflow.permissions).toEqual({ contents: "read", packages: "write", "id-token": "write" });
        const steps = workflow.jobs.build.steps;
        const names = steps.map(step => step.name);
        const credentials = steps.find(step => step.uses === AWS_CREDENTIALS_ACTION)!;
        expect(credentials.with).toEqual({ "role-to-assume": `\${{ vars.${WAKE_ROLE_VARIABLE} }}`, "aws-region": "eu-west-1" });
        const wake = steps[names.indexOf(credentials.name) + 1];
        expect(wake.run).toContain("for node in 'idle-amd64-ec2-instance-id ssh://alice@ec2-198-51-100-7.eu-west-1.compute.amazonaws.com'; do\n");
        expect(wake.run).toContain('aws ec2 start-instances --instance-ids "$id" >/dev/null || { echo "::error::could not start $id ($door)');
        expect(names.indexOf("Trust the buildx fleet")).toBeLessThan(names.indexOf(credentials.name));
        expect(names.indexOf(wake.name)).toBeLessThan(names.indexOf("Check the fleet's nodes"));
    });
});

describe("the wake step of a fleet whose nodes both power off, when one does not start", () => {
    /**
     * Runs the wake step of alice's workflow as GitHub does (bash -e), with stubs for aws and ssh:
     * the graviton node's instance does not start, as a spot node stopped by an interruption.
     */
    async function runWake(fleetFallback: string) {
        const nodes = JSON.stringify(NODES.map(({ name, instanceType }) => ({ name, instanceType })));
        const deployed = await deploy(`wake-${fleetFallback}`, { ...EC2, idleStopMinutes: "30", fleetFallback, nodes });
        const steps = workflowOf((await valueOf(deployed.fleet.teamGithubActionsWorkflows!)).alice).jobs.build.steps;
        const wake = steps.find(step => step.name === "Wake the build hosts and wait for their doors")!;
        const dir = mkdtempSync(path.join(tmpdir(), "wake-step-"));
        const calls = path.join(dir, "calls");
        writeFileSync(path.join(dir, "aws"), `#!/bin/bash\necho "aws $*" >> ${calls}\n` +
            'case "$*" in *start-instances*graviton*) echo "An error occurred (IncorrectSpotRequestState)" >&2; exit 254 ;; esac\n', { mode: 0o755 });
        writeFileSync(path.join(dir, "ssh"), `#!/bin/bash\necho "ssh $*" >> ${calls}\n`, { mode: 0o755 });
        const result = spawnSync("bash", ["--noprofile", "--norc", "-eo", "pipefail", "-c", wake.run!],
            { env: { PATH: `${dir}:/usr/bin:/bin` }, encoding: "utf8" });
        const ran = existsSync(calls) ? readFileSync(calls, "utf8").trim().split("\n") : [];
        return { status: result.status, stdout: result.stdout, ran, id: (node: string) => `wake-${fleetFallback}-${node}-ec2-instance-id` };
    }

    test("emulate: it warns and leaves that node to the fleet check; the other node is started and waited for", async () => {
        const { status, stdout, ran, id } = await runWake("emulate");
        expect(status).toBe(0);
        expect(stdout).toMatch(new RegExp(`^::warning::could not start ${id("graviton")} \\(ssh://alice@[^)]+\\): a spot node stopped by an ` +
            "interruption starts only when EC2 has capacity again; the fleet check leaves it out$", "m"));
        expect(ran.filter(call => !call.includes("start-instances"))).toEqual([
            `aws ec2 wait instance-running --instance-ids ${id("amd64")}`,
            expect.stringMatching(/^ssh -o ConnectTimeout=5 -o BatchMode=yes ssh:\/\/alice@/),
        ]);
    });

    test("fail (the default): it stops the job at the wake, naming the node", async () => {
        const { status, stdout, ran, id } = await runWake("fail");
        expect(status).toBe(1);
        expect(stdout).toMatch(new RegExp(`^::error::could not start ${id("graviton")} \\(ssh://alice@`, "m"));
        expect(ran.some(call => call.startsWith("ssh "))).toBe(false);
    });
});

describe("a single host that never powers off", () => {
    test("has a wake command, but no wake policy, no idle-stop step and no wake step in its workflows", async () => {
        const deployed = await deploy("always", EC2);
        const [host] = deployed.fleet.hosts;
        expect(await valueOf(host.wakeCommand!)).toMatch(/^aws ec2 start-instances --region eu-west-1 --instance-ids always-ec2-instance-id && /);
        expect(deployed.fleet.wakePolicyArn).toBeUndefined();
        expect(deployed.ofType("aws:iam/policy:Policy")).toEqual([]);
        expect(deployed.ofType("command:remote:Command").map(r => r.name)).not.toContain("always-idle-stop-run");
        const workflow = workflowOf((await valueOf(host.teamGithubActionsWorkflows)).alice);
        expect(workflow.permissions).toEqual({ contents: "read", packages: "write" });
        expect(workflow.jobs.build.steps.map(step => step.uses)).not.toContain(AWS_CREDENTIALS_ACTION);
    });
});

describe("a single host that powers off when idle", () => {
    test("its workflow wakes it before the attach", async () => {
        const deployed = await deploy("single", { ...EC2, idleStopMinutes: "60" });
        const steps = workflowOf((await valueOf(deployed.fleet.hosts[0].teamGithubActionsWorkflows)).alice).jobs.build.steps;
        const names = steps.map(step => step.name);
        expect(names.indexOf("Wake the build hosts and wait for their doors")).toBeLessThan(names.indexOf("Attach buildx to the shared builder"));
        expect(deployed.ofType("aws:iam/policy:Policy")).toHaveLength(1);
    });
});

describe("pulumi up against a stopped host", () => {
    const probeOf = (deployed: Awaited<ReturnType<typeof deploy>>) => deployed.ofType("command:local:Command")[0].inputs;

    test("the host key check runs again and fails at once, before any step dials, saying the host is stopped and how to wake it", async () => {
        // Two stacks alike but for the name's first letter (the mocks' keys carry the name's length): one running, one stopped.
        const running = probeOf(await deploy("awake", EC2)).environment;
        mockOptions.stoppedInstances = true;
        const stopped = probeOf(await deploy("sleep", EC2)).environment;
        mockOptions.stoppedInstances = false;
        const target = { instanceId: "sleep-ec2-instance-id", instanceArn: "arn:aws:ec2:eu-west-1:123456789012:instance/sleep-ec2-instance-id" };
        expect(running.PROBE_HOST_STOPPED).toBe("");
        expect(stopped.PROBE_HOST_STOPPED).toBe(stoppedHostMessage(target));
        // The state is in what makes the check run: it runs now, and again once the host is awake.
        const first = stepFingerprints(hostStepDefinitions(hostConfig(EC2), "ubuntu"))[0];
        expect(running.PROBE_RUN_WITH).toBe(sha256(JSON.stringify({ fingerprint: first, hostId: "awake-ec2-instance-id" })));
        expect(stopped.PROBE_RUN_WITH)
            .toBe(sha256(JSON.stringify({ fingerprint: first, hostId: target.instanceId, stopped: stoppedHostMessage(target) })));
        const lookup = recorder.invokes.filter(i => i.token === "aws:ec2/getInstances:getInstances")
            .filter(i => i.inputs.filters.length === 1).pop()!;
        expect(lookup.inputs).toEqual({
            filters: [{ name: "instance-id", values: [target.instanceId] }], instanceStateNames: ["stopping", "stopped"] });

        // The probe, given an address that would never answer, ends at once with the message.
        const started = Date.now();
        const probe = spawnSync("node", ["-"], { input: readFileSync(HOST_KEY_PROBE_PATH, "utf8"), encoding: "utf8", timeout: 20_000,
            env: { ...process.env, ...stopped, PROBE_HOST: "192.0.2.1" } });
        expect({ status: probe.status, stderr: probe.stderr }).toEqual({ status: 1, stderr: `${stoppedHostMessage(target)}\n` });
        expect(Date.now() - started).toBeLessThan(5_000);
        expect(stoppedHostMessage(target)).toContain(`Wake it, then run pulumi up again:\n    ${wakeCommand([target])}`);
    });

    test("a stopped spot host's message tells an interruption, which only EC2 ends, from a power-off the wake command ends", async () => {
        mockOptions.stoppedInstances = true;
        const stopped = probeOf(await deploy("spotty", { ...EC2, spot: "true" })).environment;
        mockOptions.stoppedInstances = false;
        const target = { instanceId: "spotty-ec2-instance-id", instanceArn: "arn:aws:ec2:eu-west-1:123456789012:instance/spotty-ec2-instance-id" };
        const message = stoppedHostMessage(target, true);
        expect(stopped.PROBE_HOST_STOPPED).toBe(message);
        expect(message).not.toBe(stoppedHostMessage(target));
        expect(message).toContain(`aws ec2 describe-instances --region eu-west-1 --instance-ids ${target.instanceId} ` +
            "--query 'Reservations[].Instances[].StateReason.Code' --output text\n");
        expect(message).toContain("Server.SpotInstanceShutdown is an interruption: only EC2 starts the instance again");
        expect(message).toMatch(new RegExp(`Client\\.UserInitiatedShutdown: .*, wake it, then run pulumi up again:\n    ${
            wakeCommand([target]).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`));
    });

    test("an existing host powers off too, but has no instance to read or wake: its check's inputs are as before, and a warning says so", async () => {
        const warn = jest.spyOn(pulumi.log, "warn").mockImplementation(() => Promise.resolve());
        const existing = await deploy("exist", {
            hostMode: "existing", existingHostAddress: "build1.example.com", existingHostUser: "builder", idleStopMinutes: "30",
            existingHostPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nbG9naW4ta2V5\n-----END OPENSSH PRIVATE KEY-----\n",
            existingHostPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF",
        }, "-----BEGIN OPENSSH PRIVATE KEY-----\nbG9naW4ta2V5\n-----END OPENSSH PRIVATE KEY-----\n");
        expect(Object.keys(probeOf(existing).environment)).not.toContain("PROBE_HOST_STOPPED");
        expect(existing.ofType("command:remote:Command").map(r => r.name)).toContain("exist-idle-stop-run");
        expect(existing.fleet.wakePolicyArn).toBeUndefined();
        expect(warn.mock.calls.map(([message]) => message)).toEqual([existingHostIdleStopWarning(30)]);
        expect(existingHostIdleStopWarning(30)).toMatch(/^idleStopMinutes 30: this existing server powers itself off .* nothing in this stack starts it/);
        warn.mockRestore();
    });
});
