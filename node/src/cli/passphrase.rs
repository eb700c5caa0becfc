//! `qward passphrase change`: seal the node's data key under a new
//! passphrase. Records and keys in the database are not touched (the data
//! key stays the same), so this is quick and safe while the node runs; an
//! interrupted change leaves the old or the new passphrase working.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::datadir::DataDir;
use crate::vault::{NEW_PASSPHRASE_ENV, PassphraseArgs};

#[derive(Debug, Subcommand)]
pub enum PassphraseCommand {
    /// Seal the data key under a new passphrase (the old one stops working).
    Change {
        /// The current passphrase (else QWARD_PASSPHRASE, config.toml's
        /// passphrase_file, or asked).
        #[command(flatten)]
        current: PassphraseArgs,
        /// A file holding the new passphrase (mode 0600; at least 10
        /// characters). Else QWARD_NEW_PASSPHRASE, or asked twice.
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: PassphraseCommand, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    match cmd {
        PassphraseCommand::Change {
            current,
            new_passphrase_file,
            json,
        } => {
            let dir = DataDir::resolve(data_dir)?;
            let config = dir.load_config().ok();
            let old = crate::vault::passphrase(&current, &dir, config.as_ref())?;
            // Checked before asking for a new one: a typo costs one prompt.
            crate::vault::unlock(&dir, &old)?;
            let new =
                crate::vault::new_passphrase(new_passphrase_file.as_deref(), NEW_PASSPHRASE_ENV)?;
            crate::vault::change(&dir, &old, &new, &mut rand::rng())?;
            let names_file = config.and_then(|c| c.passphrase_file).is_some();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "data_dir": dir.root(),
                        "changed": true,
                        "update_passphrase_file": names_file,
                    })
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "the data key of {} is now sealed under the new passphrase",
                dir.root().display()
            );
            if names_file {
                println!(
                    "config.toml names a passphrase_file: put the new passphrase in it before the node restarts"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
