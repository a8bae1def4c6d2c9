//! Host-side tools around `gmm-core`: the `gmm` command line, an
//! independent f64 reference EM, plots, and the RTT reader for the firmware.
#![deny(missing_docs)]

pub mod cli;
pub mod data;
pub mod demo;
pub mod engine;
pub mod parallel;
pub mod plot;
pub mod reference;
pub mod rtt;
pub mod stream;
