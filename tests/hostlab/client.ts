/**
 * A client of the build host, as a teammate or a CI job runs one: a container from the lab's client
 * image (Debian 13 with Debian's docker-cli and a current buildx built from Go modules,
 * tools/build-buildx.sh; host networking) whose home directory
 * holds the user's key and the pinned known_hosts line, attaching with the commands the program
 * outputs and building a two-platform image through the SSH endpoint.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "fs";
import * as path from "path";

import { LabHost, local, localAsync, localOk, logDirectory, RunResult, tail } from "./lab";

/** What a client build produced: its log and the architecture each platform's RUN step reported. */
export interface ClientBuildResult {
    readonly output: string;
    readonly arches: Record<string, string>;
}

/** The platforms every client build asks for: the host's own and one that needs QEMU. */
export const CLIENT_BUILD_PLATFORMS = "linux/amd64,linux/arm64";

export class LabClient {
    private readonly homes = new Map<string, string>();

    /**
     * @param lab the host the client attaches to
     * @param image the client image (tests/hostlab/infra/build-client-image.sh)
     * @param busyboxDir static busybox binaries per architecture (infra/fetch-busybox.sh)
     * @param knownHostsLine the line the client trusts the host with, as the program outputs it
     */
    constructor(private readonly lab: LabHost, readonly image: string, private readonly busyboxDir: string,
                private readonly knownHostsLine: string) {}

    /**
     * A fresh home directory for `user` (named `name`: one user may run several clients, as CI jobs
     * do): the private key, the known_hosts line, strict host key checking.
     */
    home(user: string, key: string, name = user): string {
        const home = path.join(this.lab.stateDir, `client-home-${name}`);
        rmSync(home, { recursive: true, force: true });
        mkdirSync(path.join(home, ".ssh"), { recursive: true, mode: 0o700 });
        copyFileSync(key, path.join(home, ".ssh", "id_ed25519"));
        chmodSync(path.join(home, ".ssh", "id_ed25519"), 0o600);
        writeFileSync(path.join(home, ".ssh", "known_hosts"), `${this.knownHostsLine}\n`);
        writeFileSync(path.join(home, ".ssh", "config"), "Host *\n  StrictHostKeyChecking yes\n  BatchMode yes\n");
        return home;
    }

    /** A build context whose RUN step writes the architecture it ran on to /arch. */
    buildContext(): string {
        const dir = path.join(this.lab.stateDir, "build-context");
        mkdirSync(dir, { recursive: true });
        for (const arch of ["amd64", "arm64"]) {
            copyFileSync(path.join(this.busyboxDir, `busybox-${arch}`), path.join(dir, `busybox-${arch}`));
            chmodSync(path.join(dir, `busybox-${arch}`), 0o755);
        }
        writeFileSync(path.join(dir, "Dockerfile"), [
            "FROM scratch",
            "ARG TARGETARCH",
            "COPY busybox-${TARGETARCH} /bin/busybox",
            'RUN --network=none ["/bin/busybox", "sh", "-c", "/bin/busybox uname -m > /arch"]',
            "",
        ].join("\n"));
        return dir;
    }

    /** Runs `script` in a client container with `home` as its home directory and `mounts` (`src:dest[:ro]`); never throws. */
    private inHome(home: string, script: string, mounts: readonly string[] = []): RunResult {
        return local(this.clientCommand(home, mounts), script);
    }

    /** The command that runs a client container (its script on stdin) with `home` and `mounts`. */
    private clientCommand(home: string, mounts: readonly string[]): string {
        const volumes = [`${home}:/root`, ...mounts].map(mount => `-v '${mount}'`).join(" ");
        return `docker run --rm -i --network host ${volumes} ${this.image} bash -s`;
    }

    /**
     * Attaches a fresh home for `user` with `attachCommands` and asks the builder to answer
     * (`docker buildx inspect --bootstrap`); never throws. A later `build` or `run` as `user` uses that home.
     */
    attach(user: string, key: string, attachCommands: readonly string[], name = user): RunResult {
        const home = this.home(user, key, name);
        const result = this.inHome(home, ["set -euo pipefail", ...attachCommands, "docker buildx inspect --bootstrap"].join("\n"));
        if (result.status === 0) {
            this.homes.set(name, home);
        }
        return result;
    }

    /**
     * Starts a build of `context` for both platforms into `out` (type=local) from the client attached
     * as `name`, alongside whatever else runs; resolves with its result, logged as `label`.
     */
    async buildAlongside(name: string, label: string, context: string, out: string): Promise<RunResult> {
        const home = this.homes.get(name);
        if (home === undefined) {
            throw new Error(`${name} has not attached yet: attach first`);
        }
        rmSync(out, { recursive: true, force: true });
        mkdirSync(out, { recursive: true });
        const result = await localAsync(this.clientCommand(home, [`${context}:/ctx:ro`, `${out}:/out`]),
            `docker buildx build --progress=plain --platform ${CLIENT_BUILD_PLATFORMS} --output type=local,dest=/out /ctx`);
        writeFileSync(path.join(logDirectory(this.lab), `build-${label}.log`), result.stdout + result.stderr);
        return result;
    }

    /**
     * Builds `dockerfile` for the host's own platform as `user`, attached before, with the busybox
     * binaries in its context and `flags` added; never throws.
     */
    buildDockerfile(user: string, label: string, dockerfile: string, flags: readonly string[] = []): RunResult {
        const dir = path.join(this.lab.stateDir, `build-context-${label}`);
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        copyFileSync(path.join(this.busyboxDir, "busybox-amd64"), path.join(dir, "busybox"));
        chmodSync(path.join(dir, "busybox"), 0o755);
        writeFileSync(path.join(dir, "Dockerfile"), dockerfile);
        const home = this.homes.get(user);
        if (home === undefined) {
            throw new Error(`${user} has not attached yet: attach or build first`);
        }
        const result = this.inHome(home,
            `docker buildx build --progress=plain --platform linux/amd64 ${flags.join(" ")} --output type=cacheonly /ctx`, [`${dir}:/ctx:ro`]);
        writeFileSync(path.join(logDirectory(this.lab), `build-${label}.log`), result.stdout + result.stderr);
        return result;
    }

    /** Runs a script in the client container, in the home `user` attached from with `build`. */
    run(user: string, script: string): RunResult {
        const home = this.homes.get(user);
        if (home === undefined) {
            throw new Error(`${user} has not attached yet: build first`);
        }
        return this.inHome(home, script);
    }

    /**
     * Builds for linux/amd64 and linux/arm64 into a local directory as `user`. The first build of a
     * user runs `attachCommands` (the context and buildx commands, exactly as printed) in a new home;
     * later builds reuse that home.
     */
    build(user: string, key: string, label: string, attachCommands: readonly string[]): ClientBuildResult {
        const attached = this.homes.has(user);
        const home = this.homes.get(user) ?? this.home(user, key);
        const out = path.join(this.lab.stateDir, `build-output-${label}`);
        rmSync(out, { recursive: true, force: true });
        mkdirSync(out, { recursive: true });
        const script = [
            "set -euo pipefail",
            ...(attached ? [] : attachCommands),
            `docker buildx build --progress=plain --platform ${CLIENT_BUILD_PLATFORMS} --output type=local,dest=/out /ctx`,
        ].join("\n");
        const result = this.inHome(home, script, [`${this.buildContext()}:/ctx:ro`, `${out}:/out`]);
        const output = result.stdout + result.stderr;
        writeFileSync(path.join(logDirectory(this.lab), `build-${label}.log`), output);
        if (result.status !== 0) {
            throw new Error(`client build (${label}, as ${user}) failed with exit ${result.status}:\n${tail(output, 60)}`);
        }
        this.homes.set(user, home);
        const arches: Record<string, string> = {};
        for (const platform of ["linux_amd64", "linux_arm64"]) {
            const file = path.join(out, platform, "arch");
            arches[platform] = existsSync(file) ? readFileSync(file, "utf8").trim() : "(missing)";
        }
        return { output, arches };
    }
}

/**
 * Whether BuildKit took every COPY and RUN step of a plain-progress build log from its cache, and how
 * many RUN steps there were (one per platform).
 */
export function cacheUse(output: string): { runSteps: number; allCached: boolean } {
    const stepIds = new Set<string>();
    const runIds = new Set<string>();
    const cached = new Set<string>();
    for (const line of output.split("\n")) {
        const named = /^#(\d+) \[(?:linux\/\w+ )?(?:[\w.-]+ )?\d+\/\d+\] (COPY|RUN) /.exec(line);
        if (named) {
            stepIds.add(named[1]);
            if (named[2] === "RUN") {
                runIds.add(named[1]);
            }
        }
        const hit = /^#(\d+) CACHED$/.exec(line.trim());
        if (hit) {
            cached.add(hit[1]);
        }
    }
    return { runSteps: runIds.size, allCached: stepIds.size > 0 && [...stepIds].every(id => cached.has(id)) };
}

export function waitFor(what: string, seconds: number, check: () => boolean): void {
    const deadline = Date.now() + seconds * 1000;
    while (!check()) {
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${seconds}s waiting for ${what}`);
        }
        localOk("sleep 2");
    }
}
