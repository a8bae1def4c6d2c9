//! Host-side tools around `gmm-core`: the `gmm` command line, an
//! independent f64 reference EM, plots, and the RTT reader for the firmware.

pub mod rtt;
