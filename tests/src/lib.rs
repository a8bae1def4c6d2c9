//! Helpers shared by the cross-crate tests in `tests/`: seeds with an
//! environment override, a small f64 random source, the comparison rules,
//! component matching and the adjusted Rand index.

use gmm_core::rand_core::{Rng, SeedableRng};
use gmm_core::{Gmm, Point, SymMat2};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The environment variable that overrides every test's random seed.
pub const SEED_VAR: &str = "GMM_TEST_SEED";

/// The seed of a random test: `default`, or the value of `GMM_TEST_SEED`
/// when set. Printed either way so a failure can be replayed.
///
/// # Panics
/// When `GMM_TEST_SEED` is set but is not a `u64` (a test set-up error).
#[must_use]
pub fn seed(test: &str, default: u64) -> u64 {
    let seed = match std::env::var(SEED_VAR) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_VAR}={v:?} is not a u64")),
        Err(_) => default,
    };
    eprintln!("{test}: seed {seed} (replay with {SEED_VAR}={seed})");
    seed
}

/// A seeded f64 random source for building test data (xoshiro256++).
#[derive(Clone, Debug)]
pub struct Rand(Xoshiro256PlusPlus);

impl Rand {
    /// Seeded from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// The generator, for APIs that take a `rand_core` RNG.
    pub fn rng(&mut self) -> &mut Xoshiro256PlusPlus {
        &mut self.0
    }

    /// 64 random bits.
    pub fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in `lo..=hi`.
    pub fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + ((self.0.next_u64() as u128 * (hi - lo + 1) as u128) >> 64) as usize
    }

    /// Log-uniform in `[lo, hi)` (`lo > 0`).
    pub fn log_range(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.uniform()).exp()
    }

    /// A standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A point from N(mean, cov) through the Cholesky factor of `cov`.
    pub fn gaussian(&mut self, mean: [f64; 2], cov: [[f64; 2]; 2]) -> [f64; 2] {
        let l00 = cov[0][0].sqrt();
        let l10 = cov[1][0] / l00;
        let l11 = (cov[1][1] - l10 * l10).max(0.0).sqrt();
        let (z0, z1) = (self.normal(), self.normal());
        [mean[0] + l00 * z0, mean[1] + l10 * z0 + l11 * z1]
    }
}

/// A covariance with standard deviations `s1`, `s2` along axes rotated
/// by `theta`.
#[must_use]
pub fn rotated_cov(s1: f64, s2: f64, theta: f64) -> [[f64; 2]; 2] {
    let (c, s) = (theta.cos(), theta.sin());
    let (a, b) = (s1 * s1, s2 * s2);
    let xy = (a - b) * c * s;
    [[a * c * c + b * s * s, xy], [xy, a * s * s + b * c * c]]
}

/// `|a - b| / max(|b|, floor)`: the error of `a` relative to the expected
/// `b`, or relative to `floor` (the natural scale of the quantity) when
/// `b` is nearer 0 than that.
#[must_use]
pub fn rel_err(a: f64, b: f64, floor: f64) -> f64 {
    (a - b).abs() / b.abs().max(floor)
}

/// Parameters of one component in f64, for comparisons.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comp {
    /// Mixing weight.
    pub weight: f64,
    /// Mean.
    pub mean: [f64; 2],
    /// Covariance (full, symmetric).
    pub cov: [[f64; 2]; 2],
}

/// The components of a fitted core model, widened to f64.
#[must_use]
pub fn comps<const K: usize>(g: &Gmm<K>) -> Vec<Comp> {
    g.weights()
        .iter()
        .zip(g.components())
        .map(|(&w, c)| {
            let m = c.mean();
            let s = c.covariance();
            Comp {
                weight: f64::from(w),
                mean: [f64::from(m[0]), f64::from(m[1])],
                cov: [
                    [f64::from(s.xx), f64::from(s.xy)],
                    [f64::from(s.xy), f64::from(s.yy)],
                ],
            }
        })
        .collect()
}

/// The worst relative errors of `got` against `want`, component by
/// component in the same order, with the floors this crate's tests use:
/// - weights relative to themselves, floor 1e-3 (weights are in (0, 1]);
/// - mean coordinates relative to themselves, floor the component's
///   standard deviation along that axis (a mean near 0 is judged on the
///   scale of its own spread);
/// - variances relative to themselves; the covariance term relative to
///   `max(|xy|, sqrt(xx * yy))`, the largest it can be (the correlation's
///   scale), so a near-zero correlation is judged on the variances' scale.
///
/// Returns `(weight, mean, covariance)` maxima.
#[must_use]
pub fn param_errors(got: &[Comp], want: &[Comp]) -> (f64, f64, f64) {
    let (mut ew, mut em, mut ec) = (0.0f64, 0.0f64, 0.0f64);
    for (g, w) in got.iter().zip(want) {
        ew = ew.max(rel_err(g.weight, w.weight, 1e-3));
        for d in 0..2 {
            em = em.max(rel_err(g.mean[d], w.mean[d], w.cov[d][d].sqrt()));
        }
        let corr_scale = (w.cov[0][0] * w.cov[1][1]).sqrt();
        ec = ec
            .max(rel_err(g.cov[0][0], w.cov[0][0], 0.0))
            .max(rel_err(g.cov[1][1], w.cov[1][1], 0.0))
            .max(rel_err(g.cov[0][1], w.cov[0][1], corr_scale));
    }
    (ew, em, ec)
}

/// The permutation `p` (fitted component `p[j]` matches true component
/// `j`) minimising the summed squared distance between means. Brute force
/// over all permutations: k <= 8.
#[must_use]
pub fn match_components(fitted: &[[f64; 2]], truth: &[[f64; 2]]) -> Vec<usize> {
    fn go(
        j: usize,
        used: &mut Vec<bool>,
        cur: &mut Vec<usize>,
        cost: f64,
        best: &mut (f64, Vec<usize>),
        fitted: &[[f64; 2]],
        truth: &[[f64; 2]],
    ) {
        if cost >= best.0 {
            return;
        }
        if j == truth.len() {
            *best = (cost, cur.clone());
            return;
        }
        for i in 0..fitted.len() {
            if !used[i] {
                let d = (fitted[i][0] - truth[j][0]).powi(2) + (fitted[i][1] - truth[j][1]).powi(2);
                used[i] = true;
                cur.push(i);
                go(j + 1, used, cur, cost + d, best, fitted, truth);
                cur.pop();
                used[i] = false;
            }
        }
    }
    let mut best = (f64::INFINITY, Vec::new());
    go(
        0,
        &mut vec![false; fitted.len()],
        &mut Vec::new(),
        0.0,
        &mut best,
        fitted,
        truth,
    );
    best.1
}

/// The adjusted Rand index of two labelings (Hubert & Arabie 1985), as
/// scikit-learn's `adjusted_rand_score`.
#[must_use]
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    assert_eq!(a.len(), b.len());
    let ka = a.iter().max().map_or(0, |m| m + 1);
    let kb = b.iter().max().map_or(0, |m| m + 1);
    let mut table = vec![vec![0u64; kb]; ka];
    for (&i, &j) in a.iter().zip(b) {
        table[i][j] += 1;
    }
    let c2 = |n: u64| (n * n.saturating_sub(1) / 2) as f64;
    let sum_ij: f64 = table.iter().flatten().map(|&n| c2(n)).sum();
    let sum_a: f64 = table.iter().map(|r| c2(r.iter().sum())).sum();
    let sum_b: f64 = (0..kb).map(|j| c2(table.iter().map(|r| r[j]).sum())).sum();
    let total = c2(a.len() as u64);
    let expected = sum_a * sum_b / total;
    let max = 0.5 * (sum_a + sum_b);
    if max == expected {
        return 1.0;
    }
    (sum_ij - expected) / (max - expected)
}

/// Whether `s` is a symmetric positive definite covariance up to the
/// rounding of its f32 entries: positive variances, and a determinant,
/// computed exactly in f64 (products of f32 are exact there), above
/// `-4 u xx yy` with `u = 2^-24` the unit rounding. Rounding each entry of
/// a positive definite matrix with a relative determinant below `4 u`
/// can make the stored matrix indefinite by up to that much, so this is
/// the strictest test an f32 covariance can be held to without the core
/// keeping a margin from singularity. Also the core's own Cholesky factor
/// must exist (sampling and log-densities use it).
#[must_use]
pub fn is_spd_within_f32_rounding(s: SymMat2) -> bool {
    let (xx, xy, yy) = (f64::from(s.xx), f64::from(s.xy), f64::from(s.yy));
    let u = f64::from(f32::EPSILON) / 2.0;
    s.is_finite()
        && xx > 0.0
        && yy > 0.0
        && xx * yy - xy * xy > -4.0 * u * xx * yy
        && s.cholesky().is_some()
}

/// f64 points rounded to the core's f32.
#[must_use]
pub fn to_f32(points: &[[f64; 2]]) -> Vec<Point> {
    points.iter().map(|p| [p[0] as f32, p[1] as f32]).collect()
}

/// A `SymMat2` from a full f64 matrix (rounded to f32).
#[must_use]
pub fn sym(c: [[f64; 2]; 2]) -> SymMat2 {
    SymMat2::new(c[0][0] as f32, c[0][1] as f32, c[1][1] as f32)
}

/// f64 points as the core's f32 points (fixtures write f32 values exactly
/// in f64).
pub fn points32(points: &[[f64; 2]]) -> Vec<Point> {
    points.iter().map(|p| [p[0] as f32, p[1] as f32]).collect()
}

/// A core model from f64 parameters rounded to f32: the common start of a
/// fixture or a reference case.
///
/// # Errors
/// As [`Gmm::new`].
pub fn gmm32<const K: usize>(
    weights: &[f64],
    means: &[[f64; 2]],
    covariances: &[[[f64; 2]; 2]],
) -> Result<Gmm<K>, gmm_core::GmmError> {
    let w: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
    let m = points32(means);
    let s: Vec<SymMat2> = covariances.iter().map(|&c| sym(c)).collect();
    Gmm::new(&w, &m, &s)
}

/// Generates the data and truth of scikit-learn's `RandomData` (2-D,
/// full covariances) from test_gaussian_mixture.py: weights `rand`
/// normalised, means `rand * scale`, covariances `0.5 * U diag(1 + rand) V^T`
/// from the SVD of a random `A^T A`, and `round(w * n)` points per
/// component, in component order.
#[derive(Clone, Debug)]
pub struct RandomData {
    /// True weights.
    pub weights: Vec<f64>,
    /// True means.
    pub means: Vec<[f64; 2]>,
    /// True covariances.
    pub covariances: Vec<[[f64; 2]; 2]>,
    /// The points.
    pub points: Vec<[f64; 2]>,
    /// The component each point came from.
    pub labels: Vec<usize>,
}

impl RandomData {
    /// `n` points from `k` components with means spread over `scale`.
    pub fn new(rand: &mut Rand, k: usize, n: usize, scale: f64) -> Self {
        let raw: Vec<f64> = (0..k).map(|_| rand.uniform()).collect();
        let total: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
        let means: Vec<[f64; 2]> = (0..k)
            .map(|_| [rand.uniform() * scale, rand.uniform() * scale])
            .collect();
        let covariances: Vec<[[f64; 2]; 2]> = (0..k).map(|_| random_spd(rand)).collect();
        let mut points = Vec::new();
        let mut labels = Vec::new();
        for (j, ((&w, &m), &c)) in weights.iter().zip(&means).zip(&covariances).enumerate() {
            for _ in 0..(w * n as f64).round() as usize {
                points.push(rand.gaussian(m, c));
                labels.push(j);
            }
        }
        Self {
            weights,
            means,
            covariances,
            points,
            labels,
        }
    }
}

/// scikit-learn's `make_spd_matrix(2) * 0.5`: `U (1 + diag(r)) V^T` from
/// the SVD `U S V^T` of `A^T A`, `A` and `r` uniform, where `1 + diag(r)`
/// adds 1 to every entry (`[[1 + r1, 1], [1, 1 + r2]]`, positive
/// definite). `A^T A` is symmetric positive semi-definite, so `V = U`
/// and the result is `U M U^T`, `U` the eigenvectors of `A^T A` (by
/// decreasing eigenvalue), then halved.
#[must_use]
pub fn random_spd(rand: &mut Rand) -> [[f64; 2]; 2] {
    let a = [
        [rand.uniform(), rand.uniform()],
        [rand.uniform(), rand.uniform()],
    ];
    let s00 = a[0][0] * a[0][0] + a[1][0] * a[1][0];
    let s01 = a[0][0] * a[0][1] + a[1][0] * a[1][1];
    let s11 = a[0][1] * a[0][1] + a[1][1] * a[1][1];
    // Angle of the eigenvector of the largest eigenvalue.
    let theta = 0.5 * (2.0 * s01).atan2(s00 - s11);
    let (c, s) = (theta.cos(), theta.sin());
    let u = [[c, -s], [s, c]];
    let m = [[1.0 + rand.uniform(), 1.0], [1.0, 1.0 + rand.uniform()]];
    let mut out = [[0.0; 2]; 2];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            let mut acc = 0.0;
            for p in 0..2 {
                for q in 0..2 {
                    acc += u[i][p] * m[p][q] * u[j][q];
                }
            }
            *v = 0.5 * acc;
        }
    }
    // Exactly symmetric.
    out[1][0] = out[0][1];
    out
}

pub mod fuzz;

/// The workspace README, so that its firmware example is a doctest.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
