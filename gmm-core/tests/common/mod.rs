//! The seed notebook's mixture and helpers shared by the integration tests.
#![allow(dead_code)]
#![allow(clippy::needless_range_loop)] // index loops mirror the formulas

use gmm_core::{Gmm, Point, SymMat2};
use rand_xoshiro::Xoshiro128PlusPlus;
use rand_xoshiro::rand_core::SeedableRng;

pub const TRUE_WEIGHTS: [f32; 3] = [0.3, 0.5, 0.2];
pub const TRUE_MEANS: [Point; 3] = [[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0]];
pub const TRUE_COVS: [SymMat2; 3] = [
    SymMat2::new(1.0, 0.5, 1.0),
    SymMat2::new(1.0, 0.0, 1.0),
    SymMat2::new(1.0, -0.5, 1.0),
];

pub fn seed_mixture() -> Gmm<3> {
    Gmm::new(&TRUE_WEIGHTS, &TRUE_MEANS, &TRUE_COVS).expect("valid seed mixture")
}

/// The seed to use: `GMM_TEST_SEED` overrides `default`; printed either way.
pub fn test_seed(default: u64) -> u64 {
    let seed = std::env::var("GMM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    eprintln!("seed = {seed} (override with GMM_TEST_SEED)");
    seed
}

/// `n` points and their true labels from the seed mixture.
pub fn seed_data(n: usize, seed: u64) -> (Vec<Point>, Vec<usize>) {
    let g = seed_mixture();
    let mut rng = Xoshiro128PlusPlus::seed_from_u64(seed);
    (0..n).map(|_| g.sample(&mut rng)).unzip()
}

/// The permutation `perm` (fitted j -> true perm[j]) that best matches
/// fitted means to `truth` (brute force over all permutations).
pub fn match_components(fitted: &[Point], truth: &[Point]) -> Vec<usize> {
    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for pos in 0..=p.len() {
                let mut q = p.clone();
                q.insert(pos, n - 1);
                out.push(q);
            }
        }
        out
    }
    let cost = |perm: &Vec<usize>| -> f32 {
        perm.iter()
            .enumerate()
            .map(|(j, &t)| {
                let (dx, dy) = (fitted[j][0] - truth[t][0], fitted[j][1] - truth[t][1]);
                dx * dx + dy * dy
            })
            .sum()
    };
    permutations(fitted.len())
        .into_iter()
        .min_by(|a, b| cost(a).total_cmp(&cost(b)))
        .expect("at least one permutation")
}

/// numpy's `allclose` for one value: `|got - want| <= atol + rtol |want|`.
pub fn close(got: f32, want: f32, rtol: f32, atol: f32) -> bool {
    (got - want).abs() <= atol + rtol * want.abs()
}

/// Per-label weight, mean and covariance of a labelled sample (f64
/// accumulation): the parameters the sample itself carries.
pub fn empirical(
    points: &[Point],
    labels: &[usize],
    k: usize,
) -> (Vec<f32>, Vec<Point>, Vec<SymMat2>) {
    let mut w = vec![0f64; k];
    let mut m = vec![[0f64; 2]; k];
    for (p, &l) in points.iter().zip(labels) {
        w[l] += 1.0;
        m[l][0] += f64::from(p[0]);
        m[l][1] += f64::from(p[1]);
    }
    for j in 0..k {
        m[j][0] /= w[j];
        m[j][1] /= w[j];
    }
    let mut c = vec![[0f64; 3]; k];
    for (p, &l) in points.iter().zip(labels) {
        let (dx, dy) = (f64::from(p[0]) - m[l][0], f64::from(p[1]) - m[l][1]);
        c[l][0] += dx * dx;
        c[l][1] += dx * dy;
        c[l][2] += dy * dy;
    }
    let n = points.len() as f64;
    (
        w.iter().map(|&x| (x / n) as f32).collect(),
        m.iter().map(|v| [v[0] as f32, v[1] as f32]).collect(),
        c.iter()
            .zip(&w)
            .map(|(v, &nj)| {
                SymMat2::new((v[0] / nj) as f32, (v[1] / nj) as f32, (v[2] / nj) as f32)
            })
            .collect(),
    )
}
