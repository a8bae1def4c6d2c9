//! An f64 EM written independently of `gmm-core`, to check it.
//!
//! This is the textbook algorithm, kept deliberately plain so that a reader
//! can verify it line by line against Bishop (PRML, section 9.2.2):
//! - the N x K matrix of log-responsibilities is stored;
//! - each covariance is factored by a general `D x D` Cholesky
//!   decomposition (no 2x2 closed forms), and densities are evaluated in
//!   the log domain from that factor by forward substitution;
//! - the E-step normalises by log-sum-exp;
//! - the M-step makes two passes (means first, then the scatter about the
//!   new means) and adds `reg_covar` to each diagonal.
//!
//! Iteration semantics are the ones `gmm-core` documents: `ll_0` is the
//! mean log-likelihood under the starting parameters; each iteration is one
//! M-step then one E-step giving `ll_n` under the new parameters; the loop
//! stops when `|ll_n - ll_{n-1}| <= tol` or after `max_iter` M-steps. The
//! reported log-likelihood is under the final parameters.
//!
//! The reference has no guards: where `gmm-core` would re-seed an emptied
//! component (effective weight below a thousandth of an average point's) or
//! floor a singular covariance, the reference stops with an error, so a
//! comparison never silently measures two different algorithms.

// Index loops mirror the textbook formulas (L[i][k] * y[k], ...).
#![allow(clippy::needless_range_loop)]

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Dimension of the data.
const D: usize = 2;

/// `ln(2 pi)`.
const LN_2PI: f64 = 1.837_877_066_409_345_3;

/// A 2-D Gaussian mixture in f64.
///
/// Its serde form is the `init.json` / `mixture.json` format of the `gmm`
/// command line:
/// `{"weights":[..], "means":[[x,y],..], "covariances":[[[a,b],[b,c]],..]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mixture64 {
    /// Mixing weights (normalised to sum to 1 by [`Mixture64::validate`]'s users).
    pub weights: Vec<f64>,
    /// Component means.
    pub means: Vec<[f64; 2]>,
    /// Component covariances, full (symmetric) 2x2 matrices.
    pub covariances: Vec<[[f64; 2]; 2]>,
}

impl Mixture64 {
    /// The course notebook's mixture (../shared/SEED.md): means (-4, 0),
    /// (0, 4), (4, 0); covariances [[1, .5], [.5, 1]], I, [[1, -.5], [-.5, 1]];
    /// weights 0.3, 0.5, 0.2.
    #[must_use]
    pub fn seed_mixture() -> Self {
        Self {
            weights: vec![0.3, 0.5, 0.2],
            means: vec![[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0]],
            covariances: vec![
                [[1.0, 0.5], [0.5, 1.0]],
                [[1.0, 0.0], [0.0, 1.0]],
                [[1.0, -0.5], [-0.5, 1.0]],
            ],
        }
    }

    /// Number of components.
    #[must_use]
    pub fn k(&self) -> usize {
        self.weights.len()
    }

    /// Checks the parameters: at least one component, equal lengths,
    /// weights finite and >= 0 with a positive sum, means finite,
    /// covariances symmetric (to 1e-9 relative) and positive definite.
    ///
    /// # Errors
    /// [`RefError::InvalidParameters`] saying what is wrong.
    pub fn validate(&self) -> Result<(), RefError> {
        let bad = |s: String| Err(RefError::InvalidParameters(s));
        let k = self.weights.len();
        if k == 0 {
            return bad("no components".into());
        }
        if self.means.len() != k || self.covariances.len() != k {
            return bad(format!(
                "{} weights, {} means and {} covariances differ in length",
                k,
                self.means.len(),
                self.covariances.len()
            ));
        }
        let mut total = 0.0;
        for (j, &w) in self.weights.iter().enumerate() {
            if !(w.is_finite() && w >= 0.0) {
                return bad(format!("weights[{j}] = {w} is negative or not finite"));
            }
            total += w;
        }
        if !(total > 0.0 && total.is_finite()) {
            return bad("the weights sum to 0".into());
        }
        for (j, m) in self.means.iter().enumerate() {
            if !m.iter().all(|v| v.is_finite()) {
                return bad(format!("means[{j}] is not finite"));
            }
        }
        for (j, c) in self.covariances.iter().enumerate() {
            if !c.iter().flatten().all(|v| v.is_finite()) {
                return bad(format!("covariances[{j}] is not finite"));
            }
            let scale = c[0][1].abs().max(c[1][0].abs()).max(1e-300);
            if (c[0][1] - c[1][0]).abs() > 1e-9 * scale {
                return bad(format!("covariances[{j}] is not symmetric"));
            }
            if cholesky(c).is_none() {
                return bad(format!("covariances[{j}] is not positive definite"));
            }
        }
        Ok(())
    }

    /// The same mixture with weights scaled to sum to 1.
    fn normalised(&self) -> Self {
        let total: f64 = self.weights.iter().sum();
        Self {
            weights: self.weights.iter().map(|w| w / total).collect(),
            ..self.clone()
        }
    }

    /// `ln w_j + ln N(x | mu_j, S_j)` for every component, or `None` when a
    /// covariance is not positive definite.
    fn log_joint(&self, x: [f64; 2]) -> Option<Vec<f64>> {
        self.weights
            .iter()
            .zip(&self.means)
            .zip(&self.covariances)
            .map(|((&w, m), c)| Some(w.ln() + log_gaussian(x, m, &cholesky(c)?)))
            .collect()
    }

    /// `ln p(x)`, the log of the mixture density (NaN when the mixture is
    /// invalid).
    #[must_use]
    pub fn log_density(&self, x: [f64; 2]) -> f64 {
        match self.normalised().log_joint(x) {
            Some(q) => log_sum_exp(&q),
            None => f64::NAN,
        }
    }

    /// Posterior probability of each component at `x` (NaN entries when
    /// the mixture is invalid).
    #[must_use]
    pub fn predict_proba(&self, x: [f64; 2]) -> Vec<f64> {
        match self.normalised().log_joint(x) {
            Some(q) => {
                let l = log_sum_exp(&q);
                q.iter().map(|v| (v - l).exp()).collect()
            }
            None => vec![f64::NAN; self.k()],
        }
    }
}

/// How the reference EM runs. The default is scikit-learn's:
/// `tol = 1e-3`, `max_iter = 100`, `reg_covar = 1e-6`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefConfig {
    /// Stop when the mean log-likelihood per unit weight changes by at most this.
    pub tol: f64,
    /// Maximum number of M-steps.
    pub max_iter: usize,
    /// Added to every covariance diagonal in the M-step.
    pub reg_covar: f64,
}

impl Default for RefConfig {
    fn default() -> Self {
        Self {
            tol: 1e-3,
            max_iter: 100,
            reg_covar: 1e-6,
        }
    }
}

/// The result of [`fit`].
#[derive(Clone, Debug, PartialEq)]
pub struct RefFit {
    /// The final parameters.
    pub mixture: Mixture64,
    /// Number of M-steps run.
    pub n_iter: usize,
    /// Whether `tol` was met before `max_iter`.
    pub converged: bool,
    /// Total (weighted) log-likelihood under the final parameters.
    pub log_likelihood: f64,
    /// `log_likelihood` divided by the total weight.
    pub mean_log_likelihood: f64,
    /// Mean log-likelihood per iteration; index 0 is under the start.
    pub trace: Vec<f64>,
    /// Mixing weights per iteration; index 0 is the start's.
    pub weights_trace: Vec<Vec<f64>>,
}

/// Why the reference EM could not run or finish.
#[derive(Clone, Debug, PartialEq)]
pub enum RefError {
    /// A point has a NaN or infinite coordinate.
    NonFinitePoint {
        /// Its index.
        index: usize,
    },
    /// A weight is negative, NaN or infinite.
    InvalidWeight {
        /// Its index.
        index: usize,
    },
    /// Points and weights differ in number.
    WeightCountMismatch {
        /// Number of points.
        points: usize,
        /// Number of weights.
        weights: usize,
    },
    /// No point has a positive weight.
    ZeroTotalWeight,
    /// Fewer points with a positive weight than components.
    TooFewPoints {
        /// Points with a positive weight.
        points: usize,
        /// Components.
        components: usize,
    },
    /// `tol` or `reg_covar` is negative or not finite.
    InvalidConfig(String),
    /// The starting mixture is invalid.
    InvalidParameters(String),
    /// A component's effective weight fell below a thousandth of an
    /// average point's (where `gmm-core` would re-seed it).
    EmptyComponent {
        /// The component.
        component: usize,
        /// The M-step (1-based) where it happened.
        iteration: usize,
    },
    /// A covariance was not positive definite after `reg_covar` (where
    /// `gmm-core` would floor it).
    SingularCovariance {
        /// The component.
        component: usize,
        /// The M-step (1-based) where it happened.
        iteration: usize,
    },
    /// The log-likelihood became non-finite.
    Diverged,
}

impl fmt::Display for RefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NonFinitePoint { index } => {
                write!(f, "point {index} has a NaN or infinite coordinate")
            }
            Self::InvalidWeight { index } => {
                write!(f, "weight {index} is negative, NaN or infinite")
            }
            Self::WeightCountMismatch { points, weights } => {
                write!(f, "{points} points but {weights} weights")
            }
            Self::ZeroTotalWeight => f.write_str("no points with a positive weight"),
            Self::TooFewPoints { points, components } => write!(
                f,
                "{points} points with positive weight is fewer than the {components} components asked for"
            ),
            Self::InvalidConfig(s) => write!(f, "invalid configuration: {s}"),
            Self::InvalidParameters(s) => write!(f, "invalid mixture: {s}"),
            Self::EmptyComponent {
                component,
                iteration,
            } => write!(
                f,
                "component {component} emptied in iteration {iteration} (the reference has no re-seeding guard)"
            ),
            Self::SingularCovariance {
                component,
                iteration,
            } => write!(
                f,
                "the covariance of component {component} became singular in iteration {iteration}; increase reg_covar"
            ),
            Self::Diverged => f.write_str("the log-likelihood became non-finite"),
        }
    }
}

impl std::error::Error for RefError {}

/// Lower-triangular `L` with `L L^T = a`, by the Cholesky-Banachiewicz
/// recurrence; `None` when `a` is not (numerically) positive definite.
#[must_use]
pub fn cholesky<const N: usize>(a: &[[f64; N]; N]) -> Option<[[f64; N]; N]> {
    let mut l = [[0.0; N]; N];
    for i in 0..N {
        for j in 0..=i {
            let mut s = a[i][j];
            for k in 0..j {
                s -= l[i][k] * l[j][k];
            }
            if i == j {
                if !(s > 0.0 && s.is_finite()) {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    Some(l)
}

/// The inverse of a symmetric positive definite matrix from its Cholesky
/// factor: `S^-1 = L^-T L^-1`, by solving `L Y = I` then `L^T X = Y`.
#[must_use]
pub fn inverse_from_cholesky<const N: usize>(l: &[[f64; N]; N]) -> [[f64; N]; N] {
    let mut x = [[0.0; N]; N];
    for col in 0..N {
        let mut y = [0.0; N];
        for i in 0..N {
            let mut s = if i == col { 1.0 } else { 0.0 };
            for k in 0..i {
                s -= l[i][k] * y[k];
            }
            y[i] = s / l[i][i];
        }
        for i in (0..N).rev() {
            let mut s = y[i];
            for k in i + 1..N {
                s -= l[k][i] * x[k][col];
            }
            x[i][col] = s / l[i][i];
        }
    }
    x
}

/// `ln N(x | mu, L L^T) = -(D/2) ln 2 pi - sum ln L_ii - |L^-1 (x - mu)|^2 / 2`.
fn log_gaussian(x: [f64; D], mu: &[f64; D], l: &[[f64; D]; D]) -> f64 {
    let mut z = [0.0; D];
    let mut log_det_half = 0.0;
    for i in 0..D {
        let mut s = x[i] - mu[i];
        for k in 0..i {
            s -= l[i][k] * z[k];
        }
        z[i] = s / l[i][i];
        log_det_half += l[i][i].ln();
    }
    let q: f64 = z.iter().map(|v| v * v).sum();
    -0.5 * D as f64 * LN_2PI - log_det_half - 0.5 * q
}

/// `ln sum exp(v)`, shifted by the maximum.
fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// The validated data: points and their weights.
struct Data<'a> {
    points: &'a [[f64; 2]],
    weights: Vec<f64>,
    total: f64,
    n_positive: usize,
}

fn check_data<'a>(points: &'a [[f64; 2]], weights: Option<&[f64]>) -> Result<Data<'a>, RefError> {
    let weights = match weights {
        Some(w) if w.len() != points.len() => {
            return Err(RefError::WeightCountMismatch {
                points: points.len(),
                weights: w.len(),
            });
        }
        Some(w) => w.to_vec(),
        None => vec![1.0; points.len()],
    };
    for (i, (p, &w)) in points.iter().zip(&weights).enumerate() {
        if !(p[0].is_finite() && p[1].is_finite()) {
            return Err(RefError::NonFinitePoint { index: i });
        }
        if !(w >= 0.0 && w.is_finite()) {
            return Err(RefError::InvalidWeight { index: i });
        }
    }
    let total: f64 = weights.iter().sum();
    let n_positive = weights.iter().filter(|&&w| w > 0.0).count();
    if total.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(RefError::ZeroTotalWeight);
    }
    Ok(Data {
        points,
        weights,
        total,
        n_positive,
    })
}

/// E-step: the N x K log-responsibility matrix and the total weighted
/// log-likelihood.
fn e_step(data: &Data<'_>, m: &Mixture64) -> Result<(Vec<Vec<f64>>, f64), RefError> {
    let mut log_resp = Vec::with_capacity(data.points.len());
    let mut total = 0.0;
    for (&x, &w) in data.points.iter().zip(&data.weights) {
        let q = m.log_joint(x).ok_or(RefError::Diverged)?;
        let l = log_sum_exp(&q);
        if w > 0.0 {
            total += w * l;
        }
        log_resp.push(q.iter().map(|v| v - l).collect());
    }
    if !total.is_finite() {
        return Err(RefError::Diverged);
    }
    Ok((log_resp, total))
}

/// M-step from the responsibilities.
fn m_step(
    data: &Data<'_>,
    log_resp: &[Vec<f64>],
    k: usize,
    reg_covar: f64,
    iteration: usize,
) -> Result<Mixture64, RefError> {
    let empty_below = 1e-3 * data.total / data.n_positive as f64;
    let mut nk = vec![0.0; k];
    let mut means = vec![[0.0; 2]; k];
    let mut covariances = vec![[[0.0; 2]; 2]; k];
    for j in 0..k {
        let mut sum_r = 0.0;
        let mut sum_rx = [0.0; D];
        for ((x, &w), lr) in data.points.iter().zip(&data.weights).zip(log_resp) {
            let r = w * lr[j].exp();
            sum_r += r;
            for d in 0..D {
                sum_rx[d] += r * x[d];
            }
        }
        // NaN counts as empty too.
        if sum_r.is_nan() || sum_r < empty_below {
            return Err(RefError::EmptyComponent {
                component: j,
                iteration,
            });
        }
        let mu = [sum_rx[0] / sum_r, sum_rx[1] / sum_r];
        let mut s = [[0.0; D]; D];
        for ((x, &w), lr) in data.points.iter().zip(&data.weights).zip(log_resp) {
            let r = w * lr[j].exp();
            // The upper triangle, mirrored below, so S is exactly symmetric.
            for a in 0..D {
                for b in a..D {
                    s[a][b] += r * (x[a] - mu[a]) * (x[b] - mu[b]);
                }
            }
        }
        for a in 0..D {
            for b in 0..a {
                s[a][b] = s[b][a];
            }
        }
        for (a, row) in s.iter_mut().enumerate() {
            for (b, v) in row.iter_mut().enumerate() {
                *v /= sum_r;
                if a == b {
                    *v += reg_covar;
                }
            }
        }
        if cholesky(&s).is_none() {
            return Err(RefError::SingularCovariance {
                component: j,
                iteration,
            });
        }
        nk[j] = sum_r;
        means[j] = mu;
        covariances[j] = s;
    }
    let total: f64 = nk.iter().sum();
    Ok(Mixture64 {
        weights: nk.iter().map(|n| n / total).collect(),
        means,
        covariances,
    })
}

/// Runs EM from `init` (weights are normalised first).
///
/// # Errors
/// Input errors ([`RefError::NonFinitePoint`], [`RefError::InvalidWeight`],
/// [`RefError::WeightCountMismatch`], [`RefError::ZeroTotalWeight`],
/// [`RefError::TooFewPoints`], [`RefError::InvalidConfig`],
/// [`RefError::InvalidParameters`]) and the failures the reference does
/// not guard against ([`RefError::EmptyComponent`],
/// [`RefError::SingularCovariance`], [`RefError::Diverged`]).
///
/// # Examples
/// ```
/// use host_harness::reference::{fit, Mixture64, RefConfig};
/// let points = [[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]];
/// let init = Mixture64 { weights: vec![1.0], means: vec![[0.0, 0.0]], covariances: vec![[[1.0, 0.0], [0.0, 1.0]]] };
/// let f = fit(&points, None, &init, &RefConfig::default())?;
/// assert_eq!(f.mixture.means[0], [1.0, 1.0]);
/// assert!((f.mixture.covariances[0][0][0] - (1.0 + 1e-6)).abs() < 1e-12);
/// # Ok::<(), host_harness::reference::RefError>(())
/// ```
pub fn fit(
    points: &[[f64; 2]],
    weights: Option<&[f64]>,
    init: &Mixture64,
    cfg: &RefConfig,
) -> Result<RefFit, RefError> {
    if !(cfg.tol >= 0.0 && cfg.tol.is_finite()) {
        return Err(RefError::InvalidConfig(
            "tol must be finite and >= 0".into(),
        ));
    }
    if !(cfg.reg_covar >= 0.0 && cfg.reg_covar.is_finite()) {
        return Err(RefError::InvalidConfig(
            "reg_covar must be finite and >= 0".into(),
        ));
    }
    init.validate()?;
    let data = check_data(points, weights)?;
    let k = init.k();
    if data.n_positive < k {
        return Err(RefError::TooFewPoints {
            points: data.n_positive,
            components: k,
        });
    }
    let mut mixture = init.normalised();
    let (mut log_resp, mut ll) = e_step(&data, &mixture)?;
    let mut mean_ll = ll / data.total;
    let mut trace = vec![mean_ll];
    let mut weights_trace = vec![mixture.weights.clone()];
    let mut n_iter = 0;
    let mut converged = false;
    while n_iter < cfg.max_iter {
        n_iter += 1;
        mixture = m_step(&data, &log_resp, k, cfg.reg_covar, n_iter)?;
        (log_resp, ll) = e_step(&data, &mixture)?;
        let next = ll / data.total;
        trace.push(next);
        weights_trace.push(mixture.weights.clone());
        let change = next - mean_ll;
        mean_ll = next;
        if change.abs() <= cfg.tol {
            converged = true;
            break;
        }
    }
    Ok(RefFit {
        mixture,
        n_iter,
        converged,
        log_likelihood: ll,
        mean_log_likelihood: mean_ll,
        trace,
        weights_trace,
    })
}

/// Total (weighted) log-likelihood of the points under `m`; NaN when the
/// data or the mixture is invalid.
#[must_use]
pub fn log_likelihood(points: &[[f64; 2]], weights: Option<&[f64]>, m: &Mixture64) -> f64 {
    if m.validate().is_err() {
        return f64::NAN;
    }
    match check_data(points, weights) {
        Ok(data) => e_step(&data, &m.normalised()).map_or(f64::NAN, |(_, ll)| ll),
        Err(_) => f64::NAN,
    }
}

/// BIC `-2 ln L + (6k - 1) ln n` with `n` the total weight.
#[must_use]
pub fn bic(log_likelihood: f64, n: f64, k: usize) -> f64 {
    -2.0 * log_likelihood + (6 * k - 1) as f64 * n.ln()
}

/// AIC `-2 ln L + 2 (6k - 1)`.
#[must_use]
pub fn aic(log_likelihood: f64, k: usize) -> f64 {
    -2.0 * log_likelihood + 2.0 * (6 * k - 1) as f64
}

/// Draws `n` points and their component labels from `m` with a
/// xoshiro256++ stream seeded from `seed` (independent of `gmm-core`'s
/// sampler): the component by inverse CDF of the weights, then
/// `mu + L z` with `z` a Box-Muller standard normal pair.
///
/// # Errors
/// [`RefError::InvalidParameters`] when `m` is invalid.
pub fn sample(m: &Mixture64, n: usize, seed: u64) -> Result<Vec<([f64; 2], usize)>, RefError> {
    m.validate()?;
    let m = m.normalised();
    let factors: Vec<[[f64; 2]; 2]> = m.covariances.iter().filter_map(cholesky).collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut uniform = move || (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let u = uniform();
        let mut label = m.k() - 1;
        let mut cumulative = 0.0;
        for (j, w) in m.weights.iter().enumerate() {
            cumulative += w;
            if u < cumulative {
                label = j;
                break;
            }
        }
        let r = (-2.0 * (1.0 - uniform()).ln()).sqrt();
        let theta = std::f64::consts::TAU * uniform();
        let z = [r * theta.cos(), r * theta.sin()];
        let (mu, l) = (m.means[label], factors[label]);
        out.push((
            [
                mu[0] + l[0][0] * z[0],
                mu[1] + l[1][0] * z[0] + l[1][1] * z[1],
            ],
            label,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> [[f64; 2]; 2] {
        [[1.0, 0.0], [0.0, 1.0]]
    }

    #[test]
    fn cholesky_and_inverse_of_a_known_matrix() {
        // [[4, 2], [2, 3]] = L L^T with L = [[2, 0], [1, sqrt 2]];
        // inverse = [[3, -2], [-2, 4]] / 8. Exact in binary but for sqrt 2.
        let a = [[4.0, 2.0], [2.0, 3.0]];
        let l = cholesky(&a).unwrap();
        assert_eq!(l[0], [2.0, 0.0]);
        assert_eq!(l[1][0], 1.0);
        assert!((l[1][1] - 2f64.sqrt()).abs() < 1e-15);
        let inv = inverse_from_cholesky(&l);
        let want = [[0.375, -0.25], [-0.25, 0.5]];
        for (r, w) in inv.iter().flatten().zip(want.iter().flatten()) {
            assert!((r - w).abs() < 1e-15, "{inv:?}");
        }
        assert!(cholesky(&[[1.0, 2.0], [2.0, 1.0]]).is_none());
        // General N: a 3x3 check of L L^T = A.
        let b = [[4.0, 2.0, 0.4], [2.0, 5.0, 1.0], [0.4, 1.0, 3.0]];
        let l3 = cholesky(&b).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| l3[i][k] * l3[j][k]).sum();
                assert!((v - b[i][j]).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn log_density_of_a_standard_normal() {
        // ln N(0 | 0, I) = -ln 2 pi; at (1, 1): -ln 2 pi - 1.
        let m = Mixture64 {
            weights: vec![1.0],
            means: vec![[0.0, 0.0]],
            covariances: vec![identity()],
        };
        assert!((m.log_density([0.0, 0.0]) + LN_2PI).abs() < 1e-15);
        assert!((m.log_density([1.0, 1.0]) + LN_2PI + 1.0).abs() < 1e-15);
    }

    #[test]
    fn k1_is_the_sample_mean_and_covariance_plus_reg() {
        // Points (0,0), (2,0), (0,2), (2,2), (1,1): mean (1,1); biased
        // covariance diag (4/5, 4/5), off-diagonal 0.
        let pts = [[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [1.0, 1.0]];
        let init = Mixture64 {
            weights: vec![1.0],
            means: vec![[5.0, -3.0]],
            covariances: vec![identity()],
        };
        let cfg = RefConfig {
            reg_covar: 0.25,
            ..RefConfig::default()
        };
        let f = fit(&pts, None, &init, &cfg).unwrap();
        assert_eq!(f.mixture.means[0], [1.0, 1.0]);
        let c = f.mixture.covariances[0];
        assert!((c[0][0] - 1.05).abs() < 1e-15 && (c[1][1] - 1.05).abs() < 1e-15);
        assert!(c[0][1].abs() < 1e-15);
        // One M-step reaches the fixed point; the second changes nothing.
        assert_eq!(f.n_iter, 2);
        assert!(f.converged);
        assert_eq!(f.trace.len(), 3);
        // ll = sum ln N(x | mu, 1.05 I) = -5 ln 2 pi - 5 ln 1.05 - (sum |x - mu|^2) / (2 * 1.05)
        let want = -5.0 * LN_2PI - 5.0 * 1.05f64.ln() - 8.0 / 2.1;
        assert!((f.log_likelihood - want).abs() < 1e-12);
        assert!((f.mean_log_likelihood - want / 5.0).abs() < 1e-12);
    }

    #[test]
    fn weights_count_like_repeated_points() {
        let pts = [[0.0, 0.0], [3.0, 1.0], [1.0, -2.0]];
        let rep = [[0.0, 0.0], [3.0, 1.0], [3.0, 1.0], [3.0, 1.0], [1.0, -2.0]];
        let init = Mixture64 {
            weights: vec![1.0],
            means: vec![[0.0, 0.0]],
            covariances: vec![identity()],
        };
        let cfg = RefConfig::default();
        let a = fit(&pts, Some(&[1.0, 3.0, 1.0]), &init, &cfg).unwrap();
        let b = fit(&rep, None, &init, &cfg).unwrap();
        assert!((a.log_likelihood - b.log_likelihood).abs() < 1e-12);
        for (x, y) in a.mixture.covariances[0]
            .iter()
            .flatten()
            .zip(b.mixture.covariances[0].iter().flatten())
        {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn max_iter_zero_returns_the_start() {
        let pts = [[0.0, 0.0], [1.0, 0.0]];
        let init = Mixture64 {
            weights: vec![2.0],
            means: vec![[0.0, 0.0]],
            covariances: vec![identity()],
        };
        let cfg = RefConfig {
            max_iter: 0,
            ..RefConfig::default()
        };
        let f = fit(&pts, None, &init, &cfg).unwrap();
        assert_eq!(f.n_iter, 0);
        assert!(!f.converged);
        assert_eq!(f.mixture.weights, vec![1.0]);
        assert!((f.log_likelihood - (-2.0 * LN_2PI - 0.5)).abs() < 1e-15);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let init = Mixture64::seed_mixture();
        let cfg = RefConfig::default();
        let nan = [[0.0, 0.0], [f64::NAN, 1.0], [1.0, 1.0]];
        assert_eq!(
            fit(&nan, None, &init, &cfg),
            Err(RefError::NonFinitePoint { index: 1 })
        );
        let two = [[0.0, 0.0], [1.0, 1.0]];
        assert!(matches!(
            fit(&two, None, &init, &cfg),
            Err(RefError::TooFewPoints { .. })
        ));
        let mut bad = init.clone();
        bad.covariances[1] = [[1.0, 2.0], [2.0, 1.0]];
        assert!(matches!(
            fit(&two, None, &bad, &cfg),
            Err(RefError::InvalidParameters(_))
        ));
        assert!(log_likelihood(&two, None, &bad).is_nan());
        let w = [1.0, -1.0];
        assert_eq!(
            fit(&two, Some(&w), &init, &cfg),
            Err(RefError::InvalidWeight { index: 1 })
        );
    }

    #[test]
    fn sampler_moments_match() {
        // 20 000 draws of one component: standard error of each mean is
        // ~0.01 and of each covariance entry ~0.02; 0.08 is 4+ sigma.
        let m = Mixture64 {
            weights: vec![1.0],
            means: vec![[1.0, -2.0]],
            covariances: vec![[[2.0, 0.8], [0.8, 1.0]]],
        };
        let s = sample(&m, 20_000, 5).unwrap();
        let n = s.len() as f64;
        let mx = s.iter().map(|(p, _)| p[0]).sum::<f64>() / n;
        let my = s.iter().map(|(p, _)| p[1]).sum::<f64>() / n;
        let cxy = s
            .iter()
            .map(|(p, _)| (p[0] - mx) * (p[1] - my))
            .sum::<f64>()
            / n;
        let cxx = s.iter().map(|(p, _)| (p[0] - mx).powi(2)).sum::<f64>() / n;
        assert!((mx - 1.0).abs() < 0.08 && (my + 2.0).abs() < 0.08);
        assert!((cxy - 0.8).abs() < 0.08 && (cxx - 2.0).abs() < 0.08);
    }

    #[test]
    fn two_clusters_by_hand() {
        // Two far-apart pairs: (-10, 0), (-10, 2) and (10, 0), (10, 2).
        // Starting at the right centres, responsibilities are 1 / 0 to
        // within exp(-100), so one M-step gives each component the mean and
        // biased covariance of its pair: mean (+-10, 1), cov diag(0, 1) plus
        // reg_covar, weights 1/2.
        let pts = [[-10.0, 0.0], [-10.0, 2.0], [10.0, 0.0], [10.0, 2.0]];
        let init = Mixture64 {
            weights: vec![0.5, 0.5],
            means: vec![[-10.0, 1.0], [10.0, 1.0]],
            covariances: vec![identity(), identity()],
        };
        let cfg = RefConfig {
            reg_covar: 0.01,
            ..RefConfig::default()
        };
        let f = fit(&pts, None, &init, &cfg).unwrap();
        for (j, sign) in [-1.0, 1.0].into_iter().enumerate() {
            assert!((f.mixture.weights[j] - 0.5).abs() < 1e-12);
            assert!((f.mixture.means[j][0] - 10.0 * sign).abs() < 1e-12);
            assert!((f.mixture.means[j][1] - 1.0).abs() < 1e-12);
            let c = f.mixture.covariances[j];
            assert!((c[0][0] - 0.01).abs() < 1e-12 && (c[1][1] - 1.01).abs() < 1e-12);
            assert!(c[0][1].abs() < 1e-12);
        }
        // ll = 4 [ln 1/2 - ln 2 pi - 0.5 ln(0.01 * 1.01) - 0.5 * 1 / 1.01]
        let want = 4.0 * (0.5f64.ln() - LN_2PI - 0.5 * (0.01f64 * 1.01).ln() - 0.5 / 1.01);
        assert!(
            (f.log_likelihood - want).abs() < 1e-9,
            "{}",
            f.log_likelihood
        );
    }
}
