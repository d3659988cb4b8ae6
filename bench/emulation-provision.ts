/**
 * bench/emulation.sh's host: the program's host steps run on the lab host ($HOSTLAB_ENV_FILE) as the
 * host lab's first run does (lab.ts runStep, with the configuration labConfig derives for the
 * platforms given as arguments; the lab's BuildKit image loaded before the builder step, as no
 * registry is reachable). Prints what the steps reported that the bench's notes quote, as KEY=value
 * lines.
 */
import { shellQuote } from "../components/shell";
import { StepReport } from "../components/step-reports";
import { hostStepDefinitions, StepName } from "../components/steps";
import {
    expectStepOk, labAptSettings, labConfig, localOk, readLabHost, reportOf, requiredEnv, runStep, sshArgs,
} from "../tests/hostlab/lab";

const host = readLabHost(requiredEnv("HOSTLAB_ENV_FILE"));
const config = labConfig(host, { ...labAptSettings(), platforms: JSON.stringify(process.argv.slice(2)) });
const reports = new Map<StepName, StepReport>();
for (const step of hostStepDefinitions(config, host.user)) {
    if (step.name === "buildx-builder") {
        localOk(`ssh ${sshArgs(host, host.user, host.key).map(shellQuote).join(" ")} 'sudo -n docker load' ` +
            `< ${shellQuote(requiredEnv("HOSTLAB_BUILDKIT_IMAGE_TAR"))}`);
    }
    const run = runStep(host, step, "bench");
    reports.set(step.name, expectStepOk(run));
    process.stderr.write(`bench-emulation: step ${step.name} done in ${run.seconds.toFixed(1)}s\n`);
}
const builder = reportOf(reports, "buildx-builder");
const facts = {
    BUILDER_NAME: config.builderName,
    QEMU_VERSION: reportOf(reports, "qemu-binfmt")?.qemuVersion ?? "unknown",
    BUILDKIT_VERSION: builder?.buildkitVersion ?? "unknown",
    BUILDX_VERSION: builder?.buildxVersion ?? "unknown",
    BUILDER_PLATFORMS: (builder?.platforms ?? []).join(" "),
};
for (const [name, value] of Object.entries(facts)) {
    console.log(`${name}=${shellQuote(String(value))}`);
}
