//! Node-side chain helpers: opening a data directory's chain database and
//! presenting chain data to people (`qward chain show`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::db::RocksStore;

pub mod show;

/// The data directory from `--data-dir` / `QWARD_DATA_DIR`, or an actionable error.
pub fn data_dir_or_default(data_dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match data_dir {
        Some(d) => Ok(d),
        None => {
            let cwd = std::env::current_dir().context("reading the current directory")?;
            if cwd.join("db").exists() {
                Ok(cwd)
            } else {
                bail!("no data directory: pass --data-dir DIR or set QWARD_DATA_DIR")
            }
        }
    }
}

/// Opens `<dir>/db`, which must hold an initialised chain.
pub fn open_chain_db(dir: &Path) -> anyhow::Result<RocksStore> {
    let path = dir.join("db");
    // Read-only: works while the node itself is running.
    let db = RocksStore::open_read_only(&path)
        .with_context(|| format!("opening the database of {}", dir.display()))?;
    Ok(db)
}
