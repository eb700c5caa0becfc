//! `qward emergency declare|list`: break-glass access. A doctor or hospital
//! declares on the chain, with a reason, an emergency that lets it receive
//! a patient's records without their consent for a bounded time; the
//! patient's node shows it at once, and anyone can list every declaration.

use std::path::PathBuf;
use std::process::ExitCode;

use qward_core::api::EmergencyInfo;

use super::status::{block_on, connect};
use super::tx::WaitArgs;
use crate::api::QwardApiClient;

#[derive(Debug, clap::Subcommand)]
pub enum EmergencyCommand {
    /// Declare an emergency for PATIENT (doctors and hospitals): until it
    /// expires, records of theirs may reach this node without consent. The
    /// declaration, with its reason, is public on the chain.
    Declare {
        patient: String,
        /// Why (public on the chain: no diagnosis), e.g. "unconscious in A&E".
        #[arg(long)]
        reason: String,
        /// How long, in minutes (at most 1440, a day).
        #[arg(long, default_value_t = 60)]
        minutes: u64,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// The emergency declarations on the chain, newest first: the latest
    /// per patient and declarer, or with --all every one ever made.
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

/// Prints declarations as a table.
pub fn print(list: &[EmergencyInfo]) {
    for e in list {
        println!(
            "{:<16} by {:<16} until {} UTC (block {}) {:<7} {}",
            e.patient_name.clone().unwrap_or_else(|| e.patient.clone()),
            e.declarer_name
                .clone()
                .unwrap_or_else(|| e.declarer.clone()),
            qward_core::calendar::utc_minute(e.expires_at_ms),
            e.height,
            if e.active { "ACTIVE" } else { "expired" },
            e.reason
        );
    }
}

pub fn run(cmd: EmergencyCommand, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = connect(data_dir).await?;
        match cmd {
            EmergencyCommand::List { all, json } => {
                let list = client.chain_emergencies(Some(all)).await?;
                if json {
                    println!("{}", serde_json::to_string(&list)?);
                } else if list.is_empty() {
                    println!("no emergency declarations on the chain");
                } else {
                    print(&list);
                }
                Ok(ExitCode::SUCCESS)
            }
            EmergencyCommand::Declare {
                patient,
                reason,
                minutes,
                wait,
            } => {
                if minutes == 0 || minutes > 1440 {
                    anyhow::bail!("--minutes must be 1 to 1440 (a day at most)");
                }
                let sub = client
                    .emergency_declare(patient, reason, minutes * 60_000)
                    .await?;
                super::tx::report(&client, sub, &wait).await
            }
        }
    })
}
