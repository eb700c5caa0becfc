//! The physical channel model: photon source, fibre loss, detector efficiency,
//! dark counts and misalignment, applied to a qubit batch in transit.
//!
//! Order of effects on each pulse: Eve (if any) at Alice's door, then
//! misalignment (the polarisation reference drifts: the state's bit flips in
//! its own basis with probability `misalignment`), then loss (fibre
//! transmittance times detector efficiency; for weak coherent pulses with mean
//! photon number mu a pulse clicks with probability 1 - exp(-mu T)), then dark
//! counts (each of Bob's two detectors fires on its own with `dark_count_prob`;
//! a dark click alone gives a random bit, a dark click together with a signal
//! click is a double click, resolved by a fair coin).

use rand_core::Rng;
use serde::{Deserialize, Serialize};

use super::bits::BernoulliWords;
use super::error::QkdError;
use super::eve::InterceptResend;
use super::qubit::QubitBatch;

/// The photon source at Alice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Source {
    /// An ideal single-photon source.
    SinglePhoton,
    /// An attenuated laser: Poisson photon number with mean `mean_photon_number`.
    WeakCoherent { mean_photon_number: f64 },
}

/// Physical parameters of the link from Alice's source to Bob's detectors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChannelParams {
    pub source: Source,
    /// Fibre length.
    pub distance_km: f64,
    /// Fibre attenuation (0.2 dB/km for standard telecom fibre at 1550 nm).
    pub loss_db_per_km: f64,
    /// Probability that Bob's detector registers a photon that reaches it.
    pub detector_efficiency: f64,
    /// Probability per pulse that one detector fires with no photon.
    pub dark_count_prob: f64,
    /// Probability that the state's bit is flipped by optical misalignment.
    pub misalignment: f64,
}

impl Default for ChannelParams {
    /// A 10 km link with a single-photon source, 0.2 dB/km fibre, 90% detectors,
    /// 10^-6 dark counts and 1% misalignment.
    fn default() -> Self {
        Self {
            source: Source::SinglePhoton,
            distance_km: 10.0,
            loss_db_per_km: 0.2,
            detector_efficiency: 0.9,
            dark_count_prob: 1e-6,
            misalignment: 0.01,
        }
    }
}

impl ChannelParams {
    /// A lossless, noiseless link (every photon arrives, no errors).
    pub fn ideal() -> Self {
        Self {
            source: Source::SinglePhoton,
            distance_km: 0.0,
            loss_db_per_km: 0.2,
            detector_efficiency: 1.0,
            dark_count_prob: 0.0,
            misalignment: 0.0,
        }
    }

    /// Checks every parameter and names the first one out of range.
    pub fn validate(&self) -> Result<(), QkdError> {
        let bad = |what: &str, v: f64, range: &str| {
            Err(QkdError::InvalidParameter(format!(
                "{what} must be {range}, not {v}"
            )))
        };
        if !(self.distance_km >= 0.0 && self.distance_km.is_finite()) {
            return bad("distance_km", self.distance_km, "a finite number >= 0");
        }
        if !(self.loss_db_per_km >= 0.0 && self.loss_db_per_km.is_finite()) {
            return bad(
                "loss_db_per_km",
                self.loss_db_per_km,
                "a finite number >= 0",
            );
        }
        if !(self.detector_efficiency > 0.0 && self.detector_efficiency <= 1.0) {
            return bad("detector_efficiency", self.detector_efficiency, "in (0, 1]");
        }
        if !(0.0..=0.5).contains(&self.dark_count_prob) {
            return bad("dark_count_prob", self.dark_count_prob, "in [0, 0.5]");
        }
        if !(0.0..=0.5).contains(&self.misalignment) {
            return bad("misalignment", self.misalignment, "in [0, 0.5]");
        }
        if let Source::WeakCoherent { mean_photon_number } = self.source
            && !(mean_photon_number > 0.0 && mean_photon_number <= 10.0)
        {
            return bad("mean_photon_number", mean_photon_number, "in (0, 10]");
        }
        Ok(())
    }

    /// Fibre transmittance times detector efficiency.
    pub fn transmittance(&self) -> f64 {
        10f64.powf(-self.loss_db_per_km * self.distance_km / 10.0) * self.detector_efficiency
    }

    /// Probability that a pulse produces a signal click.
    pub fn signal_click_prob(&self) -> f64 {
        let t = self.transmittance();
        match self.source {
            Source::SinglePhoton => t,
            Source::WeakCoherent { mean_photon_number } => -(-mean_photon_number * t).exp_m1(),
        }
    }

    /// Probability that at least one of the two detectors fires in the dark.
    pub fn dark_click_prob(&self) -> f64 {
        1.0 - (1.0 - self.dark_count_prob).powi(2)
    }

    /// Probability that a pulse gives any click.
    pub fn click_prob(&self) -> f64 {
        let (s, d) = (self.signal_click_prob(), self.dark_click_prob());
        s + d - s * d
    }

    /// The QBER this model predicts on sifted bits with Eve on a fraction `eve`.
    pub fn expected_qber(&self, eve: f64) -> f64 {
        let (s, d, e) = (
            self.signal_click_prob(),
            self.dark_click_prob(),
            self.misalignment,
        );
        let e_sig = e + eve / 4.0 * (1.0 - 2.0 * e);
        let errors = s * (1.0 - d) * e_sig + (1.0 - s) * d * 0.5 + s * d * (0.25 + e_sig / 2.0);
        let c = self.click_prob();
        if c > 0.0 { errors / c } else { 0.5 }
    }
}

/// The channel with its samplers set up for fast batch transmission.
#[derive(Debug, Clone)]
pub struct Channel {
    params: ChannelParams,
    misalign: BernoulliWords,
    signal: BernoulliWords,
    dark: BernoulliWords,
}

impl Channel {
    pub fn new(params: ChannelParams) -> Result<Self, QkdError> {
        params.validate()?;
        Ok(Self {
            params,
            misalign: BernoulliWords::new(params.misalignment)?,
            signal: BernoulliWords::new(params.signal_click_prob().clamp(0.0, 1.0))?,
            dark: BernoulliWords::new(params.dark_click_prob().clamp(0.0, 1.0))?,
        })
    }

    pub fn params(&self) -> &ChannelParams {
        &self.params
    }

    /// Carries `batch` from Alice to Bob, with Eve acting first if present.
    pub fn transmit<R: Rng + ?Sized>(
        &mut self,
        mut batch: QubitBatch,
        eve: Option<&mut InterceptResend>,
        rng: &mut R,
    ) -> QubitBatch {
        if let Some(eve) = eve {
            eve.act(&mut batch, rng);
        }
        let (values, _, clicks) = batch.parts_mut();
        for (v, c) in values.iter_mut().zip(clicks.iter_mut()) {
            *v ^= self.misalign.next_word(rng);
            let signal = self.signal.next_word(rng);
            let dark = self.dark.next_word(rng);
            if dark != 0 {
                // Dark alone: random bit. Dark with signal: double click, coin decides.
                let random_bits = rng.next_u64();
                let coin = rng.next_u64();
                let replace = dark & (!signal | coin);
                *v = (*v & !replace) | (random_bits & replace);
            }
            *c &= signal | dark;
        }
        batch.fix_tails();
        batch
    }
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameters_name_the_culprit() {
        let mut p = ChannelParams::default();
        p.distance_km = -1.0;
        let e = p.validate().unwrap_err().to_string();
        assert!(e.contains("distance_km"), "{e}");
        let mut p = ChannelParams::default();
        p.misalignment = 0.7;
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("misalignment")
        );
        let mut p = ChannelParams::default();
        p.source = Source::WeakCoherent {
            mean_photon_number: 0.0,
        };
        assert!(p.validate().is_err());
        let mut p = ChannelParams::default();
        p.detector_efficiency = f64::NAN;
        assert!(p.validate().is_err());
    }

    #[test]
    fn fibre_loss_follows_db_per_km() {
        let mut p = ChannelParams::ideal();
        p.distance_km = 50.0; // 10 dB
        assert!((p.transmittance() - 0.1).abs() < 1e-12);
        p.source = Source::WeakCoherent {
            mean_photon_number: 0.5,
        };
        assert!((p.signal_click_prob() - (1.0 - (-0.05f64).exp())).abs() < 1e-12);
    }

    #[test]
    fn theory_qber_is_p_over_4_for_ideal_channel() {
        let p = ChannelParams::ideal();
        assert!((p.expected_qber(1.0) - 0.25).abs() < 1e-12);
        assert!((p.expected_qber(0.4) - 0.1).abs() < 1e-12);
        assert_eq!(p.expected_qber(0.0), 0.0);
    }
}
