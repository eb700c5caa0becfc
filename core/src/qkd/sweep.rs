//! Parameter sweeps behind `qward qkd sweep`: key rate against distance (with
//! the asymptotic Shor–Preskill and finite-key theory curves), QBER against
//! Eve's fraction (theory p/4), and Cascade efficiency against QBER.

use rand_core::{CryptoRng, Rng};
use serde::{Deserialize, Serialize};

use super::bits::{BernoulliWords, PackedBits};
use super::cascade::{CascadeConfig, reconcile};
use super::channel::ChannelParams;
use super::decoy::{DecoyLink, WEAK_DECOY, best_over_mu};
use super::error::QkdError;
use super::estimate::binary_entropy;
use super::finite_key::{SecurityParams, expected_key_length_gllp, multiphoton_share};
use super::simulate::{SimulationParams, simulate};

/// Block sizes (qubits sent) of the finite-key theory curves.
pub const FINITE_KEY_BLOCKS: [u64; 4] = [10_000, 100_000, 1_000_000, 10_000_000];

/// Error-correction efficiency assumed by the finite-key theory curves.
pub const THEORY_EC_EFFICIENCY: f64 = 1.1;

/// Error-correction efficiency of the decoy-state and GLLP curves (GYS's f).
pub const DECOY_EC_EFFICIENCY: f64 = 1.22;

/// One point of the key rate against distance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistancePoint {
    pub distance_km: f64,
    pub qubits_sent: u64,
    pub final_key_bits: u64,
    /// Simulated secret bits per pulse sent.
    pub key_rate: f64,
    pub qber: f64,
    pub aborted: bool,
    /// Asymptotic Shor–Preskill bits per pulse: (clicks / 2) (1 - 2 h(Q)).
    pub theory_asymptotic: f64,
    /// Finite-key bits per pulse for each of [`FINITE_KEY_BLOCKS`].
    pub theory_finite: Vec<f64>,
    /// Asymptotic bits per pulse of a laser source with vacuum + weak
    /// ([`WEAK_DECOY`]) decoy states, best signal intensity.
    pub theory_decoy: f64,
    /// The same source without decoys (GLLP), best intensity.
    pub theory_gllp: f64,
    /// The PLOB bound of the fibre, bits per use.
    pub plob: f64,
}

/// Theory bits per pulse at `channel` for a block of `block` pulses.
pub fn finite_key_rate(
    channel: &ChannelParams,
    block: u64,
    sample_fraction: f64,
    sec: &SecurityParams,
) -> f64 {
    let q = channel.expected_qber(0.0);
    let sifted = (block as f64 * channel.click_prob() / 2.0).floor() as u64;
    let delta = multiphoton_share(channel.source, channel.click_prob());
    expected_key_length_gllp(sifted, sample_fraction, q, THEORY_EC_EFFICIENCY, sec, delta) as f64
        / block as f64
}

/// Asymptotic bits per pulse at `channel`: Shor–Preskill (1 - 2h(Q)) for
/// single photons; for a laser source (no decoys) the GLLP rate
/// (1 - delta)(1 - h(Q / (1 - delta))) - h(Q), since counting its
/// multi-photon pulses as single photons overstates the key.
pub fn asymptotic_rate(channel: &ChannelParams) -> f64 {
    let c = channel.click_prob();
    let q = channel.expected_qber(0.0);
    let delta = multiphoton_share(channel.source, c);
    if delta >= 1.0 {
        return 0.0;
    }
    // GLLP with error correction at the Shannon limit: the single-photon
    // share's privacy, less the leak of correcting every bit.
    let single = 1.0 - delta;
    (c / 2.0 * (single * (1.0 - binary_entropy((q / single).min(0.5))) - binary_entropy(q)))
        .max(0.0)
}

/// Runs the protocol at each distance.
pub fn distance_sweep<R: Rng + CryptoRng + ?Sized>(
    base: &SimulationParams,
    distances_km: &[f64],
    rng: &mut R,
) -> Result<Vec<DistancePoint>, QkdError> {
    let mut out = Vec::with_capacity(distances_km.len());
    let laser = DecoyLink::from_channel(&base.channel, DECOY_EC_EFFICIENCY);
    for &d in distances_km {
        let mut p = *base;
        p.channel.distance_km = d;
        p.channel.validate()?;
        let run = simulate(&p, rng)?;
        out.push(DistancePoint {
            distance_km: d,
            qubits_sent: run.report.qubits_sent,
            final_key_bits: run.report.final_key_bits,
            key_rate: run.report.final_key_bits as f64 / run.report.qubits_sent.max(1) as f64,
            qber: run.report.qber,
            aborted: run.report.aborted,
            theory_asymptotic: asymptotic_rate(&p.channel),
            theory_decoy: best_over_mu(|mu| laser.decoy_rate(d, mu, WEAK_DECOY)),
            theory_gllp: best_over_mu(|mu| laser.gllp_rate(d, mu)),
            plob: laser.plob(d),
            theory_finite: FINITE_KEY_BLOCKS
                .iter()
                .map(|&b| {
                    finite_key_rate(
                        &p.channel,
                        b,
                        p.protocol.sample_fraction,
                        &p.protocol.security,
                    )
                })
                .collect(),
        });
    }
    Ok(out)
}

/// One point of QBER against Eve's intercept fraction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvePoint {
    pub eve_fraction: f64,
    pub qber: f64,
    pub qber_upper_bound: f64,
    /// The channel model's prediction (p/4 on an ideal channel).
    pub theory_qber: f64,
    pub eve_detected: bool,
    pub final_key_bits: u64,
}

/// Runs the protocol at each intercept fraction.
pub fn eve_sweep<R: Rng + CryptoRng + ?Sized>(
    base: &SimulationParams,
    fractions: &[f64],
    rng: &mut R,
) -> Result<Vec<EvePoint>, QkdError> {
    let mut out = Vec::with_capacity(fractions.len());
    for &f in fractions {
        let mut p = *base;
        p.eve_fraction = f;
        let run = simulate(&p, rng)?;
        out.push(EvePoint {
            eve_fraction: f,
            qber: run.report.qber,
            qber_upper_bound: run.report.qber_upper_bound,
            theory_qber: p.channel.expected_qber(f),
            eve_detected: run.report.eve_detected,
            final_key_bits: run.report.final_key_bits,
        });
    }
    Ok(out)
}

/// Cascade's figures at one QBER and block size, averaged over trials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CascadePoint {
    pub qber: f64,
    pub block_bits: u64,
    pub trials: u64,
    /// Mean leaked bits / (n h(QBER)), QBER being the channel's crossover probability.
    pub efficiency: f64,
    /// Fraction of blocks with errors left after Cascade.
    pub frame_error_rate: f64,
    pub mean_rounds: f64,
}

/// Keys of `n` bits and a copy through a binary symmetric channel.
pub fn noisy_key_pair<R: Rng + ?Sized>(
    n: usize,
    qber: f64,
    rng: &mut R,
) -> Result<(PackedBits, PackedBits), QkdError> {
    let a = PackedBits::random(n, rng);
    let mut b = a.clone();
    let mut flips = BernoulliWords::new(qber)?;
    for w in b.words_mut() {
        *w ^= flips.next_word(rng);
    }
    b.fix_tail();
    Ok((a, b))
}

/// Measures Cascade on random blocks (the estimated QBER handed to Cascade is the true one).
pub fn cascade_point<R: Rng + ?Sized>(
    qber: f64,
    block_bits: usize,
    trials: u64,
    config: &CascadeConfig,
    rng: &mut R,
) -> Result<CascadePoint, QkdError> {
    if !(qber > 0.0 && qber < 0.5) || block_bits == 0 || trials == 0 {
        return Err(QkdError::InvalidParameter(format!(
            "cascade sweep needs 0 < QBER < 0.5, blocks and trials > 0 (got {qber}, {block_bits}, {trials})"
        )));
    }
    let (mut leaked, mut failures, mut rounds) = (0u64, 0u64, 0u64);
    for _ in 0..trials {
        let (a, b) = noisy_key_pair(block_bits, qber, rng)?;
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let r = reconcile(a.clone(), b, qber, seed, config)?;
        leaked += r.leaked_bits;
        rounds += r.rounds;
        failures += u64::from(r.corrected != a);
    }
    let t = trials as f64;
    Ok(CascadePoint {
        qber,
        block_bits: block_bits as u64,
        trials,
        efficiency: leaked as f64 / t / (block_bits as f64 * binary_entropy(qber)),
        frame_error_rate: failures as f64 / t,
        mean_rounds: rounds as f64 / t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qkd::channel::Source;
    use crate::qkd::finite_key::shor_preskill_rate;

    #[test]
    fn the_asymptotic_curve_of_a_laser_charges_error_correction_on_every_bit() {
        let mut c = ChannelParams {
            source: Source::WeakCoherent {
                mean_photon_number: 0.1,
            },
            ..ChannelParams::default()
        };
        let (clicks, q) = (c.click_prob(), c.expected_qber(0.0));
        let delta = multiphoton_share(c.source, clicks);
        let single = 1.0 - delta;
        let want = clicks / 2.0 * (single * (1.0 - binary_entropy(q / single)) - binary_entropy(q));
        assert!((asymptotic_rate(&c) - want).abs() < 1e-15);
        // Below the single-photon rate of the same clicks.
        assert!(asymptotic_rate(&c) < clicks / 2.0 * shor_preskill_rate(q));
        c.source = Source::SinglePhoton;
        let sp = c.click_prob() / 2.0 * shor_preskill_rate(c.expected_qber(0.0));
        assert!((asymptotic_rate(&c) - sp).abs() < 1e-15);
    }
}
