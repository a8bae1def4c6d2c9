//! One 2-D Gaussian: mean, covariance, log-normaliser; the whitening
//! factor a density needs is formed on demand.

use crate::{GmmError, SymMat2};

/// `ln(2 pi)`: the 2-D normaliser is `-ln(2 pi) - ln(det) / 2`.
pub(crate) const LN_2PI: f32 = 1.837_877_1;

/// A 2-D normal distribution: its mean, its covariance (exactly as given)
/// and its log-normaliser, six f32 (24 bytes).
///
/// What a density needs besides, the whitening factor
/// ([`whitening`](Self::whitening)), is formed on demand from the
/// covariance: about fifty f32 operations. A fit forms it once per
/// component and pass, not once per point.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Gaussian {
    mean: [f32; 2],
    covariance: SymMat2,
    log_norm: f32,
}

impl Gaussian {
    /// The standard normal: mean 0, identity covariance.
    pub const STANDARD: Self = Self {
        mean: [0.0, 0.0],
        covariance: SymMat2::IDENTITY,
        log_norm: -LN_2PI,
    };

    /// All fields 0 (not a valid Gaussian): the content of buffers that
    /// are written before they are read, so that they are all-zero bits
    /// (`.bss`, a `memset`, not an image in flash).
    pub(crate) const ZEROED: Self = Self {
        mean: [0.0, 0.0],
        covariance: SymMat2::ZERO,
        log_norm: 0.0,
    };

    /// A Gaussian with the given mean and covariance.
    ///
    /// # Errors
    /// [`GmmError::InvalidParameters`] when the mean is not finite or the
    /// covariance is not positive definite (or its inverse is not finite).
    pub fn new(mean: [f32; 2], covariance: SymMat2) -> Result<Self, GmmError> {
        if !(mean[0].is_finite() && mean[1].is_finite()) {
            return Err(GmmError::InvalidParameters {
                reason: "mean is not finite",
            });
        }
        let bad = GmmError::InvalidParameters {
            reason: "covariance is not positive definite",
        };
        // `1 - r^2` (r the correlation) formed naively in f32 loses about
        // condition-number ulps: 1e-4 errors after two EM steps at condition
        // 400. `one_minus_r2` keeps its digits from error-free f32 products
        // instead of f64, which is soft-float on a Cortex-M4F.
        // The f32 Cholesky factor must exist too: sampling uses it, and a
        // matrix whose factor fails in f32 is singular for every practical
        // purpose (found by the fuzzer: correlation 1 - 1e-8).
        if !covariance.is_positive_definite() || covariance.cholesky().is_none() {
            return Err(bad);
        }
        let Some(ratio) = one_minus_r2(covariance) else {
            return Err(bad);
        };
        let p = precision(covariance, ratio);
        if !p.is_positive_definite() || !whitening(covariance, p, 1.0).iter().all(|v| v.is_finite())
        {
            return Err(bad);
        }
        let log_det = libm::logf(covariance.xx) + libm::logf(covariance.yy) + libm::logf(ratio);
        if !log_det.is_finite() {
            return Err(bad);
        }
        Ok(Self {
            mean,
            covariance,
            log_norm: -LN_2PI - 0.5 * log_det,
        })
    }

    /// `1 - r^2` of the covariance, which [`Gaussian::new`] checked.
    #[inline]
    fn ratio(&self) -> f32 {
        one_minus_r2(self.covariance).unwrap_or(1.0)
    }

    /// The whitening factor `[a, e, c]`: with `W = [[a, 0], [e, c]]`,
    /// `W^T W` is the precision and `|W (x - mean)|^2 = (a dx)^2 +
    /// (e dx + c dy)^2` the squared Mahalanobis distance. `W` is the
    /// inverse of the covariance's Cholesky factor, formed without the
    /// cancellation of `yy - xy^2 / xx`.
    #[inline]
    #[must_use]
    pub fn whitening(&self) -> [f32; 3] {
        self.whitening_scaled(1.0)
    }

    /// [`whitening`](Self::whitening) times `scale`, each entry rounded
    /// once (the E-step folds its unit into the factor).
    #[inline]
    pub(crate) fn whitening_scaled(&self, scale: f32) -> [f32; 3] {
        whitening(self.covariance, self.precision(), scale)
    }

    /// The mean.
    #[inline]
    #[must_use]
    pub const fn mean(&self) -> [f32; 2] {
        self.mean
    }

    /// The covariance.
    #[inline]
    #[must_use]
    pub const fn covariance(&self) -> SymMat2 {
        self.covariance
    }

    /// The precision (inverse covariance), through the correlation:
    /// `[[1 / (xx (1 - r^2)), -r / (sqrt(xx yy) (1 - r^2))], [.., 1 / (yy (1 - r^2))]]`.
    #[inline]
    #[must_use]
    pub fn precision(&self) -> SymMat2 {
        precision(self.covariance, self.ratio())
    }

    /// `-ln(2 pi) - ln(det covariance) / 2`.
    #[inline]
    #[must_use]
    pub const fn log_normaliser(&self) -> f32 {
        self.log_norm
    }

    /// The squared Mahalanobis distance of `p` from the mean, as the sum
    /// of two squares (see [`whitening`](Self::whitening)): never negative;
    /// `+inf` when it overflows (or would be `inf - inf`).
    #[inline]
    #[must_use]
    pub fn mahalanobis_sq(&self, p: [f32; 2]) -> f32 {
        distance_sq(self.whitening(), self.mean, p)
    }

    /// The natural log of the density at `p`.
    #[inline]
    #[must_use]
    pub fn log_density(&self, p: [f32; 2]) -> f32 {
        self.log_norm - 0.5 * self.mahalanobis_sq(p)
    }
}

/// `|W (p - mean)|^2` for the whitening factor `w = [a, e, c]`; `+inf`
/// instead of NaN.
#[inline]
pub(crate) fn distance_sq(w: [f32; 3], mean: [f32; 2], p: [f32; 2]) -> f32 {
    let [a, e, c] = w;
    let (dx, dy) = (p[0] - mean[0], p[1] - mean[1]);
    let u = a * dx;
    let v = e * dx + c * dy;
    let m = u * u + v * v;
    if m >= 0.0 { m } else { f32::INFINITY }
}

/// The precision of `covariance` from its `1 - r^2`.
fn precision(covariance: SymMat2, ratio: f32) -> SymMat2 {
    let s = libm::sqrtf(covariance.xx) * libm::sqrtf(covariance.yy);
    let r = covariance.xy / s;
    SymMat2::new(
        1.0 / (covariance.xx * ratio),
        -r / (s * ratio),
        1.0 / (covariance.yy * ratio),
    )
}

/// The whitening factor of `covariance`, from its precision `p`, times
/// `scale`: `P = W^T W` with
/// `W = [[1 / sqrt(xx), 0], [P_xy / sqrt(P_yy), sqrt(P_yy)]]`
/// (`P_xx - P_xy^2 / P_yy = 1 / xx`, so the first entry is formed without
/// cancellation).
fn whitening(covariance: SymMat2, p: SymMat2, scale: f32) -> [f32; 3] {
    let root = libm::sqrtf(p.yy);
    [
        scale / libm::sqrtf(covariance.xx),
        scale * (p.xy / root),
        scale * root,
    ]
}

/// `1 - r^2 = (xx yy - xy^2) / (xx yy)`, r the correlation, of a matrix
/// with a positive (possibly subnormal) finite diagonal and a finite `xy`;
/// `None` when `xx yy - xy^2 <= 0`.
///
/// Plain f32: no f64 (soft-float on a Cortex-M4F) and no fused
/// multiply-add (so the same bits on every target). The diagonal is
/// scaled by even powers of two into [1, 4) and `xy` by the matching
/// power, which changes no digit and not the ratio, and keeps every
/// product below from overflowing or underflowing. Dekker's TwoProduct
/// (Veltkamp's split) gives `xx yy = p + p_lo` and `xy^2 = q + q_lo`
/// exactly; `p - q` is exact where it cancels (Sterbenz), so the
/// determinant keeps its digits even at a correlation of 1 - 1e-8. The
/// quotient gets one correction from its residual, formed error-free
/// where it cancels.
///
/// Error: within 1 ulp of the f64 value `(xx yy - xy^2) / (xx yy)`
/// rounded to f32, and within 6e-8 (just over 2^-24) relative of it
/// unrounded; exactly 1 when `xy = 0`. Measured on 53 million random and
/// adversarial matrices (test `one_minus_r2_matches_f64`, seeds 1 to 3
/// with 20 million draws each): the same f32 as the f64 formula, which is
/// correctly rounded there, for all but 4, whose exact ratio lies within
/// a hair of halfway between two f32; worst 5.96e-8 relative.
fn one_minus_r2(m: SymMat2) -> Option<f32> {
    let (sa, sc) = (half_scale(m.xx), half_scale(m.yy));
    // `xy * sa` can underflow (and lose bits) only when the scaled `xy` is
    // below 2^-51: its square then moves the ratio by less than 2^-100.
    let (a, b, c) = (m.xx * sa * sa, m.xy * sa * sc, m.yy * sc * sc);
    let (p, p_lo) = two_product(a, c);
    let (q, q_lo) = two_square(b);
    // `p - q` is exact for p / 2 <= q <= 2p (Sterbenz); for q < p / 2,
    // Fast2Sum's `(p - hi) - q` is its rounding error. (q > 2p: det < 0.)
    let hi = p - q;
    let lo = (p_lo - q_lo) + ((p - hi) - q);
    let (det, det_lo) = two_sum(hi, lo);
    if !(det > 0.0) {
        return None;
    }
    // g approximates (det + det_lo) / (p + p_lo); the residual
    // `det + det_lo - g (p + p_lo)` cancels, so `g p` enters it exactly.
    let g = det / p;
    let (gp, gp_lo) = two_product(g, p);
    Some(g + ((((det - gp) - gp_lo) + det_lo) - g * p_lo) / p)
}

/// For a positive finite `x` (subnormals too): the power of two
/// `s = 2^-floor(e / 2)`, `e` the exponent of `x`, so `x s^2` is in
/// [1, 4). `s` is between 2^-63 and 2^75, so `x * s * s` is exact.
fn half_scale(x: f32) -> f32 {
    let bits = x.to_bits();
    let e = if bits >> 23 == 0 {
        // Subnormal: the value is `bits * 2^-149`.
        -118 - bits.leading_zeros() as i32
    } else {
        (bits >> 23) as i32 - 127
    };
    f32::from_bits(((127 - (e >> 1)) as u32) << 23)
}

/// Veltkamp's split of `x` into `hi` and `lo = x - hi` (exact) of at most
/// 12 significant bits each, for `|x|` well below `f32::MAX / 4097`.
#[inline]
fn split(x: f32) -> (f32, f32) {
    // 2^12 + 1: half of f32's 24-bit significand.
    let t = 4097.0 * x;
    let hi = t - (t - x);
    (hi, x - hi)
}

/// Knuth's TwoSum: `(s, e)` with `s = x + y` rounded and `s + e = x + y`
/// exactly, whatever the magnitudes.
#[inline]
fn two_sum(x: f32, y: f32) -> (f32, f32) {
    let s = x + y;
    let z = s - x;
    (s, (x - (s - z)) + (y - z))
}

/// Dekker's TwoProduct: `(p, e)` with `p = x * y` rounded and
/// `p + e = x y` exactly (barring underflow).
#[inline]
fn two_product(x: f32, y: f32) -> (f32, f32) {
    let p = x * y;
    let ((xh, xl), (yh, yl)) = (split(x), split(y));
    (p, (((xh * yh - p) + xh * yl) + xl * yh) + xl * yl)
}

/// TwoProduct of `x` with itself, with one split.
#[inline]
fn two_square(x: f32) -> (f32, f32) {
    let p = x * x;
    let (h, l) = split(x);
    (p, ((h * h - p) + 2.0 * h * l) + l * l)
}

/// A Gaussian from an estimated covariance: `covariance + reg_covar I`
/// when that is positive definite; otherwise (a component collapsing onto
/// a line or a point, or f32 unable to hold the correlation) a ridge
/// scaled to the variances, `max(floor, t * max(xx, yy))` for
/// `t = 1e-6, 1e-4, 1e-2` in turn, which keeps the correlation's sign and
/// most of its size; as a last resort the diagonal plus `floor`. The flag
/// says whether the covariance had to be floored.
pub(crate) fn regularised(
    mean: [f32; 2],
    covariance: SymMat2,
    reg_covar: f32,
    floor: f32,
) -> Option<(Gaussian, bool)> {
    if let Ok(g) = Gaussian::new(mean, covariance.add_diagonal(reg_covar)) {
        return Some((g, false));
    }
    let var = |v: f32| if v > 0.0 { v } else { 0.0 };
    let (xx, yy) = (var(covariance.xx), var(covariance.yy));
    let scale = if xx > yy { xx } else { yy };
    for t in [1e-6f32, 1e-4, 1e-2] {
        let d = if t * scale > floor { t * scale } else { floor };
        if let Ok(g) = Gaussian::new(mean, SymMat2::new(xx + d, covariance.xy, yy + d)) {
            return Some((g, true));
        }
    }
    Gaussian::new(mean, SymMat2::new(xx + floor, 0.0, yy + floor))
        .ok()
        .map(|g| (g, true))
}

impl Default for Gaussian {
    fn default() -> Self {
        Self::STANDARD
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    extern crate std;

    /// The bound documented on [`one_minus_r2`]: in ulps of the f64 ratio
    /// rounded to f32, and relative to the f64 ratio.
    const MAX_ULPS: u32 = 1;
    const MAX_REL: f64 = 6e-8;

    /// Reaches `one_minus_r2`: what `Gaussian::new` checks first.
    fn reaches_ratio(m: SymMat2) -> bool {
        m.is_positive_definite() && m.cholesky().is_some()
    }

    /// The f32 ratio against `(xx yy - xy^2) / (xx yy)` in f64 (exact
    /// products, two roundings): `(ulps, relative error)`. Also checks
    /// that both reject the same matrices and that `xy = 0` gives 1.
    fn ratio_error(m: SymMat2) -> (u32, f64) {
        let (a, b, c) = (f64::from(m.xx), f64::from(m.xy), f64::from(m.yy));
        let want = (a * c - b * b) / (a * c);
        let got = one_minus_r2(m);
        assert_eq!(got.is_some(), want > 0.0, "{m:?}: {got:?} vs {want}");
        let Some(got) = got else { return (0, 0.0) };
        if m.xy == 0.0 {
            assert_eq!(got, 1.0, "{m:?}");
        }
        let ulps = got.to_bits().abs_diff((want as f32).to_bits());
        (ulps, (f64::from(got) - want).abs() / want)
    }

    /// The seed of the random test: `GMM_TEST_SEED` when set (as in the
    /// `tests` crate), printed so a failure can be replayed.
    fn seed(default: u64) -> u64 {
        let seed = std::env::var("GMM_TEST_SEED")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default);
        std::eprintln!("seed {seed} (replay with GMM_TEST_SEED={seed})");
        seed
    }

    /// A uniform f64 in [0, 1).
    fn unit(rng: &mut Xoshiro256PlusPlus) -> f64 {
        (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One million random matrices: variances log-uniform over 1e-30 to
    /// 1e24 or any positive f32 bit pattern (subnormals up to `f32::MAX`),
    /// correlations uniform or `+-(1 - 10^-k)` for k up to 9, the
    /// covariance nudged by a few ulps or zero (about 880 000 reach the
    /// ratio). Prints how many differ from the f64 formula's f32 at all.
    #[test]
    fn one_minus_r2_matches_f64() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed(0x5eed_5eed));
        let (mut worst_rel, mut checked, mut differ) = (0.0f64, 0, 0);
        for i in 0..1_000_000u32 {
            let mut variance = |any_bits: bool| {
                if any_bits {
                    f32::from_bits(rng.next_u32() & 0x7fff_ffff)
                } else {
                    10f64.powf(-30.0 + 54.0 * unit(&mut rng)) as f32
                }
            };
            let (a, c) = (variance(i % 7 == 0), variance(i % 11 == 0));
            let mut r = 1.0 - 10f64.powf(-9.0 * unit(&mut rng));
            if i % 5 == 0 {
                r = 2.0 * unit(&mut rng) - 1.0;
            }
            if rng.next_u32() & 1 == 1 {
                r = -r;
            }
            let mut b = (r * (f64::from(a) * f64::from(c)).sqrt()) as f32;
            if i % 13 == 0 {
                b = f32::from_bits(b.to_bits().wrapping_add(rng.next_u32() % 5).wrapping_sub(2));
            }
            if i % 17 == 0 {
                b = 0.0;
            }
            let m = SymMat2::new(a, b, c);
            if !reaches_ratio(m) {
                continue;
            }
            let (ulps, rel) = ratio_error(m);
            assert!(
                ulps <= MAX_ULPS && rel <= MAX_REL,
                "{m:?}: {ulps} ulps, {rel:e}"
            );
            differ += usize::from(ulps > 0);
            worst_rel = worst_rel.max(rel);
            checked += 1;
        }
        std::eprintln!("{checked} matrices: {differ} differ, worst {worst_rel:e} relative");
        assert!(checked > 700_000, "only {checked} positive definite cases");
    }

    /// Correlations `+-(1 - 10^-k)`, k = 1..=8, and the f32 neighbours of
    /// their covariance, for variances from subnormal to `f32::MAX`: the
    /// cases where `xx yy - xy^2` cancels and where `xx yy` or the split
    /// would overflow or underflow f32 without the scaling.
    #[test]
    fn one_minus_r2_adversarial() {
        let scales = [
            1e-40, 1e-38, 1e-30, 1e-20, 1e-7, 0.3, 1.0, 3.0, 4097.0, 1e7, 1e12, 1e20, 1e24, 1e30,
            1e38, 3.4e38,
        ];
        let mut differ = 0;
        for &a in &scales {
            for &c in &scales {
                for k in 1..=8 {
                    for sign in [1.0f64, -1.0] {
                        let r = sign * (1.0 - 10f64.powi(-k));
                        let b = (r * (f64::from(a) * f64::from(c)).sqrt()) as f32;
                        for nudge in 0..7u32 {
                            let b = f32::from_bits(b.to_bits().wrapping_add(nudge).wrapping_sub(3));
                            let m = SymMat2::new(a, b, c);
                            if reaches_ratio(m) {
                                let (ulps, rel) = ratio_error(m);
                                assert!(
                                    ulps <= MAX_ULPS && rel <= MAX_REL,
                                    "{m:?}: {ulps} ulps, {rel:e}"
                                );
                                differ += usize::from(ulps > 0);
                            }
                        }
                    }
                }
                let m = SymMat2::new(a, 0.0, c);
                if reaches_ratio(m) {
                    ratio_error(m);
                }
            }
        }
        std::eprintln!("{differ} differ from the f64 formula's f32");
        // Past what f32's Cholesky factor accepts, the ratio still keeps
        // its digits (a correlation of 1 - 2^-24, and the f32 limits).
        for m in [
            SymMat2::new(1.0, 0.999_999_94, 1.0),
            SymMat2::new(f32::MAX, f32::MAX * 0.999_999_9, f32::MAX),
            SymMat2::new(1e-45, 0.0, 1e-45),
            SymMat2::new(f32::MAX, 1e-45, 1e-45),
        ] {
            let (ulps, rel) = ratio_error(m);
            assert!(
                ulps <= MAX_ULPS && rel <= MAX_REL,
                "{m:?}: {ulps} ulps, {rel:e}"
            );
        }
        assert_eq!(one_minus_r2(SymMat2::new(1.0, 1.0, 1.0)), None);
        assert_eq!(one_minus_r2(SymMat2::new(2.0, -3.0, 4.5)), None);
    }

    #[test]
    fn log_density_matches_f64_formula() {
        let g = Gaussian::new([1.0, -2.0], SymMat2::new(2.0, 0.6, 0.5)).unwrap();
        let p = [0.3f64, -1.1];
        let (a, b, c) = (2.0f64, 0.6f64, 0.5f64);
        let det = a * c - b * b;
        let (dx, dy) = (p[0] - 1.0, p[1] + 2.0);
        let maha = (c * dx * dx - 2.0 * b * dx * dy + a * dy * dy) / det;
        let want = -(2.0 * core::f64::consts::PI).ln() - 0.5 * det.ln() - 0.5 * maha;
        let got = g.log_density([0.3, -1.1]);
        assert!((f64::from(got) - want).abs() < 1e-5, "{got} vs {want}");
    }

    /// A covariance f32 cannot keep positive definite (points exactly on
    /// y = 2x, variance 100) is floored with a ridge that keeps the
    /// correlation, not reduced to its diagonal.
    #[test]
    fn floor_keeps_the_correlation() {
        let on_line = SymMat2::new(100.0, 200.0, 400.0);
        let (g, floored) = regularised([0.0, 0.0], on_line, 1e-6, 1e-6).unwrap();
        assert!(floored);
        let r = g.covariance().correlation();
        assert!(r > 0.99, "correlation {r}");
        let (g, floored) =
            regularised([0.0, 0.0], SymMat2::new(1.0, 0.2, 1.0), 1e-6, 1e-6).unwrap();
        assert!(!floored);
        assert_eq!(
            g.covariance(),
            SymMat2::new(1.0, 0.2, 1.0).add_diagonal(1e-6)
        );
        assert!(regularised([0.0, 0.0], SymMat2::ZERO, 0.0, 0.0).is_none());
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(Gaussian::new([f32::NAN, 0.0], SymMat2::IDENTITY).is_err());
        assert!(Gaussian::new([0.0, 0.0], SymMat2::new(1.0, 1.0, 1.0)).is_err());
        assert!(Gaussian::new([0.0, 0.0], SymMat2::ZERO).is_err());
    }
}
