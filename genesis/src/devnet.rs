//! Devnet generation: keys for every participant, a spec and genesis with the
//! hospitals as validators, and per participant a ready data directory
//! (`keys/identity.key` mode 0600, `genesis.toml`, `config.toml`, `db/`).

use std::fs;
use std::io::Write;
use std::path::Path;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use qward_core::chain::Genesis;
use qward_core::consensus::ConsensusParams;
use qward_core::identity::{AccountId, Identity, Role};

use crate::spec::{ConsensusSpec, GenesisSpec, HospitalSpec, MemberSpec};
use crate::{GENESIS_FILE, GenesisError, genesis_toml};

/// What a devnet holds.
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    pub network: String,
    pub chain_id: u64,
    pub hospitals: usize,
    pub doctors: usize,
    pub patients: usize,
    pub auditors: usize,
    /// The first participant listens on this TCP port, the next on +1, ...
    pub base_port: u16,
    /// The first participant's control API port, the next on +1, ...
    pub api_base_port: u16,
    pub genesis_time_ms: u64,
    pub params: ConsensusParams,
}

impl DevnetOptions {
    pub fn new(genesis_time_ms: u64) -> Self {
        DevnetOptions {
            network: "qward-devnet".into(),
            chain_id: 1,
            hospitals: 4,
            doctors: 2,
            patients: 2,
            auditors: 1,
            base_port: 4100,
            api_base_port: 5100,
            genesis_time_ms,
            params: ConsensusParams::default(),
        }
    }
}

/// One devnet participant and its secret key.
#[derive(Debug)]
pub struct Participant {
    pub name: String,
    pub role: Role,
    pub identity: Identity,
    pub listen_port: u16,
    pub api_port: u16,
}

impl Participant {
    pub fn listen_addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.listen_port)
    }
}

/// A peer to dial at start: the node derives the libp2p peer id from `account`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapPeer {
    /// The peer's ed25519 public key, 64 hex digits.
    pub account: String,
    /// Its multiaddr without `/p2p/...`.
    pub addr: String,
}

/// A participant's `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    pub name: String,
    /// hospital, doctor, patient or auditor.
    pub role: String,
    /// This node's public key (64 hex digits); the secret is in keys/identity.key.
    pub account: String,
    /// libp2p listen multiaddr.
    pub listen: String,
    /// Control API port on 127.0.0.1.
    pub api_port: u16,
    /// The genesis file, relative to the data directory.
    pub genesis: String,
    /// Hospitals to dial at start.
    pub bootstrap: Vec<BootstrapPeer>,
}

/// A devnet before it is written.
#[derive(Debug)]
pub struct DevnetPlan {
    pub genesis: Genesis,
    pub participants: Vec<Participant>,
}

/// Generates keys and the genesis for a devnet.
pub fn plan<R: CryptoRng + ?Sized>(
    opts: &DevnetOptions,
    rng: &mut R,
) -> Result<DevnetPlan, GenesisError> {
    if opts.hospitals == 0 {
        return Err(GenesisError::Devnet(
            "a devnet needs at least one hospital".into(),
        ));
    }
    let total = opts.hospitals + opts.doctors + opts.patients + opts.auditors;
    if total > 1000 {
        return Err(GenesisError::Devnet("at most 1000 participants".into()));
    }
    let last_port = u32::from(opts.base_port.max(opts.api_base_port)) + total as u32;
    if last_port > u32::from(u16::MAX) {
        return Err(GenesisError::Devnet(
            "ports would run past 65535; pick lower base ports".into(),
        ));
    }
    let mut participants = Vec::with_capacity(total);
    let groups = [
        (Role::Hospital, opts.hospitals),
        (Role::Doctor, opts.doctors),
        (Role::Patient, opts.patients),
        (Role::Auditor, opts.auditors),
    ];
    for (role, count) in groups {
        for i in 1..=count {
            let n = participants.len() as u16;
            participants.push(Participant {
                name: format!("{}-{i}", role.as_str()),
                role,
                identity: Identity::generate(rng),
                listen_port: opts.base_port + n,
                api_port: opts.api_base_port + n,
            });
        }
    }
    let spec = GenesisSpec {
        hash: None,
        network: opts.network.clone(),
        chain_id: opts.chain_id,
        genesis_time_ms: opts.genesis_time_ms,
        consensus: ConsensusSpec::from(&opts.params),
        hospitals: participants
            .iter()
            .filter(|p| p.role == Role::Hospital)
            .map(|p| HospitalSpec {
                name: Some(p.name.clone()),
                account: p.identity.account().to_hex(),
                power: 1,
                validator: true,
            })
            .collect(),
        members: participants
            .iter()
            .filter(|p| p.role != Role::Hospital)
            .map(|p| MemberSpec {
                name: Some(p.name.clone()),
                account: p.identity.account().to_hex(),
                role: p.role.as_str().into(),
            })
            .collect(),
    };
    let genesis = spec.to_genesis()?;
    Ok(DevnetPlan {
        genesis,
        participants,
    })
}

impl DevnetPlan {
    fn name_of(&self, account: &AccountId) -> Option<String> {
        self.participants
            .iter()
            .find(|p| p.identity.account() == *account)
            .map(|p| p.name.clone())
    }

    /// The spec this devnet was built from (hospital keys and members), as TOML.
    pub fn spec_toml(&self) -> Result<String, GenesisError> {
        let mut spec = GenesisSpec::from_genesis(&self.genesis, &|a| self.name_of(a));
        spec.hash = None;
        spec.to_toml()
    }

    /// The `config.toml` of participant `i`: bootstrap lists every other hospital.
    pub fn config_for(&self, p: &Participant) -> NodeConfig {
        NodeConfig {
            name: p.name.clone(),
            role: p.role.as_str().into(),
            account: p.identity.account().to_hex(),
            listen: p.listen_addr(),
            api_port: p.api_port,
            genesis: GENESIS_FILE.into(),
            bootstrap: self
                .participants
                .iter()
                .filter(|h| h.role == Role::Hospital && h.name != p.name)
                .map(|h| BootstrapPeer {
                    account: h.identity.account().to_hex(),
                    addr: h.listen_addr(),
                })
                .collect(),
        }
    }

    /// Writes `out/spec.toml`, `out/genesis.toml` and one data directory per
    /// participant; `init_db` creates `<dir>/db` and initialises it with the
    /// genesis (the node passes RocksDB here). Refuses a non-empty `out`.
    pub fn write(
        &self,
        out: &Path,
        init_db: &mut dyn FnMut(&Path, &Genesis) -> Result<(), String>,
    ) -> Result<(), GenesisError> {
        if out.exists()
            && fs::read_dir(out)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            return Err(GenesisError::Devnet(format!(
                "{} exists and is not empty; pick a new directory so no keys are overwritten",
                out.display()
            )));
        }
        create_dir(out)?;
        let genesis_text = genesis_toml(&self.genesis, &|a| self.name_of(a))?;
        write_file(&out.join("spec.toml"), self.spec_toml()?.as_bytes())?;
        write_file(&out.join(GENESIS_FILE), genesis_text.as_bytes())?;
        for p in &self.participants {
            let dir = out.join(&p.name);
            create_dir(&dir)?;
            let keys = dir.join("keys");
            create_private_dir(&keys)?;
            write_secret(
                &keys.join("identity.key"),
                p.identity.secret_bytes().as_slice(),
            )?;
            write_file(&dir.join(GENESIS_FILE), genesis_text.as_bytes())?;
            let config = toml::to_string_pretty(&self.config_for(p))
                .map_err(|e| GenesisError::Toml(e.to_string()))?;
            write_file(&dir.join("config.toml"), config.as_bytes())?;
            init_db(&dir.join("db"), &self.genesis)
                .map_err(|e| GenesisError::Devnet(format!("{}: database: {e}", p.name)))?;
        }
        Ok(())
    }
}

fn create_dir(path: &Path) -> Result<(), GenesisError> {
    fs::create_dir_all(path).map_err(|source| GenesisError::Write {
        path: path.display().to_string(),
        source,
    })
}

fn create_private_dir(path: &Path) -> Result<(), GenesisError> {
    create_dir(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(|source| {
            GenesisError::Write {
                path: path.display().to_string(),
                source,
            }
        })?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), GenesisError> {
    fs::write(path, bytes).map_err(|source| GenesisError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// Writes a secret with mode 0600 from creation (never world-readable, even briefly).
fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), GenesisError> {
    let err = |source| GenesisError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)
}
