//! `qward version` (the build: version, commit, profile) and `qward config
//! show` (the settings a node in this data directory runs with: its
//! config.toml with every default filled in).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::datadir::DataDir;

/// The version, the commit and the cargo profile of this binary.
pub fn build_info() -> serde_json::Value {
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": env!("QWARD_COMMIT"),
        "profile": env!("QWARD_PROFILE"),
    })
}

pub fn version(json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", build_info());
    } else {
        println!(
            "qward {} (commit {}, {} build)",
            env!("CARGO_PKG_VERSION"),
            env!("QWARD_COMMIT"),
            env!("QWARD_PROFILE")
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (config.toml with the defaults).
    Show {
        #[arg(long)]
        json: bool,
    },
}

pub fn config(cmd: ConfigCommand, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Show { json } = cmd;
    let dir = DataDir::resolve(data_dir)?;
    let config = dir.load_config()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&config)?);
    } else {
        print!("{}", toml::to_string(&config)?);
    }
    Ok(ExitCode::SUCCESS)
}
