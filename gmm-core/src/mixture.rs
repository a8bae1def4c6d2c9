//! The mixture `Gmm<K>`: up to `K` weighted Gaussians, and what it answers
//! about points.

use crate::{Gaussian, GmmError, Point, Points, SymMat2};

/// Clamp for a component's log joint density: keeps log-sum-exp finite
/// when a point is so far out that the quadratic form overflows.
pub(crate) const LOG_FLOOR: f32 = -1e30;

/// A 2-D Gaussian mixture with room for `K` components, of which `k()` are
/// in use.
///
/// `K` is fixed at compile time (`1..=64`; anything else fails to
/// compile), so the model lives on the stack or in a `static` with no
/// heap: `K * 28` bytes plus one word (228 bytes for `K = 8` on a
/// Cortex-M).
///
/// # Examples
/// ```
/// use gmm_core::{Gmm, SymMat2};
/// let gmm = Gmm::<4>::new(
///     &[0.5, 0.5],
///     &[[-2.0, 0.0], [2.0, 0.0]],
///     &[SymMat2::IDENTITY, SymMat2::IDENTITY],
/// )?;
/// assert_eq!(gmm.predict([1.5, 0.2]), 1);
/// let proba = gmm.predict_proba([0.0, 0.0]);
/// assert!((proba[0] - 0.5).abs() < 1e-6);
/// # Ok::<(), gmm_core::GmmError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gmm<const K: usize> {
    k: usize,
    weights: [f32; K],
    components: [Gaussian; K],
}

#[cfg(feature = "defmt")]
impl<const K: usize> defmt::Format for Gmm<K> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Gmm {{ k: {}, weights: {}, components: {} }}",
            self.k,
            self.weights(),
            self.components()
        );
    }
}

impl<const K: usize> Gmm<K> {
    const CAPACITY_OK: () = assert!(K >= 1 && K <= 64, "Gmm<K> needs 1 <= K <= 64");

    /// The capacity `K`.
    pub const CAPACITY: usize = K;

    /// A mixture from its parameters; `weights` are normalised to sum to 1.
    ///
    /// # Errors
    /// [`GmmError::InvalidK`] when there are 0 or more than `K` components;
    /// [`GmmError::InvalidParameters`] when the slices differ in length, a
    /// weight is negative or not finite, the weights sum to 0, a mean is
    /// not finite or a covariance is not positive definite.
    pub fn new(
        weights: &[f32],
        means: &[Point],
        covariances: &[SymMat2],
    ) -> Result<Self, GmmError> {
        let mut gmm = Self::EMPTY;
        gmm.assign(weights, means, covariances)?;
        Ok(gmm)
    }

    /// [`Gmm::new`] in place, with its checks and errors (`self` is not a
    /// valid model after an error): no model-sized temporary on the stack.
    pub(crate) fn assign(
        &mut self,
        weights: &[f32],
        means: &[Point],
        covariances: &[SymMat2],
    ) -> Result<(), GmmError> {
        let () = Self::CAPACITY_OK;
        let k = weights.len();
        if k == 0 || k > K {
            return Err(GmmError::InvalidK { k, capacity: K });
        }
        if means.len() != k || covariances.len() != k {
            return Err(GmmError::InvalidParameters {
                reason: "weights, means and covariances differ in length",
            });
        }
        let mut total = 0.0f32;
        for &w in weights {
            if !(w >= 0.0 && w.is_finite()) {
                return Err(GmmError::InvalidParameters {
                    reason: "a weight is negative or not finite",
                });
            }
            total += w;
        }
        if !(total > 0.0 && total.is_finite()) {
            return Err(GmmError::InvalidParameters {
                reason: "weights sum to 0",
            });
        }
        let (slots, gaussians) = self.parts_mut(k);
        for (((slot, gauss), &w), (&m, &c)) in slots
            .iter_mut()
            .zip(gaussians.iter_mut())
            .zip(weights)
            .zip(means.iter().zip(covariances))
        {
            *slot = w / total;
            *gauss = Gaussian::new(m, c)?;
        }
        Ok(())
    }

    /// A model of no components, all-zero bits: for buffers that are
    /// written before they are read.
    pub(crate) const EMPTY: Self = {
        let () = Self::CAPACITY_OK;
        Self {
            k: 0,
            weights: [0.0; K],
            components: [Gaussian::ZEROED; K],
        }
    };

    /// Sets `k` and resets the components beyond it (weight 0, standard
    /// normal); returns the weights and components to fill in place.
    pub(crate) fn parts_mut(&mut self, k: usize) -> (&mut [f32; K], &mut [Gaussian; K]) {
        self.k = k;
        // An index loop: `zip(..).skip(k)` kept an 80-byte `Zip::nth`.
        for j in k..K {
            if let (Some(w), Some(g)) = (self.weights.get_mut(j), self.components.get_mut(j)) {
                *w = 0.0;
                *g = Gaussian::STANDARD;
            }
        }
        (&mut self.weights, &mut self.components)
    }

    /// A model from validated parts (weights summing to 1).
    #[inline]
    pub(crate) fn from_parts(k: usize, weights: [f32; K], components: [Gaussian; K]) -> Self {
        let () = Self::CAPACITY_OK;
        Self {
            k,
            weights,
            components,
        }
    }

    /// The number of components in use.
    #[inline]
    #[must_use]
    pub const fn k(&self) -> usize {
        self.k
    }

    /// The mixing weights of the `k` components (they sum to 1).
    #[inline]
    #[must_use]
    pub fn weights(&self) -> &[f32] {
        self.weights.get(..self.k).unwrap_or(&[])
    }

    /// The `k` components.
    #[inline]
    #[must_use]
    pub fn components(&self) -> &[Gaussian] {
        self.components.get(..self.k).unwrap_or(&[])
    }

    /// Component `j`, or `None` when `j >= k`.
    #[inline]
    #[must_use]
    pub fn component(&self, j: usize) -> Option<&Gaussian> {
        self.components().get(j)
    }

    /// The number of free parameters, `6k - 1` in 2-D with full
    /// covariances (k means of 2, k covariances of 3, k - 1 weights).
    #[inline]
    #[must_use]
    pub const fn n_parameters(&self) -> usize {
        6 * self.k - 1
    }

    /// The mixture prepared for scoring many points: each component's
    /// whitening factor and constant formed once (about fifty f32
    /// operations per component) instead of once per query.
    ///
    /// # Examples
    /// ```
    /// use gmm_core::{Gmm, SymMat2};
    /// let gmm = Gmm::<4>::new(&[0.5, 0.5], &[[-2.0, 0.0], [2.0, 0.0]], &[SymMat2::IDENTITY; 2])?;
    /// let scorer = gmm.scorer();
    /// for p in [[-2.1, 0.3], [1.9, -0.2]] {
    ///     assert_eq!(scorer.predict(p), gmm.predict(p));
    ///     assert_eq!(scorer.log_density(p), gmm.log_density(p));
    /// }
    /// # Ok::<(), gmm_core::GmmError>(())
    /// ```
    #[must_use]
    pub fn scorer(&self) -> Scorer<K> {
        let mut terms = [ScoreTerms {
            mean: [0.0; 2],
            white: [0.0; 3],
            c: LOG_FLOOR,
        }; K];
        for (t, s) in terms.iter_mut().zip(self.score_terms()) {
            *t = s;
        }
        Scorer { k: self.k, terms }
    }

    /// Each component's scoring terms, formed on the fly.
    #[inline]
    fn score_terms(&self) -> impl Iterator<Item = ScoreTerms> + '_ {
        self.components()
            .iter()
            .zip(self.weights())
            .map(|(g, &w)| ScoreTerms {
                mean: g.mean(),
                white: g.whitening(),
                c: libm::logf(w) + g.log_normaliser(),
            })
    }

    /// `ln p(x)`: the log of the mixture density at `p` (scikit-learn's
    /// `score_samples` for one point), by log-sum-exp. For many points,
    /// [`scorer`](Self::scorer) first.
    #[must_use]
    pub fn log_density(&self, p: Point) -> f32 {
        posterior::<K>(self.score_terms(), p).1
    }

    /// The posterior probability of each component for `p` (entries past
    /// `k` are 0); they sum to 1.
    #[must_use]
    pub fn predict_proba(&self, p: Point) -> [f32; K] {
        posterior(self.score_terms(), p).0
    }

    /// [`predict_proba`](Self::predict_proba) and
    /// [`log_density`](Self::log_density) from one pass over the
    /// components.
    #[must_use]
    pub fn posterior(&self, p: Point) -> ([f32; K], f32) {
        posterior(self.score_terms(), p)
    }

    /// The most probable component for `p` (the first one on ties).
    #[must_use]
    pub fn predict(&self, p: Point) -> usize {
        predict::<K>(self.score_terms(), p)
    }

    /// The total (weighted) log-likelihood of `data` and its total weight.
    ///
    /// # Errors
    /// The input errors of [`Gmm::fit`]: non-finite or out-of-range points,
    /// bad weights, no positive weight.
    pub fn log_likelihood<P: Points + ?Sized>(&self, data: &P) -> Result<(f32, f32), GmmError> {
        let summary = crate::em::summarise(data)?;
        let scorer = self.scorer();
        let mut acc = crate::em::Sum::ZERO;
        data.visit(|p, w| {
            if w > 0.0 {
                acc.add(w * scorer.log_density(p));
            }
        });
        Ok((acc.value(), summary.total_weight))
    }

    /// The mean log-likelihood per point (per unit weight) of `data`,
    /// scikit-learn's `score`.
    ///
    /// # Errors
    /// As [`Gmm::log_likelihood`].
    pub fn score<P: Points + ?Sized>(&self, data: &P) -> Result<f32, GmmError> {
        let (ll, w) = self.log_likelihood(data)?;
        Ok(ll / w)
    }

    /// The Bayesian information criterion `-2 ln L + p ln n` on `data`
    /// (scikit-learn's `bic`; `n` is the total weight, the point count for
    /// unweighted data).
    ///
    /// # Errors
    /// As [`Gmm::log_likelihood`].
    pub fn bic<P: Points + ?Sized>(&self, data: &P) -> Result<f32, GmmError> {
        let (ll, w) = self.log_likelihood(data)?;
        Ok(bic(ll, w, self.k))
    }

    /// The Akaike information criterion `-2 ln L + 2p` on `data`
    /// (scikit-learn's `aic`).
    ///
    /// # Errors
    /// As [`Gmm::log_likelihood`].
    pub fn aic<P: Points + ?Sized>(&self, data: &P) -> Result<f32, GmmError> {
        let (ll, _) = self.log_likelihood(data)?;
        Ok(aic(ll, self.k))
    }
}

/// `-2 ln L + (6k - 1) ln n`.
#[must_use]
pub fn bic(log_likelihood: f32, n: f32, k: usize) -> f32 {
    -2.0 * log_likelihood + (6 * k - 1) as f32 * libm::logf(n)
}

/// `-2 ln L + 2 (6k - 1)`.
#[must_use]
pub fn aic(log_likelihood: f32, k: usize) -> f32 {
    -2.0 * log_likelihood + 2.0 * (6 * k - 1) as f32
}

/// One component prepared for scoring: mean, whitening factor and
/// `ln w + ln-normaliser`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct ScoreTerms {
    mean: [f32; 2],
    white: [f32; 3],
    c: f32,
}

/// A [`Gmm`] prepared for scoring many points ([`Gmm::scorer`]): the same
/// answers, bit for bit, as the model's own methods, without forming each
/// component's whitening factor again for every point. `K * 24` bytes
/// plus one word.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scorer<const K: usize> {
    k: usize,
    terms: [ScoreTerms; K],
}

impl<const K: usize> Scorer<K> {
    fn terms(&self) -> impl Iterator<Item = ScoreTerms> + '_ {
        self.terms.iter().take(self.k).copied()
    }

    /// As [`Gmm::log_density`].
    #[must_use]
    pub fn log_density(&self, p: Point) -> f32 {
        posterior::<K>(self.terms(), p).1
    }

    /// As [`Gmm::predict_proba`].
    #[must_use]
    pub fn predict_proba(&self, p: Point) -> [f32; K] {
        posterior(self.terms(), p).0
    }

    /// As [`Gmm::posterior`].
    #[must_use]
    pub fn posterior(&self, p: Point) -> ([f32; K], f32) {
        posterior(self.terms(), p)
    }

    /// As [`Gmm::predict`].
    #[must_use]
    pub fn predict(&self, p: Point) -> usize {
        predict::<K>(self.terms(), p)
    }
}

/// The log joint densities `ln w_j + ln N(p | mu_j, S_j)` of the
/// components `terms` into `out`; returns their maximum. The one formula
/// behind [`Gmm`]'s and [`Scorer`]'s queries, so both give the same bits.
#[inline]
fn log_joint<const K: usize>(
    terms: impl Iterator<Item = ScoreTerms>,
    p: Point,
    out: &mut [f32; K],
) -> (f32, usize) {
    let mut max = LOG_FLOOR;
    let mut k = 0;
    for (o, t) in out.iter_mut().zip(terms) {
        let q = t.c - 0.5 * crate::gaussian::distance_sq(t.white, t.mean, p);
        // NaN and -inf (zero weight, overflowing distance) go to the floor.
        let q = if q > LOG_FLOOR { q } else { LOG_FLOOR };
        *o = q;
        max = if q > max { q } else { max };
        k += 1;
    }
    (max, k)
}

/// Posterior probabilities (entries past the components are 0) and
/// `ln p(x)` by log-sum-exp.
#[inline]
fn posterior<const K: usize>(terms: impl Iterator<Item = ScoreTerms>, p: Point) -> ([f32; K], f32) {
    let mut q = [0.0f32; K];
    let (max, k) = log_joint(terms, p, &mut q);
    let mut sum = 0.0f32;
    for v in q.iter_mut().take(k) {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for (j, v) in q.iter_mut().enumerate() {
        *v = if j < k { *v * inv } else { 0.0 };
    }
    (q, max + libm::logf(sum))
}

/// The most probable component (the first one on ties).
#[inline]
fn predict<const K: usize>(terms: impl Iterator<Item = ScoreTerms>, p: Point) -> usize {
    let mut q = [0.0f32; K];
    let (_, k) = log_joint(terms, p, &mut q);
    let mut best = 0;
    let mut best_q = f32::NEG_INFINITY;
    for (j, &v) in q.iter().take(k).enumerate() {
        if v > best_q {
            best_q = v;
            best = j;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Gmm<3> {
        Gmm::new(
            &[0.25, 0.75],
            &[[-3.0, 0.0], [3.0, 1.0]],
            &[SymMat2::new(1.0, 0.2, 0.5), SymMat2::new(2.0, -0.3, 1.0)],
        )
        .unwrap()
    }

    /// A scorer answers with the model's own bits, near and far.
    #[test]
    fn scorer_matches_the_model_bit_for_bit() {
        let g = two();
        let s = g.scorer();
        for i in 0..400 {
            let t = i as f32 * 0.37;
            let r = if i % 50 == 0 {
                1e11
            } else {
                1.0 + (i % 13) as f32
            };
            let p = [r * libm::cosf(t), r * libm::sinf(t)];
            assert_eq!(
                s.log_density(p).to_bits(),
                g.log_density(p).to_bits(),
                "{p:?}"
            );
            assert_eq!(s.predict(p), g.predict(p), "{p:?}");
            let (a, b) = (s.predict_proba(p), g.predict_proba(p));
            assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits), "{p:?}");
        }
    }

    #[test]
    fn log_density_is_log_of_weighted_sum_f64() {
        let g = two();
        for p in [[0.0, 0.0], [-3.0, 0.1], [3.0, 1.0], [40.0, -30.0]] {
            let want: f64 = g
                .components()
                .iter()
                .zip(g.weights())
                .map(|(c, &w)| f64::from(w) * f64::from(c.log_density(p)).exp())
                .sum::<f64>()
                .ln();
            let got = f64::from(g.log_density(p));
            if want.is_finite() {
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{p:?}: {got} vs {want}"
                );
            } else {
                // Too far for f64's linear domain; log-sum-exp still finite.
                assert!(got.is_finite() && got < -500.0);
            }
        }
    }

    #[test]
    fn proba_sums_to_one_and_predict_is_argmax() {
        let g = two();
        for p in [[0.0, 0.0], [-2.0, 0.5], [1e4, 1e4], [-1e6, 3.0]] {
            let pr = g.predict_proba(p);
            let s: f32 = pr.iter().sum();
            assert!((s - 1.0).abs() <= 1e-6, "{p:?}: {pr:?}");
            assert_eq!(pr[2], 0.0);
            let arg = if pr[0] >= pr[1] { 0 } else { 1 };
            assert_eq!(g.predict(p), arg, "{p:?}");
        }
    }

    #[test]
    fn new_validates() {
        let c = [SymMat2::IDENTITY; 2];
        let m = [[0.0, 0.0]; 2];
        assert_eq!(
            Gmm::<1>::new(&[0.5, 0.5], &m, &c),
            Err(GmmError::InvalidK { k: 2, capacity: 1 })
        );
        assert!(Gmm::<2>::new(&[], &[], &[]).is_err());
        assert!(Gmm::<2>::new(&[0.5, -0.5], &m, &c).is_err());
        assert!(Gmm::<2>::new(&[0.0, 0.0], &m, &c).is_err());
        assert!(Gmm::<2>::new(&[0.5, 0.5], &m[..1], &c).is_err());
        let g = Gmm::<2>::new(&[2.0, 6.0], &m, &c).unwrap();
        assert_eq!(g.weights(), &[0.25, 0.75]);
    }

    #[test]
    fn bic_aic_definitions() {
        assert_eq!(aic(-100.0, 3), 200.0 + 34.0);
        let b = bic(-100.0, 50.0, 1);
        assert!((b - (200.0 + 5.0 * 50f32.ln())).abs() < 1e-4);
    }
}
