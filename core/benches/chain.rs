//! Chain benchmarks: transactions verified (batch signatures) and applied per
//! second, and the auditor's `verify_chain` over a 10,000-block chain.
//!
//! Run: `cargo bench -p qward-core --features test-utils --bench chain`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use qward_core::chain::testkit::TestChain;
use qward_core::chain::verify::{apply_txs, verify_tx_signatures};
use qward_core::chain::{ChainStore, Hash, RecordAnchor, SignedTransaction, TxKind};
use qward_core::identity::Identity;
use qward_core::storage::MemStore;

fn anchors(chain: &mut TestChain, n: u64, offset: u64) -> Vec<SignedTransaction> {
    let patient = Identity::from_secret_bytes(chain.patient.secret_bytes().as_slice())
        .unwrap_or_else(|e| unreachable!("{e}"));
    let recipient = chain.keys[0].account();
    (0..n)
        .map(|i| {
            let i = i + offset;
            chain.sign(
                &patient,
                TxKind::AnchorRecord(RecordAnchor {
                    record_id: Hash::digest("bench/record", &i.to_le_bytes()),
                    ciphertext_hash: Hash::digest("bench/ct", &i.to_le_bytes()),
                    recipient,
                }),
            )
        })
        .collect()
}

fn tx_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("transactions");
    for n in [100u64, 1000] {
        let mut chain = TestChain::new(1, 4);
        let txs = anchors(&mut chain, n, 0);
        let state = chain.state.clone();
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(
            BenchmarkId::new("batch_verify_and_apply", n),
            &txs,
            |b, txs| {
                b.iter(|| {
                    verify_tx_signatures(&state.genesis_hash, black_box(txs))
                        .unwrap_or_else(|e| unreachable!("{e}"));
                    apply_txs(&state, 1, chain.tip.time_ms + 1, txs)
                        .unwrap_or_else(|e| unreachable!("{e}"))
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("single_verify_and_apply", n),
            &txs,
            |b, txs| {
                b.iter(|| {
                    for t in txs {
                        t.verify_signature(&state.genesis_hash)
                            .unwrap_or_else(|e| unreachable!("{e}"));
                    }
                    apply_txs(&state, 1, chain.tip.time_ms + 1, txs)
                        .unwrap_or_else(|e| unreachable!("{e}"))
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("apply_only", n), &txs, |b, txs| {
            b.iter(|| {
                apply_txs(&state, 1, chain.tip.time_ms + 1, black_box(txs))
                    .unwrap_or_else(|e| unreachable!("{e}"))
            })
        });
    }
    group.finish();
}

const BLOCKS: u64 = 10_000;
const TXS_PER_BLOCK: u64 = 10;

fn chain_verify(c: &mut Criterion) {
    let mut chain = TestChain::new(2, 4);
    let store = MemStore::new();
    let cs = ChainStore::new(&store);
    cs.init(&chain.genesis)
        .unwrap_or_else(|e| unreachable!("{e}"));
    for h in 0..BLOCKS {
        let txs = anchors(&mut chain, TXS_PER_BLOCK, h * TXS_PER_BLOCK);
        let cb = chain.commit(txs).clone();
        cs.import_verified(&cb, &chain.state)
            .unwrap_or_else(|e| unreachable!("{e}"));
    }
    let mut group = c.benchmark_group("chain_verify");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BLOCKS));
    group.bench_function(
        format!("blocks_{BLOCKS}_txs_per_block_{TXS_PER_BLOCK}"),
        |b| {
            b.iter(|| {
                let report = cs.verify_chain();
                assert!(report.ok, "{report:?}");
                report.blocks_verified
            })
        },
    );
    group.finish();
}

criterion_group!(benches, tx_throughput, chain_verify);
criterion_main!(benches);
