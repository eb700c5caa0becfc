//! `qward records erase ID`: erase this node's copies of a record (the
//! patient's right to erasure): its key is destroyed and forced out of the
//! database files, and the erasure goes on the chain. The record then lists
//! as erased and can no longer be opened; its anchor still proves it was
//! delivered.

use std::path::PathBuf;
use std::process::ExitCode;

use super::status::{block_on, connect};
use crate::api::QwardApiClient;

#[derive(Debug, clap::Subcommand)]
pub enum RecordsCommand {
    /// Erase a record (sent or received) for good.
    Erase {
        /// The record id (32 hex digits, as `qward inbox` or `outbox` list it).
        record: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: RecordsCommand, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = connect(data_dir).await?;
        match cmd {
            RecordsCommand::Erase { record, json } => {
                let e = client.record_erase(record).await?;
                if json {
                    println!("{}", serde_json::to_string(&e)?);
                } else {
                    let copies = match (e.sent, e.received) {
                        (true, true) => "sent and received copies",
                        (true, false) => "sent copy",
                        _ => "received copy",
                    };
                    println!(
                        "erased record {} ({copies}): its key is destroyed",
                        e.record_id
                    );
                    for tx in &e.txs {
                        println!("erasure submitted to the chain: transaction {tx}");
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
