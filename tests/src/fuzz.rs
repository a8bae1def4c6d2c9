//! The fuzz harness: arbitrary bytes become points, weights and
//! configurations, and drive fit, refine, the queries, `select_k`, the
//! E-step/M-step seam and the streaming model. It panics only when the
//! core breaks a promise: a panic inside the core, or an `Ok` result that
//! is not a valid mixture.
//!
//! Shared by the cargo-fuzz target (`fuzz/fuzz_targets/fit.rs`) and the
//! regression test that replays saved inputs (`tests/fuzz_regressions.rs`).

use gmm_core::rand_core::SeedableRng;
use gmm_core::{
    Criterion, ExpMode, FitConfig, Gmm, GmmError, InitMethod, Point, StepSchedule, StreamConfig,
    StreamingGmm, Weighted, select_k,
};
use rand_xoshiro::Xoshiro128PlusPlus;

/// The capacity the harness uses.
pub const K: usize = 4;

/// Most points one input makes (keeps each run fast).
const MAX_POINTS: usize = 256;

/// Reads values off the input; past its end everything reads as 0.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// A float: raw bits (any value, NaN and infinities included) or, more
    /// often, a small grid value scaled by a power of ten, so the fuzzer
    /// reaches real fits as well as the input checks.
    fn f32(&mut self) -> f32 {
        match self.u8() % 4 {
            0 => f32::from_bits(self.u32()),
            _ => {
                let v = f32::from(self.u8() as i8);
                let e = i32::from(self.u8() % 16) - 8;
                v * 10f32.powi(e)
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Panics unless `m` is a valid mixture (finite, weights summing to 1,
/// positive definite covariances).
fn check<const N: usize>(m: &Gmm<N>, what: &str) {
    let total: f32 = m.weights().iter().sum();
    assert!(
        (total - 1.0).abs() <= 1e-5,
        "{what}: weights sum to {total}"
    );
    for (w, g) in m.weights().iter().zip(m.components()) {
        let mu = g.mean();
        let s = g.covariance();
        assert!(
            w.is_finite() && *w >= 0.0 && mu[0].is_finite() && mu[1].is_finite(),
            "{what}: {w} {g:?}"
        );
        assert!(
            crate::is_spd_within_f32_rounding(s),
            "{what}: covariance {s:?}"
        );
        assert!(g.precision().is_finite(), "{what}: precision {g:?}");
    }
}

/// Panics unless the fit's error is one the input explains. Input and
/// configuration errors are not checked here (the bad-input table and the
/// properties pin them down); the failures of the algorithm itself must
/// come with a degenerate input.
fn explained(e: GmmError, points: &[Point], weights: Option<&[f32]>, config: &FitConfig) {
    let extreme = points
        .iter()
        .flatten()
        .any(|c| c.abs() > 1e10 || (*c != 0.0 && c.abs() < 1e-20))
        || weights.is_some_and(|w| w.iter().any(|&w| w > 1e6));
    // (reg_covar is validated finite and >= 0 before EM can fail.)
    let unregularised = config.reg_covar < 1e-20;
    match e {
        // Regularisation that cannot fix a degenerate spread.
        GmmError::SingularCovariance { .. } => {
            assert!(unregularised, "{e} with reg_covar {}", config.reg_covar)
        }
        GmmError::Diverged | GmmError::Overflow => assert!(
            extreme || unregularised,
            "{e} on moderate data with reg_covar {}",
            config.reg_covar
        ),
        _ => {}
    }
}

/// The configuration, points and weights (`None` when unweighted) an
/// input decodes to.
#[must_use]
pub fn decode(data: &[u8]) -> (FitConfig, Vec<Point>, Option<Vec<f32>>) {
    let mut b = Bytes(data);
    let init = match b.u8() % 3 {
        0 => InitMethod::KMeansPlusPlus,
        1 => InitMethod::RandomFromData,
        _ => InitMethod::StandardNormal,
    };
    let config = FitConfig::new(usize::from(b.u8() % (K as u8 + 2)))
        .with_tol(if b.u8() % 2 == 0 { 1e-3 } else { b.f32() })
        .with_max_iter(u32::from(b.u8() % 40))
        .with_reg_covar(if b.u8() % 2 == 0 { 1e-6 } else { b.f32() })
        .with_n_init(u32::from(b.u8() % 4))
        .with_init(init)
        .with_seed(b.u64())
        .with_exp(if b.u8() % 2 == 0 {
            ExpMode::Libm
        } else {
            ExpMode::Fast
        });
    let weighted = b.u8() % 4 == 0;
    let mut points: Vec<Point> = Vec::new();
    let mut weights: Vec<f32> = Vec::new();
    while !b.is_empty() && points.len() < MAX_POINTS {
        points.push([b.f32(), b.f32()]);
        if weighted {
            weights.push(match b.u8() % 4 {
                0 => b.f32(),
                w => f32::from(w - 1),
            });
        }
    }
    (config, points, weighted.then_some(weights))
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let (config, points, weights) = decode(data);
    let probes = [
        [0.0f32, 0.0],
        [1e6, -1e6],
        [f32::NAN, 0.0],
        [f32::INFINITY, 1.0],
    ];

    let weighted = weights.is_some();
    let fit = if let Some(weights) = &weights {
        let data = Weighted::new(&points, weights).expect("same lengths");
        Gmm::<K>::fit(&data, &config)
    } else {
        Gmm::<K>::fit(points.as_slice(), &config)
    };
    let fit = match fit {
        Ok(fit) => fit,
        Err(e) => return explained(e, &points, weights.as_deref(), &config),
    };
    let m = fit.model;
    check(&m, "fit");
    assert!(fit.report.n_iter <= config.max_iter);
    for &p in points.iter().take(16).chain(&probes) {
        let j = m.predict(p);
        assert!(j < m.k(), "predict {j} of {}", m.k());
        let proba = m.predict_proba(p);
        let _ = m.log_density(p);
        if p[0].is_finite() && p[1].is_finite() {
            let total: f32 = proba.iter().sum();
            assert!((total - 1.0).abs() < 1e-4, "predict_proba sums to {total}");
        }
    }
    if !weighted {
        let _ = m.score(points.as_slice());
        let _ = m.bic(points.as_slice());
        let _ = m.aic(points.as_slice());
        // Warm start, and the E-step/M-step seam on two halves.
        if let Ok(r) = m.refine(points.as_slice(), &config.with_max_iter(3), &mut ()) {
            check(&r.model, "refine");
        }
        let (a, c) = points.split_at(points.len() / 2);
        let mut stats = m.e_step(a, config.exp);
        if stats.merge(&m.e_step(c, config.exp)).is_ok()
            && let Ok((next, _)) = stats.m_step(config.reg_covar)
        {
            check(&next, "m_step");
        }
        if let Ok(sel) = select_k::<K, _>(
            points.as_slice(),
            &config.with_max_iter(config.max_iter.min(5)),
            K,
            Criterion::Bic,
        ) {
            check(&sel.best, "select_k");
        }
    }
    let mut rng = Xoshiro128PlusPlus::seed_from_u64(config.seed);
    for _ in 0..4 {
        let (p, j) = m.sample(&mut rng);
        assert!(j < m.k() && p[0].is_finite() && p[1].is_finite());
    }
    // The streaming model from the fit, fed the same points.
    let schedule = if config.seed.is_multiple_of(2) {
        StepSchedule::Constant(0.05)
    } else {
        StepSchedule::Decaying {
            alpha: 0.9,
            t0: 2.0,
        }
    };
    let stream_config = StreamConfig::new()
        .with_schedule(schedule)
        .with_reg_covar(config.reg_covar);
    if let Ok(mut s) = StreamingGmm::from_model(&m, &stream_config) {
        for &p in &points {
            let _ = s.update(p);
            let _ = s.is_anomaly(p);
        }
        let _ = s.update_batch(&points);
        check(s.model(), "stream");
    }
}
