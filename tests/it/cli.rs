//! The command line as a shell uses it.

use std::process::{Command, Stdio};

use qward_tests::{TestNet, path_str, qward_bin};

/// Runs `qward args` with its standard output closed before it writes (as
/// after `qward ... | head -0`); answers its exit status and standard error.
fn with_stdout_closed(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(qward_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("qward starts");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("qward ends");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn printing_commands_cut_short_by_a_closed_pipe_exit_quietly() {
    let net = TestNet::create(4, 0, 1, 0, 200).expect("devnet");
    let dir = path_str(&net.root().join("hospital-1"));
    let genesis = path_str(&net.root().join("hospital-1").join("genesis.toml"));
    let commands: Vec<Vec<&str>> = vec![
        vec!["qkd", "simulate", "--rounds", "3", "--qubits", "20000"],
        vec!["genesis", "inspect", &genesis],
        vec!["--data-dir", &dir, "chain", "show"],
        vec!["--data-dir", &dir, "chain", "show", "--json"],
        vec!["--data-dir", &dir, "chain", "show", "validators"],
        vec!["--data-dir", &dir, "chain", "show", "head", "--json"],
        vec!["--data-dir", &dir, "chain", "verify"],
        vec!["--data-dir", &dir, "chain", "verify", "--json"],
    ];
    for args in commands {
        // Each prints when its output is read (so the closed pipe matters).
        let normal = Command::new(qward_bin())
            .args(&args)
            .output()
            .expect("qward runs");
        assert!(
            normal.status.success() && !normal.stdout.is_empty(),
            "qward {args:?}: {:?} {}",
            normal.status,
            String::from_utf8_lossy(&normal.stderr)
        );
        let (code, stderr) = with_stdout_closed(&args);
        assert!(
            !stderr.contains("panicked"),
            "qward {args:?} panicked: {stderr}"
        );
        // Stopped by the closed pipe, with the status a shell reports for
        // SIGPIPE.
        assert_eq!(code, Some(141), "qward {args:?}: {stderr}");
    }
}

#[test]
fn an_error_names_each_cause_once() {
    let out = Command::new(qward_bin())
        .args(["--data-dir", "/nonexistent/qward", "status"])
        .output()
        .expect("qward runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("/nonexistent/qward/config.toml"),
        "{stderr}"
    );
}
