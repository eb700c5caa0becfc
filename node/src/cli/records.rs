//! `qward records erase ID`: erase this node's copies of a record (the
//! patient's right to erasure): its key is destroyed and forced out of the
//! database files, and the erasure goes on the chain. The record then lists
//! as erased and can no longer be opened; its anchor still proves it was
//! delivered. `qward records request-erasure ID --holder NAME`: a patient
//! asks another member, on the chain, to erase its copy.

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
    /// Ask another member (a patient asks a hospital or doctor) to erase its
    /// copy of a record about you: the request goes on the chain, and the
    /// holder's node erases it unless its operator decides case by case.
    RequestErasure {
        /// The record id, as this node lists it (sent or received).
        record: String,
        /// Who holds the copy: a member's name or account.
        #[arg(long)]
        holder: String,
        #[command(flatten)]
        wait: super::tx::WaitArgs,
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
            RecordsCommand::RequestErasure {
                record,
                holder,
                wait,
            } => {
                let sub = client.record_erase_request(record, holder).await?;
                super::tx::report(&client, sub, &wait).await
            }
        }
    })
}
