//! `cargo xtask <task>`: every check CI runs, runnable by a person the same way.
//!
//! Tasks:
//! - `ci`: everything CI runs (the README's test command).
//! - `qemu`: the firmware in QEMU, its RTT stream checked bit for bit against the host.
//! - `size`: flash, RAM, stack and instruction counts of the firmware.
//! - `bench-compare`: the core side by side with scikit-learn and linfa.
//! - `fuzz`: a bounded fuzz run.
//! - `panic-check`: gmm-core proven panic-free at link time.
//! - `profile`: the M4's instructions per point x component x iteration, by function.

mod bench;
mod fuzz;
mod panic_check;
mod profile;
mod qemu;
mod size;
mod stack;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const THUMB: &str = "thumbv7em-none-eabihf";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprintln!("{}", USAGE);
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match task.as_str() {
        "ci" => ci(),
        "qemu" => qemu::qemu(),
        "size" => size::size(),
        "bench-compare" => bench::bench_compare(rest),
        "fuzz" => fuzz::run(&root(), rest),
        "panic-check" => panic_check::run(&root()),
        "profile" => profile::profile(),
        "help" | "-h" | "--help" => {
            println!("{}", USAGE);
            Ok(())
        }
        other => Err(format!("unknown task `{other}`\n{USAGE}")),
    };
    let _ = rest;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask {task}: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <ci|qemu|size|profile|bench-compare|fuzz|panic-check>";

/// The workspace root (the parent of this crate's folder).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Runs a command in `dir`, echoing it first; an error names the command.
fn run_in(dir: &Path, program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(envs.iter().copied())
        .status()
        .map_err(|e| format!("could not start `{program}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

fn cargo(args: &[&str]) -> Result<(), String> {
    run_in(&root(), "cargo", args, &[])
}

fn ci() -> Result<(), String> {
    let root = root();
    // A fresh machine has the pinned toolchain but maybe not its target and
    // components: install what rust-toolchain.toml lists.
    run_in(&root, "rustup", &["toolchain", "install"], &[])?;
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace"])?;
    // The large-N accuracy test runs at N = 1e7 only in release.
    cargo(&["test", "--release", "-p", "gmm-core", "--test", "large_n"])?;
    run_in(
        &root,
        "cargo",
        &["doc", "--no-deps", "-p", "gmm-core", "--all-features"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    for features in ["", "micromath", "defmt", "micromath,defmt"] {
        let mut args = vec![
            "build",
            "-p",
            "gmm-core",
            "--target",
            THUMB,
            "--no-default-features",
        ];
        if !features.is_empty() {
            args.extend(["--features", features]);
        }
        cargo(&args)?;
    }
    cargo(&[
        "clippy",
        "-p",
        "gmm-core",
        "--target",
        THUMB,
        "--all-features",
        "--",
        "-D",
        "warnings",
    ])?;
    // The firmware example: its checks, then QEMU with the RTT stream
    // checked bit for bit against the host.
    qemu::ci()?;
    // gmm-core proven panic-free at link time on the firmware target.
    panic_check::run(&root)?;
    // The f32 core against the f64 reference, with the large-N cases that
    // only run in release.
    cargo(&[
        "test",
        "--release",
        "-p",
        "tests",
        "--test",
        "reference_agreement",
    ])?;
    // A bounded, seeded fuzz run (about a minute plus the first build).
    fuzz::ci(&root)?;
    eprintln!("xtask ci: all checks passed");
    Ok(())
}
