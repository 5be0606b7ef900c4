//! Compiles the UI's TypeScript into `dist/` (with the static files beside
//! it), then lets Tauri embed `dist/` and the capabilities.
//!
//! The TypeScript compiler comes from npm (`shell/ui/package-lock.json`),
//! installed by `cargo xtask setup`; without it the build stops and says so.

use std::path::Path;
use std::process::Command;

fn main() {
    let ui = Path::new("ui");
    let dist = Path::new("dist");
    println!("cargo:rerun-if-changed=ui/src");
    println!("cargo:rerun-if-changed=ui/static");
    println!("cargo:rerun-if-changed=ui/tsconfig.json");
    println!("cargo:rerun-if-changed=ui/package-lock.json");
    let tsc = ui.join("node_modules/typescript/bin/tsc");
    if !tsc.exists() {
        fail(
            "the UI's TypeScript compiler is not installed: run `cargo xtask setup` (or `npm ci` in shell/ui)",
        );
    }
    if let Err(e) = std::fs::create_dir_all(dist) {
        fail(&format!("cannot create shell/dist: {e}"));
    }
    match Command::new("node").arg(&tsc).args(["-p", "ui"]).status() {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!("the UI's TypeScript does not compile ({s})")),
        Err(e) => fail(&format!("cannot run node (Node.js): {e}")),
    }
    let statics = match std::fs::read_dir(ui.join("static")) {
        Ok(d) => d,
        Err(e) => fail(&format!("cannot read shell/ui/static: {e}")),
    };
    for entry in statics.flatten() {
        let to = dist.join(entry.file_name());
        if let Err(e) = std::fs::copy(entry.path(), &to) {
            fail(&format!("cannot copy {}: {e}", entry.path().display()));
        }
    }
    tauri_build::build();
}

fn fail(message: &str) -> ! {
    println!("cargo:warning={message}");
    std::process::exit(1)
}
