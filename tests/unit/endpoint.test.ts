import {
    buildkitContainerName, buildxCreateCommand, dockerContextCommand, EndpointParts, githubActionsSnippet,
    knownHostsLine, sshEndpoint,
} from "../../components/endpoint";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF";
const EC2: EndpointParts = { host: "ec2-198-51-100-7.eu-west-1.compute.amazonaws.com", port: 22, user: "ubuntu", hostPublicKey: KEY, builderName: "buildx-host" };
const LAB: EndpointParts = { host: "127.0.0.1", port: 2222, user: "builder", hostPublicKey: KEY, builderName: "lab" };

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

test("docker context and buildx commands are ready to paste", () => {
    expect(dockerContextCommand(EC2)).toBe("docker context create buildx-host --docker host=ssh://ubuntu@ec2-198-51-100-7.eu-west-1.compute.amazonaws.com");
    expect(buildkitContainerName("lab")).toBe("buildx_buildkit_lab0");
    expect(buildxCreateCommand(LAB)).toBe("docker buildx create --name lab-remote --driver remote 'docker-container://buildx_buildkit_lab0?context=lab' --use");
});

test("a member's GitHub Actions snippet logs in as that member", () => {
    expect(githubActionsSnippet(LAB, "ci")).toContain("    docker context create lab --docker host=ssh://ci@127.0.0.1:2222\n");
});

test("GitHub Actions snippet trusts the pinned host key and attaches to the shared BuildKit", () => {
    expect(githubActionsSnippet(LAB)).toBe([
        "- name: Trust the buildx host",
        "  run: |",
        "    install -m 700 -d ~/.ssh",
        `    echo '[127.0.0.1]:2222 ${KEY}' >> ~/.ssh/known_hosts`,
        "    echo \"${{ secrets.BUILDX_HOST_SSH_KEY }}\" > ~/.ssh/id_ed25519",
        "    chmod 600 ~/.ssh/id_ed25519",
        "    docker context create lab --docker host=ssh://builder@127.0.0.1:2222",
        "- uses: docker/setup-buildx-action@v3",
        "  with:",
        "    driver: remote",
        "    endpoint: docker-container://buildx_buildkit_lab0?context=lab",
        "",
    ].join("\n"));
});
