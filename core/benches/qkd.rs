//! Criterion benchmarks of the QKD engine: simulated qubits per second,
//! Cascade throughput (efficiency printed alongside), Toeplitz hashing of a
//! 1 Mbit block. Targets (issue 4): >= 20 M qubits/s, Cascade >= 5 Mbit/s
//! with efficiency <= 1.10 (10^4) / 1.07 (10^5), Toeplitz >= 100 Mbit/s.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use qward_core::qkd::amplify::toeplitz_hash;
use qward_core::qkd::cascade::{CascadeConfig, reconcile};
use qward_core::qkd::qubit::QubitBatch;
use qward_core::qkd::sift::{matching_bases, sifted_key};
use qward_core::qkd::sweep::{cascade_point, noisy_key_pair};
use qward_core::qkd::{Channel, ChannelParams, PackedBits};
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;
use std::hint::black_box;

fn qubits(c: &mut Criterion) {
    let mut g = c.benchmark_group("qkd/qubits");
    let n = 1 << 20;
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("prepare_transmit_measure_sift_1M_default_channel", |b| {
        let mut rng = ChaCha12Rng::seed_from_u64(1);
        let mut ch = Channel::new(ChannelParams::default()).expect("valid channel");
        b.iter(|| {
            let (batch, rec) = QubitBatch::prepare(n, &mut rng).expect("batch");
            let m = ch.transmit(batch, None, &mut rng).measure(&mut rng);
            let bob_bases = m.bases.select(&m.detected).expect("mask");
            let matches = matching_bases(&rec.bases, &m.detected, &bob_bases).expect("sift");
            let a = sifted_key(&rec.values, &m.detected, &matches).expect("sift");
            let bk = sifted_key(&m.results, &m.detected, &matches).expect("sift");
            black_box((a, bk))
        });
    });
    g.finish();
}

fn cascade(c: &mut Criterion) {
    let mut g = c.benchmark_group("qkd/cascade");
    g.sample_size(10);
    let cfg = CascadeConfig::default();
    for &n in &[10_000usize, 100_000] {
        for &q in &[0.01, 0.02, 0.05, 0.08] {
            let mut rng = ChaCha12Rng::seed_from_u64(7);
            let trials = if n == 10_000 { 200 } else { 40 };
            let p = cascade_point(q, n, trials, &cfg, &mut rng).expect("cascade point");
            eprintln!(
                "cascade n={n} qber={q}: efficiency {:.4}, frame error rate {:.4}, rounds {:.1}",
                p.efficiency, p.frame_error_rate, p.mean_rounds
            );
            g.throughput(Throughput::Elements(n as u64));
            let (a, bk) = noisy_key_pair(n, q, &mut rng).expect("pair");
            g.bench_with_input(BenchmarkId::new(format!("n{n}"), q), &q, |b, &q| {
                b.iter(|| reconcile(a.clone(), bk.clone(), q, [3; 32], &cfg).expect("cascade"))
            });
        }
    }
    g.finish();
}

fn toeplitz(c: &mut Criterion) {
    let mut g = c.benchmark_group("qkd/toeplitz");
    g.sample_size(10);
    let n = 1 << 20;
    let m = n / 2;
    let mut rng = ChaCha12Rng::seed_from_u64(9);
    let x = PackedBits::random(n, &mut rng);
    let s = PackedBits::random(n + m - 1, &mut rng);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("1Mbit_to_512kbit", |b| {
        b.iter(|| toeplitz_hash(&s, &x, m).expect("hash"))
    });
    g.finish();
}

criterion_group!(benches, qubits, cascade, toeplitz);
criterion_main!(benches);
