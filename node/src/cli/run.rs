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
    /// Test-only: play a Byzantine validator against the network (needs
    /// QWARD_BYZANTINE_TEST=1). Never use it in a deployment.
    #[arg(long, value_enum, hide = true)]
    pub byzantine: Option<crate::node::byzantine::Strategy>,
    #[command(flatten)]
    pub passphrase: crate::vault::PassphraseArgs,
    /// Listen on this address instead of config.toml's `listen` (repeatable).
    #[arg(
        long = "listen",
        value_name = "MULTIADDR",
        env = "QWARD_LISTEN",
        value_delimiter = ','
    )]
    pub listen: Vec<String>,
    /// Announce this address to members instead of config.toml's
    /// `external_addresses`, e.g. /dns4/st-marys.example/tcp/7400 (repeatable).
    #[arg(
        long = "external-address",
        value_name = "MULTIADDR",
        env = "QWARD_EXTERNAL_ADDRESSES",
        value_delimiter = ','
    )]
    pub external_addresses: Vec<String>,
}

pub fn run(args: RunArgs, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if args.byzantine.is_some()
        && std::env::var(crate::node::byzantine::ENABLE_ENV).as_deref() != Ok("1")
    {
        anyhow::bail!(
            "--byzantine makes this node attack its network and is for tests only; \
             set {}=1 to run it",
            crate::node::byzantine::ENABLE_ENV
        );
    }
    let dir = DataDir::resolve(data_dir)?;
    crate::vault::check_modes(&dir)?;
    let config = dir.load_config()?;
    let passphrase = crate::vault::passphrase(&args.passphrase, &dir, Some(&config))?;
    let data_key = crate::vault::unlock(&dir, &passphrase)?;
    drop(passphrase);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::node::run(
        dir,
        RunOptions {
            metrics: args.metrics,
            byzantine: args.byzantine,
            listen: args.listen,
            external_addresses: args.external_addresses,
        },
        data_key,
    ))?;
    Ok(ExitCode::SUCCESS)
}
