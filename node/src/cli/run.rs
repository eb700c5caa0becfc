//! `qward run`: start the node of a data directory and keep it running until
//! SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Overrides;
use crate::datadir::DataDir;
use crate::node::RunOptions;

/// Start this node: networking, consensus, sync and the control API.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Test-only: play a Byzantine validator against the network (needs
    /// QWARD_BYZANTINE_TEST=1). Never use it in a deployment.
    #[arg(long, value_enum, hide = true)]
    pub byzantine: Option<crate::node::byzantine::Strategy>,
    #[command(flatten)]
    pub passphrase: crate::vault::PassphraseArgs,
    #[command(flatten)]
    pub settings: SettingArgs,
}

/// The settings of config.toml that a flag or a `QWARD_*` variable can set
/// for one run: a flag wins over its variable, the variable over the file.
/// `qward config show` takes the same flags and shows the result.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SettingArgs {
    /// Port of the control API on 127.0.0.1 (config.toml: `api_port`).
    #[arg(long, env = "QWARD_API_PORT", value_name = "PORT")]
    pub api_port: Option<u16>,
    /// Listen on this address (config.toml: `listen`; repeatable).
    #[arg(
        long = "listen",
        value_name = "MULTIADDR",
        env = "QWARD_LISTEN",
        value_delimiter = ','
    )]
    pub listen: Vec<String>,
    /// Announce this address to members, e.g. /dns4/st-marys.example/tcp/7400
    /// (config.toml: `external_addresses`; repeatable).
    #[arg(
        long = "external-address",
        value_name = "MULTIADDR",
        env = "QWARD_EXTERNAL_ADDRESSES",
        value_delimiter = ','
    )]
    pub external_addresses: Vec<String>,
    /// Serve Prometheus metrics, /health and /ready (config.toml: `metrics`);
    /// `--metrics=false` turns them off.
    #[arg(
        long,
        env = "QWARD_METRICS",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub metrics: Option<bool>,
    /// The address the metrics endpoint binds (config.toml: `metrics_bind`,
    /// default 127.0.0.1).
    #[arg(long, env = "QWARD_METRICS_BIND", value_name = "IP")]
    pub metrics_bind: Option<std::net::IpAddr>,
    /// Port of the metrics endpoint (config.toml: `metrics_port`, default
    /// the API port + 1000).
    #[arg(long, env = "QWARD_METRICS_PORT", value_name = "PORT")]
    pub metrics_port: Option<u16>,
}

impl SettingArgs {
    pub fn overrides(&self, passphrase: &crate::vault::PassphraseArgs) -> Overrides {
        Overrides {
            api_port: self.api_port,
            listen: self.listen.clone(),
            external_addresses: self.external_addresses.clone(),
            metrics: self.metrics,
            metrics_bind: self.metrics_bind,
            metrics_port: self.metrics_port,
            passphrase_file: passphrase
                .passphrase_file
                .as_ref()
                .map(|p| p.display().to_string()),
        }
    }
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
    let overrides = args.settings.overrides(&args.passphrase);
    let mut config = dir.load_config()?;
    config.apply(&overrides)?;
    let passphrase = crate::vault::passphrase(&args.passphrase, &dir, Some(&config))?;
    let data_key = crate::vault::unlock(&dir, &passphrase)?;
    drop(passphrase);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::node::run(
        dir,
        RunOptions {
            byzantine: args.byzantine,
            overrides,
        },
        data_key,
    ))?;
    Ok(ExitCode::SUCCESS)
}
