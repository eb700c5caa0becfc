//! Benchmark of key agreement and messaging between two real `qward`
//! processes on 127.0.0.1 (a patient and a hospital of a 4-validator
//! devnet): time to agree a 256-bit hybrid key at 10 km; latency p50/p99
//! (send call to signed receipt) one record at a time, and messages per
//! second with a queue of records in flight, for 10 KiB and 1 MiB records.
//! Prints one JSON object.
//!
//! `cargo run -p qward-tests --example bench_messaging -- [--sessions N]
//! [--small N] [--large N]` (or `./scripts/bench-messaging`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonrpsee::core::client::Subscription;
use qward_core::api::{DeliveryState, Event, RecordKindName, Topic};
use qward_node::api::{ApiClient, Cookie, QwardApiClient};
use qward_node::datadir::DataDir;
use qward_tests::bench::{arg, percentile};
use qward_tests::{TestNet, wait_for, workspace_root};
use serde_json::json;

fn summary(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(|a, b| a.total_cmp(b));
    let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    json!({ "n": ms.len(), "mean_ms": mean, "p50_ms": percentile(&ms, 0.5), "p99_ms": percentile(&ms, 0.99), "max_ms": ms.last() })
}

async fn messages(
    client: &ApiClient,
    events: &mut Subscription<Event>,
    fhir: &str,
    count: usize,
    in_flight: usize,
) -> anyhow::Result<serde_json::Value> {
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let mut delivered: HashMap<String, Instant> = HashMap::new();
    let start = Instant::now();
    // Keep a bounded number in flight, as a busy sender would.
    let mut submitted = 0;
    let mut send_ms = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while delivered.len() < count {
        while submitted < count && submitted - delivered.len() < in_flight {
            let t = Instant::now();
            let info = client
                .send(
                    "hospital-1".into(),
                    RecordKindName::Phr,
                    fhir.to_string(),
                    None,
                )
                .await?;
            send_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            sent_at.insert(info.record_id, Instant::now());
            submitted += 1;
        }
        match tokio::time::timeout(Duration::from_secs(30), events.next()).await {
            Ok(Some(Ok(Event::Message(m)))) => {
                if matches!(m.state, DeliveryState::Delivered | DeliveryState::Anchored)
                    && sent_at.contains_key(&m.record_id)
                {
                    delivered.entry(m.record_id).or_insert_with(Instant::now);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => anyhow::bail!("event stream closed"),
            Err(_) => anyhow::bail!("no delivery for 30 s ({} of {count})", delivered.len()),
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out");
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let lat: Vec<f64> = delivered
        .iter()
        .map(|(r, t)| t.duration_since(sent_at[r]).as_secs_f64() * 1000.0)
        .collect();
    let mut s = summary(lat);
    s["bytes"] = json!(fhir.len());
    s["send_call"] = summary(send_ms);
    s["in_flight"] = json!(in_flight);
    s["messages_per_s"] = json!(count as f64 / elapsed);
    s["mbit_per_s"] = json!(count as f64 * fhir.len() as f64 * 8.0 / elapsed / 1e6);
    Ok(s)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let sessions = arg("--sessions", 10) as usize;
    let small = arg("--small", 300) as usize;
    let large = arg("--large", 30) as usize;
    let mut net = TestNet::create(4, 0, 1, 0, 500)?;
    for n in [
        "hospital-1",
        "hospital-2",
        "hospital-3",
        "hospital-4",
        "patient-1",
    ] {
        net.node(n).start()?;
    }
    let patient = net
        .nodes
        .iter()
        .find(|n| n.name == "patient-1")
        .expect("patient");
    wait_for("the devnet", Duration::from_secs(120), || async {
        let st = patient.status().await?;
        Ok((st.peers >= 3 && st.height >= 2).then_some(()))
    })
    .await?;
    let cookie = DataDir::new(&patient.dir).cookie_file();
    let url = format!("ws://127.0.0.1:{}", patient.api_port);
    let client =
        ApiClient::connect_with_timeout(&url, &Cookie::read(&cookie)?, Duration::from_secs(120))
            .await?;
    let mut events = client.events(vec![Topic::Messages]).await?;

    let mut agree_ms = Vec::new();
    let mut key_bits = Vec::new();
    for _ in 0..sessions {
        let t = Instant::now();
        let s = client
            .key_agree("hospital-1".into(), Some(true))
            .await?
            .ok_or_else(|| anyhow::anyhow!("the node answered no session"))?;
        agree_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(s.abort_reason.is_none(), "session aborted: {s:?}");
        key_bits.push(s.final_key_bits);
    }
    let example = workspace_root().join("examples/records/phr-ada-quill.json");
    let small_fhir = String::from_utf8(qward_tests::phr_of_size(&example, 10 << 10))?;
    let large_fhir = String::from_utf8(qward_tests::phr_of_size(&example, 1 << 20))?;
    // Latency one at a time, then throughput with a queue of 32 (10 KiB) or
    // 8 (1 MiB) records in flight.
    let lat_small = messages(&client, &mut events, &small_fhir, small.min(50), 1).await?;
    let lat_large = messages(&client, &mut events, &large_fhir, large.min(20), 1).await?;
    let m_small = messages(&client, &mut events, &small_fhir, small, 32).await?;
    let m_large = messages(&client, &mut events, &large_fhir, large, 8).await?;
    let mut agree = summary(agree_ms);
    agree["distance_km"] = json!(10.0);
    agree["qubits_per_session"] = json!(200_000);
    agree["hybrid_key_bits"] = json!(256);
    agree["qkd_key_bits_mean"] =
        json!(key_bits.iter().sum::<u64>() as f64 / key_bits.len().max(1) as f64);
    let out = json!({
        "key_agreement": agree,
        "latency_10KiB_one_at_a_time": lat_small,
        "latency_1MiB_one_at_a_time": lat_large,
        "throughput_10KiB": m_small,
        "throughput_1MiB": m_large,
        "machine": { "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        "note": "5 qward processes (4 validators + the patient) on one machine; latency is send call to signed receipt"
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
