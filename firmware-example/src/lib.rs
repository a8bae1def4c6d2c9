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
pub use source::{MixtureSource, SampleSource, checksum, collect};

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
