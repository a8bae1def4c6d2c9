//! A defmt-free binary that calls gmm-core's public API on inputs the
//! optimiser cannot see through (`core::hint::black_box`), with a panic
//! handler that calls a function that does not exist.
//!
//! In a release build the optimiser removes every panic path it can prove
//! unreachable; any that survives keeps a reference to the panic handler,
//! and so to `gmm_core_has_a_panic_path`, and the link fails with that
//! name. A successful link is the proof that no input makes these
//! functions panic. Run it with `cargo xtask panic-check` (part of
//! `cargo xtask ci`).

#![no_std]
#![no_main]

use core::hint::black_box;
use gmm_core::rand_core::SeedableRng;
use gmm_core::{
    Criterion, FitConfig, Gmm, Point, Points, StreamConfig, StreamingGmm, SymMat2, TraceEntry,
    Weighted, select_k,
};
use rand_xoshiro::Xoshiro128PlusPlus;

/// The capacity checked (any `K` works the same way; 4 keeps it small).
const K: usize = 4;

static POINTS: [Point; 12] = [
    [0.0, 0.1],
    [0.2, -0.1],
    [-0.1, 0.0],
    [0.1, 0.2],
    [5.0, 5.1],
    [5.2, 4.9],
    [4.9, 5.0],
    [5.1, 5.2],
    [-4.0, 3.0],
    [-4.2, 3.1],
    [-3.9, 2.8],
    [-4.1, 3.2],
];
static WEIGHTS: [f32; 12] = [1.0; 12];

/// A source that regenerates its points, like data kept in flash or
/// replayed from a seed.
struct Generated {
    n: usize,
    scale: f32,
}

impl Points for Generated {
    fn visit<F: FnMut(Point, f32)>(&self, mut f: F) {
        for i in 0..self.n {
            let t = i as f32;
            f([t * self.scale, (t * 0.7) % 3.0], 1.0);
        }
    }
}

fn exercise() {
    let points: &[Point] = black_box(&POINTS[..]);
    let weights: &[f32] = black_box(&WEIGHTS[..]);
    let config: FitConfig = black_box(FitConfig::new(3).with_n_init(2));
    let p: Point = black_box([0.5, 0.5]);

    #[cfg(feature = "must-fail")]
    black_box(points[black_box(20)]);

    // Fit on a slice, use every query.
    if let Ok(fit) = Gmm::<K>::fit(points, &config) {
        let m = fit.model;
        black_box(m.predict(p));
        black_box(m.predict_proba(p));
        black_box(m.log_density(p));
        let _ = black_box(m.score(points));
        let _ = black_box(m.bic(points));
        let _ = black_box(m.aic(points));
        black_box(fit.report.bic());
        let mut rng = Xoshiro128PlusPlus::seed_from_u64(black_box(1));
        black_box(m.sample(&mut rng));
        let _ = black_box(m.refine(points, &black_box(config.with_max_iter(3)), &mut ()));
    }

    // Weighted points, with a trace buffer.
    if let Ok(data) = Weighted::new(points, weights) {
        let mut trace: heapless::Vec<TraceEntry<K>, 32> = heapless::Vec::new();
        let _ = black_box(Gmm::<K>::fit_traced(&data, &config, &mut trace));
        black_box(trace.len());
    }

    // A regenerated source.
    let generated = Generated {
        n: black_box(40),
        scale: black_box(0.25),
    };
    let _ = black_box(Gmm::<K>::fit(&generated, &config));

    // Model selection.
    let k_max = black_box(3);
    let _ = black_box(select_k::<K, _>(points, &config, k_max, Criterion::Bic));

    // The streaming model, from a fit, fed black-boxed samples.
    let stream_config: StreamConfig = black_box(StreamConfig::new());
    if let Ok(fit) = Gmm::<K>::fit(points, &config)
        && let Ok(mut s) = StreamingGmm::from_model(&fit.model, &stream_config)
    {
        for &x in points {
            let _ = black_box(s.update(x));
            black_box(s.is_anomaly(x));
        }
        let _ = black_box(s.update_batch(points));
        black_box(s.model().predict(p));
    }

    // The E-step/M-step seam on two chunks.
    if let Ok(fit) = Gmm::<K>::fit(points, &config) {
        let (a, b) = points.split_at(points.len() / 2);
        let mut stats = fit.model.e_step(a, config.exp);
        if stats.merge(&fit.model.e_step(b, config.exp)).is_ok() {
            let _ = black_box(stats.m_step(config.reg_covar));
        }
    }

    // A model from parameters.
    let w: &[f32] = black_box(&[0.5, 0.5][..]);
    let mu: &[Point] = black_box(&[[0.0, 0.0], [1.0, 1.0]][..]);
    let cov: &[SymMat2] = black_box(&[SymMat2::IDENTITY, SymMat2::IDENTITY][..]);
    if let Ok(m) = Gmm::<K>::new(w, mu, cov) {
        black_box(m.predict(p));
        black_box(m.predict_proba(p));
        black_box(m.log_density(p));
    }
}

/// The entry point the linker looks for; nothing runs this binary.
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    exercise();
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(not(feature = "find-panics"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    unsafe extern "C" {
        /// Deliberately undefined: referenced only while a panic path
        /// survives optimisation.
        fn gmm_core_has_a_panic_path() -> !;
    }
    // SAFETY: never linked, so never called; see the crate doc.
    unsafe { gmm_core_has_a_panic_path() }
}

#[cfg(feature = "find-panics")]
#[panic_handler]
#[inline(never)]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
