/**
 * The host key probe (components/host-key-probe.js) against a real OpenSSH sshd on 127.0.0.1 and against
 * hostile fake servers, run as production runs it: `node -` with the script on stdin, in the project
 * directory (where it finds ssh2). sshd comes from openssh-server (apt-get install openssh-server).
 */
import { ChildProcess, execFileSync, spawn } from "child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import * as net from "net";
import { tmpdir } from "os";
import * as path from "path";

const ROOT = path.join(__dirname, "../..");
const PROBE_TEXT = readFileSync(path.join(ROOT, "components/host-key-probe.js"), "utf8");
const SSHD = "/usr/sbin/sshd";
const SETTING = "existingHostPublicKey";
/** Host key files by name, each with a ".pub", and the `ssh-keygen -t`/`-b` that made them. */
const KEYS: Record<string, string[]> = {
    "server-ed25519": ["-t", "ed25519"], "other-ed25519": ["-t", "ed25519"], "server-rsa": ["-t", "rsa", "-b", "2048"],
    "server-ecdsa256": ["-t", "ecdsa", "-b", "256"], "server-ecdsa384": ["-t", "ecdsa", "-b", "384"],
    "server-ecdsa521": ["-t", "ecdsa", "-b", "521"],
};

interface ProbeRun { code: number | null; stdout: string; stderr: string; seconds: number }

/** Every process a test starts, killed by pid after it. */
const started = new Set<ChildProcess>();
let dir: string;
const key = (name: string) => path.join(dir, name);
const publicKey = (name: string) => readFileSync(`${key(name)}.pub`, "utf8").trim();
/** The fingerprint as ssh-keygen prints it. */
const keygenFingerprint = (name: string) => execFileSync("ssh-keygen", ["-lf", `${key(name)}.pub`]).toString().split(" ")[1];
/** What a terminal shows as text: printable ASCII, newlines and the "…" of a cut. */
const PRINTABLE = /^[\x20-\x7e\n…]*$/;

function stop(child: ChildProcess) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        process.kill(child.pid, "SIGTERM");
    }
    started.delete(child);
}

async function freePort(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>(resolve => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise(resolve => server.close(resolve));
    return port;
}

/** Starts sshd in the foreground with only the given host keys and config lines; resolves once it listens. */
async function startSshd(port: number, hostKeys: string[], extraConfig = ""): Promise<{ sshd: ChildProcess; log: () => string }> {
    if (!existsSync(SSHD)) {
        throw new Error(`${SSHD} is missing; install it: apt-get install openssh-server`);
    }
    // As root, sshd insists on its privilege separation directory; unprivileged it does not use one.
    if (process.getuid?.() === 0 && !existsSync("/run/sshd")) {
        mkdirSync("/run/sshd", { mode: 0o755 });
    }
    const config = path.join(dir, `sshd_config-${port}`);
    writeFileSync(config, `Port ${port}\nListenAddress 127.0.0.1\nPidFile none\nUsePAM no\nLogLevel INFO\n${extraConfig}`);
    const sshd = spawn(SSHD, ["-D", "-e", "-f", config, ...hostKeys.flatMap(name => ["-h", key(name)])],
        { stdio: ["ignore", "ignore", "pipe"] });
    started.add(sshd);
    let log = "";
    await new Promise<void>((resolve, reject) => {
        sshd.stderr!.on("data", chunk => {
            log += chunk;
            if (log.includes(`Server listening on 127.0.0.1 port ${port}`)) {
                resolve();
            }
        });
        sshd.on("exit", code => reject(new Error(`sshd exited (${code}) before listening:\n${log}`)));
    });
    return { sshd, log: () => log };
}

/** A TCP server that is not a working SSH server: `greet` answers each connection. */
async function startFakeServer(greet: (socket: net.Socket) => void): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
    let connections = 0;
    const sockets = new Set<net.Socket>();
    const server = net.createServer(socket => {
        connections++;
        sockets.add(socket);
        socket.on("error", () => undefined);
        socket.on("close", () => sockets.delete(socket));
        greet(socket);
    });
    await new Promise<void>(resolve => server.listen(0, "127.0.0.1", resolve));
    return {
        port: (server.address() as net.AddressInfo).port,
        connections: () => connections,
        close: () => {
            sockets.forEach(socket => socket.destroy());
            return new Promise(resolve => server.close(() => resolve()));
        },
    };
}

/** Runs `serve` against a fake server, then closes it. */
async function withFakeServer<T>(greet: (socket: net.Socket) => void, serve: (fake: { port: number; connections: () => number }) => Promise<T>): Promise<T> {
    const fake = await startFakeServer(greet);
    try {
        return await serve(fake);
    } finally {
        await fake.close();
    }
}

/** Runs the probe as the local.Command does: `node -`, the script on stdin, only PROBE_* (and PATH) set. */
function startProbe(env: Record<string, string>, cwd = ROOT): Promise<ProbeRun> {
    const begin = Date.now();
    const child = spawn("node", ["-"], { cwd, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env } });
    started.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", chunk => { stdout += chunk; });
    child.stderr.on("data", chunk => { stderr += chunk; });
    child.stdin.end(PROBE_TEXT);
    return new Promise((resolve, reject) => {
        child.on("error", reject);
        child.on("close", code => {
            started.delete(child);
            resolve({ code, stdout, stderr, seconds: (Date.now() - begin) / 1000 });
        });
    });
}

/** The probe's environment for 127.0.0.1:port pinning the key `pinned`, plus `extra`. */
function probeEnv(port: number, pinned: string, extra: Record<string, string> = {}): Record<string, string> {
    return {
        PROBE_HOST: "127.0.0.1", PROBE_PORT: String(port), PROBE_PINNED_KEY: pinned,
        PROBE_PINNED_KEY_SETTING: SETTING, PROBE_HOST_MODE: "existing", PROBE_TIMEOUT_SECONDS: "10", PROBE_RETRY_SECONDS: "1", ...extra,
    };
}

/** Short attempts and deadline, for servers that never show a key: the probe gives up after 2 s. */
const IMPATIENT = { PROBE_TIMEOUT_SECONDS: "2", PROBE_RETRY_SECONDS: "0.5", PROBE_CONNECT_TIMEOUT_SECONDS: "0.5" };

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

/** SSH wire format (RFC 4251 §5, RFC 4253 §6), unencrypted: what a fake server sends. */
const uint32 = (value: number) => Buffer.from([value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255]);
const sshString = (text: string) => Buffer.concat([uint32(Buffer.byteLength(text)), Buffer.from(text)]);
function sshPacket(payload: Buffer): Buffer {
    const padding = 4 + (8 - ((9 + payload.length) % 8)) % 8;
    return Buffer.concat([uint32(1 + payload.length + padding), Buffer.from([padding]), payload, Buffer.alloc(padding)]);
}
/** Writes `chunk` again and again while the peer reads. */
function flood(socket: net.Socket, chunk: Buffer | string) {
    while (!socket.destroyed && socket.write(chunk)) { /* until the buffer is full */ }
    if (!socket.destroyed) {
        socket.once("drain", () => flood(socket, chunk));
    }
}

beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "host-key-probe-"));
    for (const [name, args] of Object.entries(KEYS)) {
        execFileSync("ssh-keygen", ["-q", ...args, "-N", "", "-C", name, "-f", key(name)]);
    }
});

afterEach(() => {
    started.forEach(child => stop(child));
});

afterAll(() => {
    started.forEach(child => stop(child));
    rmSync(dir, { recursive: true, force: true });
});

describe("against a running sshd", () => {
    let edPort: number;
    let rsaPort: number;
    let allTypesPort: number;
    let servers: ChildProcess[] = [];
    let edLog: () => string;

    beforeAll(async () => {
        [edPort, rsaPort, allTypesPort] = [await freePort(), await freePort(), await freePort()];
        const ed = await startSshd(edPort, ["server-ed25519"]);
        edLog = ed.log;
        servers = [ed.sshd, (await startSshd(rsaPort, ["server-rsa"])).sshd,
            (await startSshd(allTypesPort, Object.keys(KEYS).filter(name => name.startsWith("server-")))).sshd];
        servers.forEach(server => started.delete(server)); // they outlive each test; afterAll stops them
    });

    afterAll(() => servers.forEach(stop));

    test("the pinned key is the server's: exit 0 and one JSON line with ssh-keygen's fingerprint, no login tried", async () => {
        const run = await startProbe(probeEnv(edPort, publicKey("server-ed25519")));
        // sshd logs how each connection ended, and any login attempt ("Invalid user host-key-probe …").
        for (let waited = 0; waited < 5000 && !/Connection closed|Disconnected|Received disconnect/.test(edLog()); waited += 50) {
            await sleep(50);
        }
        expect(edLog()).toContain(`Connection closed by 127.0.0.1`);
        expect(edLog()).not.toMatch(/host-key-probe|user|Failed|Accepted/i);
        expect(run.stderr).toBe("");
        expect(run.code).toBe(0);
        expect(run.stdout.endsWith("\n")).toBe(true);
        expect(JSON.parse(run.stdout)).toEqual({
            host: "127.0.0.1", port: edPort, hostKey: "match", type: "ssh-ed25519",
            fingerprint: keygenFingerprint("server-ed25519"), waitedSeconds: 0,
        });
    });

    test.each(Object.keys(KEYS).filter(name => name.startsWith("server-")))(
        "a server with keys of every type: pinning its %s key matches (the pinned type is asked for first)", async name => {
            const run = await startProbe(probeEnv(allTypesPort, publicKey(name)));
            expect([run.code, run.stderr]).toEqual([0, ""]);
            expect(JSON.parse(run.stdout)).toMatchObject({
                hostKey: "match", type: publicKey(name).split(" ")[0], fingerprint: keygenFingerprint(name),
            });
        });

    test("another ed25519 key is pinned: exit 1 at once, naming both fingerprints, the server, the setting and the fix", async () => {
        const run = await startProbe(probeEnv(edPort, publicKey("other-ed25519")));
        expect(run.code).toBe(1);
        expect(run.seconds).toBeLessThan(3);
        expect(run.stdout).toBe("");
        expect(run.stderr).toMatch(new RegExp(`^host key mismatch: 127\\.0\\.0\\.1:${edPort} presented a host key that is not the pinned one\\.\n`));
        expect(run.stderr).toContain(`presented: ssh-ed25519 ${keygenFingerprint("server-ed25519")}\n`);
        expect(run.stderr).toContain(`pinned:    ssh-ed25519 ${keygenFingerprint("other-ed25519")} (${SETTING})\n`);
        expect(run.stderr).toMatch(/\n {2}server: {4}SSH-2\.0-OpenSSH_\S+/);
        expect(run.stderr).toContain("Nothing was run on the host");
        expect(run.stderr).toContain(`ssh-keyscan -p ${edPort} -t ed25519 127.0.0.1 | cut -d' ' -f2-`);
        expect(run.stderr).toContain(`pulumi config set ${SETTING} "ssh-ed25519 AAAA…"`);
        expect(run.stderr).not.toContain("waiting for SSH");
    });

    test("a key Pulumi generated is pinned: the mismatch says to check the address, not to set a setting", async () => {
        const setting = "the host key Pulumi generated for this instance";
        const run = await startProbe(probeEnv(edPort, publicKey("other-ed25519"), { PROBE_PINNED_KEY_SETTING: setting }));
        expect(run.code).toBe(1);
        expect(run.stderr).toContain(`(${setting})\n`);
        expect(run.stderr).toContain(`Check that 127.0.0.1:${edPort} is the right address`);
        expect(run.stderr).not.toContain("pulumi config set");
    });

    test("a server with only an RSA key, ed25519 pinned: a mismatch naming the type and key it has", async () => {
        const run = await startProbe(probeEnv(rsaPort, publicKey("server-ed25519")));
        expect(run.code).toBe(1);
        expect(run.seconds).toBeLessThan(3);
        expect(run.stderr).toMatch(new RegExp(`^host key mismatch: 127\\.0\\.0\\.1:${rsaPort} has no ssh-ed25519 host key: it presented ssh-rsa instead\\.\n`));
        expect(run.stderr).toContain(`presented: ssh-rsa ${keygenFingerprint("server-rsa")}\n`);
        expect(run.stderr).toContain(`pinned:    ssh-ed25519 ${keygenFingerprint("server-ed25519")} (${SETTING})\n`);
        expect(run.stderr).toContain(`ssh-keyscan -p ${rsaPort} -t rsa 127.0.0.1`);
    });
});

test.each([
    ["only 3DES", "Ciphers 3des-cbc\n", "no matching C->S cipher"],
    ["only SHA-1 RSA signatures", "HostKeyAlgorithms ssh-rsa\n", "no matching host key format"],
])("an sshd that offers %s: 'SSH handshake failed' at once, naming what is missing", async (_name, config, missing) => {
    const port = await freePort();
    await startSshd(port, ["server-rsa"], config);
    const run = await startProbe(probeEnv(port, publicKey("server-rsa")));
    expect(run.code).toBe(1);
    expect(run.seconds).toBeLessThan(3);
    expect(run.stderr).toBe(`SSH handshake failed: 127.0.0.1:${port}: ${missing}. Nothing was run on the host.\n`);
});

test("nothing listens yet: the probe waits, says why once, and matches when sshd comes up", async () => {
    const port = await freePort();
    const running = startProbe(probeEnv(port, publicKey("server-ed25519"), { PROBE_TIMEOUT_SECONDS: "20" }));
    await sleep(3000);
    await startSshd(port, ["server-ed25519"]);
    const run = await running;
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report).toMatchObject({ hostKey: "match", fingerprint: keygenFingerprint("server-ed25519") });
    expect(report.waitedSeconds).toBeGreaterThanOrEqual(2);
    // Several refused attempts, one line: the wait is logged at most every 30 s.
    expect(run.stderr).toBe(`waiting for SSH on 127.0.0.1:${port}: connection refused\n`);
});

test("nothing listens until the deadline: exit 1, 'host not reachable', after about PROBE_TIMEOUT_SECONDS", async () => {
    const port = await freePort();
    const run = await startProbe(probeEnv(port, publicKey("server-ed25519"), { PROBE_TIMEOUT_SECONDS: "3" }));
    expect(run.code).toBe(1);
    expect(run.seconds).toBeGreaterThanOrEqual(2.9);
    expect(run.seconds).toBeLessThan(6);
    expect(run.stderr).toMatch(new RegExp(`^host not reachable: 127\\.0\\.0\\.1:${port} did not answer SSH within 3 s ` +
        "\\(last error: connection refused\\)$", "m"));
    expect(run.stderr).not.toContain("mismatch");
});

describe("a host that never answers: the error says what to check first, by how the host is reached", () => {
    test("ec2: allowedSshCidrs first, with the address the check came from and the command that allows this machine", () =>
        withFakeServer(() => undefined, async fake => {
            const run = await startProbe(probeEnv(fake.port, publicKey("server-ed25519"), { ...IMPATIENT, PROBE_HOST_MODE: "ec2" }));
            expect(run.code).toBe(1);
            const message = run.stderr.slice(run.stderr.indexOf("host not reachable: "));
            expect(message).toBe([
                `host not reachable: 127.0.0.1:${fake.port} did not answer SSH within 2 s (last error: no host key within 0.5 s)`,
                "First check allowedSshCidrs (`pulumi config get allowedSshCidrs`): the instance's security group lets SSH in only from " +
                "those networks, and drops everything else without an answer. This check came from 127.0.0.1 (this machine; behind NAT " +
                "your public address differs: curl -s https://checkip.amazonaws.com prints it).",
                "To allow this machine: pulumi config set --path \"allowedSshCidrs[N]\" \"$(curl -s https://checkip.amazonaws.com)/32\", " +
                "N being the list's length, then pulumi up.",
                "Then the instance's boot: its system log (aws ec2 get-console-output --instance-id …).",
                "",
            ].join("\n"));
        }));

    test("existing: the address, port and the server's firewall, never allowedSshCidrs; no source address after a refusal", async () => {
        const port = await freePort();
        const run = await startProbe(probeEnv(port, publicKey("server-ed25519"), IMPATIENT));
        expect(run.code).toBe(1);
        expect(run.stderr).toContain(`\nCheck that 127.0.0.1:${port} is the server's address and port (existingHostAddress and ` +
            "existingHostPort, or a fleet node's address and port), that sshd runs there, and that the server's firewall lets this " +
            `machine in.\nTry it from here: ssh -p ${port} 127.0.0.1\n`);
        expect(run.stderr).not.toContain("allowedSshCidrs");
        expect(run.stderr).not.toContain("This check came from");
    });
});

describe("servers that never show a host key", () => {
    const ignorePacket = sshPacket(Buffer.concat([Buffer.from([2]), sshString("x".repeat(1000))])); // SSH_MSG_IGNORE
    const cases: [string, (socket: net.Socket) => void, RegExp][] = [
        ["closes at once", socket => socket.destroy(), /Connection lost before handshake|ECONNRESET/],
        ["speaks HTTP", socket => socket.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"), /Connection lost before handshake/],
        ["sends an identification, then closes", socket => socket.end("SSH-2.0-Booting_1.0\r\n"),
            /the connection closed before the server showed a host key/],
        ["sends an identification, then garbage", socket => socket.end("SSH-2.0-Odd_1.0\r\nthis is no packet at all"), /Bad packet length/],
        ["stays silent", () => undefined, /no host key within 0\.5 s/],
        ["sends one valid packet every 100 ms, never a key", socket => {
            socket.write("SSH-2.0-Slow_1.0\r\n");
            const timer = setInterval(() => socket.write(ignorePacket), 100);
            socket.on("close", () => clearInterval(timer));
        }, /no host key within 0\.5 s/],
        ["floods lines before any identification", socket => flood(socket, `${"x".repeat(3998)}\r\n`),
            /the server sent more than 64 KiB without a host key/],
        ["floods valid packets after its identification", socket => {
            socket.write("SSH-2.0-Flood_1.0\r\n");
            flood(socket, ignorePacket);
        }, /the server sent more than 64 KiB without a host key/],
    ];
    // In parallel, to keep the suite fast: each waits out its 2 s deadline.
    test("are not reachable yet (waited for, each attempt bounded), never a mismatch: " + cases.map(([name]) => name).join("; "), () => Promise.all(cases.map(([name, greet, reason]) => withFakeServer(greet, async fake => {
        const run = await startProbe(probeEnv(fake.port, publicKey("server-ed25519"), IMPATIENT));
        const where = `127\\.0\\.0\\.1:${fake.port}`;
        expect([name, run.code]).toEqual([name, 1]);
        expect([name, run.stderr]).toEqual([name, expect.stringMatching(new RegExp(`^waiting for SSH on ${where}: `))]);
        expect([name, run.stderr]).toEqual([name, expect.stringMatching(
            new RegExp(`^host not reachable: ${where} did not answer SSH within 2 s \\(last error: `, "m"))]);
        expect([name, run.stderr]).toEqual([name, expect.stringMatching(reason)]);
        expect([name, run.stderr.includes("mismatch")]).toEqual([name, false]);
        // Each attempt ends within PROBE_CONNECT_TIMEOUT_SECONDS and is retried: one connection per attempt.
        expect([name, run.seconds < 5, fake.connections() >= 2]).toEqual([name, true, true]);
    }))));
});

describe("a hostile server's text reaches messages only as printable ASCII, cut at 200 characters", () => {
    const hostile = "\x1b[2J\x1b]0;owned\x07 evil\x00\x08\u202e";
    /** How it is shown: as text (one "?" for U+202E), or as bytes as in an identification line (three). */
    const shown = "?[2J?]0;owned? evil???";
    const shownBytes = "?[2J?]0;owned? evil?????";

    test("a DISCONNECT's description", () => {
        const disconnect = sshPacket(Buffer.concat([Buffer.from([1]), uint32(2), sshString(hostile + "A".repeat(5000)), sshString("")]));
        return withFakeServer(socket => socket.end(Buffer.concat([Buffer.from("SSH-2.0-X_1.0\r\n"), disconnect])), async fake => {
            const run = await startProbe(probeEnv(fake.port, publicKey("server-ed25519"), IMPATIENT));
            expect(run.code).toBe(1);
            expect(run.stderr).toMatch(PRINTABLE);
            expect(run.stderr).toContain(`waiting for SSH on 127.0.0.1:${fake.port}: ${shown}AAA`);
            expect(run.stderr).toContain(`(last error: ${shown}${"A".repeat(200 - shown.length)}…)\n`);
        });
    });

    test("lines before the identification, and the identification itself, in a mismatch", async () => {
        // A man in the middle before a real sshd: it adds lines before the identification and replaces it.
        const sshdPort = await freePort();
        await startSshd(sshdPort, ["server-ed25519"]);
        const identification = `SSH-2.0-Evil${hostile}${"B".repeat(1000)}`;
        const proxy = (socket: net.Socket) => {
            const upstream = net.connect(sshdPort, "127.0.0.1");
            upstream.on("error", () => socket.destroy());
            socket.on("close", () => upstream.destroy());
            socket.write(`${hostile} before the identification\r\nmore\x1b[31m\r\n${identification}\r\n`);
            // sshd's own identification line is dropped; everything after it passes.
            let head: Buffer | undefined = Buffer.alloc(0);
            upstream.on("data", chunk => {
                if (head === undefined) {
                    socket.write(chunk);
                } else if ((head = Buffer.concat([head, chunk])).includes("\n")) {
                    socket.write(head.subarray(head.indexOf("\n") + 1));
                    head = undefined;
                }
            });
            socket.pipe(upstream);
        };
        await withFakeServer(proxy, async fake => {
            const run = await startProbe(probeEnv(fake.port, publicKey("other-ed25519")));
            expect(run.code).toBe(1);
            expect(run.stderr).toMatch(PRINTABLE);
            expect(run.stderr).toContain(`presented: ssh-ed25519 ${keygenFingerprint("server-ed25519")}\n`);
            expect(run.stderr).toContain(`\n  server:    ${`SSH-2.0-Evil${shownBytes}${"B".repeat(1000)}`.slice(0, 200)}…\n`);
            expect(run.stderr).not.toContain("before the identification");
        });
    });
});

describe("bad input: exit 2 naming the variable", () => {
    const good = () => probeEnv(9, publicKey("server-ed25519"));
    const edBase64 = () => publicKey("server-ed25519").split(" ")[1];
    // A DSA key's form (RFC 4253 §6.6: p, q, g, y); OpenSSH 10 no longer makes them.
    const dsaBase64 = Buffer.concat([sshString("ssh-dss"), ...[2, 3, 4, 5].map(n => sshString(String.fromCharCode(n)))]).toString("base64");
    test.each([
        ["PROBE_HOST", (env: Record<string, string>) => { delete env.PROBE_HOST; }, /PROBE_HOST: is not set/],
        ["PROBE_PORT", (env: Record<string, string>) => { env.PROBE_PORT = "ssh"; }, /PROBE_PORT: must be a TCP port \(1-65535\), got "ssh"/],
        ["PROBE_PINNED_KEY", (env: Record<string, string>) => { delete env.PROBE_PINNED_KEY; }, /PROBE_PINNED_KEY: is not set/],
        ["PROBE_PINNED_KEY", (env: Record<string, string>) => { env.PROBE_PINNED_KEY = "ssh-ed25519 not*base64"; },
            /PROBE_PINNED_KEY: .*expected "<type> <base64 key> \[comment\]" with a type of ssh-ed25519, /],
        ["PROBE_PINNED_KEY", (env: Record<string, string>) => { env.PROBE_PINNED_KEY = `ssh-rsa ${edBase64()}`; }, /PROBE_PINNED_KEY: Malformed/],
        ["PROBE_PINNED_KEY", (env: Record<string, string>) => { env.PROBE_PINNED_KEY = `ssh-dss ${dsaBase64}`; },
            /PROBE_PINNED_KEY: "ssh-dss" is not supported/],
        ["PROBE_PINNED_KEY_SETTING", (env: Record<string, string>) => { env.PROBE_PINNED_KEY_SETTING = " "; }, /PROBE_PINNED_KEY_SETTING: is not set/],
        ["PROBE_HOST_MODE", (env: Record<string, string>) => { env.PROBE_HOST_MODE = "lxd"; }, /PROBE_HOST_MODE: must be ec2 or existing, got "lxd"/],
        ["PROBE_TIMEOUT_SECONDS", (env: Record<string, string>) => { env.PROBE_TIMEOUT_SECONDS = "-1"; }, /PROBE_TIMEOUT_SECONDS: must be a positive number/],
        ["PROBE_RETRY_SECONDS", (env: Record<string, string>) => { env.PROBE_RETRY_SECONDS = "soon"; }, /PROBE_RETRY_SECONDS: must be a positive number/],
    ])("%s", async (_variable, spoil, message) => {
        const env = good();
        spoil(env);
        const run = await startProbe(env);
        expect(run.code).toBe(2);
        expect(run.stdout).toBe("");
        expect(run.stderr).toMatch(/^host key probe: bad input: /);
        expect(run.stderr).toMatch(message);
    });
});

test("run outside a project with node_modules: exit 1, saying to run npm ci", async () => {
    const elsewhere = mkdtempSync(path.join(tmpdir(), "no-node-modules-"));
    try {
        const run = await startProbe(probeEnv(9, publicKey("server-ed25519")), elsewhere);
        expect(run.code).toBe(1);
        expect(run.stderr).toBe(`host key probe: cannot load the ssh2 package from ${elsewhere}: ` +
            "run `npm ci` in the Pulumi project's directory\n");
    } finally {
        rmSync(elsewhere, { recursive: true, force: true });
    }
});
