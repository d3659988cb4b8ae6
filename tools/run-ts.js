// Runs a TypeScript file of this project with node, transpiled on the fly with the project's own
// typescript as ts-jest does (no type check here: `npm run lint` type-checks every .ts of the project).
// Usage: node tools/run-ts.js FILE.ts [ARG...]   (bench/ drivers, the host lab's user data)
"use strict";
const fs = require("fs");
const path = require("path");
const ts = require("typescript");

require.extensions[".ts"] = (module, file) => module._compile(ts.transpileModule(fs.readFileSync(file, "utf8"), {
    fileName: file,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
}).outputText, file);
process.argv.splice(1, 1);
require(path.resolve(process.argv[1]));
