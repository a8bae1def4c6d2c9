//! The benchmark refits of the main firmware, alone, for an instruction
//! profile under QEMU (`cargo xtask profile`): for each E-step
//! exponential, the refit of [`fw::BENCH_ITERS_A`] and then of
//! [`fw::BENCH_ITERS_B`] iterations from [`fw::bench_start`], each between
//! two calls of `gmm_profile_mark`, which the profiler finds in QEMU's
//! execution trace. Nothing is logged; the exit status says whether every
//! refit ran its iterations.
#![no_std]
#![no_main]

use cortex_m_rt::{ExceptionFrame, entry, exception};
use defmt_rtt as _;
use firmware_example as fw;
use gmm_core::{FitConfig, Point};
use panic_probe as _;

/// Marks the start and the end of each profiled refit.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn gmm_profile_mark() {
    cortex_m::asm::nop();
}

#[entry]
fn main() -> ! {
    let Some(points) =
        cortex_m::singleton!(: heapless::Vec<Point, { fw::N_POINTS }> = heapless::Vec::new())
    else {
        fw::exit(false);
    };
    let Ok(mut source) = fw::MixtureSource::seed_mixture(fw::DATA_SEED) else {
        fw::exit(false);
    };
    // The mixture source cannot fail (its error type is Infallible).
    let _ = fw::collect(&mut source, points);
    let Ok(start) = fw::bench_start::<{ fw::K_CAPACITY }>() else {
        fw::exit(false);
    };
    let mut ok = true;
    for exp in fw::BENCH_EXPS {
        for iters in [fw::BENCH_ITERS_A, fw::BENCH_ITERS_B] {
            let config = FitConfig::new(start.k())
                .with_tol(0.0)
                .with_max_iter(iters)
                .with_exp(exp);
            gmm_profile_mark();
            let fit = start.refine(points.as_slice(), &config, &mut ());
            gmm_profile_mark();
            ok &= fit.is_ok_and(|f| f.report.n_iter == iters);
        }
    }
    fw::exit(ok)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    defmt::error!("HardFault at pc={=u32:#010x}", frame.pc());
    fw::exit(false)
}
