/**
 * The ready-to-paste ways a teammate or a CI job attaches to the shared builder. Pure formatting,
 * so each format is pinned by a unit test.
 */

/** Where the builder is and who logs in. */
export interface EndpointParts {
    /** Public DNS name or address of the host. */
    readonly host: string;
    readonly port: number;
    /** The account that owns the builder (the host's login user). */
    readonly user: string;
    /** The host's SSH public key, "ssh-ed25519 AAAA…". */
    readonly hostPublicKey: string;
    /** The buildx builder's name on the host; also the name of the clients' docker context. */
    readonly builderName: string;
}

/** The docker-container endpoint of the builder's one BuildKit node (`<name>0`). */
export function buildkitContainerName(builderName: string): string {
    return `buildx_buildkit_${builderName}0`;
}

export function sshEndpoint(parts: EndpointParts, user = parts.user): string {
    // An IPv6 address needs brackets in a URL.
    const host = parts.host.includes(":") ? `[${parts.host}]` : parts.host;
    return parts.port === 22 ? `ssh://${user}@${host}` : `ssh://${user}@${host}:${parts.port}`;
}

/** The line to append to ~/.ssh/known_hosts; OpenSSH writes non-default ports as "[host]:port". */
export function knownHostsLine(parts: EndpointParts): string {
    const hostField = parts.port === 22 ? parts.host : `[${parts.host}]:${parts.port}`;
    return `${hostField} ${parts.hostPublicKey}`;
}

export function dockerContextCommand(parts: EndpointParts, user = parts.user): string {
    return `docker context create ${parts.builderName} --docker host=${sshEndpoint(parts, user)}`;
}

/** Attaches to the host's shared BuildKit through the docker context; clients cannot remove it. */
export function remoteBuilderEndpoint(parts: EndpointParts): string {
    return `docker-container://${buildkitContainerName(parts.builderName)}?context=${parts.builderName}`;
}

/** The client-side builder's name: buildx refuses one named like an existing docker context. */
export function clientBuilderName(builderName: string): string {
    return `${builderName}-remote`;
}

export function buildxCreateCommand(parts: EndpointParts): string {
    return `docker buildx create --name ${clientBuilderName(parts.builderName)} --driver remote '${remoteBuilderEndpoint(parts)}' --use`;
}

/**
 * A GitHub Actions job fragment: trust the host, create the context, attach buildx to the shared
 * BuildKit. The secret BUILDX_HOST_SSH_KEY holds the private key of `user`.
 */
export function githubActionsSnippet(parts: EndpointParts, user = parts.user): string {
    return [
        "- name: Trust the buildx host",
        "  run: |",
        "    install -m 700 -d ~/.ssh",
        `    echo '${knownHostsLine(parts)}' >> ~/.ssh/known_hosts`,
        "    echo \"${{ secrets.BUILDX_HOST_SSH_KEY }}\" > ~/.ssh/id_ed25519",
        "    chmod 600 ~/.ssh/id_ed25519",
        `    ${dockerContextCommand(parts, user)}`,
        "- uses: docker/setup-buildx-action@v3",
        "  with:",
        "    driver: remote",
        `    endpoint: ${remoteBuilderEndpoint(parts)}`,
        "",
    ].join("\n");
}
