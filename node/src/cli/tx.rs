//! `qward tx`: submit chain transactions through the node's control API (the
//! node signs them with its own key and next nonce).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use qward_core::api::{TxRequest, TxSubmitted};
use qward_core::identity::Role;

use super::status::{block_on, connect};
use crate::api::QwardApiClient;

#[derive(Debug, clap::Subcommand)]
pub enum TxCommand {
    /// Register a member (hospitals only).
    Register {
        /// The new member: name from contacts, account (hex) or peer id.
        member: String,
        #[arg(long, value_parser = super::init::parse_role)]
        role: Role,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Revoke a member (hospitals only).
    Revoke {
        member: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Vote to add a hospital as validator (takes effect above 2/3 of hospitals).
    AddValidator {
        member: String,
        #[arg(long, default_value_t = 1)]
        power: u64,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Vote to remove a validator.
    RemoveValidator {
        member: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Vote to change the chain's block timing (takes effect above 2/3 of
    /// the voting power; `qward chain show validators` shows the current one).
    SetBlockTiming {
        /// Time between blocks while there are transactions, 50 ms to 1 h.
        #[arg(long, value_name = "MS")]
        block_time_ms: u64,
        /// With nothing to commit, the longest time without a block (the
        /// heartbeat), from the block time to 1 h; equal to the block time
        /// for a block every block time, empty or not.
        #[arg(long, value_name = "MS")]
        empty_block_interval_ms: u64,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Wait until the transaction is in a final block (up to 60 s).
    #[arg(long)]
    pub wait: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

impl TxCommand {
    fn into_parts(self) -> (TxRequest, WaitArgs) {
        match self {
            TxCommand::Register { member, role, wait } => {
                (TxRequest::RegisterMember { member, role }, wait)
            }
            TxCommand::Revoke { member, wait } => (TxRequest::RevokeMember { member }, wait),
            TxCommand::AddValidator {
                member,
                power,
                wait,
            } => (TxRequest::AddValidator { member, power }, wait),
            TxCommand::RemoveValidator { member, wait } => {
                (TxRequest::RemoveValidator { member }, wait)
            }
            TxCommand::SetBlockTiming {
                block_time_ms,
                empty_block_interval_ms,
                wait,
            } => (
                TxRequest::SetBlockTiming {
                    block_time_ms,
                    empty_block_interval_ms,
                },
                wait,
            ),
        }
    }
}

pub fn run(cmd: TxCommand, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (req, wait) = cmd.into_parts();
    block_on(async move {
        let client = connect(data_dir).await?;
        let sub = client.tx_submit(req).await?;
        report(&client, sub, &wait).await
    })
}

/// One line on a governance vote's proposal, for people.
fn describe_proposal(p: &qward_core::api::ProposalStatus) -> String {
    match p.state.as_str() {
        "pending" => format!(
            "the proposal to {} is pending: validators holding {} of {} voting power voted for it; \
             it takes effect above 2/3{}",
            p.action,
            p.voting_power,
            p.total_power,
            p.open_until_height
                .map(|h| format!(", if reached by block {h}"))
                .unwrap_or_default()
        ),
        "passed" => format!("the proposal to {} passed and is in effect", p.action),
        _ => format!(
            "the proposal to {} expired without a vote of more than 2/3 of the voting power",
            p.action
        ),
    }
}

/// Prints a submitted transaction and, with `--wait`, waits for it to be final.
pub async fn report(
    client: &crate::api::ApiClient,
    sub: TxSubmitted,
    wait: &WaitArgs,
) -> anyhow::Result<ExitCode> {
    {
        if !wait.wait {
            if wait.json {
                println!("{}", serde_json::to_string(&sub)?);
            } else {
                println!("submitted {} (nonce {})", sub.id, sub.nonce);
            }
            return Ok(ExitCode::SUCCESS);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let st = client.chain_tx(sub.id.clone()).await?;
            if let Some(h) = st.height {
                if wait.json {
                    println!("{}", serde_json::to_string(&st)?);
                } else {
                    println!("{} final in block {h}", sub.id);
                    if let Some(p) = &st.proposal {
                        println!("{}", describe_proposal(p));
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            if !st.pending {
                anyhow::bail!(
                    "transaction {} was dropped (refused by the chain's rules)",
                    sub.id
                );
            }
            if Instant::now() > deadline {
                return Err(crate::api::TimedOut(format!(
                    "transaction {} not final after 60 s; it is still pending",
                    sub.id
                ))
                .into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
