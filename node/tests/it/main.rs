//! Integration tests of the `qward` binary: one test binary, a module per command.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod api;
mod chain;
mod init;
mod operator;
mod qkd;

use std::path::Path;
use std::process::{Command, Output};

/// The passphrase these tests seal data keys with.
pub const PASSPHRASE: &str = "a test passphrase";

/// Runs `qward` with `args` and the data directory `data_dir`, no stdin,
/// and [`PASSPHRASE`] in QWARD_PASSPHRASE.
pub fn qward(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qward"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("QWARD_DATA_DIR")
        .env_remove("QWARD_PASSPHRASE_FILE")
        .env("QWARD_PASSPHRASE", PASSPHRASE)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run qward")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
