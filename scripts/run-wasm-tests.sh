#!/usr/bin/env bash
# Runs the portable test suite compiled to wasm32-unknown-unknown under Node.
# Exits 0 when every test passed, 1 when one failed or the module trapped.
#
# Needs: rustup's wasm32-unknown-unknown target (rust-toolchain.toml lists
# it) and Node.js 18 or later.
set -euo pipefail

cd "$(dirname "$0")/.."

cargo build --release -p satsuma-wasm-tests --target wasm32-unknown-unknown

wasm=target/wasm32-unknown-unknown/release/satsuma_wasm_tests.wasm
# The workspace's release profile keeps debug info, which lands in custom
# sections; the rest is what a browser would download.
node --input-type=module - "$wasm" <<'JS'
import { readFileSync } from "node:fs";
const bytes = readFileSync(process.argv[2]);
let at = 8, custom = 0;
const leb = () => { let n = 0, shift = 0, b; do { b = bytes[at++]; n += (b & 0x7f) * 2 ** shift; shift += 7; } while (b & 0x80); return n; };
while (at < bytes.length) {
  const id = bytes[at++];
  const size = leb();
  if (id === 0) custom += size;
  at += size;
}
console.log(`wasm module size: ${bytes.length} bytes, ${bytes.length - custom} without custom (debug) sections (${process.argv[2]})`);
JS

exec node tests/wasm/run.mjs "$wasm"
