//! The secure key length from a finite-key bound (leftover hash lemma with a
//! Serfling bound on the phase error rate), and the asymptotic Shor–Preskill rate.
//!
//! l = floor( n (1 - h(Q_upper)) - leak - log2(2/eps_cor) - 2 log2(1/(2 eps_pa)) )
//!
//! where n is the key length after the sample is removed, Q_upper the Serfling
//! upper bound from [`super::estimate::qber_upper_bound`] at confidence eps_pe,
//! leak every bit disclosed by error correction and verification, eps_cor the
//! verification tag's collision probability (2^-tag_bits) and eps_pa the
//! privacy-amplification (leftover hash) parameter.

use serde::{Deserialize, Serialize};

use super::channel::Source;
use super::error::QkdError;
use super::estimate::{binary_entropy, qber_upper_bound};

/// The security parameters of the finite-key bound.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SecurityParams {
    /// Failure probability of the QBER upper bound (parameter estimation).
    pub eps_pe: f64,
    /// Bits of the verification tag; eps_cor = 2^-tag_bits.
    pub tag_bits: u32,
    /// Privacy-amplification failure probability.
    pub eps_pa: f64,
}

impl Default for SecurityParams {
    fn default() -> Self {
        Self {
            eps_pe: 1e-10,
            tag_bits: 64,
            eps_pa: 1e-10,
        }
    }
}

impl SecurityParams {
    pub fn validate(&self) -> Result<(), QkdError> {
        for (name, v) in [("eps_pe", self.eps_pe), ("eps_pa", self.eps_pa)] {
            if !(v > 0.0 && v < 1.0) {
                return Err(QkdError::InvalidParameter(format!(
                    "{name} must be in (0, 1), not {v}"
                )));
            }
        }
        if self.tag_bits != 64 {
            return Err(QkdError::InvalidParameter(format!(
                "tag_bits must be 64 (the verification hash's output), not {}",
                self.tag_bits
            )));
        }
        Ok(())
    }

    /// log2(2/eps_cor) + 2 log2(1/(2 eps_pa)): the bits the bound always subtracts.
    pub fn fixed_cost_bits(&self) -> f64 {
        (f64::from(self.tag_bits) + 1.0) + 2.0 * (1.0 / (2.0 * self.eps_pa)).log2()
    }

    /// The secrecy parameter in the composable accounting of Tomamichel,
    /// Lim, Gisin and Renner (Nat. Commun. 3, 634, 2012): a parameter
    /// estimate failing with probability eps_pe costs 2 sqrt(eps_pe), not
    /// eps_pe, so eps_sec = 2 sqrt(eps_pe) + eps_pa (about 2e-5 with the
    /// defaults, not the 2e-10 a linear sum would claim). A laser run adds
    /// eps_pe for its bound on the multi-photon pulses
    /// ([`multiphoton_share_finite`]).
    pub fn eps_sec(&self) -> f64 {
        2.0 * self.eps_pe.sqrt() + self.eps_pa
    }

    /// The correctness parameter: the chance that the keys differ although
    /// the verification tags matched, 2^-tag_bits.
    pub fn eps_cor(&self) -> f64 {
        2f64.powi(-(self.tag_bits as i32))
    }
}

/// The finite-key length for `n` key bits with QBER bound `qber_upper` after
/// `leaked_bits` were disclosed, from a single-photon source; zero when the
/// bound leaves nothing.
pub fn secure_key_length(n: u64, qber_upper: f64, leaked_bits: u64, sec: &SecurityParams) -> u64 {
    secure_key_length_gllp(n, qber_upper, leaked_bits, sec, 0.0)
}

/// The share of detections that may come from multi-photon pulses, which a
/// photon-number-splitting eavesdropper reads without causing errors
/// (Gottesman, Lo, Lütkenhaus and Preskill 2004, "GLLP"): at most
/// P(n >= 2) / gain, with P(n >= 2) = 1 - e^-mu (1 + mu) for a weak coherent
/// pulse of mean photon number mu and `gain` the fraction of pulses Bob
/// detected; 0 for a single-photon source. Without decoy states this worst
/// case (every multi-photon pulse detected) is all a sender can assume.
pub fn multiphoton_share(source: Source, gain: f64) -> f64 {
    match source {
        Source::SinglePhoton => 0.0,
        Source::WeakCoherent {
            mean_photon_number: mu,
        } => {
            let multi = 1.0 - (-mu).exp() * (1.0 + mu);
            if gain > 0.0 {
                (multi / gain).min(1.0)
            } else {
                1.0
            }
        }
    }
}

/// [`multiphoton_share`] for a finite run: of `sent` pulses Bob detected
/// `detected`, and the number of multi-photon pulses is bounded above
/// (Bernstein's inequality, failing with probability `eps`) rather than
/// taken at its expected value P(n >= 2) x sent.
pub fn multiphoton_share_finite(source: Source, sent: u64, detected: u64, eps: f64) -> f64 {
    match source {
        Source::SinglePhoton => 0.0,
        Source::WeakCoherent {
            mean_photon_number: mu,
        } => {
            if detected == 0 {
                return 1.0;
            }
            let multi = 1.0 - (-mu).exp() * (1.0 + mu);
            let (n, ln) = (sent as f64, (1.0 / eps).ln());
            // Bernstein: each pulse is multi-photon with probability
            // `multi`, independently; the count exceeds its mean by more
            // than sqrt(2 n p (1 - p) ln(1/eps)) + (2/3) ln(1/eps) with
            // probability at most eps.
            let upper = n * multi + (2.0 * n * multi * (1.0 - multi) * ln).sqrt() + 2.0 * ln / 3.0;
            (upper / detected as f64).min(1.0)
        }
    }
}

/// The finite-key length with GLLP: of `n` bits, only the `(1 - delta)`
/// share from single photons is secret, and the phase error among them is
/// at most `qber_upper / (1 - delta)` (every error charged to them):
/// `l = n (1 - delta) (1 - h(qber_upper / (1 - delta))) - leak - fixed`.
/// `delta` is [`multiphoton_share`]; 0 gives the single-photon bound.
pub fn secure_key_length_gllp(
    n: u64,
    qber_upper: f64,
    leaked_bits: u64,
    sec: &SecurityParams,
    delta: f64,
) -> u64 {
    if !(0.0..1.0).contains(&delta) {
        return 0;
    }
    let single = 1.0 - delta;
    let phase = (qber_upper / single).min(0.5);
    let l = n as f64 * single * (1.0 - binary_entropy(phase))
        - leaked_bits as f64
        - sec.fixed_cost_bits();
    if l > 0.0 { l.floor() as u64 } else { 0 }
}

/// The finite-key length for `sifted` bits with `sample_fraction` sampled, a
/// QBER of `qber` observed exactly, and error correction at `ec_efficiency`.
pub fn expected_key_length(
    sifted: u64,
    sample_fraction: f64,
    qber: f64,
    ec_efficiency: f64,
    sec: &SecurityParams,
) -> u64 {
    expected_key_length_gllp(sifted, sample_fraction, qber, ec_efficiency, sec, 0.0)
}

/// [`expected_key_length`] for a source whose detections hold a share
/// `delta` from multi-photon pulses ([`multiphoton_share`]).
pub fn expected_key_length_gllp(
    sifted: u64,
    sample_fraction: f64,
    qber: f64,
    ec_efficiency: f64,
    sec: &SecurityParams,
    delta: f64,
) -> u64 {
    let k = ((sifted as f64) * sample_fraction).ceil() as u64;
    let n = sifted.saturating_sub(k);
    let errors = (qber * k as f64).round() as u64;
    let qu = qber_upper_bound(errors, k, n, sec.eps_pe);
    let leak =
        (ec_efficiency * n as f64 * binary_entropy(qber)).ceil() as u64 + u64::from(sec.tag_bits);
    secure_key_length_gllp(n, qu, leak, sec, delta)
}

/// Asymptotic BB84 key fraction per sifted bit (Shor–Preskill): 1 - 2 h(Q), at least 0.
pub fn shor_preskill_rate(qber: f64) -> f64 {
    (1.0 - 2.0 * binary_entropy(qber)).max(0.0)
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    #[test]
    fn key_length_shrinks_with_leak_and_qber() {
        let s = SecurityParams::default();
        let a = secure_key_length(100_000, 0.02, 10_000, &s);
        let b = secure_key_length(100_000, 0.05, 10_000, &s);
        let c = secure_key_length(100_000, 0.02, 20_000, &s);
        assert!(a > b && a > c && a > 0);
        assert_eq!(secure_key_length(100, 0.0, 0, &s), 0);
        assert_eq!(secure_key_length(1_000_000, 0.5, 0, &s), 0);
    }

    #[test]
    fn composable_parameters_charge_the_estimate_its_square_root() {
        let s = SecurityParams::default();
        // 2 sqrt(1e-10) + 1e-10 = 2.00001e-5.
        assert!((s.eps_sec() - 2.00001e-5).abs() < 1e-15, "{}", s.eps_sec());
        assert_eq!(s.eps_cor(), 2f64.powi(-64));
    }

    #[test]
    fn gllp_leaves_nothing_when_multiphoton_pulses_could_explain_every_click() {
        let s = SecurityParams::default();
        let single = secure_key_length(1_000_000, 0.02, 50_000, &s);
        assert_eq!(
            secure_key_length_gllp(1_000_000, 0.02, 50_000, &s, 0.0),
            single
        );
        let weak = Source::WeakCoherent {
            mean_photon_number: 0.5,
        };
        // mu = 0.5: P(n >= 2) = 1 - 1.5 e^-0.5 = 0.0902.
        let d = multiphoton_share(weak, 0.25);
        assert!((d - 0.0902 / 0.25).abs() < 1e-3, "{d}");
        let l = secure_key_length_gllp(1_000_000, 0.02, 50_000, &s, d);
        assert!(l > 0 && l < single, "{l} vs {single}");
        // The GYS channel at 0 km: Bob detects 4.5% of photons, a gain of
        // about mu x 4.5% = 2.2% < 9%: no key at any distance.
        assert_eq!(multiphoton_share(weak, 0.5 * 0.045), 1.0);
        assert_eq!(secure_key_length_gllp(1_000_000, 0.0, 0, &s, 1.0), 0);
        assert_eq!(multiphoton_share(Source::SinglePhoton, 0.01), 0.0);
    }

    #[test]
    fn the_multiphoton_bound_of_a_finite_run_lies_above_its_expectation() {
        let weak = Source::WeakCoherent {
            mean_photon_number: 0.1,
        };
        // A gain of 5%: the expected share is P(n >= 2) / 0.05.
        let expected = multiphoton_share(weak, 0.05);
        let mut last = f64::MAX;
        for sent in [10_000u64, 1_000_000, 100_000_000] {
            let bound = multiphoton_share_finite(weak, sent, sent / 20, 1e-10);
            assert!(bound > expected && bound < last, "{sent}: {bound}");
            last = bound;
        }
        // 10^8 pulses: within 2% of the expectation.
        assert!(last / expected < 1.02, "{last} vs {expected}");
        assert_eq!(
            multiphoton_share_finite(Source::SinglePhoton, 10, 1, 1e-10),
            0.0
        );
        assert_eq!(multiphoton_share_finite(weak, 10, 0, 1e-10), 1.0);
    }

    #[test]
    fn shor_preskill_vanishes_near_11_percent() {
        assert!(shor_preskill_rate(0.10) > 0.0);
        assert_eq!(shor_preskill_rate(0.111), 0.0);
        assert_eq!(shor_preskill_rate(0.0), 1.0);
    }

    #[test]
    fn bad_epsilons_are_refused() {
        let mut s = SecurityParams::default();
        s.eps_pa = 0.0;
        assert!(s.validate().is_err());
        s = SecurityParams::default();
        s.eps_pe = 1.5;
        assert!(s.validate().is_err());
    }
}
