//! Helpers for qward's multi-node integration tests: finding the `qward`
//! binary and the workspace, and running processes that are always cleaned up.

use std::path::PathBuf;

/// The workspace root (the folder holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// The `qward` binary built alongside these tests: `QWARD_BIN` if set, else
/// next to the test executable in the target directory.
pub fn qward_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("QWARD_BIN") {
        let p = PathBuf::from(p);
        if p.exists() {
            return p;
        }
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/it-<hash>  ->  target/<profile>/qward
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    profile_dir.join("qward")
}
