//! Per-point weights mean multiplicities; every bad input is an error
//! value, never a panic.

#![allow(clippy::needless_range_loop)] // index loops mirror the formulas

mod common;

use common::*;
use gmm_core::{ExpMode, FitConfig, Gmm, GmmError, Point, SymMat2, Weighted, select_k};

fn start() -> Gmm<3> {
    Gmm::new(
        &[0.3, 0.3, 0.4],
        &[[-3.0, 1.0], [1.0, 3.0], [3.0, -1.0]],
        &[SymMat2::IDENTITY; 3],
    )
    .unwrap()
}

/// Largest relative difference of weights, means and covariances, with
/// means and covariances taken relative to the data's scale (about 4) so
/// that entries near 0 are not divided by ~0.
fn max_rel_diff(a: &Gmm<3>, b: &Gmm<3>) -> f32 {
    let mut worst = 0.0f32;
    for j in 0..3 {
        let (ca, cb) = (&a.components()[j], &b.components()[j]);
        worst = worst.max((a.weights()[j] - b.weights()[j]).abs() / b.weights()[j]);
        for d in 0..2 {
            worst = worst.max((ca.mean()[d] - cb.mean()[d]).abs() / 4.0);
        }
        worst = worst.max(
            (ca.covariance() - cb.covariance()).frobenius_norm() / cb.covariance().frobenius_norm(),
        );
    }
    worst
}

/// Weight 2 equals the point twice, weight 0 equals no point: the same 30
/// warm-started iterations agree to f32 summation rounding (1e-5 relative:
/// the two runs add the same numbers in another order and grouping).
#[test]
fn weight_two_is_duplicate_and_zero_is_absent() {
    let seed = test_seed(3);
    let (points, _) = seed_data(600, seed);
    let cfg = FitConfig::new(3).with_max_iter(0);

    let weights: Vec<f32> = (0..points.len()).map(|i| [1.0, 2.0, 0.0][i % 3]).collect();
    let weighted = Weighted::new(&points, &weights).unwrap();
    let mut expanded: Vec<Point> = Vec::new();
    for (p, &w) in points.iter().zip(&weights) {
        for _ in 0..w as usize {
            expanded.push(*p);
        }
    }
    // Exactly 30 EM steps each, through the E/M seam: with `tol = 0` a
    // fit stops once the f32 log-likelihood stops changing, which two
    // differently rounded runs may reach an iteration apart.
    let (mut ma, mut mb) = (start(), start());
    for _ in 0..30 {
        ma = ma
            .e_step(&weighted, ExpMode::Libm)
            .m_step(cfg.reg_covar)
            .unwrap()
            .0;
        mb = mb
            .e_step(expanded.as_slice(), ExpMode::Libm)
            .m_step(cfg.reg_covar)
            .unwrap()
            .0;
    }
    let a = ma.refine(&weighted, &cfg, &mut ()).unwrap();
    let b = mb.refine(expanded.as_slice(), &cfg, &mut ()).unwrap();
    let diff = max_rel_diff(&a.model, &b.model);
    assert!(diff <= 1e-5, "weighted vs expanded differ by {diff}");
    assert_eq!(a.report.n_points, points.len() - points.len() / 3);
    assert_eq!(a.report.total_weight, b.report.total_weight);
    let rel_ll =
        (a.report.log_likelihood - b.report.log_likelihood).abs() / b.report.log_likelihood.abs();
    assert!(rel_ll <= 1e-5, "log-likelihood differs by {rel_ll}");
}

#[test]
fn bad_inputs_are_errors() {
    let (good, _) = seed_data(50, 1);
    let cfg = FitConfig::new(3);
    let fit = |data: &[Point], cfg: &FitConfig| Gmm::<3>::fit(data, cfg).map(|_| ());

    let with = |i: usize, p: Point| {
        let mut v = good.clone();
        v[i] = p;
        v
    };
    assert_eq!(
        fit(&with(7, [f32::NAN, 0.0]), &cfg),
        Err(GmmError::NonFinitePoint { index: 7 })
    );
    assert_eq!(
        fit(&with(0, [0.0, f32::INFINITY]), &cfg),
        Err(GmmError::NonFinitePoint { index: 0 })
    );
    assert_eq!(
        fit(&with(49, [f32::NEG_INFINITY, 1.0]), &cfg),
        Err(GmmError::NonFinitePoint { index: 49 })
    );
    assert_eq!(
        fit(&with(3, [1e30, 1.0]), &cfg),
        Err(GmmError::PointOutOfRange { index: 3 })
    );
    assert_eq!(fit(&[], &cfg), Err(GmmError::ZeroTotalWeight));
    assert_eq!(
        fit(&good[..2], &cfg),
        Err(GmmError::TooFewPoints {
            points: 2,
            components: 3
        })
    );
    assert_eq!(
        fit(&good, &cfg.with_k(0)),
        Err(GmmError::InvalidK { k: 0, capacity: 3 })
    );
    assert_eq!(
        fit(&good, &cfg.with_k(4)),
        Err(GmmError::InvalidK { k: 4, capacity: 3 })
    );
    for bad in [
        cfg.with_tol(-1.0),
        cfg.with_tol(f32::NAN),
        cfg.with_reg_covar(-1e-6),
        cfg.with_reg_covar(f32::INFINITY),
        cfg.with_n_init(0),
    ] {
        assert!(
            matches!(fit(&good, &bad), Err(GmmError::InvalidConfig { .. })),
            "{bad:?}"
        );
    }

    let zeros = vec![0.0f32; good.len()];
    let w = Weighted::new(&good, &zeros).unwrap();
    assert_eq!(
        Gmm::<3>::fit(&w, &cfg).map(|_| ()),
        Err(GmmError::ZeroTotalWeight)
    );
    let mut neg = vec![1.0f32; good.len()];
    neg[5] = -1.0;
    let w = Weighted::new(&good, &neg).unwrap();
    assert_eq!(
        Gmm::<3>::fit(&w, &cfg).map(|_| ()),
        Err(GmmError::InvalidWeight { index: 5 })
    );
    neg[5] = 1e-20;
    let w = Weighted::new(&good, &neg).unwrap();
    assert_eq!(
        Gmm::<3>::fit(&w, &cfg).map(|_| ()),
        Err(GmmError::InvalidWeight { index: 5 })
    );
    neg[5] = 2e12;
    let w = Weighted::new(&good, &neg).unwrap();
    assert_eq!(
        Gmm::<3>::fit(&w, &cfg).map(|_| ()),
        Err(GmmError::InvalidWeight { index: 5 })
    );
    neg[5] = f32::NAN;
    let w = Weighted::new(&good, &neg).unwrap();
    assert_eq!(
        Gmm::<3>::fit(&w, &cfg).map(|_| ()),
        Err(GmmError::InvalidWeight { index: 5 })
    );
    assert_eq!(
        Weighted::new(&good, &neg[..3]).map(|_| ()),
        Err(GmmError::WeightCountMismatch {
            points: 50,
            weights: 3
        })
    );
    assert!(matches!(
        select_k::<3, _>(good.as_slice(), &cfg, 0, gmm_core::Criterion::Bic),
        Err(GmmError::InvalidK { .. })
    ));
    assert!(matches!(
        select_k::<3, _>(good.as_slice(), &cfg, 4, gmm_core::Criterion::Bic),
        Err(GmmError::InvalidK { .. })
    ));
}

/// Degenerate data: identical points, points on a line, two exact
/// clusters. With reg_covar the fit is finite (components collapse onto
/// reg_covar); with reg_covar = 0 it is finite or SingularCovariance.
#[test]
fn degenerate_data_gives_finite_fits_or_singular_error() {
    let same = vec![[2.5f32, -1.0]; 40];
    let line: Vec<Point> = (0..40).map(|i| [i as f32, 2.0 * i as f32 + 1.0]).collect();
    let two: Vec<Point> = (0..40)
        .map(|i| if i % 2 == 0 { [0.0, 0.0] } else { [5.0, 5.0] })
        .collect();
    for (name, data) in [("same", &same), ("line", &line), ("two", &two)] {
        for reg in [1e-6f32, 0.0] {
            let cfg = FitConfig::new(2).with_reg_covar(reg).with_n_init(2);
            match Gmm::<3>::fit(data.as_slice(), &cfg) {
                Ok(fit) => {
                    let m = fit.model;
                    let s: f32 = m.weights().iter().sum();
                    assert!((s - 1.0).abs() <= 1e-6, "{name} reg {reg}: weights sum {s}");
                    for c in m.components() {
                        assert!(
                            c.covariance().is_positive_definite(),
                            "{name} reg {reg}: {c:?}"
                        );
                        assert!(c.mean()[0].is_finite() && c.mean()[1].is_finite());
                    }
                    assert!(fit.report.log_likelihood.is_finite());
                }
                Err(e) => {
                    assert_eq!(
                        reg, 0.0,
                        "{name}: with reg_covar a fit is expected, got {e}"
                    );
                    assert!(
                        matches!(e, GmmError::SingularCovariance { .. }),
                        "{name}: {e}"
                    );
                }
            }
        }
    }
}

/// max_iter = 0 returns the start exactly, with its likelihood.
#[test]
fn zero_iterations_return_the_start() {
    let (points, _) = seed_data(100, 4);
    let fit = start()
        .refine(
            points.as_slice(),
            &FitConfig::new(3).with_max_iter(0),
            &mut (),
        )
        .unwrap();
    assert_eq!(fit.model, start());
    assert_eq!(fit.report.n_iter, 0);
    assert!(!fit.report.converged);
    let ll = start().score(points.as_slice()).unwrap();
    assert!((fit.report.mean_log_likelihood - ll).abs() <= 1e-5 * ll.abs());
}

/// A point far from every component (where the notebook's linear-domain
/// densities underflow to 0/0) gives finite responsibilities.
#[test]
fn far_points_do_not_make_nan() {
    let g = seed_mixture();
    for p in [[1e6, -1e6], [1e12, 1e12], [-1e12, 3.0]] {
        let pr = g.predict_proba(p);
        assert!(pr.iter().all(|v| v.is_finite()), "{p:?}: {pr:?}");
        assert!((pr.iter().sum::<f32>() - 1.0).abs() <= 1e-6);
        assert!(!g.log_density(p).is_nan());
    }
    let (mut points, _) = seed_data(300, 8);
    points.push([1e9, -1e9]);
    let fit = Gmm::<3>::fit(points.as_slice(), &FitConfig::new(3)).unwrap();
    assert!(fit.report.log_likelihood.is_finite());
}

/// Points in a slice take the E-step's block path (`Points::as_point_slice`);
/// the same points through `visit` alone, or as weight-1 [`Weighted`]
/// points, take the point-by-point path. The two must give the same bits:
/// full blocks only (N = 48) and a padded last block (N = 37, 601), both
/// exp modes.
#[test]
fn slice_blocks_match_point_by_point_visits() {
    struct VisitOnly<'a>(&'a [Point]);
    impl gmm_core::Points for VisitOnly<'_> {
        fn visit<F: FnMut(Point, f32)>(&self, mut f: F) {
            for &p in self.0 {
                f(p, 1.0);
            }
        }
    }
    let bits = |g: &Gmm<3>| {
        let mut v: Vec<u32> = g.weights().iter().map(|w| w.to_bits()).collect();
        for c in g.components() {
            let s = c.covariance();
            v.extend([c.mean()[0], c.mean()[1], s.xx, s.xy, s.yy].map(f32::to_bits));
        }
        v
    };
    let (points, _) = seed_data(601, test_seed(11));
    let ones = vec![1.0f32; points.len()];
    for n in [37, 48, 601] {
        let pts = &points[..n];
        let weighted = Weighted::new(pts, &ones[..n]).unwrap();
        for exp in [ExpMode::Libm, ExpMode::Fast] {
            let cfg = FitConfig::new(3)
                .with_max_iter(20)
                .with_tol(0.0)
                .with_exp(exp);
            let a = start().refine(pts, &cfg, &mut ()).unwrap();
            let b = start().refine(&VisitOnly(pts), &cfg, &mut ()).unwrap();
            let c = start().refine(&weighted, &cfg, &mut ()).unwrap();
            assert_eq!(bits(&a.model), bits(&b.model), "N {n} {exp:?}");
            assert_eq!(bits(&a.model), bits(&c.model), "N {n} {exp:?}");
            assert_eq!(a.report, b.report, "N {n} {exp:?}");
            assert_eq!(a.report, c.report, "N {n} {exp:?}");
        }
    }
}

/// `ln p(x)` of the model in f64, by log-sum-exp over the components.
fn log_density_f64(g: &Gmm<3>, p: Point) -> f64 {
    let terms: Vec<f64> = g
        .components()
        .iter()
        .zip(g.weights())
        .map(|(c, &w)| {
            let s = c.covariance();
            let (xx, xy, yy) = (f64::from(s.xx), f64::from(s.xy), f64::from(s.yy));
            let det = xx * yy - xy * xy;
            let dx = f64::from(p[0]) - f64::from(c.mean()[0]);
            let dy = f64::from(p[1]) - f64::from(c.mean()[1]);
            let maha = (yy * dx * dx - 2.0 * xy * dx * dy + xx * dy * dy) / det;
            f64::from(w).ln() - (2.0 * std::f64::consts::PI).ln() - 0.5 * det.ln() - 0.5 * maha
        })
        .collect();
    let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln()
}

/// The E-step's log-likelihood against f64. Whole blocks of weight-1
/// points take two logarithms of products of sums per block; weighted
/// blocks (and a padded last block) one logarithm per point. Both must
/// agree with f64 to about f32 rounding of the total, with points near
/// the components and with points so far that every term underflows
/// (the careful path), in both exp modes.
#[test]
fn block_log_likelihood_matches_f64() {
    let g = start();
    let (near, _) = seed_data(600, test_seed(12));
    for exp in [ExpMode::Libm, ExpMode::Fast] {
        for far in [false, true] {
            let mut points = near.clone();
            if far {
                points[17] = [1e4, -1e4];
                points[300] = [-3e3, 2.5];
            }
            let lps: Vec<f64> = points.iter().map(|&p| log_density_f64(&g, p)).collect();
            let want: f64 = lps.iter().sum();
            let scale: f64 = lps.iter().map(|l| l.abs()).sum();
            // Weight 1: whole blocks take the product path, except the
            // last 8 points (600 = 37 x 16 + 8) in a padded block.
            let unit = f64::from(g.e_step(points.as_slice(), exp).log_likelihood());
            // Weight 2 everywhere: one logarithm per point.
            let twos = vec![2.0f32; points.len()];
            let weighted = Weighted::new(&points, &twos).unwrap();
            let doubled = f64::from(g.e_step(&weighted, exp).log_likelihood()) / 2.0;
            for (what, got) in [("unit weights", unit), ("weight 2", doubled)] {
                let err = (got - want).abs() / scale;
                assert!(
                    err <= 2e-7,
                    "{exp:?} far {far} {what}: {got} against {want} (relative {err:e})"
                );
            }
        }
    }
}
