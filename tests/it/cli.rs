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

/// Every command that prints a result, run with `--json` the way it fails
/// (no data directory, no node, a bad argument): one JSON object on stdout
/// with a stable code and the exit status it exits with.
#[test]
fn every_command_fails_with_one_json_error_and_its_exit_code() {
    use clap::CommandFactory;
    // Commands that print no result (run until stopped, or write a script).
    const NO_JSON: [&str; 5] = ["run", "tui", "kme serve", "completions", "man"];
    // Offline commands made to fail by an argument out of range (with the
    // placeholders alone some would run: a devnet, a benchmark).
    let overrides: [(&str, &[&str]); 9] = [
        ("devnet", &["--hospitals", "0"]),
        ("devnet down", &["--dir", "no/such/devnet"]),
        ("genesis devnet", &["--out", "net", "--block-time-ms", "1"]),
        ("qkd simulate", &["--qubits", "0"]),
        ("qkd bench", &["--trials", "0"]),
        (
            "qkd sweep",
            &[
                "--over",
                "distance",
                "--out",
                "figs",
                "--max-distance-km",
                "-1",
            ],
        ),
        ("qkd paper", &["--out", "figs", "--trials", "0"]),
        ("kme certs", &["--out", "pki", "--sae", "not an SAE id"]),
        ("version", &[]),
    ];
    fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, Vec<String>)>) {
        let own: Vec<&clap::Arg> = cmd
            .get_arguments()
            .filter(|a| !a.is_global_set() && a.get_id() != "help" && a.get_id() != "version")
            .collect();
        if !cmd.has_subcommands() || !own.is_empty() {
            // Placeholders for what clap requires, so the command itself runs.
            let mut args = Vec::new();
            for a in own.iter().filter(|a| a.is_required_set()) {
                match a.get_long() {
                    Some(long) => args.extend([format!("--{long}"), "x".into()]),
                    None => args.push("x".into()),
                }
            }
            out.push((path.clone(), args));
        }
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            walk(sub, p, out);
        }
    }
    let mut commands = Vec::new();
    walk(&qward_node::cli::Cli::command(), Vec::new(), &mut commands);
    let work = tempfile::tempdir().expect("tempdir");
    let data_dir = work.path().join("no-node");
    let mut checked = 0;
    for (path, placeholders) in commands {
        let name = path.join(" ");
        if NO_JSON.contains(&name.as_str()) {
            continue;
        }
        let mut args: Vec<String> = vec!["--data-dir".into(), path_str(&data_dir)];
        args.extend(path.iter().cloned());
        match overrides.iter().find(|(n, _)| *n == name) {
            Some((_, extra)) => args.extend(extra.iter().map(|s| s.to_string())),
            None => args.extend(placeholders),
        }
        args.push("--json".into());
        let out = Command::new(qward_bin())
            .args(&args)
            .current_dir(work.path())
            .env_remove("QWARD_DATA_DIR")
            .env("HOME", work.path())
            .stdin(Stdio::null())
            .output()
            .expect("qward runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let code = out.status.code().expect("an exit code");
        if name == "version" {
            assert_eq!(code, 0, "{name}");
            let v: serde_json::Value = serde_json::from_str(&stdout).expect("version JSON");
            assert!(v["commit"].is_string(), "{stdout}");
            continue;
        }
        assert_ne!(code, 0, "qward {} succeeded: {stdout}", args.join(" "));
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "qward {}: not one JSON object ({e}): {stdout}",
                args.join(" ")
            )
        });
        let kind = v["error"]["code"].as_str().unwrap_or_default();
        assert!(
            ["error", "refused", "unreachable", "timeout", "usage"].contains(&kind),
            "qward {}: {v}",
            args.join(" ")
        );
        assert_eq!(v["error"]["exit"], code, "qward {}: {v}", args.join(" "));
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        checked += 1;
    }
    assert!(checked >= 45, "only {checked} commands checked");
}
