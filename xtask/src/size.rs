//! `cargo xtask size`: flash, static RAM, stack and instruction counts of
//! the firmware example, measured, printed as a table.
//!
//! - Flash and RAM come from the section headers of the board build
//!   (NUCLEO-F411RE) with and without the fit (default feature `fit`); the
//!   difference is what fitting adds (gmm-core's fit plus the firmware's
//!   logging of it). A third build (`minimal-fit`) only calls `select_k`
//!   and logs the chosen k: its difference to the build without the fit
//!   is the core's share in the smallest application. The symbol table also attributes the code that stayed
//!   in gmm-core's and libm's own functions (a lower bound: LTO inlines
//!   part of gmm-core into the firmware's functions).
//! - Stack, type sizes, instructions per point x component x EM
//!   iteration and per streaming-EM update come from a QEMU run
//!   (`gmm rtt --check`, which must also pass) of the same firmware with
//!   every E-step exponential.
//! - Both at opt-level 3 (the shipped profile) and opt-level "s".

use std::collections::BTreeMap;
use std::path::Path;

/// Goals from the issue, to compare against.
const GOAL_CORE_FLASH: u64 = 8 * 1024;
const GOAL_MODEL_STATS_RAM: u64 = 512;
const GOAL_FIT_STACK: u64 = 1024;
const GOAL_PKI: f64 = 60.0;

/// One section: name, size, flags.
struct Section {
    name: String,
    size: u64,
    alloc: bool,
}

fn u16_at(b: &[u8], at: usize) -> Result<u64, String> {
    b.get(at..at + 2)
        .map(|s| u64::from(u16::from_le_bytes([s[0], s[1]])))
        .ok_or_else(|| "truncated ELF".into())
}

fn u32_at(b: &[u8], at: usize) -> Result<u64, String> {
    b.get(at..at + 4)
        .map(|s| u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])))
        .ok_or_else(|| "truncated ELF".into())
}

fn c_str(b: &[u8], at: usize) -> String {
    let tail = b.get(at..).unwrap_or(&[]);
    let end = tail.iter().position(|&c| c == 0).unwrap_or(tail.len());
    String::from_utf8_lossy(&tail[..end]).into_owned()
}

/// (name, size) of a symbol.
type Symbol = (String, u64);

/// Sections and sized symbols of a 32-bit little-endian ELF.
fn read_elf(path: &Path) -> Result<(Vec<Section>, Vec<Symbol>), String> {
    let b = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    if b.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 1, 1][..]) {
        return Err(format!(
            "{} is not a 32-bit little-endian ELF",
            path.display()
        ));
    }
    let shoff = u32_at(&b, 0x20)? as usize;
    let shentsize = u16_at(&b, 0x2e)? as usize;
    let shnum = u16_at(&b, 0x30)? as usize;
    let shstrndx = u16_at(&b, 0x32)? as usize;
    let header = |i: usize| shoff + i * shentsize;
    let names_off = u32_at(&b, header(shstrndx) + 16)? as usize;
    let mut sections = Vec::new();
    let mut symbols = Vec::new();
    for i in 0..shnum {
        let h = header(i);
        let name = c_str(&b, names_off + u32_at(&b, h)? as usize);
        let kind = u32_at(&b, h + 4)?;
        let flags = u32_at(&b, h + 8)?;
        let offset = u32_at(&b, h + 16)? as usize;
        let size = u32_at(&b, h + 20)?;
        let link = u32_at(&b, h + 24)? as usize;
        // SHT_SYMTAB: 16-byte entries, names in the linked string table.
        if kind == 2 {
            let strings = u32_at(&b, header(link) + 16)? as usize;
            for e in (offset..offset + size as usize).step_by(16) {
                let sym_size = u32_at(&b, e + 8)?;
                if sym_size > 0 {
                    symbols.push((c_str(&b, strings + u32_at(&b, e)? as usize), sym_size));
                }
            }
        }
        sections.push(Section {
            name,
            size,
            alloc: flags & 2 != 0,
        });
    }
    Ok((sections, symbols))
}

/// Flash (.vector_table + .text + .rodata + .data) and static RAM
/// (.data + .bss + .uninit) of a build.
#[derive(Clone, Copy, Default)]
struct Sizes {
    vector: u64,
    text: u64,
    rodata: u64,
    data: u64,
    bss: u64,
    uninit: u64,
}

impl Sizes {
    fn flash(&self) -> u64 {
        self.vector + self.text + self.rodata + self.data
    }
    fn ram(&self) -> u64 {
        self.data + self.bss + self.uninit
    }
}

fn sizes(sections: &[Section]) -> Sizes {
    let mut s = Sizes::default();
    for sec in sections.iter().filter(|s| s.alloc) {
        let slot = match sec.name.as_str() {
            ".vector_table" => &mut s.vector,
            ".text" => &mut s.text,
            ".rodata" => &mut s.rodata,
            ".data" => &mut s.data,
            ".bss" => &mut s.bss,
            ".uninit" => &mut s.uninit,
            _ => continue,
        };
        *slot += sec.size;
    }
    s
}

/// The crate a (legacy- or v0-mangled) Rust symbol belongs to, as far as
/// its name tells: `_ZN8gmm_core2em...` -> `gmm_core`.
fn crate_of(symbol: &str) -> String {
    for krate in [
        "gmm_core",
        "libm",
        "defmt_rtt",
        "defmt",
        "cortex_m_rt",
        "cortex_m",
        "rand_xoshiro",
        "heapless",
        "firmware_example",
        "panic_probe",
        "compiler_builtins",
        "core",
    ] {
        let legacy = format!("{}{krate}", krate.len());
        if symbol.contains(&legacy) || symbol.contains(&format!("$LT${krate}..")) {
            return krate.to_string();
        }
    }
    if symbol.starts_with("__aeabi") || symbol.starts_with("__") {
        "compiler_builtins/runtime".into()
    } else {
        "other".into()
    }
}

fn by_crate(symbols: &[Symbol]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (name, size) in symbols {
        *m.entry(crate_of(name)).or_insert(0) += size;
    }
    m
}

/// `metric NAME VALUE` lines of `gmm rtt`.
fn metrics(out: &str) -> BTreeMap<String, f64> {
    out.lines()
        .filter_map(|l| {
            let mut it = l.strip_prefix("metric ")?.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

struct Profile {
    opt: &'static str,
    full: Sizes,
    no_fit: Sizes,
    minimal: Sizes,
    crates: BTreeMap<String, u64>,
    run: BTreeMap<String, f64>,
    /// The deepest chain of frames below the fit in the QEMU build's
    /// call graph: every path, and the paths that avoid
    /// [`crate::stack::UNREACHED`].
    fit_path_all: (u64, Vec<(String, u64)>),
    fit_path: (u64, Vec<(String, u64)>),
}

fn measure(opt: &'static str) -> Result<Profile, String> {
    let env = [("CARGO_PROFILE_RELEASE_OPT_LEVEL", opt)];
    let full_elf = crate::qemu::build(&format!("board-o{opt}"), &[], &env)?;
    let no_fit_elf = crate::qemu::build(&format!("board-nofit-o{opt}"), &["-fit"], &env)?;
    let minimal_elf = crate::qemu::build(
        &format!("board-minimal-o{opt}"),
        &["-fit", "minimal-fit"],
        &env,
    )?;
    let qemu_elf = crate::qemu::build(
        &format!("qemu-micromath-o{opt}"),
        &["qemu", "micromath"],
        &env,
    )?;
    let (full_sections, full_symbols) = read_elf(&full_elf)?;
    let (no_fit_sections, _) = read_elf(&no_fit_elf)?;
    let (minimal_sections, _) = read_elf(&minimal_elf)?;
    let out = crate::qemu::run_checked(&qemu_elf, false)?;
    let graph = crate::stack::call_graph(&qemu_elf)?;
    let fit_path_all = crate::stack::deepest_fit(&graph, true)?;
    let fit_path = crate::stack::deepest_fit(&graph, false)?;
    Ok(Profile {
        opt,
        full: sizes(&full_sections),
        no_fit: sizes(&no_fit_sections),
        minimal: sizes(&minimal_sections),
        crates: by_crate(&full_symbols),
        run: metrics(&out),
        fit_path_all,
        fit_path,
    })
}

/// `size_of::<Gmm<8>>() + size_of::<SufficientStats<8>>()` as the device
/// logged them.
fn model_stats(p: &Profile) -> Option<f64> {
    Some(p.run.get("model_bytes")? + p.run.get("stats_bytes")?)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "meets the goal"
    } else {
        "MISSES the goal"
    }
}

/// `cargo xtask size`.
pub fn size() -> Result<(), String> {
    crate::qemu::ensure_qemu()?;
    let profiles = [measure("3")?, measure("s")?];
    println!();
    println!(
        "firmware-example, NUCLEO-F411RE build (flash = .vector_table+.text+.rodata+.data; RAM = .data+.bss+.uninit)"
    );
    println!("{:<50} {:>10} {:>10}", "", "opt 3", "opt s");
    let row = |label: &str, f: &dyn Fn(&Profile) -> String| {
        println!(
            "{label:<50} {:>10} {:>10}",
            f(&profiles[0]),
            f(&profiles[1])
        );
    };
    row("flash, whole firmware", &|p| p.full.flash().to_string());
    row("  .text", &|p| p.full.text.to_string());
    row("  .rodata", &|p| p.full.rodata.to_string());
    row("static RAM, whole firmware", &|p| p.full.ram().to_string());
    row("  of which RTT buffer (.uninit)", &|p| {
        p.full.uninit.to_string()
    });
    row("flash without the fit", &|p| p.no_fit.flash().to_string());
    row("flash added by the fit + its logs", &|p| {
        (p.full.flash().saturating_sub(p.no_fit.flash())).to_string()
    });
    row("flash added by select_k alone", &|p| {
        (p.minimal.flash().saturating_sub(p.no_fit.flash())).to_string()
    });
    row("RAM added by the fit", &|p| {
        (p.full.ram().saturating_sub(p.no_fit.ram())).to_string()
    });
    row("gmm_core's own functions", &|p| {
        p.crates.get("gmm_core").copied().unwrap_or(0).to_string()
    });
    row("libm's own functions", &|p| {
        p.crates.get("libm").copied().unwrap_or(0).to_string()
    });
    println!();
    println!(
        "QEMU mps2-an386 run (-icount shift=0, SysTick ticks x 40 = instructions; every fit checked bit for bit)"
    );
    let metric = |p: &Profile, name: &str| {
        p.run
            .get(name)
            .map_or("-".to_string(), |v| format!("{v:.1}"))
    };
    row("Workspace<8> bytes (a static)", &|p| {
        metric(p, "workspace_bytes")
    });
    row("stack of Gmm::<8>::fit_in (painted)", &|p| {
        metric(p, "fit_stack_bytes")
    });
    row("  with a RAM trace (deepest fit)", &|p| {
        metric(p, "traced_fit_stack_bytes")
    });
    row("  deepest path below the fit (call graph)", &|p| {
        p.fit_path.0.to_string()
    });
    row("    with libm's sin/cos reduction beyond 9 pi / 4", &|p| {
        p.fit_path_all.0.to_string()
    });
    row("stack of Gmm::<8>::fit (workspace on the stack)", &|p| {
        metric(p, "onstack_fit_stack_bytes")
    });
    row("peak stack, whole run (painted)", &|p| {
        metric(p, "peak_stack_bytes")
    });
    row("model bytes, Gmm<8>", &|p| metric(p, "model_bytes"));
    row("statistics bytes, SufficientStats<8>", &|p| {
        metric(p, "stats_bytes")
    });
    row("model + statistics RAM for K = 8", &|p| {
        model_stats(p).map_or("-".into(), |v| format!("{v:.1}"))
    });
    row("StreamingGmm<8> bytes", &|p| metric(p, "stream_bytes"));
    let stream_k = profiles[0]
        .run
        .get("stream_k")
        .map_or("?".into(), |k| format!("{k:.0}"));
    for schedule in ["decaying", "constant"] {
        row(
            &format!("instructions/streaming update, {schedule} (K = {stream_k})"),
            &|p| metric(p, &format!("instructions_per_update_{schedule}")),
        );
    }
    for k in 1..=8 {
        let name = format!("instructions_per_update_constant_k{k}");
        if profiles.iter().any(|p| p.run.contains_key(&name)) {
            row(&format!("  constant step, k = {k}"), &|p| metric(p, &name));
        }
    }
    row("stack of a chunk of updates", &|p| {
        metric(p, "stream_update_stack_bytes_decaying")
    });
    for exp in ["libm", "fast", "micromath"] {
        row(&format!("instructions/pki, exp {exp}"), &|p| {
            metric(p, &format!("instructions_per_pki_{exp}"))
        });
    }
    for p in &profiles {
        println!();
        println!(
            "deepest path below the fit at opt {} (frames from the disassembly; indirect calls not followed; a tail call replaces its caller's frame; {} not entered: the core calls sinf/cosf only for angles in [0, 2 pi), which never reach it):",
            p.opt,
            crate::stack::UNREACHED
        );
        for (f, bytes) in &p.fit_path.1 {
            println!("  {bytes:>6} B  {f}");
        }
    }
    println!();
    let p = &profiles[1];
    let core_flash = p.minimal.flash().saturating_sub(p.no_fit.flash());
    println!(
        "goal core flash <= {GOAL_CORE_FLASH} B: select_k with plain fits adds {core_flash} B at opt s: {}",
        verdict(core_flash <= GOAL_CORE_FLASH)
    );
    let stack = profiles
        .iter()
        .filter_map(|p| p.run.get("fit_stack_bytes"))
        .fold(0.0f64, |a, &b| a.max(b));
    let path_bound = profiles.iter().map(|p| p.fit_path.0).max().unwrap_or(0);
    let workspace = profiles[0]
        .run
        .get("workspace_bytes")
        .copied()
        .unwrap_or(f64::NAN);
    println!(
        "goal fit stack <= {GOAL_FIT_STACK} B: Gmm::<8>::fit_in with a static Workspace<8> ({workspace:.0} B) uses up to {stack:.0} B painted, {path_bound} B on the deepest path of its calls: {}",
        verdict(stack <= GOAL_FIT_STACK as f64 && path_bound <= GOAL_FIT_STACK)
    );
    if let Some(total) = model_stats(&profiles[0]) {
        println!(
            "goal model + statistics <= {GOAL_MODEL_STATS_RAM} B for K = 8: size_of Gmm<8> + SufficientStats<8> on the device is {total:.0} B: {}",
            verdict(total <= GOAL_MODEL_STATS_RAM as f64)
        );
    }
    for p in &profiles {
        for exp in ["libm", "fast", "micromath"] {
            if let Some(v) = p.run.get(&format!("instructions_per_pki_{exp}")) {
                println!(
                    "goal <= {GOAL_PKI} instructions/pki, opt {} exp {exp}: {v:.1}: {}",
                    p.opt,
                    verdict(*v <= GOAL_PKI)
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_mangled_symbols_to_crates() {
        assert_eq!(
            crate_of("_ZN8gmm_core2em6e_step17h3c454055a244e4f4E"),
            "gmm_core"
        );
        assert_eq!(crate_of("_ZN4libm4math4expf17habcE"), "libm");
        assert_eq!(
            crate_of(
                "_ZN60_$LT$defmt..export..FmtWrite$u20$as$u20$core..fmt..Write$GT$9write_str17hE"
            ),
            "defmt"
        );
        assert_eq!(crate_of("__aeabi_memcpy"), "compiler_builtins/runtime");
    }

    #[test]
    fn reads_metric_lines() {
        let m = metrics(
            "fit 0\nmetric fit_stack_bytes 2620\nmetric instructions_per_pki_libm 155.0 (n=900 k=3)\n",
        );
        assert_eq!(m.get("fit_stack_bytes"), Some(&2620.0));
        assert_eq!(m.get("instructions_per_pki_libm"), Some(&155.0));
    }
}
