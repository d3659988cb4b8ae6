/** SSH keys in settings: public keys checked by their type, private keys by their shape, never echoed. */
import { SSH_KEY_TYPES } from "../host-facts";
import { Reader } from "./reader";

const KEY_TYPES = new Set<string>(SSH_KEY_TYPES);

/**
 * Checks that `line` is an OpenSSH public key: a known type followed by base64 whose embedded
 * type name matches it (the first field of the decoded blob).
 */
export function isSshPublicKey(line: string): boolean {
    const [type, blob] = line.trim().split(/\s+/);
    if (!type || !blob || !KEY_TYPES.has(type) || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) {
        return false;
    }
    const bytes = Buffer.from(blob, "base64");
    if (bytes.length < 4) {
        return false;
    }
    const nameLength = bytes.readUInt32BE(0);
    return bytes.length >= 4 + nameLength && bytes.subarray(4, 4 + nameLength).toString("latin1") === type;
}

/**
 * Whether a private key is protected by a passphrase: a PEM key with an ENCRYPTED header or in
 * PKCS#8's encrypted form, or an OpenSSH key whose cipher (after "openssh-key-v1\0") is not "none".
 */
export function isEncryptedPrivateKey(key: string): boolean {
    if (/^-----BEGIN ENCRYPTED PRIVATE KEY-----|^Proc-Type: 4,ENCRYPTED/m.test(key)) {
        return true;
    }
    const body = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(key)?.[1];
    if (body === undefined) {
        return false;
    }
    const bytes = Buffer.from(body.replace(/\s+/g, ""), "base64");
    const magic = "openssh-key-v1\0";
    if (bytes.length < magic.length + 4 || bytes.subarray(0, magic.length).toString("latin1") !== magic) {
        return false;
    }
    const cipherLength = bytes.readUInt32BE(magic.length);
    return bytes.subarray(magic.length + 4, magic.length + 4 + cipherLength).toString("latin1") !== "none";
}

/**
 * Checks a secret private key's shape without ever echoing it. The login key must be OpenSSH
 * (its public half is derived from that format); the SSH client also reads PEM keys.
 */
export function readPrivateKeyPresence(r: Reader, key: string, { required, opensshOnly }: { required: boolean; opensshOnly: boolean }): boolean {
    const example = `--secret ${key} < ~/.ssh/id_ed25519`;
    const value = r.string(key);
    if (value === undefined) {
        if (required) {
            r.problem(key, "is required in existing mode", example);
        }
        return false;
    }
    const accepted = opensshOnly ? /^-----BEGIN OPENSSH PRIVATE KEY-----/ : /^-----BEGIN (OPENSSH|RSA|EC) PRIVATE KEY-----/;
    if (!r.storedAsSecret(key)) {
        r.problem(key, "is stored in plain text in the stack's settings file (value not shown); store it encrypted", example);
    }
    if (!accepted.test(value)) {
        r.problem(key, opensshOnly
            ? "is not an OpenSSH private key (value not shown; `ssh-keygen -p -f KEY` rewrites a PEM key in OpenSSH format)"
            : "is not a PEM or OpenSSH private key (value not shown)", example);
    } else if (isEncryptedPrivateKey(value)) {
        // The SSH connection could take a passphrase, but it would be one more stack secret beside the key,
        // under the same protection; and the login key's public half is derived without one.
        r.problem(key, "is protected by a passphrase, which `pulumi up` cannot type (value not shown); use a key without " +
            "one, made for this host (ssh-keygen -t ed25519 -N '' -f ~/.ssh/buildx-host), or remove the passphrase " +
            "from a copy (ssh-keygen -p -N '' -f COPY)", example);
    }
    return true;
}
