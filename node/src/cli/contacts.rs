//! `qward contacts` (the local address book: names for accounts, so
//! `--to st-marys` works in a real deployment) and `qward id show` (this
//! node's identity, read from the data directory without a running node
//! or the passphrase).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use qward_core::identity::{AccountId, Role};

use super::init::{parse_role, peer_id_of};
use crate::contacts::Contacts;
use crate::datadir::DataDir;

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Name an account (a running node reads the book at start).
    Add {
        /// The name ("st-marys", "dr-okafor"): 1 to 64 characters, no spaces.
        name: String,
        /// The account (64 hex digits, as `qward id show` prints it).
        account: String,
        /// What the account is on the chain.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Replace an entry with the same name or account.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the names.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Forget a name.
    Remove {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum IdCommand {
    /// Print this node's name, role, account and peer id (no node needed).
    Show {
        #[arg(long)]
        json: bool,
    },
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_whitespace()) {
        bail!("a contact's name is 1 to 64 characters without spaces, not {name:?}");
    }
    if AccountId::from_hex(name).is_ok() {
        bail!("a contact's name must not be an account");
    }
    Ok(())
}

pub fn contacts(cmd: ContactsCommand, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = DataDir::resolve(data_dir)?;
    if !dir.config_file().exists() {
        bail!(
            "{} is not a node's data directory (no config.toml); `qward init` makes one",
            dir.root().display()
        );
    }
    let file = dir.contacts_file();
    let mut book = Contacts::load(&file)?;
    match cmd {
        ContactsCommand::Add {
            name,
            account,
            role,
            force,
            json,
        } => {
            check_name(&name)?;
            let account = AccountId::from_hex(account.trim())
                .with_context(|| format!("{account:?} is not an account (64 hex digits)"))?;
            let by_name = book.resolve(&name).ok().filter(|a| *a != account);
            let named = book.name_of(&account).map(str::to_string);
            if !force {
                if by_name.is_some() {
                    bail!("{name} names another account already (--force replaces it)");
                }
                if let Some(old) = named.as_ref().filter(|n| !n.eq_ignore_ascii_case(&name)) {
                    bail!("that account is named {old} already (--force renames it)");
                }
            }
            if by_name.is_some() {
                book.remove(&name);
            }
            if let Some(old) = named {
                book.remove(&old);
            }
            book.insert(&name, account, role);
            book.save(&file)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "name": name,
                        "account": account.to_hex(),
                        "role": role.as_str(),
                    })
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{name} = {} ({}); a running node reads it at its next start",
                account.to_hex(),
                role.as_str()
            );
        }
        ContactsCommand::List { json } => {
            let entries = book.entries();
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else if entries.is_empty() {
                println!("no contacts in {}", file.display());
            } else {
                for c in entries {
                    println!("{:<24} {:<9} {}", c.name, c.role.as_str(), c.account);
                }
            }
        }
        ContactsCommand::Remove { name, json } => {
            if book.remove(&name).is_none() {
                bail!("no contact named {name}");
            }
            book.save(&file)?;
            if json {
                println!("{}", serde_json::json!({ "removed": name }));
            } else {
                println!("{name} removed");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn id(cmd: IdCommand, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let IdCommand::Show { json } = cmd;
    let dir = DataDir::resolve(data_dir)?;
    let identity = dir.load_identity()?;
    let config = dir.load_config()?;
    let account = identity.account();
    let peer_id = peer_id_of(&account)?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "name": config.name,
                "role": config.role.as_str(),
                "account": account.to_hex(),
                "peer_id": peer_id.to_string(),
            })
        );
    } else {
        println!("name     {}", config.name);
        println!("role     {}", config.role.as_str());
        println!("account  {}", account.to_hex());
        println!("peer id  {peer_id}");
    }
    Ok(ExitCode::SUCCESS)
}
