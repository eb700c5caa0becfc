//! The data key on disk and its passphrase: `keys/data.key` holds the node's
//! data-encryption key sealed under an Argon2id key from a passphrase
//! (`qward_core::vault`); the passphrase comes from `--passphrase-file` (or
//! `QWARD_PASSPHRASE_FILE`), `QWARD_PASSPHRASE`, config.toml's
//! `passphrase_file`, or the terminal, in that order. Changing it replaces
//! the file by a rename, so an interrupted change leaves the old file or the
//! new one, never neither. The data directory's modes are checked here too.

use std::fs;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use qward_core::vault::{DataKey, KdfParams, Passphrase, SealedDataKey, VaultError};

use crate::config::Config;
use crate::datadir::DataDir;

/// Where a passphrase may come from, besides config.toml and the terminal.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PassphraseArgs {
    /// A file holding the passphrase of the node's data key (mode 0600).
    /// Without it: QWARD_PASSPHRASE, config.toml's passphrase_file, or a prompt.
    #[arg(long, env = "QWARD_PASSPHRASE_FILE", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// The environment variable that may hold the passphrase itself.
pub const PASSPHRASE_ENV: &str = "QWARD_PASSPHRASE";
/// The environment variable that may hold a new passphrase (`passphrase change`).
pub const NEW_PASSPHRASE_ENV: &str = "QWARD_NEW_PASSPHRASE";

const NO_PASSPHRASE: &str = "no passphrase for the node's data key: run in a terminal to be asked, or give --passphrase-file FILE, QWARD_PASSPHRASE, or passphrase_file in config.toml (see docs/security.md)";

/// Reads a passphrase file: refuses one that others can read, takes the
/// first line.
pub fn read_passphrase_file(path: &Path) -> anyhow::Result<String> {
    let meta = fs::metadata(path)
        .with_context(|| format!("cannot read the passphrase file {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "the passphrase file {} is readable by other users; run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    if meta.len() > qward_core::vault::MAX_PASSPHRASE_BYTES as u64 + 2 {
        bail!(
            "the passphrase file {} is longer than a passphrase may be",
            path.display()
        );
    }
    let text = zeroize::Zeroizing::new(
        fs::read_to_string(path)
            .with_context(|| format!("cannot read the passphrase file {}", path.display()))?,
    );
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// Asks on the terminal (no echo).
fn prompt(question: &str) -> anyhow::Result<String> {
    rpassword::prompt_password(question).context("cannot read a passphrase from the terminal")
}

/// The passphrase that opens `dir`'s data key, from the first source given.
pub fn passphrase(
    args: &PassphraseArgs,
    dir: &DataDir,
    config: Option<&Config>,
) -> anyhow::Result<Passphrase> {
    let text = if let Some(file) = &args.passphrase_file {
        read_passphrase_file(file)?
    } else if let Ok(text) = std::env::var(PASSPHRASE_ENV) {
        text
    } else if let Some(file) = config.and_then(|c| c.passphrase_file.as_deref()) {
        read_passphrase_file(&dir.root().join(file))?
    } else if std::io::stdin().is_terminal() {
        prompt(&format!(
            "passphrase of {}'s data key: ",
            dir.root().display()
        ))?
    } else {
        bail!("{NO_PASSPHRASE}");
    };
    Ok(Passphrase::new(text)?)
}

/// A new passphrase: from `file`, else `env`, else asked twice on the terminal.
pub fn new_passphrase(file: Option<&Path>, env: &str) -> anyhow::Result<Passphrase> {
    let text = if let Some(file) = file {
        read_passphrase_file(file)?
    } else if let Ok(text) = std::env::var(env) {
        text
    } else if std::io::stdin().is_terminal() {
        let first = prompt("new passphrase (at least 10 characters): ")?;
        let again = zeroize::Zeroizing::new(prompt("the same passphrase again: ")?);
        if first != *again {
            bail!("the two passphrases differ; nothing was changed");
        }
        first
    } else {
        bail!("no new passphrase: run in a terminal to be asked, or give a file, or set {env}");
    };
    Passphrase::new_for_sealing(text).map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))
}

/// Creates `keys/data.key` for a new data key under `passphrase`.
pub fn create<R: rand_core::CryptoRng + ?Sized>(
    dir: &DataDir,
    passphrase: &Passphrase,
    rng: &mut R,
) -> anyhow::Result<DataKey> {
    let key = DataKey::random(rng);
    let sealed = key.seal(passphrase, KdfParams::RECOMMENDED, rng)?;
    crate::datadir::write_secret_file(&dir.data_key_file(), &sealed.to_bytes())?;
    Ok(key)
}

fn load_sealed(dir: &DataDir) -> anyhow::Result<SealedDataKey> {
    let path = dir.data_key_file();
    let bytes = fs::read(&path).with_context(|| {
        format!(
            "cannot read {} (the node's sealed data key; without it no record or key in db/ can be opened)",
            path.display()
        )
    })?;
    SealedDataKey::from_bytes(&bytes).with_context(|| format!("{}", path.display()))
}

/// Opens `dir`'s data key with `passphrase`.
pub fn unlock(dir: &DataDir, passphrase: &Passphrase) -> anyhow::Result<DataKey> {
    let sealed = load_sealed(dir)?;
    sealed.open(passphrase).map_err(|e| match e {
        VaultError::WrongPassphrase => anyhow::anyhow!(
            "wrong passphrase for {}: it does not open the data key (a lost passphrase cannot be recovered; see docs/security.md)",
            dir.root().display()
        ),
        other => other.into(),
    })
}

/// Seals the same data key under `new`: the file is written beside the old
/// one, synced, and renamed over it (then the directory is synced), so a
/// crash at any point leaves a file that the old or the new passphrase opens.
pub fn change<R: rand_core::CryptoRng + ?Sized>(
    dir: &DataDir,
    old: &Passphrase,
    new: &Passphrase,
    rng: &mut R,
) -> anyhow::Result<()> {
    let sealed = load_sealed(dir)?;
    let key = unlock(dir, old)?;
    let resealed = key.seal(new, sealed.params, rng)?;
    let path = dir.data_key_file();
    let staging = path.with_extension("key.new");
    let _ = fs::remove_file(&staging);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    f.write_all(&resealed.to_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", staging.display()))?;
    drop(f);
    fs::rename(&staging, &path).with_context(|| format!("cannot replace {}", path.display()))?;
    fs::File::open(dir.keys_dir())
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.keys_dir().display()))?;
    Ok(())
}

/// Refuses a data directory that other users can enter, or whose keys or
/// database others can read, with the command that fixes it.
pub fn check_modes(dir: &DataDir) -> anyhow::Result<()> {
    let root = dir.root();
    let fix = format!("run `chmod -R go-rwx {}`", root.display());
    let open_to_others = |p: &Path| -> anyhow::Result<bool> {
        let meta =
            fs::symlink_metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        Ok(meta.permissions().mode() & 0o077 != 0)
    };
    if open_to_others(root)? {
        bail!(
            "the data directory {} is open to other users (it must be 0700); {fix}",
            root.display()
        );
    }
    for sub in [dir.keys_dir(), dir.db_dir()] {
        if !sub.exists() {
            continue;
        }
        let mut paths = vec![sub.clone()];
        for entry in fs::read_dir(&sub).with_context(|| format!("cannot list {}", sub.display()))? {
            paths.push(entry?.path());
        }
        for p in paths {
            if open_to_others(&p)? {
                bail!("{} is open to other users; {fix}", p.display());
            }
        }
    }
    Ok(())
}

/// Makes every file and directory this process creates private (0600 and
/// 0700), RocksDB's included.
pub fn private_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.into()).unwrap()
    }

    fn private_dir() -> (tempfile::TempDir, DataDir) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("node");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
        fs::create_dir(root.join("keys")).unwrap();
        fs::set_permissions(root.join("keys"), fs::Permissions::from_mode(0o700)).unwrap();
        (t, DataDir::new(root))
    }

    #[test]
    fn a_changed_passphrase_opens_the_same_key_and_the_old_one_no_longer_does() {
        let (_t, dir) = private_dir();
        let mut rng = rand::rng();
        let key = create(&dir, &pass("first passphrase"), &mut rng).unwrap();
        let mode = fs::metadata(dir.data_key_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        change(
            &dir,
            &pass("first passphrase"),
            &pass("second passphrase"),
            &mut rng,
        )
        .unwrap();
        let again = unlock(&dir, &pass("second passphrase")).unwrap();
        assert_eq!(*again.to_bytes(), *key.to_bytes());
        let err = unlock(&dir, &pass("first passphrase")).unwrap_err();
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
        // A wrong old passphrase changes nothing.
        let err = change(
            &dir,
            &pass("not it at all"),
            &pass("third passphrase"),
            &mut rng,
        )
        .unwrap_err();
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
        assert!(unlock(&dir, &pass("second passphrase")).is_ok());
        assert!(!dir.data_key_file().with_extension("key.new").exists());
    }

    #[test]
    fn a_passphrase_file_others_can_read_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("pass");
        fs::write(&f, "a passphrase\nignored").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_passphrase_file(&f).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_passphrase_file(&f).unwrap(), "a passphrase");
    }

    #[test]
    fn open_modes_are_refused_with_the_fix() {
        let (_t, dir) = private_dir();
        fs::write(dir.keys_dir().join("identity.key"), b"x").unwrap();
        fs::set_permissions(
            dir.keys_dir().join("identity.key"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        check_modes(&dir).unwrap();
        fs::set_permissions(
            dir.keys_dir().join("identity.key"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let err = check_modes(&dir).unwrap_err().to_string();
        assert!(
            err.contains("identity.key") && err.contains("chmod -R go-rwx"),
            "{err}"
        );
        fs::set_permissions(
            dir.keys_dir().join("identity.key"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        fs::set_permissions(dir.root(), fs::Permissions::from_mode(0o755)).unwrap();
        let err = check_modes(&dir).unwrap_err().to_string();
        assert!(err.contains("must be 0700"), "{err}");
    }
}
