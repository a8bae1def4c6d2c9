//! One 2-D Gaussian: mean, covariance, and what the density needs cached.

use crate::{GmmError, SymMat2};

/// `ln(2 pi)`: the 2-D normaliser is `-ln(2 pi) - ln(det) / 2`.
pub(crate) const LN_2PI: f32 = 1.837_877_1;

/// A 2-D normal distribution with its precision (inverse covariance) and
/// log-normaliser cached, so a density costs a handful of multiplies.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Gaussian {
    mean: [f32; 2],
    covariance: SymMat2,
    precision: SymMat2,
    log_norm: f32,
}

impl Gaussian {
    /// The standard normal: mean 0, identity covariance.
    pub const STANDARD: Self = Self {
        mean: [0.0, 0.0],
        covariance: SymMat2::IDENTITY,
        precision: SymMat2::IDENTITY,
        log_norm: -LN_2PI,
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
        // `1 - r^2` (r the correlation) formed in f32 loses about
        // condition-number ulps: 1e-4 errors after two EM steps at condition
        // 400. Formed as `det / (xx yy)` in f64 from exact f64 products of
        // the f32 entries it keeps its digits; the rest stays f32 (one f64
        // division on a Cortex-M costs far less than an f64 `log`). IEEE
        // f64 gives the same bits on every target.
        // The f32 Cholesky factor must exist too: sampling uses it, and a
        // matrix whose factor fails in f32 is singular for every practical
        // purpose (found by the fuzzer: correlation 1 - 1e-8).
        if !covariance.is_positive_definite() || covariance.cholesky().is_none() {
            return Err(bad);
        }
        let (a, b, c) = (
            f64::from(covariance.xx),
            f64::from(covariance.xy),
            f64::from(covariance.yy),
        );
        let ac = a * c;
        let det = ac - b * b;
        if !(det > 0.0) {
            return Err(bad);
        }
        let ratio = (det / ac) as f32;
        let s = libm::sqrtf(covariance.xx) * libm::sqrtf(covariance.yy);
        let r = covariance.xy / s;
        let precision = SymMat2::new(
            1.0 / (covariance.xx * ratio),
            -r / (s * ratio),
            1.0 / (covariance.yy * ratio),
        );
        if !precision.is_positive_definite() {
            return Err(bad);
        }
        let log_det = libm::logf(covariance.xx) + libm::logf(covariance.yy) + libm::logf(ratio);
        if !log_det.is_finite() {
            return Err(bad);
        }
        Ok(Self {
            mean,
            covariance,
            precision,
            log_norm: -LN_2PI - 0.5 * log_det,
        })
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

    /// The precision (inverse covariance).
    #[inline]
    #[must_use]
    pub const fn precision(&self) -> SymMat2 {
        self.precision
    }

    /// `-ln(2 pi) - ln(det covariance) / 2`.
    #[inline]
    #[must_use]
    pub const fn log_normaliser(&self) -> f32 {
        self.log_norm
    }

    /// The squared Mahalanobis distance of `p` from the mean.
    #[inline]
    #[must_use]
    pub fn mahalanobis_sq(&self, p: [f32; 2]) -> f32 {
        let m = self
            .precision
            .quadratic_form([p[0] - self.mean[0], p[1] - self.mean[1]]);
        // Never negative, never NaN: rounding in a nearly singular
        // precision can make the form negative (even -inf, which made a
        // density +inf and log-sum-exp NaN: a fuzz find), and inf - inf
        // makes it NaN for a point far out.
        if m >= 0.0 {
            m
        } else if m < 0.0 {
            0.0
        } else {
            f32::INFINITY
        }
    }

    /// The natural log of the density at `p`.
    #[inline]
    #[must_use]
    pub fn log_density(&self, p: [f32; 2]) -> f32 {
        self.log_norm - 0.5 * self.mahalanobis_sq(p)
    }
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
