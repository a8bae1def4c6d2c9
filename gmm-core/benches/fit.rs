//! Criterion benchmarks of the core: EM fit throughput and the per-point
//! queries.
//!
//! `cargo bench -p gmm-core --bench fit` (add a filter such as `fit/K8` to
//! run a subset). Throughput is reported in elements per second where an
//! element is one point x component x EM iteration for `fit`, so
//! ns/pki = 1e9 / (elements per second); one point for the queries.
//!
//! The fit is fixed work: [`ITERATIONS`] EM iterations (`tol` 0) warm-started
//! from one given model, so every run does the same arithmetic whatever
//! the data. Each measured call also validates the data and runs the
//! E-step of the start (about 1.2 extra passes for 10 iterations), and
//! criterion times wall-clock, so these figures sit 10-30 % above the
//! per-iteration CPU-time figures of `cargo xtask bench-compare`, the
//! side-by-side comparison with scikit-learn and linfa.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gmm_core::{ExpMode, FitConfig, Gmm, Point, SymMat2};
use rand_xoshiro::Xoshiro128PlusPlus;
use rand_xoshiro::rand_core::SeedableRng;

/// EM iterations per benchmarked fit.
const ITERATIONS: u32 = 10;

/// The mixture the data are drawn from: `k` unit-ish Gaussians on a circle
/// of radius 1.5 (overlapping, so EM is slow to converge and `tol` 0 does not
/// stop it early), with unequal weights and some correlation.
fn truth<const K: usize>(k: usize) -> Gmm<K> {
    let mut w = [0.0f32; K];
    let mut m = [[0.0f32; 2]; K];
    let mut c = [SymMat2::IDENTITY; K];
    for j in 0..k {
        let a = j as f32 * core::f32::consts::TAU / k as f32;
        w[j] = 1.0 + j as f32;
        m[j] = [1.5 * a.cos(), 1.5 * a.sin()];
        c[j] = SymMat2::new(1.0 + 0.1 * j as f32, 0.3, 0.8);
    }
    Gmm::new(&w[..k], &m[..k], &c[..k]).expect("valid benchmark mixture")
}

/// The start of every fit: the true means moved by 0.7, identity
/// covariances scaled by 2, equal weights.
fn start<const K: usize>(k: usize) -> Gmm<K> {
    let t = truth::<K>(k);
    let w = [1.0f32; K];
    let mut m = [[0.0f32; 2]; K];
    for (mj, g) in m.iter_mut().zip(t.components()) {
        let [x, y] = g.mean();
        *mj = [x + 0.7, y - 0.7];
    }
    let c = [SymMat2::new(2.0, 0.0, 2.0); K];
    Gmm::new(&w[..k], &m[..k], &c[..k]).expect("valid start")
}

fn data<const K: usize>(k: usize, n: usize) -> Vec<Point> {
    let t = truth::<K>(k);
    let mut rng = Xoshiro128PlusPlus::seed_from_u64(42);
    (0..n).map(|_| t.sample(&mut rng).0).collect()
}

fn bench_fit_k<const K: usize>(c: &mut Criterion, exp: ExpMode, label: &str) {
    let mut group = c.benchmark_group(format!("fit/K{K}/{label}"));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    let start = start::<K>(K);
    let config = FitConfig::new(K)
        .with_tol(0.0)
        .with_max_iter(ITERATIONS)
        .with_exp(exp);
    for n in [1_000usize, 10_000, 100_000, 1_000_000] {
        let points = data::<K>(K, n);
        let once = start
            .refine(points.as_slice(), &config, &mut ())
            .expect("benchmark fit");
        assert_eq!(
            once.report.n_iter, ITERATIONS,
            "the fit must do the fixed work (tol 0 met early?)"
        );
        group.throughput(Throughput::Elements(
            n as u64 * K as u64 * u64::from(ITERATIONS),
        ));
        group.bench_with_input(BenchmarkId::from_parameter(n), &points, |b, p| {
            b.iter(|| {
                start
                    .refine(black_box(p.as_slice()), &config, &mut ())
                    .expect("benchmark fit")
            });
        });
    }
    group.finish();
}

fn bench_fit(c: &mut Criterion) {
    bench_fit_k::<3>(c, ExpMode::Libm, "libm");
    bench_fit_k::<3>(c, ExpMode::Fast, "fast");
    bench_fit_k::<8>(c, ExpMode::Libm, "libm");
    bench_fit_k::<8>(c, ExpMode::Fast, "fast");
}

fn bench_queries_k<const K: usize>(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("query/K{K}"));
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    let model = truth::<K>(K);
    let points = data::<K>(K, 10_000);
    group.throughput(Throughput::Elements(points.len() as u64));
    group.bench_function("log_density", |b| {
        b.iter(|| {
            let mut s = 0.0f32;
            for &p in black_box(&points) {
                s += model.log_density(p);
            }
            s
        });
    });
    group.bench_function("predict", |b| {
        b.iter(|| {
            let mut s = 0usize;
            for &p in black_box(&points) {
                s += model.predict(p);
            }
            s
        });
    });
    group.bench_function("predict_proba", |b| {
        b.iter(|| {
            let mut s = 0.0f32;
            for &p in black_box(&points) {
                s += model.predict_proba(p)[0];
            }
            s
        });
    });
    // The same queries through a scorer prepared once per batch.
    group.bench_function("scorer_log_density", |b| {
        b.iter(|| {
            let scorer = black_box(&model).scorer();
            let mut s = 0.0f32;
            for &p in black_box(&points) {
                s += scorer.log_density(p);
            }
            s
        });
    });
    group.bench_function("scorer_predict", |b| {
        b.iter(|| {
            let scorer = black_box(&model).scorer();
            let mut s = 0usize;
            for &p in black_box(&points) {
                s += scorer.predict(p);
            }
            s
        });
    });
    group.finish();
}

fn bench_queries(c: &mut Criterion) {
    bench_queries_k::<3>(c);
    bench_queries_k::<8>(c);
}

criterion_group!(benches, bench_fit, bench_queries);
criterion_main!(benches);
