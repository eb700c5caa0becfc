//! The commands an operator reaches for on day one, without a running node:
//! `id show` (this node's account and peer id to hand to others), `contacts
//! add|list|remove` (names for accounts, so `--to st-marys` works outside a
//! devnet), `config show` (the settings with their defaults) and `version`
//! (with the commit and profile it was built from).

use qward_node::contacts::Contacts;
use qward_node::datadir::DataDir;

use crate::{qward, stderr, stdout};

fn json(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn id_contacts_config_and_version_work_on_a_data_directory_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let made = json(&qward(
        &a,
        &["init", "--role", "hospital", "--name", "st-marys", "--json"],
    ));
    assert_eq!(made["name"], "st-marys");
    assert_eq!(made["role"], "hospital");
    let o = qward(&b, &["init", "--role", "doctor", "--name", "dr-okafor"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let account_a = DataDir::new(&a).load_identity().unwrap().account().to_hex();
    assert_eq!(made["account"], account_a.as_str());
    assert!(made["peer_id"].as_str().unwrap().starts_with("12D3Koo"));
    // id show: the same account as the identity file, and its peer id.
    let id_b = json(&qward(&b, &["id", "show", "--json"]));
    let account_b = DataDir::new(&b).load_identity().unwrap().account().to_hex();
    assert_eq!(id_b["account"], account_b.as_str());
    assert_eq!(id_b["name"], "dr-okafor");
    assert_eq!(id_b["role"], "doctor");
    assert!(id_b["peer_id"].as_str().unwrap().starts_with("12D3Koo"));

    // contacts add, then the name resolves as any command resolves it.
    let o = qward(
        &a,
        &["contacts", "add", "okafor", &account_b, "--role", "doctor"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let book = Contacts::load(&DataDir::new(&a).contacts_file()).unwrap();
    assert_eq!(book.resolve("okafor").unwrap().to_hex(), account_b);
    assert_eq!(book.resolve("OKAFOR").unwrap().to_hex(), account_b);
    let listed = json(&qward(&a, &["contacts", "list", "--json"]));
    assert_eq!(listed[0]["name"], "okafor");
    assert_eq!(listed[0]["account"], account_b.as_str());

    // A second name for the account, or the name for another account, is
    // refused without --force (the book stays as it was); with it, renamed.
    let o = qward(
        &a,
        &["contacts", "add", "dr-o", &account_b, "--role", "doctor"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("named okafor already"),
        "{}",
        stderr(&o)
    );
    let other = "ab".repeat(32);
    let o = qward(
        &a,
        &["contacts", "add", "okafor", &other, "--role", "patient"],
    );
    assert!(
        stderr(&o).contains("names another account"),
        "{}",
        stderr(&o)
    );
    let o = qward(
        &a,
        &[
            "contacts", "add", "dr-o", &account_b, "--role", "doctor", "--force",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let book = Contacts::load(&DataDir::new(&a).contacts_file()).unwrap();
    assert!(book.resolve("okafor").is_err(), "the old name is gone");
    assert_eq!(book.name_of(&book.resolve("dr-o").unwrap()), Some("dr-o"));

    // Bad input: a name that is an account, with spaces, a bad account.
    for (name, account, words) in [
        (other.as_str(), account_b.as_str(), "must not be an account"),
        ("dr o", account_b.as_str(), "without spaces"),
        ("x", "not-hex", "not an account"),
    ] {
        let o = qward(&a, &["contacts", "add", name, account, "--role", "doctor"]);
        assert_eq!(o.status.code(), Some(1), "{name}");
        assert!(stderr(&o).contains(words), "{words}: {}", stderr(&o));
    }
    let o = qward(&a, &["contacts", "remove", "dr-o"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = qward(&a, &["contacts", "remove", "dr-o"]);
    assert!(
        stderr(&o).contains("no contact named dr-o"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        json(&qward(&a, &["contacts", "list", "--json"])),
        serde_json::json!([])
    );

    // config show: the file's settings with the defaults filled in.
    let config = json(&qward(&a, &["config", "show", "--json"]));
    assert_eq!(config["name"], "st-marys");
    assert_eq!(config["api_idle_logoff_s"], 900);
    assert_eq!(config["key_agreement"]["max_qber"], 0.11);
    let text = stdout(&qward(&a, &["config", "show"]));
    assert!(text.contains("name = \"st-marys\""), "{text}");

    // version: the commit and the profile it was built with.
    let v = json(&qward(&a, &["version", "--json"]));
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["profile"], "debug");
    let commit = v["commit"].as_str().unwrap();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    let long = stdout(&qward(&a, &["--version"]));
    assert!(long.contains(commit), "{long}");
}

#[test]
fn completions_and_man_pages_come_from_the_command_line_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("unused");
    for shell in ["bash", "zsh", "fish"] {
        let o = qward(&dir, &["completions", shell]);
        assert!(o.status.success(), "{}", stderr(&o));
        let script = stdout(&o);
        for word in ["qward", "kme", "contacts", "emergency"] {
            assert!(script.contains(word), "{shell}: {word}");
        }
    }
    let o = qward(&dir, &["completions", "cmd.exe"]);
    assert_eq!(o.status.code(), Some(2), "clap refuses an unknown shell");
    let man = tmp.path().join("man");
    let o = qward(&dir, &["man", "--out", man.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let top = std::fs::read_to_string(man.join("qward.1")).unwrap();
    assert!(top.starts_with(".ie") || top.contains(".TH"), "{top}");
    assert!(top.contains("qward"));
    let serve = std::fs::read_to_string(man.join("qward-kme-serve.1")).unwrap();
    assert!(serve.contains("listen"), "{serve}");
    assert!(man.join("qward-contacts-add.1").exists());
}

#[test]
fn a_node_that_is_not_running_is_exit_code_3_and_bad_input_is_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n");
    let o = qward(&dir, &["init", "--role", "patient", "--name", "p"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for args in [&["status"][..], &["inbox"], &["keys", "agree", "someone"]] {
        let o = qward(&dir, args);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("is the node running?"),
            "{}",
            stderr(&o)
        );
    }
    let o = qward(
        &dir,
        &["contacts", "add", "x", "not-hex", "--role", "doctor"],
    );
    assert_eq!(o.status.code(), Some(1), "a failure of this command's own");
    let o = qward(&dir, &["consent", "grant"]);
    assert_eq!(o.status.code(), Some(2), "a usage error (clap)");
}

#[test]
fn a_run_setting_comes_from_the_flag_then_the_environment_then_config_toml() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n");
    let o = qward(&dir, &["init", "--role", "hospital", "--name", "st-marys"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut config = DataDir::new(&dir).load_config().unwrap();
    config.api_port = 7600;
    config.metrics_port = Some(9100);
    std::fs::write(
        DataDir::new(&dir).config_file(),
        config.to_documented_toml(),
    )
    .unwrap();
    let show = |env: &[(&str, &str)], flags: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_qward"));
        cmd.arg("--data-dir")
            .arg(&dir)
            .args(["config", "show", "--json"]);
        cmd.args(flags)
            .env_remove("QWARD_DATA_DIR")
            .stdin(std::process::Stdio::null());
        for var in [
            "QWARD_API_PORT",
            "QWARD_METRICS",
            "QWARD_METRICS_BIND",
            "QWARD_METRICS_PORT",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        json(&cmd.output().unwrap())
    };
    // The file alone.
    let c = show(&[], &[]);
    assert_eq!(
        (c["api_port"].as_u64(), c["metrics_port"].as_u64()),
        (Some(7600), Some(9100))
    );
    assert_eq!(c["metrics"], false);
    assert_eq!(c["metrics_bind"], "127.0.0.1");
    // The environment over the file.
    let env = [
        ("QWARD_API_PORT", "7700"),
        ("QWARD_METRICS", "true"),
        ("QWARD_METRICS_BIND", "0.0.0.0"),
    ];
    let c = show(&env, &[]);
    assert_eq!(c["api_port"], 7700);
    assert_eq!(c["metrics"], true);
    assert_eq!(c["metrics_bind"], "0.0.0.0");
    assert_eq!(c["metrics_port"], 9100);
    // A flag over the environment.
    let c = show(
        &env,
        &[
            "--api-port",
            "7800",
            "--metrics=false",
            "--metrics-port",
            "9200",
        ],
    );
    assert_eq!(c["api_port"], 7800);
    assert_eq!(c["metrics"], false);
    assert_eq!(c["metrics_port"], 9200);
    assert_eq!(c["metrics_bind"], "0.0.0.0");
    // A bad value names what to fix and changes nothing.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_qward"));
    let o = cmd
        .arg("--data-dir")
        .arg(&dir)
        .args(["config", "show", "--metrics", "--metrics-port", "7600"])
        .env_remove("QWARD_DATA_DIR")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("metrics_port and api_port are both 7600"),
        "{}",
        stderr(&o)
    );
}
