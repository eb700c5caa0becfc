//! End-to-end tests of the QKD engine against the "done when" list:
//! physics (sifted fraction, QBER under noise and Eve), key agreement, aborts,
//! the finite-key bound, parameter errors, and the wire format of the messages.

#![allow(clippy::field_reassign_with_default)]

use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

use super::bits::PackedBits;
use super::channel::{Channel, ChannelParams};
use super::eve::InterceptResend;
use super::finite_key::secure_key_length;
use super::qubit::QubitBatch;
use super::sift::{matching_bases, sifted_key};
use super::*;

/// Prepares, transmits and measures `n` qubits and sifts them; returns
/// (sifted bits, errors among all sifted bits).
fn sift_and_count(n: usize, channel: ChannelParams, eve: f64, seed: u64) -> (u64, u64) {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let mut ch = Channel::new(channel).unwrap();
    let mut eve = InterceptResend::new(eve).unwrap();
    let (batch, rec) = QubitBatch::prepare(n, &mut rng).unwrap();
    let m = ch
        .transmit(batch, Some(&mut eve), &mut rng)
        .measure(&mut rng);
    let bob_bases = m.bases.select(&m.detected).unwrap();
    let matches = matching_bases(&rec.bases, &m.detected, &bob_bases).unwrap();
    let a = sifted_key(&rec.values, &m.detected, &matches).unwrap();
    let b = sifted_key(&m.results, &m.detected, &matches).unwrap();
    (a.len() as u64, a.hamming_distance(&b).unwrap())
}

fn assert_within_4_sigma(observed: f64, expected: f64, trials: u64, what: &str) {
    let sd = (expected * (1.0 - expected) / trials as f64).sqrt();
    assert!(
        (observed - expected).abs() <= 4.0 * sd.max(1e-12),
        "{what}: observed {observed}, expected {expected} +- 4 x {sd}"
    );
}

const N: usize = 100_000;

#[test]
fn sifted_fraction_is_about_one_half() {
    let (sifted, _) = sift_and_count(N, ChannelParams::ideal(), 0.0, 1);
    assert_within_4_sigma(sifted as f64 / N as f64, 0.5, N as u64, "sifted fraction");
}

#[test]
fn no_noise_no_eve_gives_zero_qber_and_equal_keys() {
    let (sifted, errors) = sift_and_count(N, ChannelParams::ideal(), 0.0, 2);
    assert!(sifted > 0);
    assert_eq!(errors, 0);
    let mut p = SimulationParams::default();
    p.channel = ChannelParams::ideal();
    p.protocol.qubits = N as u64;
    let run = simulate(&p, &mut ChaCha12Rng::seed_from_u64(3)).unwrap();
    assert_eq!(run.report.qber, 0.0);
    assert_eq!(run.bob_report.corrected_bits, 0);
    assert!(!run.report.aborted && run.report.final_key_bits > 0);
    assert!(run.keys_equal);
}

#[test]
fn misalignment_e_gives_qber_about_e() {
    for e in [0.01, 0.03, 0.08] {
        let mut ch = ChannelParams::ideal();
        ch.misalignment = e;
        let (sifted, errors) = sift_and_count(N, ch, 0.0, 4);
        assert_within_4_sigma(
            errors as f64 / sifted as f64,
            e,
            sifted,
            "misalignment QBER",
        );
    }
}

#[test]
fn intercept_resend_gives_a_quarter_and_p_over_4() {
    for p in [1.0, 0.6, 0.2] {
        let (sifted, errors) = sift_and_count(N, ChannelParams::ideal(), p, 5);
        assert_within_4_sigma(
            errors as f64 / sifted as f64,
            p / 4.0,
            sifted,
            "intercept-resend QBER",
        );
    }
}

#[test]
fn lossy_noisy_channel_matches_its_model() {
    let mut ch = ChannelParams::default();
    ch.distance_km = 25.0;
    ch.dark_count_prob = 1e-3;
    ch.source = Source::WeakCoherent {
        mean_photon_number: 0.5,
    };
    let n = 400_000;
    let (sifted, errors) = sift_and_count(n, ch, 0.1, 6);
    assert_within_4_sigma(
        sifted as f64 / n as f64,
        ch.click_prob() / 2.0,
        n as u64,
        "sifted fraction",
    );
    assert_within_4_sigma(
        errors as f64 / sifted as f64,
        ch.expected_qber(0.1),
        sifted,
        "QBER",
    );
}

#[test]
fn noisy_default_channel_gives_equal_keys() {
    for seed in 0..5 {
        let mut p = SimulationParams::default();
        p.protocol.qubits = 200_000;
        let run = simulate(&p, &mut ChaCha12Rng::seed_from_u64(seed)).unwrap();
        assert!(!run.report.aborted, "{:?}", run.report.abort_reason);
        assert!(run.keys_equal && run.report.final_key_bits > 0);
        assert!(run.bob_report.corrected_bits > 0);
        assert_eq!(run.report.final_key_bits, run.bob_report.final_key_bits);
        assert_eq!(run.report.leaked_bits, run.bob_report.leaked_bits);
    }
}

#[test]
fn eve_on_every_qubit_never_yields_a_key() {
    for seed in 0..20 {
        for channel in [ChannelParams::ideal(), ChannelParams::default()] {
            let mut p = SimulationParams::default();
            p.channel = channel;
            p.protocol.qubits = 100_000;
            p.eve_fraction = 1.0;
            let run = simulate(&p, &mut ChaCha12Rng::seed_from_u64(seed)).unwrap();
            assert!(run.report.aborted && run.bob_report.aborted);
            assert!(run.report.eve_detected);
            assert_eq!(run.report.final_key_bits, 0);
            assert!(!run.keys_equal);
            assert!(matches!(
                run.report.abort_reason,
                Some(AbortReason::QberTooHigh { .. })
            ));
            // Both reports carry the estimate that caused the abort: about 1/4.
            for r in [&run.report, &run.bob_report] {
                assert!(r.qber > 0.20 && r.qber < 0.30, "{r:?}");
                assert!(r.qber_upper_bound > r.qber && r.qber_upper_bound > 0.11);
                assert!(r.sample_errors > 0);
            }
            assert_eq!(run.report.sample_errors, run.bob_report.sample_errors);
        }
    }
}

/// Every run: the final key never exceeds the finite-key bound recomputed from
/// its report, and an aborted run holds no key on either side.
#[test]
fn key_length_within_finite_key_bound_and_aborts_hold_no_key() {
    let mut rng = ChaCha12Rng::seed_from_u64(77);
    let mut aborted_runs = 0;
    for (i, (distance, eve)) in [
        (0.0, 0.0),
        (10.0, 0.0),
        (10.0, 0.2),
        (30.0, 0.3),
        (80.0, 0.0),
        (5.0, 0.5),
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = SimulationParams::default();
        p.protocol.qubits = 60_000 + 20_000 * i as u64;
        p.channel.distance_km = distance;
        p.eve_fraction = eve;
        let mut alice = Alice::new(p.protocol).unwrap();
        let mut bob = Bob::new();
        let mut ch = Channel::new(p.channel).unwrap();
        let mut e = InterceptResend::new(eve).unwrap();
        let mut to_bob: Vec<QkdMessage> = alice.start(&mut rng).unwrap();
        while !to_bob.is_empty() {
            let mut to_alice = Vec::new();
            for msg in to_bob.drain(..) {
                let msg = match msg {
                    QkdMessage::Qubits { batch } => QkdMessage::Qubits {
                        batch: ch.transmit(batch, Some(&mut e), &mut rng),
                    },
                    m => m,
                };
                to_alice.extend(bob.handle(msg, &mut rng).unwrap());
            }
            for msg in to_alice {
                to_bob.extend(alice.handle(msg, &mut rng).unwrap());
            }
        }
        for out in [alice.outcome().unwrap(), bob.outcome().unwrap()] {
            let r = &out.report;
            if r.aborted {
                aborted_runs += 1;
                assert!(out.key.is_none() && r.final_key_bits == 0, "{r:?}");
                assert!(r.abort_reason.is_some());
            } else {
                let bound = secure_key_length(
                    r.key_bits_before_amplification,
                    r.qber_upper_bound,
                    r.leaked_bits,
                    &p.protocol.security,
                );
                assert!(r.final_key_bits <= bound && r.final_key_bits > 0);
                assert_eq!(
                    out.key.as_ref().map(|k| k.len_bits() as u64),
                    Some(r.final_key_bits)
                );
            }
        }
    }
    assert!(aborted_runs >= 2, "the sweep should include aborted runs");
}

#[test]
fn bad_parameters_give_clear_errors() {
    let mut rng = ChaCha12Rng::seed_from_u64(1);
    let mut p = SimulationParams::default();
    p.channel.distance_km = -5.0;
    let e = simulate(&p, &mut rng).unwrap_err().to_string();
    assert!(e.contains("distance_km"), "{e}");

    let mut p = SimulationParams::default();
    p.eve_fraction = 1.5;
    let e = simulate(&p, &mut rng).unwrap_err().to_string();
    assert!(e.contains("between 0 and 1"), "{e}");

    let mut p = SimulationParams::default();
    p.protocol.qubits = 0;
    let e = simulate(&p, &mut rng).unwrap_err().to_string();
    assert!(e.contains("qubits must be"), "{e}");

    let mut p = SimulationParams::default();
    p.protocol.qubits = 500;
    match simulate(&p, &mut rng).unwrap_err() {
        QkdError::BlockTooSmall { qubits, min_qubits } => {
            assert_eq!(qubits, 500);
            assert!(min_qubits > 500);
            let mut ok = p;
            ok.protocol.qubits = min_qubits;
            assert!(ok.protocol.validate().is_ok());
            ok.protocol.qubits = min_qubits - 1;
            assert!(ok.protocol.validate().is_err());
        }
        other => panic!("expected BlockTooSmall, got {other}"),
    }
}

/// The machines run over the canonical codec exactly as in memory.
#[test]
fn messages_survive_the_codec_and_bob_rejects_garbage() {
    let mut rng = ChaCha12Rng::seed_from_u64(9);
    let mut params = ProtocolParams::default();
    params.qubits = (qubit::MAX_BATCH_QUBITS + 5000) as u64; // two batches
    let mut alice = Alice::new(params).unwrap();
    let mut bob = Bob::new();
    let mut ch = Channel::new(ChannelParams::default()).unwrap();
    let wire = |m: &QkdMessage| -> QkdMessage {
        let bytes = crate::codec::encode(m).unwrap();
        assert!(
            bytes.len() < 16 << 20,
            "{} is {} bytes",
            m.name(),
            bytes.len()
        );
        crate::codec::decode(&bytes, 16 << 20).unwrap()
    };
    let mut to_bob = alice.start(&mut rng).unwrap();
    assert_eq!(to_bob.len(), 3);
    while !to_bob.is_empty() {
        let mut to_alice = Vec::new();
        for msg in to_bob.drain(..) {
            let msg = match wire(&msg) {
                QkdMessage::Qubits { batch } => QkdMessage::Qubits {
                    batch: ch.transmit(batch, None, &mut rng),
                },
                m => m,
            };
            to_alice.extend(bob.handle(msg, &mut rng).unwrap());
        }
        for msg in to_alice {
            to_bob.extend(alice.handle(wire(&msg), &mut rng).unwrap());
        }
    }
    let (a, b) = (alice.outcome().unwrap(), bob.outcome().unwrap());
    assert!(a.key.is_some() && a.key == b.key);
    assert_eq!(a.report.final_key_bits, b.report.final_key_bits);

    // A message out of order is an error and ends the session, without a panic.
    let mut bob = Bob::new();
    let e = bob.handle(QkdMessage::Verified, &mut rng).unwrap_err();
    assert!(e.to_string().contains("Verified"), "{e}");
    assert_eq!(bob.phase(), Phase::Aborted);
    // Bits set past the declared length are refused by the decoder.
    let bad = crate::codec::encode(&(3usize, vec![u64::MAX])).unwrap();
    assert!(crate::codec::decode::<PackedBits>(&bad, 1 << 10).is_err());
}

/// An honest run too short for its bound to leave a key is short, not
/// eavesdropped: over many seeds, 10^4 and 2 x 10^4 qubits on the default
/// channel never report an eavesdropper (comparing the QBER's upper bound
/// with the tolerance did, on every run).
#[test]
fn honest_short_runs_never_report_an_eavesdropper() {
    for qubits in [10_000u64, 20_000] {
        for seed in 0..40 {
            let mut p = SimulationParams::default();
            p.protocol.qubits = qubits;
            let run = simulate(&p, &mut ChaCha12Rng::seed_from_u64(seed)).unwrap();
            // The run got as far as the estimate: there was a QBER to judge.
            assert!(run.report.sample_size > 0);
            for r in [&run.report, &run.bob_report] {
                assert!(!r.eve_detected, "{qubits} qubits, seed {seed}: {r:?}");
                assert!(
                    !matches!(r.abort_reason, Some(AbortReason::QberTooHigh { .. })),
                    "{qubits} qubits, seed {seed}: {:?}",
                    r.abort_reason
                );
            }
        }
    }
}

/// Weak coherent pulses of mean photon number 0.5 without decoy states, on
/// the GYS channel (Gobby, Yuan and Shields 2004: 0.21 dB/km, detector 4.5%,
/// dark counts 1.7e-6, misalignment 3.3%): multi-photon pulses could explain
/// every click (GLLP), so no distance gives a key, and the run says so
/// without calling it an eavesdropper.
#[test]
fn weak_pulses_without_decoys_give_no_key_on_the_gys_channel() {
    for distance_km in [0.0, 10.0, 50.0] {
        let mut p = SimulationParams::default();
        p.protocol.qubits = 1_000_000;
        p.channel = ChannelParams {
            source: Source::WeakCoherent {
                mean_photon_number: 0.5,
            },
            distance_km,
            loss_db_per_km: 0.21,
            detector_efficiency: 0.045,
            dark_count_prob: 1.7e-6,
            misalignment: 0.033,
        };
        let run = simulate(&p, &mut ChaCha12Rng::seed_from_u64(3)).unwrap();
        assert_eq!(run.report.final_key_bits, 0, "{distance_km} km");
        assert!(!run.report.eve_detected, "{distance_km} km");
        assert!(matches!(
            run.report.abort_reason,
            Some(AbortReason::NoSecretKey { .. })
        ));
    }
    // The same pulses on a good detector still give a key, a smaller one
    // than single photons would.
    let mut weak = SimulationParams::default();
    weak.protocol.qubits = 1_000_000;
    weak.channel.source = Source::WeakCoherent {
        mean_photon_number: 0.1,
    };
    let mut single = weak;
    single.channel.source = Source::SinglePhoton;
    let w = simulate(&weak, &mut ChaCha12Rng::seed_from_u64(4)).unwrap();
    let s = simulate(&single, &mut ChaCha12Rng::seed_from_u64(4)).unwrap();
    assert!(w.report.final_key_bits > 0, "{:?}", w.report.abort_reason);
    assert!(s.report.final_key_bits > w.report.final_key_bits);
}
