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
    /// [`fast_exp2`]: the E-step keeps its log terms in base 2 (it folds
    /// `log2(e)` into the component parameters), and `2^x` is a degree-6
    /// polynomial after rounding `x`, at most 1.1e-7 relative error on
    /// [-125, 0]. The E-step's log-sum-exp then also takes a branch-free
    /// logarithm (at most 2.7e-7 absolute error on [1, 64] and 1.0e-7
    /// relative error over the normal range; its arguments are a point's
    /// sum of terms, in [1, K], or for a block of points of weight 1 the
    /// product of eight such sums, in [1, K^8]). Several times faster,
    /// and the whole E-step vectorises. ([`ExpMode::exp`] in this mode is
    /// [`fast_exp`], the natural-base twin: at most 2.4e-7 relative error
    /// on [-87.3, 0].)
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
///
/// `n` is rounded to nearest by adding and subtracting `1.5 * 2^23` (an
/// f32 addition rounds to an integer there), not by a float-to-int
/// conversion, whose saturating semantics cost several instructions per
/// lane; the same f32 operations run on every target, so the bits agree.
#[inline(always)]
#[must_use]
pub fn fast_exp(x: f32) -> f32 {
    fast_exp_nonpositive(if x > 0.0 { 0.0 } else { x })
}

/// [`fast_exp`] for `x <= 0` (and NaN), without the clamp of positive
/// arguments: the E-step's arguments `q - max` are never positive, and the
/// comparison costs an instruction per point and component. Same bits as
/// [`fast_exp`] on its domain.
#[inline(always)]
#[must_use]
pub(crate) fn fast_exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const SHIFTER: f32 = 12_582_912.0;
    // NaN fails the comparison and ends up at the low clamp.
    let xc = if x >= FAST_EXP_MIN { x } else { FAST_EXP_MIN };
    // z = 1.5 * 2^23 + n with n = round(xc * log2e) in [-126, 0].
    let z = xc * LOG2E + SHIFTER;
    let nf = z - SHIFTER;
    // nf * LN2_HI is exact (9 + 7 significant bits), so is the subtraction.
    let r = xc - nf * LN2_HI - nf * LN2_LO;
    let r2 = r * r;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * r2
        + r
        + 1.0;
    // 2^n with n in [-126, 0]: the low bits of z hold n (z's ulp is 1 and
    // the bits of 1.5 * 2^23 are 0 below bit 22), so z's bits shifted into
    // the exponent field are n << 23 modulo 2^32; adding the bias gives a
    // normal f32.
    let scale = f32::from_bits((z.to_bits() << 23).wrapping_add(127 << 23));
    let y = p * scale;
    if x >= FAST_EXP_MIN { y } else { 0.0 }
}

/// Below this argument [`fast_exp2`] stops falling: `2^-125` is still a
/// normal f32, so the scale can be added to the exponent bits.
pub const FAST_EXP2_MIN: f32 = -125.0;

/// `2^x` for `x <= 0`, as the E-step uses it for its terms `2^t`.
///
/// `x = n + f` with `n = round(x)` and `|f| <= 1/2`, then a degree-6
/// polynomial for `2^f` (minimax for relative error, coefficients fitted
/// here) and `n` added to the exponent bits. At most 1.1e-7 relative
/// error on [-125, 0] (tested against f64 over the whole range). Inputs
/// below [`FAST_EXP2_MIN`], and NaN, give `2^-125` rather than 0 (the
/// E-step treats such a term as negligible, never as exact 0); inputs
/// above 0 are clamped to 0 and give 1. Branch-free, so a loop over it
/// vectorises. No multiplication by `log2(e)` is needed: the E-step
/// folds it into its parameters.
#[inline(always)]
#[must_use]
pub fn fast_exp2(x: f32) -> f32 {
    // NaN fails both comparisons and ends up at the low clamp.
    let x = if x > 0.0 { 0.0 } else { x };
    fast_exp2_in_range(if x >= FAST_EXP2_MIN { x } else { FAST_EXP2_MIN })
}

/// [`fast_exp2`] for `x` in `[FAST_EXP2_MIN, 0]`, without clamping:
/// outside that range the result is meaningless (never undefined
/// behaviour). For callers that have tested the range already, such as
/// the E-step, whose terms below `2^-32` are 0 without a power. Same bits
/// as [`fast_exp2`] on its range.
#[inline(always)]
#[must_use]
// The linear coefficient is fitted, 3 ulp below `LN_2`, not `LN_2` itself.
#[allow(clippy::approx_constant)]
pub(crate) fn fast_exp2_in_range(xc: f32) -> f32 {
    const SHIFTER: f32 = 12_582_912.0;
    // z = 1.5 * 2^23 + n with n = round(xc) in [-125, 0]; f is exact.
    let z = xc + SHIFTER;
    let f = xc - (z - SHIFTER);
    let p = (((((1.559_467_8e-4 * f + 1.340_664_3e-3) * f + 9.617_693e-3) * f + 5.550_310_4e-2)
        * f
        + 2.402_265_2e-1)
        * f
        + 6.931_472_4e-1)
        * f
        + 1.0;
    // p in [0.70, 1.42] times 2^n is a normal f32 for n >= -125: add n to
    // p's exponent field (z's low bits hold n, as in `fast_exp_nonpositive`).
    f32::from_bits(p.to_bits().wrapping_add(z.to_bits() << 23))
}

/// `ln(x)` for positive normal `x`, as used for `ln sum_j exp(q_j - max)`
/// (an argument in `[1, K]`) and for the logarithm of a product of eight
/// such sums (in `[1, K^8]`) in the E-step's fast mode.
///
/// `x = 2^e (1 + f)` with `1 + f` in `[sqrt(1/2), sqrt(2))`, found with
/// integer operations only (the bits are moved so that the mantissa's
/// carry into the exponent happens at `sqrt(2)`, as in musl's `logf`),
/// then `ln(1 + f) = 2 atanh(s)` with `s = f / (2 + f)`, `|s| <= 0.172`:
/// `2s + s^3 g(s^2)` with `g` a degree-2 polynomial (weighted minimax,
/// coefficients fitted here), and `e ln2` added in two parts. One
/// division replaces the long polynomial of `ln(1 + f)`: on a Cortex-M4
/// it is one instruction, where each polynomial term costs two.
///
/// At most 2.7e-7 absolute error on `[1, 64]` (the final rounding of a
/// result near `ln 64` alone is up to 2.4e-7) and 1.0e-7 relative error
/// over the normal range (both tested against f64); `fast_ln(1) = 0`
/// exactly. Zero, subnormal, negative, infinite and NaN arguments give
/// meaningless results: callers guarantee the domain. Branch-free, so a
/// loop over it vectorises.
#[inline(always)]
#[must_use]
pub(crate) fn fast_ln(x: f32) -> f32 {
    // `ln 2` in two parts: `e * LN2_HI` is exact for |e| < 2^15.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // The bits of sqrt(1/2), and the shift that moves them to 1.0's.
    const SQRT_HALF_BITS: u32 = 0x3f35_04f3;
    let ix = x.to_bits().wrapping_add(0x3f80_0000 - SQRT_HALF_BITS);
    let e = (ix >> 23) as i32 - 0x7f;
    let f = f32::from_bits((ix & 0x007f_ffff) + SQRT_HALF_BITS) - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let r = s * z * ((2.996_122_5e-1 * z + 3.997_360_5e-1) * z + 6.666_682e-1);
    let fe = e as f32;
    (fe * LN2_LO + (r + (s + s))) + fe * LN2_HI
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

    /// Every f32 bit pattern in [-87.3, 0] with a stride of 1021
    /// (about 1.1 million arguments, tiny magnitudes included) against f64.
    #[test]
    fn fast_exp_error_bound_by_bits() {
        let mut worst = 0.0f64;
        let mut bits = (-0.0f32).to_bits();
        while bits <= FAST_EXP_MIN.to_bits() {
            let x = f32::from_bits(bits);
            let want = libm::exp(f64::from(x));
            let got = f64::from(fast_exp(x));
            worst = worst.max((got - want).abs() / want);
            bits += 1021;
        }
        assert!(worst <= 2.4e-7, "worst relative error {worst:e}");
    }

    /// The E-step's domain `[1, 64]`, every f32 with a stride of 7 bit
    /// patterns (about 1.8 million arguments): absolute error against f64.
    #[test]
    fn fast_ln_error_bound_on_estep_domain() {
        let mut worst = 0.0f64;
        let mut bits = 1.0f32.to_bits();
        while bits <= 64.0f32.to_bits() {
            let x = f32::from_bits(bits);
            let got = f64::from(fast_ln(x));
            worst = worst.max((got - libm::log(f64::from(x))).abs());
            bits += 7;
        }
        assert!(worst <= 2.7e-7, "worst absolute error {worst:e}");
    }

    /// The whole positive normal range with a stride of 1009 bit patterns
    /// (about 2.1 million arguments): relative error against f64, away
    /// from x = 1 where the relative error of any f32 log is unbounded.
    #[test]
    fn fast_ln_error_bound_on_normal_range() {
        let mut worst = 0.0f64;
        let mut bits = f32::MIN_POSITIVE.to_bits();
        while bits <= f32::MAX.to_bits() {
            let x = f32::from_bits(bits);
            let want = libm::log(f64::from(x));
            let got = f64::from(fast_ln(x));
            let err = (got - want).abs() / want.abs().max(1.0);
            worst = worst.max(err);
            bits += 1009;
        }
        assert!(worst <= 1.0e-7, "worst relative error {worst:e}");
        assert_eq!(fast_ln(1.0), 0.0);
    }

    /// The bound documented on [`fast_exp2`]: every f32 bit pattern in
    /// [-125, 0] with a stride of 257 (about 4.2 million arguments, tiny
    /// magnitudes included) against f64; [`fast_exp2_in_range`] gives the
    /// same bits there.
    #[test]
    fn fast_exp2_error_bound_by_bits() {
        let mut worst = 0.0f64;
        let mut bits = (-0.0f32).to_bits();
        while bits <= FAST_EXP2_MIN.to_bits() {
            let x = f32::from_bits(bits);
            let want = libm::exp2(f64::from(x));
            let got = f64::from(fast_exp2(x));
            worst = worst.max((got - want).abs() / want);
            assert_eq!(fast_exp2_in_range(x).to_bits(), fast_exp2(x).to_bits());
            bits += 257;
        }
        assert!(worst <= 1.1e-7, "worst relative error {worst:e}");
    }

    #[test]
    fn fast_exp2_edges() {
        assert_eq!(fast_exp2(0.0), 1.0);
        assert_eq!(fast_exp2(-0.0), 1.0);
        assert_eq!(fast_exp2(3.0), 1.0);
        assert_eq!(fast_exp2(-1.0), 0.5);
        assert_eq!(fast_exp2(-125.0), f32::from_bits(2 << 23));
        assert_eq!(fast_exp2(-1e30), f32::from_bits(2 << 23));
        assert_eq!(fast_exp2(f32::NEG_INFINITY), f32::from_bits(2 << 23));
        assert_eq!(fast_exp2(f32::NAN), f32::from_bits(2 << 23));
        assert_eq!(fast_exp2_in_range(-7.25), fast_exp2(-7.25));
    }

    /// The E-step's variant gives the same bits on its domain.
    #[test]
    fn nonpositive_variant_matches() {
        let mut bits = (-0.0f32).to_bits();
        while bits <= FAST_EXP_MIN.to_bits() + 4096 {
            let x = f32::from_bits(bits);
            assert_eq!(
                fast_exp(x).to_bits(),
                fast_exp_nonpositive(x).to_bits(),
                "{x}"
            );
            bits += 9973;
        }
        assert_eq!(fast_exp_nonpositive(f32::NAN), 0.0);
        assert_eq!(fast_exp_nonpositive(0.0), 1.0);
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
