/**
 * The README against the code: what it tells a user to type or expect must be what the program does.
 */
import { readFileSync } from "fs";
import * as path from "path";

import { DEFAULTS, KNOWN_KEYS } from "../../components/config";
import { EndpointParts, memberBuildxCreateCommand, SETUP_BUILDX_ACTION } from "../../components/endpoint";
import { BUILDKIT_IMAGE } from "../../components/host-facts";

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

// Imported here, with the block that uses them (ES imports are hoisted): the blocks above belong to other changes.
import * as yaml from "js-yaml";
import { githubActionsWorkflow, githubRunner, Workflow, WORKFLOW_IMAGE_TAG, WorkflowStep } from "../../components/endpoint";

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
