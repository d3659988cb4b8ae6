/**
 * A stack's BuildFleet registered under the mocks, and the resources it made. Import it after
 * installMocks, as the components themselves are.
 */
import { BuildFleet } from "../../components/build-fleet";
import { parseConfig, RawConfig } from "../../components/config";
import { RecordedResource, Recorder, settle, valueOf } from "./mocks";

/** Registers a BuildFleet named `name` for `raw`; `privateKey` is every node's (required in existing mode). */
export async function deployFleet(recorder: Recorder, name: string, raw: RawConfig, privateKey?: string) {
    const registeredBefore = recorder.resources.length;
    const stack = parseConfig(raw);
    const fleet = new BuildFleet(name, { stack, privateKeys: stack.nodes.map(() => privateKey), tags: { Project: "buildx-host" } });
    await Promise.all(fleet.hosts.map(host => valueOf(host.versions)));
    await settle();
    const mine: RecordedResource[] = recorder.resources.slice(registeredBefore).filter(r => r.name.startsWith(name));
    return {
        fleet,
        resources: mine,
        ofType: (type: string) => mine.filter(r => r.type === type),
        named: (resourceName: string) => mine.find(r => r.name === resourceName)!,
    };
}
