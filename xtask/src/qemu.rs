//! `cargo xtask qemu`: the firmware example in QEMU, its RTT stream
//! checked bit for bit against the host; and the firmware's CI checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The firmware package's folder.
pub fn firmware_dir() -> PathBuf {
    crate::root().join("firmware-example")
}

/// Where built ELFs are copied, one name per variant (cargo writes every
/// variant to the same path).
fn elf_dir() -> PathBuf {
    firmware_dir().join("target").join("elf")
}

/// Installs `qemu-system-arm` with apt when it is not on PATH.
pub fn ensure_qemu() -> Result<(), String> {
    let found = Command::new("qemu-system-arm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Ok(());
    }
    eprintln!("xtask: qemu-system-arm is missing; installing it with apt-get");
    let root = crate::root();
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    crate::run_in(&root, "apt-get", &["update"], &env)
        .and_then(|()| crate::run_in(&root, "apt-get", &["install", "-y", "qemu-system-arm"], &env))
        .map_err(|e| {
            format!("{e}\nqemu-system-arm is needed: install it (apt-get install -y qemu-system-arm, as root)")
        })
}

/// The host's target triple (for the firmware library's host tests).
fn host_triple() -> Result<String, String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .current_dir(firmware_dir())
        .output()
        .map_err(|e| format!("could not run rustc: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "rustc -vV printed no host triple".into())
}

/// Builds the firmware in release with `features` (the default `fit`
/// unless "-fit" is among them) and copies the ELF to
/// `target/elf/NAME.elf`; `envs` can override the profile.
pub fn build(name: &str, features: &[&str], envs: &[(&str, &str)]) -> Result<PathBuf, String> {
    let dir = firmware_dir();
    let without_fit = features.contains(&"-fit");
    let features: Vec<&str> = features.iter().copied().filter(|f| *f != "-fit").collect();
    let joined = features.join(",");
    let mut args = vec!["build", "--release"];
    if without_fit {
        args.push("--no-default-features");
    }
    if !joined.is_empty() {
        args.extend(["--features", &joined]);
    }
    crate::run_in(&dir, "cargo", &args, envs)?;
    let built = dir
        .join("target")
        .join(crate::THUMB)
        .join("release")
        .join("firmware-example");
    std::fs::create_dir_all(elf_dir())
        .map_err(|e| format!("creating {}: {e}", elf_dir().display()))?;
    let elf = elf_dir().join(format!("{name}.elf"));
    std::fs::copy(&built, &elf).map_err(|e| format!("copying {}: {e}", built.display()))?;
    Ok(elf)
}

/// Runs `gmm rtt ELF --check` and returns its standard output; fails
/// unless every fit matched.
pub fn run_checked(elf: &Path, echo: bool) -> Result<String, String> {
    let root = crate::root();
    let elf_arg = elf.to_string_lossy().into_owned();
    let mut args = vec![
        "run",
        "--quiet",
        "-p",
        "host-harness",
        "--bin",
        "gmm",
        "--",
        "rtt",
        &elf_arg,
    ];
    args.extend(["--check", "--timeout", "300"]);
    if !echo {
        args.push("--quiet");
    }
    eprintln!("$ cargo {}", args.join(" "));
    let out = Command::new("cargo")
        .args(&args)
        .current_dir(&root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start cargo: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "`gmm rtt --check {}` failed ({})",
            elf.display(),
            out.status
        ))
    }
}

/// `cargo xtask qemu`.
pub fn qemu() -> Result<(), String> {
    ensure_qemu()?;
    let elf = build("qemu", &["qemu"], &[])?;
    run_checked(&elf, true)?;
    eprintln!(
        "xtask qemu: every fit and streaming snapshot of the firmware matched the host bit for bit"
    );
    Ok(())
}

/// The firmware's part of `cargo xtask ci`: format, lints on the device
/// target, the library's host tests, the board build, then the QEMU run.
pub fn ci() -> Result<(), String> {
    let dir = firmware_dir();
    crate::run_in(&dir, "cargo", &["fmt", "--", "--check"], &[])?;
    crate::run_in(
        &dir,
        "cargo",
        &[
            "clippy",
            "--release",
            "--features",
            "qemu,micromath",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    let host = host_triple()?;
    crate::run_in(
        &dir,
        "cargo",
        &[
            "clippy", "--lib", "--tests", "--target", &host, "--", "-D", "warnings",
        ],
        &[],
    )?;
    crate::run_in(&dir, "cargo", &["test", "--lib", "--target", &host], &[])?;
    build("board", &[], &[])?;
    qemu()
}
