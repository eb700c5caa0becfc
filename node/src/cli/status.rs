//! `qward status` and `qward peers`: ask a running node through its control API.

use std::path::PathBuf;
use std::process::ExitCode;

use qward_core::api::{NodeStatus, PeerSummary, method};
use serde_json::Value;

use crate::api::ApiClient;
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
    let dir = DataDir::resolve(data_dir)?;
    let config = dir.load_config()?;
    let (client, _events) =
        ApiClient::connect_with_cookie_file(config.api_port, &dir.cookie_file()).await?;
    Ok(client)
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
        let s: NodeStatus = client.call(method::STATUS, Value::Null).await?;
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
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn peers(args: QueryArgs, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = connect(data_dir).await?;
        let peers: Vec<PeerSummary> = client.call(method::PEERS, Value::Null).await?;
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
