#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// `!(x > 0.0)` is deliberate throughout: NaN must fail every such check.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

mod config;
mod em;
mod error;
mod exp;
mod gaussian;
mod init;
mod mat2;
mod mixture;
mod points;
mod quantile;
mod sample;
mod select;
mod stream;
mod trace;

pub use config::{FitConfig, InitMethod};
pub use em::{
    BLOCK, Fit, FitReport, Guards, MAX_ABS_COORDINATE, MAX_WEIGHT, MIN_POSITIVE_WEIGHT,
    SufficientStats, Summary, Workspace, summarise,
};
pub use error::GmmError;
pub use exp::{ExpMode, FAST_EXP_MIN, FAST_EXP2_MIN, fast_exp, fast_exp2};
pub use gaussian::Gaussian;
pub use mat2::{Chol2, SymMat2};
pub use mixture::{Gmm, Scorer, aic, bic};
pub use points::{Point, Points, Weighted};
pub use quantile::P2Quantile;
pub use select::{
    Criterion, Selection, SelectionRow, select_k, select_k_in, select_k_traced, select_k_traced_in,
};
pub use stream::{StepSchedule, StreamConfig, StreamingGmm, Update, Warmup};
pub use trace::{Trace, TraceEntry};

/// The random-number traits the API takes (`rand_core`), re-exported so
/// callers use the same version.
pub use rand_core;
