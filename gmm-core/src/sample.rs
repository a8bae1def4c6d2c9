//! Drawing points from a mixture, and the random numbers the fit needs.

use crate::{Gmm, Point};
use rand_core::Rng;

/// A uniform f32 in `[0, 1)` from the top 24 bits of a `u32`.
#[inline]
pub(crate) fn uniform<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// A uniform integer in `0..n` (Lemire's multiply-shift; `n >= 1`).
#[inline]
pub(crate) fn below<R: Rng + ?Sized>(rng: &mut R, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// Two independent standard normals by Box-Muller.
#[inline]
pub(crate) fn standard_normal_pair<R: Rng + ?Sized>(rng: &mut R) -> [f32; 2] {
    // 1 - u is in (0, 1], so the log is finite.
    let u1 = 1.0 - uniform(rng);
    let u2 = uniform(rng);
    let r = libm::sqrtf(-2.0 * libm::logf(u1));
    let theta = core::f32::consts::TAU * u2;
    [r * libm::cosf(theta), r * libm::sinf(theta)]
}

impl<const K: usize> Gmm<K> {
    /// Draws one point: a component from the weights, then a point from
    /// its Gaussian (Cholesky factor times a Box-Muller normal pair).
    /// Returns the point and the component it came from.
    ///
    /// # Examples
    /// ```
    /// use gmm_core::{Gmm, SymMat2};
    /// use rand_xoshiro::{Xoshiro128PlusPlus, rand_core::SeedableRng};
    /// let gmm = Gmm::<2>::new(&[1.0], &[[3.0, -1.0]], &[SymMat2::IDENTITY])?;
    /// let mut rng = Xoshiro128PlusPlus::seed_from_u64(1);
    /// let (p, label) = gmm.sample(&mut rng);
    /// assert_eq!(label, 0);
    /// assert!(p[0].is_finite() && p[1].is_finite());
    /// # Ok::<(), gmm_core::GmmError>(())
    /// ```
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> (Point, usize) {
        let u = uniform(rng);
        let mut label = self.k().saturating_sub(1);
        let mut cumulative = 0.0f32;
        for (j, &w) in self.weights().iter().enumerate() {
            cumulative += w;
            if u < cumulative {
                label = j;
                break;
            }
        }
        let z = standard_normal_pair(rng);
        let Some(g) = self.component(label) else {
            return ([0.0; 2], label);
        };
        let m = g.mean();
        let offset = match g.covariance().cholesky() {
            Some(l) => l.mul_vec(z),
            // Unreachable for a model built through the crate, but a
            // diagonal fallback keeps this total.
            None => [
                libm::sqrtf(g.covariance().xx) * z[0],
                libm::sqrtf(g.covariance().yy) * z[1],
            ],
        };
        ([m[0] + offset[0], m[1] + offset[1]], label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SymMat2;
    use rand_core::SeedableRng;
    use rand_xoshiro::Xoshiro128PlusPlus;

    #[test]
    fn sample_moments_match_parameters() {
        // 20 000 draws: standard errors of means ~ 0.01, of covariance
        // entries ~ 0.02; sklearn's sampling test uses 0.1 on both.
        let cov = SymMat2::new(2.0, 0.8, 1.0);
        let g = Gmm::<1>::new(&[1.0], &[[1.0, -2.0]], &[cov]).unwrap();
        let mut rng = Xoshiro128PlusPlus::seed_from_u64(42);
        let n = 20_000;
        let (mut sx, mut sy, mut sxx, mut sxy, mut syy) = (0f64, 0f64, 0f64, 0f64, 0f64);
        for _ in 0..n {
            let (p, _) = g.sample(&mut rng);
            let (x, y) = (f64::from(p[0]), f64::from(p[1]));
            sx += x;
            sy += y;
            sxx += x * x;
            sxy += x * y;
            syy += y * y;
        }
        let nf = f64::from(n);
        let (mx, my) = (sx / nf, sy / nf);
        assert!(
            (mx - 1.0).abs() < 0.1 && (my + 2.0).abs() < 0.1,
            "{mx} {my}"
        );
        assert!((sxx / nf - mx * mx - 2.0).abs() < 0.1);
        assert!((sxy / nf - mx * my - 0.8).abs() < 0.1);
        assert!((syy / nf - my * my - 1.0).abs() < 0.1);
    }

    #[test]
    fn labels_follow_weights() {
        let g = Gmm::<3>::new(
            &[0.3, 0.5, 0.2],
            &[[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0]],
            &[SymMat2::IDENTITY; 3],
        )
        .unwrap();
        let mut rng = Xoshiro128PlusPlus::seed_from_u64(3);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[g.sample(&mut rng).1] += 1;
        }
        // Binomial standard deviation at n = 30 000 is <= 0.003; 0.015 is 5 sigma.
        for (c, w) in counts.iter().zip([0.3, 0.5, 0.2]) {
            assert!((f64::from(*c) / 30_000.0 - w).abs() < 0.015, "{counts:?}");
        }
    }
}
