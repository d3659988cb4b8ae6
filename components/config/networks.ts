/** Networks in settings: CIDR syntax, the whole internet, and the documentation ranges no client comes from. */
import { BlockList, isIP } from "net";

/** True for an IPv4 or IPv6 CIDR block such as "10.0.0.0/8" or "fd00::/8" (no zone index). */
export function isCidr(value: string): boolean {
    const match = /^([0-9A-Fa-f:.]+)\/(\d{1,3})$/.exec(value);
    const version = match ? isIP(match[1]) : 0;
    return version !== 0 && Number(match![2]) <= (version === 4 ? 32 : 128);
}

/** CIDRs that open SSH to the whole internet. */
export function isOpenToWorld(cidr: string): boolean {
    return /^0\.0\.0\.0\/0$/.test(cidr) || /^::\/0$/.test(cidr);
}

/** The ranges reserved for examples in documentation: no real client has an address in them. */
const DOCUMENTATION_RANGES = ([
    { network: "192.0.2.0", prefix: 24, family: "ipv4", rfc: "RFC 5737" },
    { network: "198.51.100.0", prefix: 24, family: "ipv4", rfc: "RFC 5737" },
    { network: "203.0.113.0", prefix: 24, family: "ipv4", rfc: "RFC 5737" },
    { network: "2001:db8::", prefix: 32, family: "ipv6", rfc: "RFC 3849" },
] as const).map(range => {
    const list = new BlockList();
    list.addSubnet(range.network, range.prefix, range.family);
    return { ...range, list };
});

/**
 * The RFC reserving the documentation range that `network` (a CIDR block or a single address) lies in;
 * undefined when a real client can have an address in it. A wider block that only contains such a
 * range (0.0.0.0/0) is not one: it lets real clients in too.
 */
export function documentationRange(network: string): string | undefined {
    const [address, prefix] = network.split("/");
    const family = isIP(address) === 6 ? "ipv6" : "ipv4";
    const bits = prefix === undefined ? (family === "ipv6" ? 128 : 32) : Number(prefix);
    return DOCUMENTATION_RANGES.find(range => range.family === family && bits >= range.prefix && range.list.check(address, family))?.rfc;
}

/** Why a documentation range in a setting is refused, after the value. */
export function documentationRangeReason(rfc: string): string {
    return `a documentation range (${rfc}): no real client has such an address`;
}

/** The command that prints this machine's public IPv4 address, as the host sees it. */
export const PUBLIC_ADDRESS_COMMAND = "curl -s https://checkip.amazonaws.com";
