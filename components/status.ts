/**
 * The administrator's status view of the shared builder: one command per build host that prints
 * whether BuildKit answers, its version, its cache against the GC limits, free disk, the builds
 * running now and the last few with duration and cache-hit share (components/status/node-status.sh).
 */
import { readFileSync } from "fs";
import * as path from "path";
import { gzipSync } from "zlib";

import { EndpointParts } from "./endpoint";

export const NODE_STATUS_SCRIPT_PATH = path.join(__dirname, "status", "node-status.sh");

/** A build host as the status view names it. */
export interface StatusNode {
    readonly name: string;
    readonly parts: EndpointParts;
}

/** How many finished builds each node lists. */
export const STATUS_LAST_BUILDS = 5;

/**
 * One line per node: `ssh` as the login user, the script carried in the command itself (gzip,
 * base64: no file to fetch, and the same line runs from bash, zsh, PowerShell and cmd), run as root
 * for Docker and the cache volume's filesystem. A node SSH cannot reach says so and the next still runs.
 */
export function statusCommand(nodes: readonly StatusNode[]): string {
    const compressed = gzipSync(readFileSync(NODE_STATUS_SCRIPT_PATH));
    // The gzip header names the OS zlib was built for: "unknown", so the output is the same wherever `pulumi up` runs.
    compressed[9] = 255;
    const script = compressed.toString("base64");
    return nodes.map(({ name, parts }) =>
        `ssh -o ConnectTimeout=10 -p ${parts.port} ${parts.user}@${parts.host} ` +
        `"echo ${script} | base64 -d | gunzip | sudo -n bash -s -- ${name} ${parts.builderName} ${STATUS_LAST_BUILDS}"` +
        ` || echo "node ${name}: NOT REACHABLE over SSH"`).join("\n");
}
