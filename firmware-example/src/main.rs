//! Collect points, fit them with gmm-core for k = 1..=K_MAX, pick k by
//! BIC, time a few refits per E-step exponential, then learn from a
//! stream of further samples with streaming EM started from the chosen
//! fit, and stream everything over RTT as defmt messages that
//! `gmm rtt --check` decodes and checks bit for bit against the host.
//!
//! Every f32 is logged twice: as `{=f32}` to read, and as its bits
//! (`{=u32:#010x}`) so the host recovers the exact value.
//!
//! Costs: SysTick counts the fit (under QEMU `-icount shift=0` one tick is
//! 40 instructions; on the board one tick is one core clock), and the
//! stack is painted before each fit and scanned after it.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{ExceptionFrame, entry, exception};
use defmt_rtt as _;
use firmware_example as fw;
use gmm_core::Point;
use panic_probe as _;

#[cfg(feature = "qemu")]
const BOARD: &str = "qemu mps2-an386";
#[cfg(not(feature = "qemu"))]
const BOARD: &str = "NUCLEO-F411RE";

#[entry]
fn main() -> ! {
    // The fits' workspace, all zero bits: in .bss, off the stack.
    // (cortex-m-rt makes it a `&'static mut` here, once.)
    #[cfg(any(feature = "fit", feature = "minimal-fit"))]
    static mut WORKSPACE: gmm_core::Workspace<{ fw::K_CAPACITY }> = gmm_core::Workspace::new();
    let stack_top = stack::top();
    stack::paint();
    let mut low_water = stack_top;
    let Some(mut cp) = cortex_m::Peripherals::take() else {
        defmt::error!("peripherals already taken");
        exit(false);
    };
    ticks::start(&mut cp.SYST);
    defmt::info!("gmm firmware-example on {=str}", BOARD);
    defmt::info!(
        "plan data_seed={=u64} n={=u32} k_max={=u32} capacity={=u32}",
        fw::DATA_SEED,
        fw::N_POINTS as u32,
        fw::K_MAX as u32,
        fw::K_CAPACITY as u32
    );

    let Some(points) =
        cortex_m::singleton!(: heapless::Vec<Point, { fw::N_POINTS }> = heapless::Vec::new())
    else {
        exit(false);
    };
    let Ok(mut source) = fw::MixtureSource::seed_mixture(fw::DATA_SEED) else {
        defmt::error!("the seed mixture is invalid");
        exit(false);
    };
    let t0 = ticks::now();
    // The mixture source cannot fail (its error type is Infallible).
    let _ = fw::collect(&mut source, points);
    let t1 = ticks::now();
    defmt::info!(
        "data n={=u32} checksum={=u32:#010x} ticks={=u64}",
        points.len() as u32,
        fw::checksum(points),
        t1 - t0
    );

    #[cfg(feature = "fit")]
    let ok = fits::run(points, WORKSPACE, &mut low_water);
    #[cfg(all(feature = "minimal-fit", not(feature = "fit")))]
    let ok = minimal_fit(points, WORKSPACE);
    #[cfg(not(any(feature = "fit", feature = "minimal-fit")))]
    let ok = true;

    low_water = low_water.min(stack::low_water());
    defmt::info!(
        "stack peak={=u32} of ram_stack={=u32}",
        (stack_top - low_water) as u32,
        (stack_top - stack::bottom()) as u32
    );
    defmt::info!("done ok={=bool}", ok);
    exit(ok);
}

/// The smallest use of the core, for its share of flash: `select_k_in`
/// (a static workspace) over k = 1..=K_MAX, and the chosen k logged.
#[cfg(all(feature = "minimal-fit", not(feature = "fit")))]
fn minimal_fit(
    points: &heapless::Vec<Point, { fw::N_POINTS }>,
    ws: &mut gmm_core::Workspace<{ fw::K_CAPACITY }>,
) -> bool {
    let config = gmm_core::FitConfig::new(1)
        .with_n_init(fw::N_INIT)
        .with_seed(fw::FIT_SEED);
    let selection = gmm_core::select_k_in(ws, points, &config, fw::K_MAX, gmm_core::Criterion::Bic);
    match selection {
        Ok(s) => {
            defmt::info!("minimal best_k={=u32}", s.best_k as u32);
            true
        }
        Err(_) => false,
    }
}

#[cfg(feature = "fit")]
mod fits {
    use firmware_example as fw;
    use gmm_core::{
        Fit, FitConfig, Gmm, GmmError, Point, StreamingGmm, SufficientStats, Trace, Workspace,
    };

    type Model = Gmm<{ fw::K_CAPACITY }>;

    use fw::BENCH_EXPS as EXPS;

    /// Mean log-likelihoods of every iteration of the fit being run, kept
    /// in RAM and logged after the fit so that logging is not timed.
    struct Recorder {
        entries: heapless::Vec<(u32, u32, f32), { 3 * 101 }>,
        dropped: u32,
    }

    impl Trace for Recorder {
        fn record(&mut self, restart: u32, iteration: u32, mll: f32, _weights: &[f32]) {
            if self.entries.push((restart, iteration, mll)).is_err() {
                self.dropped += 1;
            }
        }
    }

    /// Runs every fit; false when any failed unexpectedly.
    pub fn run(
        points: &heapless::Vec<Point, { fw::N_POINTS }>,
        ws: &mut Workspace<{ fw::K_CAPACITY }>,
        low_water: &mut usize,
    ) -> bool {
        let Some(rec) = cortex_m::singleton!(: Recorder = Recorder {
            entries: heapless::Vec::new(),
            dropped: 0,
        }) else {
            return false;
        };
        let base = FitConfig::new(1)
            .with_n_init(fw::N_INIT)
            .with_seed(fw::FIT_SEED);
        let mut id = 0u32;
        let mut ok = true;
        defmt::info!(
            "size model_bytes={=u32} fit_bytes={=u32} stats_bytes={=u32} stream_bytes={=u32} workspace_bytes={=u32}",
            core::mem::size_of::<Model>() as u32,
            core::mem::size_of::<Fit<{ fw::K_CAPACITY }>>() as u32,
            core::mem::size_of::<SufficientStats<{ fw::K_CAPACITY }>>() as u32,
            core::mem::size_of::<StreamingGmm<{ fw::K_CAPACITY }>>() as u32,
            core::mem::size_of::<Workspace<{ fw::K_CAPACITY }>>() as u32
        );

        // Model selection: k = 1..=K_MAX, lowest BIC wins (as select_k).
        let mut best: Option<(f32, u32, usize, Model)> = None;
        // Every k's model, for the streaming cost per k.
        let mut models: heapless::Vec<(u32, Model), { fw::K_MAX }> = heapless::Vec::new();
        for k in 1..=fw::K_MAX {
            let config = base.with_k(k);
            log_config(id, &config, fw::WARM_NONE, true);
            rec.entries.clear();
            rec.dropped = 0;
            let result = measure(id, low_water, || {
                Model::fit_traced_in(ws, points, &config, rec)
            });
            log_trace(id, rec);
            match result {
                Ok(fit) => {
                    let bic = fit.report.bic();
                    log_fit(id, fit, bic);
                    if best.is_none_or(|(b, _, _, _)| bic < b) {
                        best = Some((bic, id, k, fit.model));
                    }
                    // At most K_MAX fits: never full.
                    let _ = models.push((id, fit.model));
                }
                Err(e) => {
                    log_error(id, k, e);
                    if matches!(e, GmmError::TooFewPoints { .. }) {
                        break;
                    }
                }
            }
            id += 1;
        }
        match best {
            Some((bic, fit, k, _)) => defmt::info!(
                "select best_k={=u32} fit={=u32} bic={=f32} {=u32:#010x}",
                k as u32,
                fit,
                bic,
                bic.to_bits()
            ),
            None => {
                defmt::error!("select: no k could be fitted");
                ok = false;
            }
        }

        // The chosen k once more as an application would fit it, no trace:
        // `Gmm::fit_in` with the static workspace (its stack is the figure
        // for the fit alone), then `Gmm::fit`, whose workspace is on the
        // stack.
        if let Some((_, _, k, _)) = best {
            let config = base.with_k(k);
            log_config(id, &config, fw::WARM_NONE, false);
            let result = measure(id, low_water, || Model::fit_in(ws, points, &config));
            ok &= log_result(id, k, result);
            id += 1;
            log_config(id, &config, fw::WARM_NONE, false);
            defmt::info!("onstack fit={=u32}", id);
            let result = measure(id, low_water, || Model::fit(points, &config));
            ok &= log_result(id, k, result.as_ref().map_err(|e| *e));
            id += 1;
        }

        // Cost per EM iteration: refits from a fixed start with tol 0 for
        // BENCH_ITERS_A and BENCH_ITERS_B iterations. Their trace goes to
        // RAM (a few instructions per iteration) and is logged afterwards.
        let Ok(start) = fw::bench_start::<{ fw::K_CAPACITY }>() else {
            return false;
        };
        for exp in EXPS {
            let mut pair = [0u32; 2];
            for (slot, iters) in pair.iter_mut().zip([fw::BENCH_ITERS_A, fw::BENCH_ITERS_B]) {
                let config = FitConfig::new(start.k())
                    .with_tol(0.0)
                    .with_max_iter(iters)
                    .with_exp(exp);
                log_config(id, &config, fw::WARM_BENCH_START, true);
                rec.entries.clear();
                rec.dropped = 0;
                let result = measure(id, low_water, || start.refine_in(ws, points, &config, rec));
                log_trace(id, rec);
                ok &= log_result(id, start.k(), result);
                *slot = id;
                id += 1;
            }
            defmt::info!(
                "bench exp={=u8} n={=u32} k={=u32} fit_a={=u32} fit_b={=u32}",
                fw::exp_code(exp),
                points.len() as u32,
                start.k() as u32,
                pair[0],
                pair[1]
            );
        }

        // Streaming EM, started from the chosen fit, then from a warm-up
        // fit of the stream's own first samples.
        if let Some((_, fit, k, model)) = best {
            use super::streams::Start;
            let plan = fw::StreamPlan {
                n: fw::N_STREAM,
                every: fw::SNAPSHOT_EVERY,
                glitch_every: 0,
            };
            let mut stream = 0u32;
            for config in fw::stream_configs() {
                let start = Start::Fit { model: &model, fit };
                ok &= super::streams::run(stream, start, &config, plan, ws, low_water);
                stream += 1;
            }
            let start = Start::Warmup(fw::warmup_fit_config(k));
            let config = fw::warmup_stream_config();
            ok &= super::streams::run(stream, start, &config, plan, ws, low_water);
            stream += 1;
            // The cost of an update for every other k (constant steps, as
            // the second run above, which is the chosen k's).
            let [_, constant] = fw::stream_configs();
            let scaling = fw::StreamPlan {
                n: fw::N_SCALING,
                every: fw::N_SCALING,
                glitch_every: 0,
            };
            for (fit, model) in models.iter().filter(|(id, _)| *id != fit) {
                let start = Start::Fit { model, fit: *fit };
                ok &= super::streams::run(stream, start, &constant, scaling, ws, low_water);
                stream += 1;
            }
            // Sensor glitches, in the warm-up and after it.
            let glitches = fw::StreamPlan {
                n: fw::N_GLITCH,
                every: fw::SNAPSHOT_EVERY,
                glitch_every: fw::GLITCH_EVERY,
            };
            let start = Start::Warmup(fw::warmup_fit_config(k));
            ok &= super::streams::run(stream, start, &config, glitches, ws, low_water);
        }
        ok
    }

    /// Runs `f` under [`super::timed`] and logs its cost.
    fn measure<T>(id: u32, low_water: &mut usize, f: impl FnOnce() -> T) -> T {
        let (out, ticks, stack) = super::timed(low_water, f);
        defmt::info!(
            "cost fit={=u32} ticks={=u64} stack={=u32}",
            id,
            ticks,
            stack
        );
        out
    }

    fn log_config(id: u32, c: &FitConfig, warm: i32, traced: bool) {
        defmt::info!(
            "fitcfg fit={=u32} k={=u32} n_init={=u32} seed={=u64} tol={=u32:#010x} max_iter={=u32} reg_covar={=u32:#010x} exp={=u8} warm={=i32} trace={=bool}",
            id,
            c.k as u32,
            c.n_init,
            c.seed,
            c.tol.to_bits(),
            c.max_iter,
            c.reg_covar.to_bits(),
            fw::exp_code(c.exp),
            warm,
            traced
        );
    }

    fn log_trace(id: u32, rec: &Recorder) {
        for &(restart, iteration, mll) in &rec.entries {
            defmt::info!(
                "iter fit={=u32} restart={=u32} i={=u32} mll={=f32} {=u32:#010x}",
                id,
                restart,
                iteration,
                mll,
                mll.to_bits()
            );
        }
        if rec.dropped > 0 {
            defmt::warn!("iter fit={=u32} dropped={=u32}", id, rec.dropped);
        }
    }

    /// Logs a fit's result or its error; false for an error.
    fn log_result(id: u32, k: usize, result: Result<&Fit<{ fw::K_CAPACITY }>, GmmError>) -> bool {
        match result {
            Ok(fit) => log_fit(id, fit, fit.report.bic()),
            Err(e) => log_error(id, k, e),
        }
        result.is_ok()
    }

    fn log_fit(id: u32, fit: &Fit<{ fw::K_CAPACITY }>, bic: f32) {
        let r = &fit.report;
        defmt::info!(
            "fit fit={=u32} k={=u32} n_iter={=u32} converged={=bool} ll={=f32} {=u32:#010x} mll={=f32} {=u32:#010x} bic={=f32} {=u32:#010x} restart={=u32} failed={=u32} reseeded={=u32} floored={=u32}",
            id,
            r.k as u32,
            r.n_iter,
            r.converged,
            r.log_likelihood,
            r.log_likelihood.to_bits(),
            r.mean_log_likelihood,
            r.mean_log_likelihood.to_bits(),
            bic,
            bic.to_bits(),
            r.restart,
            r.failed_restarts,
            r.guards.reseeded,
            r.guards.floored
        );
        for (j, (&w, g)) in fit
            .model
            .weights()
            .iter()
            .zip(fit.model.components())
            .enumerate()
        {
            let m = g.mean();
            let c = g.covariance();
            defmt::info!(
                "comp fit={=u32} j={=u32} w={=f32} mean=({=f32}, {=f32}) cov=({=f32}, {=f32}, {=f32}) bits={=u32:#010x} {=u32:#010x} {=u32:#010x} {=u32:#010x} {=u32:#010x} {=u32:#010x}",
                id,
                j as u32,
                w,
                m[0],
                m[1],
                c.xx,
                c.xy,
                c.yy,
                w.to_bits(),
                m[0].to_bits(),
                m[1].to_bits(),
                c.xx.to_bits(),
                c.xy.to_bits(),
                c.yy.to_bits()
            );
        }
    }

    fn log_error(id: u32, k: usize, e: GmmError) {
        let what = match e {
            GmmError::TooFewPoints { .. } => "too few points",
            GmmError::SingularCovariance { .. } => "singular covariance",
            GmmError::Diverged => "diverged",
            GmmError::InvalidConfig { reason } | GmmError::InvalidParameters { reason } => reason,
            _ => "other error",
        };
        defmt::warn!(
            "fiterr fit={=u32} k={=u32} error={=str}",
            id,
            k as u32,
            what
        );
    }
}

/// Runs `f` between two SysTick reads on a freshly painted stack; returns
/// its result, its ticks and its stack bytes.
///
/// The stack is counted from the stack pointer here down to the lowest
/// painted word `f` overwrote; `f` runs inside a function that is never
/// inlined, so its locals cannot hide in this caller's frame (allocated
/// before the stack pointer is read).
#[cfg(feature = "fit")]
fn timed<T>(low_water: &mut usize, f: impl FnOnce() -> T) -> (T, u64, u32) {
    *low_water = (*low_water).min(stack::low_water());
    let sp = stack::pointer();
    stack::paint();
    let t0 = ticks::now();
    let out = isolated(f);
    let t1 = ticks::now();
    let low = stack::low_water();
    *low_water = (*low_water).min(low);
    (out, t1 - t0, sp.saturating_sub(low) as u32)
}

#[cfg(feature = "fit")]
#[inline(never)]
fn isolated<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// Streaming EM on the device: a [`StreamingGmm`](gmm_core::StreamingGmm)
/// started from the batch fit, or from a warm-up fit of its first
/// samples, learns from `n` samples of the seed mixture, drawn from
/// [`fw::STREAM_SEED`]; a snapshot of the live model goes out every
/// `every` samples and after the last.
#[cfg(feature = "fit")]
mod streams {
    use firmware_example as fw;
    use fw::SampleSource;
    use gmm_core::{
        FitConfig, Gmm, GmmError, Point, StreamConfig, StreamingGmm, Warmup, Workspace,
    };

    type Stream = StreamingGmm<{ fw::K_CAPACITY }>;

    /// Where a streaming run starts.
    pub enum Start<'a> {
        /// From a batch fit's model (logged as fit `fit`).
        Fit {
            /// The model.
            model: &'a Gmm<{ fw::K_CAPACITY }>,
            /// Its fit id in the log.
            fit: u32,
        },
        /// From a fit of the first [`fw::WARMUP_POINTS`] samples with this
        /// configuration.
        Warmup(FitConfig),
    }

    /// Still collecting the warm-up samples, or learning. Without a heap
    /// the larger variant's size is the price of holding either in place.
    #[allow(clippy::large_enum_variant)]
    enum Phase {
        Warming(Warmup<{ fw::K_CAPACITY }, { fw::WARMUP_POINTS }>),
        Live(Stream),
    }

    /// One streaming run of `n` samples, a snapshot every `every` (a
    /// multiple of [`fw::STREAM_CHUNK`]) and after the last; false when it
    /// could not run to the end.
    ///
    /// The samples are drawn [`fw::STREAM_CHUNK`] at a time into a small
    /// buffer and then learnt, so that SysTick times the updates alone;
    /// the stack is measured per chunk of updates.
    pub fn run(
        id: u32,
        start: Start<'_>,
        config: &StreamConfig,
        plan: fw::StreamPlan,
        ws: &mut Workspace<{ fw::K_CAPACITY }>,
        low_water: &mut usize,
    ) -> bool {
        let fw::StreamPlan { n, every, .. } = plan;
        let (code, a, b) = fw::schedule_code(config.schedule);
        let (start_fit, warmup, k) = match &start {
            Start::Fit { model, fit } => (*fit as i32, 0, model.k()),
            Start::Warmup(fit) => (-1, fw::WARMUP_POINTS, fit.k),
        };
        defmt::info!(
            "streamcfg stream={=u32} start_fit={=i32} warmup={=u32} k={=u32} seed={=u64} n={=u32} every={=u32} schedule={=u8} a={=u32:#010x} b={=u32:#010x} reg_covar={=u32:#010x} min_mass={=u32:#010x} false_alarm={=u32:#010x} prior={=u32} glitch_every={=u32}",
            id,
            start_fit,
            warmup as u32,
            k as u32,
            fw::STREAM_SEED,
            n,
            every,
            code,
            a.to_bits(),
            b.to_bits(),
            config.reg_covar.to_bits(),
            config.min_mass.to_bits(),
            config.false_alarm_rate.to_bits(),
            config.prior_updates,
            plan.glitch_every
        );
        let Ok(mut source) = fw::MixtureSource::seed_mixture(fw::STREAM_SEED) else {
            return false;
        };
        let started = match start {
            Start::Fit { model, .. } => Stream::from_model(model, config).map(Phase::Live),
            Start::Warmup(fit) => Warmup::new(&fit, config).map(Phase::Warming),
        };
        let mut phase = match started {
            Ok(p) => p,
            Err(e) => {
                log_error(id, 0, e);
                return false;
            }
        };
        let mut sum = fw::Checksum::new();
        let mut chunk = [[0.0f32; 2]; fw::STREAM_CHUNK];
        let (mut drawn, mut updates, mut anomalies) = (0u32, 0u32, 0u32);
        let (mut total_ticks, mut max_stack) = (0u64, 0u32);
        while drawn < n {
            let len = (n - drawn).min(fw::STREAM_CHUNK as u32) as usize;
            let chunk = &mut chunk[..len];
            for (p, i) in chunk.iter_mut().zip(1..) {
                // The mixture source cannot fail (Infallible).
                let Ok(x) = source.next_point();
                *p = plan.sample(drawn + i, x);
                sum.add(*p);
            }
            // Warm-up samples go to the warm-up buffer (untimed: the last
            // one runs the batch fit); the rest are timed updates.
            let mut rest: &[Point] = chunk;
            while let (Phase::Warming(w), [x, tail @ ..]) = (&mut phase, rest) {
                drawn += 1;
                rest = tail;
                match w.push_in(ws, *x) {
                    Ok(Some(stream)) => phase = Phase::Live(stream),
                    // Not taken into the buffer.
                    Ok(None) | Err(GmmError::NonFinitePoint { .. }) => {}
                    Err(e) => {
                        log_error(id, u64::from(drawn), e);
                        return false;
                    }
                }
            }
            let Phase::Live(stream) = &mut phase else {
                continue;
            };
            let (result, ticks, stack) =
                super::timed(low_water, || learn(stream, rest, &mut anomalies));
            total_ticks += ticks;
            max_stack = max_stack.max(stack);
            drawn += rest.len() as u32;
            updates += rest.len() as u32;
            if let Err(e) = result {
                log_snapshot(id, stream, anomalies);
                log_error(id, stream.n_seen() + stream.n_rejected(), e);
                return false;
            }
            if drawn.is_multiple_of(every) || drawn == n {
                log_snapshot(id, stream, anomalies);
            }
        }
        defmt::info!(
            "scost stream={=u32} drawn={=u32} updates={=u32} ticks={=u64} stack={=u32} checksum={=u32:#010x}",
            id,
            drawn,
            updates,
            total_ticks,
            max_stack,
            sum.value()
        );
        true
    }

    /// Learns every point of `chunk` up to the first error other than a
    /// rejected sample (which the stream counts, leaving the model as it
    /// was), counting the ones flagged as anomalies (scored before their
    /// update).
    fn learn(stream: &mut Stream, chunk: &[Point], anomalies: &mut u32) -> Result<(), GmmError> {
        for &x in chunk {
            match stream.update(x) {
                Ok(u) => *anomalies += u32::from(u.anomaly),
                Err(GmmError::NonFinitePoint { .. } | GmmError::PointOutOfRange { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The live model, bit for bit; a threshold of NaN means none yet.
    fn log_snapshot(id: u32, stream: &Stream, anomalies: u32) {
        let threshold = stream.threshold().unwrap_or(f32::NAN);
        defmt::info!(
            "snap stream={=u32} n_seen={=u64} rejected={=u64} reseeded={=u32} anomalies={=u32} threshold={=f32} {=u32:#010x}",
            id,
            stream.n_seen(),
            stream.n_rejected(),
            stream.reseeded(),
            anomalies,
            threshold,
            threshold.to_bits()
        );
        let model = stream.model();
        for (j, (&w, g)) in model.weights().iter().zip(model.components()).enumerate() {
            let m = g.mean();
            let c = g.covariance();
            defmt::info!(
                "scomp stream={=u32} n_seen={=u64} j={=u32} w={=f32} mean=({=f32}, {=f32}) cov=({=f32}, {=f32}, {=f32}) bits={=u32:#010x} {=u32:#010x} {=u32:#010x} {=u32:#010x} {=u32:#010x} {=u32:#010x}",
                id,
                stream.n_seen(),
                j as u32,
                w,
                m[0],
                m[1],
                c.xx,
                c.xy,
                c.yy,
                w.to_bits(),
                m[0].to_bits(),
                m[1].to_bits(),
                c.xx.to_bits(),
                c.xy.to_bits(),
                c.yy.to_bits()
            );
        }
    }

    fn log_error(id: u32, at: u64, e: GmmError) {
        let what = match e {
            GmmError::NonFinitePoint { .. } => "non-finite point",
            GmmError::PointOutOfRange { .. } => "point out of range",
            GmmError::SingularCovariance { .. } => "singular covariance",
            GmmError::Diverged => "diverged",
            GmmError::InvalidConfig { reason } | GmmError::InvalidParameters { reason } => reason,
            _ => "other error",
        };
        defmt::warn!("serr stream={=u32} at={=u64} error={=str}", id, at, what);
    }
}

/// A 64-bit tick counter from SysTick (24 bits) and a wrap count kept by
/// its exception.
mod ticks {
    use super::{AtomicU32, Ordering, SYST, SystClkSource};

    static WRAPS: AtomicU32 = AtomicU32::new(0);
    const RELOAD: u32 = 0x00FF_FFFF;

    pub fn start(syst: &mut SYST) {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
    }

    /// Ticks since `start`. Re-reads when a wrap happened in between.
    pub fn now() -> u64 {
        loop {
            let before = WRAPS.load(Ordering::Acquire);
            let value = SYST::get_current();
            if WRAPS.load(Ordering::Acquire) == before {
                return (u64::from(before) << 24) + u64::from(RELOAD - value);
            }
        }
    }

    pub fn on_wrap() {
        WRAPS.fetch_add(1, Ordering::AcqRel);
    }
}

#[exception]
fn SysTick() {
    ticks::on_wrap();
}

/// Stack painting between the end of static RAM (`_stack_end`, from
/// cortex-m-rt's linker script) and the stack pointer.
mod stack {
    const PAINT: u32 = 0x5A5A_A5A5;

    unsafe extern "C" {
        static _stack_start: u32;
        static _stack_end: u32;
    }

    /// Highest stack address (the initial stack pointer).
    pub fn top() -> usize {
        (&raw const _stack_start) as usize
    }

    /// Lowest address the stack may reach (end of .bss/.uninit).
    pub fn bottom() -> usize {
        (&raw const _stack_end) as usize
    }

    #[inline(always)]
    pub fn pointer() -> usize {
        cortex_m::register::msp::read() as usize
    }

    /// Fills the free stack below this function's own frame with PAINT.
    #[inline(never)]
    pub fn paint() {
        // A margin below the current stack pointer for this leaf's own
        // spills; nothing here calls another function.
        let end = pointer().saturating_sub(32) & !3;
        let mut p = bottom();
        while p < end {
            // SAFETY: [bottom, sp - 32) is RAM that no live frame or
            // static uses: statics end at _stack_end and the stack grows
            // down to at most this function's frame, which is above `end`.
            unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
            p += 4;
        }
    }

    /// The lowest address written since the last paint.
    pub fn low_water() -> usize {
        let top = top();
        let mut p = bottom();
        // SAFETY: every address in [bottom, top) is RAM of the stack.
        while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
            p += 4;
        }
        p
    }
}

use fw::exit;

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    defmt::error!("HardFault at pc={=u32:#010x}", frame.pc());
    exit(false)
}
