/**
 * The host key probe (components/host-key-probe.js) against a real OpenSSH sshd on 127.0.0.1, run as
 * production runs it: `node -` with the script on stdin. sshd comes from openssh-server
 * (apt-get install openssh-server); it runs unprivileged-style on a free port, as root or not.
 */
import { ChildProcess, execFileSync, spawn } from "child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import * as net from "net";
import { tmpdir } from "os";
import * as path from "path";

const PROBE_PATH = path.join(__dirname, "../../components/host-key-probe.js");
const PROBE_TEXT = readFileSync(PROBE_PATH, "utf8");
const SSHD = "/usr/sbin/sshd";
const SETTING = "existingHostPublicKey";

/** The probe is plain JavaScript for `node -`; the tests use these of its helpers. */
interface ProbeHelpers {
    parsePinnedKey(line: string): { type: string; blob: Buffer };
    fingerprint(blob: Buffer): string;
    hostKeyAlgorithmsFor(pinnedType: string): string[];
    ourAlgorithms(pinnedType: string): Record<string, string[]>;
    encodeKexinit(lists: Record<string, string[]>): Buffer;
    encodePacket(payload: Buffer): Buffer;
}
const probe: ProbeHelpers = require(PROBE_PATH);

interface ProbeRun { code: number | null; stdout: string; stderr: string; seconds: number }

/** Every process a test starts, killed by pid after it. */
const started = new Set<ChildProcess>();
let dir: string;
/** Key files by name: "server-ed25519", "other-ed25519", "server-rsa"; each with a ".pub". */
const key = (name: string) => path.join(dir, name);
const publicKey = (name: string) => readFileSync(`${key(name)}.pub`, "utf8").trim();
/** The fingerprint as ssh-keygen prints it. */
const keygenFingerprint = (name: string) => execFileSync("ssh-keygen", ["-lf", `${key(name)}.pub`]).toString().split(" ")[1];

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

/** Starts sshd in the foreground with only the given host keys; resolves once it listens. */
async function startSshd(port: number, hostKeys: string[]): Promise<ChildProcess> {
    if (!existsSync(SSHD)) {
        throw new Error(`${SSHD} is missing; install it: apt-get install openssh-server`);
    }
    // As root, sshd insists on its privilege separation directory; unprivileged it does not use one.
    if (process.getuid?.() === 0 && !existsSync("/run/sshd")) {
        mkdirSync("/run/sshd", { mode: 0o755 });
    }
    const config = path.join(dir, `sshd_config-${port}`);
    writeFileSync(config, `Port ${port}\nListenAddress 127.0.0.1\nPidFile none\nUsePAM no\nLogLevel INFO\n`);
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
    return sshd;
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

/** Runs the probe as the local.Command does: `node -`, the script on stdin, only PROBE_* (and PATH) set. */
function startProbe(env: Record<string, string>): Promise<ProbeRun> {
    const begin = Date.now();
    const child = spawn("node", ["-"], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env } });
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
        PROBE_PINNED_KEY_SETTING: SETTING, PROBE_TIMEOUT_SECONDS: "10", PROBE_RETRY_SECONDS: "1", ...extra,
    };
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "host-key-probe-"));
    for (const [name, type] of [["server-ed25519", "ed25519"], ["other-ed25519", "ed25519"], ["server-rsa", "rsa"]]) {
        execFileSync("ssh-keygen", ["-q", "-t", type, ...(type === "rsa" ? ["-b", "2048"] : []), "-N", "", "-C", name, "-f", key(name)]);
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
    let servers: ChildProcess[] = [];

    beforeAll(async () => {
        edPort = await freePort();
        rsaPort = await freePort();
        servers = [await startSshd(edPort, ["server-ed25519"]), await startSshd(rsaPort, ["server-rsa"])];
        servers.forEach(server => started.delete(server)); // they outlive each test; afterAll stops them
    });

    afterAll(() => servers.forEach(stop));

    test("the pinned key is the server's: exit 0 and one JSON line with ssh-keygen's fingerprint", async () => {
        const run = await startProbe(probeEnv(edPort, publicKey("server-ed25519")));
        expect(run.stderr).toBe("");
        expect(run.code).toBe(0);
        expect(run.stdout.endsWith("\n")).toBe(true);
        expect(JSON.parse(run.stdout)).toEqual({
            host: "127.0.0.1", port: edPort, hostKey: "match", type: "ssh-ed25519",
            fingerprint: keygenFingerprint("server-ed25519"), waitedSeconds: 0,
        });
    });

    test("another ed25519 key is pinned: exit 1 at once, naming both fingerprints, the setting and the fix", async () => {
        const run = await startProbe(probeEnv(edPort, publicKey("other-ed25519")));
        expect(run.code).toBe(1);
        expect(run.seconds).toBeLessThan(3);
        expect(run.stdout).toBe("");
        expect(run.stderr).toMatch(new RegExp(`^host key mismatch: 127\\.0\\.0\\.1:${edPort} presented a host key that is not the pinned one\\.\n`));
        expect(run.stderr).toContain(`presented: ssh-ed25519 ${keygenFingerprint("server-ed25519")}\n`);
        expect(run.stderr).toContain(`pinned:    ssh-ed25519 ${keygenFingerprint("other-ed25519")} (${SETTING})\n`);
        expect(run.stderr).toMatch(/\n {2}server: {4}SSH-2\.0-OpenSSH_/);
        expect(run.stderr).toContain("Nothing was run on the host");
        expect(run.stderr).toContain(`ssh-keyscan -p ${edPort} -t ed25519 127.0.0.1 | cut -d' ' -f2-`);
        expect(run.stderr).toContain(`pulumi config set ${SETTING} "ssh-ed25519 AAAA…"`);
        expect(run.stderr).not.toContain("waiting for SSH");
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

    test("the same server with its RSA key pinned matches (negotiated as rsa-sha2-*)", async () => {
        const run = await startProbe(probeEnv(rsaPort, publicKey("server-rsa")));
        expect(run.stderr).toBe("");
        expect(run.code).toBe(0);
        expect(JSON.parse(run.stdout)).toMatchObject({ hostKey: "match", type: "ssh-rsa", fingerprint: keygenFingerprint("server-rsa") });
    });
});

test("a server with no host key of a type the probe knows: a mismatch at once, naming what it offers", async () => {
    // OpenSSH only lists key types it has keys for, and on no common type closes without a word, so the
    // probe must judge from the server's KEXINIT: here one that offers only DSA.
    const fake = await startFakeServer(socket => {
        socket.write("SSH-2.0-OldServer_1.0\r\n");
        socket.write(probe.encodePacket(probe.encodeKexinit({ ...probe.ourAlgorithms("ssh-ed25519"), hostKey: ["ssh-dss"] })));
    });
    try {
        const run = await startProbe(probeEnv(fake.port, publicKey("server-ed25519")));
        expect(run.code).toBe(1);
        expect(run.stderr).toMatch(new RegExp(`^host key mismatch: 127\\.0\\.0\\.1:${fake.port} has no ssh-ed25519 host key, ` +
            "nor any other type this probe knows \\(it offers ssh-dss\\)"));
        expect(fake.connections()).toBe(1);
    } finally {
        await fake.close();
    }
});

test("a server that cannot do the handshake, or refuses all our host key types, fails at once", async () => {
    const kexinit = (changes: Record<string, string[]>) =>
        probe.encodePacket(probe.encodeKexinit({ ...probe.ourAlgorithms("ssh-ed25519"), ...changes }));
    // SSH_MSG_DISCONNECT (RFC 4253 §11.1): reason 3 (key exchange failed), description, language.
    const text = (value: string) => Buffer.concat([Buffer.from([0, 0, 0, value.length]), Buffer.from(value)]);
    const disconnect = probe.encodePacket(Buffer.concat([Buffer.from([1, 0, 0, 0, 3]), text("no matching host key type"), text("")]));
    const cases: [string, (socket: net.Socket) => void, RegExp][] = [
        ["offers only 3DES", socket => socket.write(Buffer.concat([Buffer.from("SSH-2.0-Old_1.0\r\n"),
            kexinit({ cipherC2S: ["3des-cbc"], cipherS2C: ["3des-cbc"] })])),
        /^SSH handshake failed: 127\.0\.0\.1:\d+: no common cipher \(client to server\): it offers 3des-cbc; this probe offers /],
        ["disconnects: no matching host key type", socket => socket.write(Buffer.concat([Buffer.from("SSH-2.0-Other_1.0\r\n"),
            kexinit({}), disconnect])),
        /^host key mismatch: 127\.0\.0\.1:\d+ has no ssh-ed25519 host key, nor any other type this probe knows \(the server disconnected: "no matching host key type"\)/],
    ];
    for (const [name, greet, message] of cases) {
        const fake = await startFakeServer(greet);
        try {
            const run = await startProbe(probeEnv(fake.port, publicKey("server-ed25519")));
            expect([name, run.code, run.stderr]).toEqual([name, 1, expect.stringMatching(message)]);
            expect([name, fake.connections()]).toEqual([name, 1]);
        } finally {
            await fake.close();
        }
    }
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

test("a server that closes at once, speaks HTTP, breaks off the handshake or stays silent is not reachable yet, not a mismatch", async () => {
    const cases: [string, (socket: net.Socket) => void, RegExp][] = [
        ["closes at once", socket => socket.destroy(), /closed before the SSH identification line|connection reset/],
        ["speaks HTTP", socket => socket.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
            /closed before the SSH identification line/],
        ["sends a banner, then closes", socket => socket.end("SSH-2.0-Booting_1.0\r\n"), /closed during the key exchange/],
        ["sends a banner, then garbage", socket => socket.end("SSH-2.0-Odd_1.0\r\nthis is no packet at all"), /no SSH packet/],
        ["stays silent", () => undefined, /no SSH answer within 0\.5 s/],
    ];
    // In parallel, to keep the suite fast: each waits out its 2 s deadline.
    await Promise.all(cases.map(async ([name, greet, reason]) => {
        const fake = await startFakeServer(greet);
        try {
            const run = await startProbe(probeEnv(fake.port, publicKey("server-ed25519"),
                { PROBE_TIMEOUT_SECONDS: "2", PROBE_RETRY_SECONDS: "0.5", PROBE_CONNECT_TIMEOUT_SECONDS: "0.5" }));
            const where = `127\\.0\\.0\\.1:${fake.port}`;
            expect([name, run.code]).toEqual([name, 1]);
            expect([name, run.stderr]).toEqual([name, expect.stringMatching(new RegExp(`^waiting for SSH on ${where}: `))]);
            expect([name, run.stderr]).toEqual([name, expect.stringMatching(
                new RegExp(`^host not reachable: ${where} did not answer SSH within 2 s \\(last error: `, "m"))]);
            expect([name, run.stderr]).toEqual([name, expect.stringMatching(reason)]);
            expect([name, run.stderr.includes("mismatch")]).toEqual([name, false]);
            // Retried: one connection per attempt.
            expect([name, fake.connections() >= 2]).toEqual([name, true]);
        } finally {
            await fake.close();
        }
    }));
});

describe("bad input: exit 2 naming the variable", () => {
    const good = () => probeEnv(9, publicKey("server-ed25519"));
    const edBase64 = () => publicKey("server-ed25519").split(" ")[1];
    test.each([
        ["PROBE_HOST", (env: Record<string, string>) => { delete env.PROBE_HOST; }, /PROBE_HOST: is not set/],
        ["PROBE_PORT", (env: Record<string, string>) => { env.PROBE_PORT = "ssh"; }, /PROBE_PORT: must be a TCP port/],
        ["PROBE_PINNED_KEY", (env: Record<string, string>) => { delete env.PROBE_PINNED_KEY; }, /PROBE_PINNED_KEY: is not set/],
        ["PROBE_PINNED_KEY", (env: Record<string, string>) => { env.PROBE_PINNED_KEY = "ssh-ed25519 not*base64"; }, /PROBE_PINNED_KEY: .*not base64/],
        ["PROBE_PINNED_KEY", (env: Record<string, string>) => { env.PROBE_PINNED_KEY = `ssh-rsa ${edBase64()}`; },
            /PROBE_PINNED_KEY: the base64 key is not a ssh-rsa key \(it says "ssh-ed25519"\)/],
        ["PROBE_PINNED_KEY", (env: Record<string, string>) => { env.PROBE_PINNED_KEY = `ssh-dss ${edBase64()}`; }, /PROBE_PINNED_KEY: "ssh-dss" is not a host key type/],
        ["PROBE_PINNED_KEY_SETTING", (env: Record<string, string>) => { env.PROBE_PINNED_KEY_SETTING = " "; }, /PROBE_PINNED_KEY_SETTING: is not set/],
        ["PROBE_TIMEOUT_SECONDS", (env: Record<string, string>) => { env.PROBE_TIMEOUT_SECONDS = "-1"; }, /PROBE_TIMEOUT_SECONDS: must be a positive number/],
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

describe("helpers", () => {
    test("requiring the probe only exports its helpers: it does not run", () => {
        expect(process.exitCode).toBeUndefined();
        expect(typeof probe.parsePinnedKey).toBe("function");
    });

    test("the pinned key's algorithms are offered first; an RSA key with the SHA-2 signatures before ssh-rsa", () => {
        expect(probe.hostKeyAlgorithmsFor("ssh-ed25519")[0]).toBe("ssh-ed25519");
        expect(probe.hostKeyAlgorithmsFor("ssh-rsa").slice(0, 3)).toEqual(["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]);
        expect(probe.hostKeyAlgorithmsFor("ecdsa-sha2-nistp384")[0]).toBe("ecdsa-sha2-nistp384");
        expect(new Set(probe.hostKeyAlgorithmsFor("ssh-rsa")).size).toBe(probe.hostKeyAlgorithmsFor("ssh-rsa").length);
    });

    test("parsePinnedKey keeps type and blob, ignores the comment; fingerprint is ssh-keygen's", () => {
        const parsed = probe.parsePinnedKey(`${publicKey("server-ed25519")} extra words`);
        expect(parsed.type).toBe("ssh-ed25519");
        expect(probe.fingerprint(parsed.blob)).toBe(keygenFingerprint("server-ed25519"));
        expect(probe.fingerprint(probe.parsePinnedKey(publicKey("server-rsa")).blob)).toBe(keygenFingerprint("server-rsa"));
    });
});
