//! `cargo xtask panic-check`: proves at link time that gmm-core's public
//! API keeps no panic path on thumbv7em-none-eabihf (see
//! `panic-check/src/main.rs`).
//!
//! Steps: the check binary must link in release with `opt-level = "s"`
//! (the firmware setting), with `opt-level = 3`, and with the `micromath`
//! feature; and, so the check is known to be able to fail, it must NOT
//! link with one deliberate panic added (`must-fail`). When a build that
//! should link does not, the binary is rebuilt with a panic handler that
//! links (`find-panics`) and every call into `core::panicking` is listed
//! with its calling function and source line, from the disassembly.

use std::path::Path;
use std::process::Command;

/// The symbol the check binary's panic handler references.
const MARKER: &str = "gmm_core_has_a_panic_path";

/// The builds that must link: (cargo profile, features).
const BUILDS: &[(&str, &str)] = &[("release", ""), ("opt3", ""), ("release", "micromath")];

/// Runs the whole check.
pub fn run(root: &Path) -> Result<(), String> {
    let dir = root.join("panic-check");
    // Outside the workspace, so `cargo fmt --all` and the workspace
    // clippy do not see it.
    crate::run_in(&dir, "cargo", &["fmt", "--check"], &[])?;
    crate::run_in(
        &dir,
        "cargo",
        &["clippy", "--release", "--", "-D", "warnings"],
        &[],
    )?;
    for &(profile, features) in BUILDS {
        let out = build(&dir, profile, features)?;
        if out.status.success() {
            eprintln!("panic-check: {profile} {features}: links, no panic path");
            continue;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.contains(MARKER) {
            return Err(format!(
                "the panic-check build ({profile} {features}) failed for another reason:\n{stderr}"
            ));
        }
        let sites = locate(&dir, profile, features).unwrap_or_else(|e| e);
        return Err(format!(
            "gmm-core keeps a panic path ({profile} profile, features `{features}`): \
             the link references `{MARKER}`.\nPanic call sites in the binary:\n{sites}"
        ));
    }
    let out = build(&dir, "release", "must-fail")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !stderr.contains(MARKER) {
        return Err(format!(
            "the must-fail build (one deliberate panic) did not fail on `{MARKER}`: \
             the check cannot detect panics\n{stderr}"
        ));
    }
    eprintln!("panic-check: a deliberate panic fails the link, as it must");
    Ok(())
}

fn build(dir: &Path, profile: &str, features: &str) -> Result<std::process::Output, String> {
    let mut args = vec!["build", "--profile", profile];
    if !features.is_empty() {
        args.extend(["--features", features]);
    }
    eprintln!("$ (cd panic-check && cargo {})", args.join(" "));
    Command::new("cargo")
        .args(&args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("could not start cargo: {e}"))
}

/// Rebuilds with a linking panic handler and lists the callers of
/// `core::panicking` functions with their source lines.
fn locate(dir: &Path, profile: &str, features: &str) -> Result<String, String> {
    let features = if features.is_empty() {
        "find-panics".to_string()
    } else {
        format!("{features},find-panics")
    };
    let out = build(dir, profile, &features)?;
    if !out.status.success() {
        return Err(format!(
            "(the find-panics build failed too)\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let elf = dir
        .join("target/thumbv7em-none-eabihf")
        .join(if profile == "dev" { "debug" } else { profile })
        .join("panic-check");
    let text = disassemble(&elf, &["--line-numbers"])?;
    let mut function = String::new();
    let mut line = String::new();
    let mut sites = Vec::new();
    for l in text.lines() {
        let t = l.trim();
        if l.ends_with(">:") {
            function = l.to_string();
        } else if t.starts_with(';') && t.contains(".rs:") {
            line = t.trim_start_matches(';').trim().to_string();
        } else if (t.contains("\tbl\t") || t.contains("\tb.w\t") || t.contains("\tb\t"))
            && (t.contains("core::panicking") || t.contains("panic_bounds_check"))
            && !function.contains("core::panicking")
        {
            sites.push(format!("  {function}\n    {t}\n    at {line}"));
        }
    }
    if sites.is_empty() {
        Ok("  (no call into core::panicking found; inspect the disassembly by hand)".into())
    } else {
        sites.dedup();
        Ok(sites.join("\n"))
    }
}

/// `llvm-objdump -d --demangle --no-show-raw-insn` of `elf`, with `extra`
/// arguments.
pub(crate) fn disassemble(elf: &Path, extra: &[&str]) -> Result<String, String> {
    let objdump = llvm_tool("llvm-objdump")?;
    let out = Command::new(&objdump)
        .args(["-d", "--demangle", "--no-show-raw-insn"])
        .args(extra)
        .arg(elf)
        .output()
        .map_err(|e| format!("could not start {}: {e}", objdump.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed on {}", objdump.display(), elf.display()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A tool of the `llvm-tools` component of the active toolchain.
pub(crate) fn llvm_tool(name: &str) -> Result<std::path::PathBuf, String> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("rustc --print sysroot: {e}"))?;
    let host = Command::new("rustc")
        .args(["--print", "host-tuple"])
        .output()
        .map_err(|e| format!("rustc --print host-tuple: {e}"))?;
    let path = Path::new(String::from_utf8_lossy(&sysroot.stdout).trim())
        .join("lib/rustlib")
        .join(String::from_utf8_lossy(&host.stdout).trim())
        .join("bin")
        .join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: `rustup component add llvm-tools`",
            path.display()
        ))
    }
}
