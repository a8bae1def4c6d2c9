//! f32 accumulation stays accurate at large N: one E-step + M-step over
//! 1e7 points (1e6 in debug builds) agrees with the same step in f64.
//!
//! The points are generated on the fly (a `Points` source that replays a
//! seeded stream), so memory stays O(K) for the fit and the f64 check.

#![allow(clippy::needless_range_loop)] // index loops mirror the formulas

mod common;

use gmm_core::{ExpMode, FitConfig, Gmm, Point, Points};
use rand_xoshiro::Xoshiro128PlusPlus;
use rand_xoshiro::rand_core::SeedableRng;

/// The seed mixture shifted far from the origin (x + 1000): uncentred
/// f32 accumulation of x^2 would lose the variance entirely here.
struct Stream {
    n: usize,
    seed: u64,
}

impl Points for Stream {
    fn visit<F: FnMut(Point, f32)>(&self, mut f: F) {
        let g = common::seed_mixture();
        let mut rng = Xoshiro128PlusPlus::seed_from_u64(self.seed);
        for _ in 0..self.n {
            let (p, _) = g.sample(&mut rng);
            f([p[0] + 1000.0, p[1] - 500.0], 1.0);
        }
    }
}

/// Responsibilities of `p` under `model`, in f64 (f64 exp and log-sum-exp).
fn responsibilities(model: &Gmm<3>, p: [f32; 2]) -> [f64; 3] {
    let (x, y) = (f64::from(p[0]), f64::from(p[1]));
    let mut q = [0f64; 3];
    for (j, (c, &w)) in model.components().iter().zip(model.weights()).enumerate() {
        let (m, pr) = (c.mean(), c.precision());
        let (dx, dy) = (x - f64::from(m[0]), y - f64::from(m[1]));
        let maha = f64::from(pr.xx) * dx * dx
            + 2.0 * f64::from(pr.xy) * dx * dy
            + f64::from(pr.yy) * dy * dy;
        q[j] = f64::from(w).ln() + f64::from(c.log_normaliser()) - 0.5 * maha;
    }
    let mx = q.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = q.iter().map(|v| (v - mx).exp()).sum();
    q.map(|v| (v - mx).exp() / s)
}

/// The M-step in f64 with the same responsibilities formula, two passes
/// (means, then covariances about them: exact in f64).
fn m_step_f64(model: &Gmm<3>, data: &Stream) -> (Vec<f64>, Vec<[f64; 2]>, Vec<[f64; 3]>) {
    let mut s0 = [0f64; 3];
    let mut s1 = [[0f64; 2]; 3];
    let mut s2 = [[0f64; 3]; 3];
    data.visit(|p, _| {
        let r = responsibilities(model, p);
        for j in 0..3 {
            s0[j] += r[j];
            s1[j][0] += r[j] * f64::from(p[0]);
            s1[j][1] += r[j] * f64::from(p[1]);
        }
    });
    let means: Vec<[f64; 2]> = (0..3)
        .map(|j| [s1[j][0] / s0[j], s1[j][1] / s0[j]])
        .collect();
    data.visit(|p, _| {
        let r = responsibilities(model, p);
        for j in 0..3 {
            let (dx, dy) = (f64::from(p[0]) - means[j][0], f64::from(p[1]) - means[j][1]);
            s2[j][0] += r[j] * dx * dx;
            s2[j][1] += r[j] * dx * dy;
            s2[j][2] += r[j] * dy * dy;
        }
    });
    let total: f64 = s0.iter().sum();
    (
        s0.iter().map(|v| v / total).collect(),
        means,
        (0..3)
            .map(|j| {
                [
                    s2[j][0] / s0[j] + 1e-6,
                    s2[j][1] / s0[j],
                    s2[j][2] / s0[j] + 1e-6,
                ]
            })
            .collect(),
    )
}

/// Tolerances: weights 1e-5 relative, means 1e-6 relative to their
/// magnitude (~1000, so ~1e-3 absolute: a few f32 ulp of 1000 is 6e-5 per
/// ulp), covariance entries 1e-4 relative to the variance (~1).
/// Without centring and compensation the covariance error at this offset
/// would be of order 1 (the variance drowns in x^2 ~ 1e6).
#[test]
fn one_step_at_large_n_matches_f64() {
    let n = if cfg!(debug_assertions) {
        1_000_000
    } else {
        10_000_000
    };
    eprintln!("N = {n}");
    let data = Stream {
        n,
        seed: common::test_seed(17),
    };
    let start = Gmm::<3>::new(
        &[0.3, 0.4, 0.3],
        &[[996.5, -500.0], [1000.5, -496.5], [1003.5, -500.5]],
        &[gmm_core::SymMat2::new(1.5, 0.0, 1.5); 3],
    )
    .unwrap();
    let stats = start.e_step(&data, ExpMode::Libm);
    assert_eq!(stats.count(), n);
    let (next, guards) = stats.m_step(1e-6).unwrap();
    assert_eq!(guards.reseeded + guards.floored, 0);
    let (w, m, c) = m_step_f64(&start, &data);
    for j in 0..3 {
        let g = &next.components()[j];
        let dw = (f64::from(next.weights()[j]) - w[j]).abs() / w[j];
        assert!(
            dw <= 1e-5,
            "weight {j}: {} vs {} ({dw:e})",
            next.weights()[j],
            w[j]
        );
        for d in 0..2 {
            let dm = (f64::from(g.mean()[d]) - m[j][d]).abs() / m[j][d].abs();
            assert!(
                dm <= 1e-6,
                "mean {j}[{d}]: {} vs {} ({dm:e})",
                g.mean()[d],
                m[j][d]
            );
        }
        let cov = g.covariance();
        for (got, want) in [cov.xx, cov.xy, cov.yy].into_iter().zip(c[j]) {
            let scale = c[j][0].max(c[j][2]);
            let dc = (f64::from(got) - want).abs() / scale;
            assert!(dc <= 1e-4, "covariance {j}: {got} vs {want} ({dc:e})");
        }
    }
    // And the fit as a whole runs over the stream without storing it.
    let fit = Gmm::<3>::fit(&data, &FitConfig::new(3).with_max_iter(2).with_tol(0.0)).unwrap();
    assert_eq!(fit.report.n_points, n);
}
