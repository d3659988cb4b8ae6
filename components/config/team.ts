/** Team members: a Linux account each, with every SSH key listed for them. */
import { PATTERNS } from "../host-facts";
import { Reader } from "./reader";
import { TeamMember } from "./settings";
import { isSshPublicKey } from "./ssh-keys";

export const LINUX_USER_NAME = new RegExp(PATTERNS.accountName);

/** Accounts the host already has or this project uses itself. */
const RESERVED_USER_NAMES = new Set(["root", "ubuntu", "admin", "debian", "docker", "daemon", "bin", "sys", "nobody", "sshd", "syslog"]);

const KEY_EXAMPLE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICMuitBm3Na3mokQbnQlnPS+q4yZBeoCIqm3SvbczITp alice@laptop";

/**
 * Team members; `loginUsers` (existing hosts' users) are taken, as are system accounts. A member
 * listed more than once gets every key listed (a laptop and a CI job, say).
 */
export function readTeam(r: Reader, loginUsers: readonly string[]): readonly TeamMember[] {
    const example = `--path 'team[0]' "alice ${KEY_EXAMPLE}"`;
    const keysOf = new Map<string, string[]>();
    for (const entry of r.stringList("team", [], example)) {
        const [name, ...keyFields] = entry.split(/\s+/);
        const sshPublicKey = keyFields.join(" ");
        if (!LINUX_USER_NAME.test(name) || RESERVED_USER_NAMES.has(name)) {
            r.problem("team", `member "${name}" is not a usable Linux user name (lowercase letters, digits, _ and -, ` +
                "at most 32, not a system account)", example);
        } else if (loginUsers.includes(name)) {
            r.problem("team", `member "${name}" is the login user of an existing host, whose account the team step must not take over`, example);
        } else if (!isSshPublicKey(sshPublicKey)) {
            r.problem("team", `member "${name}" has no valid SSH public key after the name`, example);
        } else if (keysOf.get(name)?.some(key => sameKey(key, sshPublicKey))) {
            r.problem("team", `lists the same key of member "${name}" twice`, example);
        } else {
            keysOf.set(name, [...keysOf.get(name) ?? [], sshPublicKey]);
        }
    }
    return [...keysOf].map(([name, sshPublicKeys]) => ({ name, sshPublicKeys }));
}

/** Same key type and key material, whatever the comments. */
function sameKey(a: string, b: string): boolean {
    return a.split(/\s+/).slice(0, 2).join(" ") === b.split(/\s+/).slice(0, 2).join(" ");
}
