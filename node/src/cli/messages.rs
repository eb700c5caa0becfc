//! `qward send`, `qward forward`, `qward inbox` (list, show, export) and
//! `qward outbox`: records through the running node's control API.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use qward_core::api::{DeliveryState, MessageInfo, OutboxDetail, RecordKindName};

use super::status::{block_on, connect, connect_waiting};
use crate::api::{ApiClient, QwardApiClient};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    /// A personal health record (FHIR R4 Bundle).
    Phr,
    /// A medical report (FHIR R4 DiagnosticReport).
    Report,
}

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The recipient: a name from contacts, an account (hex) or a peer id.
    #[arg(long)]
    pub to: String,
    #[arg(long, value_enum)]
    pub kind: KindArg,
    /// The FHIR R4 JSON file.
    #[arg(long)]
    pub file: PathBuf,
    /// The patient the record is about, when not you (your PHR) or the
    /// recipient (a report to them).
    #[arg(long)]
    pub patient: Option<String>,
    #[command(flatten)]
    pub wait: DeliveryWait,
}

#[derive(Debug, clap::Args)]
pub struct ForwardArgs {
    /// The received record's id (see `qward inbox`).
    pub record: String,
    /// The doctor to forward it to.
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub wait: DeliveryWait,
}

#[derive(Debug, clap::Args)]
pub struct DeliveryWait {
    /// Wait until the record is delivered and anchored (or fails), up to this
    /// many seconds.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "120")]
    pub wait: Option<u64>,
    /// Print JSON.
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,
    /// Print only the record id (for a shell variable: `r=$(qward send ... -q)`).
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct InboxArgs {
    #[command(subcommand)]
    pub command: Option<InboxCommand>,
    /// Print JSON (`export`: what was written, path, bytes and record).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum InboxCommand {
    /// Show a received record: a summary for people, or the FHIR JSON (--raw).
    Show {
        record: String,
        #[arg(long)]
        raw: bool,
    },
    /// Write a received record's decrypted FHIR JSON to a file.
    Export {
        record: String,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct OutboxArgs {
    #[command(subcommand)]
    pub command: Option<OutboxCommand>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum OutboxCommand {
    /// Show a sent record and its proof of delivery: the recipient's signed
    /// receipt, checked again against the sealed envelope.
    Show { record: String },
}

fn kind(k: KindArg) -> RecordKindName {
    match k {
        KindArg::Phr => RecordKindName::Phr,
        KindArg::Report => RecordKindName::Report,
    }
}

pub fn send(args: SendArgs, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let fhir_json = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    block_on(async move {
        let client = connect_waiting(data_dir, Duration::from_secs(60)).await?;
        let info = client
            .send(args.to, kind(args.kind), fhir_json, args.patient)
            .await
            .with_context(|| format!("{} was not sent", args.file.display()))?;
        follow(&client, info, &args.wait).await
    })
}

pub fn forward(args: ForwardArgs, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = connect(data_dir).await?;
        let info = client
            .forward(args.record.clone(), args.to)
            .await
            .with_context(|| format!("record {} was not forwarded", args.record))?;
        follow(&client, info, &args.wait).await
    })
}

/// Prints a queued record and, with `--wait`, follows it to its end state.
async fn follow(
    client: &ApiClient,
    mut info: MessageInfo,
    wait: &DeliveryWait,
) -> anyhow::Result<ExitCode> {
    if let Some(secs) = wait.wait {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if matches!(info.state, DeliveryState::Anchored | DeliveryState::Failed) {
                break;
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "record {} is still {:?} after {secs} s: {}",
                    info.record_id,
                    info.state,
                    info.detail.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let all = client.outbox().await?;
            if let Some(now) = all.into_iter().find(|m| m.record_id == info.record_id) {
                info = now;
            }
        }
    }
    if wait.json {
        println!("{}", serde_json::to_string(&info)?);
    } else if wait.quiet {
        println!("{}", info.record_id);
    } else {
        println!(
            "{} {:?} to {}: {}",
            info.record_id,
            info.state,
            info.to_name.as_deref().unwrap_or(&info.to),
            info.detail.as_deref().unwrap_or("")
        );
    }
    Ok(if info.state == DeliveryState::Failed {
        ExitCode::from(super::exit::REFUSED)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_table(list: &[MessageInfo], incoming: bool) {
    if list.is_empty() {
        println!(
            "{}",
            if incoming {
                "inbox is empty"
            } else {
                "outbox is empty"
            }
        );
        return;
    }
    println!(
        "{:<32}  {:<6}  {:<16}  {:<9}  {:>9}  detail",
        "record",
        "kind",
        if incoming { "from" } else { "to" },
        "state",
        "bytes"
    );
    for m in list {
        let who = if incoming {
            m.from_name.clone().unwrap_or_else(|| m.from.clone())
        } else {
            m.to_name.clone().unwrap_or_else(|| m.to.clone())
        };
        println!(
            "{:<32}  {:<6}  {:<16}  {:<9}  {:>9}  {}",
            m.record_id,
            match m.kind {
                RecordKindName::Phr => "phr",
                RecordKindName::Report => "report",
            },
            who,
            format!("{:?}", m.state).to_lowercase(),
            m.bytes,
            m.detail.as_deref().unwrap_or("")
        );
    }
}

pub fn inbox(args: InboxArgs, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = connect(data_dir).await?;
        match args.command {
            None => {
                let mut list = client.inbox().await?;
                list.sort_by_key(|m| m.created_ms);
                if args.json {
                    println!("{}", serde_json::to_string(&list)?);
                } else {
                    print_table(&list, true);
                }
            }
            Some(InboxCommand::Show { record, raw }) => {
                let c = client.record(record, Some("read".into())).await?;
                if args.json {
                    println!("{}", serde_json::to_string(&c)?);
                } else if raw {
                    println!("{}", c.fhir_json);
                } else {
                    print!("{}", crate::cli::record_view::render(&c));
                }
            }
            Some(InboxCommand::Export { record, out }) => {
                let c = client.record(record, Some("export".into())).await?;
                write_private(&out, c.fhir_json.as_bytes())?;
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "path": out.display().to_string(),
                            "bytes": c.fhir_json.len(),
                            "record_id": c.info.record_id,
                        })
                    );
                } else {
                    println!("wrote {} ({} bytes)", out.display(), c.fhir_json.len());
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Writes health data readable by its owner only.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

pub fn outbox(args: OutboxArgs, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = connect(data_dir).await?;
        match args.command {
            None => {
                let mut list = client.outbox().await?;
                list.sort_by_key(|m| m.created_ms);
                if args.json {
                    println!("{}", serde_json::to_string(&list)?);
                } else {
                    print_table(&list, false);
                }
            }
            Some(OutboxCommand::Show { record }) => {
                let d = client.outbox_show(record).await?;
                if args.json {
                    println!("{}", serde_json::to_string(&d)?);
                } else {
                    print!("{}", render_outbox_detail(&d));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `outbox show` for people.
fn render_outbox_detail(d: &OutboxDetail) -> String {
    let m = &d.message;
    let name = |n: &Option<String>, a: &str| n.clone().unwrap_or_else(|| a.to_string());
    let mut out = format!(
        "record      {}\nkind        {:?}\nto          {}\nstate       {:?}\nbytes       {}\n",
        m.record_id,
        m.kind,
        name(&m.to_name, &m.to),
        m.state,
        m.bytes
    );
    if let Some(detail) = &m.detail {
        out += &format!("detail      {detail}\n");
    }
    if let Some(anchor) = &m.anchor {
        out += &format!("anchor tx   {anchor}\n");
    }
    match &d.receipt {
        None => out += "receipt     none yet (not delivered)\n",
        Some(r) => {
            out += &format!(
                "receipt     signed by {} ({})\n  received  {} (unix ms)\n  envelope  blake3 {}\n  signature {}\n",
                name(&r.recipient_name, &r.recipient),
                r.recipient,
                r.received_at_ms,
                r.envelope_hash,
                r.signature
            );
            out += &match (&r.verified, &r.verify_error) {
                (true, _) => {
                    "  verified  yes: the recipient's signature over this envelope\n".to_string()
                }
                (false, e) => format!(
                    "  verified  NO: {}\n",
                    e.as_deref().unwrap_or("unknown reason")
                ),
            };
        }
    }
    out
}
