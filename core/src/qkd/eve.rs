//! Eve: intercept-resend on a fraction of the qubits, in a random basis.
//!
//! On each intercepted qubit Eve measures in a uniformly random basis and
//! resends the state she saw. When her basis matches Alice's she learns the bit
//! and disturbs nothing; otherwise her result is a coin flip and she resends in
//! the wrong basis, so Bob (in Alice's basis) errs with probability 1/2. On
//! sifted positions that is an error rate of 1/4 per intercepted qubit: p/4 for
//! a fraction p (not the 50% the seed paper assumes).

use rand_core::Rng;

use super::bits::BernoulliWords;
use super::error::QkdError;
use super::qubit::QubitBatch;

/// An intercept-resend eavesdropper acting on a fraction of the qubits.
#[derive(Debug, Clone)]
pub struct InterceptResend {
    fraction: f64,
    select: BernoulliWords,
    intercepted: u64,
}

impl InterceptResend {
    /// Eve on a fraction `fraction` (0 to 1) of the qubits.
    pub fn new(fraction: f64) -> Result<Self, QkdError> {
        if !(0.0..=1.0).contains(&fraction) || fraction.is_nan() {
            return Err(QkdError::InvalidParameter(format!(
                "Eve's intercept fraction must be between 0 and 1, not {fraction}"
            )));
        }
        Ok(Self {
            fraction,
            select: BernoulliWords::new(fraction)?,
            intercepted: 0,
        })
    }

    pub fn fraction(&self) -> f64 {
        self.fraction
    }

    /// How many qubits Eve has intercepted so far.
    pub fn intercepted(&self) -> u64 {
        self.intercepted
    }

    /// Intercepts and resends the selected qubits of `batch` in place.
    pub fn act<R: Rng + ?Sized>(&mut self, batch: &mut QubitBatch, rng: &mut R) {
        let n = batch.len();
        let (values, bases, _) = batch.parts_mut();
        for (i, (v, b)) in values.iter_mut().zip(bases.iter_mut()).enumerate() {
            let mut sel = self.select.next_word(rng);
            let remaining = n - i * 64;
            if remaining < 64 {
                sel &= (1u64 << remaining) - 1;
            }
            if sel == 0 {
                continue;
            }
            self.intercepted += u64::from(sel.count_ones());
            let eve_basis = rng.next_u64();
            let coin = rng.next_u64();
            let differ = eve_basis ^ *b;
            let seen = (*v & !differ) | (coin & differ);
            *v = (*v & !sel) | (seen & sel);
            *b = (*b & !sel) | (eve_basis & sel);
        }
        batch.fix_tails();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_outside_unit_interval_is_refused() {
        assert!(InterceptResend::new(1.2).is_err());
        assert!(InterceptResend::new(-0.01).is_err());
        assert!(InterceptResend::new(f64::NAN).is_err());
        assert!(InterceptResend::new(1.0).is_ok());
    }
}
