//! The seed paper's experiment, redone: 15 observations of 20 qubits with Eve
//! (full intercept-resend) in observations 1, 5, 8, 10 and 12, judged by the
//! paper's rule (error rate of at least 50%) and by qward's statistical rule;
//! and the probability of detecting Eve against the number of compared bits.
//!
//! qward's rule is a one-sided binomial test: Eve is declared present when the
//! probability of seeing at least the observed errors from channel noise alone
//! (QBER `noise_qber`) is below `alpha`.

use rand_core::Rng;
use serde::{Deserialize, Serialize};

use super::bits::PackedBits;
use super::channel::{Channel, ChannelParams};
use super::error::QkdError;
use super::eve::InterceptResend;
use super::qubit::QubitBatch;
use super::sift::{matching_bases, sifted_key};

/// Observations with Eve in the seed paper (1-based).
pub const PAPER_EVE_OBSERVATIONS: [u32; 5] = [1, 5, 8, 10, 12];
pub const PAPER_OBSERVATIONS: u32 = 15;
pub const PAPER_QUBITS: usize = 20;

/// qward's statistical rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StatisticalRule {
    /// QBER the channel may cause without Eve.
    pub noise_qber: f64,
    /// Significance level of the test.
    pub alpha: f64,
}

impl Default for StatisticalRule {
    fn default() -> Self {
        Self {
            noise_qber: 0.01,
            alpha: 0.01,
        }
    }
}

/// P(X >= k) for X ~ Binomial(n, p).
pub fn binomial_tail(n: u64, k: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    let mut term = (1.0 - p).powf(n as f64); // P(X = 0)
    let mut below = 0.0;
    for i in 0..k {
        below += term;
        term *= (n - i) as f64 / (i + 1) as f64 * p / (1.0 - p).max(f64::MIN_POSITIVE);
    }
    (1.0 - below).clamp(0.0, 1.0)
}

impl StatisticalRule {
    /// Whether `errors` among `compared` bits reveal Eve.
    pub fn detects(&self, compared: u64, errors: u64) -> bool {
        errors > 0 && binomial_tail(compared, errors, self.noise_qber) < self.alpha
    }

    /// Fewest errors among `compared` bits that reveal Eve.
    pub fn critical_errors(&self, compared: u64) -> Option<u64> {
        (1..=compared).find(|&e| self.detects(compared, e))
    }
}

/// One observation of the paper's experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub observation: u32,
    pub eve_present: bool,
    pub qubits: u64,
    pub matching_bases: u64,
    pub errors: u64,
    pub error_rate: f64,
    /// The paper's rule: error rate of at least 50%.
    pub paper_detected: bool,
    /// qward's binomial test.
    pub qward_detected: bool,
}

/// Sends `qubits` over `channel` with Eve on a fraction; returns (matching bases, errors)
/// comparing every sifted bit, as the paper does.
pub fn observe<R: Rng + ?Sized>(
    qubits: usize,
    channel: &ChannelParams,
    eve_fraction: f64,
    rng: &mut R,
) -> Result<(u64, u64), QkdError> {
    let mut ch = Channel::new(*channel)?;
    let mut eve = InterceptResend::new(eve_fraction)?;
    let (batch, rec) = QubitBatch::prepare(qubits, rng)?;
    let batch = ch.transmit(batch, Some(&mut eve), rng);
    let m = batch.measure(rng);
    let bob_bases = m.bases.select(&m.detected)?;
    let matches = matching_bases(&rec.bases, &m.detected, &bob_bases)?;
    let a: PackedBits = sifted_key(&rec.values, &m.detected, &matches)?;
    let b = sifted_key(&m.results, &m.detected, &matches)?;
    Ok((a.len() as u64, a.hamming_distance(&b)?))
}

/// The 15 observations on an ideal channel.
pub fn paper_observations<R: Rng + ?Sized>(
    rule: &StatisticalRule,
    rng: &mut R,
) -> Result<Vec<Observation>, QkdError> {
    (1..=PAPER_OBSERVATIONS)
        .map(|i| {
            let eve = PAPER_EVE_OBSERVATIONS.contains(&i);
            let (matching, errors) = observe(
                PAPER_QUBITS,
                &ChannelParams::ideal(),
                if eve { 1.0 } else { 0.0 },
                rng,
            )?;
            let rate = if matching > 0 {
                errors as f64 / matching as f64
            } else {
                0.0
            };
            Ok(Observation {
                observation: i,
                eve_present: eve,
                qubits: PAPER_QUBITS as u64,
                matching_bases: matching,
                errors,
                error_rate: rate,
                paper_detected: matching > 0 && rate >= 0.5,
                qward_detected: rule.detects(matching, errors),
            })
        })
        .collect()
}

/// Probability of detecting a full intercept-resend Eve with `k` compared bits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionPoint {
    pub compared_bits: u64,
    /// 1 - (3/4)^k: any error reveals Eve (noiseless channel).
    pub theory_any_error: f64,
    /// P(Binomial(k, 1/4) >= k/2): the paper's 50% rule.
    pub theory_paper_rule: f64,
    /// P(Binomial(k, 1/4) >= critical errors of qward's rule).
    pub theory_statistical: f64,
    /// Monte Carlo with the engine (full Eve, ideal channel), qward's rule.
    pub simulated_statistical: f64,
    /// Monte Carlo with the engine, the paper's rule.
    pub simulated_paper_rule: f64,
}

/// The detection-probability curve for k = 1..=max_compared.
pub fn detection_curve<R: Rng + ?Sized>(
    max_compared: u64,
    trials: u64,
    rule: &StatisticalRule,
    rng: &mut R,
) -> Result<Vec<DetectionPoint>, QkdError> {
    let mut out = Vec::new();
    for k in 1..=max_compared {
        let crit = rule.critical_errors(k);
        let (mut stat, mut paper) = (0u64, 0u64);
        for _ in 0..trials {
            // Send enough qubits for k sifted bits, compare the first k.
            let (mut matching, mut errors) = (0u64, 0u64);
            while matching < k {
                let (m, e) = observe(4 * k as usize, &ChannelParams::ideal(), 1.0, rng)?;
                // Keep the first (k - matching) sifted bits, errors pro rata by sampling.
                let take = (k - matching).min(m);
                let e_take = if m == 0 {
                    0
                } else {
                    hypergeometric_take(m, e, take, rng)
                };
                matching += take;
                errors += e_take;
            }
            stat += u64::from(rule.detects(k, errors));
            paper += u64::from(2 * errors >= k);
        }
        out.push(DetectionPoint {
            compared_bits: k,
            theory_any_error: 1.0 - 0.75f64.powf(k as f64),
            theory_paper_rule: binomial_tail(k, k.div_ceil(2), 0.25),
            theory_statistical: crit.map_or(0.0, |c| binomial_tail(k, c, 0.25)),
            simulated_statistical: stat as f64 / trials as f64,
            simulated_paper_rule: paper as f64 / trials as f64,
        });
    }
    Ok(out)
}

/// Errors among `take` bits drawn without replacement from `m` bits holding `e` errors.
fn hypergeometric_take<R: Rng + ?Sized>(m: u64, e: u64, take: u64, rng: &mut R) -> u64 {
    let (mut left, mut bad, mut got) = (m, e, 0);
    for _ in 0..take {
        if left == 0 {
            break;
        }
        let r = ((u128::from(rng.next_u64()) * u128::from(left)) >> 64) as u64;
        if r < bad {
            bad -= 1;
            got += 1;
        }
        left -= 1;
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_tail_values() {
        assert!((binomial_tail(1, 1, 0.25) - 0.25).abs() < 1e-12);
        assert!((binomial_tail(4, 1, 0.25) - (1.0 - 0.75f64.powi(4))).abs() < 1e-12);
        assert_eq!(binomial_tail(3, 0, 0.3), 1.0);
        assert_eq!(binomial_tail(3, 4, 0.3), 0.0);
    }

    #[test]
    fn statistical_rule_needs_two_errors_in_ten_at_one_percent_noise() {
        let r = StatisticalRule::default();
        assert!(!r.detects(10, 1));
        assert!(r.detects(10, 2));
        assert!(!r.detects(10, 0));
    }
}
