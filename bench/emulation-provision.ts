/**
 * bench/emulation.sh's host: the program's host steps run on the lab host ($HOSTLAB_ENV_FILE) as the
 * host lab's first run does (lab.ts provisionLabHost, with the configuration labConfig derives for
 * the platforms given as arguments). Prints what the steps reported that the bench's notes quote, as
 * KEY=value lines.
 */
import { shellQuote } from "../components/shell";
import { labAptSettings, labConfig, provisionLabHost, readLabHost, reportOf, requiredEnv } from "../tests/hostlab/lab";

const host = readLabHost(requiredEnv("HOSTLAB_ENV_FILE"));
const config = labConfig(host, { ...labAptSettings(), platforms: JSON.stringify(process.argv.slice(2)) });
const reports = provisionLabHost(host, config, "bench", run =>
    process.stderr.write(`bench-emulation: step ${run.step} done in ${run.seconds.toFixed(1)}s\n`));
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
