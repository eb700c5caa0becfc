//! The terminal UI end to end: the real `qward tui` runs in tmux against a
//! live devnet and is driven with keys, as a person would, while the test
//! reads the screen: a PHR composed and sent from the patient's UI arrives in
//! the hospital's, Eve put on a link from the Keys screen raises the alarm,
//! a killed node is reported and reconnected to when it is back, and an
//! idle UI locks and opens again only with the node's passphrase.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use qward_tests::{TestNet, path_str, qward_bin, wait_for, workspace_root};

const HOSPITALS: [&str; 4] = ["hospital-1", "hospital-2", "hospital-3", "hospital-4"];
/// What the UI does by itself (a redraw, a call to the node) shows within this.
const UI_TIMEOUT: Duration = Duration::from_secs(15);
/// What crosses the network (key agreement, delivery, a block) within this.
const NET_TIMEOUT: Duration = Duration::from_secs(120);

/// A tmux server on a private socket (`tmux -L`), so it never touches the
/// user's tmux; killed, with everything running in it, when dropped.
struct Tmux {
    socket: String,
    /// The socket file, removed after the server (tmux may leave it).
    socket_path: Option<std::path::PathBuf>,
    started: Instant,
}

impl Tmux {
    fn installed() -> bool {
        Command::new("tmux")
            .arg("-V")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Starts the server with one window `name` running `cmd` in a
    /// `width` x `height` terminal; later windows get the same size.
    fn start(
        conf_dir: &Path,
        width: u16,
        height: u16,
        name: &str,
        cmd: &[String],
    ) -> anyhow::Result<Tmux> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut tmux = Tmux {
            socket: format!("qward-e2e-{}-{nanos}", std::process::id()),
            socket_path: None,
            started: Instant::now(),
        };
        // A dead pane stays on screen, so a crash of the UI can be read.
        let conf = conf_dir.join("tmux.conf");
        std::fs::write(&conf, "set -g remain-on-exit on\nset -g status off\n")?;
        let (w, h) = (width.to_string(), height.to_string());
        let mut args = vec![
            "-f",
            conf.to_str().unwrap_or("/dev/null"),
            "new-session",
            "-d",
            "-s",
            "e2e",
            "-x",
            &w,
            "-y",
            &h,
            "-n",
            name,
            "-c",
        ];
        let root = path_str(&workspace_root());
        args.push(&root);
        args.extend(cmd.iter().map(String::as_str));
        tmux.run(&args)?;
        let path = tmux.run(&["display-message", "-p", "#{socket_path}"])?;
        tmux.socket_path = Some(String::from_utf8_lossy(&path.stdout).trim().into());
        Ok(tmux)
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "tmux {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out)
    }

    /// Opens another window running `cmd` (in the workspace, where the
    /// compose form's file picker finds `examples/records`).
    fn window(&self, name: &str, cmd: &[String]) -> anyhow::Result<()> {
        let root = path_str(&workspace_root());
        let mut args = vec!["new-window", "-d", "-t", "e2e", "-n", name, "-c", &root];
        args.extend(cmd.iter().map(String::as_str));
        self.run(&args).map(|_| ())
    }

    /// Presses one key (a tmux key name such as `Enter`, `Escape`, `Down`, or
    /// a character). One key per call: tmux would send `Escape 4` as one
    /// burst, which a terminal reads as Alt-4.
    fn key(&self, window: &str, key: &str) {
        let target = format!("e2e:{window}");
        if let Err(e) = self.run(&["send-keys", "-t", &target, key]) {
            panic!("{e}");
        }
    }

    /// The visible text of a window.
    fn screen(&self, window: &str) -> String {
        let target = format!("e2e:{window}");
        match self.run(&["capture-pane", "-p", "-t", &target]) {
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(e) => format!("(no screen: {e})"),
        }
    }

    /// Polls the window until `check` holds; answers the screen that passed,
    /// or the last one seen.
    async fn wait(
        &self,
        window: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen(window);
            if check(&screen) {
                eprintln!(
                    "tui_e2e {:>6.1}s {window}: {what}",
                    self.started.elapsed().as_secs_f64()
                );
                return Ok(screen);
            }
            if Instant::now() > deadline {
                return Err(screen);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The line of `screen` that contains `marker`, if any.
fn line_with<'a>(screen: &'a str, marker: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.contains(marker))
}

/// The file picker's selected line.
fn picked_file(screen: &str) -> Option<&str> {
    screen
        .lines()
        .find(|l| l.contains("▶ ") && l.contains(".json") && !l.contains("File"))
}

fn tui_cmd(net: &TestNet, node: &str) -> Vec<String> {
    let n = net.nodes.iter().find(|n| n.name == node).expect("node");
    vec![
        path_str(&qward_bin()),
        "--data-dir".into(),
        path_str(&n.dir),
        "tui".into(),
    ]
}

/// The screen check failed: say what was expected, show the screen and the
/// nodes' logs.
fn fail(net: &TestNet, what: &str, screen: &str) -> ! {
    let logs: String = ["patient-1", "hospital-1"]
        .iter()
        .filter_map(|name| net.nodes.iter().find(|n| n.name == *name))
        .map(|n| format!("--- {} log ---\n{}\n", n.name, n.log_tail(20)))
        .collect();
    panic!("the UI did not show {what}; the screen was:\n{screen}\n{logs}");
}

async fn start_net(net: &mut TestNet) {
    for n in HOSPITALS.iter().chain(&["patient-1"]) {
        net.node(n).start().expect("start");
    }
    let net = &*net;
    wait_for(
        "the patient to join a growing chain",
        NET_TIMEOUT,
        || async {
            let st = net
                .nodes
                .iter()
                .find(|n| n.name == "patient-1")
                .expect("patient")
                .status()
                .await?;
            Ok((st.peers >= 2 && st.height >= 2).then_some(()))
        },
    )
    .await
    .expect("devnet up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tui_sends_a_phr_shows_it_arriving_raises_the_eve_alarm_and_reconnects() {
    if !Tmux::installed() {
        eprintln!(
            "SKIPPED: tmux is not installed, so the terminal UI cannot be driven \
             (scripts/lib/env.sh installs it; CI has it)"
        );
        return;
    }
    let mut net = TestNet::create(4, 0, 1, 0, 200).expect("devnet");
    start_net(&mut net).await;
    let tmux = Tmux::start(
        net.dir.path(),
        120,
        40,
        "patient",
        &tui_cmd(&net, "patient-1"),
    )
    .expect("tmux");
    tmux.window("hospital", &tui_cmd(&net, "hospital-1"))
        .expect("hospital window");
    macro_rules! expect_screen {
        ($window:expr, $timeout:expr, $what:expr, $check:expr) => {
            match tmux.wait($window, $what, $timeout, $check).await {
                Ok(screen) => screen,
                Err(screen) => fail(&net, $what, &screen),
            }
        };
    }

    // Both UIs connect and show their node.
    for (window, name) in [("patient", "patient-1"), ("hospital", "hospital-1")] {
        expect_screen!(window, UI_TIMEOUT, "the node's identity", |s| {
            line_with(s, "name ").is_some_and(|l| l.contains(name))
                && !s.contains("connecting to the node")
                && !s.contains("unreachable")
        });
    }

    // The help overlay lists the keys; Esc closes it.
    tmux.key("patient", "?");
    expect_screen!("patient", UI_TIMEOUT, "the help overlay", |s| {
        s.contains("Help") && s.contains("toggle Eve on the link") && s.contains("compose a PHR")
    });
    tmux.key("patient", "Escape");
    expect_screen!("patient", UI_TIMEOUT, "the help closed", |s| {
        !s.contains("toggle Eve on the link")
    });

    // Messages: compose a PHR to hospital-1 with the form and its file picker.
    tmux.key("patient", "4");
    expect_screen!("patient", UI_TIMEOUT, "empty mailboxes", |s| {
        s.contains("Inbox (0)") && s.contains("Outbox (0)")
    });
    tmux.key("patient", "c");
    let form = expect_screen!("patient", UI_TIMEOUT, "the compose form", |s| {
        s.contains("Compose a record") && line_with(s, "▶ Kind").is_some_and(|l| l.contains("PHR"))
    });
    assert!(
        form.contains(" To "),
        "the form has no recipient field:\n{form}"
    );
    // Each key is pressed only once the screen shows the previous one took
    // effect, so no key lands on a field it was not meant for.
    tmux.key("patient", "Down");
    let screen = expect_screen!("patient", UI_TIMEOUT, "the To field focused", |s| {
        line_with(s, "▶ To").is_some()
    });
    let mut to = line_with(&screen, "▶ To").unwrap_or_default().to_string();
    let mut presses = 0;
    while !to.contains("hospital-1 (hospital)") {
        presses += 1;
        assert!(
            presses <= 10,
            "hospital-1 is not among the recipients: {to}"
        );
        tmux.key("patient", "Right");
        let screen = expect_screen!("patient", UI_TIMEOUT, "the next recipient", |s| {
            line_with(s, "▶ To").is_some_and(|l| l != to)
        });
        to = line_with(&screen, "▶ To").unwrap_or_default().to_string();
    }
    tmux.key("patient", "Down");
    expect_screen!("patient", UI_TIMEOUT, "the File field focused", |s| {
        line_with(s, "▶ File").is_some()
    });
    tmux.key("patient", "Enter");
    expect_screen!(
        "patient",
        UI_TIMEOUT,
        "the file picker on examples/records",
        |s| s.contains("examples/records — Enter: pick") && s.contains("phr-ada-quill.json")
    );
    let mut presses = 0;
    let mut screen = tmux.screen("patient");
    while line_with(&screen, "▶ phr-ada-quill.json").is_none() {
        presses += 1;
        assert!(presses <= 10, "phr-ada-quill.json cannot be selected");
        let picked = picked_file(&screen).unwrap_or_default().to_string();
        tmux.key("patient", "Down");
        screen = expect_screen!("patient", UI_TIMEOUT, "the next file", |s| {
            picked_file(s).is_some_and(|l| l != picked)
        });
    }
    tmux.key("patient", "Enter");
    expect_screen!("patient", UI_TIMEOUT, "the picked path", |s| {
        line_with(s, "▶ File").is_some_and(|l| l.contains("examples/records/phr-ada-quill.json"))
    });
    tmux.key("patient", "Enter");
    expect_screen!("patient", UI_TIMEOUT, "the record queued", |s| {
        s.contains("record queued for hospital-1") && !s.contains("Compose a record")
    });
    expect_screen!(
        "patient",
        NET_TIMEOUT,
        "the PHR delivered in the outbox",
        |s| s.contains("Outbox (1)")
            && line_with(s, "hospital-1  ").is_some_and(
                |l| l.contains("PHR") && (l.contains("delivered") || l.contains("anchored"))
            )
    );

    // The hospital's UI shows it arriving, and opens it for a person.
    tmux.key("hospital", "4");
    expect_screen!(
        "hospital",
        NET_TIMEOUT,
        "the PHR in the hospital's inbox",
        |s| s.contains("Inbox (1)")
            && line_with(s, "patient-1  ")
                .is_some_and(|l| l.contains("PHR") && l.contains("received"))
    );
    tmux.key("hospital", "Enter");
    expect_screen!("hospital", UI_TIMEOUT, "the record readable", |s| {
        s.contains("from patient-1 to hospital-1")
            && s.contains("Ada Maren Quill")
            && s.contains("HbA1c: 6.1 %")
            && s.contains("Type 2 diabetes mellitus")
    });
    tmux.key("hospital", "Escape");
    expect_screen!("hospital", UI_TIMEOUT, "the record closed", |s| {
        !s.contains("Ada Maren Quill")
    });

    // Consent: the patient grants from the form and sees its grant once it
    // is in a block; the hospital sees the patient's record by name.
    tmux.key("patient", "6");
    expect_screen!("patient", UI_TIMEOUT, "no grants yet", |s| {
        s.contains("My consent grants (0)")
    });
    tmux.key("patient", "g");
    expect_screen!("patient", UI_TIMEOUT, "the grant form", |s| {
        s.contains("Grant consent") && line_with(s, "▶ Grantee").is_some()
    });
    tmux.key("patient", "Enter");
    expect_screen!("patient", NET_TIMEOUT, "the patient's own grant", |s| {
        s.contains("My consent grants (1)")
            && line_with(s, "patient-1")
                .is_some_and(|l| l.contains("records") && l.contains("active"))
    });
    tmux.key("hospital", "6");
    expect_screen!("hospital", NET_TIMEOUT, "the consent record by name", |s| {
        s.contains("Consent records (1)")
            && line_with(s, "patient-1 ").is_some_and(|l| l.contains("active"))
    });

    // Chain: blocks name their proposer and signers; validators are ticked.
    tmux.key("patient", "5");
    expect_screen!("patient", UI_TIMEOUT, "named proposers and signers", |s| {
        line_with(s, "proposer hospital-").is_some()
            && line_with(s, "signed by hospital-").is_some()
            && s.contains("✔ hospital-")
    });

    // Keys: the session that keyed the message is there; Eve goes on the
    // link and the next agreement raises the alarm, on both ends.
    tmux.key("patient", "3");
    expect_screen!("patient", UI_TIMEOUT, "the finished key session", |s| {
        line_with(s, "hospital-1  ").is_some_and(|l| l.contains("done"))
            && s.contains("abort at 11.0%")
    });
    tmux.key("patient", "e");
    expect_screen!("patient", UI_TIMEOUT, "Eve on the link", |s| {
        s.contains("Eve ON (100.0% of qubits)") && s.contains("link updated")
    });
    tmux.key("patient", "a");
    let alarm = expect_screen!("patient", NET_TIMEOUT, "the eavesdropper alarm", |s| {
        s.contains("EAVESDROPPER DETECTED on the link to hospital-1")
            && line_with(s, "hospital-1  ")
                .is_some_and(|l| l.contains("aborted") && l.contains("EVE"))
    });
    assert!(
        alarm.contains("/ abort at 11.0%") && alarm.contains("aborted: observed QBER"),
        "the selected session should show its QBER against the threshold:\n{alarm}"
    );
    expect_screen!(
        "hospital",
        UI_TIMEOUT,
        "the alarm at the hospital too",
        |s| s.contains("EAVESDROPPER DETECTED on the link to patient-1")
    );
    // Eve leaves; a clean key on the link clears the alarm.
    tmux.key("patient", "e");
    expect_screen!("patient", UI_TIMEOUT, "Eve off the link", |s| {
        s.contains("link: no Eve")
    });
    tmux.key("patient", "a");
    expect_screen!(
        "patient",
        NET_TIMEOUT,
        "the alarm cleared by a clean key",
        |s| !s.contains("EAVESDROPPER DETECTED")
            && s.lines()
                .find(|l| l.contains("▶ hospital-1"))
                .is_some_and(|l| l.contains("done"))
    );

    // The node goes away: the UI says so; it comes back: the UI reconnects.
    tmux.key("patient", "1");
    net.node("patient-1").kill();
    expect_screen!("patient", UI_TIMEOUT, "the node unreachable", |s| {
        s.contains("node unreachable — reconnecting…")
    });
    net.node("patient-1").start().expect("restart");
    expect_screen!("patient", NET_TIMEOUT, "the UI reconnected", |s| {
        !s.contains("unreachable")
            && s.contains("reconnected to the node")
            && line_with(s, "name ").is_some_and(|l| l.contains("patient-1"))
    });

    // Leaving the UI ends its process (the pane stays, dead, on screen).
    tmux.key("patient", "q");
    let target = "e2e:patient";
    let deadline = Instant::now() + UI_TIMEOUT;
    loop {
        let dead = tmux
            .run(&["display-message", "-p", "-t", target, "#{pane_dead}"])
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
            .unwrap_or(false);
        if dead {
            break;
        }
        assert!(Instant::now() < deadline, "q did not quit the UI");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tui_locks_and_asks_for_the_passphrase_again() {
    if !Tmux::installed() {
        eprintln!("SKIPPED: tmux is not installed (scripts/lib/env.sh installs it; CI has it)");
        return;
    }
    let mut net = TestNet::create(1, 0, 0, 0, 200).expect("devnet");
    net.node("hospital-1").start().expect("start");
    let mut cmd = tui_cmd(&net, "hospital-1");
    cmd.extend(["--lock-after".to_string(), "3".to_string()]);
    let tmux = Tmux::start(net.dir.path(), 100, 30, "hospital", &cmd).expect("tmux");
    macro_rules! expect_screen {
        ($window:expr, $timeout:expr, $what:expr, $check:expr) => {
            match tmux.wait($window, $what, $timeout, $check).await {
                Ok(screen) => screen,
                Err(screen) => fail(&net, $what, &screen),
            }
        };
    }
    expect_screen!("hospital", NET_TIMEOUT, "the node's identity", |s| {
        line_with(s, "name ").is_some_and(|l| l.contains("hospital-1"))
    });
    // Three seconds without a key: locked, and nothing of the node shows.
    let locked = expect_screen!("hospital", UI_TIMEOUT, "the lock screen", |s| {
        s.contains("qward is locked") && s.contains("passphrase")
    });
    assert!(
        !locked.contains("hospital-1"),
        "the node shows through the lock:\n{locked}"
    );
    // A wrong passphrase is refused; the lock stays.
    tmux.key("hospital", "not the passphrase");
    expect_screen!("hospital", UI_TIMEOUT, "the typed dots", |s| s
        .contains("••••"));
    tmux.key("hospital", "Enter");
    expect_screen!("hospital", UI_TIMEOUT, "the refusal", |s| {
        s.contains("wrong passphrase") && s.contains("qward is locked")
    });
    // The node's passphrase unlocks it.
    let passphrase = std::fs::read_to_string(net.root().join("passphrase")).expect("passphrase");
    tmux.key("hospital", passphrase.trim());
    tmux.key("hospital", "Enter");
    expect_screen!("hospital", UI_TIMEOUT, "the node again", |s| {
        !s.contains("qward is locked")
            && line_with(s, "name ").is_some_and(|l| l.contains("hospital-1"))
    });
}

/// Appends `blocks` empty blocks, certified by the devnet's only validator,
/// to the (stopped) node's database: a long chain in seconds. Unsynced
/// writes: the database is closed, and so flushed, before the node starts.
fn grow_chain(node_dir: &Path, blocks: u64) {
    use qward_core::chain::testkit::certify;
    use qward_core::chain::{ChainStore, CommittedBlock, build_block, verify::tip_of};
    use qward_core::storage::Store;
    // The files a node's database gets: readable by its owner only (the
    // node refuses to start on others). nextest runs each test in its own
    // process, so the umask is this test's alone.
    qward_node::vault::private_umask();
    let dir = qward_node::datadir::DataDir::new(node_dir);
    let validator = dir.load_identity().expect("identity");
    let store = qward_node::db::RocksStore::open(&dir.db_dir()).expect("db");
    let chain = ChainStore::new(&store);
    let mut state = chain.state().expect("state");
    let mut tip = chain.tip().expect("tip");
    for _ in 0..blocks {
        let (block, next) = build_block(&state, &tip, 0, tip.time_ms + 1, Vec::new(), 1);
        let cert = certify(
            &state.genesis_hash,
            state.chain_id,
            &block,
            0,
            &[&validator],
        );
        let committed = CommittedBlock { block, cert };
        let mut batch = ChainStore::import_batch(&committed, &next);
        batch.set_sync(false);
        store.write(batch).expect("import");
        tip = tip_of(&committed.block);
        state = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tui_verifies_a_chain_of_50000_blocks_with_a_progress_bar() {
    if !Tmux::installed() {
        eprintln!("SKIPPED: tmux is not installed (scripts/lib/env.sh installs it; CI has it)");
        return;
    }
    // One validator that makes no empty block for an hour: the chain stays
    // at the height written here while the UI verifies it.
    let mut net = TestNet::create_with_timing(
        1,
        0,
        0,
        0,
        qward_core::consensus::BlockTiming {
            block_time_ms: 200,
            empty_block_interval_ms: 3_600_000,
        },
    )
    .expect("devnet");
    const BLOCKS: u64 = 50_000;
    let dir = net.nodes[0].dir.clone();
    grow_chain(&dir, BLOCKS);
    net.node("hospital-1").start().expect("start");
    // One verify at a time per node: a second, while the first runs, is
    // refused at once instead of stacking another whole-chain pass.
    {
        use qward_node::api::QwardApiClient;
        let node = &net.nodes[0];
        let first = node.client(Duration::from_secs(60)).await.expect("client");
        let second = node.client(Duration::from_secs(60)).await.expect("client");
        let mut events = {
            use jsonrpsee::core::client::SubscriptionClientT;
            second
                .subscribe::<serde_json::Value, _>(
                    qward_core::api::method::SUBSCRIBE,
                    jsonrpsee::rpc_params![vec![qward_core::api::Topic::Blocks]],
                    qward_core::api::method::UNSUBSCRIBE,
                )
                .await
                .expect("subscribe")
        };
        let running = tokio::spawn(async move { first.chain_verify().await });
        // The first verify has started once its progress shows.
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(Ok(e)) = events.next().await {
                if e["type"] == "verify_progress" {
                    break;
                }
            }
        })
        .await
        .expect("the first verify's progress");
        let refused = second.chain_verify().await.expect_err("a second verify");
        assert!(refused.to_string().contains("already running"), "{refused}");
        let report = running.await.expect("task").expect("the first verify");
        assert!(report.ok && report.height == BLOCKS, "{report:?}");
    }
    let tmux = Tmux::start(
        net.dir.path(),
        100,
        30,
        "hospital",
        &tui_cmd(&net, "hospital-1"),
    )
    .expect("tmux");
    macro_rules! expect_screen {
        ($window:expr, $timeout:expr, $what:expr, $check:expr) => {
            match tmux.wait($window, $what, $timeout, $check).await {
                Ok(screen) => screen,
                Err(screen) => fail(&net, $what, &screen),
            }
        };
    }
    expect_screen!("hospital", NET_TIMEOUT, "the node's identity", |s| {
        line_with(s, "name ").is_some_and(|l| l.contains("hospital-1"))
    });
    tmux.key("hospital", "5");
    expect_screen!("hospital", UI_TIMEOUT, "the chain screen", |s| s
        .contains("press v to re-check"));
    tmux.key("hospital", "v");
    // The bar moves: some blocks of the 50000 verified, not all.
    let moving = expect_screen!("hospital", NET_TIMEOUT, "the verify progress bar", |s| {
        line_with(s, "/50000 (").is_some_and(|l| l.contains('░')) && !s.contains("chain OK")
    });
    assert!(moving.contains("verifying the chain"), "{moving}");
    // ... and the verify completes, however long it takes past the usual
    // call timeout.
    let done = expect_screen!(
        "hospital",
        Duration::from_secs(600),
        "the verify's result",
        |s| s.contains("chain OK up to height 50000") || s.contains("CHAIN INVALID")
    );
    assert!(done.contains("chain OK up to height 50000"), "{done}");
    assert!(
        done.contains("50000 blocks, 0 transactions verified"),
        "{done}"
    );
}
