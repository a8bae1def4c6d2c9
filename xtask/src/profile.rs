//! `cargo xtask profile`: where the M4's instructions per point x
//! component x iteration go, function by function.
//!
//! Runs the firmware's `profile` binary (the benchmark refits of the main
//! firmware, alone) in QEMU with `-icount shift=0` and QEMU's execution
//! trace (`-d in_asm,exec,nochain`: every translated block once with its
//! instructions, then one line per block executed), counts the
//! instructions each function executes inside each refit (between two
//! calls of `gmm_profile_mark`), and prints, per E-step exponential, the
//! difference between the long and the short refit divided by
//! `(iterations difference) x N x k`: the same measure as `cargo xtask
//! size`'s instructions/pki, split by function.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The exponentials in the order the profile binary runs them.
const EXPS: [&str; 3] = ["libm", "fast", "micromath"];

pub fn profile() -> Result<(), String> {
    crate::qemu::ensure_qemu()?;
    let dir = crate::qemu::firmware_dir();
    crate::run_in(
        &dir,
        "cargo",
        &[
            "build",
            "--release",
            "--features",
            "qemu,micromath",
            "--bin",
            "profile",
        ],
        &[],
    )?;
    let elf = dir
        .join("target")
        .join(crate::THUMB)
        .join("release")
        .join("profile");
    let lib = std::fs::read_to_string(dir.join("src").join("lib.rs"))
        .map_err(|e| format!("reading the firmware's lib.rs: {e}"))?;
    let n = constant(&lib, "N_POINTS")?;
    let iters_a = constant(&lib, "BENCH_ITERS_A")?;
    let iters_b = constant(&lib, "BENCH_ITERS_B")?;
    let k = seed_components(&lib)?;
    let trace = crate::root().join("target").join("profile-trace.log");
    run_qemu(&elf, &trace)?;
    let file =
        std::fs::File::open(&trace).map_err(|e| format!("opening {}: {e}", trace.display()))?;
    let regions = parse(BufReader::new(file))?;
    let _ = std::fs::remove_file(&trace);
    if regions.len() != 2 * EXPS.len() {
        return Err(format!(
            "expected {} profiled refits, found {}",
            2 * EXPS.len(),
            regions.len()
        ));
    }
    let per = (iters_b - iters_a) as f64 * n as f64 * k as f64;
    println!(
        "Instructions per point x component x iteration on the Cortex-M4 (QEMU -icount shift=0), \
         by function: refits of {iters_b} minus {iters_a} iterations, N = {n}, k = {k}, opt-level 3"
    );
    for (exp, pair) in EXPS.iter().zip(regions.chunks(2)) {
        let (a, b) = (&pair[0], &pair[1]);
        let mut rows: Vec<(String, f64)> = b
            .iter()
            .map(|(f, &nb)| {
                let na = a.get(f).copied().unwrap_or(0);
                (f.clone(), (nb as f64 - na as f64) / per)
            })
            .collect();
        rows.sort_by(|x, y| y.1.total_cmp(&x.1));
        let total: f64 = rows.iter().map(|r| r.1).sum();
        println!("\nexp {exp}: {total:.1} in all");
        let mut other = 0.0;
        for (i, (f, v)) in rows.iter().enumerate() {
            if i < 10 && *v >= 0.5 {
                println!("  {v:7.1}  {:5.1} %  {f}", 100.0 * v / total);
            } else {
                other += v;
            }
        }
        println!("  {other:7.1}  {:5.1} %  (the rest)", 100.0 * other / total);
    }
    Ok(())
}

/// `pub const NAME: T = VALUE;` from the firmware's lib.rs.
fn constant(src: &str, name: &str) -> Result<u64, String> {
    src.lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("pub const ")?.strip_prefix(name)?;
            let value = rest.split('=').nth(1)?.trim().trim_end_matches(';');
            value.replace('_', "").parse().ok()
        })
        .ok_or_else(|| format!("no `pub const {name}` in the firmware's lib.rs"))
}

/// The seed mixture's component count: `SEED_WEIGHTS: [f32; K]`.
fn seed_components(src: &str) -> Result<u64, String> {
    src.lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("pub const SEED_WEIGHTS: [f32; ")?;
            rest.split(']').next()?.trim().parse().ok()
        })
        .ok_or_else(|| "no `SEED_WEIGHTS: [f32; K]` in the firmware's lib.rs".into())
}

/// Runs the ELF with the execution trace written to `trace`; at most two
/// minutes, QEMU killed on every exit path.
fn run_qemu(elf: &Path, trace: &Path) -> Result<(), String> {
    let trace_arg: PathBuf = trace.to_path_buf();
    let mut child = Command::new("qemu-system-arm")
        .args([
            "-machine",
            "mps2-an386",
            "-cpu",
            "cortex-m4",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
            "-semihosting-config",
            "enable=on,target=native",
            "-icount",
            "shift=0",
            "-d",
            "in_asm,exec,nochain",
            "-D",
        ])
        .arg(&trace_arg)
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start qemu-system-arm: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("the profile run failed in QEMU ({status})")),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the profile run did not end within 120 s".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                let _ = child.kill();
                return Err(format!("waiting for QEMU: {e}"));
            }
        }
    }
}

/// Instructions executed per function in each region between two calls
/// of `gmm_profile_mark`, from QEMU's `in_asm` and `exec` log.
///
/// A translated block is logged once (`IN: function`, then one line per
/// instruction); each execution logs `Trace N: HOST [CS/PC/FLAGS/CFLAGS]
/// function`. A block is keyed by that bracket (QEMU can translate the
/// same address twice with other flags), its size taken from the last
/// translation at its address before its first execution.
fn parse(reader: impl BufRead) -> Result<Vec<HashMap<String, u64>>, String> {
    let mut pending: HashMap<u32, (String, u64)> = HashMap::new();
    let mut blocks: HashMap<String, (String, u64)> = HashMap::new();
    let mut current: Option<(String, u32, u64)> = None;
    let mut regions = Vec::new();
    let mut active: Option<HashMap<String, u64>> = None;
    let mut mark_entry: Option<u32> = None;
    for line in reader.lines() {
        let line = line.map_err(|e| format!("reading the trace: {e}"))?;
        if let Some(name) = line.strip_prefix("IN: ") {
            current = Some((name.trim().to_owned(), 0, 0));
        } else if let Some(pc) = instruction_address(&line) {
            if let Some((name, start, count)) = current.as_mut() {
                if *count == 0 {
                    *start = pc;
                }
                *count += 1;
                pending.insert(*start, (name.clone(), *count));
            }
        } else if let Some((key, pc, name)) = execution(&line) {
            current = None;
            if let Some(tb) = pending.remove(&pc) {
                blocks.insert(key.to_owned(), tb);
            }
            if name == "gmm_profile_mark" {
                // Only the block at the function's entry toggles: QEMU
                // splits a function that crosses a 1 KiB page into two
                // blocks, which would toggle twice per call.
                let entry = *mark_entry.get_or_insert(pc);
                if pc == entry {
                    match active.take() {
                        Some(done) => regions.push(done),
                        None => active = Some(HashMap::new()),
                    }
                }
                continue;
            }
            if let Some(counts) = active.as_mut() {
                let (function, size) = blocks
                    .get(key)
                    .ok_or_else(|| format!("a block executed before its translation: {line}"))?;
                *counts.entry(demangle(function)).or_insert(0) += size;
            }
        } else if line.trim().is_empty() {
            current = None;
        }
    }
    Ok(regions)
}

/// `0x00006632:  b580 ...` -> 0x6632.
fn instruction_address(line: &str) -> Option<u32> {
    let hex = line.strip_prefix("0x")?.split(':').next()?;
    u32::from_str_radix(hex, 16).ok()
}

/// `Trace 0: 0x7f.. [00800408/00006632/00000110/ff020200] name` ->
/// (the bracket, the guest address, the name).
fn execution(line: &str) -> Option<(&str, u32, &str)> {
    let rest = line.strip_prefix("Trace ")?;
    let open = rest.find('[')?;
    let close = rest.find(']')?;
    let key = rest.get(open + 1..close)?;
    let pc = u32::from_str_radix(key.split('/').nth(1)?, 16).ok()?;
    let name = rest.get(close + 1..)?.trim();
    Some((key, pc, name))
}

/// A legacy Rust symbol (`_ZN8gmm_core2em7e_block17h0123456789abcdefE`)
/// as a path (`gmm_core::em::e_block`); other names unchanged.
fn demangle(symbol: &str) -> String {
    let Some(mut rest) = symbol.strip_prefix("_ZN") else {
        return symbol.to_owned();
    };
    let mut parts = Vec::new();
    while let Some(len_end) = rest.find(|c: char| !c.is_ascii_digit()) {
        let Ok(len) = rest[..len_end].parse::<usize>() else {
            break;
        };
        let Some(part) = rest.get(len_end..len_end + len) else {
            return symbol.to_owned();
        };
        parts.push(part);
        rest = &rest[len_end + len..];
    }
    if parts
        .last()
        .is_some_and(|p| p.len() == 17 && p.starts_with('h'))
    {
        parts.pop();
    }
    let joined = parts.join("::");
    [
        ("$LT$", "<"),
        ("$GT$", ">"),
        ("$u20$", " "),
        ("$RF$", "&"),
        ("$C$", ","),
        ("$u7b$", "{"),
        ("$u7d$", "}"),
        ("..", "::"),
    ]
    .iter()
    .fold(joined, |s, (from, to)| s.replace(from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_legacy_symbols() {
        assert_eq!(
            demangle("_ZN8gmm_core2em7e_block17h48d351000b6a7842E"),
            "gmm_core::em::e_block"
        );
        assert_eq!(
            demangle("_ZN8gmm_core2em16EScorer$LT$_$GT$9far_point17h32b3daff8dfeb4abE"),
            "gmm_core::em::EScorer<_>::far_point"
        );
        assert_eq!(demangle("__aeabi_memclr4"), "__aeabi_memclr4");
    }

    #[test]
    fn counts_instructions_per_function_between_marks() {
        let log = "\
----------------
IN: gmm_profile_mark
0x00000100:  bf00       nop
0x00000102:  4770       bx lr

Trace 0: 0x1 [00800400/00000100/00000110/ff020200] gmm_profile_mark
----------------
IN: _ZN3foo3bar17h0123456789abcdefE
0x00000200:  2000       movs r0, #0
0x00000202:  2101       movs r1, #1
0x00000204:  4770       bx lr

Trace 0: 0x2 [00800400/00000200/00000110/ff020200] _ZN3foo3bar17h0123456789abcdefE
Trace 0: 0x2 [00800400/00000200/00000110/ff020200] _ZN3foo3bar17h0123456789abcdefE
Trace 0: 0x1 [00800400/00000100/00000110/ff020200] gmm_profile_mark
Trace 0: 0x2 [00800400/00000200/00000110/ff020200] _ZN3foo3bar17h0123456789abcdefE
Trace 0: 0x1 [00800400/00000100/00000110/ff020200] gmm_profile_mark
Trace 0: 0x2 [00800400/00000200/00000110/ff020200] _ZN3foo3bar17h0123456789abcdefE
Trace 0: 0x1 [00800400/00000100/00000110/ff020200] gmm_profile_mark
";
        let regions = parse(log.as_bytes()).unwrap();
        assert_eq!(regions.len(), 2);
        assert_eq!(regions[0].get("foo::bar"), Some(&6));
        // The call between the second and the third mark is not counted.
        assert_eq!(regions[1].get("foo::bar"), Some(&3));
    }

    #[test]
    fn reads_the_firmware_constants() {
        let src = "pub const N_POINTS: usize = 900;\npub const SEED_WEIGHTS: [f32; 3] = [0.3, 0.5, 0.2];\n";
        assert_eq!(constant(src, "N_POINTS"), Ok(900));
        assert_eq!(seed_components(src), Ok(3));
        assert!(constant(src, "MISSING").is_err());
    }
}
