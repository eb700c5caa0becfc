//! Benchmark of the chain over the network: four hospital validators as
//! separate `qward` processes on 127.0.0.1. Measures the resident memory of
//! an idle node after it ran ~30 s, then finalized transactions per second
//! under a load submitted through the control API (`tx_submit`, every
//! hospital from its own account, as fast as the mempool admits them), and
//! submit-to-finality latency p50/p99. Prints one JSON object.
//!
//! `cargo run -p qward-tests --example bench_network -- [--txs N]
//! [--block-interval-ms MS] [--workers N] [--idle-s S]` (or `./scripts/bench-network`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qward_core::api::{BlockSummary, Event, Topic, TxRequest};
use qward_core::identity::{Identity, Role};
use qward_node::api::{ApiClient, Cookie, QwardApiClient};
use qward_node::datadir::DataDir;
use qward_tests::bench::{arg, percentile};
use qward_tests::{TestNet, wait_for};
use serde_json::json;

const HOSPITALS: [&str; 4] = ["hospital-1", "hospital-2", "hospital-3", "hospital-4"];

/// VmRSS of a process, in MiB.
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))?;
    Ok(kb / 1024.0)
}

async fn connect(net: &TestNet, name: &str) -> anyhow::Result<ApiClient> {
    let n = net.nodes.iter().find(|n| n.name == name).expect("node");
    let cookie = Cookie::read(&DataDir::new(&n.dir).cookie_file())?;
    let url = format!("ws://127.0.0.1:{}", n.api_port);
    ApiClient::connect_with_timeout(&url, &cookie, Duration::from_secs(60)).await
}

/// When each submitted transaction's `tx_submit` call started, by id.
type Submitted = Arc<Mutex<HashMap<String, Instant>>>;

/// One hospital's submitters: `workers` concurrent `tx_submit` loops that
/// register fresh members until `count` are accepted. A refusal because the
/// author already has the most pending transactions the mempool admits
/// (nonce gap) is back-pressure: wait a little and retry.
async fn load(
    client: ApiClient,
    hospital: usize,
    count: u64,
    workers: u64,
    submitted: Submitted,
    errors: Arc<Mutex<Vec<String>>>,
) -> anyhow::Result<u64> {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let refusals = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (client, next, submitted, refusals, errors) = (
            client.clone(),
            next.clone(),
            submitted.clone(),
            refusals.clone(),
            errors.clone(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(());
                }
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&i.to_le_bytes());
                seed[8] = hospital as u8 + 1;
                seed[31] = 0xbe;
                let member = Identity::from_secret_bytes(&seed)?.account().to_hex();
                let tx = TxRequest::RegisterMember {
                    member,
                    role: Role::Patient,
                };
                loop {
                    let started = Instant::now();
                    match client.tx_submit(tx.clone()).await {
                        Ok(sub) => {
                            submitted
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(sub.id, started);
                            break;
                        }
                        Err(e) if format!("{e:#}").contains("too far ahead") => {
                            refusals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => {
                            // Counted and reported; the load goes on.
                            let mut errs = errors.lock().unwrap_or_else(|p| p.into_inner());
                            errs.push(format!("{e:#}"));
                            break;
                        }
                    }
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(refusals.load(std::sync::atomic::Ordering::Relaxed))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let total = arg("--txs", 20_000);
    let interval_ms = arg("--block-interval-ms", 250);
    let workers = arg("--workers", 32);
    let idle_s = arg("--idle-s", 30);
    let mut net = TestNet::create(4, 0, 0, 0, interval_ms)?;
    for n in HOSPITALS {
        net.node(n).start()?;
    }
    for n in HOSPITALS {
        let node = net.nodes.iter().find(|x| x.name == n).expect("node");
        wait_for(
            &format!("{n} to join"),
            Duration::from_secs(120),
            || async {
                let st = node.status().await?;
                Ok((st.peers >= 3 && st.height >= 2).then_some(()))
            },
        )
        .await?;
    }

    // (c) Memory of idle nodes after they ran `idle_s` seconds.
    let started = net
        .nodes
        .iter()
        .find(|n| n.name == HOSPITALS[0])
        .expect("node")
        .status()
        .await?
        .uptime_ms;
    tokio::time::sleep(Duration::from_millis(
        (idle_s * 1000).saturating_sub(started),
    ))
    .await;
    let pids: Vec<u32> = HOSPITALS
        .iter()
        .map(|h| {
            net.nodes
                .iter()
                .find(|n| n.name == *h)
                .and_then(|n| n.pid())
                .expect("pid")
        })
        .collect();
    let idle_rss: Vec<f64> = pids.iter().map(|p| rss_mib(*p)).collect::<Result<_, _>>()?;

    // (a), (b) Load through every hospital's API; finality seen from hospital-1.
    let watcher = connect(&net, HOSPITALS[0]).await?;
    let mut events = watcher.events(vec![Topic::Blocks]).await?;
    let start_height = net.nodes[0].status().await?.height;
    let submitted: Submitted = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let t0 = Instant::now();
    let mut loads = tokio::task::JoinSet::new();
    let per_hospital = total / HOSPITALS.len() as u64;
    for (i, h) in HOSPITALS.iter().enumerate() {
        let client = connect(&net, h).await?;
        loads.spawn(load(
            client,
            i,
            per_hospital,
            workers,
            submitted.clone(),
            errors.clone(),
        ));
    }
    let expected = per_hospital * HOSPITALS.len() as u64;
    let mut refusals = 0;
    let mut loads_done_at: Option<Instant> = None;
    let mut finalized: HashMap<String, Instant> = HashMap::new();
    // (height, bench time the block was seen, load txs in it)
    let mut blocks: Vec<(u64, Instant, usize)> = Vec::new();
    let mut seen = start_height;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        anyhow::ensure!(Instant::now() < deadline, "load did not finish");
        while let Some(r) = loads.try_join_next() {
            refusals += r??;
        }
        if loads.is_empty() && loads_done_at.is_none() {
            loads_done_at = Some(Instant::now());
        }
        let accepted = submitted.lock().unwrap_or_else(|p| p.into_inner()).len();
        if loads_done_at.is_some() && finalized.len() >= accepted {
            break;
        }
        // Accepted but not final 60 s after the last submission: lost.
        if loads_done_at.is_some_and(|t| t.elapsed() > Duration::from_secs(60)) {
            break;
        }
        let tip = match tokio::time::timeout(Duration::from_secs(30), events.next()).await {
            Ok(Some(Ok(Event::Block { height, .. }))) => height,
            Ok(Some(_)) => continue,
            Ok(None) => anyhow::bail!("event stream closed"),
            Err(_) => anyhow::bail!(
                "no block for 30 s ({} of {expected} final)",
                finalized.len()
            ),
        };
        let now = Instant::now();
        while seen < tip {
            seen += 1;
            let b: BlockSummary = watcher.chain_block(seen).await?;
            let mut ours = 0;
            for t in b.txs {
                if t.kind == "register-member" {
                    finalized.entry(t.id).or_insert(now);
                    ours += 1;
                }
            }
            blocks.push((seen, now, ours));
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let errors = errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let loaded_rss: Vec<f64> = pids.iter().map(|p| rss_mib(*p)).collect::<Result<_, _>>()?;

    let submitted = submitted.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let lost = submitted
        .keys()
        .filter(|id| !finalized.contains_key(*id))
        .count();
    let expected = finalized.len() as u64;
    let mut latency: Vec<f64> = finalized
        .iter()
        .filter_map(|(id, done)| {
            submitted
                .get(id)
                .map(|s| done.saturating_duration_since(*s).as_secs_f64() * 1000.0)
        })
        .collect();
    latency.sort_by(|a, b| a.total_cmp(b));
    // Sustained rate: between the blocks where 10% and 90% of the load was final.
    let (mut acc, mut from, mut to) = (0usize, None, None);
    for &(h, at, n) in &blocks {
        acc += n;
        if from.is_none() && acc as u64 >= expected / 10 {
            from = Some((h, at, acc));
        }
        if to.is_none() && acc as u64 >= expected * 9 / 10 {
            to = Some((h, at, acc));
        }
    }
    let steady = match (from, to) {
        (Some((_, a, na)), Some((_, b, nb))) if b > a => {
            (nb - na) as f64 / b.duration_since(a).as_secs_f64()
        }
        _ => f64::NAN,
    };
    let loaded_blocks: Vec<&(u64, Instant, usize)> = blocks.iter().filter(|b| b.2 > 0).collect();
    let mean_interval_ms = match (loaded_blocks.first(), loaded_blocks.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            b.1.duration_since(a.1).as_secs_f64() * 1000.0 / (b.0 - a.0) as f64
        }
        _ => f64::NAN,
    };
    let max_block = blocks.iter().map(|b| b.2).max().unwrap_or(0);
    let out = json!({
        "finalized_tx_per_s": { "overall": expected as f64 / elapsed, "steady_10_to_90pct": steady },
        "txs": expected,
        "elapsed_s": elapsed,
        "blocks_with_load": loaded_blocks.len(),
        "max_txs_in_a_block": max_block,
        "mean_block_interval_ms": mean_interval_ms,
        "latency_submit_to_final_ms": {
            "n": latency.len(),
            "p50": percentile(&latency, 0.5),
            "p99": percentile(&latency, 0.99),
            "max": latency.last(),
        },
        "accepted_not_final": lost,
        "submit_errors": { "n": errors.len(), "first": errors.first() },
        "nonce_gap_refusals": refusals,
        "rss_mib": {
            "idle_after_s": idle_s,
            "idle": idle_rss,
            "after_load": loaded_rss,
        },
        "config": {
            "validators": 4,
            "block_interval_ms": interval_ms,
            "workers_per_hospital": workers,
            "tx_kind": "register_member (each hospital from its own account)",
        },
        "machine": { "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        "note": "4 qward processes (dev profile) and this client on one machine; latency is the tx_submit call to the finalized block's event at hospital-1"
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
