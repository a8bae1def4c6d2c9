//! Streaming EM: converges to the batch fit on a stationary stream,
//! follows drift with a constant step, flags anomalies at the chosen rate.

mod common;

use common::*;
use gmm_core::{FitConfig, Gmm, Point, StepSchedule, StreamConfig, StreamingGmm, Warmup};
use rand_xoshiro::Xoshiro128PlusPlus;
use rand_xoshiro::rand_core::SeedableRng;

const WARMUP: usize = 300;

fn start_stream(points: &[Point], schedule: StepSchedule, seed: u64) -> (StreamingGmm<3>, usize) {
    let fit = FitConfig::new(3).with_n_init(3).with_seed(seed);
    let mut warm =
        Warmup::<3, WARMUP>::new(&fit, &StreamConfig::new().with_schedule(schedule)).unwrap();
    for (i, &p) in points.iter().enumerate() {
        if let Some(stream) = warm.push(p).unwrap() {
            return (stream, i + 1);
        }
    }
    panic!("warm-up never completed");
}

/// A stream (default decaying steps) that has learnt `n` samples of the
/// seed mixture drawn with `seed`.
fn stream_over_seed_data(n: usize, seed: u64) -> StreamingGmm<3> {
    let (points, _) = seed_data(n, seed);
    let (mut stream, used) = start_stream(
        &points,
        StepSchedule::Decaying {
            alpha: 0.9,
            t0: 2.0,
        },
        seed,
    );
    for &p in &points[used..] {
        stream.update(p).unwrap();
    }
    stream
}

/// Largest differences after matching components by mean.
fn distance(a: &Gmm<3>, b: &Gmm<3>) -> (f32, f32, f32) {
    let am: Vec<Point> = a.components().iter().map(|c| c.mean()).collect();
    let bm: Vec<Point> = b.components().iter().map(|c| c.mean()).collect();
    let perm = match_components(&am, &bm);
    let (mut dw, mut dm, mut dc) = (0f32, 0f32, 0f32);
    for (j, &t) in perm.iter().enumerate() {
        dw = dw.max((a.weights()[j] - b.weights()[t]).abs());
        dm = dm.max((am[j][0] - bm[t][0]).abs().max((am[j][1] - bm[t][1]).abs()));
        dc = dc.max(
            (a.components()[j].covariance() - b.components()[t].covariance()).frobenius_norm(),
        );
    }
    (dw, dm, dc)
}

/// After 20 000 samples the streaming model is within weights 0.02, means
/// 0.1, covariances Frobenius 0.2 of the batch fit on the same samples,
/// for decaying steps (alpha 0.9, the default: step 1.3e-4 at the end) and
/// a constant step of 5e-4 (a memory of ~2000 samples: the noise of a
/// mean over that window is ~0.05).
#[test]
fn stationary_stream_matches_batch_fit() {
    let base = test_seed(100);
    for seed in base..base + 3 {
        let (points, _) = seed_data(20_000, seed);
        let batch = Gmm::<3>::fit(
            points.as_slice(),
            &FitConfig::new(3)
                .with_n_init(3)
                .with_seed(seed)
                .with_tol(1e-6),
        )
        .unwrap()
        .model;
        for schedule in [
            StepSchedule::Decaying {
                alpha: 0.9,
                t0: 2.0,
            },
            StepSchedule::Constant(5e-4),
        ] {
            let (mut stream, used) = start_stream(&points, schedule, seed);
            for &p in &points[used..] {
                stream.update(p).unwrap();
            }
            assert_eq!(stream.n_seen(), 20_000);
            let (dw, dm, dc) = distance(stream.model(), &batch);
            eprintln!(
                "seed {seed} {schedule:?}: weights {dw:.4}, means {dm:.4}, covariances {dc:.4}"
            );
            assert!(
                dw <= 0.02 && dm <= 0.1 && dc <= 0.2,
                "seed {seed} {schedule:?}: {dw} {dm} {dc}"
            );
        }
    }
}

/// One mean moves from (4, 0) to (4, 4) over 20 000 samples (2e-4 per
/// sample). A constant step of 2e-3 lags by about speed / step = 0.1 plus
/// noise; the test allows 0.4. Decaying steps with alpha = 1 (the running
/// average) average the whole path and end far behind (documented not to
/// follow drift): more than 1.0 off.
#[test]
fn constant_step_follows_drift() {
    let seed = test_seed(300);
    let n = 20_000;
    let mut rng = Xoshiro128PlusPlus::seed_from_u64(seed);
    let points: Vec<Point> = (0..n)
        .map(|i| {
            let shift = 4.0 * i as f32 / n as f32;
            let g = Gmm::<3>::new(
                &TRUE_WEIGHTS,
                &[TRUE_MEANS[0], TRUE_MEANS[1], [4.0, shift]],
                &TRUE_COVS,
            )
            .unwrap();
            g.sample(&mut rng).0
        })
        .collect();
    let end = [4.0f32, 4.0];
    let mut errors = Vec::new();
    for schedule in [
        StepSchedule::Constant(2e-3),
        StepSchedule::Decaying {
            alpha: 1.0,
            t0: 2.0,
        },
    ] {
        let (mut stream, used) = start_stream(&points, schedule, seed);
        for &p in &points[used..] {
            stream.update(p).unwrap();
        }
        let err = stream
            .model()
            .components()
            .iter()
            .map(|c| ((c.mean()[0] - end[0]).powi(2) + (c.mean()[1] - end[1]).powi(2)).sqrt())
            .fold(f32::INFINITY, f32::min);
        eprintln!(
            "{schedule:?}: distance of the nearest mean to the moving one at the end: {err:.3}"
        );
        errors.push(err);
    }
    assert!(errors[0] <= 0.4, "constant step lags by {}", errors[0]);
    assert!(
        errors[1] > 1.0,
        "decaying step unexpectedly followed drift: {}",
        errors[1]
    );
}

/// Anomaly scoring at a 1% false-alarm rate: on fresh data from the same
/// mixture the measured false-alarm rate is within 0.5 percentage points
/// of 1% (binomial sd at n = 20 000 is 0.07 points; the P^2 estimate adds
/// its own error); points from a far cluster at (12, 12) are all flagged.
#[test]
fn anomalies_flagged_at_the_chosen_rate() {
    let seed = test_seed(500);
    let stream = stream_over_seed_data(20_000, seed);
    let (fresh, _) = seed_data(20_000, seed + 1);
    let false_alarms =
        fresh.iter().filter(|&&p| stream.is_anomaly(p)).count() as f32 / fresh.len() as f32;
    let far = Gmm::<1>::new(&[1.0], &[[12.0, 12.0]], &[gmm_core::SymMat2::IDENTITY]).unwrap();
    let mut rng = Xoshiro128PlusPlus::seed_from_u64(seed + 2);
    let detected = (0..2000)
        .filter(|_| stream.is_anomaly(far.sample(&mut rng).0))
        .count() as f32
        / 2000.0;
    eprintln!(
        "threshold {:?}: false-alarm rate {:.4} (target 0.01), detection rate {:.4}",
        stream.threshold(),
        false_alarms,
        detected
    );
    assert!(
        (false_alarms - 0.01).abs() <= 0.005,
        "false-alarm rate {false_alarms}"
    );
    assert!(detected >= 0.999, "detection rate {detected}");
}

/// Non-finite samples are rejected and counted; the model is untouched.
#[test]
fn bad_samples_leave_the_model_alone() {
    let (points, _) = seed_data(400, 9);
    let (mut stream, _) = start_stream(&points, StepSchedule::Constant(0.01), 9);
    let before = *stream.model();
    for bad in [[f32::NAN, 0.0], [0.0, f32::INFINITY], [1e30, 0.0]] {
        assert!(stream.update(bad).is_err());
    }
    assert_eq!(*stream.model(), before);
    assert_eq!(stream.n_rejected(), 3);
    assert!(stream.update_batch(&[[0.0, 0.0], [f32::NAN, 1.0]]).is_err());
    assert_eq!(*stream.model(), before);
    stream.update_batch(&points[..50]).unwrap();
    assert_ne!(*stream.model(), before);
    assert!(
        StreamConfig::new()
            .with_schedule(StepSchedule::Constant(1.5))
            .validate()
            .is_err()
    );
    assert!(
        StreamConfig::new()
            .with_schedule(StepSchedule::Decaying {
                alpha: 0.4,
                t0: 1.0
            })
            .validate()
            .is_err()
    );
}

/// A component that stops receiving samples starves and is re-seeded
/// where the data now is, never producing NaN.
#[test]
fn starving_component_is_reseeded() {
    let start = Gmm::<2>::new(
        &[0.5, 0.5],
        &[[0.0, 0.0], [100.0, 100.0]],
        &[gmm_core::SymMat2::IDENTITY; 2],
    )
    .unwrap();
    let mut stream = StreamingGmm::from_model(
        &start,
        &StreamConfig::new().with_schedule(StepSchedule::Constant(0.05)),
    )
    .unwrap();
    let (points, _) = seed_data(3000, 4);
    for &p in &points {
        stream.update(p).unwrap();
    }
    assert!(stream.reseeded() >= 1);
    for c in stream.model().components() {
        assert!(c.mean()[0].is_finite() && c.covariance().is_positive_definite());
        assert!(c.mean()[0].abs() < 20.0, "{c:?}");
    }
}

/// With the threshold frozen after a clean calibration stream, a burst of
/// 200 far points in a row (10 times the false-alarm budget of the last
/// 20 000) is flagged whole and leaves the threshold where it was.
/// Unfrozen, the same burst lowers it (the documented masking).
#[test]
fn anomaly_burst_cannot_mask_itself() {
    let seed = test_seed(700);
    let mut stream = stream_over_seed_data(20_000, seed);
    let mut unfrozen = stream;
    stream.freeze_threshold();
    let before = stream.threshold().unwrap();
    let far = Gmm::<1>::new(&[1.0], &[[12.0, 12.0]], &[gmm_core::SymMat2::IDENTITY]).unwrap();
    let mut rng = Xoshiro128PlusPlus::seed_from_u64(seed + 1);
    let mut flagged = 0;
    for _ in 0..200 {
        let x = far.sample(&mut rng).0;
        flagged += usize::from(stream.is_anomaly(x));
        let u = stream.update(x).unwrap();
        assert!(u.log_density.is_finite());
    }
    let after = stream.threshold().unwrap();
    eprintln!("threshold {before} -> {after}, {flagged} of 200 flagged");
    assert_eq!(flagged, 200);
    assert_eq!(after, before);
    let mut rng = Xoshiro128PlusPlus::seed_from_u64(seed + 1);
    for _ in 0..200 {
        unfrozen.update(far.sample(&mut rng).0).unwrap();
    }
    let masked = unfrozen.threshold().unwrap();
    eprintln!("unfrozen: threshold {before} -> {masked}");
    assert!(masked < before - 1.0);
}

/// A single far outlier (at the accepted range's edge) is learnt from
/// without an error or NaN.
#[test]
fn far_outlier_update_is_finite() {
    let (points, _) = seed_data(400, 12);
    let (mut stream, _) = start_stream(&points, StepSchedule::Constant(0.01), 12);
    for x in [[1e12, 1e12], [-1e12, 5.0]] {
        let u = stream.update(x);
        assert!(u.is_ok_and(|u| u.log_density.is_finite()), "{x:?}: {u:?}");
        for c in stream.model().components() {
            assert!(c.covariance().is_positive_definite());
        }
    }
    let mut warm = Warmup::<3, 10>::new(&FitConfig::new(3), &StreamConfig::new()).unwrap();
    assert_eq!(
        warm.push([f32::NAN, 0.0]).map(|_| ()),
        Err(gmm_core::GmmError::NonFinitePoint { index: 0 })
    );
    assert_eq!(
        warm.push([2e12, 0.0]).map(|_| ()),
        Err(gmm_core::GmmError::PointOutOfRange { index: 1 })
    );
}
