//! `qward run`: start the node of a data directory and keep it running until
//! SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::datadir::DataDir;
use crate::node::RunOptions;

/// Start this node: networking, consensus, sync and the control API.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Serve Prometheus metrics on 127.0.0.1 (port `metrics_port` in config.toml,
    /// else the API port + 1000).
    #[arg(long)]
    pub metrics: bool,
}

pub fn run(args: RunArgs, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = DataDir::resolve(data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::node::run(
        dir,
        RunOptions {
            metrics: args.metrics,
        },
    ))?;
    Ok(ExitCode::SUCCESS)
}
