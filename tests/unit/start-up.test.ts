/**
 * What every `pulumi up` pays before the engine sees a resource: the program's start-up. It runs
 * twice per `up` (preview, then update), so a no-op `up` is mostly this.
 */
import * as yaml from "js-yaml";
import { readFileSync } from "fs";
import * as path from "path";
import * as ts from "typescript";

import { installMocks, settle } from "./mocks";

const ROOT = path.resolve(__dirname, "..", "..");
const mockLoaded: string[] = [];
jest.mock("@pulumi/aws", () => { mockLoaded.push("@pulumi/aws"); return jest.requireActual("@pulumi/aws"); });
jest.mock("@pulumi/tls", () => { mockLoaded.push("@pulumi/tls"); return jest.requireActual("@pulumi/tls"); });

installMocks();

import { BuildFleet } from "../../components/build-fleet";
import { parseConfig } from "../../components/config";

/** A tsconfig file as written: what Pulumi's Node.js runtime reads (it does not follow `extends`). */
function rawTsconfig(file: string): { extends?: string; compilerOptions?: Record<string, unknown> } {
    return ts.parseConfigFileTextToJson(file, readFileSync(path.join(ROOT, file), "utf8")).config;
}

test("existing mode loads neither @pulumi/aws nor @pulumi/tls (a third of a second on every run)", async () => {
    const privateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nbG9naW4ta2V5\n-----END OPENSSH PRIVATE KEY-----\n";
    new BuildFleet("start-up", {
        stack: parseConfig({
            hostMode: "existing", existingHostAddress: "127.0.0.1", existingHostUser: "builder", existingHostPrivateKey: privateKey,
            existingHostPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMtBhKmsF4b3EnJanPlsngcyY1ZMBhtRBNpZO0KMQBF",
        }),
        privateKeys: [privateKey],
    });
    await settle();
    expect(mockLoaded).toEqual([]);
});

test("`pulumi up` compiles the program without a type check; tsc in `npm run build` and `npm run lint` type-checks it", () => {
    const runtime = (yaml.load(readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as { runtime: { options: Record<string, unknown> } }).runtime;
    expect(runtime.options).toEqual({ typescript: true, tsconfig: "tsconfig.pulumi.json" });
    // Pulumi runs the program transpiled only when the file it is given sets noCheck itself.
    expect(rawTsconfig("tsconfig.pulumi.json")).toEqual({ extends: "./tsconfig.json", compilerOptions: { noCheck: true } });
    expect(rawTsconfig("tsconfig.json").compilerOptions).not.toHaveProperty("noCheck");
    const scripts = (JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
    expect(scripts.build).toBe("tsc --noEmit");
    expect(scripts.lint).toMatch(/^tsc --noEmit && /);
});
