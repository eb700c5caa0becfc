//! `qward consent grant|revoke|list`: a patient's consent on the chain, for a
//! hospital or doctor to receive their records (or reports); the list also
//! shows every emergency (break-glass) declaration, which works as consent
//! for its declarer until it expires.

use std::path::PathBuf;
use std::process::ExitCode;

use super::status::{block_on, connect};
use super::tx::WaitArgs;
use crate::api::QwardApiClient;

#[derive(Debug, clap::Subcommand)]
pub enum ConsentCommand {
    /// Grant GRANTEE access to SCOPE (records, reports or all), for patients.
    Grant {
        grantee: String,
        #[arg(long, default_value = "records")]
        scope: String,
        /// Days until the consent lapses (default 365).
        #[arg(long, default_value_t = 365)]
        days: u64,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Revoke a consent; forwarding stops once the revocation is final.
    Revoke {
        grantee: String,
        #[arg(long, default_value = "records")]
        scope: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// The consents on the chain, and the emergency declarations (JSON: the
    /// consents only; `qward emergency list --json` gives the declarations).
    List {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ConsentCommand, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = connect(data_dir).await?;
        let (sub, wait) = match cmd {
            ConsentCommand::List { json } => {
                let list = client.chain_consent().await?;
                if json {
                    println!("{}", serde_json::to_string(&list)?);
                    return Ok(ExitCode::SUCCESS);
                }
                if list.is_empty() {
                    println!("no consents on the chain");
                } else {
                    for c in list {
                        println!(
                            "{:<16} -> {:<16} {:<8} {}",
                            c.patient_name.unwrap_or(c.patient),
                            c.grantee_name.unwrap_or(c.grantee),
                            c.scope,
                            if c.active { "active" } else { "lapsed" }
                        );
                    }
                }
                let emergencies = client.chain_emergencies(None).await?;
                if !emergencies.is_empty() {
                    println!("\nemergency access (break-glass), without consent:");
                    super::emergency::print(&emergencies);
                }
                return Ok(ExitCode::SUCCESS);
            }
            ConsentCommand::Grant {
                grantee,
                scope,
                days,
                wait,
            } => {
                let now = crate::node::clock::now_ms();
                let expires = now.saturating_add(days.saturating_mul(24 * 3600 * 1000));
                (
                    client.consent_grant(grantee, scope, Some(expires)).await?,
                    wait,
                )
            }
            ConsentCommand::Revoke {
                grantee,
                scope,
                wait,
            } => (client.consent_revoke(grantee, scope).await?, wait),
        };
        super::tx::report(&client, sub, &wait).await
    })
}
