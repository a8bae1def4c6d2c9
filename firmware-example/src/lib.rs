//! The testable part of the firmware example: where points come from, and
//! how the run is set up. Builds for the device and for the host (unit
//! tests, and `gmm rtt --check`, which regenerates the device's data with
//! the very same code).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod sensor;
pub mod source;

pub use sensor::{I2cXySource, SensorError, XyRegisters};
pub use source::{Checksum, MixtureSource, SampleSource, checksum, collect};

/// The E-step exponentials whose cost the benchmark refits measure.
#[cfg(feature = "micromath")]
pub const BENCH_EXPS: [gmm_core::ExpMode; 3] = [
    gmm_core::ExpMode::Libm,
    gmm_core::ExpMode::Fast,
    gmm_core::ExpMode::Micromath,
];
/// The E-step exponentials whose cost the benchmark refits measure.
#[cfg(not(feature = "micromath"))]
pub const BENCH_EXPS: [gmm_core::ExpMode; 2] = [gmm_core::ExpMode::Libm, gmm_core::ExpMode::Fast];

/// Ends a run on the device: flushes defmt (the host reads the rest while
/// this spins), then exits QEMU through semihosting with 0 or 1, or stops
/// at a breakpoint on the board (probe-rs ends there).
#[cfg(target_os = "none")]
pub fn exit(success: bool) -> ! {
    defmt::flush();
    #[cfg(feature = "qemu")]
    {
        use cortex_m_semihosting::debug;
        debug::exit(if success {
            debug::EXIT_SUCCESS
        } else {
            debug::EXIT_FAILURE
        });
    }
    let _ = success;
    loop {
        cortex_m::asm::bkpt();
    }
}

/// The mixture the default source draws from (the seed notebook's):
/// weights, means and covariance rows.
pub const SEED_WEIGHTS: [f32; 3] = [0.3, 0.5, 0.2];
/// Means of the seed mixture.
pub const SEED_MEANS: [[f32; 2]; 3] = [[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0]];
/// Covariances of the seed mixture, as `[xx, xy, yy]`.
pub const SEED_COVARIANCES: [[f32; 3]; 3] = [[1.0, 0.5, 1.0], [1.0, 0.0, 1.0], [1.0, -0.5, 1.0]];

/// Seed of the default source's generator on the device.
pub const DATA_SEED: u64 = 2024;
/// Points collected before fitting (8 bytes each, in a static buffer).
pub const N_POINTS: usize = 900;
/// Capacity of the fitted models.
pub const K_CAPACITY: usize = 8;
/// Model selection tries k = 1..=K_MAX.
pub const K_MAX: usize = 5;
/// Restarts per fit.
pub const N_INIT: u32 = 3;
/// Seed of the fits' random streams.
pub const FIT_SEED: u64 = 7;
/// The benchmark refits (tol 0) run this many and [`BENCH_ITERS_B`]
/// iterations; the difference of their costs is the cost of
/// `BENCH_ITERS_B - BENCH_ITERS_A` EM iterations.
pub const BENCH_ITERS_A: u32 = 2;
/// See [`BENCH_ITERS_A`].
pub const BENCH_ITERS_B: u32 = 12;

/// Seed of the streaming phase's generator: a second xoshiro128++ stream
/// from the same seed mixture, independent of [`DATA_SEED`]'s points.
pub const STREAM_SEED: u64 = 2025;
/// Samples each streaming run learns from (drawn one at a time, never
/// stored beyond a [`STREAM_CHUNK`]).
pub const N_STREAM: u32 = 2000;
/// A streaming run logs a snapshot of its model every this many samples
/// (and after the last).
pub const SNAPSHOT_EVERY: u32 = 250;
/// Samples drawn ahead of being learnt, so that SysTick times the updates
/// without the generator: a small stack buffer, not the stream.
pub const STREAM_CHUNK: usize = 50;
/// The constant step of the second streaming run (memory of about 100
/// samples).
pub const CONSTANT_STEP: f32 = 0.01;

/// Samples of each of the short constant-step runs, one per k = 1..=K_MAX
/// from that k's batch fit, that measure how the cost of an update grows
/// with k (one snapshot, at the end).
pub const N_SCALING: u32 = 500;

const _: () = assert!((N_SCALING as usize).is_multiple_of(STREAM_CHUNK));

/// The glitch run: a warm-up run of this many samples in which every
/// [`GLITCH_EVERY`]-th sample is a sensor glitch (x = NaN) that the warm-up
/// buffer and the stream must reject without changing the model.
pub const N_GLITCH: u32 = 500;
/// See [`N_GLITCH`]; the first two glitches fall in the warm-up.
pub const GLITCH_EVERY: u32 = 45;

const _: () = assert!((N_GLITCH as usize).is_multiple_of(STREAM_CHUNK));

/// How long a streaming run is, what it logs, and which samples are
/// glitches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamPlan {
    /// Samples drawn.
    pub n: u32,
    /// A snapshot every this many samples (a multiple of
    /// [`STREAM_CHUNK`]) and after the last.
    pub every: u32,
    /// Every this many samples, the sample drawn is replaced by a glitch
    /// (its x is NaN); 0 for none.
    pub glitch_every: u32,
}

impl StreamPlan {
    /// The `drawn`-th sample (counting from 1) as the run sees it: `x`, or
    /// a glitch.
    #[must_use]
    pub fn sample(&self, drawn: u32, x: gmm_core::Point) -> gmm_core::Point {
        if self.glitch_every > 0 && drawn.is_multiple_of(self.glitch_every) {
            [f32::NAN, x[1]]
        } else {
            x
        }
    }
}

/// The warm-up run collects this many samples, fits them (k-means++,
/// [`warmup_fit_config`]) and streams on from that fit.
pub const WARMUP_POINTS: usize = 100;

const _: () = assert!(STREAM_CHUNK > 0 && (SNAPSHOT_EVERY as usize).is_multiple_of(STREAM_CHUNK));
const _: () = assert!(WARMUP_POINTS <= SNAPSHOT_EVERY as usize);

/// How the warm-up run fits its first [`WARMUP_POINTS`] samples with `k`
/// components (k = the one model selection chose).
#[must_use]
pub const fn warmup_fit_config(k: usize) -> gmm_core::FitConfig {
    gmm_core::FitConfig::new(k)
        .with_n_init(N_INIT)
        .with_seed(FIT_SEED)
}

/// The configuration of the warm-up run (decaying steps; `Warmup` counts
/// its [`WARMUP_POINTS`] as prior updates itself).
#[must_use]
pub const fn warmup_stream_config() -> gmm_core::StreamConfig {
    gmm_core::StreamConfig::new()
}

/// The streaming runs, each started from the batch fit chosen by BIC: the
/// default decaying steps (the batch fit counted as its `N_POINTS`
/// samples, so the first steps do not throw it away), and a constant step
/// that forgets (for a drifting sensor).
#[must_use]
pub fn stream_configs() -> [gmm_core::StreamConfig; 2] {
    let base = gmm_core::StreamConfig::new();
    [
        base.with_prior_updates(N_POINTS as u32),
        base.with_schedule(gmm_core::StepSchedule::Constant(CONSTANT_STEP)),
    ]
}

/// How each step schedule is logged: `(code, a, b)` with code 0 for
/// `Decaying { alpha: a, t0: b }` and 1 for `Constant(a)` (b = 0).
#[must_use]
pub fn schedule_code(s: gmm_core::StepSchedule) -> (u8, f32, f32) {
    match s {
        gmm_core::StepSchedule::Decaying { alpha, t0 } => (0, alpha, t0),
        gmm_core::StepSchedule::Constant(g) => (1, g, 0.0),
    }
}

/// The inverse of [`schedule_code`].
#[must_use]
pub fn schedule_from_code(code: u8, a: f32, b: f32) -> Option<gmm_core::StepSchedule> {
    match code {
        0 => Some(gmm_core::StepSchedule::Decaying { alpha: a, t0: b }),
        1 => Some(gmm_core::StepSchedule::Constant(a)),
        _ => None,
    }
}

/// How each `ExpMode` is numbered in the log (`exp=` fields).
#[must_use]
pub fn exp_code(exp: gmm_core::ExpMode) -> u8 {
    match exp {
        gmm_core::ExpMode::Libm => 0,
        gmm_core::ExpMode::Fast => 1,
        // ExpMode::Micromath, and whatever is added later.
        _ => 2,
    }
}

/// The `warm=` field of a fit: no warm start (k-means++ restarts).
pub const WARM_NONE: i32 = -1;
/// The `warm=` field of a fit: warm start from [`bench_start`].
pub const WARM_BENCH_START: i32 = -2;

/// Where the timed refits start: equal weights, the seed mixture's means
/// pulled halfway to the origin, covariances 4 I. Far enough from the
/// optimum that EM runs all [`BENCH_ITERS_B`] iterations instead of
/// stopping early at an exact fixed point (tol 0), which it does within a
/// few iterations when started at the generating mixture.
///
/// # Errors
/// None in practice (constant, valid parameters); [`gmm_core::Gmm::new`]'s.
pub fn bench_start<const K: usize>() -> Result<gmm_core::Gmm<K>, gmm_core::GmmError> {
    let means = SEED_MEANS.map(|[x, y]| [0.5 * x, 0.5 * y]);
    let cov = gmm_core::SymMat2::new(4.0, 0.0, 4.0);
    gmm_core::Gmm::new(&[1.0, 1.0, 1.0], &means, &[cov; 3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_configs_are_valid_and_their_schedules_round_trip() {
        let configs = stream_configs();
        for c in configs.iter().chain([&warmup_stream_config()]) {
            c.validate().unwrap();
            let (code, a, b) = schedule_code(c.schedule);
            assert_eq!(schedule_from_code(code, a, b), Some(c.schedule));
        }
        warmup_fit_config(K_MAX).validate().unwrap();
        assert_eq!(schedule_from_code(7, 0.5, 0.0), None);
    }

    #[test]
    fn glitches_are_every_nth_sample_only() {
        let plan = StreamPlan {
            n: 100,
            every: 50,
            glitch_every: 45,
        };
        let x = [1.0, 2.0];
        assert_eq!(plan.sample(44, x), x);
        assert!(plan.sample(45, x)[0].is_nan());
        assert_eq!(plan.sample(45, x)[1], 2.0);
        assert!(plan.sample(90, x)[0].is_nan());
        let none = StreamPlan {
            glitch_every: 0,
            ..plan
        };
        assert_eq!(none.sample(45, x), x);
    }
}
