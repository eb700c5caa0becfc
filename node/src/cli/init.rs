//! `qward init`: create a node's data directory (identity, config, database).

use std::path::PathBuf;
use std::process::ExitCode;

use qward_core::identity::{AccountId, Role};

use crate::datadir::{DataDir, InitOptions};

/// Create a data directory: an ed25519 identity, config.toml and the database.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// What this node is.
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
    /// A person-readable name ("st-marys", "dr-okafor").
    #[arg(long)]
    pub name: String,
    /// A genesis file to copy in (from `qward genesis build`).
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// Move an existing identity aside to a backup and create a new one.
    #[arg(long)]
    pub force: bool,
    /// A file holding the passphrase for the new data key (mode 0600; at
    /// least 10 characters). Without it: QWARD_PASSPHRASE, or asked twice.
    #[arg(long, env = "QWARD_PASSPHRASE_FILE", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Print the new node (name, role, directory, account, peer id) in JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

/// The libp2p peer id of an account (the same ed25519 key).
pub fn peer_id_of(account: &AccountId) -> anyhow::Result<libp2p::PeerId> {
    let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(&account.0)
        .map_err(|e| anyhow::anyhow!("invalid ed25519 public key: {e}"))?;
    Ok(libp2p::identity::PublicKey::from(key).to_peer_id())
}

pub fn run(args: InitArgs, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let explicit = data_dir.is_some();
    let dir = DataDir::resolve(data_dir)?;
    let passphrase = crate::vault::new_passphrase(
        args.passphrase_file.as_deref(),
        crate::vault::PASSPHRASE_ENV,
    )?;
    let mut rng = rand::rng();
    let sealed = qward_core::vault::DataKey::random(&mut rng).seal(
        &passphrase,
        qward_core::vault::KdfParams::RECOMMENDED,
        &mut rng,
    )?;
    let opts = InitOptions {
        sealed_data_key: &sealed,
        role: args.role,
        name: &args.name,
        genesis: args.genesis.as_deref(),
        force: args.force,
        create_parents: !explicit,
    };
    let outcome = crate::datadir::init(&dir, &opts, &mut rng)?;
    let account = outcome.identity.account();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "name": args.name,
                "role": args.role.as_str(),
                "data_dir": dir.root().display().to_string(),
                "account": account.to_hex(),
                "peer_id": peer_id_of(&account)?.to_string(),
                "backup": outcome.backup.as_ref().map(|b| b.display().to_string()),
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(backup) = &outcome.backup {
        println!("moved the previous data directory to {}", backup.display());
    }
    println!(
        "initialised {} ({}) in {}",
        args.name,
        args.role,
        dir.root().display()
    );
    println!("account {}", account.to_hex());
    println!("peer id {}", peer_id_of(&account)?);
    Ok(ExitCode::SUCCESS)
}
