import {
    buildkitContainerName, buildxCreateCommand, dockerContextCommand, EndpointParts, fleetBuildxCreateCommand, fleetGithubActionsSnippet,
    fleetMemberBuildxCreateCommand, FleetNodeEndpoint, githubActionsSnippet, knownHostsLine, memberBuildxCreateCommand, sshEndpoint, WorkflowStep,
} from "../../components/endpoint";
import { execFileSync } from "child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "fs";
import * as yaml from "js-yaml";
import { tmpdir } from "os";
import * as path from "path";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF";
const EC2: EndpointParts = { host: "ec2-198-51-100-7.eu-west-1.compute.amazonaws.com", port: 22, user: "ubuntu", hostPublicKey: KEY, builderName: "buildx-host" };
const LAB: EndpointParts = { host: "127.0.0.1", port: 2222, user: "builder", hostPublicKey: KEY, builderName: "lab" };
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

test("a member's GitHub Actions snippet trusts the pinned host key and attaches setup-buildx-action v4 to the member door", () => {
    expect(yaml.load(githubActionsSnippet(LAB, "ci"))).toEqual([
        {
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
        },
        {
            name: "Attach buildx to the shared builder",
            uses: "docker/setup-buildx-action@v4",
            with: { driver: "remote", endpoint: "ssh://ci@127.0.0.1:2222" },
        },
    ]);
});

test("the snippets read as a person writes them: the shell step and the fleet's append as | blocks, no line folded", () => {
    const snippet = fleetGithubActionsSnippet(FLEET, "ci");
    const lines = snippet.split("\n");
    const [trust, attach] = yaml.load(snippet) as WorkflowStep[];
    expect(lines.slice(lines.indexOf("  run: |") + 1, lines.indexOf("- name: Attach buildx to the shared fleet")))
        .toEqual(trust.run!.trimEnd().split("\n").map(line => `    ${line}`));
    expect(lines.slice(lines.indexOf("    append: |") + 1, -1)).toEqual(attach.with!.append.trimEnd().split("\n").map(line => `      ${line}`));
});

test("the snippet is the same steps pasted at the top level or indented under a job's steps:", () => {
    const snippet = githubActionsSnippet(EC2, "ci");
    const indented = snippet.split("\n").map(line => (line ? `      ${line}` : line)).join("\n");
    const workflow = yaml.load(`jobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n${indented}`) as
        { jobs: { build: { steps: WorkflowStep[] } } };
    const steps = yaml.load(snippet) as WorkflowStep[];
    expect(workflow.jobs.build.steps).toEqual(steps);
    expect(steps.map(step => step.uses ?? "run")).toEqual(["run", "docker/setup-buildx-action@v4"]);
    expect(steps[0].env).toEqual({ BUILDX_HOST_SSH_KEY: "${{ secrets.BUILDX_HOST_SSH_KEY }}" });
    expect(steps[0].run).not.toContain("${{");
});

test("the snippet's shell step keeps the key private and, run twice on one runner, changes nothing the second time", () => {
    const run = (yaml.load(githubActionsSnippet(LAB, "ci")) as WorkflowStep[])[0].run!;
    const home = mkdtempSync(path.join(tmpdir(), "runner-home-"));
    try {
        const env = { PATH: process.env.PATH!, HOME: home, BUILDX_HOST_SSH_KEY: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----" };
        for (let i = 0; i < 2; i++) {
            execFileSync("bash", ["-e", "-c", run], { env });
        }
        const keyFile = path.join(home, ".ssh", "lab.key");
        expect(statSync(keyFile).mode & 0o777).toBe(0o600);
        expect(readFileSync(keyFile, "utf8")).toBe(`${env.BUILDX_HOST_SSH_KEY}\n`);
        expect(readFileSync(path.join(home, ".ssh", "known_hosts"), "utf8")).toBe(`[127.0.0.1]:2222 ${KEY}\n`);
        expect(readFileSync(path.join(home, ".ssh", "config"), "utf8")).toBe("Host 127.0.0.1\n  IdentityFile ~/.ssh/lab.key\n  IdentitiesOnly yes\n");
    } finally {
        rmSync(home, { recursive: true, force: true });
    }
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

    test("the GitHub Actions snippet trusts every node and appends every node after the first", () => {
        const steps = yaml.load(fleetGithubActionsSnippet(FLEET, "ci")) as WorkflowStep[];
        expect(steps.map(step => step.uses ?? "run")).toEqual(["run", "docker/setup-buildx-action@v4"]);
        const run = steps[0].run!.split("\n");
        expect(run.filter(line => line.includes("known_hosts"))).toHaveLength(3);
        // Two nodes share 127.0.0.1: one ssh config block for it.
        expect(run.filter(line => line.includes("~/.ssh/config"))).toHaveLength(2);
        expect(run.filter(line => line.includes("docker "))).toEqual([]);
        expect(steps[1].with).toEqual({
            driver: "remote",
            endpoint: "ssh://ci@127.0.0.1:2222",
            platforms: "linux/amd64,linux/riscv64",
            append: expect.any(String),
        });
        expect(yaml.load(steps[1].with!.append)).toEqual([
            { name: "arm64", endpoint: "ssh://ci@127.0.0.1:2223", platforms: "linux/arm64" },
            { name: "graviton", endpoint: "ssh://ci@ec2-198-51-100-7.eu-west-1.compute.amazonaws.com", platforms: "linux/arm/v7" },
        ]);
    });

    test("a one-node fleet has no append", () => {
        expect(fleetGithubActionsSnippet(FLEET.slice(0, 1), "ci")).not.toContain("append");
    });
});
