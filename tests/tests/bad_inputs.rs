//! Bad inputs, one table: every row is an input the core must survive,
//! with the documented error it returns or "a finite regularised fit"
//! (finite parameters, weights summing to 1 within 1e-6, positive
//! definite covariances). The README lists the same table.

use gmm_core::{Criterion, Fit, FitConfig, Gmm, GmmError, Point, Weighted, select_k};

const K: usize = 4;

/// What a row must produce.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// This exact error.
    Error(GmmError),
    /// A finite, regularised fit.
    Fit,
}

struct Row {
    name: &'static str,
    points: Vec<Point>,
    /// Per-point weights, or `None` for unweighted points.
    weights: Option<Vec<f32>>,
    config: FitConfig,
    expect: Expect,
}

fn row(name: &'static str, points: Vec<Point>, config: FitConfig, expect: Expect) -> Row {
    Row {
        name,
        points,
        weights: None,
        config,
        expect,
    }
}

/// Twelve ordinary points in two clusters, for rows about the config.
fn good() -> Vec<Point> {
    (0..12)
        .map(|i| {
            let t = i as f32;
            let c = if i % 2 == 0 { 0.0 } else { 10.0 };
            [c + 0.3 * (t * 1.7).sin(), c + 0.3 * (t * 2.3).cos()]
        })
        .collect()
}

fn with_point(i: usize, p: Point) -> Vec<Point> {
    let mut v = good();
    v[i] = p;
    v
}

fn table() -> Vec<Row> {
    use Expect::{Error, Fit};
    let c2 = FitConfig::new(2);
    let line: Vec<Point> = (0..20).map(|i| [i as f32, 2.0 * i as f32 + 1.0]).collect();
    let mut two_exact = vec![[1.0f32, 1.0]; 6];
    two_exact.extend([[-3.0f32, 5.0]; 6]);
    let tiny: Vec<Point> = good()
        .iter()
        .map(|p| [p[0] * 1e-30, p[1] * 1e-30])
        .collect();
    vec![
        row(
            "empty data",
            vec![],
            FitConfig::new(1),
            Error(GmmError::ZeroTotalWeight),
        ),
        row("one point, k = 1", vec![[1.0, 2.0]], FitConfig::new(1), Fit),
        row(
            "one point, k = 2",
            vec![[1.0, 2.0]],
            c2,
            Error(GmmError::TooFewPoints {
                points: 1,
                components: 2,
            }),
        ),
        row(
            "n < k (3 points, k = 4)",
            good()[..3].to_vec(),
            FitConfig::new(4),
            Error(GmmError::TooFewPoints {
                points: 3,
                components: 4,
            }),
        ),
        row("all points identical", vec![[3.0, -1.0]; 10], c2, Fit),
        row("all points on a line", line, c2, Fit),
        row("two exact clusters with zero spread", two_exact, c2, Fit),
        row(
            "NaN coordinate",
            with_point(5, [1.0, f32::NAN]),
            c2,
            Error(GmmError::NonFinitePoint { index: 5 }),
        ),
        row(
            "+inf coordinate",
            with_point(0, [f32::INFINITY, 0.0]),
            c2,
            Error(GmmError::NonFinitePoint { index: 0 }),
        ),
        row(
            "-inf coordinate",
            with_point(11, [0.0, f32::NEG_INFINITY]),
            c2,
            Error(GmmError::NonFinitePoint { index: 11 }),
        ),
        row(
            "1e30 magnitude",
            with_point(3, [1e30, 0.0]),
            c2,
            Error(GmmError::PointOutOfRange { index: 3 }),
        ),
        row("1e-30 magnitudes", tiny, c2, Fit),
        row(
            "k = 0",
            good(),
            FitConfig::new(0),
            Error(GmmError::InvalidK { k: 0, capacity: K }),
        ),
        row(
            "k > K",
            good(),
            FitConfig::new(K + 1),
            Error(GmmError::InvalidK {
                k: K + 1,
                capacity: K,
            }),
        ),
        row(
            "tol < 0",
            good(),
            c2.with_tol(-1e-3),
            Error(GmmError::InvalidConfig {
                reason: "tol must be finite and >= 0",
            }),
        ),
        row(
            "tol NaN",
            good(),
            c2.with_tol(f32::NAN),
            Error(GmmError::InvalidConfig {
                reason: "tol must be finite and >= 0",
            }),
        ),
        row("max_iter 0", good(), c2.with_max_iter(0), Fit),
        row(
            "reg_covar < 0",
            good(),
            c2.with_reg_covar(-1e-6),
            Error(GmmError::InvalidConfig {
                reason: "reg_covar must be finite and >= 0",
            }),
        ),
        row(
            "n_init 0",
            good(),
            c2.with_n_init(0),
            Error(GmmError::InvalidConfig {
                reason: "n_init must be >= 1",
            }),
        ),
        Row {
            name: "all weights zero",
            points: good(),
            weights: Some(vec![0.0; 12]),
            config: c2,
            expect: Error(GmmError::ZeroTotalWeight),
        },
        Row {
            name: "negative weight",
            points: good(),
            weights: Some({
                let mut w = vec![1.0; 12];
                w[7] = -1.0;
                w
            }),
            config: c2,
            expect: Error(GmmError::InvalidWeight { index: 7 }),
        },
        Row {
            name: "NaN weight",
            points: good(),
            weights: Some({
                let mut w = vec![1.0; 12];
                w[2] = f32::NAN;
                w
            }),
            config: c2,
            expect: Error(GmmError::InvalidWeight { index: 2 }),
        },
        Row {
            name: "weights on fewer points than k",
            points: good(),
            weights: Some({
                let mut w = vec![0.0; 12];
                w[4] = 1.0;
                w
            }),
            config: c2,
            expect: Error(GmmError::TooFewPoints {
                points: 1,
                components: 2,
            }),
        },
    ]
}

fn fit_row(r: &Row) -> Result<Fit<K>, GmmError> {
    match &r.weights {
        None => Gmm::<K>::fit(r.points.as_slice(), &r.config),
        Some(w) => Gmm::<K>::fit(&Weighted::new(&r.points, w)?, &r.config),
    }
}

fn check_fit(name: &str, fit: &Fit<K>) -> Result<(), String> {
    let m = &fit.model;
    let total: f32 = m.weights().iter().sum();
    if (total - 1.0).abs() > 1e-6 {
        return Err(format!("{name}: weights sum to {total}"));
    }
    for (w, g) in m.weights().iter().zip(m.components()) {
        let s = g.covariance();
        let mu = g.mean();
        let ok = w.is_finite()
            && mu[0].is_finite()
            && mu[1].is_finite()
            && tests::is_spd_within_f32_rounding(s)
            && g.precision().is_finite();
        if !ok {
            return Err(format!("{name}: invalid component {g:?} (weight {w})"));
        }
    }
    if !fit.report.log_likelihood.is_finite() {
        return Err(format!(
            "{name}: log-likelihood {}",
            fit.report.log_likelihood
        ));
    }
    Ok(())
}

#[test]
fn every_bad_input_gets_its_documented_outcome() {
    let mut failures = Vec::new();
    for r in table() {
        let got = fit_row(&r);
        eprintln!(
            "{:<40} -> {:?}",
            r.name,
            got.as_ref().map(|f| f.report.guards)
        );
        let verdict = match (r.expect, &got) {
            (Expect::Error(want), Err(e)) if *e == want => {
                // Every error explains itself in its message.
                assert!(!e.to_string().is_empty());
                Ok(())
            }
            (Expect::Fit, Ok(fit)) => check_fit(r.name, fit),
            (want, got) => Err(format!("{}: expected {want:?}, got {got:?}", r.name)),
        };
        if let Err(msg) = verdict {
            failures.push(msg);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same rows through `select_k` (k_max = 2 with the row's config):
/// the same input errors, never a panic. Config errors about k differ
/// (select_k takes k_max, not k) and are checked separately.
#[test]
fn select_k_gets_the_same_input_errors() {
    for r in table() {
        if r.config.k == 0 || r.config.k > K {
            continue;
        }
        let k_max = 2;
        let got = match &r.weights {
            None => select_k::<K, _>(r.points.as_slice(), &r.config, k_max, Criterion::Bic),
            Some(w) => select_k::<K, _>(
                &Weighted::new(&r.points, w).unwrap(),
                &r.config,
                k_max,
                Criterion::Bic,
            ),
        };
        match (r.expect, got) {
            (Expect::Error(GmmError::TooFewPoints { .. }), Ok(sel)) => {
                // k larger than the points is not tried: only smaller rows.
                assert!(
                    sel.rows.iter().all(|row| row.k <= r.points.len()),
                    "{}",
                    r.name
                );
            }
            (Expect::Error(GmmError::TooFewPoints { .. }), Err(e)) => {
                assert!(
                    matches!(e, GmmError::TooFewPoints { .. }),
                    "{}: {e}",
                    r.name
                );
            }
            (Expect::Error(want), Err(e)) => assert_eq!(e, want, "{}", r.name),
            (Expect::Fit, Ok(sel)) => assert!(!sel.rows.is_empty(), "{}", r.name),
            (want, got) => panic!("{}: expected {want:?}, got {got:?}", r.name),
        }
    }
    assert_eq!(
        select_k::<K, _>(good().as_slice(), &FitConfig::new(1), 0, Criterion::Bic).unwrap_err(),
        GmmError::InvalidK { k: 0, capacity: K }
    );
    assert_eq!(
        select_k::<K, _>(good().as_slice(), &FitConfig::new(1), K + 1, Criterion::Bic).unwrap_err(),
        GmmError::InvalidK {
            k: K + 1,
            capacity: K
        }
    );
}

/// Points whose count and weights disagree cannot be paired.
#[test]
fn weight_count_mismatch_is_an_error() {
    let p = good();
    assert_eq!(
        Weighted::new(&p, &[1.0; 3]).unwrap_err(),
        GmmError::WeightCountMismatch {
            points: 12,
            weights: 3
        }
    );
}

/// Regression (found by the `fit_on_any_finite_input` property, fixed in
/// gmm-core 41c51a7): data with a spread of ~1e10, inside
/// `MAX_ABS_COORDINATE` = 1e12, failed with `SingularCovariance` because
/// `xx * yy - xy^2` overflowed f32. Minimal case: the two points below.
#[test]
fn large_spreads_do_not_overflow_the_determinant() {
    let points = [[1e12f32, 0.0], [0.0, 1e12]];
    let fit = Gmm::<1>::fit(&points, &FitConfig::new(1)).expect("spread of 1e12 fits");
    assert!(fit.model.components()[0].covariance().xx > 1e23);
    let spread: Vec<Point> = (0..20)
        .map(|i| [(i as f32) * 1e9, ((i * 7) % 20) as f32 * 1e9])
        .collect();
    Gmm::<2>::fit(spread.as_slice(), &FitConfig::new(2)).expect("spread of 2e10 fits");
}
