//! `qward chain`: placeholder until the chain subsystem lands.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum ChainCommand {}

pub fn run(cmd: ChainCommand, _data_dir: Option<std::path::PathBuf>) -> anyhow::Result<ExitCode> {
    match cmd {}
}
