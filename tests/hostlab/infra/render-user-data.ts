/**
 * Prints the user data the program gives an EC2 instance whose host key is in the files given as
 * arguments (private, public): components/ec2-host.ts cloudInitUserData itself.
 * Usage: node tools/run-ts.js tests/hostlab/infra/render-user-data.ts PRIVATE_KEY_FILE PUBLIC_KEY_FILE
 */
import { readFileSync } from "fs";

import { cloudInitUserData } from "../../../components/ec2-host";

const [privateKeyFile, publicKeyFile] = process.argv.slice(2);
process.stdout.write(cloudInitUserData(readFileSync(privateKeyFile, "utf8"), readFileSync(publicKeyFile, "utf8")));
