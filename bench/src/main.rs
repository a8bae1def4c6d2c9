//! `gmm-bench`: the measuring half of `cargo xtask bench-compare`.
//!
//! Subcommands (all print `RESULT key=value ...` lines that xtask parses):
//! - `gen DIR K N SEED`: draws N points from a K-component mixture and
//!   writes `DIR/points.f32` (little-endian f32 pairs) and `DIR/init.txt`
//!   (one line per component: `weight mx my cxx cxy cyy`), the one start
//!   every system iterates from.
//! - `core DIR ITERS REPEATS`: gmm-core, fast and libm exp; fixed work of
//!   ITERS EM iterations with `tol` 0 from the given init.
//! - `reference DIR ITERS REPEATS`: host-harness's f64 reference EM.
//! - `linfa DIR ITERS REPEATS`: linfa-clustering's GaussianMixtureModel
//!   (f64). linfa takes no initial parameters, so it starts from its
//!   random-responsibility init; the per-iteration cost does not depend on
//!   where it starts.
//! - `parallel DIR ITERS REPEATS THREADS`: host-harness's parallel fit on
//!   1 and THREADS threads, and its distance to the one-thread core fit.
//! - `stream N K` / `slice N K`: a plain `Gmm::fit` on N generated points,
//!   streamed from a generator or held in a `Vec`, for peak-RSS
//!   measurement under `/usr/bin/time -v`.
//! - `csv PATH N K`: the same N points as a CSV file (`x,y`), for
//!   measuring `gmm fit`.
//!
//! Time per iteration is measured as `(T(ITERS) - T(0)) / ITERS` (for
//! scikit-learn and linfa, which need at least one iteration,
//! `(T(ITERS + 1) - T(1)) / ITERS`), each T the minimum over REPEATS runs,
//! so validation, initialisation and set-up are not counted for anyone;
//! ns/pki divides by points x components.

use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use gmm_core::{ExpMode, FitConfig, Gmm, Point, Points, SymMat2};
use rand_xoshiro::Xoshiro128PlusPlus;
use rand_xoshiro::rand_core::SeedableRng;

/// Capacity used for every `k` the runner accepts.
const MAX_K: usize = 8;

const REG_COVAR: f32 = 1e-6;

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gmm-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> Res<T> {
    let s = args
        .get(i)
        .ok_or_else(|| format!("missing argument {name}"))?;
    // Accept 1e6 style counts too.
    s.parse::<T>()
        .or_else(|_| {
            s.parse::<f64>()
                .map_err(|_| ())
                .and_then(|v| v.to_string().parse::<T>().map_err(|_| ()))
        })
        .map_err(|()| format!("bad {name}: {s}"))
}

fn run(args: &[String]) -> Res<()> {
    let cmd = args.first().map(String::as_str).unwrap_or("");
    match cmd {
        "gen" => {
            let dir: String = arg(args, 1, "DIR")?;
            gen_case(
                Path::new(&dir),
                arg(args, 2, "K")?,
                arg(args, 3, "N")?,
                arg(args, 4, "SEED")?,
            )
        }
        "core" | "reference" | "linfa" | "parallel" => {
            let dir: String = arg(args, 1, "DIR")?;
            let case = Case::load(Path::new(&dir))?;
            let iters: u32 = arg(args, 2, "ITERS")?;
            let repeats: u32 = arg(args, 3, "REPEATS")?;
            match cmd {
                "core" => run_core(&case, iters, repeats),
                "reference" => run_reference(&case, iters, repeats),
                "linfa" => run_linfa(&case, iters, repeats),
                _ => run_parallel(&case, iters, repeats, arg(args, 4, "THREADS")?),
            }
        }
        "stream" | "slice" => run_memory(cmd, arg(args, 1, "N")?, arg(args, 2, "K")?),
        "csv" => {
            let path: String = arg(args, 1, "PATH")?;
            write_csv(Path::new(&path), arg(args, 2, "N")?, arg(args, 3, "K")?)
        }
        _ => Err(format!(
            "usage: gmm-bench gen|core|reference|linfa|parallel|stream|slice ... (got `{cmd}`)"
        )),
    }
}

/// The mixture the data come from: `k` components on a circle of radius 1.5
/// (overlapping, so EM is slow to converge and `tol` 0 does not stop it
/// early), unequal weights, some correlation (the same as gmm-core's
/// criterion benchmarks).
fn truth(k: usize) -> Res<Gmm<MAX_K>> {
    let mut w = [0.0f32; MAX_K];
    let mut m = [[0.0f32; 2]; MAX_K];
    let mut c = [SymMat2::IDENTITY; MAX_K];
    for j in 0..k.min(MAX_K) {
        let a = j as f32 * std::f32::consts::TAU / k as f32;
        w[j] = 1.0 + j as f32;
        m[j] = [1.5 * a.cos(), 1.5 * a.sin()];
        c[j] = SymMat2::new(1.0 + 0.1 * j as f32, 0.3, 0.8);
    }
    Gmm::new(&w[..k.min(MAX_K)], &m[..k.min(MAX_K)], &c[..k.min(MAX_K)])
        .map_err(|e| format!("truth for k = {k}: {e}"))
}

/// The start: true means moved by (0.7, -0.7), covariances 2 I, equal weights.
fn start(k: usize) -> Res<Gmm<MAX_K>> {
    let t = truth(k)?;
    let w = vec![1.0f32; k];
    let m: Vec<Point> = t
        .components()
        .iter()
        .map(|g| [g.mean()[0] + 0.7, g.mean()[1] - 0.7])
        .collect();
    let c = vec![SymMat2::new(2.0, 0.0, 2.0); k];
    Gmm::new(&w, &m, &c).map_err(|e| format!("start: {e}"))
}

fn gen_case(dir: &Path, k: usize, n: usize, seed: u64) -> Res<()> {
    if !(1..=MAX_K).contains(&k) {
        return Err(format!("k must be in 1..={MAX_K}"));
    }
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let t = truth(k)?;
    let mut rng = Xoshiro128PlusPlus::seed_from_u64(seed);
    let mut bytes = Vec::with_capacity(n * 8);
    for _ in 0..n {
        let (p, _) = t.sample(&mut rng);
        bytes.extend_from_slice(&p[0].to_le_bytes());
        bytes.extend_from_slice(&p[1].to_le_bytes());
    }
    fs::write(dir.join("points.f32"), bytes).map_err(|e| e.to_string())?;
    let s = start(k)?;
    let mut init = String::new();
    for (g, w) in s.components().iter().zip(s.weights()) {
        let [mx, my] = g.mean();
        let c = g.covariance();
        init.push_str(&format!(
            "{w:e} {mx:e} {my:e} {:e} {:e} {:e}\n",
            c.xx, c.xy, c.yy
        ));
    }
    fs::write(dir.join("init.txt"), init).map_err(|e| e.to_string())?;
    println!("RESULT system=gen k={k} n={n} seed={seed}");
    Ok(())
}

/// One data set and its start, as written by `gen`.
struct Case {
    points: Vec<Point>,
    init: Gmm<MAX_K>,
}

impl Case {
    fn load(dir: &Path) -> Res<Self> {
        let bytes = fs::read(dir.join("points.f32")).map_err(|e| format!("points.f32: {e}"))?;
        let f = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let points = bytes
            .chunks_exact(8)
            .map(|c| [f(&c[..4]), f(&c[4..])])
            .collect();
        let text =
            fs::read_to_string(dir.join("init.txt")).map_err(|e| format!("init.txt: {e}"))?;
        let (mut w, mut m, mut c) = (vec![], vec![], vec![]);
        for line in text.lines() {
            let v: Vec<f32> = line
                .split_whitespace()
                .map(|s| s.parse::<f32>().map_err(|e| format!("init.txt: {e}")))
                .collect::<Res<_>>()?;
            if v.len() != 6 {
                return Err("init.txt: 6 numbers per line".into());
            }
            w.push(v[0]);
            m.push([v[1], v[2]]);
            c.push(SymMat2::new(v[3], v[4], v[5]));
        }
        let init = Gmm::new(&w, &m, &c).map_err(|e| format!("init.txt: {e}"))?;
        Ok(Self { points, init })
    }

    fn n(&self) -> usize {
        self.points.len()
    }

    fn k(&self) -> usize {
        self.init.k()
    }
}

/// CPU time of this process in nanoseconds: unlike wall time, it does not
/// count the time the scheduler gives to other processes on a shared
/// machine. (scikit-learn's side uses `time.process_time_ns`, the same clock.)
fn cpu_ns() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc == 0 {
        ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
    } else {
        f64::NAN
    }
}

/// Minimum CPU time of `repeats` runs of `f`, in nanoseconds (for
/// one-thread work).
fn best_of<T>(repeats: u32, mut f: impl FnMut() -> T) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let t = cpu_ns();
        std::hint::black_box(f());
        best = best.min(cpu_ns() - t);
    }
    best
}

/// Minimum wall time of `repeats` runs of `f`, in nanoseconds (for the
/// parallel fit, where CPU time would hide the speed-up).
fn best_wall<T>(repeats: u32, mut f: impl FnMut() -> T) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        std::hint::black_box(f());
        best = best.min(t.elapsed().as_nanos() as f64);
    }
    best
}

/// FNV-1a over the bits of a model and a log-likelihood: equal hashes mean
/// bit-identical fits.
fn hash_fit<const K: usize>(model: &Gmm<K>, ll: f32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |x: f32| {
        for b in x.to_bits().to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    };
    eat(ll);
    for (g, &w) in model.components().iter().zip(model.weights()) {
        let c = g.covariance();
        for x in [w, g.mean()[0], g.mean()[1], c.xx, c.xy, c.yy] {
            eat(x);
        }
    }
    h
}

fn core_k<const K: usize>(case: &Case, iters: u32, repeats: u32, exp: ExpMode) -> Res<(f64, u64)> {
    let init = Gmm::<K>::new(
        case.init.weights(),
        &case
            .init
            .components()
            .iter()
            .map(|g| g.mean())
            .collect::<Vec<_>>(),
        &case
            .init
            .components()
            .iter()
            .map(|g| g.covariance())
            .collect::<Vec<_>>(),
    )
    .map_err(|e| e.to_string())?;
    let config = |m: u32| {
        FitConfig::new(case.k())
            .with_tol(0.0)
            .with_max_iter(m)
            .with_reg_covar(REG_COVAR)
            .with_exp(exp)
    };
    let data = case.points.as_slice();
    let fit = init
        .refine(data, &config(iters), &mut ())
        .map_err(|e| format!("core fit: {e}"))?;
    if fit.report.n_iter != iters {
        return Err(format!(
            "core ran {} iterations, not {iters}",
            fit.report.n_iter
        ));
    }
    let hash = hash_fit(&fit.model, fit.report.log_likelihood);
    if std::env::var_os("GMM_BENCH_VERBOSE").is_some() {
        eprintln!("core {exp:?}: {:?}\n{:?}", fit.report, fit.model);
    }
    let long = best_of(repeats, || init.refine(data, &config(iters), &mut ()));
    let short = best_of(repeats, || init.refine(data, &config(0), &mut ()));
    let ns_pki = (long - short) / (f64::from(iters) * case.n() as f64 * case.k() as f64);
    Ok((ns_pki, hash))
}

fn run_core(case: &Case, iters: u32, repeats: u32) -> Res<()> {
    let only = std::env::var("GMM_BENCH_EXP").ok();
    for (name, exp) in [("fast", ExpMode::Fast), ("libm", ExpMode::Libm)] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let (ns, hash) = match case.k() {
            3 => core_k::<3>(case, iters, repeats, exp)?,
            8 => core_k::<8>(case, iters, repeats, exp)?,
            _ => core_k::<MAX_K>(case, iters, repeats, exp)?,
        };
        println!(
            "RESULT system=core-{name} k={} n={} ns_pki={ns:.3} hash={hash:016x}",
            case.k(),
            case.n()
        );
    }
    Ok(())
}

fn mixture64(g: &Gmm<MAX_K>) -> host_harness::reference::Mixture64 {
    host_harness::reference::Mixture64 {
        weights: g.weights().iter().map(|&w| f64::from(w)).collect(),
        means: g
            .components()
            .iter()
            .map(|c| c.mean().map(f64::from))
            .collect(),
        covariances: g
            .components()
            .iter()
            .map(|c| c.covariance().to_rows().map(|r| r.map(f64::from)))
            .collect(),
    }
}

fn run_reference(case: &Case, iters: u32, repeats: u32) -> Res<()> {
    use host_harness::reference::{RefConfig, fit};
    let points: Vec<[f64; 2]> = case.points.iter().map(|p| p.map(f64::from)).collect();
    let init = mixture64(&case.init);
    let cfg = |m: usize| RefConfig {
        tol: 0.0,
        max_iter: m,
        reg_covar: f64::from(REG_COVAR),
    };
    let mut failure = None;
    let mut go = |m: usize| {
        if let Err(e) = fit(&points, None, &init, &cfg(m)) {
            failure = Some(format!("reference fit: {e:?}"));
        }
    };
    let long = best_of(repeats, || go(iters as usize));
    let short = best_of(repeats, || go(0));
    if let Some(e) = failure {
        return Err(e);
    }
    let ns = (long - short) / (f64::from(iters) * case.n() as f64 * case.k() as f64);
    println!(
        "RESULT system=reference-f64 k={} n={} ns_pki={ns:.3}",
        case.k(),
        case.n()
    );
    Ok(())
}

fn run_linfa(case: &Case, iters: u32, repeats: u32) -> Res<()> {
    use linfa::DatasetBase;
    use linfa::traits::Fit;
    use linfa_clustering::{GaussianMixtureModel, GmmError, GmmInitMethod};
    let mut flat = Vec::with_capacity(case.n() * 2);
    for p in &case.points {
        flat.push(f64::from(p[0]));
        flat.push(f64::from(p[1]));
    }
    let records =
        ndarray::Array2::from_shape_vec((case.n(), 2), flat).map_err(|e| e.to_string())?;
    let data = DatasetBase::from(records);
    let mut problem = None;
    let mut go = |m: u64| {
        // linfa rejects tol 0; 1e-300 is never met in practice, and a
        // fit that stops early returns Ok, which is reported below.
        let r = GaussianMixtureModel::params(case.k())
            .n_runs(1)
            .init_method(GmmInitMethod::Random)
            .reg_covariance(f64::from(REG_COVAR))
            .tolerance(1e-300)
            .max_n_iterations(m)
            .fit(&data);
        match r {
            Err(GmmError::NotConverged(_)) => {}
            Ok(_) => {
                problem = Some("linfa stopped early (converged); the work is not fixed".into())
            }
            Err(e) => problem = Some(format!("linfa fit: {e}")),
        }
    };
    let long = best_of(repeats, || go(u64::from(iters) + 1));
    let short = best_of(repeats, || go(1));
    if let Some(e) = problem {
        return Err(e);
    }
    let ns = (long - short) / (f64::from(iters) * case.n() as f64 * case.k() as f64);
    println!(
        "RESULT system=linfa-f64 k={} n={} ns_pki={ns:.3}",
        case.k(),
        case.n()
    );
    Ok(())
}

fn run_parallel(case: &Case, iters: u32, repeats: u32, threads: usize) -> Res<()> {
    match case.k() {
        3 => parallel_k::<3>(case, iters, repeats, threads),
        8 => parallel_k::<8>(case, iters, repeats, threads),
        _ => parallel_k::<MAX_K>(case, iters, repeats, threads),
    }
}

fn parallel_k<const K: usize>(case: &Case, iters: u32, repeats: u32, threads: usize) -> Res<()> {
    use host_harness::parallel::refine;
    let init = Gmm::<K>::new(
        case.init.weights(),
        &case
            .init
            .components()
            .iter()
            .map(|g| g.mean())
            .collect::<Vec<_>>(),
        &case
            .init
            .components()
            .iter()
            .map(|g| g.covariance())
            .collect::<Vec<_>>(),
    )
    .map_err(|e| e.to_string())?;
    let config = |m: u32| {
        FitConfig::new(case.k())
            .with_tol(0.0)
            .with_max_iter(m)
            .with_reg_covar(REG_COVAR)
            .with_exp(ExpMode::Fast)
    };
    let data = case.points.as_slice();
    let core = init
        .refine(data, &config(iters), &mut ())
        .map_err(|e| format!("core fit: {e}"))?;
    // The one-thread and multi-thread fits are timed alternately, each
    // keeping its best, so load from other processes on a shared machine
    // hits both alike.
    let counts = [1, threads];
    let mut long = [f64::INFINITY; 2];
    let mut short = [f64::INFINITY; 2];
    for _ in 0..repeats.max(1) {
        for (c, &t) in counts.iter().enumerate() {
            long[c] = long[c].min(best_wall(1, || {
                refine(&init, data, None, &config(iters), t)
            }));
            short[c] = short[c].min(best_wall(1, || refine(&init, data, None, &config(0), t)));
        }
    }
    let ms: Vec<f64> = (0..2)
        .map(|c| (long[c] - short[c]) / f64::from(iters) / 1e6)
        .collect();
    for (c, &t) in counts.iter().enumerate() {
        let fit = refine(&init, data, None, &config(iters), t).map_err(|e| e.to_string())?;
        if fit.report.n_iter != iters {
            return Err(format!("parallel fit ran {} iterations", fit.report.n_iter));
        }
        let mut max_diff = 0.0f32;
        let mut diff = |a: f32, b: f32| max_diff = max_diff.max((a - b).abs());
        for (a, b) in core.model.components().iter().zip(fit.model.components()) {
            let (ca, cb) = (a.covariance(), b.covariance());
            for (x, y) in a.mean().into_iter().zip(b.mean()) {
                diff(x, y);
            }
            for (x, y) in [(ca.xx, cb.xx), (ca.xy, cb.xy), (ca.yy, cb.yy)] {
                diff(x, y);
            }
        }
        for (&x, &y) in core.model.weights().iter().zip(fit.model.weights()) {
            diff(x, y);
        }
        println!(
            "RESULT system=parallel k={} n={} threads={t} ms_per_iter={:.3} speedup={:.2} max_diff={max_diff:e} bit_identical={}",
            case.k(),
            case.n(),
            ms[c],
            ms[0] / ms[c],
            fit == core
        );
    }
    Ok(())
}

/// Points regenerated from a seed on every pass: nothing per point is stored.
struct Generated {
    model: Gmm<MAX_K>,
    n: usize,
}

impl Points for Generated {
    fn visit<F: FnMut(Point, f32)>(&self, mut f: F) {
        let mut rng = Xoshiro128PlusPlus::seed_from_u64(7);
        for _ in 0..self.n {
            f(self.model.sample(&mut rng).0, 1.0);
        }
    }
}

fn run_memory(mode: &str, n: usize, k: usize) -> Res<()> {
    let source = Generated {
        model: truth(k)?,
        n,
    };
    let config = FitConfig::new(k).with_seed(1);
    let fit = if mode == "stream" {
        Gmm::<MAX_K>::fit(&source, &config)
    } else {
        let mut points = Vec::with_capacity(n);
        source.visit(|p, _| points.push(p));
        Gmm::<MAX_K>::fit(points.as_slice(), &config)
    }
    .map_err(|e| format!("fit: {e}"))?;
    println!(
        "RESULT system=memory-{mode} k={k} n={n} n_iter={} ll={}",
        fit.report.n_iter, fit.report.mean_log_likelihood
    );
    Ok(())
}

fn write_csv(path: &Path, n: usize, k: usize) -> Res<()> {
    use std::io::Write as _;
    let source = Generated {
        model: truth(k)?,
        n,
    };
    let file = fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let mut result = writeln!(w, "x,y");
    source.visit(|p, _| {
        if result.is_ok() {
            result = writeln!(w, "{},{}", p[0], p[1]);
        }
    });
    result
        .and_then(|()| w.flush())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    println!("RESULT system=csv n={n} k={k}");
    Ok(())
}
