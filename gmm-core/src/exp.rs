//! The exponential used in the E-step, in a few speed/accuracy trade-offs.
//!
//! Every variant is written with plain f32 `+ - * /`, comparisons and bit
//! casts (or libm, which is written the same way), never with fused
//! multiply-add or the platform's libm, so a fit gives the same bits on
//! x86_64 and on a Cortex-M.

/// Which `exp` the E-step uses. The log-sum-exp structure is the same for
/// all of them; only the accuracy of each responsibility changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ExpMode {
    /// `libm::expf`: correctly rounded in practice (< 1 ulp). The default.
    #[default]
    Libm,
    /// [`fast_exp`]: a degree-5 polynomial after range reduction, at most
    /// 2 ulp (relative error <= 2.4e-7) from the true value on
    /// [-87.3, 0], and exactly 0 below -87.3. Several times faster and
    /// vectorisable.
    Fast,
    /// micromath's `exp` (relative error up to about 1e-3 per the
    /// test in this module); the fastest on a Cortex-M, least accurate.
    #[cfg(feature = "micromath")]
    Micromath,
}

/// Below this argument [`fast_exp`] returns exactly 0 (`exp(-87.3)` is
/// about `1.2e-38`, the smallest normal f32).
pub const FAST_EXP_MIN: f32 = -87.3;

/// `exp(x)` for `x <= 0`, as used for responsibilities `exp(q - max)`.
///
/// Cody-Waite range reduction `x = n ln2 + r`, `|r| <= ln2/2`, then a
/// degree-5 minimax polynomial for `exp(r)` (the Cephes `expf`
/// coefficients) and a scale by `2^n` built from the exponent bits. Inputs
/// below [`FAST_EXP_MIN`] (and NaN) give 0; inputs above 0 are clamped to 0
/// and give 1. Branch-free, so a loop over it vectorises.
#[inline(always)]
#[must_use]
pub fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // NaN fails both comparisons and ends up at the low clamp.
    let xc = if x > 0.0 {
        0.0
    } else if x >= FAST_EXP_MIN {
        x
    } else {
        FAST_EXP_MIN
    };
    // Round to nearest by adding 0.5 and truncating toward zero after a
    // shift into positive range (xc * log2e >= -126): n = floor(t + 0.5).
    let t = xc * LOG2E + 0.5;
    let n = (t + 128.0) as i32 - 128;
    let nf = n as f32;
    let r = xc - nf * LN2_HI - nf * LN2_LO;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r2
        * r
        + 0.5 * r2
        + r
        + 1.0;
    // 2^n with n in [-126, 0]: a normal f32 built from its exponent bits.
    let scale = f32::from_bits(((n + 127) as u32) << 23);
    let y = p * scale;
    if x >= FAST_EXP_MIN { y } else { 0.0 }
}

impl ExpMode {
    /// `exp(x)` for `x <= 0` with this mode.
    #[inline(always)]
    #[must_use]
    pub fn exp(self, x: f32) -> f32 {
        match self {
            Self::Libm => libm::expf(x),
            Self::Fast => fast_exp(x),
            #[cfg(feature = "micromath")]
            Self::Micromath => micromath::F32(x).exp().0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound documented on [`ExpMode::Fast`], checked on every f32
    /// from -87.3 to 0 in steps of about 1e-4 (870 000 arguments) against
    /// f64 `exp` computed from the same f32 argument.
    #[test]
    fn fast_exp_error_bound() {
        let mut worst = 0.0f64;
        let mut x = FAST_EXP_MIN;
        while x <= 0.0 {
            let want = libm::exp(f64::from(x));
            let got = f64::from(fast_exp(x));
            let rel = (got - want).abs() / want;
            worst = worst.max(rel);
            x += 1e-4;
        }
        assert!(worst <= 2.4e-7, "worst relative error {worst:e}");
    }

    #[test]
    fn fast_exp_edges() {
        assert_eq!(fast_exp(0.0), 1.0);
        assert_eq!(fast_exp(1.0), 1.0);
        assert_eq!(fast_exp(-88.0), 0.0);
        assert_eq!(fast_exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(fast_exp(f32::NAN), 0.0);
        assert!(fast_exp(-87.0) > 0.0);
    }

    #[cfg(feature = "micromath")]
    #[test]
    fn micromath_exp_error_bound() {
        let mut worst = 0.0f64;
        let mut x = -80.0f32;
        while x <= 0.0 {
            let want = libm::exp(f64::from(x));
            let got = f64::from(ExpMode::Micromath.exp(x));
            worst = worst.max((got - want).abs() / want);
            x += 1e-3;
        }
        assert!(worst <= 1e-2, "worst relative error {worst:e}");
    }
}
