//! The data directory: its layout (`keys/`, `db/`, `config.toml`, `api.cookie`,
//! `logs/`, `genesis.toml`), the default location, the identity key file, and
//! `init`, which builds a new directory all at once or not at all.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use qward_core::identity::{Identity, Role};

use crate::config::Config;
use crate::db::{OpenError, RocksStore};

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// `--data-dir`, else `QWARD_DATA_DIR` (clap fills it), else the platform
    /// data directory (`~/.local/share/qward` on Linux).
    pub fn resolve(flag: Option<PathBuf>) -> anyhow::Result<Self> {
        match flag {
            Some(p) => Ok(DataDir::new(p)),
            None => {
                let base = dirs::data_dir().context(
                    "cannot find the platform data directory; pass --data-dir or set QWARD_DATA_DIR",
                )?;
                Ok(DataDir::new(base.join("qward")))
            }
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }
    pub fn identity_file(&self) -> PathBuf {
        self.keys_dir().join("identity.key")
    }
    /// The node's data-encryption key, sealed under its passphrase.
    pub fn data_key_file(&self) -> PathBuf {
        self.keys_dir().join("data.key")
    }
    pub fn db_dir(&self) -> PathBuf {
        self.root.join("db")
    }
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn cookie_file(&self) -> PathBuf {
        self.root.join("api.cookie")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn genesis_file(&self) -> PathBuf {
        self.root.join(qward_genesis::GENESIS_FILE)
    }
    pub fn contacts_file(&self) -> PathBuf {
        self.root.join("contacts.toml")
    }

    /// Reads the identity key (32 secret bytes). Refuses a key file that
    /// others can read.
    pub fn load_identity(&self) -> anyhow::Result<Identity> {
        let path = self.identity_file();
        let meta = fs::metadata(&path).with_context(|| {
            format!("no identity at {} (run `qward init` first)", path.display())
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "{} is readable by other users; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
        let bytes = zeroize::Zeroizing::new(
            fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
        );
        Identity::from_secret_bytes(&bytes)
            .with_context(|| format!("{} is not a qward identity key", path.display()))
    }

    /// Reads `config.toml`.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&self.config_file())?)
    }
}

/// Writes `bytes` to a new file with mode 0600 and syncs it.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("cannot sync {}", path.display()))?;
    Ok(())
}

/// What `init` needs.
#[derive(Debug)]
pub struct InitOptions<'a> {
    pub role: Role,
    pub name: &'a str,
    pub genesis: Option<&'a Path>,
    pub force: bool,
    /// Whether the parent of the data directory may be created (true for the
    /// platform default, false for a path the user named).
    pub create_parents: bool,
    /// The new data key, sealed under its passphrase (`keys/data.key`).
    pub sealed_data_key: &'a qward_core::vault::SealedDataKey,
}

/// What `init` made.
#[derive(Debug)]
pub struct InitOutcome {
    pub identity: Identity,
    pub backup: Option<PathBuf>,
}

/// Creates a data directory. Everything is built in a staging directory next
/// to the target and renamed into place at the end, so a failure leaves no
/// half-written directory; an existing identity is kept unless `force`, and
/// then moved aside to a backup, never deleted.
pub fn init<R: rand_core::CryptoRng + ?Sized>(
    dir: &DataDir,
    opts: &InitOptions<'_>,
    rng: &mut R,
) -> anyhow::Result<InitOutcome> {
    let root = dir.root();
    if opts.name.trim().is_empty() || opts.name.len() > 64 {
        bail!("--name must be 1 to 64 characters");
    }
    // Read and check the genesis first: a bad path or file must fail before
    // anything is written.
    let genesis = match opts.genesis {
        Some(path) => {
            let text = fs::read_to_string(path)
                .with_context(|| format!("cannot read genesis file {}", path.display()))?;
            let genesis = qward_genesis::parse_genesis(&text)
                .with_context(|| format!("{} is not a valid genesis", path.display()))?;
            Some((text, genesis))
        }
        None => None,
    };
    let parent = match root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        if opts.create_parents {
            fs::create_dir_all(&parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        } else {
            bail!(
                "parent directory {} does not exist; create it first or choose another --data-dir",
                parent.display()
            );
        }
    }
    check_existing(dir, opts.force)?;

    let file_name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "qward".into());
    let staging = parent.join(format!(".{file_name}.init-{}", std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot clear {}", staging.display()))?;
    }
    fs::create_dir(&staging).map_err(|e| {
        anyhow::anyhow!(
            "cannot write to {}: {e}; choose a writable --data-dir",
            parent.display()
        )
    })?;
    fs::set_permissions(&staging, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", staging.display()))?;
    let built = build_into(&DataDir::new(&staging), opts, genesis.as_ref(), rng);
    let identity = match built {
        Ok(id) => id,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };

    let mut backup = None;
    if root.exists() {
        if dir_is_empty(root) {
            fs::remove_dir(root).with_context(|| format!("cannot replace {}", root.display()))?;
        } else {
            let aside = parent.join(format!("{file_name}.bak-{}", unix_seconds()));
            fs::rename(root, &aside)
                .with_context(|| format!("cannot move {} aside", root.display()))?;
            backup = Some(aside);
        }
    }
    if let Err(e) = fs::rename(&staging, root) {
        let _ = fs::remove_dir_all(&staging);
        if let Some(aside) = &backup {
            let _ = fs::rename(aside, root);
        }
        return Err(anyhow::anyhow!(
            "cannot move the new data directory into {}: {e}",
            root.display()
        ));
    }
    Ok(InitOutcome { identity, backup })
}

fn check_existing(dir: &DataDir, force: bool) -> anyhow::Result<()> {
    let root = dir.root();
    if !root.exists() {
        return Ok(());
    }
    if !root.is_dir() {
        bail!("{} exists and is not a directory", root.display());
    }
    if dir.db_dir().join("CURRENT").exists() {
        match RocksStore::open(&dir.db_dir()) {
            Err(e @ OpenError::NewerSchema { .. }) => bail!("{e}"),
            Err(e) if !force => bail!(
                "{} holds a database that cannot be opened: {e}",
                root.display()
            ),
            _ => {}
        }
    }
    if dir.identity_file().exists() && !force {
        bail!(
            "{} already holds a qward identity; refusing to overwrite it (use --force to move it aside to a backup)",
            root.display()
        );
    }
    if !dir_is_empty(root) && !force && !dir.identity_file().exists() {
        bail!(
            "{} is not empty and is not a qward data directory; choose another --data-dir",
            root.display()
        );
    }
    Ok(())
}

fn build_into<R: rand_core::CryptoRng + ?Sized>(
    dir: &DataDir,
    opts: &InitOptions<'_>,
    genesis: Option<&(String, qward_core::chain::Genesis)>,
    rng: &mut R,
) -> anyhow::Result<Identity> {
    fs::create_dir(dir.keys_dir()).context("cannot create keys/")?;
    fs::set_permissions(dir.keys_dir(), fs::Permissions::from_mode(0o700))
        .context("cannot restrict keys/")?;
    fs::create_dir(dir.logs_dir()).context("cannot create logs/")?;
    let identity = Identity::generate(rng);
    write_secret_file(&dir.identity_file(), identity.secret_bytes().as_slice())?;
    write_secret_file(&dir.data_key_file(), &opts.sealed_data_key.to_bytes())?;
    let config = Config::new(opts.name, opts.role);
    fs::write(dir.config_file(), config.to_documented_toml())
        .context("cannot write config.toml")?;
    let store = RocksStore::create(&dir.db_dir()).context("cannot create the database")?;
    if let Some((text, genesis)) = genesis {
        fs::write(dir.genesis_file(), text).context("cannot write genesis.toml")?;
        qward_genesis::init_chain(&store, genesis).context("cannot initialise the chain")?;
    }
    Ok(identity)
}

fn dir_is_empty(path: &Path) -> bool {
    fs::read_dir(path)
        .map(|mut it| it.next().is_none())
        .unwrap_or(false)
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
