//! `qward keys` (the key store, never key material), `qward keys agree`,
//! `qward keys sessions`, and `qward link show|set` (the simulated quantum
//! channel of a link, an eavesdropper included, for demonstrations).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use qward_core::api::KeySessionInfo;

use super::status::{block_on, connect, connect_waiting};
use crate::api::QwardApiClient;

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: Option<KeysCommand>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Run a key agreement (BB84 + X25519 + ML-KEM-768) with a peer now, and wait
    /// for it. Exits 2 when an eavesdropper is detected, 1 when the session
    /// could not run or ended for another reason.
    Agree {
        /// A name from contacts, an account (hex) or a peer id.
        peer: String,
        #[arg(long)]
        json: bool,
    },
    /// Recent key-agreement sessions, both roles.
    Sessions {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum LinkCommand {
    /// Show this node's setting of the simulated channel to a peer.
    Show {
        peer: String,
        #[arg(long)]
        json: bool,
    },
    /// Change it (until the node restarts); unset options keep their value.
    Set {
        peer: String,
        /// Fraction of qubits an intercept-resend eavesdropper attacks (0 to 1).
        #[arg(long)]
        eve: Option<f64>,
        #[arg(long)]
        distance_km: Option<f64>,
        #[arg(long)]
        loss_db_per_km: Option<f64>,
        #[arg(long)]
        detector_efficiency: Option<f64>,
        #[arg(long)]
        dark_count_prob: Option<f64>,
        #[arg(long)]
        misalignment: Option<f64>,
        /// Print the link as set, in JSON.
        #[arg(long)]
        json: bool,
    },
}

fn session_line(s: &KeySessionInfo) -> String {
    let peer = s.peer_name.clone().unwrap_or_else(|| s.peer.clone());
    let qber = s
        .qber
        .map(|q| format!("{:.2}%", q * 100.0))
        .unwrap_or_else(|| "-".into());
    let end = match (&s.abort_reason, s.eve_detected) {
        (Some(r), true) => format!("EAVESDROPPER DETECTED: {r}"),
        (Some(r), false) => r.clone(),
        (None, _) => format!("{} QKD key bits", s.final_key_bits),
    };
    format!(
        "{}  {:<16} {:<12} QBER {:>7}  {}",
        &s.session_id[..8.min(s.session_id.len())],
        peer,
        format!("{:?}", s.phase).to_lowercase(),
        qber,
        end
    )
}

pub fn keys(args: KeysArgs, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = connect_waiting(data_dir, Duration::from_secs(180)).await?;
        match args.command {
            None => {
                let keys = client.keys().await?;
                if args.json {
                    println!("{}", serde_json::to_string(&keys)?);
                } else if keys.is_empty() {
                    println!("no keys yet (one is agreed when a record is first sent to a peer)");
                } else {
                    println!(
                        "{:<32}  {:<16}  {:>7}  {:>6}  {:>5}  state",
                        "key id", "peer", "QBER", "bits", "uses"
                    );
                    for k in keys {
                        println!(
                            "{:<32}  {:<16}  {:>6.2}%  {:>6}  {:>5}  {}",
                            k.key_id,
                            k.peer_name.unwrap_or(k.peer),
                            k.qber * 100.0,
                            k.bits,
                            k.uses,
                            if k.retired {
                                "used up / expired"
                            } else {
                                "fresh"
                            }
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Some(KeysCommand::Agree { peer, json }) => {
                let s = client
                    .key_agree(peer, Some(true))
                    .await?
                    .context("the node answered no session")?;
                if json {
                    println!("{}", serde_json::to_string(&s)?);
                } else {
                    println!("{}", session_line(&s));
                }
                // 2 means an eavesdropper (QBER above the threshold); a
                // session cut short for any other reason is a failure (1).
                Ok(if s.eve_detected {
                    ExitCode::from(super::exit::REFUSED)
                } else if s.abort_reason.is_some() {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                })
            }
            Some(KeysCommand::Sessions { json }) => {
                let list = client.key_sessions().await?;
                if json {
                    println!("{}", serde_json::to_string(&list)?);
                } else if list.is_empty() {
                    println!("no key-agreement sessions yet");
                } else {
                    for s in &list {
                        println!("{}", session_line(s));
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

pub fn link(cmd: LinkCommand, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = connect(data_dir).await?;
        let (peer, json_out) = match &cmd {
            LinkCommand::Show { peer, json } => (peer.clone(), *json),
            LinkCommand::Set { peer, json, .. } => (peer.clone(), *json),
        };
        let mut link = client.link_get(peer).await?;
        if let LinkCommand::Set {
            eve,
            distance_km,
            loss_db_per_km,
            detector_efficiency,
            dark_count_prob,
            misalignment,
            ..
        } = cmd
        {
            let set = |v: Option<f64>, field: &mut f64| {
                if let Some(v) = v {
                    *field = v;
                }
            };
            set(eve, &mut link.eve_fraction);
            set(distance_km, &mut link.distance_km);
            set(loss_db_per_km, &mut link.loss_db_per_km);
            set(detector_efficiency, &mut link.detector_efficiency);
            set(dark_count_prob, &mut link.dark_count_prob);
            set(misalignment, &mut link.misalignment);
            link = client.link_set(link).await?;
        }
        if json_out {
            println!("{}", serde_json::to_string(&link)?);
        } else {
            println!(
                "link to {}: {} km at {} dB/km, detector {:.0}%, dark counts {:e}, misalignment {:.1}%, eavesdropper on {:.0}% of qubits",
                link.peer,
                link.distance_km,
                link.loss_db_per_km,
                link.detector_efficiency * 100.0,
                link.dark_count_prob,
                link.misalignment * 100.0,
                link.eve_fraction * 100.0
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
