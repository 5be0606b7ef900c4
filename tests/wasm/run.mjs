// Runs Satsuma's portable test suite compiled to WebAssembly:
//
//   node tests/wasm/run.mjs target/wasm32-unknown-unknown/release/satsuma_wasm_tests.wasm
//
// The module imports `env.report(ptr, len)`, through which it hands over one
// line of libtest-format output at a time (UTF-8 in its memory), and exports
// `run_tests()`, which returns how many tests failed. Exits 1 on any failure
// or trap, so CI sees a red run either way.
//
// mls-rs depends on wasm-bindgen on wasm32 (getrandom's `wasm_js` backend,
// mls-rs-core's clock), so the module also imports wasm-bindgen's
// intrinsics (`__wbindgen_placeholder__`, `__wbindgen_externref_xform__`),
// which only the wasm-bindgen CLI would fill in. Satsuma never calls them:
// its crypto provider is seeded by the caller and time is passed in. Each
// gets a stub that throws, so a hidden call for OS randomness or the clock
// fails the run instead of going unnoticed.
import { readFile } from "node:fs/promises";

const path = process.argv[2];
if (!path) {
  console.error("usage: node run.mjs <satsuma_wasm_tests.wasm>");
  process.exit(2);
}

const decoder = new TextDecoder("utf-8", { fatal: true });
let memory;
// What has been reported, to close a trapped run in libtest's format if the
// module could not.
let passed = 0;
let failed = 0;
let summarised = false;
const imports = {
  env: {
    report(ptr, len) {
      // Pointers and lengths are u32s that JS receives as signed i32s.
      const line = decoder.decode(new Uint8Array(memory.buffer, ptr >>> 0, len >>> 0));
      if (/^test .* \.\.\. ok$/.test(line)) passed += 1;
      if (/^test .* \.\.\. FAILED$/.test(line)) failed += 1;
      if (line.startsWith("test result: ")) summarised = true;
      console.log(line);
    },
  },
};

/** Stubs for wasm-bindgen's imports that trap when called. */
function stubWasmBindgen(module) {
  for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
    if (kind !== "function" || !from.startsWith("__wbindgen_")) continue;
    imports[from] ??= {};
    imports[from][name] = () => {
      throw new Error(`${from}.${name} called: something reached for JavaScript (randomness or clock)`);
    };
  }
}

let failures;
try {
  const module = await WebAssembly.compile(await readFile(path));
  stubWasmBindgen(module);
  const instance = await WebAssembly.instantiate(module, imports);
  memory = instance.exports.memory;
  failures = instance.exports.run_tests();
} catch (error) {
  // A panic aborts as a trap after the module's panic hook reported the
  // test and the summary; any other trap (or a failed load) reports nothing.
  console.log(`\nerror: the test module trapped: ${error}`);
  if (!summarised) {
    console.log(
      `\ntest result: FAILED. ${passed} passed; ${failed + 1} failed; ` +
        "0 ignored; 0 measured; 0 filtered out",
    );
  }
  process.exit(1);
}
process.exit(failures === 0 ? 0 : 1);
