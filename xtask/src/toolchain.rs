//! The pinned Rust toolchain, read from `rust-toolchain.toml`, and the
//! rustup calls that make its components and targets present.
//!
//! Cargo runs `cargo xtask` with `RUSTUP_TOOLCHAIN` set to the toolchain it
//! resolved. A plain `rustup toolchain install` started from here then
//! installs the toolchain *as named by that variable* and ignores the
//! `targets` and `components` of the file, so on a fresh machine the
//! Cortex-M4 and WebAssembly targets never arrived. Every rustup call here
//! therefore removes the variable, names the channel and each target and
//! component explicitly, and the result is checked afterwards.

use std::path::Path;
use std::process::Command;

use crate::Result;

/// What `rust-toolchain.toml` pins.
#[derive(Debug, PartialEq, Eq)]
pub struct Toolchain {
    pub channel: String,
    pub profile: Option<String>,
    pub components: Vec<String>,
    pub targets: Vec<String>,
}

/// `rustup`, without the toolchain cargo chose for this process.
pub fn rustup() -> Command {
    let mut command = Command::new("rustup");
    command.env_remove("RUSTUP_TOOLCHAIN");
    command
}

impl Toolchain {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The `[toolchain]` table's `channel`, `profile`, `components` and
    /// `targets`: the subset of TOML the file uses (one key per line, string
    /// values and one-line string arrays).
    pub fn parse(text: &str) -> Result<Self> {
        let mut channel = None;
        let mut profile = None;
        let mut components = Vec::new();
        let mut targets = Vec::new();
        let mut in_table = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            if line.starts_with('[') {
                in_table = line == "[toolchain]";
                continue;
            }
            if !in_table {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("cannot read the line `{line}`"));
            };
            let value = value.trim();
            match key.trim() {
                "channel" => channel = Some(string(value)?),
                "profile" => profile = Some(string(value)?),
                "components" => components = array(value)?,
                "targets" => targets = array(value)?,
                _ => {}
            }
        }
        let channel = channel.ok_or("no `channel` in [toolchain]")?;
        Ok(Self {
            channel,
            profile,
            components,
            targets,
        })
    }

    /// Installs the toolchain with every component and target the file
    /// lists, then checks each one is there. `with_targets: false` skips the
    /// cross targets and components (the main job builds for the host only).
    pub fn install(&self, with_targets: bool) -> Result {
        if !with_targets {
            return Ok(());
        }
        let mut args = vec!["toolchain", "install", self.channel.as_str()];
        if let Some(profile) = &self.profile {
            args.extend(["--profile", profile.as_str()]);
        }
        for component in &self.components {
            args.extend(["--component", component.as_str()]);
        }
        for target in &self.targets {
            args.extend(["--target", target.as_str()]);
        }
        println!("\n$ rustup {} (without RUSTUP_TOOLCHAIN)", args.join(" "));
        let status = rustup()
            .args(&args)
            .status()
            .map_err(|e| format!("cannot start rustup: {e}"))?;
        if !status.success() {
            return Err(format!("`rustup {}` failed ({status})", args.join(" ")));
        }
        self.check()
    }

    /// Fails, naming what is missing, unless every target and component of
    /// the file is installed for the pinned channel.
    fn check(&self) -> Result {
        let installed = |what: &str| -> Result<Vec<String>> {
            let output = rustup()
                .args([what, "list", "--installed", "--toolchain", &self.channel])
                .output()
                .map_err(|e| format!("cannot start rustup: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "`rustup {what} list --installed` failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
            Ok(String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(str::to_owned)
                .collect())
        };
        let targets = installed("target")?;
        let components = installed("component")?;
        let mut missing: Vec<&str> = self
            .targets
            .iter()
            .filter(|t| !targets.iter().any(|line| line == *t))
            .map(String::as_str)
            .collect();
        // Components are listed with the host triple: `clippy-x86_64-…`.
        missing.extend(
            self.components
                .iter()
                .filter(|c| {
                    !components
                        .iter()
                        .any(|line| line == *c || line.starts_with(&format!("{c}-")))
                })
                .map(String::as_str),
        );
        if missing.is_empty() {
            println!(
                "toolchain {}: targets {} and components {} installed",
                self.channel,
                self.targets.join(", "),
                self.components.join(", ")
            );
            Ok(())
        } else {
            Err(format!(
                "rustup did not install {} for {}; run:\n  rustup target add --toolchain {} {}",
                missing.join(", "),
                self.channel,
                self.channel,
                self.targets.join(" ")
            ))
        }
    }
}

fn string(value: &str) -> Result<String> {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .map(str::to_owned)
        .ok_or_else(|| format!("expected a quoted string, found `{value}`"))
}

fn array(value: &str) -> Result<Vec<String>> {
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .ok_or_else(|| format!("expected a one-line array, found `{value}`"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_projects_own_file() {
        let text = include_str!("../../rust-toolchain.toml");
        let toolchain = Toolchain::parse(text).expect("the file parses");
        assert_eq!(toolchain.channel, "1.95.0");
        assert_eq!(
            toolchain.targets,
            ["thumbv7em-none-eabihf", "wasm32-unknown-unknown"]
        );
        assert_eq!(toolchain.components, ["rustfmt", "clippy"]);
        assert_eq!(toolchain.profile.as_deref(), Some("minimal"));
    }

    #[test]
    fn refuses_a_file_without_a_channel_or_with_a_bad_array() {
        assert!(Toolchain::parse("[toolchain]\ntargets = [\"a\"]\n").is_err());
        assert!(Toolchain::parse("[toolchain]\nchannel = \"1\"\ntargets = [a]\n").is_err());
        assert!(Toolchain::parse("[toolchain]\nchannel = 1.95\n").is_err());
    }

    #[test]
    fn ignores_comments_and_other_tables() {
        let text = "[other]\nchannel = \"no\"\n[toolchain]\n# note\nchannel = \"1.2.3\" # pinned\n";
        let toolchain = Toolchain::parse(text).expect("parses");
        assert_eq!(toolchain.channel, "1.2.3");
        assert!(toolchain.targets.is_empty());
    }
}
