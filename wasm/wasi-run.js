'use strict';
// Runs a wasm32-wasip1 command module (a cargo test binary) under Node's
// WASI, with the current directory preopened at its own absolute path so
// that tests reading files through CARGO_MANIFEST_DIR find them. The exit
// code is the module's (a failing test exits non-zero).
const fs = require('fs');
const { WASI } = require('node:wasi');
const args = process.argv.slice(2);
const cwd = process.cwd();
const wasi = new WASI({
  version: 'preview1', args, env: process.env, returnOnExit: true,
  preopens: { [cwd]: cwd, '.': cwd },
});
(async () => {
  const module = await WebAssembly.compile(fs.readFileSync(args[0]));
  const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
  process.exitCode = wasi.start(instance);
})().catch((e) => { console.error(e); process.exit(101); });
