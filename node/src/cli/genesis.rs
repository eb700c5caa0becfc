//! `qward genesis`: `build` a genesis file from a TOML spec (real deployments,
//! each hospital brings its public key) and `devnet` (keys, genesis, config
//! and an initialised database per participant, no hand editing).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use qward_core::chain::Genesis;
use qward_genesis::{DevnetOptions, GenesisSpec, devnet, genesis_toml};
use rand::SeedableRng;

use crate::db::RocksStore;

#[derive(Debug, clap::Subcommand)]
pub enum GenesisCommand {
    /// Build a genesis file (TOML with its canonical hash) from a spec.
    Build {
        /// The spec: network, chain_id, genesis_time_ms, [consensus],
        /// [[hospitals]] (account, power, validator) and [[members]] (account, role).
        spec: PathBuf,
        /// Where to write the genesis file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Generate a local network: per participant a data directory with keys,
    /// genesis, config.toml and an initialised database.
    Devnet {
        /// An empty or new directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, default_value_t = 4)]
        hospitals: usize,
        #[arg(long, default_value_t = 2)]
        doctors: usize,
        #[arg(long, default_value_t = 2)]
        patients: usize,
        #[arg(long, default_value_t = 1)]
        auditors: usize,
        #[arg(long, default_value = "qward-devnet")]
        network: String,
        #[arg(long, default_value_t = 1)]
        chain_id: u64,
        /// The first libp2p port (each participant gets the next one).
        #[arg(long, default_value_t = 17400)]
        base_port: u16,
        /// The first control-API port (each participant gets the next one;
        /// default: base port + 100).
        #[arg(long)]
        api_base_port: Option<u16>,
        /// Time between blocks while there are transactions (genesis
        /// `[consensus] block_time_ms`).
        #[arg(long, alias = "block-interval-ms", default_value_t = qward_core::consensus::BlockTiming::default().block_time_ms)]
        block_time_ms: u64,
        /// With nothing to commit, the longest time without a block (default:
        /// 10 s, or the block time if longer); the block time itself makes a
        /// block every block time, empty or not.
        #[arg(long)]
        empty_block_interval_ms: Option<u64>,
        /// Derive keys from this seed (reproducible, for tests only: the keys are not secret).
        #[arg(long)]
        insecure_seed: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Print a genesis file's hash and summary after checking it.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: GenesisCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        GenesisCommand::Build { spec, out, json } => build(&spec, &out, json),
        GenesisCommand::Devnet {
            out,
            hospitals,
            doctors,
            patients,
            auditors,
            network,
            chain_id,
            base_port,
            api_base_port,
            block_time_ms,
            empty_block_interval_ms,
            insecure_seed,
            json,
        } => {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("the system clock is before 1970")?
                .as_millis() as u64;
            let block_timing = qward_core::consensus::BlockTiming {
                block_time_ms,
                empty_block_interval_ms: empty_block_interval_ms.unwrap_or(
                    qward_core::consensus::BlockTiming::default()
                        .empty_block_interval_ms
                        .max(block_time_ms),
                ),
            };
            block_timing
                .validate()
                .map_err(|e| anyhow::anyhow!("{e} (--block-time-ms, --empty-block-interval-ms)"))?;
            let mut opts = DevnetOptions {
                network,
                chain_id,
                hospitals,
                doctors,
                patients,
                auditors,
                base_port,
                api_base_port: api_base_port.unwrap_or(base_port.saturating_add(100)),
                ..DevnetOptions::new(now_ms)
            };
            opts.params.block_timing = block_timing;
            let plan = write_devnet(&out, &opts, insecure_seed)?;
            if json {
                let participants: Vec<_> = plan
                    .participants
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "name": p.name,
                            "role": p.role.to_string(),
                            "account": p.identity.account().to_hex(),
                            "listen": p.listen_addr(),
                            "api_port": p.api_port,
                            "data_dir": out.join(&p.name),
                        })
                    })
                    .collect();
                let summary = serde_json::json!({
                    "network": plan.genesis.network,
                    "chain_id": plan.genesis.chain_id,
                    "genesis_hash": plan.genesis.hash().to_string(),
                    "dir": out,
                    "participants": participants,
                });
                println!("{summary}");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "devnet '{}' written to {}: genesis {}",
                plan.genesis.network,
                out.display(),
                plan.genesis.hash()
            );
            for p in &plan.participants {
                println!(
                    "  {:<12} {:<9} {}  listen {}  api {}",
                    p.name,
                    p.role,
                    p.identity.account().short(),
                    p.listen_addr(),
                    p.api_port
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        GenesisCommand::Inspect { file, json } => {
            let g = qward_genesis::load_genesis(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            if json {
                println!("{}", genesis_summary(&g));
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "genesis {} ok: network {}, chain id {}, {} validators, {} members",
                g.hash(),
                g.network,
                g.chain_id,
                g.validators.len(),
                g.members.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A genesis for scripts: its hash, names, parameters and sizes.
fn genesis_summary(g: &Genesis) -> serde_json::Value {
    serde_json::json!({
        "genesis_hash": g.hash().to_string(),
        "network": g.network,
        "chain_id": g.chain_id,
        "genesis_time_ms": g.genesis_time_ms,
        "params": g.params,
        "validators": g.validators.len(),
        "members": g.members.len(),
    })
}

fn build(spec_path: &Path, out: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(spec_path)
        .with_context(|| format!("reading the spec {}", spec_path.display()))?;
    let spec = GenesisSpec::from_toml(&text)
        .with_context(|| format!("parsing {}", spec_path.display()))?;
    if spec.hash.is_some() {
        bail!(
            "{} already has a `hash`: it is a genesis file, not a spec",
            spec_path.display()
        );
    }
    let genesis = spec
        .to_genesis()
        .with_context(|| format!("checking {}", spec_path.display()))?;
    let names: Vec<(String, Option<String>)> = spec
        .hospitals
        .iter()
        .map(|h| (h.account.to_ascii_lowercase(), h.name.clone()))
        .chain(
            spec.members
                .iter()
                .map(|m| (m.account.to_ascii_lowercase(), m.name.clone())),
        )
        .collect();
    let text = genesis_toml(&genesis, &|a| {
        names
            .iter()
            .find(|(acc, _)| *acc == a.to_hex())
            .and_then(|(_, n)| n.clone())
    })?;
    if out.exists() {
        bail!(
            "{} exists; refusing to overwrite a genesis file",
            out.display()
        );
    }
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    if json {
        let mut summary = genesis_summary(&genesis);
        summary["file"] = serde_json::json!(out);
        println!("{summary}");
    } else {
        println!("genesis {} written to {}", genesis.hash(), out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The devnet's passphrase file, beside the nodes' data directories.
pub const DEVNET_PASSPHRASE_FILE: &str = "passphrase";

/// A random passphrase for a devnet's data keys, written to
/// `out/passphrase` (mode 0600).
fn devnet_passphrase(out: &Path) -> anyhow::Result<qward_core::vault::Passphrase> {
    let mut bytes = [0u8; 24];
    rand_core::Rng::fill_bytes(&mut rand::rng(), &mut bytes);
    let text = hex::encode(bytes);
    crate::datadir::write_secret_file(&out.join(DEVNET_PASSPHRASE_FILE), text.as_bytes())?;
    Ok(qward_core::vault::Passphrase::new_for_sealing(text)?)
}

fn init_db(path: &Path, genesis: &Genesis) -> Result<(), String> {
    let db = RocksStore::create(path).map_err(|e| e.to_string())?;
    qward_genesis::init_chain(&db, genesis).map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes a devnet to `out`: keys, genesis, per-participant data directories
/// with config.toml, an initialised database, a
/// data key, a `logs/` folder and an address book naming every participant.
/// A devnet runs unattended: every node's data key is sealed under one
/// random passphrase kept in `out/passphrase` (mode 0600), which each
/// config.toml names, so a devnet protects nothing from whoever can read
/// `out/` (see docs/security.md).
pub fn write_devnet(
    out: &Path,
    opts: &DevnetOptions,
    insecure_seed: Option<u64>,
) -> anyhow::Result<devnet::DevnetPlan> {
    let plan = match insecure_seed {
        Some(seed) => devnet::plan(opts, &mut rand::rngs::StdRng::seed_from_u64(seed)),
        None => devnet::plan(opts, &mut rand::rng()),
    }
    .context("planning the devnet")?;
    plan.write(out, &mut init_db)
        .with_context(|| format!("writing the devnet to {}", out.display()))?;
    let mut book = crate::contacts::Contacts::default();
    for p in &plan.participants {
        book.insert(&p.name, p.identity.account(), p.role);
    }
    let passphrase = devnet_passphrase(out)?;
    for p in &plan.participants {
        let dir = crate::datadir::DataDir::new(out.join(&p.name));
        std::fs::set_permissions(dir.root(), std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.root().display()))?;
        crate::vault::create(&dir, &passphrase, &mut rand::rng())?;
        let mut config = dir.load_config()?;
        config.passphrase_file = Some(format!("../{DEVNET_PASSPHRASE_FILE}"));
        std::fs::write(dir.config_file(), config.to_documented_toml())
            .with_context(|| format!("cannot write {}", dir.config_file().display()))?;
        std::fs::create_dir_all(dir.logs_dir())?;
        book.save(&dir.contacts_file())?;
    }
    Ok(plan)
}
