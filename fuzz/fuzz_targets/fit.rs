//! Arbitrary bytes as points, weights and configuration through fit,
//! refine, the queries, select_k, the E-step/M-step seam and the
//! streaming model (`tests::fuzz::run`). Run: `cargo xtask fuzz`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tests::fuzz::run(data));
