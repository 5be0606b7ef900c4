// Runs Satsuma's portable test suite compiled to WebAssembly:
//
//   node tests/wasm/run.mjs target/wasm32-unknown-unknown/release/satsuma_wasm_tests.wasm
//
// The module imports `env.report(ptr, len)`, through which it hands over one
// line of libtest-format output at a time (UTF-8 in its memory), and exports
// `run_tests()`, which returns how many tests failed. Exits 1 on any failure
// or trap, so CI sees a red run either way.
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

let failures;
try {
  const { instance } = await WebAssembly.instantiate(await readFile(path), imports);
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
