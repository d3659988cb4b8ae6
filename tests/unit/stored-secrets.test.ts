/** The SDK-internal check behind encryptedSettings: fails when an SDK upgrade moves or changes it. */
import * as pulumi from "@pulumi/pulumi";

import { encryptedSettings } from "../../components/stored-secrets";

const ENV = "PULUMI_CONFIG_SECRET_KEYS";

test("the SDK still reads the CLI's list of encrypted settings from the variable encryptedSettings checks", () => {
    expect((require("@pulumi/pulumi/runtime/config") as { configSecretKeysEnvKey: string }).configSecretKeysEnvKey).toBe(ENV);
});

test("encrypted settings are told from plain ones, and unknown where the language host gives no list", () => {
    const saved = process.env[ENV];
    try {
        pulumi.runtime.setAllConfig({ "p:loginPrivateKey": "key", "p:nodes": "[]", "p:team": "[]" }, ["p:loginPrivateKey", "p:nodes"]);
        process.env[ENV] = JSON.stringify(["p:loginPrivateKey", "p:nodes"]);
        expect(encryptedSettings("p", ["loginPrivateKey", "existingHostPrivateKey", "nodes", "team"])).toEqual(["loginPrivateKey", "nodes"]);
        delete process.env[ENV];
        expect(encryptedSettings("p", ["loginPrivateKey"])).toBeUndefined();
    } finally {
        if (saved === undefined) {
            delete process.env[ENV];
        } else {
            process.env[ENV] = saved;
        }
        pulumi.runtime.setAllConfig({});
    }
});
