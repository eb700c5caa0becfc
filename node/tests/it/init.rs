//! `qward init`: the data directory it makes and every way it refuses.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use qward_node::datadir::DataDir;
use qward_node::db::RocksStore;

use crate::{qward, stderr, stdout};

fn assert_one_line_error(o: &std::process::Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "exit code; stderr: {}", stderr(o));
    let err = stderr(o);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn init_creates_identity_config_and_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let o = qward(&dir, &["init", "--role", "hospital", "--name", "st-marys"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let peer_line = out
        .lines()
        .find(|l| l.starts_with("peer id "))
        .expect("peer id printed");
    assert!(
        peer_line.len() > "peer id 12D3Koo".len() && peer_line.contains("12D3Koo"),
        "{out}"
    );

    let dd = DataDir::new(&dir);
    let mode = fs::metadata(dd.identity_file())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let identity = dd.load_identity().unwrap();
    // The secret is never printed.
    let secret_hex = hex::encode(identity.secret_bytes().as_slice());
    assert!(!out.contains(&secret_hex) && !stderr(&o).contains(&secret_hex));
    assert!(out.contains(&identity.account().to_hex()));

    let config = dd.load_config().unwrap();
    assert_eq!(config.name, "st-marys");
    assert_eq!(config.role, qward_core::identity::Role::Hospital);
    let text = fs::read_to_string(dd.config_file()).unwrap();
    assert!(text.contains("# ") && text.contains("api_port") && text.contains("metrics_bind"));

    // The data directory is the owner's alone, and its data key opens with
    // the passphrase only.
    let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let pass = |p: &str| qward_core::vault::Passphrase::new(p.into()).unwrap();
    assert!(qward_node::vault::unlock(&dd, &pass(crate::PASSPHRASE)).is_ok());
    let err = qward_node::vault::unlock(&dd, &pass("another passphrase")).unwrap_err();
    assert!(err.to_string().contains("wrong passphrase"), "{err}");

    let store = RocksStore::open(&dd.db_dir()).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        Some(qward_node::db::SCHEMA_VERSION)
    );
    // No staging directory is left behind.
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn init_twice_refuses_then_force_keeps_a_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    assert!(
        qward(&dir, &["init", "--role", "doctor", "--name", "a"])
            .status
            .success()
    );
    let first = DataDir::new(&dir).load_identity().unwrap().account();

    let again = qward(&dir, &["init", "--role", "doctor", "--name", "a"]);
    assert_one_line_error(&again, "--force");
    assert_eq!(
        DataDir::new(&dir).load_identity().unwrap().account(),
        first,
        "identity untouched"
    );

    let forced = qward(
        &dir,
        &["init", "--role", "doctor", "--name", "a", "--force"],
    );
    assert!(forced.status.success(), "{}", stderr(&forced));
    let second = DataDir::new(&dir).load_identity().unwrap().account();
    assert_ne!(first, second);
    let backup = fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("node.bak-"))
        .expect("old directory kept as a backup");
    assert_eq!(
        DataDir::new(backup.path())
            .load_identity()
            .unwrap()
            .account(),
        first
    );
}

#[test]
fn init_with_missing_parent_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("no/such/parent/node");
    let o = qward(&dir, &["init", "--role", "patient", "--name", "p"]);
    assert_one_line_error(&o, "does not exist");
    assert!(!tmp.path().join("no").exists());
}

#[test]
fn init_with_bad_genesis_path_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let o = qward(
        &dir,
        &[
            "init",
            "--role",
            "auditor",
            "--name",
            "x",
            "--genesis",
            "/no/such/genesis.toml",
        ],
    );
    assert_one_line_error(&o, "genesis");
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn init_in_read_only_directory_fails_cleanly() {
    // Root ignores permission bits, so as root use sysfs, which refuses
    // new directories to everyone; otherwise a directory with mode 0555.
    let tmp = tempfile::tempdir().unwrap();
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let dir = if is_root {
        std::path::PathBuf::from("/sys/qward-test-node")
    } else {
        let ro = tmp.path().join("ro");
        fs::create_dir(&ro).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        ro.join("node")
    };
    let o = qward(&dir, &["init", "--role", "patient", "--name", "p"]);
    assert_one_line_error(&o, "cannot write");
    assert!(!dir.exists());
}

#[test]
fn init_refuses_a_database_from_a_newer_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    assert!(
        qward(&dir, &["init", "--role", "hospital", "--name", "h"])
            .status
            .success()
    );
    {
        let store = RocksStore::open(&DataDir::new(&dir).db_dir()).unwrap();
        qward_core::storage::Store::put(
            &store,
            qward_core::storage::Column::Meta,
            b"schema_version",
            &(qward_node::db::SCHEMA_VERSION + 1).to_le_bytes(),
        )
        .unwrap();
    }
    let o = qward(
        &dir,
        &["init", "--role", "hospital", "--name", "h", "--force"],
    );
    assert_one_line_error(&o, "newer");
    assert!(DataDir::new(&dir).identity_file().exists());
}

#[test]
fn bad_role_and_version_and_help() {
    let tmp = tempfile::tempdir().unwrap();
    let o = qward(tmp.path(), &["init", "--role", "nurse", "--name", "x"]);
    assert_eq!(o.status.code(), Some(2), "clap usage error");
    assert!(stderr(&o).contains("unknown role 'nurse'"));
    let v = qward(tmp.path(), &["--version"]);
    assert!(stdout(&v).starts_with("qward "));
    let h = qward(tmp.path(), &["--help"]);
    for word in ["init", "--data-dir", "--log-level", "--log-format"] {
        assert!(stdout(&h).contains(word), "help lacks {word}");
    }
}

#[test]
fn init_without_a_passphrase_and_no_terminal_says_how_to_give_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_qward"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["init", "--role", "patient", "--name", "p"])
        .env_remove("QWARD_PASSPHRASE")
        .env_remove("QWARD_PASSPHRASE_FILE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_one_line_error(&o, "QWARD_PASSPHRASE");
    assert!(!dir.exists(), "nothing written");
    // Too short a passphrase is refused before anything is written, too.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_qward"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["init", "--role", "patient", "--name", "p"])
        .env("QWARD_PASSPHRASE", "short")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_one_line_error(&o, "shorter than 10 characters");
    assert!(!dir.exists(), "nothing written");
}

#[test]
fn a_node_refuses_to_start_on_a_directory_others_can_read_or_with_a_wrong_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let o = qward(&dir, &["init", "--role", "patient", "--name", "p"]);
    assert!(o.status.success(), "{}", stderr(&o));
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let o = qward(&dir, &["run"]);
    assert_one_line_error(&o, "chmod -R go-rwx");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_qward"))
        .arg("--data-dir")
        .arg(&dir)
        .arg("run")
        .env("QWARD_PASSPHRASE", "not the passphrase")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_one_line_error(&o, "wrong passphrase");
}
