//! Health-data protection on real `qward` processes: break-glass emergency
//! access (declared on the chain first, shown to the patient, ending on its
//! own), erasure (the record cannot be opened, the fact is on the chain,
//! `chain verify` passes), the access log (every access named, a changed
//! entry found by `audit verify`), users and roles on the API (a read-only
//! user cannot send or erase; wrong, expired and removed credentials are
//! refused and logged), and `passphrase change` killed at any moment.

use std::time::{Duration, Instant};

use qward_core::api::{
    AccessEntryInfo, AuditVerifyReport, BlockSummary, DeliveryState, EmergencyInfo, ErasureInfo,
    MessageInfo,
};
use qward_core::storage::{Column, Store, WriteBatch};
use qward_node::api::QwardApiClient;
use qward_tests::{TestNet, path_str, qward, qward_ok, wait_for, workspace_root};

fn cli(net: &TestNet, node: &str, args: &[&str]) -> String {
    cli_env(net, node, args, &[])
}

fn cli_env(net: &TestNet, node: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = cli_out(net, node, args, env);
    if !out.status.success() {
        let n = net.nodes.iter().find(|n| n.name == node).expect("node");
        panic!(
            "qward {} failed: {}\n--- {node} log ---\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            n.log_tail(30)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cli_out(net: &TestNet, node: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let n = net.nodes.iter().find(|n| n.name == node).expect("node");
    std::process::Command::new(qward_tests::qward_bin())
        .arg("--data-dir")
        .arg(&n.dir)
        .args(args)
        .env_remove("QWARD_DATA_DIR")
        .env_remove("QWARD_CREDENTIAL")
        .env_remove("QWARD_CREDENTIAL_FILE")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("qward runs")
}

fn json_of<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
}

async fn start_all(net: &mut TestNet, names: &[&str]) {
    for n in names {
        net.node(n).start().expect("start");
    }
    for n in names {
        wait_for(
            &format!("{n} to be up"),
            Duration::from_secs(90),
            || async {
                let st = net
                    .nodes
                    .iter()
                    .find(|x| x.name == *n)
                    .unwrap()
                    .status()
                    .await?;
                Ok((st.height >= 2 && (st.peers >= 1 || names.len() == 1)).then_some(()))
            },
        )
        .await
        .expect("up");
    }
}

/// Height of the first block holding a transaction of `kind` whose detail
/// contains `detail`.
async fn height_of(net: &TestNet, node: &str, kind: &str, detail: &str) -> Option<u64> {
    let n = net.nodes.iter().find(|n| n.name == node).unwrap();
    let client = n.client(Duration::from_secs(10)).await.ok()?;
    let blocks: Vec<BlockSummary> = client.chain_blocks(None, Some(500)).await.ok()?;
    blocks
        .iter()
        .filter(|b| {
            b.txs
                .iter()
                .any(|t| t.kind == kind && t.detail.contains(detail))
        })
        .map(|b| b.height)
        .min()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_erasure_and_the_access_log_end_to_end() {
    let mut net = TestNet::create(1, 1, 1, 1, 200).expect("devnet");
    start_all(
        &mut net,
        &["hospital-1", "doctor-1", "patient-1", "auditor-1"],
    )
    .await;
    let phr = path_str(&workspace_root().join("examples/records/phr-ada-quill.json"));
    let sent: MessageInfo = json_of(&cli(
        &net,
        "patient-1",
        &[
            "send",
            "--to",
            "hospital-1",
            "--kind",
            "phr",
            "--file",
            &phr,
            "--wait",
            "--json",
        ],
    ));
    assert_eq!(sent.state, DeliveryState::Anchored, "{sent:?}");
    let record = sent.record_id.clone();
    wait_for(
        "the hospital to hold the PHR",
        Duration::from_secs(30),
        || async {
            let inbox: Vec<MessageInfo> = json_of(&cli(&net, "hospital-1", &["inbox", "--json"]));
            Ok(inbox.iter().any(|m| m.record_id == record).then_some(()))
        },
    )
    .await
    .unwrap();

    // No consent: the hospital may not forward to the doctor.
    let forward = |net: &TestNet| {
        cli_out(
            net,
            "hospital-1",
            &["forward", &record, "--to", "doctor-1", "--wait", "--json"],
            &[],
        )
    };
    let refused = forward(&net);
    assert!(!refused.status.success());
    // With --json the refusal is one JSON object on stdout.
    let error: serde_json::Value = serde_json::from_slice(&refused.stdout).expect("a JSON error");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no emergency declared")),
        "{error}"
    );
    assert_eq!(
        error["error"]["exit"],
        refused.status.code().unwrap_or(-1),
        "{error}"
    );

    // The doctor breaks the glass for 25 s (the API takes milliseconds; the
    // command line whole minutes).
    let doctor = net.nodes.iter().find(|n| n.name == "doctor-1").unwrap();
    let client = doctor.client(Duration::from_secs(10)).await.unwrap();
    client
        .emergency_declare("patient-1".into(), "unconscious in A&E".into(), 25_000)
        .await
        .expect("declared");
    let declared_at = wait_for(
        "the declaration to be final",
        Duration::from_secs(30),
        || async {
            Ok(height_of(
                &net,
                "hospital-1",
                "declare-emergency",
                "unconscious in A&E",
            )
            .await)
        },
    )
    .await
    .unwrap();
    // The patient's node shows it at once, and so does the auditor's list.
    wait_for("the patient to see it", Duration::from_secs(20), || async {
        let text = cli(&net, "patient-1", &["consent", "list"]);
        Ok((text.contains("emergency access") && text.contains("ACTIVE")).then_some(()))
    })
    .await
    .unwrap();
    let log = net.node("patient-1").log_tail(400);
    assert!(log.contains("EMERGENCY"), "the patient's node warns: {log}");
    let listed: Vec<EmergencyInfo> =
        json_of(&cli(&net, "auditor-1", &["emergency", "list", "--json"]));
    assert!(
        listed
            .iter()
            .any(|e| e.declarer_name.as_deref() == Some("doctor-1")
                && e.patient_name.as_deref() == Some("patient-1")
                && e.reason == "unconscious in A&E"),
        "{listed:?}"
    );

    // Access without consent works now, and lands after the declaration.
    let out = forward(&net);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fwd: MessageInfo = json_of(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(fwd.state, DeliveryState::Anchored, "{fwd:?}");
    let anchored_at = height_of(&net, "hospital-1", "anchor-record", "doctor-1")
        .await
        .unwrap();
    assert!(
        declared_at < anchored_at,
        "declaration {declared_at} before access {anchored_at}"
    );

    // It expires on its own: the same forward is refused again.
    let expires = listed[0].expires_at_ms;
    let wait_ms = expires.saturating_sub(qward_node::node::clock::now_ms()) + 500;
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    let refused = forward(&net);
    assert!(
        !refused.status.success(),
        "forwarded after the emergency ended"
    );
    let text = cli(&net, "patient-1", &["consent", "list"]);
    assert!(text.contains("expired"), "{text}");

    // Erasure at the patient's request: the request goes on the chain and
    // the hospital's node erases its copy.
    cli(
        &net,
        "patient-1",
        &[
            "records",
            "request-erasure",
            &record,
            "--holder",
            "hospital-1",
            "--wait",
        ],
    );
    wait_for(
        "the hospital to erase its copy",
        Duration::from_secs(30),
        || async {
            let inbox: Vec<MessageInfo> = json_of(&cli(&net, "hospital-1", &["inbox", "--json"]));
            Ok(inbox
                .iter()
                .find(|m| m.record_id == record && m.state == DeliveryState::Erased)
                .map(|_| ()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", net.nodes[0].log_tail(20)));
    let shown = cli_out(&net, "hospital-1", &["inbox", "show", &record], &[]);
    assert!(!shown.status.success());
    assert!(String::from_utf8_lossy(&shown.stderr).contains("erased"));
    // The hospital's forward to the doctor was the same health data: erased
    // with it.
    let outbox: Vec<MessageInfo> = json_of(&cli(&net, "hospital-1", &["outbox", "--json"]));
    assert_eq!(
        outbox
            .iter()
            .find(|m| m.record_id == fwd.record_id)
            .map(|m| m.state),
        Some(DeliveryState::Erased),
        "{outbox:?}"
    );
    let shown = cli_out(&net, "hospital-1", &["outbox", "show", &fwd.record_id], &[]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("erased"),
        "{shown:?}"
    );
    // A second erasure is refused with a reason.
    let again = cli_out(&net, "hospital-1", &["records", "erase", &record], &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already erased"));
    // The patient erases its own sent copy.
    let erased: ErasureInfo = json_of(&cli(
        &net,
        "patient-1",
        &["records", "erase", &record, "--json"],
    ));
    assert!(
        erased.sent && !erased.received && erased.txs.len() == 1,
        "{erased:?}"
    );
    let outbox: Vec<MessageInfo> = json_of(&cli(&net, "patient-1", &["outbox", "--json"]));
    assert_eq!(
        outbox
            .iter()
            .find(|m| m.record_id == record)
            .map(|m| m.state),
        Some(DeliveryState::Erased)
    );
    wait_for(
        "both erasures to be final",
        Duration::from_secs(30),
        || async {
            let n = net.nodes.iter().find(|n| n.name == "auditor-1").unwrap();
            let client = n.client(Duration::from_secs(10)).await?;
            let blocks: Vec<BlockSummary> = client.chain_blocks(None, Some(500)).await?;
            let facts = blocks
                .iter()
                .flat_map(|b| &b.txs)
                .filter(|t| t.kind == "erase-record")
                .count();
            Ok((facts >= 3).then_some(()))
        },
    )
    .await
    .unwrap();
    let report: serde_json::Value =
        json_of(&cli(&net, "auditor-1", &["chain", "verify", "--json"]));
    assert_eq!(report["ok"], true, "{report}");

    // The hospital's access log names each access, in order, and verifies.
    let log: Vec<AccessEntryInfo> = json_of(&cli(&net, "hospital-1", &["audit", "log", "--json"]));
    let actions: Vec<(&str, &str)> = log
        .iter()
        .map(|e| (e.user.as_str(), e.action.as_str()))
        .collect();
    for a in [("owner", "forward"), ("patient-request:patient-1", "erase")] {
        assert!(actions.contains(&a), "{a:?} missing from {actions:?}");
    }
    let ok: AuditVerifyReport = json_of(&cli(&net, "hospital-1", &["audit", "verify", "--json"]));
    assert!(ok.ok, "{ok:?}");

    // Change one entry in the database while the node is down: found.
    net.node("hospital-1").stop();
    let db = net.node("hospital-1").dir.join("db");
    {
        let store = qward_node::db::RocksStore::open(&db).expect("db");
        let key = [b"e".as_slice(), &0u64.to_be_bytes()].concat();
        let bytes = store.get(Column::Access, &key).unwrap().expect("entry 0");
        let mut entry = qward_core::access_log::AccessEntry::from_bytes(&bytes).unwrap();
        entry.user = "someone-else".into();
        let mut batch = WriteBatch::new();
        batch.put(Column::Access, key, entry.to_bytes());
        store.write(batch).unwrap();
    }
    // This process made RocksDB files with its own umask; the node would
    // refuse to start on them (rightly), so make them private as it would.
    for f in std::fs::read_dir(&db).unwrap().flatten() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    net.node("hospital-1").start().unwrap();
    let out = wait_for(
        "the hospital to answer again",
        Duration::from_secs(60),
        || async {
            let out = cli_out(&net, "hospital-1", &["audit", "verify", "--json"], &[]);
            Ok((out.status.code() == Some(2)).then_some(out))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", net.nodes[0].log_tail(20)));
    let broken: AuditVerifyReport = json_of(&String::from_utf8_lossy(&out.stdout));
    assert!(!broken.ok && broken.failed_seq == Some(1), "{broken:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_roles_idle_logoff_and_refused_credentials() {
    let mut net = TestNet::create(1, 0, 0, 0, 200).expect("devnet");
    let dir = net.node("hospital-1").dir.clone();
    let dd = qward_node::datadir::DataDir::new(&dir);
    let mut config = dd.load_config().unwrap();
    config.api_idle_logoff_s = 3;
    std::fs::write(dd.config_file(), config.to_documented_toml()).unwrap();
    start_all(&mut net, &["hospital-1"]).await;
    let tmp = tempfile::tempdir().unwrap();
    let nurse = tmp.path().join("nurse");
    let clinician = tmp.path().join("clinician");
    cli(
        &net,
        "hospital-1",
        &[
            "users",
            "add",
            "nurse-kim",
            "--role",
            "read-only",
            "--out",
            &path_str(&nurse),
        ],
    );
    cli(
        &net,
        "hospital-1",
        &[
            "users",
            "add",
            "dr-ito",
            "--role",
            "clinician",
            "--out",
            &path_str(&clinician),
        ],
    );
    let listed = cli(&net, "hospital-1", &["users", "list"]);
    assert!(
        listed.contains("nurse-kim") && listed.contains("read_only"),
        "{listed}"
    );
    let as_nurse = [("QWARD_CREDENTIAL_FILE", nurse.to_str().unwrap())];
    let who = cli_env(&net, "hospital-1", &["users", "whoami"], &as_nurse);
    assert!(
        who.contains("nurse-kim (read_only)") && who.contains("3 s idle"),
        "{who}"
    );
    // A read-only user reads, and cannot send, erase or manage users.
    cli_env(&net, "hospital-1", &["inbox"], &as_nurse);
    let phr = path_str(&workspace_root().join("examples/records/phr-ada-quill.json"));
    for args in [
        vec![
            "send",
            "--to",
            "hospital-1",
            "--kind",
            "phr",
            "--file",
            phr.as_str(),
        ],
        vec!["records", "erase", "00112233445566778899aabbccddeeff"],
        vec!["users", "add", "mallory", "--role", "admin"],
    ] {
        let out = cli_out(&net, "hospital-1", &args, &as_nurse);
        assert!(!out.status.success(), "{args:?} ran");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("nurse-kim") && err.contains("may not call"),
            "{err}"
        );
    }
    // A clinician may erase (and is told there is no such record).
    let as_dr = [("QWARD_CREDENTIAL_FILE", clinician.to_str().unwrap())];
    let out = cli_out(
        &net,
        "hospital-1",
        &["records", "erase", "00112233445566778899aabbccddeeff"],
        &as_dr,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no record"),
        "{out:?}"
    );

    // A wrong credential is refused, clearly, and logged with the name tried.
    let wrong = tmp.path().join("wrong");
    let good = std::fs::read_to_string(&nurse).unwrap();
    let (name, secret) = good.split_once(':').unwrap();
    let flipped = if secret.starts_with('0') { "1" } else { "0" };
    qward_node::datadir::write_secret_file(
        &wrong,
        format!("{name}:{flipped}{}", &secret[1..]).as_bytes(),
    )
    .unwrap();
    let out = cli_out(
        &net,
        "hospital-1",
        &["inbox"],
        &[("QWARD_CREDENTIAL_FILE", wrong.to_str().unwrap())],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong credential for user 'nurse-kim'"),
        "{out:?}"
    );

    // A session idle past the node's 3 s locks; calls on it are refused.
    let port = config.api_port;
    let login = qward_node::api::client::login(port, &good)
        .await
        .expect("login");
    let url = format!("ws://127.0.0.1:{port}");
    let session = qward_node::api::ApiClient::connect_with_session(
        &url,
        &login.session,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    session.status().await.expect("a fresh session works");
    let mut events = session
        .events(vec![qward_core::api::Topic::Blocks])
        .await
        .expect("a subscription");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let err = session
        .status()
        .await
        .expect_err("an idle session is locked");
    assert!(
        qward_node::api::error_text(&err).contains("locked"),
        "{err}"
    );
    // Its subscription ends with it (events are no activity of the person).
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = events.next().await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the subscription outlived its locked session"
    );

    // Removing a user ends their access.
    cli(&net, "hospital-1", &["users", "remove", "nurse-kim"]);
    let out = cli_out(&net, "hospital-1", &["inbox"], &as_nurse);
    assert!(!out.status.success());

    // Every refusal is in the access log, naming whom it tried to be.
    let log: Vec<AccessEntryInfo> = json_of(&cli(&net, "hospital-1", &["audit", "log", "--json"]));
    let refused: Vec<&AccessEntryInfo> = log
        .iter()
        .filter(|e| e.action == "refused-credential")
        .collect();
    assert!(
        refused
            .iter()
            .any(|e| e.user == "nurse-kim" && e.detail.contains("wrong credential")),
        "{log:?}"
    );
}

#[test]
fn a_killed_passphrase_change_leaves_the_old_or_the_new_passphrase_working() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let old = tmp.path().join("old");
    let new = tmp.path().join("new");
    qward_node::datadir::write_secret_file(&old, b"the old passphrase").unwrap();
    qward_node::datadir::write_secret_file(&new, b"the new passphrase").unwrap();
    qward_ok(&[
        "--data-dir",
        &path_str(&dir),
        "init",
        "--role",
        "patient",
        "--name",
        "p",
        "--passphrase-file",
        &path_str(&old),
    ])
    .unwrap();
    let dd = qward_node::datadir::DataDir::new(&dir);
    let pass = |p: &str| qward_core::vault::Passphrase::new(p.into()).unwrap();
    let key = qward_node::vault::unlock(&dd, &pass("the old passphrase")).unwrap();
    // How long one change takes, to spread the kills over it.
    let t = Instant::now();
    let mut current = ("the old passphrase", &old, "the new passphrase", &new);
    let change = |from: &std::path::Path, to: &std::path::Path| {
        std::process::Command::new(qward_tests::qward_bin())
            .args([
                "--data-dir",
                &path_str(&dir),
                "passphrase",
                "change",
                "--passphrase-file",
            ])
            .arg(from)
            .arg("--new-passphrase-file")
            .arg(to)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let status = change(current.1, current.3).wait().unwrap();
    assert!(status.success());
    let full = t.elapsed();
    current = (current.2, current.3, current.0, current.1);
    let mut killed_midway = 0;
    for i in 0..12u32 {
        let mut child = change(current.1, current.3);
        std::thread::sleep(full.mul_f64(f64::from(i) / 12.0));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let status = child.wait().unwrap();
        let opens_old = qward_node::vault::unlock(&dd, &pass(current.0)).ok();
        let opens_new = qward_node::vault::unlock(&dd, &pass(current.2)).ok();
        let opened = opens_old.as_ref().or(opens_new.as_ref());
        let opened =
            opened.unwrap_or_else(|| panic!("kill {i}: neither passphrase opens the node"));
        assert_eq!(
            *opened.to_bytes(),
            *key.to_bytes(),
            "the data key never changes"
        );
        if opens_new.is_some() {
            current = (current.2, current.3, current.0, current.1);
        } else if !status.success() {
            killed_midway += 1;
        }
    }
    assert!(killed_midway > 0, "no kill landed during a change");
    // A wrong passphrase is refused with a clear error and changes nothing.
    let wrong = tmp.path().join("wrong");
    qward_node::datadir::write_secret_file(&wrong, b"not the passphrase").unwrap();
    let out = qward(&[
        "--data-dir",
        &path_str(&dir),
        "passphrase",
        "change",
        "--passphrase-file",
        &path_str(&wrong),
        "--new-passphrase-file",
        &path_str(&new),
    ])
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    assert!(qward_node::vault::unlock(&dd, &pass(current.0)).is_ok());
}
