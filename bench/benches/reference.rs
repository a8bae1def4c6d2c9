//! Criterion benchmark of host-harness's f64 reference EM, beside
//! gmm-core's own benchmarks (`cargo bench -p gmm-core --bench fit`), on
//! the same mixture, start and fixed work (10 iterations, `tol` 0).
//!
//! `cargo bench --manifest-path bench/Cargo.toml --bench reference`
//! (this crate is outside the workspace). Throughput elements are points
//! x components x iterations: ns/pki = 1000 / Melem/s.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use host_harness::reference::{Mixture64, RefConfig, fit, sample};

const ITERATIONS: usize = 10;

/// `k` components on a circle of radius 1.5 (as in gmm-core's benchmark).
fn truth(k: usize) -> Mixture64 {
    let a = |j: usize| j as f64 * std::f64::consts::TAU / k as f64;
    Mixture64 {
        weights: (0..k).map(|j| 1.0 + j as f64).collect(),
        means: (0..k)
            .map(|j| [1.5 * a(j).cos(), 1.5 * a(j).sin()])
            .collect(),
        covariances: (0..k)
            .map(|j| [[1.0 + 0.1 * j as f64, 0.3], [0.3, 0.8]])
            .collect(),
    }
}

fn start(k: usize) -> Mixture64 {
    let t = truth(k);
    Mixture64 {
        weights: vec![1.0; k],
        means: t.means.iter().map(|m| [m[0] + 0.7, m[1] - 0.7]).collect(),
        covariances: vec![[[2.0, 0.0], [0.0, 2.0]]; k],
    }
}

fn bench(c: &mut Criterion) {
    for k in [3usize, 8] {
        let mut group = c.benchmark_group(format!("reference/K{k}"));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        let init = start(k);
        let config = RefConfig {
            tol: 0.0,
            max_iter: ITERATIONS,
            reg_covar: 1e-6,
        };
        for n in [1_000usize, 10_000, 100_000, 1_000_000] {
            let points: Vec<[f64; 2]> = sample(&truth(k), n, 42)
                .expect("valid mixture")
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            let once = fit(&points, None, &init, &config).expect("reference fit");
            assert_eq!(once.n_iter, ITERATIONS, "the fit must do the fixed work");
            group.throughput(Throughput::Elements((n * k * ITERATIONS) as u64));
            group.bench_with_input(BenchmarkId::from_parameter(n), &points, |b, p| {
                b.iter(|| fit(black_box(p), None, &init, &config).expect("reference fit"));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
