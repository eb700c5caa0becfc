//! `qward qkd`: placeholder until the qkd subsystem lands.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum QkdCommand {}

pub fn run(cmd: QkdCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
