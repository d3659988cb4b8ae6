// @ts-check
/**
 * Host key probe: tells "the SSH server does not answer yet" from "it answers with another host key
 * than the pinned one", before the host steps connect with that pinned key.
 *
 * Why: a new instance refuses SSH while it boots, so something must dial patiently; @pulumi/command
 * counts a host key mismatch as one more dial error, so its own patient dialling made a wrong pinned
 * key hang `pulumi up` until the timeout ("context canceled"). This probe does the waiting instead,
 * and fails at once on a mismatch; the steps after it dial with the provider's bounded retries.
 *
 * A local.Command runs it as `node -` with this file's text on stdin, so it is one CommonJS script
 * using only Node built-ins (Node 20+). Its inputs are environment variables:
 *   PROBE_HOST                     the SSH server: IPv4, IPv6 or DNS name (required)
 *   PROBE_PORT                     its port (required)
 *   PROBE_PINNED_KEY               the pinned key, "<type> <base64> [comment]" (required)
 *   PROBE_PINNED_KEY_SETTING       where the pinned key comes from, named in messages (required)
 *   PROBE_TIMEOUT_SECONDS          how long "not reachable yet" may last (default 900)
 *   PROBE_RETRY_SECONDS            pause between attempts (default 5)
 *   PROBE_CONNECT_TIMEOUT_SECONDS  bound of one attempt, from connect to the server's key (default 10)
 * Exit 0: the server presented the pinned key; one JSON line on stdout.
 * Exit 1: on stderr, "host key mismatch: …" (at once), "host not reachable: …" (at the deadline)
 *         or "SSH handshake failed: …" (at once: the server speaks no key exchange we know).
 * Exit 2: bad input; the message names the variable.
 *
 * It goes into the SSH transport protocol (RFC 4253) only as far as the server's host key:
 * identification strings, KEXINIT, and the first key exchange message, whose reply carries the
 * key (K_S). It neither finishes the key exchange nor checks the server's signature: the real
 * connection after it does both against the pinned key. It tells a mismatch early; it does not
 * authenticate the host.
 *
 * `require`d (by the unit tests) it only exports its helpers; it runs when given on stdin or as a file.
 */
"use strict";

const crypto = require("crypto");
const net = require("net");

const EXIT_BAD_INPUT = 2;
const EXIT_FAILED = 1;
const DEFAULTS = { timeoutSeconds: 900, retrySeconds: 5, connectTimeoutSeconds: 10 };
/** A waiting probe says why at most this often, so a 15-minute boot does not flood the log. */
const WAIT_LOG_INTERVAL_MS = 30_000;

const OUR_IDENTIFICATION = "SSH-2.0-buildx_host_key_probe";
/** Pre-identification lines (RFC 4253 §4.2) beyond this are not an SSH server. */
const MAX_PREAMBLE_BYTES = 64 * 1024;
/** OpenSSH's limit; a longer "packet" is garbage, not a server we would wait for. */
const MAX_PACKET_BYTES = 256 * 1024;

/** Message numbers, RFC 4250 §4.1.2 (30 and 31 are shared by DH, RFC 4253 §8, and ECDH, RFC 5656 §7.1). */
const MSG = { DISCONNECT: 1, IGNORE: 2, UNIMPLEMENTED: 3, DEBUG: 4, KEXINIT: 20, KEX_INIT: 30, KEX_REPLY: 31 };
/** Disconnect reason codes, RFC 4253 §11.1. */
const DISCONNECT_KEY_EXCHANGE_FAILED = 3;
const DISCONNECT_BY_APPLICATION = 11;

/**
 * Host key types and the signature algorithms that authenticate them, in our order of preference
 * (RFC 8709 ed25519, RFC 5656 ecdsa, RFC 8332 rsa-sha2-*: an RSA key is always "ssh-rsa" in its blob).
 * @type {Readonly<Record<string, readonly string[]>>}
 */
const HOST_KEY_ALGORITHMS = {
    "ssh-ed25519": ["ssh-ed25519"],
    "ecdsa-sha2-nistp256": ["ecdsa-sha2-nistp256"],
    "ecdsa-sha2-nistp384": ["ecdsa-sha2-nistp384"],
    "ecdsa-sha2-nistp521": ["ecdsa-sha2-nistp521"],
    "ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
};

/**
 * Key exchange methods we can start, each making the payload of our first message (number 30):
 * an ephemeral public key, as a string for ECDH (RFC 5656 §4, RFC 8731 §3) or an mpint for DH (RFC 4253 §8).
 * The secret half is thrown away: we stop at the server's reply.
 * @type {Readonly<Record<string, () => Buffer>>}
 */
const KEX_METHODS = {
    "curve25519-sha256": x25519PublicKey,
    "curve25519-sha256@libssh.org": x25519PublicKey,
    "ecdh-sha2-nistp256": () => encodeString(crypto.createECDH("prime256v1").generateKeys()),
    "ecdh-sha2-nistp384": () => encodeString(crypto.createECDH("secp384r1").generateKeys()),
    "ecdh-sha2-nistp521": () => encodeString(crypto.createECDH("secp521r1").generateKeys()),
    "diffie-hellman-group16-sha512": () => encodeMpint(crypto.getDiffieHellman("modp16").generateKeys()),
    "diffie-hellman-group14-sha256": () => encodeMpint(crypto.getDiffieHellman("modp14").generateKeys()),
};

/**
 * What we offer besides kex and host key: never used (we stop before encryption starts), but the
 * server negotiates them as soon as it has our KEXINIT and drops us if nothing matches (RFC 4253 §7.1).
 * These are what the real client (Go's x/crypto/ssh) supports, so no match means it cannot connect either.
 */
const CIPHERS = ["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
    "aes128-ctr", "aes192-ctr", "aes256-ctr"];
/** AEAD ciphers carry their own integrity: a server that picks one negotiates no MAC. */
const AEAD_CIPHERS = new Set(["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]);
const MACS = ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512",
    "hmac-sha1"];
const COMPRESSION = ["none"];

/** Bad input: exit 2. */
class InputError extends Error {
    /** @param {string} variable @param {string} problem */
    constructor(variable, problem) {
        super(`${variable}: ${problem}`);
        this.name = "InputError";
        this.variable = variable;
    }
}

/** One attempt found no SSH server answering yet: wait and try again. */
class NotReachable extends Error {
    constructor(/** @type {string} */ reason) {
        super(reason);
        this.name = "NotReachable";
    }
}

/** A failure that waiting will not cure: exit 1 at once, with this message. */
class ProbeFailure extends Error {
    constructor(/** @type {string} */ message) {
        super(message);
        this.name = "ProbeFailure";
    }
}

/** The server said it has no host key of the types we offered (a mismatch, though it showed no key). */
class NoCommonHostKey extends Error {
    constructor(/** @type {string} */ detail) {
        super(detail);
        this.name = "NoCommonHostKey";
    }
}

/** @typedef {{ type: string, blob: Buffer }} HostKey */
/** @typedef {{ host: string, port: number, pinned: HostKey, setting: string, timeoutSeconds: number,
 *              retrySeconds: number, connectTimeoutSeconds: number }} Settings */
/** @typedef {{ kex: string[], hostKey: string[], cipherC2S: string[], cipherS2C: string[], macC2S: string[],
 *              macS2C: string[], compressionC2S: string[], compressionS2C: string[] }} AlgorithmLists */

// ---------------------------------------------------------------------------------------------------------
// Inputs

/**
 * Parses an authorized_keys-style line: a host key type, the base64 key blob whose first field repeats
 * the type (RFC 4253 §6.6), and an optional comment.
 * @param {string} line
 * @returns {HostKey}
 */
function parsePinnedKey(line, variable = "PROBE_PINNED_KEY") {
    const example = "e.g. \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… comment\"";
    const [type, base64] = line.trim().split(/\s+/);
    if (!type || !base64) {
        throw new InputError(variable, `expected "<type> <base64 key> [comment]", ${example}`);
    }
    if (!Object.hasOwn(HOST_KEY_ALGORITHMS, type)) {
        throw new InputError(variable, `"${type}" is not a host key type this probe knows ` +
            `(${Object.keys(HOST_KEY_ALGORITHMS).join(", ")}); ${example}`);
    }
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) {
        throw new InputError(variable, `the key after "${type}" is not base64; ${example}`);
    }
    const blob = Buffer.from(base64, "base64");
    let embeddedType;
    try {
        embeddedType = new Fields(blob).string().toString("latin1");
    } catch {
        embeddedType = undefined;
    }
    if (embeddedType !== type) {
        throw new InputError(variable, `the base64 key is not a ${type} key` +
            (embeddedType === undefined ? "" : ` (it says ${JSON.stringify(embeddedType)})`) + `; ${example}`);
    }
    return { type, blob };
}

/**
 * Reads and checks the environment. Empty optional variables take their defaults.
 * @param {NodeJS.ProcessEnv} env
 * @returns {Settings}
 */
function readSettings(env) {
    /** @param {string} name */
    const required = name => {
        const value = (env[name] ?? "").trim();
        if (value === "") {
            throw new InputError(name, "is not set");
        }
        return value;
    };
    /** @param {string} name @param {number} fallback */
    const seconds = (name, fallback) => {
        const value = (env[name] ?? "").trim();
        if (value === "") {
            return fallback;
        }
        if (!/^\d+(\.\d+)?$/.test(value) || Number(value) <= 0) {
            throw new InputError(name, `must be a positive number of seconds, got ${JSON.stringify(value)}`);
        }
        return Number(value);
    };

    const host = required("PROBE_HOST").replace(/^\[(.*)\]$/, "$1");
    if (/\s/.test(host)) {
        throw new InputError("PROBE_HOST", `must be an IP address or DNS name, got ${JSON.stringify(host)}`);
    }
    const portText = required("PROBE_PORT");
    const port = Number(portText);
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
        throw new InputError("PROBE_PORT", `must be a TCP port (1-65535), got ${JSON.stringify(portText)}`);
    }
    return {
        host,
        port,
        pinned: parsePinnedKey(required("PROBE_PINNED_KEY")),
        setting: required("PROBE_PINNED_KEY_SETTING"),
        timeoutSeconds: seconds("PROBE_TIMEOUT_SECONDS", DEFAULTS.timeoutSeconds),
        retrySeconds: seconds("PROBE_RETRY_SECONDS", DEFAULTS.retrySeconds),
        connectTimeoutSeconds: seconds("PROBE_CONNECT_TIMEOUT_SECONDS", DEFAULTS.connectTimeoutSeconds),
    };
}

// ---------------------------------------------------------------------------------------------------------
// Keys and names

/**
 * The fingerprint OpenSSH prints (`ssh-keygen -l`): SHA-256 of the key blob, base64 without padding.
 * @param {Buffer} blob
 */
function fingerprint(blob) {
    return `SHA256:${crypto.createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/**
 * The host key algorithms we offer: those of the pinned type first, so a server that has such a key
 * shows that one, then all others, so a server without one still shows what it has.
 * @param {string} pinnedType
 */
function hostKeyAlgorithmsFor(pinnedType) {
    const others = Object.keys(HOST_KEY_ALGORITHMS).filter(type => type !== pinnedType);
    return [pinnedType, ...others].flatMap(type => HOST_KEY_ALGORITHMS[type]);
}

/** "host:port", with brackets around an IPv6 address. @param {string} host @param {number} port */
function endpoint(host, port) {
    return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The `ssh-keyscan -t` name of a key type. @param {string} type */
function keyscanType(type) {
    return type === "ssh-rsa" ? "rsa" : type.startsWith("ecdsa-") ? "ecdsa" : type.replace(/^ssh-/, "");
}

// ---------------------------------------------------------------------------------------------------------
// SSH wire format

/** Reads the data types of RFC 4251 §5 from a message; running past its end means a malformed message. */
class Fields {
    /** @param {Buffer} buffer */
    constructor(buffer, offset = 0) {
        this.buffer = buffer;
        this.offset = offset;
    }

    /** @param {number} length */
    take(length) {
        if (this.offset + length > this.buffer.length) {
            throw new NotReachable("the server sent a malformed SSH message");
        }
        const bytes = this.buffer.subarray(this.offset, this.offset + length);
        this.offset += length;
        return bytes;
    }

    byte() { return this.take(1)[0]; }
    boolean() { return this.byte() !== 0; }
    uint32() { return this.take(4).readUInt32BE(0); }
    string() { return this.take(this.uint32()); }
    nameList() {
        const text = this.string().toString("latin1");
        return text === "" ? [] : text.split(",");
    }
}

/** @param {number} value */
function encodeUint32(value) {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32BE(value, 0);
    return bytes;
}

/** A length-prefixed string (RFC 4251 §5). @param {Buffer | string} value */
function encodeString(value) {
    const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : value;
    return Buffer.concat([encodeUint32(bytes.length), bytes]);
}

/** A non-negative mpint (RFC 4251 §5): big-endian, no leading zeros, a zero byte if the top bit is set. @param {Buffer} magnitude */
function encodeMpint(magnitude) {
    let start = 0;
    while (start < magnitude.length && magnitude[start] === 0) {
        start++;
    }
    const digits = magnitude.subarray(start);
    return encodeString(digits.length > 0 && digits[0] & 0x80 ? Buffer.concat([Buffer.from([0]), digits]) : digits);
}

/** @param {readonly string[]} names */
function encodeNameList(names) {
    return encodeString(names.join(","));
}

/** Our X25519 ephemeral public key, the raw 32 bytes (RFC 8731 §3), as a string. */
function x25519PublicKey() {
    const { publicKey } = crypto.generateKeyPairSync("x25519");
    const jwk = publicKey.export({ format: "jwk" });
    return encodeString(Buffer.from(/** @type {string} */ (jwk.x), "base64url"));
}

/**
 * Wraps a payload in the binary packet of RFC 4253 §6, before any encryption: length, padding length,
 * payload, 4+ random bytes of padding so the whole is a multiple of 8, and no MAC.
 * @param {Buffer} payload
 */
function encodePacket(payload) {
    let padding = 8 - ((4 + 1 + payload.length) % 8);
    if (padding < 4) {
        padding += 8;
    }
    return Buffer.concat([
        encodeUint32(1 + payload.length + padding), Buffer.from([padding]), payload, crypto.randomBytes(padding),
    ]);
}

/**
 * Takes one binary packet (RFC 4253 §6) off the front of `buffer`, if it is all there.
 * @param {Buffer} buffer
 * @returns {{ value: Buffer, used: number } | undefined} the payload and the bytes it took
 */
function takePacket(buffer) {
    if (buffer.length < 4) {
        return undefined;
    }
    const length = buffer.readUInt32BE(0);
    if (length < 5 || length > MAX_PACKET_BYTES) {
        throw new NotReachable(`the server sent no SSH packet (a length of ${length} bytes)`);
    }
    if (buffer.length < 4 + length) {
        return undefined;
    }
    const padding = buffer[4];
    if (padding < 4 || padding > length - 1) {
        throw new NotReachable("the server sent a malformed SSH packet");
    }
    return { value: buffer.subarray(5, 4 + length - padding), used: 4 + length };
}

/**
 * Takes one line (ended by LF, CR optional: RFC 4253 §4.2) off the front of `buffer`, if it is all there.
 * @param {Buffer} buffer
 * @returns {{ value: string, used: number } | undefined}
 */
function takeLine(buffer) {
    const end = buffer.indexOf(0x0a);
    if (end < 0) {
        return undefined;
    }
    return { value: buffer.subarray(0, end).toString("latin1").replace(/\r$/, ""), used: end + 1 };
}

/** @param {AlgorithmLists} lists */
function encodeKexinit(lists) {
    // RFC 4253 §7.1: the message number, a random cookie, ten name-lists, first_kex_packet_follows, reserved.
    return Buffer.concat([
        Buffer.from([MSG.KEXINIT]), crypto.randomBytes(16),
        ...[lists.kex, lists.hostKey, lists.cipherC2S, lists.cipherS2C, lists.macC2S, lists.macS2C,
            lists.compressionC2S, lists.compressionS2C, [], []].map(encodeNameList),
        Buffer.from([0]), encodeUint32(0),
    ]);
}

/** @param {Buffer} payload a KEXINIT message @returns {AlgorithmLists} */
function parseKexinit(payload) {
    const fields = new Fields(payload, 1 + 16);
    const [kex, hostKey, cipherC2S, cipherS2C, macC2S, macS2C, compressionC2S, compressionS2C] =
        Array.from({ length: 8 }, () => fields.nameList());
    // The language lists, first_kex_packet_follows and the reserved field follow. A server never guesses a
    // first ECDH/DH packet (its one is the reply), so there is nothing to skip (RFC 4253 §7).
    return { kex, hostKey, cipherC2S, cipherS2C, macC2S, macS2C, compressionC2S, compressionS2C };
}

/** The lists we send: every kex method we can start, the host key algorithms for the pinned type. @param {string} pinnedType */
function ourAlgorithms(pinnedType) {
    return {
        kex: Object.keys(KEX_METHODS), hostKey: hostKeyAlgorithmsFor(pinnedType),
        cipherC2S: CIPHERS, cipherS2C: CIPHERS, macC2S: MACS, macS2C: MACS,
        compressionC2S: COMPRESSION, compressionS2C: COMPRESSION,
    };
}

/** @param {readonly string[]} ours @param {readonly string[]} theirs */
function firstCommon(ours, theirs) {
    return ours.find(name => theirs.includes(name));
}

/**
 * What the server will choose (RFC 4253 §7.1: the first algorithm on the client's list that is on the
 * server's). Every kex we offer works with every host key we offer, so each list is chosen alone.
 * @param {AlgorithmLists} ours
 * @param {AlgorithmLists} theirs
 * @returns {{ kex: string, hostKey: string | undefined, missing: string | undefined }} hostKey undefined:
 *   the server has no key of a type we know; missing: the first other list without a common algorithm
 */
function negotiate(ours, theirs) {
    const kex = firstCommon(ours.kex, theirs.kex);
    const hostKey = firstCommon(ours.hostKey, theirs.hostKey);
    /** @type {[string, string[], string[]][]} */
    const required = [
        ["key exchange method", ours.kex, theirs.kex],
        ["cipher (client to server)", ours.cipherC2S, theirs.cipherC2S],
        ["cipher (server to client)", ours.cipherS2C, theirs.cipherS2C],
        ["compression (client to server)", ours.compressionC2S, theirs.compressionC2S],
        ["compression (server to client)", ours.compressionS2C, theirs.compressionS2C],
    ];
    const cipherC2S = firstCommon(ours.cipherC2S, theirs.cipherC2S);
    const cipherS2C = firstCommon(ours.cipherS2C, theirs.cipherS2C);
    if (cipherC2S && !AEAD_CIPHERS.has(cipherC2S)) {
        required.push(["MAC (client to server)", ours.macC2S, theirs.macC2S]);
    }
    if (cipherS2C && !AEAD_CIPHERS.has(cipherS2C)) {
        required.push(["MAC (server to client)", ours.macS2C, theirs.macS2C]);
    }
    const missing = required.find(([, mine, its]) => firstCommon(mine, its) === undefined);
    return {
        kex: kex ?? "",
        hostKey,
        missing: missing && `${missing[0]}: it offers ${missing[2].join(",") || "nothing"}; ` +
            `this probe offers ${missing[1].join(",")}`,
    };
}

// ---------------------------------------------------------------------------------------------------------
// One attempt

/** Buffers what the server sends and hands it out as lines or packets, in order. */
class Incoming {
    /** @param {net.Socket} socket */
    constructor(socket) {
        this.buffer = Buffer.alloc(0);
        /** @type {{ error: Error | undefined } | undefined} set once the connection is over */
        this.closed = undefined;
        /** @type {(() => void) | undefined} */
        this.waiter = undefined;
        socket.on("data", chunk => {
            this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
            this.wake();
        });
        socket.on("error", error => this.close(error));
        socket.on("end", () => this.close(undefined));
        socket.on("close", () => this.close(undefined));
    }

    /** @param {Error | undefined} error */
    close(error) {
        this.closed ??= { error };
        this.wake();
    }

    wake() {
        const waiter = this.waiter;
        this.waiter = undefined;
        waiter?.();
    }

    /**
     * Waits until `take` finds a whole item at the front of the buffer.
     * @template T
     * @param {(buffer: Buffer) => { value: T, used: number } | undefined} take
     * @param {string} stage where we are, for "the connection was closed <stage>"
     * @returns {Promise<T>}
     */
    async next(take, stage) {
        for (;;) {
            const item = take(this.buffer);
            if (item) {
                this.buffer = this.buffer.subarray(item.used);
                return item.value;
            }
            if (this.closed) {
                throw this.closed.error ? new NotReachable(describeSocketError(this.closed.error))
                    : new NotReachable(`the connection was closed ${stage}`);
            }
            await new Promise(resolve => { this.waiter = () => resolve(undefined); });
        }
    }

    /** The server's identification line, after any other lines (RFC 4253 §4.2). */
    async identification() {
        let skipped = 0;
        for (;;) {
            const line = await this.next(buffer => {
                if (buffer.indexOf(0x0a) < 0 && skipped + buffer.length > MAX_PREAMBLE_BYTES) {
                    throw new NotReachable("not an SSH server: no identification line");
                }
                return takeLine(buffer);
            }, "before the SSH identification line");
            if (line.startsWith("SSH-")) {
                return line;
            }
            skipped += line.length + 1;
        }
    }

    /**
     * The next message that is not IGNORE, DEBUG or UNIMPLEMENTED (RFC 4253 §11); a DISCONNECT is thrown.
     * @param {string} stage
     */
    async message(stage) {
        for (;;) {
            const payload = await this.next(takePacket, stage);
            const type = payload[0];
            if (type === MSG.DISCONNECT) {
                throw disconnectError(payload);
            }
            if (type !== MSG.IGNORE && type !== MSG.DEBUG && type !== MSG.UNIMPLEMENTED) {
                return payload;
            }
        }
    }
}

/**
 * Turns SSH_MSG_DISCONNECT (RFC 4253 §11.1: reason code, description, language) into the error it means.
 * @param {Buffer} payload
 */
function disconnectError(payload) {
    const fields = new Fields(payload, 1);
    const code = fields.uint32();
    const description = printable(fields.string().toString("utf8"));
    if (/host ?key/i.test(description)) {
        return new NoCommonHostKey(`the server disconnected: "${description}"`);
    }
    if (code === DISCONNECT_KEY_EXCHANGE_FAILED) {
        return new ProbeFailure(`the server ended the key exchange: "${description}"`);
    }
    return new NotReachable(`the server disconnected (reason ${code}): "${description}"`);
}

/** What the server sent, safe to print: control characters replaced. @param {string} text */
function printable(text) {
    return text.replace(/[^\x20-\x7e]/g, "?");
}

/** A short reason for a failed connection. @param {Error & { code?: string, errors?: Array<Error & { code?: string }> }} error */
function describeSocketError(error) {
    const code = error.code ?? error.errors?.[0]?.code;
    switch (code) {
        case "ECONNREFUSED": return "connection refused";
        case "ECONNRESET": return "connection reset";
        case "EHOSTUNREACH": return "host unreachable";
        case "ENETUNREACH": return "network unreachable";
        case "ETIMEDOUT": return "connection timed out";
        case "ENOTFOUND": return "the name does not resolve (yet)";
        case "EAI_AGAIN": return "the name does not resolve (DNS temporarily failing)";
        case "EPIPE": return "the connection was closed by the server";
        default: return code ? `${code}: ${error.message}` : error.message;
    }
}

/**
 * One attempt: connects and reads the server's host key, then closes.
 * @param {{ host: string, port: number, pinnedType: string, timeoutMs: number }} target
 * @returns {Promise<{ hostKey: HostKey | undefined, serverAlgorithms: string[], identification: string }>}
 *   hostKey undefined: the server has no key of any type we offered
 * @throws {NotReachable} when no SSH server answered (try again), {ProbeFailure} when it cannot work
 */
async function probeOnce({ host, port, pinnedType, timeoutMs }) {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
        socket.destroy(Object.assign(new Error("timeout"), { code: "PROBE_TIMEOUT" }));
    }, timeoutMs);
    const incoming = new Incoming(socket);
    try {
        return await readHostKey(socket, incoming, pinnedType);
    } catch (error) {
        if (/** @type {{ code?: string }} */ (incoming.closed?.error)?.code === "PROBE_TIMEOUT") {
            throw new NotReachable(`no SSH answer within ${timeoutMs / 1000} s`);
        }
        throw error;
    } finally {
        clearTimeout(timer);
        sayGoodbye(socket);
    }
}

/**
 * The conversation itself, up to the server's host key.
 * @param {net.Socket} socket
 * @param {Incoming} incoming
 * @param {string} pinnedType
 */
async function readHostKey(socket, incoming, pinnedType) {
    const identification = printable(await incoming.identification()).slice(0, 255);
    // RFC 4253 §5.1: "SSH-1.99-" is a server that also speaks protocol 2.
    if (!/^SSH-(2\.0|1\.99)-/.test(identification)) {
        throw new ProbeFailure(`the server speaks SSH protocol 1 only ("${identification}")`);
    }
    const ours = ourAlgorithms(pinnedType);
    socket.write(`${OUR_IDENTIFICATION}\r\n`);
    socket.write(encodePacket(encodeKexinit(ours)));

    const kexinit = await incoming.message("during the key exchange");
    if (kexinit[0] !== MSG.KEXINIT) {
        throw new NotReachable(`the server sent message ${kexinit[0]} instead of KEXINIT`);
    }
    const theirs = parseKexinit(kexinit);
    const chosen = negotiate(ours, theirs);
    if (chosen.hostKey === undefined) {
        return { hostKey: undefined, serverAlgorithms: theirs.hostKey, identification };
    }
    if (chosen.missing) {
        throw new ProbeFailure(`no common ${chosen.missing}`);
    }

    socket.write(encodePacket(Buffer.concat([Buffer.from([MSG.KEX_INIT]), KEX_METHODS[chosen.kex]()])));
    const reply = await incoming.message("during the key exchange");
    if (reply[0] !== MSG.KEX_REPLY) {
        throw new NotReachable(`the server sent message ${reply[0]} instead of the key exchange reply`);
    }
    // The reply starts with K_S, the host key blob (RFC 5656 §4, RFC 4253 §8); its first field is its type.
    const blob = Buffer.from(new Fields(reply, 1).string());
    const type = new Fields(blob).string().toString("latin1");
    return { hostKey: { type, blob }, serverAlgorithms: theirs.hostKey, identification };
}

/**
 * Ends the connection politely (SSH_MSG_DISCONNECT, which the server logs), or at once if it is broken.
 * @param {net.Socket} socket
 */
function sayGoodbye(socket) {
    if (socket.destroyed || !socket.writable) {
        socket.destroy();
        return;
    }
    const goodbye = Buffer.concat([Buffer.from([MSG.DISCONNECT]), encodeUint32(DISCONNECT_BY_APPLICATION),
        encodeString("host key probe done"), encodeString("")]);
    socket.end(encodePacket(goodbye));
    // Our verdict need not wait for the server to close its side.
    socket.unref();
}

// ---------------------------------------------------------------------------------------------------------
// The verdict

/**
 * The message for a server that presents another key than the pinned one.
 * @param {{ host: string, port: number, setting: string, pinned: HostKey, presented: HostKey | undefined,
 *           serverSaid?: string, identification?: string }} facts presented undefined: the server showed no key
 *           of a type we know, and serverSaid tells what it offered or said instead
 */
function mismatchMessage({ host, port, setting, pinned, presented, serverSaid = "", identification }) {
    const where = endpoint(host, port);
    const lines = [];
    if (!presented) {
        lines.push(`host key mismatch: ${where} has no ${pinned.type} host key, nor any other type this probe knows ` +
            `(${serverSaid}), so it cannot present the pinned key.`);
    } else if (presented.type !== pinned.type) {
        lines.push(`host key mismatch: ${where} has no ${pinned.type} host key: it presented ${presented.type} instead.`);
    } else {
        lines.push(`host key mismatch: ${where} presented a host key that is not the pinned one.`);
    }
    if (presented) {
        lines.push(`  presented: ${presented.type} ${fingerprint(presented.blob)}`);
    }
    lines.push(`  pinned:    ${pinned.type} ${fingerprint(pinned.blob)} (${setting})`);
    if (identification) {
        // Often tells at a glance which machine answered ("SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5").
        lines.push(`  server:    ${identification}`);
    }
    lines.push("Nothing was run on the host: the connection was closed as soon as the server showed its key.");
    lines.push("Either this is not the server you meant, or its host keys changed (a reinstalled or rebuilt " +
        "server has new ones, and the pinned key is stale).");
    const type = presented?.type ?? pinned.type;
    const scanType = keyscanType(type);
    const check = `ssh-keygen -lf /etc/ssh/ssh_host_${scanType}_key.pub`;
    const scan = `ssh-keyscan -p ${port} -t ${scanType} ${host} | cut -d' ' -f2-`;
    if (/^[A-Za-z0-9_.:-]+$/.test(setting)) {
        lines.push(`Check the server's key out of band (on its console: ${check}), or read it with`,
            `  ${scan}`,
            "from a network you trust and compare its fingerprint; then pin it:",
            `  pulumi config set ${setting} "${type} AAAA…"`);
    } else {
        lines.push(`Check that ${where} is the right address, and which key the server has (on its console: ${check}).`);
    }
    return lines.join("\n");
}

/** @param {number} ms */
function sleep(ms) {
    return new Promise(resolve => setTimeout(resolve, ms));
}

/**
 * Probes until the server answers with a host key (or the deadline), then judges it.
 * @param {Settings} settings
 * @param {(line: string) => void} log
 * @returns {Promise<{ host: string, port: number, hostKey: "match", type: string, fingerprint: string,
 *   waitedSeconds: number }>} the report of a match
 * @throws {ProbeFailure} on a mismatch, at the deadline, or when the handshake cannot work
 */
async function checkHostKey(settings, log) {
    const { host, port, pinned, setting } = settings;
    const where = endpoint(host, port);
    const started = Date.now();
    const deadline = started + settings.timeoutSeconds * 1000;
    let lastLogged = -Infinity;
    for (;;) {
        let result;
        try {
            const timeoutMs = Math.min(settings.connectTimeoutSeconds * 1000, Math.max(deadline - Date.now(), 1000));
            result = await probeOnce({ host, port, pinnedType: pinned.type, timeoutMs });
        } catch (error) {
            if (error instanceof NoCommonHostKey) {
                throw new ProbeFailure(mismatchMessage({ host, port, setting, pinned, presented: undefined,
                    serverSaid: error.message }));
            }
            if (error instanceof ProbeFailure) {
                throw new ProbeFailure(`SSH handshake failed: ${where}: ${error.message}.\n` +
                    "Nothing was run on the host. The host steps' SSH client (Go's x/crypto/ssh) offers the same " +
                    "algorithms, so it would most likely fail too.");
            }
            if (!(error instanceof NotReachable)) {
                throw error;
            }
            const now = Date.now();
            if (now >= deadline) {
                throw new ProbeFailure(`host not reachable: ${where} did not answer SSH within ` +
                    `${settings.timeoutSeconds} s (last error: ${error.message})`);
            }
            if (now - lastLogged >= WAIT_LOG_INTERVAL_MS) {
                log(`waiting for SSH on ${where}: ${error.message}`);
                lastLogged = now;
            }
            await sleep(Math.min(settings.retrySeconds * 1000, deadline - now));
            continue;
        }

        const { hostKey } = result;
        if (!hostKey || hostKey.type !== pinned.type || !hostKey.blob.equals(pinned.blob)) {
            throw new ProbeFailure(mismatchMessage({ host, port, setting, pinned, presented: hostKey,
                serverSaid: `it offers ${result.serverAlgorithms.join(",") || "none"}`,
                identification: result.identification }));
        }
        return {
            host, port, hostKey: "match", type: hostKey.type, fingerprint: fingerprint(hostKey.blob),
            waitedSeconds: Math.round((Date.now() - started) / 1000),
        };
    }
}

/** Reads the environment, probes, prints the verdict and sets the exit code. */
async function main(env = process.env) {
    let settings;
    try {
        settings = readSettings(env);
    } catch (error) {
        if (!(error instanceof InputError)) {
            throw error;
        }
        process.stderr.write(`host key probe: bad input: ${error.message}\n`);
        process.exitCode = EXIT_BAD_INPUT;
        return;
    }
    try {
        const report = await checkHostKey(settings, line => process.stderr.write(`${line}\n`));
        process.stdout.write(`${JSON.stringify(report)}\n`);
        process.exitCode = 0;
    } catch (error) {
        if (!(error instanceof ProbeFailure)) {
            throw error;
        }
        process.stderr.write(`${error.message}\n`);
        process.exitCode = EXIT_FAILED;
    }
}

module.exports = {
    DEFAULTS, HOST_KEY_ALGORITHMS, InputError, NotReachable, ProbeFailure,
    checkHostKey, encodeKexinit, encodeMpint, encodePacket, endpoint, fingerprint, hostKeyAlgorithmsFor,
    main, mismatchMessage, negotiate, ourAlgorithms, parseKexinit, parsePinnedKey, probeOnce,
    readSettings, takePacket,
};

// `node -` runs this text as module "[stdin]"; `node host-key-probe.js` as the main module; `require` neither.
if (/** @type {{ id?: string }} */ (module).id === "[stdin]" || require.main === module) {
    main().catch(error => {
        process.stderr.write(`host key probe: internal error: ${error && error.stack || error}\n`);
        process.exitCode = EXIT_FAILED;
    });
}
