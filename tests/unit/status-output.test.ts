import { installMocks, settle, valueOf } from "./mocks";

installMocks();

// Imported after the mocks are installed, as a Pulumi program would be run under them.
import { BuildFleet } from "../../components/build-fleet";
import { parseConfig } from "../../components/config";
import { statusCommand } from "../../components/status";

test("a fleet's statusCommand has one line per node, each reaching that node's login user for its own builder", async () => {
    const stack = parseConfig({
        allowedSshCidrs: JSON.stringify(["10.20.0.0/16"]),
        nodes: JSON.stringify([{ name: "amd64", instanceType: "c7i.xlarge" }, { name: "graviton", instanceType: "c7g.xlarge" }]),
    });
    const fleet = new BuildFleet("status", { stack, privateKeys: stack.nodes.map(() => undefined) });
    await settle();
    const parts = await Promise.all(fleet.hosts.map(host => valueOf(host.endpointParts)));
    expect(await valueOf(fleet.statusCommand!)).toBe(statusCommand([{ name: "amd64", parts: parts[0] }, { name: "graviton", parts: parts[1] }]));
    expect((await valueOf(fleet.statusCommand!)).split("\n").map(line => / -- (\S+) /.exec(line)?.[1])).toEqual(["amd64", "graviton"]);
});
