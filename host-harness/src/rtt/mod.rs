//! `gmm rtt`: run the firmware in QEMU, read its RTT stream over the GDB
//! remote protocol as a debug probe would, decode defmt, and check every
//! fit against the host bit for bit.
//!
//! - [`rsp`]: a small GDB remote-protocol client.
//! - [`target`]: QEMU, the ELF's symbols, and the RTT pump.
//! - [`log`]: decoded frames gathered into what the device reported.
//! - [`check`]: every fit recomputed on the host and compared.

pub mod check;
pub mod log;
pub mod rsp;
pub mod target;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `gmm rtt`.
#[derive(Debug, Clone, clap::Args)]
pub struct RttArgs {
    /// The firmware ELF built for QEMU's mps2-an386.
    pub elf: PathBuf,
    /// Recompute every fit on the host and compare bit for bit.
    #[arg(long)]
    pub check: bool,
    /// Give up after this many seconds (QEMU is killed).
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Print only the summary, not every decoded line.
    #[arg(long)]
    pub quiet: bool,
}

/// Turns one decoded frame into a printable line and a parsed [`log::Line`].
fn convert(frame: &defmt_decoder::Frame<'_>) -> (String, log::Line) {
    let mut tag = String::new();
    let mut params = Vec::new();
    for (fragment, shown) in frame.fragments().iter().zip(frame.display_fragments()) {
        match fragment {
            defmt_parser::Fragment::Literal(text) => {
                if tag.is_empty() && params.is_empty() {
                    tag = text.split_whitespace().next().unwrap_or("").to_string();
                }
            }
            defmt_parser::Fragment::Parameter(_) => params.push(shown),
        }
    }
    (frame.display(false).to_string(), log::Line { tag, params })
}

/// Runs `gmm rtt`; returns the process exit code.
pub fn run(args: &RttArgs) -> i32 {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gmm rtt: error: {e}");
            2
        }
    }
}

fn run_inner(args: &RttArgs) -> Result<i32, String> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let elf =
        std::fs::read(&args.elf).map_err(|e| format!("reading {}: {e}", args.elf.display()))?;
    let syms = target::symbols(&elf)?;
    if syms.main >= target::QEMU_CODE_END {
        return Err(format!(
            "`main` is at {:#x}, outside mps2-an386's code memory (below {:#x}): this ELF is \
             linked for a board; build the firmware with `--features qemu`",
            syms.main,
            target::QEMU_CODE_END
        ));
    }
    let table = defmt_decoder::Table::parse(&elf)
        .map_err(|e| format!("reading the defmt table: {e}"))?
        .ok_or("the ELF has no defmt data (.defmt section)")?;
    let mut decoder = table.new_stream_decoder();
    let can_recover = table.encoding().can_recover();

    let (mut qemu, port) = target::Qemu::start(&args.elf)?;
    let mut client = qemu.connect(port, deadline)?;
    let mut run = log::Run::default();
    let mut malformed = 0usize;
    let quiet = args.quiet;
    let ending = target::pump(&mut client, syms, deadline, |bytes| {
        decoder.received(bytes);
        loop {
            match decoder.decode() {
                Ok(frame) => {
                    let (text, line) = convert(&frame);
                    if !quiet {
                        println!("{text}");
                    }
                    run.add(&line);
                }
                Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
                Err(defmt_decoder::DecodeError::Malformed) => {
                    malformed += 1;
                    if !can_recover {
                        break;
                    }
                }
            }
        }
    });
    // QEMU is killed here (and on every early return, by Drop).
    drop(client);
    drop(qemu);
    let ending = ending?;

    let mut code = 0;
    match ending {
        target::Ending::Exited(0) => eprintln!("gmm rtt: the guest exited with status 0"),
        target::Ending::Exited(s) => {
            eprintln!(
                "gmm rtt: the guest exited with status {s} (panic or HardFault; see the log)"
            );
            code = 1;
        }
        target::Ending::Killed(s) => {
            eprintln!("gmm rtt: the guest was killed by signal {s}");
            code = 1;
        }
    }
    if malformed > 0 {
        eprintln!("gmm rtt: {malformed} malformed defmt frames");
        code = 1;
    }
    if run.done != Some(true) {
        eprintln!("gmm rtt: the firmware did not report `done ok=true`");
        code = 1;
    }
    summary(&run);
    if args.check {
        let report = check::check(&run);
        for m in &report.mismatches {
            eprintln!("gmm rtt: MISMATCH {m}");
        }
        println!(
            "check: {} of {} matched the host bit for bit ({} of {} fits, {} of {} streaming snapshots){}",
            report.matched + report.snapshots_matched,
            report.fits + report.snapshots,
            report.matched,
            report.fits,
            report.snapshots_matched,
            report.snapshots,
            if report.ok() { "" } else { " -- FAILED" }
        );
        if !report.ok() {
            code = 1;
        }
    }
    Ok(code)
}

/// Costs measured on the device, as `metric NAME VALUE` lines (read by
/// `cargo xtask size`) after a readable table.
fn summary(run: &log::Run) {
    println!("fit  k  exp        n_iter  ticks      instructions  stack_bytes");
    for (id, f) in &run.fits {
        let n_iter = f
            .out
            .as_ref()
            .and_then(|o| o.as_ref().ok())
            .map_or(String::from("-"), |o| o.ints[1].to_string());
        let (ticks, stack) = f.cost.unwrap_or((0, 0));
        println!(
            "{id:<4} {:<2} {:<10} {n_iter:<7} {ticks:<10} {:<13} {stack}",
            f.cfg.k,
            check::exp_name(f.cfg.exp),
            ticks * check::INSTRUCTIONS_PER_TICK
        );
    }
    // Stack of the fits, measured from the caller's frame: plain
    // `Gmm::fit_in` (static workspace) without a trace, the deepest of
    // the traced fits (static workspace too), and `Gmm::fit` (its
    // workspace on the stack).
    let deepest = |traced: bool, on_stack: bool| {
        run.fits
            .values()
            .filter(|f| f.cfg.traced == traced && f.on_stack == on_stack)
            .filter_map(|f| f.cost.map(|c| c.1))
            .max()
    };
    if let Some(s) = deepest(false, false) {
        println!("metric fit_stack_bytes {s}");
    }
    if let Some(s) = deepest(true, false) {
        println!("metric traced_fit_stack_bytes {s}");
    }
    if let Some(s) = deepest(false, true) {
        println!("metric onstack_fit_stack_bytes {s}");
    }
    if let Some(s) = run.sizes {
        println!("metric model_bytes {}", s.model);
        println!("metric fit_result_bytes {}", s.fit);
        println!("metric stats_bytes {}", s.stats);
        println!("metric stream_bytes {}", s.stream);
        println!("metric workspace_bytes {}", s.workspace);
    }
    println!("stream  k  schedule         updates  ticks      instructions/update  stack_bytes");
    for (id, st) in &run.streams {
        let schedule = match (st.cfg.schedule.0, st.cfg.start_fit < 0) {
            _ if st.cfg.glitch_every > 0 => "with_glitches",
            (0, false) => "decaying",
            (1, false) => "constant",
            (0, true) => "warmup_decaying",
            (1, true) => "warmup_constant",
            _ => "?",
        };
        let Some(log::StreamCost {
            updates,
            ticks,
            stack,
            ..
        }) = st.cost
        else {
            println!(
                "{id:<7} {:<2} {schedule:<16} (stopped: {:?})",
                st.cfg.k, st.error
            );
            continue;
        };
        let per = if updates > 0 {
            (ticks * check::INSTRUCTIONS_PER_TICK) as f64 / updates as f64
        } else {
            0.0
        };
        println!(
            "{id:<7} {:<2} {schedule:<16} {updates:<8} {ticks:<10} {per:<20.1} {stack}",
            st.cfg.k
        );
        if updates == 0 || st.cfg.glitch_every > 0 {
            continue;
        }
        // The runs from the chosen fit or a warm-up by schedule; every
        // constant-step run from a fit by k (the cost's growth with k).
        let chosen = run
            .select
            .is_some_and(|(_, fit, _)| i64::from(st.cfg.start_fit) == i64::from(fit));
        if chosen || st.cfg.start_fit < 0 {
            println!("metric stream_k {}", st.cfg.k);
            println!(
                "metric instructions_per_update_{schedule} {per:.1} (k={} updates={updates})",
                st.cfg.k
            );
            println!("metric stream_update_stack_bytes_{schedule} {stack}");
        }
        if schedule == "constant" {
            println!(
                "metric instructions_per_update_constant_k{} {per:.1} (updates={updates})",
                st.cfg.k
            );
        }
    }
    if let Some((peak, total)) = run.stack {
        println!("metric peak_stack_bytes {peak}");
        println!("metric stack_region_bytes {total}");
    }
    for b in &run.benches {
        if let Some(v) = check::per_pki(run, b) {
            println!(
                "metric instructions_per_pki_{} {v:.1} (n={} k={})",
                check::exp_name(b.exp),
                b.n,
                b.k
            );
        }
    }
}
