//! qward-genesis: the TOML genesis spec to a canonical genesis with a hash,
//! loading a genesis file, initialising a chain store from it, and devnet
//! generation (keys, genesis, config and data directory per participant).

use std::path::Path;

use qward_core::chain::{ChainStore, Genesis, InitOutcome};
use qward_core::storage::Store;

pub mod devnet;
pub mod spec;

pub use devnet::{BootstrapPeer, DevnetOptions, DevnetPlan, NodeConfig, Participant};
pub use spec::GenesisSpec;

/// The file name a genesis has inside a data directory.
pub const GENESIS_FILE: &str = "genesis.toml";

/// Why a genesis could not be built, read or used.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not valid genesis TOML: {0}")]
    Toml(String),
    #[error("genesis spec is invalid: {0}")]
    Spec(String),
    #[error(
        "genesis file says hash {declared} but its contents hash to {actual}; the file was edited or corrupted, get a fresh copy"
    )]
    HashMismatch { declared: String, actual: String },
    #[error("chain store: {0}")]
    Store(#[from] qward_core::chain::ChainStoreError),
    #[error("{0}")]
    Devnet(String),
}

/// Reads a genesis file (TOML, see `docs/chain.md`) and checks its `hash`
/// against the canonical encoding. A spec without `hash` is accepted too.
pub fn load_genesis(path: &Path) -> Result<Genesis, GenesisError> {
    let text = std::fs::read_to_string(path).map_err(|source| GenesisError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_genesis(&text)
}

/// Parses genesis TOML and checks its hash.
pub fn parse_genesis(text: &str) -> Result<Genesis, GenesisError> {
    let spec = GenesisSpec::from_toml(text)?;
    let genesis = spec.to_genesis()?;
    if let Some(declared) = &spec.hash {
        let actual = genesis.hash().to_hex();
        if declared.trim().to_ascii_lowercase() != actual {
            return Err(GenesisError::HashMismatch {
                declared: declared.clone(),
                actual,
            });
        }
    }
    Ok(genesis)
}

/// The genesis file text for `genesis`, with its hash and optional labels.
pub fn genesis_toml(
    genesis: &Genesis,
    names: &dyn Fn(&qward_core::identity::AccountId) -> Option<String>,
) -> Result<String, GenesisError> {
    let body = GenesisSpec::from_genesis(genesis, names).to_toml()?;
    Ok(format!(
        "# qward genesis file. Do not edit: `hash` is checked on load.\n{body}"
    ))
}

/// Initialises a chain store from `genesis`. Idempotent: a store already
/// holding this genesis is left as it is; one holding another is refused.
pub fn init_chain(store: &dyn Store, genesis: &Genesis) -> Result<InitOutcome, GenesisError> {
    Ok(ChainStore::new(store).init(genesis)?)
}

#[cfg(test)]
mod tests;
