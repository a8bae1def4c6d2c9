//! Properties of the fit over generated inputs (proptest).
//!
//! - Any finite input: `fit`, `select_k` and the queries never panic; an
//!   `Ok` fit has finite parameters, weights summing to 1 within 1e-6 and
//!   symmetric positive definite covariances; an error is one the input
//!   explains (the rules are in `error_is_explained`).
//! - Weighted == duplicated, permutation invariance and scale/translate
//!   equivariance, each within a tolerance stated at the property.
//!
//! Seeds: proptest's generator is seeded from `GMM_TEST_SEED` (default
//! below, printed); a failing case is shrunk and printed by proptest.

use gmm_core::{
    Criterion, FitConfig, Gmm, GmmError, InitMethod, MAX_ABS_COORDINATE, Point, Weighted, select_k,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use tests::{comps, param_errors};

const K: usize = 4;

fn config(cases: u32, test: &str) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(tests::seed(test, 0x5eed)),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Any finite f32, with the values that matter over-represented.
fn any_finite() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -10.0f32..10.0,
        1 => proptest::num::f32::NORMAL | proptest::num::f32::SUBNORMAL | proptest::num::f32::ZERO,
        1 => prop::sample::select(vec![0.0, -0.0, 1e-30, -1e-30, 1e12, -1e12, 1e30, f32::MAX, f32::MIN_POSITIVE]),
        1 => -1e6f32..1e6,
    ]
}

fn any_point() -> impl Strategy<Value = Point> {
    [any_finite(), any_finite()]
}

fn any_config() -> impl Strategy<Value = FitConfig> {
    (
        1usize..=K,
        prop_oneof![Just(0.0f32), 0.0f32..1.0, Just(1e-3)],
        0u32..30,
        prop_oneof![Just(0.0f32), Just(1e-6), 0.0f32..1.0, Just(1e-30)],
        1u32..=3,
        prop::sample::select(vec![
            InitMethod::KMeansPlusPlus,
            InitMethod::RandomFromData,
            InitMethod::StandardNormal,
        ]),
        any::<u64>(),
    )
        .prop_map(|(k, tol, max_iter, reg_covar, n_init, init, seed)| {
            FitConfig::new(k)
                .with_tol(tol)
                .with_max_iter(max_iter)
                .with_reg_covar(reg_covar)
                .with_n_init(n_init)
                .with_init(init)
                .with_seed(seed)
        })
}

/// An `Ok` model is a valid mixture.
fn check_model<const N: usize>(m: &Gmm<N>) -> Result<(), TestCaseError> {
    let total: f32 = m.weights().iter().sum();
    prop_assert!((total - 1.0).abs() <= 1e-6, "weights sum to {total}");
    for (w, g) in m.weights().iter().zip(m.components()) {
        prop_assert!(w.is_finite() && *w >= 0.0, "weight {w}");
        let mu = g.mean();
        prop_assert!(mu[0].is_finite() && mu[1].is_finite(), "mean {mu:?}");
        let s = g.covariance();
        prop_assert!(s.is_finite(), "covariance {s:?}");
        // Symmetric by construction (three numbers); positive definite
        // up to the rounding of its f32 entries (see the helper).
        prop_assert!(tests::is_spd_within_f32_rounding(s), "not SPD: {s:?}");
        prop_assert!(g.precision().is_finite());
    }
    Ok(())
}

/// An error must be explained by the input: the conditions under which
/// the core documents each variant.
fn error_is_explained(
    e: GmmError,
    points: &[Point],
    config: &FitConfig,
) -> Result<(), TestCaseError> {
    let n = points.len();
    let out_of_range = |i: usize| {
        points
            .get(i)
            .is_some_and(|p| p.iter().any(|c| c.abs() > MAX_ABS_COORDINATE))
    };
    match e {
        GmmError::PointOutOfRange { index } => {
            prop_assert!(out_of_range(index), "{e} for {:?}", points.get(index))
        }
        GmmError::ZeroTotalWeight => prop_assert_eq!(n, 0),
        GmmError::TooFewPoints {
            points: p,
            components,
        } => {
            prop_assert_eq!(p, n);
            prop_assert!(p < components);
        }
        // Degenerate spread that regularisation cannot fix: reg_covar 0
        // or below what f32 resolves at the data's scale.
        GmmError::SingularCovariance { .. } => prop_assert!(
            config.reg_covar < 1e-20,
            "{e} with reg_covar {}",
            config.reg_covar
        ),
        // Sums of squares beyond f32: only with coordinates near the limit.
        GmmError::Overflow => prop_assert!(points.iter().flatten().any(|c| c.abs() > 1e10), "{e}"),
        // Non-finite likelihood: only with extreme coordinates or no
        // regularisation.
        GmmError::Diverged => prop_assert!(
            config.reg_covar < 1e-20
                || points
                    .iter()
                    .flatten()
                    .any(|c| c.abs() > 1e10 || (*c != 0.0 && c.abs() < 1e-20)),
            "{e}"
        ),
        other => prop_assert!(false, "unexpected error {other} for a valid configuration"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512, "fit_on_any_finite_input"))]

    /// Any finite points and any valid configuration: a valid model or an
    /// explained error, and the queries of an `Ok` model return finite
    /// values (log-density may be -inf far out: it must not be NaN).
    #[test]
    fn fit_on_any_finite_input(points in prop::collection::vec(any_point(), 0..40), config in any_config()) {
        match Gmm::<K>::fit(points.as_slice(), &config) {
            Ok(fit) => {
                check_model(&fit.model)?;
                prop_assert!(fit.report.log_likelihood.is_finite());
                prop_assert!(fit.report.n_iter <= config.max_iter);
                for &p in points.iter().take(8) {
                    prop_assert!(fit.model.predict(p) < config.k);
                    let proba = fit.model.predict_proba(p);
                    prop_assert!(proba.iter().all(|v| v.is_finite() && *v >= 0.0));
                    prop_assert!(!fit.model.log_density(p).is_nan());
                }
            }
            Err(e) => error_is_explained(e, &points, &config)?,
        }
    }
}

proptest! {
    #![proptest_config(config(128, "select_k_on_any_finite_input"))]

    /// `select_k` on any finite input: a table of finite rows whose best
    /// row has the lowest BIC, or an explained error.
    #[test]
    fn select_k_on_any_finite_input(points in prop::collection::vec(any_point(), 0..30), config in any_config(), k_max in 1usize..=K) {
        match select_k::<K, _>(points.as_slice(), &config.with_max_iter(config.max_iter.min(10)), k_max, Criterion::Bic) {
            Ok(sel) => {
                check_model(&sel.best)?;
                prop_assert!(!sel.rows.is_empty());
                let best = sel.rows.iter().map(|r| r.bic).fold(f32::INFINITY, f32::min);
                prop_assert!(sel.rows.iter().all(|r| r.bic.is_finite() && r.aic.is_finite()));
                prop_assert!(sel.rows.iter().any(|r| r.k == sel.best_k && r.bic == best));
            }
            Err(e) => error_is_explained(e, &points, &config)?,
        }
    }
}

/// Points from one to three blobs and a start near them: data on which
/// EM is well conditioned, for the invariance properties. (From a start
/// with two components in one blob, which one takes the other blob is
/// decided by rounding: EM is chaotic there and no rounding-level
/// tolerance can hold, whatever the order of summation.)
#[derive(Clone, Debug)]
struct Blobs {
    points: Vec<Point>,
    start: Gmm<K>,
}

fn blobs() -> impl Strategy<Value = Blobs> {
    (1usize..=3, any::<u64>(), 20usize..80).prop_map(|(k, seed, n)| {
        let mut r = tests::Rand::new(seed);
        // Centres at least 10 apart.
        let mut centres: Vec<[f64; 2]> = Vec::new();
        while centres.len() < k {
            let c = [r.range(-20.0, 20.0), r.range(-20.0, 20.0)];
            if centres
                .iter()
                .all(|d| (c[0] - d[0]).hypot(c[1] - d[1]) > 10.0)
            {
                centres.push(c);
            }
        }
        let points = (0..n)
            .map(|i| {
                let c = centres[i % k];
                let s = 0.5 + (i % 3) as f64 * 0.3;
                [
                    (c[0] + s * r.normal()) as f32,
                    (c[1] + s * r.normal()) as f32,
                ]
            })
            .collect();
        let means: Vec<Point> = centres
            .iter()
            .map(|c| {
                [
                    (c[0] + r.range(-1.0, 1.0)) as f32,
                    (c[1] + r.range(-1.0, 1.0)) as f32,
                ]
            })
            .collect();
        let start = Gmm::new(
            &vec![1.0; k],
            &means,
            &vec![gmm_core::SymMat2::from_diagonal(4.0); k],
        )
        .expect("valid start");
        Blobs { points, start }
    })
}

/// Parameter agreement of two fits, in `tests::param_errors`' relative
/// measure.
fn close<const N: usize>(a: &Gmm<N>, b: &Gmm<N>, tol: f64) -> Result<(), TestCaseError> {
    let (ew, em, ec) = param_errors(&comps(a), &comps(b));
    prop_assert!(
        ew <= tol && em <= tol && ec <= tol,
        "errors {ew:e} {em:e} {ec:e} above {tol:e}\n{a:?}\n{b:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(128, "invariances"))]

    /// Weight w == the point repeated w times, from the same start, after
    /// 10 iterations. Weights are 1, 2 or 4 so `w * x` is exact; the
    /// sums are still formed in different orders, so the fits agree to
    /// f32 rounding grown over 10 iterations: 1e-4 relative.
    #[test]
    fn weighted_equals_duplicated(b in blobs(), ws in prop::collection::vec(prop::sample::select(vec![1.0f32, 2.0, 4.0]), 80)) {
        let (points, start, k) = (&b.points, b.start, b.start.k());
        let weights = &ws[..points.len()];
        let mut dup = Vec::new();
        for (p, &w) in points.iter().zip(weights) {
            for _ in 0..w as usize {
                dup.push(*p);
            }
        }
        let c = FitConfig::new(k).with_max_iter(10).with_tol(0.0);
        let weighted = start.refine(&Weighted::new(points, weights).unwrap(), &c, &mut ());
        let duplicated = start.refine(dup.as_slice(), &c, &mut ());
        match (weighted, duplicated) {
            (Ok(a), Ok(b)) => {
                close(&a.model, &b.model, 1e-4)?;
                let rel = ((a.report.log_likelihood - b.report.log_likelihood) / b.report.log_likelihood).abs();
                prop_assert!(rel < 1e-5, "log-likelihood {} vs {}", a.report.log_likelihood, b.report.log_likelihood);
                prop_assert_eq!(a.report.total_weight, b.report.total_weight);
            }
            (a, b) => prop_assert!(false, "weighted {a:?} but duplicated {b:?}"),
        }
    }

    /// Reversing and rotating the order of the points changes a
    /// warm-started fit only by rounding (10 iterations): 1e-4 relative.
    /// (Initialisation from data is order-dependent by design: it walks
    /// the points in order.)
    #[test]
    fn permutation_changes_nothing_beyond_rounding(b in blobs(), shift in 0usize..80) {
        let (points, start, k) = (&b.points, b.start, b.start.k());
        let c = FitConfig::new(k).with_max_iter(10).with_tol(0.0);
        let mut permuted = points.to_vec();
        permuted.reverse();
        let s = shift % permuted.len();
        permuted.rotate_left(s);
        let a = start.refine(points.as_slice(), &c, &mut ()).unwrap();
        let b = start.refine(permuted.as_slice(), &c, &mut ()).unwrap();
        close(&a.model, &b.model, 1e-4)?;
    }

    /// Fitting `a x + b` from the transformed start with `reg_covar * a^2`
    /// gives the transformed fit: means `a mu + b`, covariances `a^2 S`,
    /// the same weights, and a log-likelihood lower by `2 n ln a`.
    /// Tolerance 1e-3 relative: the transformed data carry their own f32
    /// rounding (a translation of up to 100 units on a spread of ~1 moves
    /// each point by up to 4e-6), grown over 10 iterations.
    #[test]
    fn scale_and_translation_are_equivariant(blobs in blobs(), log_a in -6.0f64..6.0, b in [-100.0f64..100.0, -100.0f64..100.0]) {
        let (points, start, k) = (&blobs.points, blobs.start, blobs.start.k());
        let a = 10f64.powf(log_a);
        let tf = |p: Point| [(a * f64::from(p[0]) + b[0] * a) as f32, (a * f64::from(p[1]) + b[1] * a) as f32];
        let moved: Vec<Point> = points.iter().map(|&p| tf(p)).collect();
        let w: Vec<f32> = start.weights().to_vec();
        let mu: Vec<Point> = start.components().iter().map(|g| tf(g.mean())).collect();
        let s: Vec<gmm_core::SymMat2> = start.components().iter().map(|g| g.covariance().scale((a * a) as f32)).collect();
        let moved_start = Gmm::<K>::new(&w, &mu, &s).unwrap();
        let reg = 1e-6f64;
        let c = FitConfig::new(k).with_max_iter(10).with_tol(0.0);
        let x = start.refine(points.as_slice(), &c.with_reg_covar(reg as f32), &mut ()).unwrap();
        let y = moved_start.refine(moved.as_slice(), &c.with_reg_covar((reg * a * a) as f32), &mut ()).unwrap();
        let mut want = comps(&x.model);
        for w in &mut want {
            w.mean = [a * w.mean[0] + a * b[0], a * w.mean[1] + a * b[1]];
            for row in &mut w.cov {
                for v in row.iter_mut() {
                    *v *= a * a;
                }
            }
        }
        let (ew, em, ec) = param_errors(&comps(&y.model), &want);
        prop_assert!(ew <= 1e-3 && em <= 1e-3 && ec <= 1e-3, "a {a} b {b:?}: errors {ew:e} {em:e} {ec:e}");
        let n = points.len() as f64;
        let want_ll = f64::from(x.report.log_likelihood) - 2.0 * n * a.ln();
        let got_ll = f64::from(y.report.log_likelihood);
        prop_assert!((got_ll - want_ll).abs() <= 1e-3 * want_ll.abs().max(n), "log-likelihood {got_ll} vs {want_ll}");
    }
}
