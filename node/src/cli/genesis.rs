//! `qward genesis`: placeholder until the genesis subsystem lands.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum GenesisCommand {}

pub fn run(cmd: GenesisCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
