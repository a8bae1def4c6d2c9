//! The symmetric 2x2 matrix: three numbers, closed-form algebra.

/// A symmetric 2x2 matrix `[[xx, xy], [xy, yy]]`, stored as its three
/// distinct entries.
///
/// Everything is closed form: no loops, no pivoting. Operations that need a
/// positive definite matrix return `None` instead of infinities or NaN.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(C)]
pub struct SymMat2 {
    /// Top-left entry (variance of x for a covariance).
    pub xx: f32,
    /// Off-diagonal entry (covariance of x and y).
    pub xy: f32,
    /// Bottom-right entry (variance of y).
    pub yy: f32,
}

/// The lower-triangular Cholesky factor `[[l11, 0], [l21, l22]]` of a
/// positive definite [`SymMat2`].
#[derive(Clone, Copy, Debug, PartialEq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(C)]
pub struct Chol2 {
    /// Entry (0, 0), positive.
    pub l11: f32,
    /// Entry (1, 0).
    pub l21: f32,
    /// Entry (1, 1), positive.
    pub l22: f32,
}

impl SymMat2 {
    /// The zero matrix.
    pub const ZERO: Self = Self::new(0.0, 0.0, 0.0);
    /// The identity matrix.
    pub const IDENTITY: Self = Self::new(1.0, 0.0, 1.0);

    /// `[[xx, xy], [xy, yy]]`.
    #[inline]
    #[must_use]
    pub const fn new(xx: f32, xy: f32, yy: f32) -> Self {
        Self { xx, xy, yy }
    }

    /// `d * I`.
    #[inline]
    #[must_use]
    pub const fn from_diagonal(d: f32) -> Self {
        Self::new(d, 0.0, d)
    }

    /// From a full 2x2 array; the off-diagonal is the mean of the two given
    /// off-diagonal entries.
    #[inline]
    #[must_use]
    pub fn from_rows(m: [[f32; 2]; 2]) -> Self {
        Self::new(m[0][0], 0.5 * (m[0][1] + m[1][0]), m[1][1])
    }

    /// The full 2x2 array `[[xx, xy], [xy, yy]]`.
    #[inline]
    #[must_use]
    pub const fn to_rows(self) -> [[f32; 2]; 2] {
        [[self.xx, self.xy], [self.xy, self.yy]]
    }

    /// `xx * yy - xy^2`.
    #[inline]
    #[must_use]
    pub fn determinant(self) -> f32 {
        self.xx * self.yy - self.xy * self.xy
    }

    /// `xx + yy`.
    #[inline]
    #[must_use]
    pub fn trace(self) -> f32 {
        self.xx + self.yy
    }

    /// True when all three entries are finite.
    #[inline]
    #[must_use]
    pub fn is_finite(self) -> bool {
        self.xx.is_finite() && self.xy.is_finite() && self.yy.is_finite()
    }

    /// True when the matrix is finite and positive definite: positive
    /// diagonal and a correlation `xy / sqrt(xx yy)` strictly inside
    /// (-1, 1). Tested through the correlation, not `xx yy - xy^2`, so
    /// variances up to f32's range (where the determinant overflows) are
    /// still recognised.
    #[inline]
    #[must_use]
    pub fn is_positive_definite(self) -> bool {
        self.is_finite() && self.xx > 0.0 && self.yy > 0.0 && {
            let r = self.correlation();
            r > -1.0 && r < 1.0
        }
    }

    /// `xy / (sqrt(xx) sqrt(yy))`, computed without overflow.
    #[inline]
    #[must_use]
    pub fn correlation(self) -> f32 {
        self.xy / (libm::sqrtf(self.xx) * libm::sqrtf(self.yy))
    }

    /// The inverse of a positive definite matrix, or `None` when the matrix
    /// is not positive definite or the inverse would not be finite.
    ///
    /// Closed form through the correlation `r`:
    /// `[[1 / (xx (1 - r^2)), -r / (sqrt(xx yy) (1 - r^2))], [.., 1 / (yy (1 - r^2))]]`,
    /// which never forms the (possibly overflowing) determinant.
    #[inline]
    #[must_use]
    pub fn try_inverse(self) -> Option<Self> {
        if !self.is_positive_definite() {
            return None;
        }
        let s = libm::sqrtf(self.xx) * libm::sqrtf(self.yy);
        let r = self.xy / s;
        let one_minus = 1.0 - r * r;
        let inv = Self::new(
            1.0 / (self.xx * one_minus),
            -r / (s * one_minus),
            1.0 / (self.yy * one_minus),
        );
        inv.is_positive_definite().then_some(inv)
    }

    /// The Cholesky factor `L` with `L L^T = self`, or `None` when the matrix
    /// is not positive definite.
    #[inline]
    #[must_use]
    pub fn cholesky(self) -> Option<Chol2> {
        if !self.is_positive_definite() {
            return None;
        }
        let l11 = libm::sqrtf(self.xx);
        let l21 = self.xy / l11;
        let rest = self.yy - l21 * l21;
        // Positive determinant does not guarantee a positive Schur
        // complement after rounding; check it.
        if !(rest > 0.0) {
            return None;
        }
        let l22 = libm::sqrtf(rest);
        let chol = Chol2 { l11, l21, l22 };
        (l11.is_finite() && l21.is_finite() && l22.is_finite()).then_some(chol)
    }

    /// The natural log of the determinant of a positive definite matrix,
    /// or `None` when it is not positive definite.
    #[inline]
    #[must_use]
    pub fn log_determinant(self) -> Option<f32> {
        let chol = self.cholesky()?;
        Some(2.0 * (libm::logf(chol.l11) + libm::logf(chol.l22)))
    }

    /// The quadratic form `v^T M v`.
    #[inline]
    #[must_use]
    pub fn quadratic_form(self, v: [f32; 2]) -> f32 {
        self.xx * v[0] * v[0] + 2.0 * self.xy * v[0] * v[1] + self.yy * v[1] * v[1]
    }

    /// `M v`.
    #[inline]
    #[must_use]
    pub fn mul_vec(self, v: [f32; 2]) -> [f32; 2] {
        [
            self.xx * v[0] + self.xy * v[1],
            self.xy * v[0] + self.yy * v[1],
        ]
    }

    /// `self + d * I`.
    #[inline]
    #[must_use]
    pub fn add_diagonal(self, d: f32) -> Self {
        Self::new(self.xx + d, self.xy, self.yy + d)
    }

    /// `s * self`.
    #[inline]
    #[must_use]
    pub fn scale(self, s: f32) -> Self {
        Self::new(self.xx * s, self.xy * s, self.yy * s)
    }

    /// The Frobenius norm `sqrt(xx^2 + 2 xy^2 + yy^2)`.
    #[inline]
    #[must_use]
    pub fn frobenius_norm(self) -> f32 {
        libm::sqrtf(self.xx * self.xx + 2.0 * self.xy * self.xy + self.yy * self.yy)
    }

    /// True when every entry differs from `other`'s by at most `max_abs_diff`.
    #[inline]
    #[must_use]
    pub fn abs_diff_eq(self, other: Self, max_abs_diff: f32) -> bool {
        libm::fabsf(self.xx - other.xx) <= max_abs_diff
            && libm::fabsf(self.xy - other.xy) <= max_abs_diff
            && libm::fabsf(self.yy - other.yy) <= max_abs_diff
    }
}

impl core::ops::Add for SymMat2 {
    type Output = Self;
    #[inline]
    fn add(self, rhs: Self) -> Self {
        Self::new(self.xx + rhs.xx, self.xy + rhs.xy, self.yy + rhs.yy)
    }
}

impl core::ops::Sub for SymMat2 {
    type Output = Self;
    #[inline]
    fn sub(self, rhs: Self) -> Self {
        Self::new(self.xx - rhs.xx, self.xy - rhs.xy, self.yy - rhs.yy)
    }
}

impl Chol2 {
    /// `L v`: maps a standard normal pair to a correlated one.
    #[inline]
    #[must_use]
    pub fn mul_vec(self, v: [f32; 2]) -> [f32; 2] {
        [self.l11 * v[0], self.l21 * v[0] + self.l22 * v[1]]
    }

    /// `L L^T`.
    #[inline]
    #[must_use]
    pub fn product(self) -> SymMat2 {
        SymMat2::new(
            self.l11 * self.l11,
            self.l11 * self.l21,
            self.l21 * self.l21 + self.l22 * self.l22,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det64(m: SymMat2) -> f64 {
        f64::from(m.xx) * f64::from(m.yy) - f64::from(m.xy) * f64::from(m.xy)
    }

    /// Relative error of `got` against an f64 `want`.
    fn rel(got: f32, want: f64) -> f64 {
        (f64::from(got) - want).abs() / want.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn inverse_matches_f64() {
        // Condition numbers from 1 to about 1e4; f32 closed form loses about
        // cond * eps relative, so 1e4 * 1.2e-7 ~ 1.2e-3 bounds every case.
        let cases = [
            SymMat2::new(1.0, 0.0, 1.0),
            SymMat2::new(1.0, 0.5, 1.0),
            SymMat2::new(1.0, -0.5, 1.0),
            SymMat2::new(4.0, 1.9, 1.0),
            SymMat2::new(1e-3, 2e-4, 5e-4),
            SymMat2::new(1e3, -3e2, 2e2),
            SymMat2::new(1.0, 0.99995, 1.0),
        ];
        for m in cases {
            let inv = m.try_inverse().expect("positive definite");
            let d = det64(m);
            let want = [
                f64::from(m.yy) / d,
                -f64::from(m.xy) / d,
                f64::from(m.xx) / d,
            ];
            let cond = (f64::from(m.trace()).powi(2) / d).max(1.0);
            let tol = cond * 2e-7;
            for (got, want) in [inv.xx, inv.xy, inv.yy].into_iter().zip(want) {
                let scale = want.abs().max(1.0 / f64::from(m.trace()));
                assert!(
                    (f64::from(got) - want).abs() / scale <= tol,
                    "{m:?}: {got} vs {want}"
                );
            }
            assert!(rel(m.determinant(), d) <= cond * 2e-7, "{m:?}");
        }
    }

    #[test]
    fn cholesky_and_log_det_match_f64() {
        for m in [
            SymMat2::new(2.0, 0.3, 0.5),
            SymMat2::new(1e-4, 5e-5, 1e-4),
            SymMat2::new(300.0, -120.0, 90.0),
        ] {
            let l = m.cholesky().expect("positive definite");
            assert!(l.product().abs_diff_eq(m, m.trace() * 1e-6), "{m:?}");
            let want = det64(m).ln();
            let got = m.log_determinant().expect("positive definite");
            assert!(
                (f64::from(got) - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{m:?}"
            );
        }
    }

    #[test]
    fn not_positive_definite_gives_none() {
        for m in [
            SymMat2::ZERO,
            SymMat2::new(1.0, 1.0, 1.0),
            SymMat2::new(1.0, 2.0, 1.0),
            SymMat2::new(-1.0, 0.0, 1.0),
            SymMat2::new(f32::NAN, 0.0, 1.0),
            SymMat2::new(f32::INFINITY, 0.0, 1.0),
        ] {
            assert!(m.try_inverse().is_none(), "{m:?}");
            assert!(m.cholesky().is_none(), "{m:?}");
            assert!(m.log_determinant().is_none(), "{m:?}");
        }
    }

    #[test]
    fn near_singular_is_handled_without_nan() {
        // det = 1 - (1 - 1e-7)^2 is about 2e-7 in exact arithmetic, which
        // f32 cannot resolve: either a finite inverse or None, never NaN.
        let m = SymMat2::new(1.0, 1.0 - 1e-7, 1.0);
        match m.try_inverse() {
            Some(inv) => assert!(inv.is_finite()),
            None => assert!(m.determinant() <= 0.0),
        }
    }

    /// Tiny variances: positive definite with a finite inverse down to
    /// where the inverse itself overflows f32.
    #[test]
    fn tiny_variances() {
        let m = SymMat2::new(1e-30, 0.0, 1e-30);
        assert_eq!(m.try_inverse(), Some(SymMat2::new(1e30, 0.0, 1e30)));
        let m = SymMat2::new(1e-40, 0.0, 1e-40);
        assert!(m.is_positive_definite());
        assert!(m.try_inverse().is_none(), "1 / 1e-40 overflows");
    }

    /// Variances where `xx * yy` overflows f32 (1e20 * 1e20) are still
    /// positive definite, invertible and have a finite log-determinant.
    #[test]
    fn huge_variances_do_not_overflow() {
        for m in [
            SymMat2::new(1e20, 5e19, 1e20),
            SymMat2::new(3e37, 0.0, 2e37),
            SymMat2::new(1e20, -1e7, 1e-3),
        ] {
            assert!(m.is_positive_definite(), "{m:?}");
            let inv = m.try_inverse().expect("invertible");
            let r = f64::from(m.xy) / (f64::from(m.xx) * f64::from(m.yy)).sqrt();
            let want_xx = 1.0 / (f64::from(m.xx) * (1.0 - r * r));
            assert!(rel(inv.xx, want_xx) < 1e-5, "{m:?}: {inv:?}");
            let want = f64::from(m.xx).ln() + f64::from(m.yy).ln() + (1.0 - r * r).ln();
            let got = m.log_determinant().expect("finite");
            assert!((f64::from(got) - want).abs() <= 1e-5 * want.abs(), "{m:?}");
        }
    }

    #[test]
    fn quadratic_form_matches_definition() {
        let m = SymMat2::new(2.0, -0.5, 3.0);
        let v = [1.5, -2.0];
        let mv = m.mul_vec(v);
        assert_eq!(m.quadratic_form(v), v[0] * mv[0] + v[1] * mv[1]);
    }
}
