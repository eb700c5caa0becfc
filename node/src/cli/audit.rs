//! `qward audit log|verify`: the node's access log, where every read of
//! health data (show, export, the TUI's record view, forwarding), erasure
//! and emergency declaration is written under the caller's name before it
//! happens, hash-chained and anchored on the chain.

use std::path::PathBuf;
use std::process::ExitCode;

use super::status::{block_on, connect};
use crate::api::QwardApiClient;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// The access log, oldest first.
    Log {
        /// The first entry to show.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Entries to show, at most (up to 5000).
        #[arg(long, default_value_t = 200)]
        limit: u64,
        #[arg(long)]
        json: bool,
    },
    /// Re-check the whole log: every hash, the sequence, the head and the
    /// anchors on the chain. Exit code 2 when it does not verify.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: AuditCommand, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = connect(data_dir).await?;
        match cmd {
            AuditCommand::Log { from, limit, json } => {
                let list = client.audit_log(Some(from), Some(limit)).await?;
                if json {
                    println!("{}", serde_json::to_string(&list)?);
                } else if list.is_empty() {
                    println!("no access-log entries from {from}");
                } else {
                    for e in list {
                        println!(
                            "{:>6} {} {:<16} {:<18} {} {}",
                            e.seq,
                            qward_core::calendar::utc_minute(e.time_ms),
                            e.user,
                            e.action,
                            e.record_id.unwrap_or_else(|| "-".into()),
                            e.detail
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Verify { json } => {
                let r = client.audit_verify().await?;
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                } else if r.ok {
                    println!(
                        "access log OK: {} entries, {} of them anchored on the chain",
                        r.entries, r.anchored_entries
                    );
                } else {
                    println!(
                        "ACCESS LOG BROKEN at entry {}: {}",
                        r.failed_seq.map(|s| s.to_string()).unwrap_or_default(),
                        r.reason.clone().unwrap_or_default()
                    );
                }
                Ok(if r.ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(super::exit::REFUSED)
                })
            }
        }
    })
}
