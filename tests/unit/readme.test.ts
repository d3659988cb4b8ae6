/**
 * The README against the code: what it tells a user to type or expect must be what the program does.
 */
import { execFileSync } from "child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as yaml from "js-yaml";
import * as path from "path";

import type { FleetNodeOutputs } from "../../components/build-fleet";

import { DEFAULTS, documentationRange, KNOWN_KEYS, parseConfig } from "../../components/config";
import {
    AWS_CREDENTIALS_ACTION, EndpointParts, githubActionsWorkflow, githubRunner, memberBuildxCreateCommand, MINIMUM_CLIENT_VERSIONS,
    SETUP_BUILDX_ACTION, WAKE_DOOR_WAIT_SECONDS, WAKE_ROLE_VARIABLE, Workflow, WORKFLOW_IMAGE_TAG, WorkflowStep,
} from "../../components/endpoint";
import { gcLimitBytes, ROOT_VOLUME_ROOM_GIB } from "../../components/config/buildkit-gc";
import { SINGLE_HOST_KEYS } from "../../components/config/existing-host";
import { cacheVolumeRemovalMessage, SPOT_MARKET_OPTIONS } from "../../components/ec2-host";
import { BUILDKIT_IMAGE, EBS_DEVICE_LINK_PREFIX, IDLE_CHECK_SECONDS } from "../../components/host-facts";
import { EVERY_HOST_STEPS } from "../../components/steps";
import { existingHostIdleStopWarning, stoppedHostMessage } from "../../components/wake";

const ROOT = path.join(__dirname, "..", "..");
const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
const section = (title: string) => readme.split(/^## /m).find(s => s.startsWith(`${title}\n`)) ?? "";
const tableKeys = (text: string) => [...text.matchAll(/^\| `([A-Za-z]+)`/gm)].map(m => m[1]);

test("the first two lines are the two commands a newcomer needs: the main job and the tests", () => {
    const [main, tests] = readme.split("\n");
    expect(main).toMatch(/^`npm ci && pulumi up` — /);
    expect(tests).toMatch(/^`npm ci && npm test` — /);
    expect(JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).scripts.test).toBeDefined();
});

test("the configuration table lists every setting, and only those", () => {
    const listed = tableKeys(section("Configuration")).concat(
        [...section("Configuration").matchAll(/^\| `([A-Za-z]+)` \/ `([A-Za-z]+)` \/ `([A-Za-z]+)`/gm)].flatMap(m => [m[2], m[3]]),
        [...section("Configuration").matchAll(/^\| `existingHostAddress`, `(\w+)` \(22\), `(\w+)`/gm)].flatMap(m => [m[1], m[2]]));
    expect([...new Set(listed)].sort()).toEqual([...KNOWN_KEYS].sort());
});

test("the default platforms the README names are the program's, with the linux/ prefix", () => {
    const row = section("Configuration").split("\n").find(line => line.startsWith("| `platforms` |"))!;
    expect([...row.split("|")[2].matchAll(/`([^`]+)`/g)].map(m => m[1])).toEqual([...DEFAULTS.platforms]);
});

test("the configuration table's defaults are the program's", () => {
    const rows = section("Configuration").split("\n").map(line => line.split(" | "));
    const shown = Object.fromEntries(rows.flatMap(([keys, value]) => {
        const names = [...keys.matchAll(/`(\w+)`/g)].map(m => m[1]);
        const values = [...value?.matchAll(/`([^`]+)`/g) ?? []].map(m => m[1]);
        // A default in parentheses after its key: `existingHostPort` (22).
        const inline = [...keys.matchAll(/`(\w+)` \(([^)]+)\)/g)].map(m => [m[1], m[2]]);
        return names.length === values.length ? names.map((name, i) => [name, values[i]]) : inline;
    }));
    const defaults = Object.entries(DEFAULTS).filter(([key]) => KNOWN_KEYS.includes(key as never) && key !== "platforms");
    expect(defaults.length).toBeGreaterThan(12);
    for (const [key, value] of defaults) {
        expect([key, shown[key]]).toEqual([key, Array.isArray(value) ? JSON.stringify(value) : String(value)]);
    }
});

test("every BuildKit image the README and Pulumi.yaml name is the pinned one (host-facts.ts), and Docker's key is its fingerprint", () => {
    for (const text of [readme, readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")]) {
        const images = [...text.matchAll(/moby\/buildkit:[^\s`,;)]+/g)].map(m => m[0]);
        expect(images.length).toBeGreaterThan(0);
        for (const image of images) {
            expect(image.startsWith(BUILDKIT_IMAGE)).toBe(true);
        }
    }
    const spaced = /Docker's published one \(`([0-9A-F ]+)`\)/.exec(section("Configuration"))![1];
    expect(spaced.replace(/ /g, "")).toBe(DEFAULTS.dockerAptKeyFingerprint);
});

test("the outputs table lists every stack output index.ts exports", () => {
    const exported = [...readFileSync(path.join(ROOT, "index.ts"), "utf8").matchAll(/^ {8}(\w+): (?:host|fleet)\.\w+,$/gm)].map(m => m[1]);
    expect(exported.length).toBeGreaterThan(10);
    const listed = section("Outputs").split("\n").flatMap(line => [...(/^\| ([^|]+) \|/.exec(line)?.[1] ?? "").matchAll(/`(\w+)`/g)].map(m => m[1]));
    expect([...new Set(listed)].sort()).toEqual([...new Set(exported)].sort());
});

test("the attach commands and the CI action are the ones the program prints", () => {
    const parts: EndpointParts = { host: "<address>", port: 22, user: "u", hostPublicKey: "k", builderName: DEFAULTS.builderName };
    expect(section("Attaching")).toContain(memberBuildxCreateCommand(parts, "alice"));
    expect(section("Attaching")).toContain(SETUP_BUILDX_ACTION);
    expect(readme).toContain(`client-side buildx builder is \`<builderName>-remote\``);
});

describe("README: upgrades and operations", () => {
    const upgrades = section("Upgrades and replacement");
    const operations = section("Operations");
    const stopStart = section("Stop, start, remove");

    test("the new sections follow \"Stop, start, remove\", the table (held to the program by operations.test.ts) in its place", () => {
        const order = ["Stop, start, remove", "Upgrades and replacement", "Operations"].map(title => readme.indexOf(`\n## ${title}\n`));
        expect(order[0]).toBeGreaterThan(0);
        expect([...order].sort((a, b) => a - b)).toEqual(order);
        expect(upgrades).toContain("<!-- replacement-table -->\n| Setting changed | Resources | Steps run again | What it means |");
        expect(upgrades).toMatch(/git pull[^\n]*\nnpm ci\npulumi preview --diff[^\n]*\npulumi up\n/);
    });

    test("the IAM policy the README points to exists, and allows what the README says it allows", () => {
        expect(operations).toContain("[`iam-policy.json`](iam-policy.json)");
        expect(operations).toContain("--policy-document file://iam-policy.json");
        const policy = JSON.parse(readFileSync(path.join(ROOT, "iam-policy.json"), "utf8")) as { Statement: { Action: string[] }[] };
        const allowed = policy.Statement.flatMap(statement => statement.Action);
        const named = [...operations.matchAll(/`ec2:(\w+)`/g)].map(m => `ec2:${m[1]}`);
        const described = [...operations.matchAll(/`(Describe\w+)`/g)].map(m => `ec2:${m[1]}`);
        expect(named.length + described.length).toBeGreaterThan(4);
        expect([...named, ...described].filter(action => !allowed.includes(action))).toEqual([]);
    });

    test("the fleet's stop/start recipe, run by sh, stops and starts every ec2 node's instance and nothing else", () => {
        const recipe = /<!-- fleet-stop-start -->\n```sh\n([\s\S]*?)```/.exec(stopStart)![1];
        expect(recipe).not.toMatch(/\b(tac|xargs|sed -i|readarray|mapfile)\b/);
        const dir = mkdtempSync(path.join(tmpdir(), "fleet-stop-"));
        const nodes: Record<string, Pick<FleetNodeOutputs, "address" | "instanceId">> = {
            amd64: { address: "ec2-198-51-100-7.example", instanceId: "i-0aaa" },
            pi: { address: "pi.example" },
            graviton: { address: "ec2-198-51-100-8.example", instanceId: "i-0bbb" },
        };
        writeFileSync(path.join(dir, "nodes.json"), JSON.stringify(nodes));
        writeFileSync(path.join(dir, "pulumi"), `#!/bin/sh\n[ "$*" = "stack output nodes --json" ] && cat '${dir}/nodes.json'\n`, { mode: 0o755 });
        writeFileSync(path.join(dir, "aws"), `#!/bin/sh\necho "$*" >> '${dir}/calls'\n`, { mode: 0o755 });
        execFileSync("sh", ["-eu", "-c", recipe], { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
        expect(readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n")).toEqual([
            "ec2 stop-instances --instance-ids i-0aaa i-0bbb",
            "ec2 start-instances --instance-ids i-0aaa i-0bbb",
            "ec2 wait instance-running --instance-ids i-0aaa i-0bbb",
        ]);
        rmSync(dir, { recursive: true });
    });

    test("the backend choice names each `pulumi login` form and the passphrase variable", () => {
        for (const line of ["`pulumi login`", "`pulumi login s3://<bucket>`", "`pulumi login file://<directory>`", "`PULUMI_CONFIG_PASSPHRASE`"]) {
            expect(operations).toContain(line);
        }
    });
});

describe("growing a single-host stack into a fleet (README \"Fleet\")", () => {
    const fleet = section("Fleet: native nodes in one builder");

    test("the recipe removes exactly the single-host settings a fleet refuses", () => {
        const removed = /^pulumi config rm-all (.+)$/m.exec(fleet)![1].split(" ");
        expect(removed).toEqual(Object.values(SINGLE_HOST_KEYS));
    });

    test("the steps it says re-run on the host are the QEMU step and every step after it", () => {
        const named = /its `([a-z-]+)`\s+step re-runs for the rest, and the steps after it \(`([a-z-]+)`, `([a-z-]+)`\)\s+re-run in place/.exec(fleet)!;
        expect(named.slice(1)).toEqual(EVERY_HOST_STEPS.slice(EVERY_HOST_STEPS.indexOf("qemu-binfmt")));
    });
});

describe("no lock-out traps, and commands that run on every client", () => {
    const subsection = (title: string) => readme.split(/^### /m).find(s => s.startsWith(`${title}\n`))?.split(/^## /m)[0] ?? "";
    const blocks = (language: string) => [...readme.matchAll(new RegExp(`^\`\`\`${language}\\n([\\s\\S]*?)^\`\`\``, "gm"))].map(m => m[1]);
    /** Addresses and networks in a text, IPv4 or IPv6 with a prefix, as a value would carry them. */
    const networks = (text: string) => [...text.matchAll(/(?<![\w.:])(\d{1,3}(?:\.\d{1,3}){3}(?:\/\d{1,2})?|[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7}\/\d{1,3})(?![\w.])/gi)]
        .map(m => m[1]);

    test("no `pulumi config set` command, `from=` example or example stack value is a documentation range", () => {
        const commands = [...readme.matchAll(/pulumi config set [^\n`]*/g)].map(m => m[0]);
        const fromExamples = [...readme.matchAll(/from=[^\s`"]*/g)].map(m => m[0]);
        expect(commands.length).toBeGreaterThan(15);
        expect(fromExamples.length).toBeGreaterThan(2);
        const stack = readFileSync(path.join(ROOT, "Pulumi.dev.yaml"), "utf8");
        for (const text of [...commands, ...fromExamples, stack]) {
            expect([text, networks(text).filter(network => documentationRange(network) !== undefined)]).toEqual([text, []]);
        }
        // The check itself finds one.
        expect(networks("pulumi config set --path 'allowedSshCidrs[0]' 203.0.113.0/24").map(documentationRange)).toEqual(["RFC 5737"]);
    });

    test("shell blocks use no GNU-only tool or flag (macOS has BSD tools)", () => {
        const gnuOnly = [/\btac\b/, /\bsed -i/, /\breadlink -f/, /\bdate -d/, /\bgrep -P/, /\bxargs -r/, /\bbase64 -w/, /\bstat -c/,
            /\bsha256sum\b/, /\bfind [^|\n]*-printf/, /--no-run-if-empty/];
        const shell = blocks("sh");
        expect(shell.length).toBeGreaterThan(5);
        for (const block of shell) {
            expect([block, gnuOnly.filter(pattern => pattern.test(block)).map(String)]).toEqual([block, []]);
        }
    });

    test("the host-gone recipe removes the same resources in sh and PowerShell, last first", () => {
        const sh = /<!-- host-gone-recipe -->\n```sh\n([\s\S]*?)```/.exec(readme)![1];
        const powershell = blocks("powershell").join("");
        const filter = (text: string) => /'\^\(command:\|buildx-host:host:\)'|"\^\(command:\|buildx-host:host:\)"/.exec(text)?.[0].slice(1, -1);
        expect(filter(sh)).toBe("^(command:|buildx-host:host:)");
        expect(filter(powershell)).toBe(filter(sh));
        expect(sh).toContain("| reverse | .[]");
        expect(powershell).toContain("[array]::Reverse($urns)");
    });

    test("a member's entry as the README adds it is one config accepts, and the index rules name the commands", () => {
        const member = subsection("Adding and removing a member");
        const add = /pulumi config set --path "team\[\$\(pulumi config get team \| jq length\)\]" "bob \$\(cat bob\.pub\)"/.exec(member);
        expect(add).not.toBeNull();
        expect(member).toContain("pulumi config rm --path 'team[");
        expect(member).toContain("pulumi stack output teamHandOver --json | jq -r .bob");
        const bobKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICMuitBm3Na3mokQbnQlnPS+q4yZBeoCIqm3SvbczITp bob@laptop";
        const stack = parseConfig({ allowedSshCidrs: JSON.stringify(["10.20.0.0/16"]), team: JSON.stringify([`bob ${bobKey}`]) });
        expect(stack.nodes[0].host.team).toEqual([{ name: "bob", keys: [{ sshPublicKey: bobKey, from: [] }] }]);
    });

    test("Clients states the minimum Docker CLI, buildx and OpenSSH versions with the commands that show them", () => {
        const clients = subsection("Clients: Linux, macOS, Windows");
        const { docker, buildx, openssh } = MINIMUM_CLIENT_VERSIONS;
        expect(clients.replace(/\s+/g, " ")).toMatch(new RegExp(`Docker CLI ${docker} or newer .*buildx ${buildx.replace(".", "\\.")} or newer .*OpenSSH client ${openssh} or newer`));
        for (const check of ["docker version --format '{{.Client.Version}}'", "docker buildx version", "ssh -V"]) {
            expect(clients).toContain(check);
        }
        expect(clients).toContain("Add-Content -Encoding ascii");
    });
});

// Imported here, with the block that uses them (ES imports are hoisted): the blocks above belong to other changes.

describe("the CI workflow and the hand-over, as the README tells them", () => {
    const ci = readme.slice(readme.indexOf("### CI (GitHub Actions)"), readme.indexOf("## Fleet: native nodes in one builder"));
    const parts: EndpointParts = { host: "<address>", port: 22, user: "u", hostPublicKey: "k", builderName: DEFAULTS.builderName };
    const steps = (yaml.load(githubActionsWorkflow(parts, "ci", DEFAULTS.platforms, "self-hosted")) as Workflow).jobs.build.steps;

    test("the outputs it names are stack outputs of both kinds of stack", () => {
        const program = readFileSync(path.join(ROOT, "index.ts"), "utf8");
        for (const output of ["teamGithubActionsWorkflows", "teamHandOver"]) {
            expect(program).toContain(`${output}: host.${output},`);
            expect(program).toContain(`${output}: fleet.${output},`);
            expect(section("Outputs")).toContain(`\`${output}\``);
        }
        expect(ci).toContain("pulumi stack output teamGithubActionsWorkflows --json | jq -r .ci > .github/workflows/buildx-host.yml");
        expect(section("Attaching")).toContain("pulumi stack output teamHandOver --json | jq -r .alice");
    });

    test("the steps it lists are the workflow's, in order: the actions, the token, the tag, the key removed if: always()", () => {
        const listed = [...ci.matchAll(/^\d\. (.*)$/gm)].map(m => m[1]);
        expect(listed).toHaveLength(steps.length);
        steps.forEach((step, index) => {
            expect([index, step.uses === undefined || listed[index].includes(`\`${step.uses}\``)]).toEqual([index, true]);
        });
        expect(listed[5]).toContain("`if: always()`");
        expect(steps[5].if).toBe("always()");
        expect(ci).toContain(`\`persist-credentials: false\``);
        expect(ci).toContain(`tag \`${WORKFLOW_IMAGE_TAG}\``);
        expect(ci).toContain("`permissions: contents: read, packages: write`");
        expect(ci).toContain("GHCR takes only a\n   lowercase repository path");
    });

    test("the ECR block is two steps that replace the login: OIDC credentials for a role, then the ECR login", () => {
        const block = /```yaml\n([\s\S]*?)```/.exec(ci)![1];
        const ecr = yaml.load(block.split("\n").map(line => line.slice(6)).join("\n")) as WorkflowStep[];
        expect(ecr.map(step => step.uses?.split("@")[0])).toEqual(["aws-actions/configure-aws-credentials", "aws-actions/amazon-ecr-login"]);
        expect(Object.keys(ecr[0].with!)).toEqual(["role-to-assume", "aws-region"]);
        expect(ci).toContain("add `id-token: write` to `permissions:`");
        expect(ci).toContain("`<account>.dkr.ecr.<region>.amazonaws.com/<repository>:${{ github.sha }}`");
    });

    test("runs-on is self-hosted unless every host is open to the internet, as the workflow decides", () => {
        expect(ci).toContain("**runs-on**: `self-hosted`");
        expect(ci).toContain("`ubuntu-latest` only when every host is open to the internet (`allowOpenSsh`");
        expect(githubRunner([true])).toBe("ubuntu-latest");
        expect(githubRunner([false])).toBe("self-hosted");
    });

    test("the security model says where build secrets and push credentials travel", () => {
        expect(section("Security model")).toContain("**Build secrets and push credentials travel from the client through\n  " +
            "BuildKit's session and are never stored on the host**");
    });
});

describe("Reliability: disk pressure", () => {
    const disk = section("Reliability").split(/^### /m).find(s => s.startsWith("Disk pressure\n")) ?? "";

    test("states the rule the program checks with the room it leaves the system, and the defaults it fits", () => {
        expect(disk).toContain(`\`rootVolumeSizeGb\` less ${ROOT_VOLUME_ROOM_GIB} GiB`);
        const defaults = [DEFAULTS.buildkitGcReservedSpace, DEFAULTS.buildkitGcMaxUsedSpace, DEFAULTS.buildkitGcMinFreeSpace];
        expect(disk).toContain(`(${defaults.join(" / ")}, BuildKit's own shape)`);
        const used = (gcLimitBytes(DEFAULTS.buildkitGcMaxUsedSpace, DEFAULTS.rootVolumeSizeGb * 1024 ** 3) +
            gcLimitBytes(DEFAULTS.buildkitGcMinFreeSpace, DEFAULTS.rootVolumeSizeGb * 1024 ** 3)) / 1024 ** 3;
        expect(disk).toContain(`on the default ${DEFAULTS.rootVolumeSizeGb} GiB volume leave ${Math.floor(DEFAULTS.rootVolumeSizeGb - used)} GiB for the system`);
    });
});

describe("Reliability: restarts and the status view", () => {
    const reliability = section("Reliability");
    const subsection = (title: string) => reliability.split(/^### /m).find(s => s.startsWith(`${title}\n`)) ?? "";

    test("the restart policy the README names is the one the builder step runs BuildKit with", () => {
        expect(subsection("Restarts")).toContain("`--restart unless-stopped`");
        expect(readFileSync(path.join(ROOT, "components", "scripts", "buildx-builder.sh"), "utf8")).toContain("--restart unless-stopped");
    });

    test("the status view's example has every line the script prints, and names the output", () => {
        const status = subsection("Status");
        expect(status).toContain("`statusCommand`");
        const example = /```\n(node [\s\S]*?)```/.exec(status)?.[1] ?? "";
        const script = readFileSync(path.join(ROOT, "components", "status", "node-status.sh"), "utf8");
        for (const label of ["  BuildKit:  ", "  cache:     ", "  disk:      ", "  running:   ", "  last "]) {
            expect({ label, inScript: script.includes(`"${label}`), inExample: example.includes(`\n${label}`) })
                .toEqual({ label, inScript: true, inExample: true });
        }
    });
});

describe("Performance: builds at once", () => {
    const table = section("Performance").split("\n").filter(line => /^\| (unset|\d+ \(CPUs\)) \|/.test(line))
        .map(line => line.split("|").slice(1, -1).map(cell => cell.trim()));

    test("every row's builds a minute follow from its wall time for the 8 builds", () => {
        expect(table.length).toBe(6);
        for (const [setting, concurrent, wall, perMinute] of table) {
            expect({ setting, concurrent, perMinute }).toEqual({ setting, concurrent, perMinute: (8 * 60 / Number(wall)).toFixed(1) });
        }
    });

    test("max-parallelism stays BuildKit's default, as the table's conclusion says", () => {
        expect(section("Performance")).toContain("So the program leaves it unset, BuildKit's default.");
        expect(readFileSync(path.join(ROOT, "components", "scripts", "buildx-builder.sh"), "utf8")).not.toContain("max-parallelism");
    });
});

describe("Cost and durability: spot and the cost table", () => {
    const subsection = (title: string) => section("Cost and durability").split(/^### /m).find(s => s.startsWith(`${title}\n`)) ?? "";
    const costs = subsection("What it costs");

    test.each([["two spot nodes", "sir-0aaa\tsir-0bbb"], ["no spot node", ""]])(
        "the recipe that cancels the spot requests before destroy, run by sh, cancels those of the stack's instances: %s", (_, requests) => {
            const recipe = /<!-- spot-cancel -->\n```sh\n([\s\S]*?)```/.exec(subsection("Spot"))![1];
            const dir = mkdtempSync(path.join(tmpdir(), "spot-cancel-"));
            const nodes: Record<string, Pick<FleetNodeOutputs, "address" | "instanceId">> = {
                amd64: { address: "ec2-198-51-100-7.example", instanceId: "i-0aaa" }, pi: { address: "pi.example" },
                graviton: { address: "ec2-198-51-100-8.example", instanceId: "i-0bbb" },
            };
            writeFileSync(path.join(dir, "nodes.json"), JSON.stringify(nodes));
            writeFileSync(path.join(dir, "pulumi"), `#!/bin/sh\n[ "$*" = "stack output nodes --json" ] && cat '${dir}/nodes.json'\n`, { mode: 0o755 });
            writeFileSync(path.join(dir, "aws"), `#!/bin/sh\necho "$*" >> '${dir}/calls'\n` +
                `case "$2" in describe-instances) printf '%s\\n' '${requests}' ;; esac\n`, { mode: 0o755 });
            execFileSync("sh", ["-eu", "-c", recipe], { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
            const describe = "ec2 describe-instances --instance-ids i-0aaa i-0bbb --query Reservations[].Instances[].SpotInstanceRequestId --output text";
            expect(readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n")).toEqual(requests === "" ? [describe]
                : [describe, "ec2 cancel-spot-instance-requests --spot-instance-request-ids sir-0aaa sir-0bbb"]);
            rmSync(dir, { recursive: true });
        });

    test("Spot names the request the program makes, and the permissions it needs beyond iam-policy.json", () => {
        const spot = subsection("Spot").replace(/\s+/g, " ");
        const { spotInstanceType, instanceInterruptionBehavior } = SPOT_MARKET_OPTIONS.spotOptions;
        expect(spot).toContain(`The request is ${spotInstanceType} and its interruption behaviour is "${instanceInterruptionBehavior}"`);
        expect(spot).toContain("pulumi config set --path 'nodes[1].spot' true");
        expect(spot).toContain("aws iam create-service-linked-role --aws-service-name spot.amazonaws.com");
        const policy = readFileSync(path.join(ROOT, "iam-policy.json"), "utf8");
        expect([policy.includes("ec2:DescribeSpotInstanceRequests"), policy.includes("ec2:CancelSpotInstanceRequests"),
            policy.includes("iam:CreateServiceLinkedRole")])
            .toEqual([true, true, false]);
    });

    const priceList = (/<!-- cost-prices -->\n([\s\S]*?)\n\n/.exec(costs)?.[1] ?? "").split(/^- /m).slice(1).map(item => item.replace(/\s+/g, " "));
    const prices = priceList.join(" ");
    const price = (what: string, type = "") => Number(new RegExp(`${what}[^:]*:[^;]*?${type && `\`${type}\` `}([\\d.]+)`).exec(prices)?.[1]);
    const rows = (/<!-- cost-table -->\n([\s\S]*?)\n\n/.exec(costs)?.[1] ?? "").split("\n").slice(2)
        .map(line => line.replace(/^\| | \|$/g, "").split(" | "));
    /** A cell's product, "[N ×] Q unit × (P1 + P2)", its factors and the amount it states. */
    const cell = (text: string) => {
        const m = /^(?:(\d+) × )?(\d+) (h|GiB) × (?:\(([\d.]+) \+ ([\d.]+)\)|([\d.]+)) = (\d+\.\d\d)$/.exec(text);
        if (m === null) {
            throw new Error(`not a cost cell: ${text}`);
        }
        const rates = m[6] === undefined ? [Number(m[4]), Number(m[5])] : [Number(m[6])];
        return { count: Number(m[1] ?? 1), quantity: Number(m[2]), unit: m[3], rates, stated: Number(m[7]) };
    };
    const fleetTypes = [...section("Fleet: native nodes in one builder").matchAll(/--path 'nodes\[\d\]\.instanceType' (\S+)/g)].map(m => m[1]);

    test("compares one host of the default type with the default two-node fleet, at the prices it lists with their sources", () => {
        expect(fleetTypes).toEqual([DEFAULTS.instanceType, "c7g.xlarge"]);
        expect(costs).toContain(`| How it runs | Hours a month | One host: \`${fleetTypes[0]}\` | Fleet: \`${fleetTypes[0]}\` + \`${fleetTypes[1]}\` |`);
        for (const type of fleetTypes) {
            expect([type, price("on demand", type), price("spot", type)]).toEqual([type, expect.any(Number), expect.any(Number)]);
            expect(price("spot", type)).toBeLessThan(price("on demand", type));
        }
        expect(costs).toMatch(/dated [A-Z][a-z]+ \d{4}, for us-east-1/);
        expect(priceList.map(item => /\(.*AWS's [^)]*(pricing page|price history)/.test(item))).toEqual([true, true, true, true]);
    });

    test("each amount is hours (or GiB) × the listed price, rounded to the cent; the months have the hours it says", () => {
        expect(rows).toHaveLength(7);
        expect(Math.round(365 * 24 / 12)).toBe(730);
        expect(Math.round(8 * 5 * 52 / 12)).toBe(173);
        for (const [what, hours, ...amounts] of rows) {
            const market = / spot$/.test(what) ? "spot" : "on demand";
            amounts.forEach((text, column) => {
                const { count, quantity, unit, rates, stated } = cell(text);
                const off = Math.abs(count * quantity * rates.reduce((a, b) => a + b, 0) - stated);
                expect([what, column, off <= 0.005 + 1e-9]).toEqual([what, column, true]);
                // The fleet column counts both nodes: two instance prices, or twice the one-host quantity.
                expect([what, column === 0 ? count * rates.length : Math.max(count, rates.length)]).toEqual([what, column + 1]);
                if (unit === "h") {
                    expect([what, quantity]).toEqual([what, Number(hours)]);
                }
                if (what.startsWith("Always on") || what.startsWith("Idle power-off")) {
                    const types = column === 0 ? fleetTypes.slice(0, 1) : fleetTypes;
                    expect([what, rates]).toEqual([what, types.map(type => price(market, type))]);
                } else if (unit === "GiB") {
                    expect([what, rates]).toEqual([what, [price("gp3 volume")]]);
                } else {
                    expect([what, rates]).toEqual([what, [price("public IPv4 address")]]);
                }
            });
        }
        const root = rows.find(([what]) => what.startsWith("Root volume"))!;
        expect(root[0]).toContain(`${DEFAULTS.rootVolumeSizeGb} GiB gp3 (\`rootVolumeSizeGb\`)`);
        expect(cell(root[2]).quantity).toBe(DEFAULTS.rootVolumeSizeGb);
    });

    test("gives the range of the wake times Idle power-off lists", () => {
        const idle = section("Cost and durability").split(/^### /m).find(s => s.startsWith("Idle power-off\n"))!.replace(/\s+/g, " ");
        const listed = /the first member build succeeded ([\d., and]+) s later/.exec(idle)?.[1].split(/, | and /).map(Number) ?? [];
        expect(listed.length).toBeGreaterThan(1);
        expect(costs.replace(/\s+/g, " ")).toContain(`the first member build succeeded ${Math.min(...listed).toFixed(1)}–` +
            `${Math.max(...listed).toFixed(1)} s after the host's start (${["", "", "two", "three", "four", "five", "six"][listed.length]} runs`);
    });
});

describe("Cost and durability: idle power-off", () => {
    const idle = section("Cost and durability").split(/^### /m).find(s => s.startsWith("Idle power-off\n")) ?? "";
    const checkScript = readFileSync(path.join(ROOT, "components", "scripts", "idle-stop.sh"), "utf8");

    test("names the check's interval, timer and unit, and quotes decisions in the words the check logs", () => {
        expect(idle).toContain(`runs a check every ${IDLE_CHECK_SECONDS} s`);
        expect(idle).toContain("`buildx-host-idle-stop.timer`");
        expect(checkScript).toContain("readonly TIMER=buildx-host-idle-stop.timer");
        expect(idle).toContain("`journalctl -u buildx-host-idle-stop.service`");
        for (const words of ["stay on: busy: running builds: ", "stay on: busy: open SSH sessions: ", "stay on: idle ", "power off: idle "]) {
            expect({ words, inReadme: idle.includes(`\`${words}`) }).toEqual({ words, inReadme: true });
        }
        expect(idle).toContain("`… (seen at the second look, with\n  logins refused; allowed again)`");
        for (const words of ["stay on: ${BUSY_UNKNOWN:-busy: ${BUSY}}", "running builds: ${running}", "open SSH sessions: ${sessions}",
            "(seen at the second look, with logins refused; allowed again)",
            "stay on: idle ${idle}s of ${IDLE_STOP_SECONDS}s: no running build, no open SSH session",
            "power off: idle ${idle}s of ${IDLE_STOP_SECONDS}s: no running build, no open SSH session since "]) {
            expect({ words, inScript: checkScript.includes(words) }).toEqual({ words, inScript: true });
        }
    });

    test("the CI wake it describes is the workflow's: the action, the variable, the door wait", () => {
        expect(idle).toContain(`\`${AWS_CREDENTIALS_ACTION}\` (\`role-to-assume: \${{ vars.${WAKE_ROLE_VARIABLE} }}\``);
        expect(idle).toContain(`at most ${WAKE_DOOR_WAIT_SECONDS} s, until the`);
        expect(idle).toContain(`gh variable set ${WAKE_ROLE_VARIABLE} `);
    });

    test("the role's trust policy is JSON that lets GitHub's OIDC tokens of one repository assume it", () => {
        const trust = /--assume-role-policy-document '([^']+)'/.exec(idle)?.[1] ?? "";
        const statement = (JSON.parse(trust) as { Statement: Record<string, any>[] }).Statement[0];
        expect(statement.Action).toBe("sts:AssumeRoleWithWebIdentity");
        expect(statement.Condition.StringEquals["token.actions.githubusercontent.com:aud"]).toBe("sts.amazonaws.com");
        expect(statement.Condition.StringLike["token.actions.githubusercontent.com:sub"]).toMatch(/^repo:<owner>\/<repo>:/);
    });

    test("quotes the existing server's warning and the spot host's lookup as the program words them", () => {
        const [opening] = existingHostIdleStopWarning(30).split(" after ");
        expect(idle.replace(/\n +/g, " ")).toContain(`(\`${opening} …\`)`);
        const target = { instanceId: "i-0123456789abcdef0", instanceArn: "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0" };
        expect(stoppedHostMessage(target, true)).toContain("StateReason.Code");
        expect(stoppedHostMessage(target, true)).toContain("Server.SpotInstanceShutdown is an interruption");
        expect(idle).toContain("`aws ec2 describe-instances … StateReason.Code`");
        expect(idle).toContain("(`Server.SpotInstanceShutdown`)");
    });

    test("quotes the stopped host's message as the program words it", () => {
        const target = { instanceId: "i-0123456789abcdef0", instanceArn: "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0" };
        const [opening] = stoppedHostMessage(target).split(" (");
        expect(idle).toContain(`\`${opening.replace(target.instanceId, "i-…")} (…); nothing on it is changed. Wake it,\n  then run pulumi up again:\``);
        expect(stoppedHostMessage(target)).toContain("; nothing on it is changed. Wake it, then run pulumi up again:\n");
    });
});

describe("Cost and durability: the cache volume", () => {
    const cacheVolume = section("Cost and durability").split(/^### /m).find(s => s.startsWith("Cache volume\n")) ?? "";
    const script = readFileSync(path.join(ROOT, "components", "scripts", "cache-volume.sh"), "utf8");

    test("the device, the wait, the fstab options and the docker requirement it names are the step's", () => {
        expect(cacheVolume).toContain(`(\`${EBS_DEVICE_LINK_PREFIX}vol…\``);
        expect(script).toContain("${HOST_FACTS_EBS_DEVICE_LINK_PREFIX}${CACHE_VOLUME_ID/-/}");
        expect(cacheVolume).toContain("waiting up to 2 minutes");
        expect(script).toContain('CACHE_VOLUME_WAIT_SECONDS="${CACHE_VOLUME_WAIT_SECONDS:-120}"');
        expect(cacheVolume).toContain("by UUID through\n  `/etc/fstab` with `nofail`");
        expect(script).toContain("defaults,nofail 0 2");
        expect(cacheVolume).toContain("`RequiresMountsFor=/var/lib/docker`");
        expect(script).toMatch(/"RequiresMountsFor=\$\{DATA_ROOT\}"/);
        expect(script).toContain("readonly DATA_ROOT=/var/lib/docker");
    });

    test("a retained volume is found by the tags the program gives it, and by the outputs it names", () => {
        const recipe = /<!-- delete-retained-volume -->\n```sh\n([\s\S]*?)```/.exec(cacheVolume)?.[1] ?? "";
        expect(recipe).toContain("Name=tag:Project,Values=buildx-host Name=tag:Stack,Values=\"$(pulumi stack --show-name)\"");
        const program = readFileSync(path.join(ROOT, "index.ts"), "utf8");
        expect(program).toContain('tags: { Project: PROJECT, Stack: pulumi.getStack(),');
        expect(program).toContain("cacheVolumeId: host.cacheVolumeId,");
        const nodeOutput: keyof FleetNodeOutputs = "cacheVolumeId";
        expect(cacheVolume).toContain(`jq -r '.[].${nodeOutput} // empty'`);
        expect(cacheVolume).toContain("`pulumi stack output cacheVolumeId`");
    });

    test("turning it off quotes the preview's refusal as the program words it", () => {
        const message = cacheVolumeRemovalMessage("i-…", "urn:pulumi:…::aws:ec2/instance:Instance::…");
        const [opening] = message.split(": removed in place");
        expect(cacheVolume.replace(/\n +/g, " ")).toContain(`\`${opening}: …\``);
        expect(message).toContain("\n    pulumi up --replace 'urn:pulumi:…::aws:ec2/instance:Instance::…'\n");
        expect(cacheVolume).toContain("`pulumi up --replace 'urn:pulumi:…::aws:ec2/instance:Instance::…'`");
    });

    test("the defaults it states are the program's", () => {
        expect(cacheVolume).toContain(`(\`retainCacheVolume\`, default \`${DEFAULTS.retainCacheVolume}\`)`);
        expect(DEFAULTS.cacheVolumeSizeGb).toBe(0);
        expect(cacheVolume).toContain("(0: none)");
    });
});
