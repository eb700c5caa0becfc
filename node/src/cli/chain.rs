//! `qward chain`: the auditor's `verify` (re-checks every block from genesis)
//! and `show` (head, validators, a block or a transaction, for a person).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use qward_core::chain::{ChainStore, Hash};

use crate::chain::{data_dir_or_default, open_chain_db};

/// Exit code of `chain verify` when the chain is invalid.
pub const EXIT_INVALID_CHAIN: u8 = super::exit::REFUSED;

#[derive(Debug, clap::Subcommand)]
pub enum ChainCommand {
    /// Re-check every block from genesis: hashes, signatures, commit
    /// certificates, validator-set changes and transaction rules. Exits 0 only
    /// when the whole chain is valid, 2 when it is not.
    Verify {
        /// Print one JSON object (height, blocks_verified, ok, and on failure
        /// failed_height and reason).
        #[arg(long)]
        json: bool,
    },
    /// Show the chain: the head and validators, a block, or a transaction.
    Show {
        #[command(subcommand)]
        what: Option<ShowCommand>,
        /// Print JSON instead of text.
        #[arg(long, global = true)]
        json: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ShowCommand {
    /// The head block and chain summary (the default).
    Head,
    /// The validator set and hospitals' votes in progress.
    Validators,
    /// A block by height or by hash (64 hex digits).
    Block { id: String },
    /// A transaction by id (64 hex digits).
    Tx { id: String },
}

pub fn run(cmd: ChainCommand, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = data_dir_or_default(data_dir)?;
    match cmd {
        ChainCommand::Verify { json } => verify(&dir, json),
        ChainCommand::Show { what, json } => show(&dir, what.unwrap_or(ShowCommand::Head), json),
    }
}

fn verify(dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let db = open_chain_db(dir)?;
    let chain = ChainStore::new(&db);
    let started = Instant::now();
    let bar = super::progress_bar("verifying {bar:30} {pos}/{len} blocks, {eta} left");
    let mut report = chain.verify_chain_with(&mut |height, total| {
        if bar.length() != Some(total) {
            bar.set_length(total);
        }
        bar.set_position(height);
    });
    bar.finish_and_clear();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    // The data directory's genesis file, if any, must be the database's genesis.
    let genesis_file = dir.join(qward_genesis::GENESIS_FILE);
    if report.ok && genesis_file.exists() {
        let file = qward_genesis::load_genesis(&genesis_file)
            .with_context(|| format!("reading {}", genesis_file.display()))?;
        if Some(file.hash().to_hex()) != report.genesis_hash {
            report.ok = false;
            report.failed_height = Some(0);
            report.reason = Some(format!(
                "the database's genesis differs from {}",
                genesis_file.display()
            ));
        }
    }
    if json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("elapsed_ms".into(), elapsed_ms.into());
        }
        println!("{v}");
    } else if report.ok {
        println!(
            "chain OK: {} blocks and {} transactions verified from genesis {} to height {} in {} ms",
            report.blocks_verified,
            report.txs_verified,
            report.genesis_hash.as_deref().unwrap_or("?"),
            report.height,
            elapsed_ms
        );
    } else {
        println!(
            "chain INVALID at height {}: {}",
            report.failed_height.unwrap_or(0),
            report.reason.as_deref().unwrap_or("unknown reason")
        );
        println!(
            "({} blocks verified before the failure; stored head is {})",
            report.blocks_verified, report.height
        );
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID_CHAIN)
    })
}

fn show(dir: &Path, what: ShowCommand, json: bool) -> anyhow::Result<ExitCode> {
    let db = open_chain_db(dir)?;
    let chain = ChainStore::new(&db);
    let genesis = chain.genesis().context("reading the genesis")?;
    let state = chain.state().context("reading the chain state")?;
    let tip = chain.tip().context("reading the chain head")?;
    let value = match what {
        ShowCommand::Head => serde_json::json!({
            "network": genesis.network,
            "chain_id": genesis.chain_id,
            "genesis_hash": genesis.hash().to_hex(),
            "height": tip.height,
            "head_hash": tip.hash.to_hex(),
            "head_time_ms": tip.time_ms,
            "validators": state.validators.len(),
            "members": state.members.values().filter(|m| m.active).count(),
            "consents": state.consents.len(),
            "record_anchors": state.anchors,
            "key_session_audits": state.audits,
            "evidence": state.evidence.len(),
        }),
        ShowCommand::Validators => crate::chain::show::validators_json(&state),
        ShowCommand::Block { id } => {
            let height = match id.parse::<u64>() {
                Ok(h) => h,
                Err(_) => {
                    let hash = Hash::from_hex(&id)
                        .context("a block id is a height or a 64-hex-digit hash")?;
                    chain
                        .height_of(&hash)?
                        .with_context(|| format!("no block with hash {id}"))?
                }
            };
            let Some(cb) = chain.block(height)? else {
                bail!("no block at height {height} (head is {})", tip.height);
            };
            crate::chain::show::block_json(&cb)
        }
        ShowCommand::Tx { id } => {
            let hash = Hash::from_hex(&id).context("a transaction id is 64 hex digits")?;
            let Some((loc, tx)) = chain.transaction(&hash)? else {
                bail!("no transaction {id} on this chain");
            };
            crate::chain::show::tx_json(&tx, loc.height, loc.index)
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", crate::chain::show::to_text(&value, 0));
    }
    Ok(ExitCode::SUCCESS)
}
