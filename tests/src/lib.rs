//! Helpers for qward's multi-node integration tests: the `qward` binary, a
//! devnet made by `qward genesis devnet`, node processes that are always
//! stopped, and API clients to watch them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use qward_core::api::NodeStatus;
use qward_node::api::{ApiClient, Cookie, QwardApiClient};
use qward_node::datadir::DataDir;

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

/// Runs `qward ARGS` to completion and returns its output (stdin closed).
pub fn qward(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Command::new(qward_bin())
        .args(args)
        .env_remove("QWARD_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", qward_bin().display()))
}

/// Runs `qward ARGS` and fails unless it exits 0; returns stdout.
pub fn qward_ok(args: &[&str]) -> anyhow::Result<String> {
    let out = qward(args)?;
    if !out.status.success() {
        bail!(
            "qward {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Ports one test network may use, from its base.
const PORTS_PER_NET: u16 = 300;
/// The range test networks take their ports from.
const FIRST_PORT: u16 = 10_000;
const LAST_PORT: u16 = 32_000;

/// A claim on a block of `PORTS_PER_NET` ports on 127.0.0.1, held as a lock
/// file so that tests running in parallel processes never pick the same
/// block; released on drop. A claim older than an hour is a crashed test's
/// and is taken over.
#[derive(Debug)]
pub struct PortBlock {
    pub base: u16,
    lock: PathBuf,
}

impl PortBlock {
    /// Claims a block whose ports are all free now, starting the search at a
    /// slot derived from the process id.
    pub fn claim() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join("qward-test-ports");
        std::fs::create_dir_all(&dir)?;
        // Below Linux's ephemeral range (32768 and up): a port there may be
        // taken as the source port of any outgoing connection while a test
        // node is down, and the node could not listen on it again.
        let slots = (LAST_PORT - FIRST_PORT) / PORTS_PER_NET;
        let first = (std::process::id() % u32::from(slots)) as u16;
        for i in 0..slots {
            let base = FIRST_PORT + ((first + i) % slots) * PORTS_PER_NET;
            let lock = dir.join(base.to_string());
            let stale = std::fs::metadata(&lock)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(3600));
            if stale {
                let _ = std::fs::remove_file(&lock);
            }
            if std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
                .is_err()
            {
                continue;
            }
            let all_free = (0..PORTS_PER_NET)
                .all(|p| std::net::TcpListener::bind(("127.0.0.1", base + p)).is_ok());
            if all_free {
                return Ok(PortBlock { base, lock });
            }
            let _ = std::fs::remove_file(&lock);
        }
        bail!("no free block of {PORTS_PER_NET} ports on 127.0.0.1")
    }
}

impl Drop for PortBlock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// A devnet in a temporary directory.
#[derive(Debug)]
pub struct TestNet {
    // Fields drop in this order: processes first, then the ports, then the files.
    pub nodes: Vec<TestNode>,
    /// The ports the devnet's nodes use, released when it is dropped.
    pub ports: PortBlock,
    pub dir: tempfile::TempDir,
}

/// One node of a test network: its name, data directory, and process if running.
#[derive(Debug)]
pub struct TestNode {
    pub name: String,
    pub dir: PathBuf,
    pub api_port: u16,
    child: Option<Child>,
}

impl TestNet {
    /// Creates a devnet with `qward genesis devnet` whose chain makes a block
    /// every `block_interval_ms`, empty or not. Nothing is started.
    pub fn create(
        hospitals: u32,
        doctors: u32,
        patients: u32,
        auditors: u32,
        block_interval_ms: u64,
    ) -> anyhow::Result<Self> {
        Self::create_with_timing(
            hospitals,
            doctors,
            patients,
            auditors,
            qward_core::consensus::BlockTiming::every(block_interval_ms),
        )
    }

    /// [`TestNet::create`] with the chain's block timing in full.
    pub fn create_with_timing(
        hospitals: u32,
        doctors: u32,
        patients: u32,
        auditors: u32,
        timing: qward_core::consensus::BlockTiming,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("net");
        let ports = PortBlock::claim()?;
        let base = ports.base.to_string();
        let (h, d, p, a) = (
            hospitals.to_string(),
            doctors.to_string(),
            patients.to_string(),
            auditors.to_string(),
        );
        let out_s = out.to_string_lossy().into_owned();
        qward_ok(&[
            "genesis",
            "devnet",
            "--out",
            &out_s,
            "--hospitals",
            &h,
            "--doctors",
            &d,
            "--patients",
            &p,
            "--auditors",
            &a,
            "--base-port",
            &base,
            "--block-time-ms",
            &timing.block_time_ms.to_string(),
            "--empty-block-interval-ms",
            &timing.empty_block_interval_ms.to_string(),
        ])?;
        let members = qward_node::devnet::members(&out)?;
        let mut nodes = Vec::new();
        for m in members {
            nodes.push(TestNode {
                name: m.name.clone(),
                dir: m.dir.clone(),
                api_port: m.config.api_port,
                child: None,
            });
        }
        write_contacts(&nodes)?;
        Ok(TestNet { dir, nodes, ports })
    }

    pub fn node(&mut self, name: &str) -> &mut TestNode {
        let i = self
            .nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"));
        &mut self.nodes[i]
    }

    pub fn names_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.name.starts_with(prefix))
            .map(|n| n.name.clone())
            .collect()
    }

    /// The devnet's directory.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("net")
    }
}

fn write_contacts(nodes: &[TestNode]) -> anyhow::Result<()> {
    let mut book = qward_node::contacts::Contacts::default();
    for n in nodes {
        let dd = DataDir::new(&n.dir);
        book.insert(
            &n.name,
            dd.load_identity()?.account(),
            dd.load_config()?.role,
        );
    }
    for n in nodes {
        book.save(&DataDir::new(&n.dir).contacts_file())?;
    }
    Ok(())
}

impl TestNode {
    /// A node in `dir` that is not part of a [`TestNet`].
    pub fn at(name: &str, dir: &Path, api_port: u16) -> Self {
        TestNode {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            api_port,
            child: None,
        }
    }

    /// Starts `qward run` for this node, logging to its logs/node.log.
    pub fn start(&mut self) -> anyhow::Result<()> {
        self.start_with(&[])
    }

    /// Starts `qward run RUN_ARGS` (e.g. `--metrics`), logging to logs/node.log.
    pub fn start_with(&mut self, run_args: &[&str]) -> anyhow::Result<()> {
        self.start_with_env(run_args, &[])
    }

    /// [`TestNode::start_with`], with extra environment variables for the process.
    pub fn start_with_env(
        &mut self,
        run_args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let logs = self.dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join("node.log"))?;
        let child = Command::new(qward_bin())
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--log-level", "info,libp2p=warn", "run"])
            .args(run_args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start qward run")?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills the process at once (SIGKILL): a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            qward_node::devnet::terminate(&[c.id()], Duration::from_secs(10));
            let _ = c.wait();
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Connects to this node's API, waiting up to `timeout` for it to come up.
    pub async fn client(&self, timeout: Duration) -> anyhow::Result<ApiClient> {
        let deadline = Instant::now() + timeout;
        loop {
            let cookie = DataDir::new(&self.dir).cookie_file();
            let url = format!("ws://127.0.0.1:{}", self.api_port);
            let connected = match Cookie::read(&cookie) {
                Ok(cookie) => {
                    ApiClient::connect_with_timeout(&url, &cookie, Duration::from_secs(20)).await
                }
                Err(e) => Err(e),
            };
            match connected {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!("{} API never came up", self.name)));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    pub async fn status(&self) -> anyhow::Result<NodeStatus> {
        Ok(self.client(Duration::from_secs(30)).await?.status().await?)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The connected peers as this node reports them (`peers`).
    pub async fn peers(&self) -> anyhow::Result<Vec<qward_core::api::PeerSummary>> {
        Ok(self.client(Duration::from_secs(30)).await?.peers().await?)
    }

    /// The Prometheus metrics of a node started with `--metrics` (on
    /// `metrics_port`, or API port + 1000), as name -> value.
    pub async fn metrics(&self) -> anyhow::Result<std::collections::HashMap<String, f64>> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = DataDir::new(&self.dir).load_config()?.metrics_addr();
        let fetch = async {
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .await?;
            let mut body = String::new();
            s.read_to_string(&mut body).await?;
            anyhow::Ok(body)
        };
        let body = tokio::time::timeout(Duration::from_secs(10), fetch)
            .await
            .with_context(|| format!("{}: metrics did not answer", self.name))??;
        Ok(body
            .lines()
            .filter(|l| l.starts_with("qward_"))
            .filter_map(|l| {
                let (name, value) = l.split_once(' ')?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect())
    }

    /// The tail of this node's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("logs/node.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `check` returns `Some`, polling every 200 ms, up to `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}; last error: {last_err:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Path of a node's data dir as a string, for CLI arguments.
pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A member's identity run in-process as a bare libp2p swarm, without a
/// node behind it: for tests that speak the wire protocols directly, as a
/// misbehaving or buggy member would.
pub struct Impostor {
    pub identity: qward_core::identity::Identity,
    pub client: qward_node::net::NetworkClient,
    gossip: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<CapturedGossip>>,
    task: tokio::task::JoinHandle<()>,
    drain: tokio::task::JoinHandle<()>,
}

/// A gossip message the impostor received on a topic it subscribed to.
#[derive(Debug, Clone)]
pub struct CapturedGossip {
    pub topic: String,
    pub source: qward_node::net::PeerId,
    pub data: Vec<u8>,
}

/// Gossip messages an impostor keeps for the test, at most (later ones are dropped).
const CAPTURE_LEN: usize = 4096;

impl Impostor {
    /// Starts a swarm with the key of `as_member` (whose node must not be
    /// running) and dials every node of `net` named in `dial`.
    pub async fn start(net: &TestNet, as_member: &str, dial: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_limits(
            net,
            as_member,
            dial,
            qward_node::net::MessageLimits::default(),
        )
        .await
    }

    /// [`Impostor::start`] with this swarm's own size limits: raise them to
    /// send what an honest node would refuse to send (oversized gossip or
    /// requests), to see the receiver refuse it.
    pub async fn start_with_limits(
        net: &TestNet,
        as_member: &str,
        dial: &[&str],
        limits: qward_node::net::MessageLimits,
    ) -> anyhow::Result<Self> {
        use qward_node::net::{GossipValidation, Multiaddr, Network, NetworkConfig, NetworkEvent};
        let me = net
            .nodes
            .iter()
            .find(|n| n.name == as_member)
            .with_context(|| format!("no member {as_member}"))?;
        let identity = DataDir::new(&me.dir).load_identity()?;
        let keypair = qward_node::net::keypair_from_identity(&identity)?;
        let mut members = std::collections::HashSet::new();
        let mut bootstrap = Vec::new();
        for n in &net.nodes {
            let dd = DataDir::new(&n.dir);
            let peer = qward_node::net::peer_id_from_account(&dd.load_identity()?.account())?;
            members.insert(peer);
            if dial.contains(&n.name.as_str()) {
                for l in dd.load_config()?.listen {
                    let addr: Multiaddr = format!("{l}/p2p/{peer}").parse()?;
                    bootstrap.push(addr);
                }
            }
        }
        let config = NetworkConfig {
            listen_addrs: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
            external_addrs: Vec::new(),
            bootstrap,
            members,
            request_timeout: Duration::from_secs(30),
            limits,
            ..NetworkConfig::default()
        };
        let (client, mut events, task) = Network::spawn(keypair, config)?;
        let (captured, gossip) = tokio::sync::mpsc::channel(CAPTURE_LEN);
        let reporter = client.clone();
        let drain = tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                match e {
                    NetworkEvent::Gossip {
                        topic,
                        source,
                        propagation_source,
                        message_id,
                        data,
                    } => {
                        // Kept for the test, never forwarded: the impostor relays nothing.
                        let _ = reporter
                            .report_validation(
                                message_id,
                                propagation_source,
                                GossipValidation::Ignore,
                            )
                            .await;
                        let _ = captured.try_send(CapturedGossip {
                            topic,
                            source,
                            data,
                        });
                    }
                    NetworkEvent::InboundRequest { .. } => {
                        // Left unanswered: the requester times out, as with a silent peer.
                    }
                    _ => {}
                }
            }
        });
        Ok(Impostor {
            identity,
            client,
            gossip: tokio::sync::Mutex::new(gossip),
            task,
            drain,
        })
    }

    /// Subscribes to `topic` and waits until every peer in `peers` is seen on
    /// it, so a publish reaches them all.
    pub async fn subscribe(
        &self,
        topic: &str,
        peers: &[qward_node::net::PeerId],
    ) -> anyhow::Result<()> {
        self.client.subscribe(topic).await?;
        wait_for(
            &format!("the impostor's peers on {topic}"),
            Duration::from_secs(60),
            || async {
                let on = self.client.topic_peers(topic).await?;
                Ok(peers
                    .iter()
                    .all(|p| on.subscribed.contains(p))
                    .then_some(()))
            },
        )
        .await
    }

    /// Publishes `data` on `topic`, signed by the impostor's key.
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .publish(topic, data)
            .await
            .with_context(|| format!("publishing on {topic}"))?;
        Ok(())
    }

    /// The gossip received since the last call, oldest first.
    pub async fn take_gossip(&self) -> Vec<CapturedGossip> {
        let mut rx = self.gossip.lock().await;
        let mut out = Vec::new();
        while let Ok(g) = rx.try_recv() {
            out.push(g);
        }
        out
    }

    /// Sends raw bytes on `/qward/sync/1` to `peer` and returns the raw answer.
    pub async fn sync_raw(
        &self,
        peer: qward_node::net::PeerId,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, qward_node::net::NetError> {
        self.client
            .request(qward_node::net::RequestProtocol::Sync, peer, bytes)
            .await
    }

    /// Waits until connected to `peer`.
    pub async fn connected_to(&self, peer: &qward_node::net::PeerId) -> anyhow::Result<()> {
        wait_for(
            "the impostor to connect",
            Duration::from_secs(60),
            || async {
                let peers = self.client.peers().await?;
                Ok(peers.iter().any(|p| p.peer_id == *peer).then_some(()))
            },
        )
        .await
    }

    /// Runs a key agreement with `peer` as initiator, straight over
    /// `/qward/qkd/1`; returns the confirmed key.
    pub async fn agree_key(
        &self,
        peer: &qward_core::identity::AccountId,
    ) -> anyhow::Result<qward_core::hybrid::HybridKey> {
        use qward_core::keyagree::{AgreeResponse, Initiator, InitiatorStep, LinkModel};
        let peer_id = qward_node::net::peer_id_from_account(peer)?;
        let params = qward_core::qkd::ProtocolParams {
            qubits: 200_000,
            ..Default::default()
        };
        let (mut init, mut request) = {
            let mut rng = rand::rng();
            Initiator::new(
                &self.identity,
                *peer,
                params,
                LinkModel::default(),
                qward_core::keyagree::Purpose::Messaging,
                None,
                &mut rng,
            )?
        };
        for _ in 0..10_000 {
            let bytes = self
                .client
                .request(
                    qward_node::net::RequestProtocol::Qkd,
                    peer_id,
                    request.encode()?,
                )
                .await?;
            let response = AgreeResponse::decode(&bytes)?;
            let step = init.on_response(response, &mut rand::rng());
            match step {
                InitiatorStep::Send(next) => request = next,
                InitiatorStep::Finished(outcome) => {
                    return outcome.key.with_context(|| {
                        format!(
                            "session ended without a key: {:?}",
                            outcome.report.abort_reason
                        )
                    });
                }
            }
        }
        bail!("the session did not end")
    }

    /// Sends raw bytes on `/qward/msg/1` and decodes the answer.
    pub async fn deliver_raw(
        &self,
        peer: &qward_core::identity::AccountId,
        bytes: Vec<u8>,
    ) -> anyhow::Result<qward_core::envelope::wire::MsgResponse> {
        let peer_id = qward_node::net::peer_id_from_account(peer)?;
        let answer = self
            .client
            .request(qward_node::net::RequestProtocol::Msg, peer_id, bytes)
            .await?;
        Ok(qward_core::envelope::wire::MsgResponse::decode(&answer)?)
    }
}

impl std::fmt::Debug for Impostor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Impostor")
            .field("account", &self.identity.account())
            .finish_non_exhaustive()
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        self.task.abort();
        self.drain.abort();
    }
}

/// A member's account, read from its data directory.
pub fn account_of(net: &TestNet, name: &str) -> qward_core::identity::AccountId {
    let n = net
        .nodes
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"));
    DataDir::new(&n.dir)
        .load_identity()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .account()
}

/// A valid FHIR PHR (a `Bundle`) of at least `size` bytes: the example at
/// `example` with its first observation repeated under new ids.
pub fn phr_of_size(example: &Path, size: usize) -> Vec<u8> {
    let text = std::fs::read(example).unwrap_or_else(|e| panic!("{}: {e}", example.display()));
    let mut v: serde_json::Value = serde_json::from_slice(&text).expect("example is JSON");
    let entries = v["entry"].as_array().cloned().unwrap_or_default();
    let obs = entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Observation")
        .cloned()
        .expect("example has an observation");
    let step = serde_json::to_vec(&obs).map(|b| b.len()).unwrap_or(1) + 64;
    let mut approx = text.len();
    let mut all = entries;
    let mut i = 0u64;
    while approx < size {
        let mut o = obs.clone();
        o["fullUrl"] = serde_json::json!(format!("urn:uuid:00000000-0000-4000-8000-{i:012}"));
        o["resource"]["id"] = serde_json::json!(format!("obs-{i}"));
        all.push(o);
        approx += step;
        i += 1;
    }
    v["entry"] = serde_json::json!(all);
    serde_json::to_vec(&v).expect("JSON")
}

/// A valid PHR bundle of exactly `size` bytes (from about 64 KiB up): a
/// bundle a little smaller, padded with trailing whitespace (valid JSON).
pub fn phr_of_exact_size(example: &Path, size: usize) -> Vec<u8> {
    let mut v = phr_of_size(example, size.saturating_sub(64 * 1024));
    assert!(v.len() <= size, "{} > {size}", v.len());
    v.resize(size, b' ');
    v
}

/// Small helpers shared by the benchmark examples.
pub mod bench {
    /// The value after `name` on the command line, or `default`.
    pub fn arg(name: &str, default: u64) -> u64 {
        let args: Vec<String> = std::env::args().collect();
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// The `p` quantile (0 to 1) of sorted values, nearest rank; NaN when empty.
    pub fn percentile(sorted: &[f64], p: f64) -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[i.min(sorted.len() - 1)]
    }
}
