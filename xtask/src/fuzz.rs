//! `cargo xtask fuzz [--seconds N]`: a bounded libFuzzer run of the
//! `fit` target (`fuzz/`), 60 s by default. Installs cargo-fuzz when it is
//! missing. A crash leaves its input in `fuzz/artifacts/fit/`; once fixed,
//! copy it to `tests/fixtures/fuzz/` so `cargo test` replays it.
//!
//! A longer run: `cargo xtask fuzz --seconds 3600` (the corpus in
//! `fuzz/corpus/fit` grows across runs). `cargo xtask ci` runs a fixed
//! number of inputs from a fixed seed instead ([`ci`]), so its length
//! does not depend on the machine: exploration is for the timed runs, and
//! what they find becomes a regression test.

use std::path::Path;
use std::process::Command;

const DEFAULT_SECONDS: u64 = 60;

/// Parses the arguments and runs the fuzzer.
pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let seconds = match args {
        [] => DEFAULT_SECONDS,
        [flag, n] if flag == "--seconds" => n
            .parse()
            .map_err(|_| format!("--seconds takes a whole number, not `{n}`"))?,
        _ => return Err("usage: cargo xtask fuzz [--seconds N]".into()),
    };
    fuzz(root, seconds)
}

/// Inputs and seed of the bounded run in `cargo xtask ci` (15 to 30 s on
/// this project's 2-core machine). The seed does not make runs identical
/// across checkouts (the binary embeds its paths), so the bound is kept
/// where the fixed core ran clean; longer, exploring runs are
/// `cargo xtask fuzz --seconds N`.
const CI_RUNS: u64 = 300_000;
const CI_SEED: u64 = 20_261_126;

/// The run `cargo xtask ci` makes: `CI_RUNS` inputs from seed `CI_SEED`.
pub fn ci(root: &Path) -> Result<(), String> {
    fuzz_with(
        root,
        &format!("-runs={CI_RUNS}"),
        &format!("-seed={CI_SEED}"),
        &format!("{CI_RUNS} inputs"),
    )
}

/// Runs the `fit` target for `seconds`.
pub fn fuzz(root: &Path, seconds: u64) -> Result<(), String> {
    fuzz_with(
        root,
        &format!("-max_total_time={seconds}"),
        "-seed=0",
        &format!("{seconds} s"),
    )
}

/// Runs the `fit` target with a libFuzzer bound (`-runs=` or
/// `-max_total_time=`) and seed (`-seed=0` picks one at random).
fn fuzz_with(root: &Path, bound: &str, seed: &str, what: &str) -> Result<(), String> {
    let dir = root.join("fuzz");
    // Outside the workspace, so `cargo fmt --all` does not see it.
    crate::run_in(&dir, "cargo", &["fmt", "--check"], &[])?;
    if !succeeds(&dir, &["+nightly", "--version"]) {
        return Err("the nightly toolchain is missing: `rustup toolchain install nightly`".into());
    }
    if !succeeds(&dir, &["+nightly", "fuzz", "--version"]) {
        crate::run_in(root, "cargo", &["install", "cargo-fuzz", "--locked"], &[])?;
    }
    // -a: debug assertions (integer overflow is a failure too); -s none:
    // gmm-core forbids unsafe code, so AddressSanitizer adds only cost;
    // -timeout: an input that runs for 20 s is a hang.
    let args = [
        "+nightly",
        "fuzz",
        "run",
        "fit",
        "-a",
        "-s",
        "none",
        "--",
        bound,
        seed,
        "-timeout=20",
        "-print_final_stats=1",
    ];
    eprintln!("$ (cd fuzz && cargo {})", args.join(" "));
    let status = cargo(&dir)
        .args(args)
        .status()
        .map_err(|e| format!("could not start cargo: {e}"))?;
    if status.success() {
        eprintln!("xtask fuzz: {what} without a failure");
        Ok(())
    } else {
        Err(format!(
            "the fuzzer found a failing input ({status}); it is in fuzz/artifacts/fit/. \
             Reproduce with `cd fuzz && cargo +nightly fuzz run fit -a -s none <file>`, fix, \
             then copy the file to tests/fixtures/fuzz/ as a regression test."
        ))
    }
}

/// `cargo` for the fuzz folder, without the toolchain choice that
/// `cargo xtask` (pinned stable) passes down to its children.
fn cargo(dir: &Path) -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(dir)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC");
    c
}

fn succeeds(dir: &Path, args: &[&str]) -> bool {
    cargo(dir)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}
