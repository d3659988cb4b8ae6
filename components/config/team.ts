/** Team members: a Linux account each behind the member door, with every SSH key listed for them. */
import { MEMBERS_GROUP, PATTERNS } from "../host-facts";
import { documentationRange, documentationRangeReason, isCidr, PUBLIC_ADDRESS_COMMAND } from "./networks";
import { Reader } from "./reader";
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
    const example = (index: number) => `--path 'team[${index}]' "alice ${KEY_EXAMPLE}"`;
    const keysOf = new Map<string, MemberKey[]>();
    r.stringList("team", [], example(0)).forEach((entry, index) => {
        const key = `team[${index}]`;
        const [name, ...fields] = entry.split(/\s+/);
        const from = fields[0]?.startsWith("from=") ? fields.shift()!.slice("from=".length).split(",") : [];
        const sshPublicKey = fields.join(" ");
        const documentation = from.filter(network => documentationRange(network) !== undefined);
        if (!LINUX_USER_NAME.test(name) || RESERVED_USER_NAMES.has(name)) {
            r.problem(key, `member "${name}" is not a usable Linux user name (lowercase letters, digits, _ and -, ` +
                "at most 32, not a system account)", example(index));
        } else if (loginUsers.includes(name)) {
            r.problem(key, `member "${name}" is the login user of an existing host, whose account the team step must not take over`, example(index));
        } else if (from.some(network => !isCidr(network) && !isAddress(network))) {
            r.problem(key, `member "${name}" has from=${from.join(",")}, which is not a list of addresses or CIDR blocks`,
                `--path '${key}' "${name} from=10.1.2.3/32,192.168.7.0/24 ${KEY_EXAMPLE}"`);
        } else if (documentation.length > 0) {
            // Ready to paste: the same entry without the documentation ranges (without from= if nothing else is left).
            const rest = from.filter(network => !documentation.includes(network));
            r.problem(key, `member "${name}" has from=${documentation.join(",")}, ` +
                `${documentationRangeReason(documentationRange(documentation[0])!)}, so this key could never log in; ` +
                `give the addresses the member really connects from (\`${PUBLIC_ADDRESS_COMMAND}\` on their machine prints theirs), or no from=`,
                `--path '${key}' "${[name, ...rest.length > 0 ? [`from=${rest.join(",")}`] : [], sshPublicKey].join(" ")}"`);
        } else if (!isSshPublicKey(sshPublicKey)) {
            r.problem(key, `member "${name}" has no valid SSH public key after the name`, example(index));
        } else if (keysOf.get(name)?.some(known => sameKey(known.sshPublicKey, sshPublicKey))) {
            r.problem(key, `lists the same key of member "${name}" twice`, example(index));
        } else {
            keysOf.set(name, [...keysOf.get(name) ?? [], { sshPublicKey, from }]);
        }
    });
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
