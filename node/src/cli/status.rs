//! `qward status` and `qward peers`: ask a running node through its control API.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::api::{ApiClient, QwardApiClient};
use crate::datadir::DataDir;

/// Output options shared by the query commands.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Connects to the node of `data_dir` (its port from config.toml, its cookie file).
pub async fn connect(data_dir: Option<PathBuf>) -> anyhow::Result<ApiClient> {
    connect_waiting(data_dir, crate::api::client::DEFAULT_CALL_TIMEOUT).await
}

/// Connects as [`connect`] does, for calls that may take up to `call_timeout`.
pub async fn connect_waiting(
    data_dir: Option<PathBuf>,
    call_timeout: std::time::Duration,
) -> anyhow::Result<ApiClient> {
    let dir = DataDir::resolve(data_dir)?;
    let config = dir.load_config()?;
    let url = format!("ws://127.0.0.1:{}", config.api_port);
    if let Some(credential) = user_credential()? {
        let login = crate::api::client::login(config.api_port, &credential).await?;
        return ApiClient::connect_with_session(&url, &login.session, call_timeout).await;
    }
    // The node writes its cookie when it starts and removes it when it
    // stops: no cookie, no node to reach.
    let cookie = crate::api::Cookie::read(&dir.cookie_file())
        .map_err(|e| crate::api::Unreachable(format!("{e:#}")))?;
    ApiClient::connect_with_timeout(&url, &cookie, call_timeout).await
}

/// The environment variable naming a file with a user's credential.
pub const CREDENTIAL_FILE_ENV: &str = "QWARD_CREDENTIAL_FILE";
/// The environment variable holding a user's credential itself.
pub const CREDENTIAL_ENV: &str = "QWARD_CREDENTIAL";

/// A user's `<name>:<secret>` from QWARD_CREDENTIAL_FILE or QWARD_CREDENTIAL;
/// `None` means the node's own cookie is used.
pub fn user_credential() -> anyhow::Result<Option<String>> {
    if let Ok(file) = std::env::var(CREDENTIAL_FILE_ENV) {
        let text = crate::vault::read_passphrase_file(std::path::Path::new(&file))
            .map_err(|e| anyhow::anyhow!("{CREDENTIAL_FILE_ENV}: {e:#}"))?;
        return Ok(Some(text));
    }
    Ok(std::env::var(CREDENTIAL_ENV).ok())
}

/// Runs `f` on a fresh single-threaded runtime.
pub fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    f: F,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

pub fn status(args: QueryArgs, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = connect(data_dir).await?;
        let s = client.status().await?;
        if args.json {
            println!("{}", serde_json::to_string(&s)?);
        } else {
            println!("name            {}", s.name);
            println!("role            {}", s.role);
            println!("peer id         {}", s.peer_id);
            println!("account         {}", s.account);
            println!("chain           {}", s.chain_id);
            println!(
                "height          {} (finalized {})",
                s.height, s.finalized_height
            );
            println!(
                "validator       {} ({} validators)",
                if s.is_validator { "yes" } else { "no" },
                s.validators
            );
            println!("peers           {}", s.peers);
            println!("mempool         {}", s.mempool);
            println!("listening on    {}", s.listen.join(", "));
            println!("uptime          {}s", s.uptime_ms / 1000);
            if let Some(c) = &s.consensus {
                println!(
                    "newest block    {:.1} s ago",
                    c.newest_block_age_ms as f64 / 1000.0
                );
                if c.step == "idle" {
                    println!(
                        "consensus       idle at height {}: nothing to commit; a block comes with the next transaction, or an empty one in {:.1} s",
                        c.height,
                        c.heartbeat_in_ms.unwrap_or(0) as f64 / 1000.0
                    );
                } else {
                    println!(
                        "consensus       height {} round {} step {}",
                        c.height, c.round, c.step
                    );
                }
                println!(
                    "block timing    {} ms between blocks; with nothing to commit, one every {} ms",
                    c.block_time_ms, c.empty_block_interval_ms
                );
                if !c.waiting_for.is_empty() {
                    println!(
                        "waiting for     {} (no consensus message from them lately)",
                        c.waiting_for.join(", ")
                    );
                }
                if let Some(h) = c.syncing_to {
                    println!("syncing         to height {h} (the network is ahead)");
                }
            }
            if let Some(why) = &s.key_twin {
                println!();
                println!("WARNING         another process runs with this node's key: {why}");
                println!("                this node signs no consensus message until restarted;");
                println!("                stop one of the two copies of its data directory");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn peers(args: QueryArgs, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = connect(data_dir).await?;
        let peers = client.peers().await?;
        if args.json {
            println!("{}", serde_json::to_string(&peers)?);
            return Ok(ExitCode::SUCCESS);
        }
        if peers.is_empty() {
            println!("no peers connected");
        }
        println!("{:<20} {:<9} {:>8}  peer id", "name", "role", "rtt");
        for p in peers {
            let rtt = p
                .rtt_ms
                .map(|r| format!("{r} ms"))
                .unwrap_or_else(|| "-".into());
            let role = p.role.map(|r| r.to_string()).unwrap_or_else(|| "-".into());
            println!(
                "{:<20} {:<9} {:>8}  {}",
                p.name.as_deref().unwrap_or("?"),
                role,
                rtt,
                p.peer_id
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
