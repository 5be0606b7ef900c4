//! `satsuma`: the desktop app. See the crate's library for what it does.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let options = satsuma_shell::Options::parse();
    match satsuma_shell::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("satsuma: {message}");
            ExitCode::FAILURE
        }
    }
}
