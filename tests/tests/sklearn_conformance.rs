//! The core against scikit-learn's `GaussianMixture(covariance_type="full")`
//! on the committed fixtures of `tests/sklearn/gen_fixtures.py` (no Python
//! needed here; see that script for how to regenerate them).
//!
//! Each fixture is a data set, warm-start parameters and scikit-learn's
//! parameters after each of 1..=30 EM iterations with `tol = 0`, plus the
//! log-likelihood, BIC and AIC of each of those models on the data. The
//! core runs `refine` from the same parameters with the same `max_iter`
//! and `tol = 0`, and is compared with scikit-learn after the same number
//! of iterations (M-steps) as it ran: with `tol = 0` the core stops before
//! `max_iter` when its f32 mean log-likelihood does not change at all
//! (`|change| <= tol`), where scikit-learn's `abs(change) < 0` never stops.
//!
//! Tolerance 1e-4 relative (the figure): the core is f32 (unit
//! rounding 6e-8) and scikit-learn f64, so 1e-4 leaves room for the
//! rounding of N-point sums and its growth over 30 iterations, while a
//! wrong formula (a missing `reg_covar`, a biased covariance, one
//! iteration more or less) is off by far more. "Relative" is defined in
//! `tests::param_errors` (floors for means and covariances near 0) and,
//! for log-likelihood/BIC/AIC, as `|a - b| / max(|b|, n)`: relative, or
//! 1e-4 nat per point when the value is smaller in magnitude than n.
//!
//! Also: the queries (`log_density`, `predict_proba`, `predict`) on
//! scikit-learn's f32-rounded final models, and the stopping rule and the
//! per-iteration log-likelihood with scikit-learn's default tol. Known
//! misses are listed in `KNOWN_FAILURES` with their cause.

use gmm_core::{FitConfig, Gmm, SymMat2, Trace};
use serde::Deserialize;
use tests::{Comp, comps, param_errors, rel_err};

const TOL: f64 = 1e-4;

/// (fixture, iterations) pairs where the core is known to miss `TOL`,
/// reported rather than hidden by a looser tolerance. Empty since
/// `Gaussian::new` forms `1 - r^2` from error-free f32 products
/// (`random_data` after 2 iterations, correlation 0.995, was 1.3e-4 off
/// with the naive f32 `1 - r^2`).
const KNOWN_FAILURES: &[(&str, u32)] = &[];

#[derive(Deserialize)]
struct Params {
    weights: Vec<f64>,
    means: Vec<[f64; 2]>,
    covariances: Vec<[[f64; 2]; 2]>,
}

#[derive(Deserialize)]
struct Result_ {
    max_iter: u32,
    n_iter: u32,
    weights: Vec<f64>,
    means: Vec<[f64; 2]>,
    covariances: Vec<[[f64; 2]; 2]>,
    log_likelihood: f64,
    bic: f64,
    aic: f64,
}

#[derive(Deserialize)]
struct Queries {
    weights: Vec<f64>,
    means: Vec<[f64; 2]>,
    covariances: Vec<[[f64; 2]; 2]>,
    score_samples: Vec<f64>,
    predict_proba: Vec<Vec<f64>>,
    predict: Vec<usize>,
}

#[derive(Deserialize)]
struct Stopping {
    tol: f64,
    max_iter: u32,
    n_iter: u32,
    converged: bool,
    lower_bounds: Vec<f64>,
}

#[derive(Deserialize)]
struct Fixture {
    name: String,
    reg_covar: f64,
    points: Vec<[f64; 2]>,
    init: Params,
    results: Vec<Result_>,
    queries: Queries,
    stopping: Stopping,
}

const FIXTURES: &[&str] = &[
    "blobs3",
    "overlap2",
    "far_offset",
    "small_scale",
    "large_scale",
    "single",
    "aniso4",
    "random_data",
    "big_reg",
    "overfit5",
];

fn load(name: &str) -> Fixture {
    let path = format!(
        "{}/fixtures/sklearn/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn want(r: &Result_) -> Vec<Comp> {
    r.weights
        .iter()
        .zip(&r.means)
        .zip(&r.covariances)
        .map(|((&weight, &mean), &cov)| Comp { weight, mean, cov })
        .collect()
}

fn check(f: &Fixture) -> Vec<String> {
    // Every number in the fixture is an f32 value written exactly in f64.
    let points = tests::points32(&f.points);
    let start = tests::gmm32::<8>(&f.init.weights, &f.init.means, &f.init.covariances)
        .expect("fixture init is valid");
    let n = points.len() as f64;
    let mut failures = Vec::new();
    for r in &f.results {
        assert_eq!(
            r.n_iter, r.max_iter,
            "{}: sklearn ran tol = 0 to the end",
            f.name
        );
        let config = FitConfig::new(start.k())
            .with_tol(0.0)
            .with_max_iter(r.max_iter)
            .with_reg_covar(f.reg_covar as f32);
        let fit = start
            .refine(points.as_slice(), &config, &mut ())
            .expect("fit");
        // tol = 0: the core stops early only at an exact f32 fixed point.
        assert!(
            fit.report.n_iter == r.max_iter || fit.report.converged,
            "{}: {} iterations of {}",
            f.name,
            fit.report.n_iter,
            r.max_iter
        );
        let asked = r.max_iter;
        let Some(r) = f.results.iter().find(|s| s.max_iter == fit.report.n_iter) else {
            panic!(
                "{}: no scikit-learn result after {} iterations",
                f.name, fit.report.n_iter
            );
        };
        let (ew, em, ec) = param_errors(&comps(&fit.model), &want(r));
        let ell = rel_err(f64::from(fit.report.log_likelihood), r.log_likelihood, n);
        let ebic = rel_err(f64::from(fit.report.bic()), r.bic, n);
        let eaic = rel_err(f64::from(fit.report.aic()), r.aic, n);
        let line = format!(
            "{:>12} max_iter {:>2} (ran {:>2}): weights {ew:.1e} means {em:.1e} covariances {ec:.1e} \
             log-likelihood {ell:.1e} bic {ebic:.1e} aic {eaic:.1e}",
            f.name, asked, r.max_iter
        );
        eprintln!("{line}");
        let bad = [ew, em, ec, ell, ebic, eaic]
            .iter()
            .any(|&e| e > TOL || e.is_nan());
        let known = KNOWN_FAILURES.contains(&(f.name.as_str(), r.max_iter));
        if bad && known {
            eprintln!("  ^ KNOWN FAILURE (reported, see KNOWN_FAILURES)");
        } else if known {
            eprintln!("  ^ listed in KNOWN_FAILURES but within tolerance now: remove it");
        } else if bad {
            failures.push(line);
        }
    }
    failures
}

#[test]
fn core_matches_scikit_learn_after_fixed_iterations() {
    let failures: Vec<String> = FIXTURES
        .iter()
        .flat_map(|name| check(&load(name)))
        .collect();
    assert!(
        failures.is_empty(),
        "relative errors above {TOL:e}:\n{}",
        failures.join("\n")
    );
}

/// The fixtures' BIC/AIC obey scikit-learn's definitions with 6k - 1
/// parameters, and the core's `bic`/`aic` functions reproduce them from
/// the fixture's own log-likelihood: guards against the fixtures and the
/// core sharing a wrong parameter count.
#[test]
fn fixture_criteria_follow_the_definitions() {
    for name in FIXTURES {
        let f = load(name);
        let n = f.points.len() as f64;
        let k = f.init.weights.len();
        let p = (6 * k - 1) as f64;
        for r in &f.results {
            let bic = -2.0 * r.log_likelihood + p * n.ln();
            let aic = -2.0 * r.log_likelihood + 2.0 * p;
            assert!(rel_err(bic, r.bic, 1.0) < 1e-12, "{name}: bic");
            assert!(rel_err(aic, r.aic, 1.0) < 1e-12, "{name}: aic");
            let core_bic = gmm_core::bic(r.log_likelihood as f32, n as f32, k);
            let core_aic = gmm_core::aic(r.log_likelihood as f32, k);
            assert!(
                rel_err(f64::from(core_bic), r.bic, n) < 1e-6,
                "{name}: core bic"
            );
            assert!(
                rel_err(f64::from(core_aic), r.aic, n) < 1e-6,
                "{name}: core aic"
            );
        }
    }
}

/// The queries on a fixed model: scikit-learn's final model of each
/// fixture with its parameters rounded to f32 (so both hold the same
/// model), asked about the first 50 points. `log_density` against
/// `score_samples` within 1e-5 relative (floor 1 nat: f32 log-densities
/// carry an absolute rounding error of a few 1e-7 nat); `predict_proba`
/// within 1e-4 absolute; `predict` equal unless scikit-learn's top two
/// probabilities are within 1e-4 (a tie that f32 may break either way).
#[test]
fn queries_match_scikit_learn_on_its_model() {
    let (mut worst_ld, mut worst_proba) = (0.0f64, 0.0f64);
    for name in FIXTURES {
        let f = load(name);
        let q = &f.queries;
        let w: Vec<f32> = q.weights.iter().map(|&w| w as f32).collect();
        let m: Vec<[f32; 2]> = q.means.iter().map(|m| [m[0] as f32, m[1] as f32]).collect();
        let c: Vec<SymMat2> = q.covariances.iter().map(|&c| tests::sym(c)).collect();
        let model = Gmm::<8>::new(&w, &m, &c).expect("valid model");
        for (i, p) in f.points.iter().take(q.score_samples.len()).enumerate() {
            let p = [p[0] as f32, p[1] as f32];
            let ld = f64::from(model.log_density(p));
            worst_ld = worst_ld.max(rel_err(ld, q.score_samples[i], 1.0));
            assert!(
                rel_err(ld, q.score_samples[i], 1.0) <= 1e-5,
                "{name} point {i}: log_density {ld} vs {}",
                q.score_samples[i]
            );
            let proba = model.predict_proba(p);
            for (j, &want) in q.predict_proba[i].iter().enumerate() {
                let got = f64::from(proba[j]);
                worst_proba = worst_proba.max((got - want).abs());
                assert!(
                    (got - want).abs() <= 1e-4,
                    "{name} point {i}: proba[{j}] {got} vs {want}"
                );
            }
            let mut sorted = q.predict_proba[i].clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let tie = sorted.len() > 1 && sorted[0] - sorted[1] <= 1e-4;
            if !tie {
                assert_eq!(model.predict(p), q.predict[i], "{name} point {i}");
            }
        }
    }
    eprintln!(
        "worst log_density error {worst_ld:.1e}, worst predict_proba error {worst_proba:.1e}"
    );
}

/// The mean log-likelihood of every iteration, as the core reports it.
#[derive(Default)]
struct Means(Vec<f32>);

impl Trace for Means {
    fn record(&mut self, _: u32, _: u32, mean_log_likelihood: f32, _: &[f32]) {
        self.0.push(mean_log_likelihood);
    }
}

/// The stopping rule against scikit-learn's with its default tol = 1e-3.
/// scikit-learn's check at iteration n compares the likelihoods under
/// the parameters after n - 1 and n - 2 M-steps (its E-step comes first),
/// so it stops one M-step after the core, which compares the likelihood
/// after its latest M-step with the one before: the core's `n_iter` is
/// scikit-learn's minus one. Exception: a deciding change within 1e-5 of
/// tol, which f32 may decide either way (none in these fixtures; the test
/// says so if one appears). The per-iteration mean log-likelihoods (the
/// trace) match scikit-learn's `lower_bounds_` within 1e-5 relative,
/// floor 1 nat.
#[test]
fn stopping_rule_and_trace_match_scikit_learn() {
    for name in FIXTURES {
        let f = load(name);
        let st = &f.stopping;
        let points = tests::points32(&f.points);
        let start = tests::gmm32::<8>(&f.init.weights, &f.init.means, &f.init.covariances).unwrap();
        let config = FitConfig::new(start.k())
            .with_tol(st.tol as f32)
            .with_max_iter(st.max_iter)
            .with_reg_covar(f.reg_covar as f32);
        let mut trace = Means::default();
        let fit = start
            .refine(points.as_slice(), &config, &mut trace)
            .unwrap();
        for (i, (&got, &want)) in trace.0.iter().zip(&st.lower_bounds).enumerate() {
            let ok = rel_err(f64::from(got), want, 1.0) <= 1e-5;
            if !ok && KNOWN_FAILURES.contains(&(name, i as u32)) {
                eprintln!("{name}: trace after {i} iterations {got} vs {want}: KNOWN FAILURE");
                continue;
            }
            assert!(
                ok,
                "{name}: mean log-likelihood after {i} iterations {got} vs {want}"
            );
        }
        assert!(st.converged, "{name}: scikit-learn converged");
        let lb = &st.lower_bounds;
        let ambiguous = lb
            .windows(2)
            .any(|w| ((w[1] - w[0]).abs() - st.tol).abs() <= 1e-5);
        eprintln!(
            "{name:>12}: scikit-learn n_iter {}, core n_iter {}{}",
            st.n_iter,
            fit.report.n_iter,
            if ambiguous {
                " (a change within 1e-5 of tol)"
            } else {
                ""
            }
        );
        if !ambiguous {
            assert!(fit.report.converged, "{name}");
            assert_eq!(fit.report.n_iter + 1, st.n_iter, "{name}");
        }
    }
}
