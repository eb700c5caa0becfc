//! The README's telehealth flow, run as written: the block is taken from
//! README.md, each command run in one bash session against a devnet of real
//! `qward` processes, with the record ids passed along in shell variables
//! exactly as a person pasting the lines would.

use std::path::Path;
use std::time::Duration;

use qward_tests::{TestNet, qward_bin, wait_for, workspace_root};

/// The fenced `sh` block that follows `after` in the README, its lines
/// joined where they continue with a backslash.
fn readme_block(after: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let start = readme.find(after).expect("the README's flow section");
    let rest = &readme[start..];
    let open = rest.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let close = rest[open..].find("```").expect("the block's end");
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in rest[open..open + close].lines() {
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                if !current.trim().is_empty() {
                    commands.push(std::mem::take(&mut current));
                }
                current.clear();
            }
        }
    }
    commands
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_telehealth_flow_works_as_written() {
    let commands = readme_block("The telehealth flow on a running devnet");
    assert!(commands.len() >= 10, "{commands:#?}");

    let mut net = TestNet::create(4, 1, 1, 0, 200).expect("devnet");
    let names: Vec<String> = net.nodes.iter().map(|n| n.name.clone()).collect();
    for n in &names {
        net.node(n).start().unwrap();
    }
    for n in &names {
        let node = net.nodes.iter().find(|x| &x.name == n).unwrap();
        wait_for(
            &format!("{n} on the chain"),
            Duration::from_secs(90),
            || async {
                let st = node.status().await?;
                Ok((st.height >= 2 && st.peers >= 2).then_some(()))
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", node.log_tail(30)));
    }

    // Where a person stands: a folder with the clone's example records;
    // `qward` on the PATH through CARGO_TARGET_DIR, as the block sets it.
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        workspace_root().join("examples"),
        work.path().join("examples"),
    )
    .unwrap();
    let target = work.path().join("target");
    std::fs::create_dir_all(target.join("debug")).unwrap();
    std::os::unix::fs::symlink(qward_bin(), target.join("debug/qward")).unwrap();

    let mut script = String::new();
    for c in &commands {
        script.push_str(c);
        script.push_str("\necho \"::rc:: $?\"\n");
    }
    let root = net.root();
    let out = tokio::task::spawn_blocking({
        let work = work.path().to_path_buf();
        move || {
            std::process::Command::new("bash")
                .arg("-c")
                .arg(script)
                .current_dir(&work)
                .env("CARGO_TARGET_DIR", &target)
                .env("d", &root)
                .env_remove("QWARD_DATA_DIR")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let codes: Vec<i32> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("::rc:: "))
        .map(|c| c.trim().parse().unwrap())
        .collect();
    assert_eq!(codes.len(), commands.len(), "{stdout}\n{stderr}");
    for (c, code) in commands.iter().zip(&codes) {
        let expected = if c.contains("aborts (exit 2)") { 2 } else { 0 };
        assert_eq!(
            *code, expected,
            "`{c}` exited {code}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        );
    }
    let exported = std::fs::read(work.path().join("report.json")).unwrap();
    let original =
        std::fs::read(workspace_root().join("examples/records/report-chest-xray-ada.json"))
            .unwrap();
    assert_eq!(exported, original, "the report, byte for byte");
    assert!(
        stdout.contains("Ada"),
        "`inbox show` renders the forwarded record for a person:\n{stdout}"
    );
    check_no_placeholder(&commands, Path::new("README.md"));
}

/// Every command is runnable as pasted: no RECORD-style placeholders.
fn check_no_placeholder(commands: &[String], readme: &Path) {
    for c in commands {
        let code = c.split('#').next().unwrap_or("");
        assert!(
            !code
                .split_whitespace()
                .any(|w| w.len() > 2 && w.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_')),
            "{}: `{c}` has a placeholder",
            readme.display()
        );
    }
}
