/**
 * The real Pulumi CLI (tools/build-pulumi.sh) runs the compiled program in-process through
 * Automation API, on a local file backend. Run by tests/engine/run.sh as a plain node script: the
 * program must be re-required for every run (jest's module registry does not allow that), and
 * Automation API rejects a failing program's promises once more after the run has ended, which
 * node's test runner would count as a failure of its own.
 */
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

import { ConfigMap, EngineEvent, LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";

import { DEFAULTS } from "../../components/config";
import { configProblems } from "../config-problems";

const ROOT = path.resolve(__dirname, "..", "..", "..");
const PROGRAM_DIR = path.join(ROOT, "bin");
const TOOLS_DIR = process.env.PULUMI_TOOLS_DIR ?? "";
const PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nZW5naW5lLXRlc3Qta2V5LW1hdGVyaWFs\n-----END OPENSSH PRIVATE KEY-----\n";

let workDir: string;
let pulumiCommand: PulumiCommand;

/** The compiled index.js, loaded afresh for every engine run, as the language host would. */
async function program(): Promise<void> {
    for (const file of Object.keys(require.cache)) {
        if (file.startsWith(PROGRAM_DIR + path.sep) && !file.includes(`${path.sep}tests${path.sep}`)) {
            delete require.cache[file];
        }
    }
    require(path.join(PROGRAM_DIR, "index.js"));
}

async function newStack(name: string, config: ConfigMap): Promise<Stack> {
    const workspace = await LocalWorkspace.create({
        workDir,
        pulumiCommand,
        program,
        envVars: {
            PULUMI_BACKEND_URL: `file://${path.join(workDir, "state")}`,
            PULUMI_CONFIG_PASSPHRASE: "engine-test",
            PULUMI_HOME: path.join(TOOLS_DIR, "home"),
            PULUMI_SKIP_UPDATE_CHECK: "true",
        },
    });
    const stack = await Stack.create(name, workspace);
    await stack.setAllConfig(config);
    return stack;
}

/** What the program receives: every buildx-host key with Pulumi.yaml's defaults filled in by the CLI. */
async function programConfig(stack: Stack): Promise<Record<string, string>> {
    const all = await stack.getAllConfig();
    return Object.fromEntries(Object.entries(all)
        .filter(([key]) => key.startsWith("buildx-host:"))
        .map(([key, { value }]) => [key.slice("buildx-host:".length), value]));
}

/** Runs a preview that must fail; returns its output and the types of resources it registered. */
async function failingPreview(stack: Stack): Promise<{ output: string; types: string[] }> {
    let output = "";
    const types: string[] = [];
    await assert.rejects(stack.preview({
        onOutput: text => { output += text; },
        onEvent: (event: EngineEvent) => {
            if (event.resourcePreEvent) {
                types.push(event.resourcePreEvent.metadata.type);
            }
        },
    }), (error: Error) => { output += error.message; return true; });
    return { output, types };
}

const tests: [string, () => Promise<void> | void][] = [];
function test(name: string, body: () => Promise<void> | void): void {
    tests.push([name, body]);
}

async function setUp(): Promise<void> {
    assert.ok(TOOLS_DIR, "PULUMI_TOOLS_DIR must point at tools/build-pulumi.sh's output (tests/engine/run.sh sets it)");
    pulumiCommand = await PulumiCommand.get({ root: TOOLS_DIR });
    workDir = mkdtempSync(path.join(tmpdir(), "buildx-host-engine-"));
    copyFileSync(path.join(ROOT, "Pulumi.yaml"), path.join(workDir, "Pulumi.yaml"));
    mkdirSync(path.join(workDir, "state"));
}

test("the CLI is the version package.json pins for @pulumi/pulumi", () => {
    const pinned = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).dependencies["@pulumi/pulumi"];
    const reported = execFileSync(path.join(TOOLS_DIR, "bin", "pulumi"), ["version"], { env: { ...process.env, PULUMI_SKIP_UPDATE_CHECK: "true" } });
    assert.equal(reported.toString().trim(), `v${pinned}`);
});

test("the CLI accepts Pulumi.yaml: a new stack needs no setting to exist and gets every default", async () => {
    const stack = await newStack("defaults", {});
    const config = await programConfig(stack);
    for (const [key, value] of Object.entries(DEFAULTS)) {
        assert.equal(config[key], typeof value === "string" ? value : JSON.stringify(value), key);
    }
    assert.equal(config.allowedSshCidrs, "[]");
    assert.equal(config.subnetId, "");
});

test("a first preview without allowedSshCidrs fails with our message and registers nothing but the stack", async () => {
    const stack = await newStack("first-preview", {});
    const { output, types } = await failingPreview(stack);
    assert.match(output, /Invalid buildx-host configuration \(1 problem\):\n\s+- buildx-host:allowedSshCidrs is required in ec2 mode: list the networks allowed to reach SSH\. Example: pulumi config set --path 'allowedSshCidrs\[0\]' 203\.0\.113\.0\/24/);
    assert.doesNotMatch(output, /\n\s+at [^\n]+\(/, "no stack trace");
    assert.deepEqual([...new Set(types)], ["pulumi:pulumi:Stack"]);
});

test("several bad settings fail the preview together, each line as parseConfig words it, secrets unseen", async () => {
    const stack = await newStack("bad-existing", {
        "buildx-host:hostMode": { value: "existing" },
        "buildx-host:existingHostAddress": { value: "build1.example.com" },
        "buildx-host:existingHostPort": { value: "70000" },
        "buildx-host:existingHostUser": { value: "Bad User" },
        "buildx-host:existingHostPrivateKey": { value: PRIVATE_KEY, secret: true },
        "buildx-host:builderName": { value: "Shared Builder" },
        "buildx-host:instancetype": { value: "c7i.large" },
    });
    const problems = configProblems(await programConfig(stack));
    assert.ok(problems.length >= 5, problems.join("\n"));
    const { output, types } = await failingPreview(stack);
    for (const problem of problems) {
        assert.ok(output.includes(problem), `missing from the engine's output: ${problem}`);
    }
    assert.ok(!output.includes("ZW5naW5lLXRlc3Qta2V5LW1hdGVyaWFs"), "the private key must never be printed");
    assert.deepEqual([...new Set(types)], ["pulumi:pulumi:Stack"]);
});

async function main(): Promise<void> {
    // The late rejections of a failing program are the failure these tests expect; anything else fails the run.
    process.on("unhandledRejection", reason => {
        if (!(reason instanceof Error && reason.message.startsWith("Invalid buildx-host configuration"))) {
            console.error("unexpected unhandled rejection:", reason);
            process.exitCode = 1;
        }
    });
    await setUp();
    let passed = 0;
    let failed = 0;
    try {
        for (const [name, body] of tests) {
            const started = Date.now();
            try {
                await body();
                passed++;
                console.log(`ok - ${name} (${Date.now() - started} ms)`);
            } catch (error) {
                failed++;
                console.log(`not ok - ${name}\n${error instanceof Error ? error.stack : String(error)}`);
            }
        }
    } finally {
        rmSync(workDir, { recursive: true, force: true });
    }
    console.log(`engine: ${passed} passed, ${failed} failed`);
    if (failed > 0) {
        process.exitCode = 1;
    }
}

void main();
