//! Metrics as operators use them: a real Prometheus server scrapes a node
//! of a running network (so its own parser reads the OpenMetrics text), the
//! histograms and libp2p's metrics are there, every metric the Grafana
//! dashboard draws exists, and the dashboard passes Grafana's schema.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use qward_tests::{TestNet, path_str, qward_ok, wait_for};

const HOSPITALS: [&str; 4] = ["hospital-1", "hospital-2", "hospital-3", "hospital-4"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

const DASHBOARD: &str = "deploy/grafana/qward-network.json";

/// A Prometheus server, stopped when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (host:port) every second.
    fn start(target: &str) -> Prometheus {
        let which = Command::new("prometheus").arg("--version").output();
        assert!(
            which.is_ok_and(|o| o.status.success()),
            "prometheus is not installed: ./scripts/test installs it (apt-get install prometheus)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: qward\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("config");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    fn api(&self, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5", "-G"])
            .arg(format!("http://127.0.0.1:{}{path_and_query}", self.port))
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "curl {path_and_query}: {:?}",
            out.status
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// The result vector of an instant query.
    fn query(&self, promql: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5", "-G"])
            .arg(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .arg("--data-urlencode")
            .arg(format!("query={promql}"))
            .output()?;
        anyhow::ensure!(out.status.success(), "query {promql}: {:?}", out.status);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

fn value(sample: &serde_json::Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The `qward_*` metric names the dashboard's queries use, as stored
/// series names (a histogram by its `_bucket` series).
fn dashboard_metrics() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join(DASHBOARD)).expect("dashboard");
    let mut names = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("qward_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names.remove("qward_");
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_node_with_its_histograms_and_every_dashboard_metric() {
    let mut net = TestNet::create(4, 0, 0, 0, 200).expect("devnet");
    net.node("hospital-1")
        .start_with(&["--metrics"])
        .expect("start");
    for n in &HOSPITALS[1..] {
        net.node(n).start().expect("start");
    }
    let h1 = net
        .nodes
        .iter()
        .find(|n| n.name == "hospital-1")
        .expect("node");
    wait_for("height 2", Duration::from_secs(90), || async {
        Ok((h1.status().await?.height >= 2).then_some(()))
    })
    .await
    .expect("blocks");
    // A transaction through hospital-1: its finality lands in the histogram.
    qward_ok(&[
        "--data-dir",
        &path_str(&h1.dir),
        "tx",
        "set-block-timing",
        "--block-time-ms",
        "250",
        "--empty-block-interval-ms",
        "250",
        "--wait",
    ])
    .expect("vote");

    let addr = qward_node::datadir::DataDir::new(&h1.dir)
        .load_config()
        .expect("config")
        .metrics_addr();
    let curl = |path: &str| {
        Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
            ])
            .arg(format!("http://{addr}{path}"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    assert_eq!(curl("/health"), "200");
    assert_eq!(curl("/ready"), "200");

    let prom = Prometheus::start(&addr.to_string());
    let target = wait_for(
        "Prometheus to scrape the node",
        Duration::from_secs(60),
        || async {
            let Ok(v) = prom.api("/api/v1/targets") else {
                return Ok(None);
            };
            let t = v["data"]["activeTargets"][0].clone();
            Ok((t["health"] == "up").then_some(t))
        },
    )
    .await
    .expect("scraped");
    assert_eq!(target["lastError"], "", "{target}");

    let finality = prom.query("qward_finality_seconds_count").expect("query");
    assert!(
        finality.first().is_some_and(|s| value(s) >= 1.0),
        "{finality:?}"
    );
    let buckets = prom.query("qward_finality_seconds_bucket").expect("query");
    assert!(buckets.len() >= 10, "{buckets:?}");
    assert!(
        buckets.iter().any(|b| b["metric"]["le"] == "+Inf"),
        "{buckets:?}"
    );
    for histogram in [
        "qward_key_agreement_seconds",
        "qward_key_agreement_qber",
        "qward_delivery_seconds",
    ] {
        let series = prom.query(&format!("{histogram}_bucket")).expect("query");
        assert!(!series.is_empty(), "{histogram} is not exported");
    }
    let height = prom.query("qward_chain_height").expect("query");
    assert!(
        height.first().is_some_and(|s| value(s) >= 2.0),
        "{height:?}"
    );
    let bytes = prom.query("qward_net_bytes_in_total").expect("query");
    assert!(bytes.first().is_some_and(|s| value(s) > 0.0), "{bytes:?}");
    let libp2p = prom
        .query(r#"count({__name__=~"libp2p_.+"})"#)
        .expect("query");
    assert!(
        libp2p.first().is_some_and(|s| value(s) >= 5.0),
        "{libp2p:?}"
    );

    let names: BTreeSet<String> = prom
        .query(r#"group by (__name__) ({__name__=~"qward_.+"})"#)
        .expect("query")
        .iter()
        .filter_map(|s| s["metric"]["__name__"].as_str().map(str::to_string))
        .collect();
    let drawn = dashboard_metrics();
    assert!(drawn.len() >= 15, "{drawn:?}");
    let missing: Vec<_> = drawn.difference(&names).collect();
    assert!(
        missing.is_empty(),
        "the dashboard draws metrics no node exports: {missing:?}"
    );
}

#[test]
fn the_dashboard_passes_grafanas_schema() {
    let python = std::env::var_os("QWARD_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/qward/venv")))
        .expect("HOME")
        .join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: ./scripts/test installs Grafana's dashboard models there",
        python.display()
    );
    let out = Command::new(&python)
        .arg(repo().join("scripts/lib/check-dashboard.py"))
        .arg(repo().join(DASHBOARD))
        .output()
        .expect("the checker runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The checker is not a rubber stamp: a misspelt field fails it.
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(repo().join(DASHBOARD)).expect("dashboard");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, text.replacen("\"gridPos\"", "\"gridPosition\"", 1)).expect("write");
    let out = Command::new(&python)
        .arg(repo().join("scripts/lib/check-dashboard.py"))
        .arg(&bad)
        .output()
        .expect("the checker runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("gridPosition"));
}
