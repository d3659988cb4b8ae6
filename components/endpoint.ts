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

/** The action the GitHub Actions snippet attaches buildx with: its current major, v4 (node24). */
export const SETUP_BUILDX_ACTION = "docker/setup-buildx-action@v4";

/**
 * GitHub Actions steps to paste under a job's `steps:` (indented alike): trust the pinned host key,
 * give ssh the key for this host, create the docker context, attach buildx to the shared BuildKit.
 * The repository secret BUILDX_HOST_SSH_KEY holds the private key of `user`; it reaches the shell
 * through `env:`, never interpolated into the script, and its file is private from the start
 * (umask). Every line is idempotent, so a reused self-hosted runner can run it again.
 */
export function githubActionsSnippet(parts: EndpointParts, user = parts.user): string {
    const keyFile = `~/.ssh/${parts.builderName}.key`;
    const knownHosts = knownHostsLine(parts);
    const hostBlock = `Host ${parts.host}`;
    return [
        "- name: Trust the buildx host and create its docker context",
        "  env:",
        "    BUILDX_HOST_SSH_KEY: ${{ secrets.BUILDX_HOST_SSH_KEY }}",
        "  run: |",
        "    umask 077",
        "    mkdir -p ~/.ssh",
        // A file left by an earlier job would keep its mode: write a new one.
        `    rm -f ${keyFile}`,
        `    printf '%s\\n' "$BUILDX_HOST_SSH_KEY" > ${keyFile}`,
        `    grep -qxF '${knownHosts}' ~/.ssh/known_hosts 2>/dev/null || echo '${knownHosts}' >> ~/.ssh/known_hosts`,
        `    grep -qxF '${hostBlock}' ~/.ssh/config 2>/dev/null || printf '${hostBlock}\\n  IdentityFile ${keyFile}\\n  IdentitiesOnly yes\\n' >> ~/.ssh/config`,
        `    docker context inspect ${parts.builderName} >/dev/null 2>&1 || ${dockerContextCommand(parts, user)}`,
        "- name: Attach buildx to the shared builder",
        `  uses: ${SETUP_BUILDX_ACTION}`,
        "  with:",
        "    driver: remote",
        `    endpoint: ${remoteBuilderEndpoint(parts)}`,
        "",
    ].join("\n");
}
