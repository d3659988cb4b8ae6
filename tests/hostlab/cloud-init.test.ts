/**
 * Host lab: the EC2 boot path, for real. In ec2 mode the only host-side piece that runs before the
 * steps is the cloud-init user data the program renders (`cloudInitUserData` in components/ec2-host.ts):
 * it pins the SSH host key Pulumi generated, deletes the image's own host keys and turns password
 * authentication off. This suite boots a machine with Debian's cloud-init on that user data and then
 * runs the program's six steps against it, over SSH pinned to that key.
 *
 * The machine: a Debian 13 container with systemd as PID 1 and Debian's cloud-init, built with the SSH
 * host keys openssh-server's postinst generated (rsa, ecdsa, ed25519: a cloud image before its first
 * boot has them), so `ssh_deletekeys` has something to delete (infra/build-host-image.sh, HOST_VARIANT=cloud-init).
 * The host key is an ed25519 key in OpenSSH format made with ssh-keygen, the kind of key the program's
 * tls.PrivateKey (ED25519) gives; the user data is `cloudInitUserData(privateKey, publicKey)` itself
 * (infra/start-host.sh renders it from the TypeScript source; a test compares it byte for byte with
 * what cloud-init on the host consumed).
 *
 * What STANDS IN: the NoCloud datasource (a seed in /var/lib/cloud/seed/nocloud) STANDS IN FOR EC2's
 * datasource; no AWS here. Its meta-data `public-keys` stand in for the EC2 key pair, which the image's
 * default user gets through instance metadata; here that user is Debian cloud-init's default user
 * ("debian", passwordless sudo from cloud-init), used as the program's existing-mode login user.
 * Lab staging that is not cloud-init's: an sshd_config.d drop-in with only Port and ListenAddress
 * (loopback), the inner engine's daemon.json, the binfmt_misc mount, `network: {config: disabled}` in
 * the image (the container shares this VM's network), and a per-instance script that holds cloud-init's
 * final stage until the first test releases it: cloud-init is done in a second here, while on EC2 it
 * still runs when sshd first answers, and wait-for-host must be seen waiting. The BuildKit image is
 * `docker load`ed and Docker's apt repository is the local stand-in, as in hostlab.test.ts.
 *
 * What this does NOT cover: IMDS (IMDSv2 tokens, the hop limit, EC2's user data and key delivery,
 * network configuration from metadata), the AMI (Canonical's Ubuntu images, their cloud-init version and
 * configuration, the "ubuntu" user), and anything of AWS itself (security group, Elastic IP, instance
 * replacement).
 *
 * The tests run in order and share one host. Run through tests/hostlab/run.sh (suite cloud-init), which
 * starts the host with HOST_VARIANT=cloud-init and sets the HOSTLAB_* environment.
 */
import { readFileSync, writeFileSync } from "fs";
import * as path from "path";

import { cloudInitUserData } from "../../components/ec2-host";
import { shellQuote } from "../../components/shell";
import { StepReport } from "../../components/step-reports";
import { hostStepDefinitions, sha256, StepName } from "../../components/steps";
import {
    expectStepOk, labAptSettings, labConfig, loadBuildkitImage, local, localOk, logDirectory, readLabHost, reportOf, requiredEnv, runStep, ssh,
    StepRun, stepNamed, sudoOk, teamEntry,
} from "./lab";

const lab = readLabHost(requiredEnv("HOSTLAB_ENV_FILE"));
const { dockerAptRepo, dockerAptKeyFingerprint } = labAptSettings();

/** The host key start-host.sh generated (ssh-keygen, ed25519, OpenSSH format) and the user data for it. */
const hostPrivateKey = readFileSync(path.join(lab.stateDir, "ssh_host_ed25519_key"), "utf8");
const hostPublicKeyFile = readFileSync(path.join(lab.stateDir, "ssh_host_ed25519_key.pub"), "utf8");
const userData = cloudInitUserData(hostPrivateKey, hostPublicKeyFile);
/** "ssh-ed25519 AAAA…": the key clients pin. */
const pinnedKey = lab.hostPublicKey;

const MEMBER = "alice";
const config = labConfig(lab, {
    team: JSON.stringify([teamEntry(lab, MEMBER)]),
    dockerAptRepo,
    dockerAptKeyFingerprint,
});
const steps = hostStepDefinitions(config, lab.user);
const LABEL = "cloud-init";
/** How long the test holds cloud-init's final stage after wait-for-host has started waiting. */
const HOLD_SECONDS = 5;
const runs: StepRun[] = [];
const reports = new Map<StepName, StepReport>();

/** The image the host was started from: the machine before its first boot. */
const image = localOk(`docker inspect -f '{{.Config.Image}}' ${shellQuote(lab.container)}`).trim();

const step = <S extends StepName>(name: S) => stepNamed(steps, name);

function requireCloudInitDone(): void {
    if (reportOf(reports, "wait-for-host")?.cloudInit !== "done") {
        throw new Error("wait-for-host did not report cloud-init done; the checks after it would look at a half-booted host");
    }
}

function cloudInitStatus(): Record<string, unknown> {
    // Exit 2 means recoverable errors so far ("degraded"); the JSON says which.
    return JSON.parse(sudoOk(lab, "cloud-init status --format json || [ $? -eq 2 ]")) as Record<string, unknown>;
}

function redactPrivateKey(text: string): string {
    return text.replace(/(-----BEGIN OPENSSH PRIVATE KEY-----\n)[\s\S]*?(\n\s*-----END OPENSSH PRIVATE KEY-----)/g, "$1    (redacted)$2");
}

/** Runs a shell command in a throwaway container of the image (no network, no systemd): the pre-boot machine. */
function inImage(command: string): string {
    return localOk(`docker run --rm --network none --entrypoint /bin/sh ${shellQuote(image)} -c ${shellQuote(command)}`);
}

/** The keys sshd on the host presents for one key type, as "type base64" strings. */
function keyscan(type?: string): string[] {
    const result = local(`ssh-keyscan -T 10 -p ${lab.port}${type ? ` -t ${type}` : ""} ${lab.host}`, undefined, 60);
    return result.stdout.split("\n").filter(line => line.trim() && !line.startsWith("#"))
        .map(line => line.trim().split(/\s+/).slice(1, 3).join(" "));
}


afterAll(() => {
    const lines = ["cloud-init suite step times (seconds):"];
    for (const run of runs) {
        lines.push(`  ${run.step.padEnd(19)} ${run.seconds.toFixed(1).padStart(6)}${run.report ? (run.report.changed ? "*" : "") : "!"}`);
    }
    lines.push("  (* reported changed:true, ! failed)");
    writeFileSync(path.join(logDirectory(lab), "summary-cloud-init.txt"), lines.join("\n") + "\n");
    console.log(lines.join("\n"));
});

describe("EC2 boot path: cloud-init on the program's user data (the NoCloud seed STANDS IN for EC2's datasource; no IMDS, no AMI)", () => {
    test("wait-for-host's cloud-init wait really waits for cloud-init (enabled by its generator, NoCloud found) and reports \"done\"", () => {
        // start-host.sh holds cloud-init's final stage (as a slow EC2 first boot would still be running
        // it): cloud-init must be running now, and the step must block until it is released and done.
        expect(cloudInitStatus().status).toBe("running");
        sudoOk(lab, `systemd-run --quiet --on-active=${HOLD_SECONDS} touch /run/buildx-host-lab-release-cloud-init`);
        const run = runStep(lab, step("wait-for-host"), LABEL);
        runs.push(run);
        const report = expectStepOk(run);
        reports.set("wait-for-host", report);
        expect(report).toMatchObject({ os: "debian", osVersion: "13", cloudInit: "done" });
        expect(run.seconds).toBeGreaterThanOrEqual(HOLD_SECONDS);
        expect(run.stderr).toContain("waiting for cloud-init to finish");

        // Enabled the way a cloud image enables it (its systemd generator, after ds-identify found the
        // NoCloud seed), not merely installed: a disabled cloud-init would make the wait a no-op.
        const status = cloudInitStatus();
        expect({ status: status.status, boot: status.boot_status_code, datasource: status.datasource, errors: status.errors })
            .toEqual({ status: "done", boot: "enabled-by-generator", datasource: "nocloud", errors: [] });
        expect(sudoOk(lab, "cat /run/cloud-init/cloud.cfg")).toMatch(/^datasource_list: \[ NoCloud, None \]$/m);
    });

    test("cloud-init accepts the program's user data: it passes cloud-init's schema and the boot is not \"degraded done\"", () => {
        requireCloudInitDone();
        // Without --annotate: the annotated user data would print the host's private key.
        const schema = ssh(lab, "sudo -n cloud-init schema --system");
        expect({ exit: schema.status, output: (schema.stdout + schema.stderr).trim() })
            .toEqual({ exit: 0, output: expect.not.stringMatching(/error|invalid|warning/i) });
        const status = cloudInitStatus();
        expect({ extended: status.extended_status, recoverable: status.recoverable_errors })
            .toEqual({ extended: "done", recoverable: {} });
    });

    test("cloud-init consumed exactly the user data the program renders: cloudInitUserData(host key) from the NoCloud seed", () => {
        requireCloudInitDone();
        expect(userData).toMatch(/^#cloud-config\n/);
        const consumed = sudoOk(lab, "cat /var/lib/cloud/instance/user-data.txt");
        // Compared with the private key's body blanked out (a failure prints the difference), and whole by hash.
        expect(redactPrivateKey(consumed)).toBe(redactPrivateKey(userData));
        expect(sha256(consumed)).toBe(sha256(userData));
        expect(sudoOk(lab, "cloud-init query subplatform")).toMatch(/^seed-dir \(\/var\/lib\/cloud\/seed\/nocloud\)/);
    });

    test("sshd presents only the pinned ed25519 key: ssh-keyscan for rsa, ecdsa and ed25519 returns just that key", () => {
        requireCloudInitDone();
        const presented = Object.fromEntries(["rsa", "ecdsa", "ed25519"].map(type => [type, keyscan(type)]));
        expect(presented).toEqual({ rsa: [], ecdsa: [], ed25519: [pinnedKey] });
        expect(keyscan()).toEqual([pinnedKey]);
    });

    test("no other host key files remain in /etc/ssh: cloud-init deleted the image's rsa, ecdsa and ed25519 keys and installed the pinned one", () => {
        requireCloudInitDone();
        const list = "cd /etc/ssh && ls -1 ssh_host_*";
        // The image before boot: the keys openssh-server's postinst generated, none of them the pinned one.
        expect(inImage(list).trim().split("\n")).toEqual([
            "ssh_host_ecdsa_key", "ssh_host_ecdsa_key.pub", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub",
            "ssh_host_rsa_key", "ssh_host_rsa_key.pub",
        ]);
        expect(inImage("cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub").trim()).not.toBe(pinnedKey);
        // After boot: the pinned key only, private and public halves matching.
        expect(sudoOk(lab, list).trim().split("\n")).toEqual(["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]);
        expect(sudoOk(lab, "cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub").trim()).toBe(pinnedKey);
        expect(sudoOk(lab, "ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key | cut -d' ' -f1,2").trim()).toBe(pinnedKey);
    });

    test("password authentication is off, and cloud-init (ssh_pwauth: false) turned it off, not the lab's staging", () => {
        requireCloudInitDone();
        expect(sudoOk(lab, "sshd -T").split("\n").filter(line => line.startsWith("passwordauthentication "))).toEqual(["passwordauthentication no"]);
        // The running sshd offers public keys only.
        const attempt = local(`ssh -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive ` +
            `-o UserKnownHostsFile=${lab.knownHosts} -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10 ` +
            `-p ${lab.port} ${lab.user}@${lab.host} true`, undefined, 60);
        expect(attempt.status).toBe(255);
        expect(/Permission denied \(([^)]*)\)/.exec(attempt.stderr)?.[1]).toBe("publickey");
        // The only file that sets it is cloud-init's; the lab's drop-in sets neither it nor a host key,
        // and the image as built (before cloud-init) allows passwords, Debian's default.
        const setters = sudoOk(lab, "grep -lis '^[[:space:]]*PasswordAuthentication' /etc/ssh/sshd_config /etc/ssh/sshd_config.d/* || true")
            .trim().split("\n");
        expect(setters).toEqual(["/etc/ssh/sshd_config.d/50-cloud-init.conf"]);
        expect(sudoOk(lab, "cat /etc/ssh/sshd_config.d/10-buildx-host-lab.conf")).not.toMatch(/^\s*(PasswordAuthentication|HostKey)/im);
        expect(inImage("mkdir -p /run/sshd && /usr/sbin/sshd -T").split("\n").filter(line => line.startsWith("passwordauthentication ")))
            .toEqual(["passwordauthentication yes"]);
    });

    test("the login user is cloud-init's default user, with the meta-data key and passwordless sudo from cloud-init", () => {
        requireCloudInitDone();
        expect(sudoOk(lab, `cat /etc/sudoers.d/90-cloud-init-users`)).toMatch(new RegExp(`^${lab.user} ALL=\\(ALL\\) NOPASSWD:ALL$`, "m"));
        const loginKey = readFileSync(`${lab.key}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
        expect(sudoOk(lab, `cut -d' ' -f1,2 ~${lab.user}/.ssh/authorized_keys`).trim().split("\n")).toEqual([loginKey]);
    });

    test("then the program's other six steps run in order on the cloud-init host, over the same pinned SSH", () => {
        requireCloudInitDone();
        for (const s of steps.slice(1)) {
            if (s.name === "buildx-builder") {
                loadBuildkitImage(lab);
            }
            const run = runStep(lab, s, LABEL);
            runs.push(run);
            reports.set(s.name, expectStepOk(run));
        }
        expect([...reports.keys()]).toEqual(steps.map(s => s.name));
        expect(reports.get("docker-engine")).toMatchObject({ repo: `${dockerAptRepo}/debian` });
        expect(reports.get("team-access")).toMatchObject({ added: [MEMBER] });
        expect(ssh(lab, `docker buildx inspect ${config.builderName}`).stdout).toMatch(/^Status:\s+running$/m);
    });
});
