/** Settings of an existing server reached over SSH: the single host's keys, or a fleet node's own. */
import { isIPv6 } from "net";

import { Reader } from "./reader";
import { DEFAULTS, ExistingHostSettings } from "./settings";
import { isSshPublicKey, readPrivateKeyPresence } from "./ssh-keys";
import { LINUX_USER_NAME } from "./team";

/** Where an existing host's settings are read: the stack's keys for the single host, a node's own for a fleet node. */
export interface ExistingHostKeys {
    readonly address: string;
    readonly port: string;
    readonly user: string;
    readonly hostPublicKey: string;
    readonly privateKey: string;
}

export const SINGLE_HOST_KEYS: ExistingHostKeys = {
    address: "existingHostAddress", port: "existingHostPort", user: "existingHostUser",
    hostPublicKey: "existingHostPublicKey", privateKey: "existingHostPrivateKey",
};

export const NODE_HOST_KEYS: ExistingHostKeys = {
    address: "address", port: "port", user: "user", hostPublicKey: "hostPublicKey", privateKey: "privateKey",
};

export function readExistingHostSettings(r: Reader, keys: ExistingHostKeys): ExistingHostSettings {
    const addressExample = `${keys.address} build1.example.com`;
    const address = r.matching(keys.address, /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^[0-9a-fA-F:]*:[0-9a-fA-F:]*$/,
        `must be a host name or IP address, without a port (that is ${keys.port})`, addressExample);
    if (address?.includes(":") && !isIPv6(address)) {
        r.problem(keys.address, `"${address}" is not an IPv6 address; give the port in ${keys.port}`, `${keys.port} 2222`);
    }
    if (!r.has(keys.address)) {
        r.problem(keys.address, "is required in existing mode", addressExample);
    }
    const user = r.matching(keys.user, LINUX_USER_NAME, "must be a Linux user name", `${keys.user} ubuntu`);
    if (!r.has(keys.user)) {
        r.problem(keys.user, "is required in existing mode: a user with passwordless sudo", `${keys.user} ubuntu`);
    }
    const hostPublicKey = r.string(keys.hostPublicKey);
    const port = r.string(keys.port, String(DEFAULTS.existingHostPort));
    const hostKeyExample = `${keys.hostPublicKey} "$(ssh-keyscan ${port === "22" ? "" : `-p ${port} `}-t ed25519 ${address || "build1.example.com"} | cut -d' ' -f2-)"`;
    if (hostPublicKey === undefined) {
        r.problem(keys.hostPublicKey, "is required in existing mode: the host's SSH public key, pinned on every connection", hostKeyExample);
    } else if (!isSshPublicKey(hostPublicKey) && isSshPublicKey(hostPublicKey.split(/\s+/).slice(1).join(" "))) {
        r.problem(keys.hostPublicKey, `starts with "${hostPublicKey.split(/\s+/)[0]}", the host name of a known_hosts line; ` +
            "give only the key type and the key", hostKeyExample);
    } else if (!isSshPublicKey(hostPublicKey)) {
        r.problem(keys.hostPublicKey, "is not an SSH public key", hostKeyExample);
    } else if (hostPublicKey.startsWith("ssh-rsa ")) {
        // @pulumi/command offers a pinned RSA key's type as its only algorithm, ssh-rsa (SHA-1), which OpenSSH 8.8+ refuses.
        r.problem(keys.hostPublicKey, "is an RSA key, which the SSH connection can only verify with SHA-1 signatures " +
            "that OpenSSH 8.8 and later refuse; pin the server's ed25519 (or ECDSA) key", hostKeyExample);
    }
    readPrivateKeyPresence(r, keys.privateKey, { required: true, opensshOnly: false });
    return {
        address: address ?? "",
        port: r.integer(keys.port, DEFAULTS.existingHostPort, 1, 65535, `${keys.port} 2222`),
        user: user ?? "",
        hostPublicKey: (hostPublicKey ?? "").split(/\s+/).slice(0, 2).join(" "),
    };
}
