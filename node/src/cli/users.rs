//! `qward users add|list|remove|whoami`: the people who use a shared node's
//! API, each with a role (admin, clinician, read-only) and a credential.
//! A person logs in with the credential (set QWARD_CREDENTIAL_FILE for the
//! CLI, or `qward tui --credential-file`); every call and every access-log
//! entry then names them, and their session locks after the node's
//! `api_idle_logoff_s` without use.

use std::path::PathBuf;
use std::process::ExitCode;

use qward_core::api::UserRole;

use super::status::{block_on, connect};
use crate::api::QwardApiClient;

#[derive(Debug, clap::Subcommand)]
pub enum UsersCommand {
    /// Add a user; prints their credential, this once (admins only).
    Add {
        name: String,
        /// admin, clinician or read-only.
        #[arg(long, value_parser = parse_role)]
        role: UserRole,
        /// Write the credential to this new file (mode 0600) instead of
        /// printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print one JSON object (the credential is in it unless --out).
        #[arg(long)]
        json: bool,
    },
    /// The node's users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a user; their sessions end at once (admins only).
    Remove {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Who this command line is to the node.
    Whoami {
        #[arg(long)]
        json: bool,
    },
}

fn parse_role(s: &str) -> Result<UserRole, String> {
    s.parse()
}

pub fn run(cmd: UsersCommand, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = connect(data_dir).await?;
        match cmd {
            UsersCommand::Add {
                name,
                role,
                out,
                json,
            } => {
                let made = client.user_add(name, role).await?;
                if json {
                    let mut v =
                        serde_json::json!({ "name": made.name, "role": made.role.as_str() });
                    match &out {
                        Some(path) => {
                            crate::datadir::write_secret_file(path, made.credential.as_bytes())?;
                            v["credential_file"] = serde_json::json!(path);
                        }
                        None => v["credential"] = serde_json::json!(made.credential),
                    }
                    println!("{v}");
                    return Ok(ExitCode::SUCCESS);
                }
                match out {
                    Some(path) => {
                        crate::datadir::write_secret_file(&path, made.credential.as_bytes())?;
                        println!(
                            "added {} ({}); credential written to {}",
                            made.name,
                            made.role.as_str(),
                            path.display()
                        );
                    }
                    None => {
                        println!("added {} ({})", made.name, made.role.as_str());
                        println!(
                            "credential (shown once, keep it secret): {}",
                            made.credential
                        );
                    }
                }
            }
            UsersCommand::List { json } => {
                let list = client.user_list().await?;
                if json {
                    println!("{}", serde_json::to_string(&list)?);
                } else if list.is_empty() {
                    println!("no users (the node's own cookie only)");
                } else {
                    for u in list {
                        println!(
                            "{:<24} {:<10} added {}",
                            u.name,
                            u.role.as_str(),
                            qward_core::calendar::utc_minute(u.created_ms)
                        );
                    }
                }
            }
            UsersCommand::Remove { name, json } => {
                client.user_remove(name.clone()).await?;
                if json {
                    println!("{}", serde_json::json!({ "removed": name }));
                } else {
                    println!("removed {name}; their sessions are ended");
                }
            }
            UsersCommand::Whoami { json } => {
                let me = client.whoami().await?;
                if json {
                    println!("{}", serde_json::to_string(&me)?);
                    return Ok(ExitCode::SUCCESS);
                }
                println!(
                    "{} ({}){}",
                    me.user,
                    me.role.as_str(),
                    me.idle_logoff_s
                        .map(|s| format!(", session locks after {s} s idle"))
                        .unwrap_or_default()
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
