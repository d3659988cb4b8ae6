/**
 * Host key probe, run by HostKeyCheck (host-key-check.ts) as `node -` with this text on stdin, in the
 * project directory, where `ssh2` resolves. Waits while the SSH server does not answer (a booting host);
 * fails at once unless it presents the pinned key. Each attempt ends in ssh2's hostVerifier, which records
 * the key and refuses it: no credentials are sent, nothing runs, and the server's signature is left to the
 * real connection after this one. Exit 0: one JSON line on stdout; 1: the reason on stderr; 2: bad input.
 */
"use strict";

const crypto = require("crypto");
const net = require("net");

/** The key types a probe can pin, each with the signature algorithms offered for it (RFC 8332 for RSA). */
const KEY_ALGORITHMS = {
    "ssh-ed25519": ["ssh-ed25519"],
    "ecdsa-sha2-nistp256": ["ecdsa-sha2-nistp256"],
    "ecdsa-sha2-nistp384": ["ecdsa-sha2-nistp384"],
    "ecdsa-sha2-nistp521": ["ecdsa-sha2-nistp521"],
    "ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256"],
};
/** How a host is reached, each with what to check first when it never answers SSH. */
const HOST_MODES = ["ec2", "existing"];
/** Prints the public address this machine's connections come from, as a host on the internet sees it. */
const PUBLIC_ADDRESS_COMMAND = "curl -s https://checkip.amazonaws.com";
/** A waiting probe says why at most this often, so a 15-minute boot does not flood the log. */
const WAIT_LOG_INTERVAL_MS = 30_000;
/** Far more than a real server sends before its key (identification, KEXINIT, key exchange reply). */
const MAX_BYTES_BEFORE_KEY = 64 * 1024;

/** An error that ends the probe with its message and exit code; any other is an internal error. */
const failure = (message, exitCode = 1) => Object.assign(new Error(message), { exitCode });

/** Text a server sent, safe to print: printable ASCII only (escape sequences lose their ESC), capped. */
function clean(text) {
    const printable = String(text).replace(/[^\x20-\x7e]/g, "?");
    return printable.length > 200 ? `${printable.slice(0, 200)}…` : printable;
}

/** Reads and checks the environment; `parseKey` is ssh2's. */
function readSettings(env, parseKey) {
    const text = name => (env[name] ?? "").trim();
    const check = (ok, name, problem) => {
        if (!ok) {
            throw failure(`host key probe: bad input: ${name}: ${problem}`, 2);
        }
        return text(name);
    };
    const required = name => check(text(name) !== "", name, "is not set");
    const seconds = (name, fallback) => {
        const value = Number(text(name) || fallback);
        check(value > 0 && value < Infinity, name, `must be a positive number of seconds, got ${JSON.stringify(text(name))}`);
        return value;
    };
    const host = required("PROBE_HOST").replace(/^\[(.*)\]$/, "$1");
    const port = Number(required("PROBE_PORT"));
    check(Number.isInteger(port) && port >= 1 && port <= 65535, "PROBE_PORT", `must be a TCP port (1-65535), got "${text("PROBE_PORT")}"`);
    const mode = check(HOST_MODES.includes(text("PROBE_HOST_MODE")), "PROBE_HOST_MODE",
        `must be ${HOST_MODES.join(" or ")}, got ${JSON.stringify(text("PROBE_HOST_MODE"))}`);
    const key = parseKey(required("PROBE_PINNED_KEY").split(/\s+/).slice(0, 2).join(" "));
    check(!(key instanceof Error) && Object.hasOwn(KEY_ALGORITHMS, key.type), "PROBE_PINNED_KEY",
        `${key instanceof Error ? key.message : `"${key.type}" is not supported`}; expected "<type> <base64 key> ` +
        `[comment]" with a type of ${Object.keys(KEY_ALGORITHMS).join(", ")}`);
    return {
        host, port, mode, pinned: { type: key.type, blob: key.getPublicSSH() }, setting: required("PROBE_PINNED_KEY_SETTING"),
        timeoutSeconds: seconds("PROBE_TIMEOUT_SECONDS", 900), retrySeconds: seconds("PROBE_RETRY_SECONDS", 5),
        connectTimeoutSeconds: seconds("PROBE_CONNECT_TIMEOUT_SECONDS", 10),
    };
}

/** The fingerprint `ssh-keygen -l` prints. */
const fingerprint = blob => `SHA256:${crypto.createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
/** The type named in a key blob (RFC 4253 §6.6). */
const keyType = blob => blob.toString("latin1", 4, 4 + blob.readUInt32BE(0));
const endpoint = (host, port) => net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;

/**
 * One attempt: resolves with the key the server shows and its identification line, or with why no SSH
 * server answers yet. Offers the pinned type first, then the others, so that a server without a key of
 * the pinned type still shows which key it has.
 */
function probeOnce(Client, { host, port, pinned }, timeoutMs) {
    return new Promise((resolve, reject) => {
        const socket = net.connect({ host, port });
        const client = new Client();
        let head = "";
        const settle = outcome => {
            clearTimeout(timer);
            // Known once the first packet left, even towards a host that never answers; unknown after a refusal.
            const localAddress = socket.localAddress;
            socket.destroy();
            outcome instanceof Error ? reject(outcome) : resolve({ ...outcome, localAddress });
        };
        const timer = setTimeout(() => settle({ waitReason: `no host key within ${timeoutMs / 1000} s` }), timeoutMs);
        socket.on("data", chunk => {
            head += head.length < 1024 ? chunk.toString("latin1") : "";
            if (socket.bytesRead > MAX_BYTES_BEFORE_KEY) {
                settle({ waitReason: `the server sent more than ${MAX_BYTES_BEFORE_KEY / 1024} KiB without a host key` });
            }
        });
        client.on("error", error => {
            const message = clean(error.message);
            // No algorithm in common (ssh2 says of which kind): waiting will not change that.
            const noCommon = error.level === "handshake" ? /^Handshake failed: (no matching .*)/.exec(message) : null;
            settle(noCommon ? failure(`SSH handshake failed: ${endpoint(host, port)}: ${noCommon[1]}. Nothing was run on the host.`)
                : { waitReason: error.code === "ECONNREFUSED" ? "connection refused" : message });
        });
        client.on("close", () => settle({ waitReason: "the connection closed before the server showed a host key" }));
        const types = [pinned.type, ...Object.keys(KEY_ALGORITHMS).filter(type => type !== pinned.type)];
        client.connect({
            sock: socket, username: "host-key-probe", readyTimeout: timeoutMs,
            algorithms: { serverHostKey: types.flatMap(type => KEY_ALGORITHMS[type]) },
            hostVerifier: key => {
                settle({ key, identification: clean(/^SSH-[^\r\n]*/m.exec(head)?.[0] ?? "") });
                return false;
            },
        });
    });
}

/** The mismatch error: both keys, the server's identification, and how to check and pin the right key. */
function mismatchMessage({ host, port, setting, pinned, presented, identification }) {
    const where = endpoint(host, port);
    const type = keyType(presented);
    const scanType = type.replace(/^ssh-|-sha2-nistp\d+$/g, "");
    const check = `ssh-keygen -lf /etc/ssh/ssh_host_${scanType}_key.pub`;
    return [
        `host key mismatch: ${where} ${type === pinned.type ? "presented a host key that is not the pinned one"
            : `has no ${pinned.type} host key: it presented ${type} instead`}.`,
        `  presented: ${type} ${fingerprint(presented)}`,
        `  pinned:    ${pinned.type} ${fingerprint(pinned.blob)} (${setting})`,
        ...identification ? [`  server:    ${identification}`] : [],
        "Nothing was run on the host: the connection was closed as soon as the server showed its key.",
        "Either this is not the server you meant, or its host keys changed (a rebuilt server has new ones).",
        // A setting can be pinned with `pulumi config set`; a key Pulumi generated cannot.
        ...(/^[A-Za-z0-9_.:-]+$/.test(setting) ? [
            `Check the server's key out of band (on its console: ${check}), or read it with`,
            `  ssh-keyscan -p ${port} -t ${scanType} ${host} | cut -d' ' -f2-`,
            "from a network you trust and compare its fingerprint; then pin it:",
            `  pulumi config set ${setting} "${type} AAAA…"`,
        ] : [`Check that ${where} is the right address, and which key the server has (on its console: ${check}).`]),
    ].join("\n");
}

/**
 * The error of a host that never answered SSH: what to check first, by mode. In ec2 mode that is
 * allowedSshCidrs (a security group drops what it does not allow, so nothing but a timeout shows it);
 * `localAddress`, where the last attempt came from, is this machine's own, which NAT may hide.
 */
function unreachableMessage({ host, port, mode, timeoutSeconds }, waitReason, localAddress) {
    const where = endpoint(host, port);
    const from = localAddress === undefined ? ""
        : ` This check came from ${localAddress} (this machine; behind NAT your public address differs: ${PUBLIC_ADDRESS_COMMAND} prints it).`;
    return [
        `host not reachable: ${where} did not answer SSH within ${timeoutSeconds} s (last error: ${waitReason})`,
        ...mode === "ec2" ? [
            "First check allowedSshCidrs (`pulumi config get allowedSshCidrs`): the instance's security group lets SSH in " +
            `only from those networks, and drops everything else without an answer.${from}`,
            `To allow this machine: pulumi config set --path "allowedSshCidrs[N]" "$(${PUBLIC_ADDRESS_COMMAND})/32", ` +
            "N being the list's length, then pulumi up.",
            "Then the instance's boot: its system log (aws ec2 get-console-output --instance-id …).",
        ] : [
            `Check that ${where} is the server's address and port (existingHostAddress and existingHostPort, or a fleet node's ` +
            `address and port), that sshd runs there, and that the server's firewall lets this machine in.${from}`,
            `Try it from here: ssh -p ${port} ${host}`,
        ],
    ].join("\n");
}

/** Probes until the server shows a host key (or the deadline), then judges it. */
async function checkHostKey(Client, settings) {
    const { host, port, pinned } = settings;
    const started = Date.now();
    const deadline = started + settings.timeoutSeconds * 1000;
    let lastLogged = -Infinity;
    for (;;) {
        const timeoutMs = Math.min(settings.connectTimeoutSeconds * 1000, Math.max(deadline - Date.now(), 1000));
        const { key, identification, waitReason, localAddress } = await probeOnce(Client, settings, timeoutMs);
        if (key?.equals(pinned.blob)) {
            const waitedSeconds = Math.round((Date.now() - started) / 1000);
            return { host, port, hostKey: "match", type: pinned.type, fingerprint: fingerprint(key), waitedSeconds };
        }
        if (key) {
            throw failure(mismatchMessage({ ...settings, presented: key, identification }));
        }
        const now = Date.now();
        if (now >= deadline) {
            throw failure(unreachableMessage(settings, waitReason, localAddress));
        }
        if (now - lastLogged >= WAIT_LOG_INTERVAL_MS) {
            process.stderr.write(`waiting for SSH on ${endpoint(host, port)}: ${waitReason}\n`);
            lastLogged = now;
        }
        await new Promise(resolve => setTimeout(resolve, Math.min(settings.retrySeconds * 1000, deadline - now)));
    }
}

/** ssh2, from the project's node_modules. */
function loadSsh2() {
    try {
        return require("ssh2");
    } catch (error) {
        throw error.code === "MODULE_NOT_FOUND" ? failure("host key probe: cannot load the ssh2 package from " +
            `${process.cwd()}: run \`npm ci\` in the Pulumi project's directory`) : error;
    }
}

async function main() {
    try {
        // The program read the instance's state: a stopped host never answers, so say how to wake it now.
        if ((process.env.PROBE_HOST_STOPPED ?? "").trim() !== "") {
            throw failure(process.env.PROBE_HOST_STOPPED.trim());
        }
        const { Client, utils } = loadSsh2();
        const report = await checkHostKey(Client, readSettings(process.env, utils.parseKey));
        process.stdout.write(`${JSON.stringify(report)}\n`);
    } catch (error) {
        process.stderr.write(`${error.exitCode ? error.message : `host key probe: internal error: ${error.stack}`}\n`);
        process.exitCode = error.exitCode ?? 1;
    }
}

main();
