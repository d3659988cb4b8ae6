/** Team members: a Linux account each behind the member door, with every SSH key listed for them. */
import { MEMBERS_GROUP, PATTERNS } from "../host-facts";
import { Reader } from "./reader";
import { isCidr } from "./ec2";
import { MemberKey, TeamMember } from "./settings";
import { isSshPublicKey } from "./ssh-keys";

export const LINUX_USER_NAME = new RegExp(PATTERNS.accountName);

/** Accounts the host already has or this project uses itself. */
const RESERVED_USER_NAMES = new Set(["root", "ubuntu", "admin", "debian", "docker", "daemon", "bin", "sys", "nobody", "sshd", "syslog", MEMBERS_GROUP]);

const KEY_EXAMPLE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICMuitBm3Na3mokQbnQlnPS+q4yZBeoCIqm3SvbczITp alice@laptop";

/**
 * Team members; `loginUsers` (existing hosts' users) are taken, as are system accounts. A member
 * listed more than once gets every key listed (a laptop and a CI job, say). An entry may limit its
 * key to source networks: "<name> from=<cidr>[,<cidr>…] <key>".
 */
export function readTeam(r: Reader, loginUsers: readonly string[]): readonly TeamMember[] {
    const example = `--path 'team[0]' "alice ${KEY_EXAMPLE}"`;
    const fromExample = `--path 'team[0]' "ci from=198.51.100.7/32 ${KEY_EXAMPLE}"`;
    const keysOf = new Map<string, MemberKey[]>();
    for (const entry of r.stringList("team", [], example)) {
        const [name, ...fields] = entry.split(/\s+/);
        const from = fields[0]?.startsWith("from=") ? fields.shift()!.slice("from=".length).split(",") : [];
        const sshPublicKey = fields.join(" ");
        if (!LINUX_USER_NAME.test(name) || RESERVED_USER_NAMES.has(name)) {
            r.problem("team", `member "${name}" is not a usable Linux user name (lowercase letters, digits, _ and -, ` +
                "at most 32, not a system account)", example);
        } else if (loginUsers.includes(name)) {
            r.problem("team", `member "${name}" is the login user of an existing host, whose account the team step must not take over`, example);
        } else if (from.some(cidr => !isCidr(cidr) && !isAddress(cidr))) {
            r.problem("team", `member "${name}" has from=${from.join(",")}, which is not a list of addresses or CIDR blocks`, fromExample);
        } else if (!isSshPublicKey(sshPublicKey)) {
            r.problem("team", `member "${name}" has no valid SSH public key after the name`, example);
        } else if (keysOf.get(name)?.some(key => sameKey(key.sshPublicKey, sshPublicKey))) {
            r.problem("team", `lists the same key of member "${name}" twice`, example);
        } else {
            keysOf.set(name, [...keysOf.get(name) ?? [], { sshPublicKey, from }]);
        }
    }
    return [...keysOf].map(([name, keys]) => ({ name, keys }));
}

/** A single IPv4 or IPv6 address, as sshd's from= takes it. */
function isAddress(value: string): boolean {
    return isCidr(`${value}/${value.includes(":") ? 128 : 32}`);
}

/** Same key type and key material, whatever the comments. */
function sameKey(a: string, b: string): boolean {
    return a.split(/\s+/).slice(0, 2).join(" ") === b.split(/\s+/).slice(0, 2).join(" ");
}
