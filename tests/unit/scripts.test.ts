import { execFileSync, spawnSync } from "child_process";
import { readdirSync, readFileSync } from "fs";
import * as path from "path";

import { SCRIPTS_DIR, STEP_NAMES } from "../../components/steps";

const scripts = readdirSync(SCRIPTS_DIR).filter(f => f.endsWith(".sh")).sort();

test("components/scripts holds exactly one script per step", () => {
    expect(scripts).toEqual([...STEP_NAMES].map(name => `${name}.sh`).sort());
});

test.each(scripts)("%s passes shellcheck", script => {
    const result = spawnSync("shellcheck", ["--shell=bash", "--severity=style", path.join(SCRIPTS_DIR, script)], { encoding: "utf8" });
    expect(result.error).toBeUndefined(); // shellcheck must be installed (.ci/run installs it)
    expect(result.stdout + result.stderr).toBe("");
    expect(result.status).toBe(0);
});

test.each(scripts)("%s is valid bash that with strict mode and a main at the bottom", script => {
    const file = path.join(SCRIPTS_DIR, script);
    execFileSync("bash", ["-n", file]);
    const text = readFileSync(file, "utf8");
    expect(text).toMatch(/^#!\/usr\/bin\/env bash\n/);
    expect(text).toContain("set -euo pipefail");
    expect(text).toMatch(/\nmain "\$@"\n?$/);
});
