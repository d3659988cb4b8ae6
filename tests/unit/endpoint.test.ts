import {
    BUILD_PUSH_ACTION, buildkitContainerName, buildxCreateCommand, CHECKOUT_ACTION, dockerContextCommand, EndpointParts, fleetBuildxCreateCommand,
    attachScriptFile, fleetAttachScript, fleetGithubActionsWorkflow, fleetMemberBuildxCreateCommand, FleetNodeEndpoint, githubActionsWorkflow, githubRunner, handOverText, knownHostsLine,
    LOGIN_ACTION, memberBuildxCreateCommand, MINIMUM_CLIENT_VERSIONS, SETUP_BUILDX_ACTION, sshEndpoint, Workflow,
} from "../../components/endpoint";
import { execFileSync } from "child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "fs";
import * as yaml from "js-yaml";
import { tmpdir } from "os";
import * as path from "path";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF";
const EC2: EndpointParts = { host: "ec2-198-51-100-7.eu-west-1.compute.amazonaws.com", port: 22, user: "ubuntu", hostPublicKey: KEY, builderName: "buildx-host" };
const LAB: EndpointParts = { host: "127.0.0.1", port: 2222, user: "builder", hostPublicKey: KEY, builderName: "lab" };
const PLATFORMS = ["linux/amd64", "linux/arm64"];
const FLEET: FleetNodeEndpoint[] = [
    { name: "amd64", platforms: ["linux/amd64", "linux/riscv64"], parts: { ...LAB, contextName: "lab-amd64" } },
    { name: "arm64", platforms: ["linux/arm64"], parts: { ...LAB, port: 2223, contextName: "lab-arm64" } },
    { name: "graviton", platforms: ["linux/arm/v7"], parts: { ...EC2, builderName: "lab", contextName: "lab-graviton" } },
];

test("ssh endpoint omits the default port", () => {
    expect(sshEndpoint(EC2)).toBe("ssh://ubuntu@ec2-198-51-100-7.eu-west-1.compute.amazonaws.com");
    expect(sshEndpoint(LAB)).toBe("ssh://builder@127.0.0.1:2222");
    expect(sshEndpoint(LAB, "alice")).toBe("ssh://alice@127.0.0.1:2222");
});

test("an IPv6 host is bracketed in the URL", () => {
    expect(sshEndpoint({ ...LAB, host: "2001:db8::7" })).toBe("ssh://builder@[2001:db8::7]:2222");
    expect(sshEndpoint({ ...EC2, host: "2001:db8::7" })).toBe("ssh://ubuntu@[2001:db8::7]");
    expect(knownHostsLine({ ...LAB, host: "2001:db8::7" })).toBe(`[2001:db8::7]:2222 ${KEY}`);
});

test("known_hosts line uses OpenSSH's [host]:port form for other ports", () => {
    expect(knownHostsLine(EC2)).toBe(`ec2-198-51-100-7.eu-west-1.compute.amazonaws.com ${KEY}`);
    expect(knownHostsLine(LAB)).toBe(`[127.0.0.1]:2222 ${KEY}`);
});

test("the administrator's docker context and buildx commands are ready to paste", () => {
    expect(dockerContextCommand(EC2)).toBe("docker context create buildx-host --docker host=ssh://ubuntu@ec2-198-51-100-7.eu-west-1.compute.amazonaws.com");
    expect(buildkitContainerName("lab")).toBe("buildx_buildkit_lab0");
    expect(buildxCreateCommand(LAB)).toBe("docker buildx create --name lab-remote --driver remote 'docker-container://buildx_buildkit_lab0?context=lab' --use");
});

test("a member attaches buildx's remote driver straight to the member door, with no docker context", () => {
    expect(memberBuildxCreateCommand(LAB, "alice")).toBe("docker buildx create --name lab-remote --driver remote ssh://alice@127.0.0.1:2222 --use");
    expect(memberBuildxCreateCommand(EC2, "ci"))
        .toBe("docker buildx create --name buildx-host-remote --driver remote ssh://ci@ec2-198-51-100-7.eu-west-1.compute.amazonaws.com --use");
});

const workflowOf = (text: string) => yaml.load(text) as Workflow;
const stepsOf = (text: string) => workflowOf(text).jobs.build.steps;
const LAB_WORKFLOW = githubActionsWorkflow(LAB, "ci", PLATFORMS, "self-hosted");

describe("a member's GitHub Actions workflow", () => {
    test("is a complete workflow: on push and by hand, reading the code and writing packages only, one job on a self-hosted runner", () => {
        const workflow = workflowOf(LAB_WORKFLOW);
        expect(workflow.on).toEqual(["push", "workflow_dispatch"]);
        expect(workflow.permissions).toEqual({ contents: "read", packages: "write" });
        expect(Object.keys(workflow.jobs)).toEqual(["build"]);
        expect(workflow.jobs.build["runs-on"]).toBe("self-hosted");
        expect(stepsOf(LAB_WORKFLOW).map(step => step.uses ?? "run")).toEqual([
            CHECKOUT_ACTION, "run", SETUP_BUILDX_ACTION, LOGIN_ACTION, BUILD_PUSH_ACTION, "run"]);
        expect([CHECKOUT_ACTION, SETUP_BUILDX_ACTION, LOGIN_ACTION, BUILD_PUSH_ACTION])
            .toEqual(["actions/checkout@v5", "docker/setup-buildx-action@v4", "docker/login-action@v4", "docker/build-push-action@v7"]);
    });

    test("checks out without keeping the job's token, trusts the pinned host key and attaches to the member door", () => {
        const [checkout, trust, attach] = stepsOf(LAB_WORKFLOW);
        expect(checkout.with).toEqual({ "persist-credentials": false });
        expect(trust).toEqual({
            name: "Trust the buildx host",
            env: { BUILDX_HOST_SSH_KEY: "${{ secrets.BUILDX_HOST_SSH_KEY }}" },
            run: [
                "umask 077",
                "mkdir -p ~/.ssh",
                "rm -f ~/.ssh/lab.key",
                "printf '%s\\n' \"$BUILDX_HOST_SSH_KEY\" > ~/.ssh/lab.key",
                `grep -qxF '[127.0.0.1]:2222 ${KEY}' ~/.ssh/known_hosts 2>/dev/null || echo '[127.0.0.1]:2222 ${KEY}' >> ~/.ssh/known_hosts`,
                "grep -qxF 'Host 127.0.0.1' ~/.ssh/config 2>/dev/null || printf 'Host 127.0.0.1\\n  IdentityFile ~/.ssh/lab.key\\n  IdentitiesOnly yes\\n' >> ~/.ssh/config",
                "",
            ].join("\n"),
        });
        expect(attach.with).toEqual({ driver: "remote", endpoint: "ssh://ci@127.0.0.1:2222" });
    });

    test("logs in to GHCR with the job's own token and pushes the stack's platforms, tagged with the commit", () => {
        const [, , , login, build] = stepsOf(LAB_WORKFLOW);
        expect(login.with).toEqual({ registry: "ghcr.io", username: "${{ github.actor }}", password: "${{ secrets.GITHUB_TOKEN }}" });
        expect(build.with).toEqual({
            context: ".", platforms: "linux/amd64,linux/arm64", push: true, tags: "ghcr.io/${{ github.repository }}:${{ github.sha }}",
        });
        // Its post step would export the build record after the key is gone.
        expect(build.env).toEqual({ DOCKER_BUILD_SUMMARY: "false" });
    });

    test("the last step removes the key whatever happened before, and leaves the public known_hosts line", () => {
        const steps = stepsOf(LAB_WORKFLOW);
        expect(steps.at(-1)).toEqual({ name: "Remove the SSH key", if: "always()", run: "rm -f ~/.ssh/lab.key\n" });
        expect(steps.filter(step => step.if !== undefined)).toHaveLength(1);
    });

    test("carries no secret: the key comes from secrets.BUILDX_HOST_SSH_KEY through env:, never into a script, and no key material is in it", () => {
        const steps = stepsOf(LAB_WORKFLOW);
        expect(LAB_WORKFLOW).not.toMatch(/PRIVATE KEY|AAAAC3NzaC1lZDI1NTE5AAAAI(?!FMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF)/);
        expect(steps.flatMap(step => step.run ?? []).join("\n")).not.toContain("${{");
        expect([...LAB_WORKFLOW.matchAll(/\$\{\{ ([^}]+) \}\}/g)].map(m => m[1]).sort()).toEqual([
            "github.actor", "github.repository", "github.sha", "secrets.BUILDX_HOST_SSH_KEY", "secrets.GITHUB_TOKEN"]);
    });

    test("runs on GitHub's own runners only when every host takes SSH from anywhere", () => {
        expect([githubRunner([true]), githubRunner([true, true]), githubRunner([true, false]), githubRunner([false]), githubRunner([])])
            .toEqual(["ubuntu-latest", "ubuntu-latest", "self-hosted", "self-hosted", "self-hosted"]);
        expect(workflowOf(githubActionsWorkflow(EC2, "ci", PLATFORMS, "ubuntu-latest")).jobs.build["runs-on"]).toBe("ubuntu-latest");
    });

    test("reads as a person writes it: the shell step as a | block, no line folded", () => {
        const lines = LAB_WORKFLOW.split("\n");
        const trust = stepsOf(LAB_WORKFLOW)[1];
        const start = lines.indexOf("        run: |") + 1;
        expect(lines.slice(start, start + trust.run!.trimEnd().split("\n").length))
            .toEqual(trust.run!.trimEnd().split("\n").map(line => `          ${line}`));
    });
});

test("the trust step keeps the key private and, run twice on one runner, changes nothing the second time; the last step removes the key", () => {
    const steps = stepsOf(LAB_WORKFLOW);
    const home = mkdtempSync(path.join(tmpdir(), "runner-home-"));
    try {
        const env = { PATH: process.env.PATH!, HOME: home, BUILDX_HOST_SSH_KEY: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----" };
        for (let i = 0; i < 2; i++) {
            execFileSync("bash", ["-e", "-c", steps[1].run!], { env });
        }
        const keyFile = path.join(home, ".ssh", "lab.key");
        expect(statSync(keyFile).mode & 0o777).toBe(0o600);
        expect(readFileSync(keyFile, "utf8")).toBe(`${env.BUILDX_HOST_SSH_KEY}\n`);
        expect(readFileSync(path.join(home, ".ssh", "known_hosts"), "utf8")).toBe(`[127.0.0.1]:2222 ${KEY}\n`);
        expect(readFileSync(path.join(home, ".ssh", "config"), "utf8")).toBe("Host 127.0.0.1\n  IdentityFile ~/.ssh/lab.key\n  IdentitiesOnly yes\n");
        execFileSync("bash", ["-e", "-c", steps.at(-1)!.run!], { env });
        expect(existsSync(keyFile)).toBe(false);
        expect(existsSync(path.join(home, ".ssh", "known_hosts"))).toBe(true);
    } finally {
        rmSync(home, { recursive: true, force: true });
    }
});

describe("a member's hand-over", () => {
    const text = handOverText("alice", [knownHostsLine(LAB)], memberBuildxCreateCommand(LAB, "alice"), PLATFORMS, LAB_WORKFLOW);

    test("gives the version check, the known_hosts line for a POSIX shell and for PowerShell, and the attach command", () => {
        expect(text).toContain("\n    docker buildx version\n");
        expect(text).toContain(`buildx ${MINIMUM_CLIENT_VERSIONS.buildx} or later`);
        expect(text).toContain(`\n    echo '[127.0.0.1]:2222 ${KEY}' >> ~/.ssh/known_hosts\n`);
        expect(text).toContain(`\n    Add-Content -Encoding ascii -Path $HOME\\.ssh\\known_hosts -Value '[127.0.0.1]:2222 ${KEY}'\n`);
        expect(text).toContain(`\n    ${memberBuildxCreateCommand(LAB, "alice")}\n`);
    });

    test("the build it suggests is of the stack's platforms", () => {
        expect(text).toContain(`docker buildx build --platform ${PLATFORMS.join(",")} -t <image> --push .`);
    });

    test("says what the lead must have set: the member's key in team, their network in allowedSshCidrs", () => {
        expect(text).toContain("`team`");
        expect(text).toContain("`allowedSshCidrs`");
    });

    test("includes the member's workflow, whole, indented as one block", () => {
        const block = text.slice(text.indexOf("\n    name: ")).split("\n").filter(line => line.startsWith("    ")).map(line => line.slice(4)).join("\n");
        expect(yaml.load(block)).toEqual(yaml.load(LAB_WORKFLOW));
    });

    test("holds nothing secret: no private key, no secret value, only the secrets' names", () => {
        expect(text).not.toMatch(/PRIVATE KEY/);
        expect(text).toContain("BUILDX_HOST_SSH_KEY");
    });

    describe("for a fleet", () => {
        const script = fleetAttachScript(FLEET, "alice", "fail");
        const fleetText = handOverText("alice", FLEET.map(node => knownHostsLine(node.parts)), fleetMemberBuildxCreateCommand(FLEET, "alice"),
            FLEET.flatMap(node => node.platforms), fleetGithubActionsWorkflow(FLEET, "alice", "self-hosted", "fail"),
            { file: attachScriptFile("lab"), text: script });

        test("trusts every node", () => {
            expect(fleetText.split("\n").filter(line => line.startsWith("    echo ") && line.endsWith("known_hosts"))).toHaveLength(3);
            expect(fleetText.split("\n").filter(line => line.includes("Add-Content"))).toHaveLength(3);
        });

        test("a POSIX shell saves the attach script, whole, and runs it; PowerShell gets the plain attach commands", () => {
            const lines = fleetText.split("\n");
            const start = lines.indexOf("    cat > ~/lab-remote-attach.sh <<'BUILDX_HOST_ATTACH'") + 1;
            const end = lines.indexOf("    BUILDX_HOST_ATTACH");
            expect(start).toBeGreaterThan(0);
            expect(lines.slice(start, end).map(line => line.replace(/^ {4}/, "")).join("\n")).toBe(script.trimEnd());
            expect(lines[end + 1]).toBe("    sh ~/lab-remote-attach.sh");
            expect(fleetText).toContain(`PowerShell: these lines attach every node without checking them`);
            expect(fleetText).toContain(`\n    ${fleetMemberBuildxCreateCommand(FLEET, "alice").split("\n").join("\n    ")}\n`);
        });
    });
});

describe("a fleet", () => {
    test("each node has its administrator's docker context, named <builder>-<node>", () => {
        expect(dockerContextCommand(FLEET[1].parts)).toBe("docker context create lab-arm64 --docker host=ssh://builder@127.0.0.1:2223");
    });

    test("a member's client builder: each node's member door, the first created, each further one appended on its platforms", () => {
        expect(fleetMemberBuildxCreateCommand(FLEET, "alice").split("\n")).toEqual([
            "docker buildx create --name lab-remote --driver remote --node amd64 --platform linux/amd64,linux/riscv64 ssh://alice@127.0.0.1:2222 --use",
            "docker buildx create --name lab-remote --append --node arm64 --platform linux/arm64 ssh://alice@127.0.0.1:2223",
            "docker buildx create --name lab-remote --append --node graviton --platform linux/arm/v7 " +
                "ssh://alice@ec2-198-51-100-7.eu-west-1.compute.amazonaws.com",
        ]);
    });

    test("the administrators' client builder: the first node created, each further one appended, each fixed to its platforms", () => {
        expect(fleetBuildxCreateCommand(FLEET).split("\n")).toEqual([
            "docker buildx create --name lab-remote --driver remote --node amd64 --platform linux/amd64,linux/riscv64 " +
                "'docker-container://buildx_buildkit_lab0?context=lab-amd64' --use",
            "docker buildx create --name lab-remote --append --node arm64 --platform linux/arm64 'docker-container://buildx_buildkit_lab0?context=lab-arm64'",
            "docker buildx create --name lab-remote --append --node graviton --platform linux/arm/v7 " +
                "'docker-container://buildx_buildkit_lab0?context=lab-graviton'",
        ]);
    });

    test("the workflow trusts every node, runs the attach script, gives its outputs to setup-buildx-action, and builds every node's platforms", () => {
        const workflow = fleetGithubActionsWorkflow(FLEET, "ci", "self-hosted", "emulate");
        const steps = stepsOf(workflow);
        expect(steps.map(step => step.uses ?? "run")).toEqual([CHECKOUT_ACTION, "run", "run", SETUP_BUILDX_ACTION, LOGIN_ACTION, BUILD_PUSH_ACTION, "run"]);
        const run = steps[1].run!.split("\n");
        expect(run.filter(line => line.includes("known_hosts"))).toHaveLength(3);
        // Two nodes share 127.0.0.1: one ssh config block for it.
        expect(run.filter(line => line.includes("~/.ssh/config"))).toHaveLength(2);
        expect(run.filter(line => line.includes("docker "))).toEqual([]);
        expect(steps[2]).toEqual({ name: "Check the fleet's nodes", id: "fleet", run: fleetAttachScript(FLEET, "ci", "emulate") });
        expect(steps[3].with).toEqual({
            driver: "remote",
            endpoint: "${{ steps.fleet.outputs.endpoint }}",
            platforms: "${{ steps.fleet.outputs.platforms }}",
            append: "${{ steps.fleet.outputs.append }}",
        });
        expect(steps[5].with!.platforms).toBe("linux/amd64,linux/riscv64,linux/arm64,linux/arm/v7");
        expect(steps[6]).toEqual({ name: "Remove the SSH key", if: "always()", run: "rm -f ~/.ssh/lab.key\n" });
        // The script as a | block, no line folded.
        const lines = workflow.split("\n");
        const start = lines.indexOf("        run: |", lines.indexOf("        id: fleet")) + 1;
        expect(lines.slice(start, start + 3)).toEqual(fleetAttachScript(FLEET, "ci", "emulate").split("\n").slice(0, 3).map(line => `          ${line}`));
    });

    test("a one-node fleet has no append", () => {
        expect(fleetGithubActionsWorkflow(FLEET.slice(0, 1), "ci", "self-hosted", "fail")).not.toContain("append:");
    });
});
