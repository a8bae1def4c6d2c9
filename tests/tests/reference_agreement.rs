//! The f32 core against the independent f64 reference EM of
//! `host_harness::reference`, on random mixtures from the same starting
//! parameters.
//!
//! Cases: k = 1..=8; scale 1e-3..1e3 (log-uniform); the mixture placed at
//! an offset of up to 100 scales from the origin; component standard
//! deviations 0.3..1 scale, anisotropy 1..10, random rotation; means spread
//! over 1.5 scales (overlapping) or 10 scales (separated); N log-uniform in
//! 50..1e5 with at least 40 points per component; a quarter of the cases
//! weight their points (0.1..3). The start is the truth
//! perturbed (means moved by about half a standard deviation, covariances
//! scaled by 1..2, weights by 0.7..1.3), rounded to f32 and given to both.
//!
//! The core runs to convergence (`tol = 1e-6` nat per point, `max_iter`
//! 3000); the reference then runs exactly as many M-steps (`tol = 0`), so
//! the two are compared after the same iterations and a stopping decision
//! taken on an f32 versus an f64 likelihood cannot make them differ.
//!
//! Tolerances (the issue's): weights, means and covariances within 1e-4
//! relative, as defined in `tests::param_errors` (means near 0 relative
//! to the component's standard deviation, the covariance term relative to
//! `sqrt(xx * yy)`); log-likelihood within 1e-5 relative, `|a - b| /
//! max(|b|, n)` with n the total weight (relative, or 1e-5 nat per point
//! when |ln L| < n: f32
//! log-densities carry an absolute rounding error, so a total near 0 can
//! only be judged per point). Cases where the core re-seeded or floored a
//! component are not comparable (the reference has no guards) and are
//! counted; at least 95% of the cases must be comparable.
//!
//! Seeds: case `i` uses seed `base + i`; `GMM_TEST_SEED` sets `base`
//! (default 2026), and `GMM_TEST_CASE=i` runs case `i` alone. Cases with
//! N > 3000 run only in release builds (`cargo test --release`, which
//! `cargo xtask ci` runs) to keep the debug test within a minute.

use gmm_core::{ExpMode, FitConfig, Weighted};
use host_harness::reference::{self, Mixture64, RefConfig};
use tests::{Comp, Rand, comps, param_errors, rel_err, rotated_cov};

const CASES: u64 = 240;
/// The tolerance. The closest case to it is 139 (seed 2165: k = 8,
/// overlapping, about 500 iterations): 4.6e-5 (libm) and 7.8e-5 (fast) on
/// the covariances. Its error is a random walk over the slow iterations
/// (measured against the reference stopped at the same iteration: 3e-7
/// after 1, 7e-6 after 100, 4e-5 after 500), so any change to the core's
/// rounding moves it by a factor of 2 or 3 either way: an E-step variant
/// without the per-point maximum measured 1.2e-4 / 1.4e-4 there while the
/// other 239 cases kept the same error distribution (fourth session).
const PARAM_TOL: f64 = 1e-4;
const LL_TOL: f64 = 1e-5;
const DEBUG_MAX_N: usize = 3_000;

#[derive(Debug)]
struct Case {
    k: usize,
    scale: f64,
    separated: bool,
    n: usize,
    points: Vec<[f64; 2]>,
    /// Per-point weights (f32 values), for a quarter of the cases.
    weights: Option<Vec<f64>>,
    init: Mixture64,
}

/// The truth and N of a case, and the random stream to go on with.
struct Spec {
    rand: Rand,
    k: usize,
    scale: f64,
    separated: bool,
    weights: Vec<f64>,
    means: Vec<[f64; 2]>,
    covs: Vec<[[f64; 2]; 2]>,
    n: usize,
}

fn spec(seed: u64) -> Spec {
    let mut r = Rand::new(seed);
    let k = r.int(1, 8);
    let scale = r.log_range(1e-3, 1e3);
    let separated = r.uniform() < 0.5;
    let spread = if separated { 10.0 } else { 1.5 } * scale;
    let offset = [
        r.range(-100.0, 100.0) * scale,
        r.range(-100.0, 100.0) * scale,
    ];
    let raw: Vec<f64> = (0..k).map(|_| r.range(0.3, 1.0)).collect();
    let total: f64 = raw.iter().sum();
    let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
    let means: Vec<[f64; 2]> = (0..k)
        .map(|_| {
            [
                offset[0] + spread * r.range(-1.0, 1.0),
                offset[1] + spread * r.range(-1.0, 1.0),
            ]
        })
        .collect();
    let covs: Vec<[[f64; 2]; 2]> = (0..k)
        .map(|_| {
            let s1 = scale * r.range(0.3, 1.0);
            let s2 = s1 / r.log_range(1.0, 10.0);
            rotated_cov(s1, s2, r.range(0.0, std::f64::consts::PI))
        })
        .collect();
    let min_weight = weights.iter().copied().fold(1.0, f64::min);
    let n_min = (40.0 / min_weight).ceil();
    let n = r.log_range(50.0f64.max(n_min), 1e5f64.max(n_min + 1.0)) as usize;
    Spec {
        rand: r,
        k,
        scale,
        separated,
        weights,
        means,
        covs,
        n,
    }
}

fn make_case(seed: u64) -> Case {
    let Spec {
        rand: mut r,
        k,
        scale,
        separated,
        weights,
        means,
        covs,
        n,
    } = spec(seed);
    let truth = Mixture64 {
        weights: weights.clone(),
        means: means.clone(),
        covariances: covs.clone(),
    };
    let points: Vec<[f64; 2]> = reference::sample(&truth, n, r.u64())
        .expect("valid truth")
        .into_iter()
        .map(|(p, _)| [f64::from(p[0] as f32), f64::from(p[1] as f32)])
        .collect();
    // The start, rounded to f32 so both sides get the same numbers.
    let f = |v: f64| f64::from(v as f32);
    let init = Mixture64 {
        weights: weights.iter().map(|&w| f(w * r.range(0.7, 1.3))).collect(),
        means: means
            .iter()
            .zip(&covs)
            .map(|(m, c)| {
                [
                    f(m[0] + 0.5 * c[0][0].sqrt() * r.normal()),
                    f(m[1] + 0.5 * c[1][1].sqrt() * r.normal()),
                ]
            })
            .collect(),
        covariances: covs
            .iter()
            .map(|c| {
                let s = r.range(1.0, 2.0);
                let (xx, xy, yy) = (f(c[0][0] * s), f(c[0][1] * s), f(c[1][1] * s));
                [[xx, xy], [xy, yy]]
            })
            .collect(),
    };
    // A quarter of the cases weight their points (0.1..3, as f32).
    let weights = (r.uniform() < 0.25).then(|| (0..n).map(|_| f(r.range(0.1, 3.0))).collect());
    Case {
        k,
        scale,
        separated,
        n,
        points,
        weights,
        init,
    }
}

enum Outcome {
    Pass(String),
    Fail(String),
    NotComparable(String),
}

fn run_case(i: u64, seed: u64, exp: ExpMode) -> Outcome {
    let c = make_case(seed);
    let head = format!(
        "case {i} (seed {seed}, exp {exp:?}): k {} scale {:.2e} {} N {}{}",
        c.k,
        c.scale,
        if c.separated {
            "separated"
        } else {
            "overlapping"
        },
        c.n,
        if c.weights.is_some() { " weighted" } else { "" }
    );
    let reg_covar = 1e-6 * c.scale * c.scale;
    let reg_covar32 = reg_covar as f32;
    let points = tests::points32(&c.points);
    let start = tests::gmm32::<8>(&c.init.weights, &c.init.means, &c.init.covariances)
        .expect("valid start");
    let config = FitConfig::new(c.k)
        .with_tol(1e-6)
        .with_max_iter(3000)
        .with_reg_covar(reg_covar32)
        .with_exp(exp);
    let w32: Option<Vec<f32>> = c
        .weights
        .as_ref()
        .map(|w| w.iter().map(|&w| w as f32).collect());
    let fitted = match &w32 {
        Some(w) => start.refine(
            &Weighted::new(&points, w).expect("lengths"),
            &config,
            &mut (),
        ),
        None => start.refine(points.as_slice(), &config, &mut ()),
    };
    let fit = match fitted {
        Ok(f) => f,
        Err(e) => return Outcome::Fail(format!("{head}: core failed: {e}")),
    };
    let g = fit.report.guards;
    if g.reseeded > 0 || g.floored > 0 {
        return Outcome::NotComparable(format!("{head}: core guards fired ({g:?})"));
    }
    let rc = RefConfig {
        tol: 0.0,
        max_iter: fit.report.n_iter as usize,
        reg_covar: f64::from(reg_covar32),
    };
    let r = match reference::fit(&c.points, c.weights.as_deref(), &c.init, &rc) {
        Ok(r) => r,
        Err(e) => return Outcome::NotComparable(format!("{head}: reference: {e}")),
    };
    let want: Vec<Comp> = (0..c.k)
        .map(|j| Comp {
            weight: r.mixture.weights[j],
            mean: r.mixture.means[j],
            cov: r.mixture.covariances[j],
        })
        .collect();
    let (ew, em, ec) = param_errors(&comps(&fit.model), &want);
    let total_weight = c.weights.as_ref().map_or(c.n as f64, |w| w.iter().sum());
    let ell = rel_err(
        f64::from(fit.report.log_likelihood),
        r.log_likelihood,
        total_weight,
    );
    let line = format!(
        "{head}: {} iterations{}, errors weights {ew:.1e} means {em:.1e} covariances {ec:.1e} \
         log-likelihood {ell:.1e} (core {:e}, reference {:e})",
        fit.report.n_iter,
        if fit.report.converged {
            ""
        } else {
            " (not converged)"
        },
        fit.report.log_likelihood,
        r.log_likelihood
    );
    let ok = ew <= PARAM_TOL && em <= PARAM_TOL && ec <= PARAM_TOL && ell <= LL_TOL;
    if ok && fit.report.converged {
        Outcome::Pass(line)
    } else {
        Outcome::Fail(line)
    }
}

#[test]
fn core_agrees_with_f64_reference_on_random_mixtures() {
    agree(ExpMode::Libm);
}

/// The same cases and tolerances with the fast exp and log
/// ([`ExpMode::Fast`]): their error bounds must not cost the fit its
/// accuracy.
#[test]
fn fast_exp_core_agrees_with_f64_reference_on_random_mixtures() {
    agree(ExpMode::Fast);
}

fn agree(exp: ExpMode) {
    let base = tests::seed("reference_agreement", 2026);
    let only: Option<u64> = std::env::var("GMM_TEST_CASE")
        .ok()
        .map(|v| v.trim().parse().expect("GMM_TEST_CASE is a case number"));
    let (mut passed, mut skipped_large) = (0, 0);
    let mut failures = Vec::new();
    let mut not_comparable = Vec::new();
    for i in 0..CASES {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let seed = base.wrapping_add(i);
        if cfg!(debug_assertions) && only.is_none() && spec(seed).n > DEBUG_MAX_N {
            skipped_large += 1;
            continue;
        }
        match run_case(i, seed, exp) {
            Outcome::Pass(line) => {
                eprintln!("{line}");
                passed += 1;
            }
            Outcome::Fail(line) => {
                eprintln!("FAIL {line}");
                failures.push(line);
            }
            Outcome::NotComparable(line) => {
                eprintln!("not comparable: {line}");
                not_comparable.push(line);
            }
        }
    }
    let run = passed + failures.len() + not_comparable.len();
    eprintln!(
        "exp {exp:?}: {passed} passed, {} failed, {} not comparable, {skipped_large} large cases \
         left to the release build",
        failures.len(),
        not_comparable.len()
    );
    assert!(
        failures.is_empty(),
        "exp {exp:?}: {} of {run} cases outside the tolerances (params {PARAM_TOL:e}, \
         log-likelihood {LL_TOL:e}) or not converged:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        not_comparable.len() * 20 <= run,
        "too many cases not comparable:\n{}",
        not_comparable.join("\n")
    );
    if only.is_none() && !cfg!(debug_assertions) {
        assert!(passed >= 200, "only {passed} cases compared");
    }
}
